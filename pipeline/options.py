"""Job flags as Beam ``PipelineOptions``, parsed strictly (an unknown flag is an error)."""

from __future__ import annotations

import argparse

from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser


class JobArgumentError(ValueError):
    """A flag problem; the message says which flag and how to fix it."""


def all_option_classes() -> list[type[PipelineOptions]]:
    """Every registered ``PipelineOptions`` class (Beam's, the runners', rnncast's)."""
    seen: dict[str, type[PipelineOptions]] = {}
    stack = list(PipelineOptions.__subclasses__())
    while stack:
        cls = stack.pop()
        seen.setdefault(f"{cls.__module__}.{cls.__qualname__}", cls)
        stack.extend(cls.__subclasses__())
    return list(seen.values())


def help_parser(
    options_class: type[PipelineOptions], prog: str, description: str
) -> argparse.ArgumentParser:
    """An argparse parser that documents ``options_class``'s flags for ``--help``."""
    parser = _BeamArgumentParser(
        prog=prog,
        description=description,
        epilog=(
            "Any standard Beam pipeline option is accepted too, e.g. --runner, "
            "--direct_num_workers, --direct_running_mode=multi_processing, and the Dataflow, "
            "Flink and Spark runner options (--project, --region, --temp_location, "
            "--flink_master, --spark_master_url, --setup_file, --sdk_container_image, ...)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        allow_abbrev=False,
    )
    options_class._add_argparse_args(parser)  # noqa: SLF001 - Beam's documented extension hook
    return parser


def parse_job_options(
    argv: list[str], options_class: type[PipelineOptions], prog: str, description: str
) -> tuple[PipelineOptions, PipelineOptions]:
    """Parse ``argv`` into ``(job options, pipeline options)``; refuse unknown flags."""
    if any(a in ("-h", "--help") for a in argv):
        help_parser(options_class, prog, description).print_help()
        raise SystemExit(0)
    parser = _BeamArgumentParser(allow_abbrev=False)
    for cls in all_option_classes():
        try:
            cls._add_argparse_args(parser)  # noqa: SLF001
        except argparse.ArgumentError:
            continue  # an options class re-declaring a flag another one declares
    _, unknown = parser.parse_known_args(argv)
    if unknown:
        raise JobArgumentError(
            f"{prog}: unknown argument(s) {unknown}; see '{prog} --help' for this job's flags "
            "and the Beam documentation for pipeline options"
        )
    pipeline_options = PipelineOptions(argv)
    job_options = pipeline_options.view_as(options_class)
    return job_options, pipeline_options
