"""Job flags as Beam ``PipelineOptions``, parsed strictly (an unknown flag is an error)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

from rnncast.errors import JobArgumentError
from rnncast.pipeline.beam import flags
from rnncast.pipeline.beam.engine import load_runner_options
from rnncast.pipeline.beam.flags import CommandFlags
from rnncast.usage import HelpFormatter, flags_of, unknown_flags_error

if TYPE_CHECKING:
    from rnncast.pipeline.core.validation import InputColumns


class JobOptions(PipelineOptions):
    """Flags every rnncast Beam job shares; each job's options class extends it.

    (One shared base, because Beam registers every options class in one parser, where two
    classes declaring the same flag would conflict.) The flags themselves are declared in
    :mod:`rnncast.pipeline.beam.flags`, without Beam, where ``--help`` reads them too;
    ``FLAGS`` is the command's :class:`~rnncast.pipeline.beam.flags.CommandFlags` (what it
    requires, refuses and words its own way).
    """

    FLAGS: CommandFlags = flags.SHARED

    @classmethod
    def _add_argparse_args(cls, parser):
        flags.add_shared_flags(parser)


def input_columns(options, covariates: tuple[str, ...], prog: str) -> InputColumns:
    """The ``InputColumns`` of parsed job flags (``flags.add_input_column_arguments``);
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


def beam_parser(
    options_class: type[JobOptions], prog: str, description: str
) -> argparse.ArgumentParser:
    """The command's flags followed by every Beam pipeline option (its own and those of the
    runners it knows): what the command accepts, and what ``--help-beam`` lists."""
    parser = _BeamArgumentParser(
        prog=prog, description=description, formatter_class=HelpFormatter, allow_abbrev=False
    )
    add_job_arguments(parser, options_class)
    for cls in all_option_classes():
        if issubclass(cls, JobOptions):
            continue
        try:
            cls._add_argparse_args(parser)  # noqa: SLF001
        except argparse.ArgumentError:
            continue  # an options class re-declaring a flag another one declares
    return parser


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
        options_class.FLAGS.help_parser(prog, description).print_help()
        raise SystemExit(0)
    if flags.HELP_BEAM in argv:
        load_runner_options(argv, prog)
        parser = beam_parser(options_class, prog, description)
        options_class.FLAGS.describe(parser)
        parser.print_help()
        raise SystemExit(0)
    refused = refused_flags_error(argv, options_class.FLAGS.refused, prog)
    if refused is not None:
        raise refused
    load_runner_options(argv, prog)  # a runner's own options must be known to the check
    parser = beam_parser(options_class, prog, description)
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
