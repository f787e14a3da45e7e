"""The local engine of the batch jobs, chosen explicitly.

Without ``--runner`` (or with ``--runner DirectRunner``) Beam 2.77's DirectRunner first tries
the Prism runner, which it downloads from GitHub on first use, and falls back to its Python
FnApiRunner when that fails or when the pipeline uses something Prism lacks. The engine a job
ran on would then depend on the network. rnncast's batch jobs run on the FnApiRunner, built as
the DirectRunner builds it (the pipeline options go to its workers), in-process or with
``--direct_running_mode=multi_processing --direct_num_workers=N``. ``--runner PrismRunner``
asks for Prism explicitly (it needs the binary: a download, or ``--prism_location``).
"""

from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineRunner

# Runner names that mean "the local engine".
LOCAL = (None, "DirectRunner", "SwitchingDirectRunner")


def batch_runner(pipeline_options: PipelineOptions) -> PipelineRunner | None:
    """The runner of a batch job: the FnApiRunner for the local engine, else None (Beam
    builds the runner ``--runner`` names)."""
    standard = pipeline_options.view_as(StandardOptions)
    if standard.runner not in LOCAL or standard.streaming:
        return None
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(pipeline_options.get_all_options())
    provision = fn_runner.ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)
    )
    return fn_runner.FnApiRunner(provision_info=provision)
