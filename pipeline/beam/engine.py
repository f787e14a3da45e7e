"""The local engine of the batch jobs, chosen explicitly.

Without ``--runner`` (or with ``--runner DirectRunner``) Beam 2.77's DirectRunner first tries
the Prism runner, which it downloads from GitHub on first use, and falls back to its Python
FnApiRunner when that fails or when the pipeline uses something Prism lacks. The engine a job
ran on would then depend on the network. rnncast's batch jobs run on the FnApiRunner, built as
the DirectRunner builds it (the pipeline options go to its workers), in-process or with
``--direct_running_mode=multi_processing --direct_num_workers=N``. ``--runner PrismRunner``
asks for Prism explicitly (it needs the binary: a download, or ``--prism_location``).

Other runners' options must pass rnncast's strict flag check: :func:`load_runner_options`
registers them first.
"""

from __future__ import annotations

import functools
import importlib
import sys

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineRunner

from rnncast.errors import JobArgumentError

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
    return _local_runner_class()(provision_info=provision)


# The worker command of multi_processing: Beam's, and rnncast's in its place (same harness).
BEAM_WORKER = "{python} -m apache_beam.runners.worker.sdk_worker_main"
RNNCAST_WORKER = "{python} -m rnncast.pipeline.beam.worker"


@functools.cache
def _local_runner_class():
    """The local engine's runner class (built on first use: this module loads before the
    runners do)."""
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.transforms import environments

    class LocalRunner(fn_runner.FnApiRunner):
        """The FnApiRunner, whose multi_processing workers start through
        :mod:`rnncast.pipeline.beam.worker` (the same harness, without its start-up notes).

        (``run_pipeline`` sets the workers' environment from the options as it starts, so
        the substitution happens where it is set.)"""

        @property
        def _default_environment(self):
            return self._rnncast_environment

        @_default_environment.setter
        def _default_environment(self, environment):
            beam = BEAM_WORKER.format(python=sys.executable)
            if (
                isinstance(environment, environments.SubprocessSDKEnvironment)
                and environment.command_string == beam
            ):
                environment = environments.SubprocessSDKEnvironment.from_command_string(
                    RNNCAST_WORKER.format(python=sys.executable)
                )
            self._rnncast_environment = environment

    return LocalRunner


# Runners Beam ships that rnncast's jobs do not run on, and why (README, "Runners").
UNSUPPORTED_RUNNERS = {
    "DaskRunner": (
        "Beam's Dask runner mixes the extra named outputs of a step (dead letters) into its "
        "main output, drops BatchElements' last batch and has no stateful DoFns, so rows "
        "would be lost or misrouted; use the local engine (no --runner), PortableRunner, "
        "FlinkRunner, SparkRunner or DataflowRunner"
    ),
}


def runner_name(argv: list[str]) -> str | None:
    """The value of ``--runner`` in ``argv`` (the last one, as argparse takes it)."""
    name = None
    for k, arg in enumerate(argv):
        if arg == "--runner" and k + 1 < len(argv):
            name = argv[k + 1]
        elif arg.startswith("--runner="):
            name = arg.split("=", 1)[1]
    return name


def load_runner_options(argv: list[str], prog: str) -> None:
    """Register the pipeline options of the runner ``--runner`` names before flags are
    checked: a runner given by its full name (``package.module.Runner``) declares its options
    in its own module, which Beam imports only when it builds the runner, i.e. after the
    check. Refuse runners rnncast's jobs cannot run on, with the reason."""
    name = runner_name(argv)
    if not name:
        return
    short = name.rsplit(".", 1)[-1]
    if short in UNSUPPORTED_RUNNERS:
        raise JobArgumentError(f"{prog}: --runner {name}: {UNSUPPORTED_RUNNERS[short]}")
    if "." not in name:
        return  # Beam's own runners: their options are registered with Beam's
    module = name.rsplit(".", 1)[0]
    try:
        importlib.import_module(module)
    except ImportError as err:
        raise JobArgumentError(
            f"{prog}: --runner {name}: cannot import {module} ({err}); install the package "
            "that provides this runner"
        ) from err


_STREAMING_ENGINE_FIXED = False


def fix_streaming_engine() -> None:
    """Make the DirectRunner's streaming engine (``BundleBasedDirectRunner``) run each stateful
    step's queued work first in, first out, and skip queued work with nothing to do.
    Idempotent; ``rnncast stream`` calls it before it runs on that engine.

    Beam 2.77's engine runs a stateful step one bundle at a time from a queue that it pops
    from the wrong end (``executor._SerialEvaluationState``: ``append``, then ``pop``), and
    it hands each step an empty bundle every time the step's producer ran, also when the
    producer output nothing. A polling source (the stream's file watcher, whose timer fires
    every round) sends one empty bundle through the pipeline per round, and each stateful
    step runs one bundle per round. So a bundle of points queued under empty ones could wait
    forever: the stream stopped forecasting (issue 16's stall: 3 of 15 benchmark runs in
    stops 22-24). A later bundle also overtook earlier ones, so points that arrived in order
    could be consumed out of order and dead-lettered as late. Here the queue is a FIFO, and a
    ParDo's bundle with no elements and no timers to fire (a no-op for a ParDo) is not
    queued."""
    global _STREAMING_ENGINE_FIXED
    if _STREAMING_ENGINE_FIXED:
        return
    from apache_beam import __version__ as beam_version
    from apache_beam.runners.direct import executor
    from apache_beam.transforms.core import ParDo

    serial = getattr(executor, "_SerialEvaluationState", None)
    base = getattr(executor, "_TransformEvaluationState", None)
    if serial is None or base is None or not hasattr(serial, "_update_currently_evaluating"):
        raise JobArgumentError(
            f"rnncast stream: apache-beam {beam_version} has no DirectRunner queue that rnncast "
            "knows how to fix; install the version rnncast pins (pip install -e .), or run the "
            "stream with --runner PrismRunner, FlinkRunner or DataflowRunner"
        )

    def is_noop(work) -> bool:
        transform = getattr(getattr(work, "_applied_ptransform", None), "transform", None)
        bundle = getattr(work, "_input_bundle", None)
        return (
            isinstance(transform, ParDo)
            and not getattr(work, "_fired_timers", True)
            and bundle is not None
            and not bundle.has_elements()
        )

    def update_currently_evaluating(self, new_work, completed_work):
        with self._lock:
            if new_work and not is_noop(new_work):
                self.serial_queue.append(new_work)
            if completed_work:
                assert self.currently_evaluating == completed_work
                self.currently_evaluating = None
            if self.serial_queue and not self.currently_evaluating:
                next_work = self.serial_queue.popleft()
                self.currently_evaluating = next_work
                base.schedule(self, next_work)

    serial._update_currently_evaluating = update_currently_evaluating
    _STREAMING_ENGINE_FIXED = True
