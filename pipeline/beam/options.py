"""Job flags as Beam ``PipelineOptions``, parsed strictly (an unknown flag is an error)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

from rnncast.errors import JobArgumentError
from rnncast.pipeline.beam.engine import load_runner_options
from rnncast.usage import HelpFormatter, flags_of, mark_required, unknown_flags_error

if TYPE_CHECKING:
    from rnncast.pipeline.core.validation import InputColumns


class JobOptions(PipelineOptions):
    """Flags every rnncast Beam job shares; each job's options class extends it.

    (One shared base, because Beam registers every options class in one parser, where two
    classes declaring the same flag would conflict.)

    What a job's ``--help`` says of the shared flags is the job's own (Beam's parser, which
    sees every job's classes at once, cannot require a flag or word it per job):
    ``REQUIRED`` flags are listed as required (the job's config still checks them),
    ``REFUSED`` flags are not listed and are refused with the reason given, and ``HELP``
    replaces a flag's text.
    """

    REQUIRED: tuple[str, ...] = ("--input", "--output")
    REFUSED: dict[str, str] = {}
    HELP: dict[str, str] = {}

    @classmethod
    def _add_argparse_args(cls, parser):
        g = parser.add_argument_group("input and output")
        g.add_argument("--input", help="Input series: a CSV/Parquet file, a glob or a directory.")
        g.add_argument("--output", help="Output directory (local path, gs://, s3://, ...).")
        g.add_argument(
            "--horizon",
            type=int,
            default=None,
            help="H: steps ahead (each job's --help says what it means there).",
        )
        add_input_column_arguments(g)
        g.add_argument(
            "--max-rejected-fraction",
            type=float,
            default=0.01,
            help="Fail the job (nothing is committed) when more than this fraction of rows "
            "is rejected.",
        )


def add_input_column_arguments(group) -> None:
    """``--columns`` and the three renaming flags (each overrides its preset column; their
    default None means the preset's), and ``--timestamp-format``: every job that reads
    series takes these (the config's ``InputColumns.from_flags`` resolves them)."""
    from rnncast.pipeline.core.validation import COLUMN_PRESETS

    group.add_argument(
        "--columns",
        choices=tuple(COLUMN_PRESETS),
        default="rnncast",
        help="Column names preset: "
        + "; ".join(f"{k} = {'/'.join(v)}" for k, v in COLUMN_PRESETS.items())
        + " (series id/timestamp/value). --series-id-column, --timestamp-column and "
        "--value-column override its columns one by one.",
    )
    preset = "the --columns preset's"
    group.add_argument(
        "--series-id-column", default=None, help=f"Column with the id (None: {preset})."
    )
    group.add_argument(
        "--timestamp-column", default=None, help=f"Column with the time (None: {preset})."
    )
    group.add_argument(
        "--value-column", default=None, help=f"Column with the value (None: {preset})."
    )
    group.add_argument(
        "--timestamp-format",
        default=None,
        help="How text timestamps are written: a strftime format, e.g. '%%d/%%m/%%Y' (day "
        "first) or '%%d.%%m.%%Y %%H:%%M' (naive = UTC; %%z reads offsets), or epoch_s / "
        "epoch_ms (seconds / milliseconds since 1970-01-01 UTC); None: ISO-8601. Rows that "
        "do not match are rejected (invalid_timestamp); native Parquet timestamps are read as "
        "they are.",
    )


def input_columns(options, covariates: tuple[str, ...], prog: str) -> InputColumns:
    """The ``InputColumns`` of parsed job flags (:func:`add_input_column_arguments`);
    JobArgumentError naming the flag when the preset or the format is unusable."""
    from rnncast.pipeline.core.validation import InputColumns

    try:
        return InputColumns.from_flags(
            getattr(options, "columns", None),
            options.series_id_column,
            options.timestamp_column,
            options.value_column,
            covariates,
            getattr(options, "timestamp_format", None),
        )
    except ValueError as err:
        raise JobArgumentError(f"{prog}: {err}") from err


def add_max_gap_steps(group) -> None:
    """``--max-gap-steps`` (the dataset and forecast jobs read series the same way)."""
    from rnncast.pipeline.core.series import MAX_GAP_STEPS

    group.add_argument(
        "--max-gap-steps",
        type=float,
        default=MAX_GAP_STEPS,
        help="Reject points at a series' start or end that lie beyond a gap of more than "
        "this many times the series' median spacing (at most 10%% of its points per end; "
        "reason isolated_by_gap), e.g. a typo years after the last real point. 0: off.",
    )


def add_job_arguments(parser, options_class: type[PipelineOptions]) -> None:
    """Add the flags of ``options_class`` and of its rnncast parents to ``parser``."""
    for cls in reversed(options_class.mro()):
        own = "_add_argparse_args" in cls.__dict__
        if own and issubclass(cls, PipelineOptions) and cls is not PipelineOptions:
            cls._add_argparse_args(parser)  # noqa: SLF001 - Beam's extension hook


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
        formatter_class=HelpFormatter,
        allow_abbrev=False,
    )
    add_job_arguments(parser, options_class)
    describe(parser, options_class)
    return parser


def describe(parser: argparse.ArgumentParser, options_class: type[PipelineOptions]) -> None:
    """Word ``parser``'s job flags as ``options_class`` says (its ``REQUIRED``, ``REFUSED``
    and ``HELP``; see :class:`JobOptions`)."""
    for flag, text in getattr(options_class, "HELP", {}).items():
        parser._option_string_actions[flag].help = text
    for flag in getattr(options_class, "REFUSED", {}):
        parser._option_string_actions[flag].help = argparse.SUPPRESS
    mark_required(parser, getattr(options_class, "REQUIRED", ()))


def refused_flags_error(
    argv: Sequence[str], refused: dict[str, str], prog: str
) -> JobArgumentError | None:
    """The error for the first flag of ``argv`` in ``refused`` (flag -> why and what to do
    instead), or None."""
    for arg in argv:
        flag = arg.split("=", 1)[0]
        if flag in refused:
            return JobArgumentError(f"{prog}: {flag} {refused[flag]}")
    return None


def parse_job_options(
    argv: list[str],
    options_class: type[PipelineOptions],
    prog: str,
    description: str,
    command_flags: Sequence[str] = (),
) -> tuple[PipelineOptions, PipelineOptions]:
    """Parse ``argv`` into ``(job options, pipeline options)``; refuse unknown flags (with
    the closest known one, ``command_flags`` included: the flags a command parsed before
    handing the rest here) and the flags ``options_class`` refuses."""
    if any(a in ("-h", "--help") for a in argv):
        help_parser(options_class, prog, description).print_help()
        raise SystemExit(0)
    refused = refused_flags_error(argv, getattr(options_class, "REFUSED", {}), prog)
    if refused is not None:
        raise refused
    load_runner_options(argv, prog)  # a runner's own options must be known to the check
    parser = _BeamArgumentParser(allow_abbrev=False)
    add_job_arguments(parser, options_class)
    for cls in all_option_classes():
        if issubclass(cls, JobOptions):
            continue
        try:
            cls._add_argparse_args(parser)  # noqa: SLF001
        except argparse.ArgumentError:
            continue  # an options class re-declaring a flag another one declares
    _, unknown = parser.parse_known_args(argv)
    if unknown:
        raise unknown_flags_error(
            prog,
            unknown,
            [*flags_of(parser), *command_flags],
            " and the Beam documentation for pipeline options",
        )
    pipeline_options = PipelineOptions(argv)
    job_options = pipeline_options.view_as(options_class)
    return job_options, pipeline_options
