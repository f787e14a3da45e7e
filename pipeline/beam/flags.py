"""The flags of the Beam commands (``dataset``, ``forecast``, ``stream``, ``schedule-run``),
declared once, without Beam.

Each job's Beam ``PipelineOptions`` class adds its flags through these functions, and
``rnncast COMMAND --help`` builds a plain argparse parser from the same functions. Only
argparse and :mod:`rnncast.pipeline.core.choices` are imported, so the help answers before
Beam (about a second to import), pandas or TensorFlow would load.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from rnncast.pipeline.core.choices import (
    COLUMN_PRESETS,
    EMIT_MODES,
    FILL_METHODS,
    MAX_GAP_STEPS,
    MOSTLY_FILLED,
    SCALING_METHODS,
)
from rnncast.usage import HelpFormatter, mark_required

BEAM_OPTIONS_EPILOG = (
    "Any standard Beam pipeline option is accepted too, e.g. --runner, --direct_num_workers, "
    "--direct_running_mode=multi_processing, and the Dataflow, Flink and Spark runner options "
    "(--project, --region, --temp_location, --flink_master, --spark_master_url, --setup_file, "
    "--sdk_container_image, ...); '{prog} --help-beam' lists them all."
)
HELP_BEAM = "--help-beam"


def add_shared_flags(parser: argparse.ArgumentParser) -> None:
    """The flags every rnncast Beam job shares (``JobOptions``)."""
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


def add_max_gap_steps(group) -> None:
    """``--max-gap-steps`` (the dataset and forecast jobs read series the same way)."""
    group.add_argument(
        "--max-gap-steps",
        type=float,
        default=MAX_GAP_STEPS,
        help="Reject points at a series' start or end that lie beyond a gap of more than "
        "this many times the series' median spacing (at most 10%% of its points per end; "
        "reason isolated_by_gap), e.g. a typo years after the last real point. 0: off.",
    )


def add_dataset_flags(parser: argparse.ArgumentParser) -> None:
    """``rnncast dataset``'s own flags (``DatasetOptions``)."""
    g = parser.add_argument_group("rnncast dataset")
    g.add_argument("--num-steps", type=int, default=64, help="T: time steps per chunk.")
    g.add_argument("--batch-size", type=int, default=32, help="B: lanes per batch.")
    g.add_argument(
        "--freq",
        default=None,
        help="Series frequency as a pandas offset alias (h, D, 15min, MS, ...); inferred "
        "from the data when omitted.",
    )
    g.add_argument(
        "--covariates",
        nargs="+",
        default=[],
        help="Numeric covariate columns to use as model inputs (space or comma separated).",
    )
    split = g.add_mutually_exclusive_group()
    split.add_argument(
        "--validation-fraction",
        type=float,
        default=0.1,
        help="Fraction of each series (its latest points) held out for validation.",
    )
    split.add_argument(
        "--validation-start",
        default=None,
        help="Timestamp (ISO-8601, UTC) from which points belong to validation; overrides "
        "--validation-fraction.",
    )
    g.add_argument(
        "--validation-warmup-steps",
        type=int,
        default=None,
        help="Training points re-read before each series' validation part so the model can "
        "warm its state up (their targets are masked). Default: 4 * num_steps.",
    )
    g.add_argument(
        "--layout",
        choices=("stateful", "windows"),
        default="stateful",
        help="stateful: lanes continue series from batch to batch (truncated BPTT); "
        "windows: independent windows, shuffled deterministically.",
    )
    g.add_argument(
        "--warmup-chunks",
        type=int,
        default=0,
        help="Stateful layout: chunks re-read (targets masked) before a series segment "
        "that starts mid-series on a new lane.",
    )
    g.add_argument(
        "--max-batches-per-stream",
        type=int,
        default=256,
        help="Stateful layout: upper bound on batches per stream file; more data gives "
        "more streams (files), written in parallel.",
    )
    g.add_argument(
        "--window-stride",
        type=int,
        default=None,
        help="Windows layout: steps between window starts (default num_steps: no overlap).",
    )
    g.add_argument(
        "--num-shards",
        type=int,
        default=None,
        help="Windows layout: output files per split (default: about 8192 windows each).",
    )
    g.add_argument(
        "--fill",
        choices=FILL_METHODS,
        default="ffill",
        help="How missing grid points are filled (they are flagged observed = 0).",
    )
    g.add_argument(
        "--scaling",
        choices=SCALING_METHODS,
        default="standard",
        help="Per-series scaling from the training part: standard (mean/std), mean "
        "(mean absolute value) or none.",
    )
    g.add_argument(
        "--calendar-features",
        choices=("auto", "none"),
        default="auto",
        help="auto: sine/cosine hour-of-day, day-of-week, day-of-year as the frequency "
        "allows; none: no calendar features.",
    )
    add_max_gap_steps(g)
    g.add_argument(
        "--max-filled-fraction",
        type=float,
        default=1.0,
        help="Fail the job (nothing is committed) when a series is more than this fraction "
        "filled points after regularisation, e.g. a weekly series in a daily file. Series "
        f"over {MOSTLY_FILLED} are named in the summary whatever this is; 1.0: never fail.",
    )
    g.add_argument("--seed", type=int, default=0, help="Seed of the deterministic shuffles.")


def add_forecast_flags(parser: argparse.ArgumentParser) -> None:
    """``rnncast forecast``'s own flags (``ForecastOptions``)."""
    g = parser.add_argument_group("rnncast forecast")
    g.add_argument("--model", help="Model: a MODEL_DIR of rnncast train, or its MODEL_DIR/export.")
    g.add_argument(
        "--state-in",
        default=None,
        help="State directory of an earlier run (--state-out) to continue from.",
    )
    g.add_argument(
        "--state-out",
        default=None,
        help="Directory to write each series' state to (committed atomically).",
    )
    g.add_argument(
        "--as-of",
        default=None,
        help="Ignore points after this timestamp (ISO-8601, UTC): forecast as of then.",
    )
    g.add_argument(
        "--lanes", type=int, default=256, help="Series run together as lanes of one model call."
    )
    add_max_gap_steps(g)
    add_jit_compile(g)


def add_jit_compile(group) -> None:
    """``--jit-compile`` of the jobs that run the model (forecast, stream)."""
    group.add_argument(
        "--jit-compile",
        action="store_true",
        default=False,
        help="Run the model compiled with XLA: about a second to compile each new call "
        "shape (lanes and steps padded to powers of two), then faster calls on CPU "
        "(BENCHMARKS.md); forecasts differ from the plain run in the last bits.",
    )


def add_stream_flags(parser: argparse.ArgumentParser) -> None:
    """``rnncast stream``'s own flags (``StreamOptions``)."""
    g = parser.add_argument_group("rnncast stream")
    g.add_argument("--model", help="Model: a MODEL_DIR of rnncast train, or its MODEL_DIR/export.")
    g.add_argument(
        "--input-pattern",
        default=None,
        help="Glob of input files (CSV/Parquet) to watch: every new matching file is read "
        "once. Write files under another name and rename them into place.",
    )
    g.add_argument(
        "--pubsub-subscription",
        default=None,
        help="Read messages (JSON lines or CSV with a header) from this Pub/Sub "
        "subscription (projects/P/subscriptions/S) instead of files.",
    )
    g.add_argument(
        "--pubsub-timestamp-attribute",
        default=None,
        help="Pub/Sub message attribute holding the event time (default: publish time).",
    )
    g.add_argument(
        "--kafka-bootstrap-servers",
        default=None,
        help="Read messages from Kafka (cross-language transform; needs a runner that "
        "supports it, e.g. Flink or Dataflow) at these servers.",
    )
    g.add_argument("--kafka-topic", default=None, help="Kafka topic to read.")
    g.add_argument(
        "--state-in",
        default=None,
        help="State directory of a batch run (--state-out) or of a stream snapshot to "
        "continue from; series not in it are cold-started.",
    )
    g.add_argument(
        "--emit",
        choices=EMIT_MODES,
        default="every",
        help="every: write a forecast each time a series advances; window: write only "
        "each series' latest forecast when the watermark passes the end of the window.",
    )
    g.add_argument(
        "--window",
        default="1h",
        help="Output window (event time): forecast and dead-letter files are written per "
        "window, and state snapshots are taken at window ends.",
    )
    g.add_argument(
        "--allowed-lateness",
        default="0s",
        help="How long after the watermark passes a point it may still arrive out of order "
        "and be consumed in timestamp order; later points are dead letters ('late').",
    )
    g.add_argument(
        "--dedupe-horizon",
        default="1d",
        help="Exact repeats of consumed points within this event time of a series' last "
        "point are ignored as 'duplicate'; older repeats cannot be told from late points.",
    )
    g.add_argument(
        "--shards",
        type=int,
        default=16,
        help="Series are keyed by a stable hash of their id into this many shards; the "
        "series of a shard due at one time advance together in one model call. More "
        "shards spread a runner's work over more keys; fewer make larger model calls.",
    )
    g.add_argument(
        "--poll-interval",
        type=float,
        default=5.0,
        help="Seconds between two matches of --input-pattern.",
    )
    g.add_argument(
        "--stop-after-seconds",
        type=float,
        default=None,
        help="For tests and bounded runs: stop watching files after this many seconds, "
        "consume what was read, write the outputs and exit.",
    )
    g.add_argument(
        "--max-files",
        type=int,
        default=None,
        help="For tests and bounded runs (DirectRunner file watching): stop after this many "
        "files were read, then drain and exit.",
    )
    add_jit_compile(g)


def _no_flags(parser: argparse.ArgumentParser) -> None:
    """A command with only the shared flags."""


@dataclass(frozen=True)
class CommandFlags:
    """A Beam command's flags: the shared ones plus ``add``'s, and what its ``--help`` says of
    the shared ones (Beam's parser sees every job's options classes at once, so it cannot
    require a flag or word it per job): ``required`` flags are listed as required (the job's
    config still checks them), ``refused`` flags are not listed and are refused with the
    reason given, and ``help`` replaces a flag's text."""

    prog: str
    description: str
    add: Callable[[argparse.ArgumentParser], None] = _no_flags
    required: tuple[str, ...] = ("--input", "--output")
    refused: Mapping[str, str] = field(default_factory=dict)
    help: Mapping[str, str] = field(default_factory=dict)

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        """Add the shared flags and the command's own to ``parser``."""
        add_shared_flags(parser)
        self.add(parser)

    def describe(self, parser: argparse.ArgumentParser) -> None:
        """Word ``parser``'s flags (added by :meth:`add_to`) as this command says."""
        for flag, text in self.help.items():
            parser._option_string_actions[flag].help = text
        for flag in self.refused:
            parser._option_string_actions[flag].help = argparse.SUPPRESS
        mark_required(parser, self.required)

    def help_parser(
        self, prog: str | None = None, description: str | None = None
    ) -> argparse.ArgumentParser:
        """A plain argparse parser that documents this command's flags (``--help``); Beam's
        own options are named in the epilog (``--help-beam`` lists them)."""
        prog = prog or self.prog
        parser = argparse.ArgumentParser(
            prog=prog,
            description=self.description if description is None else description,
            epilog=BEAM_OPTIONS_EPILOG.format(prog=prog),
            formatter_class=HelpFormatter,
            allow_abbrev=False,
        )
        self.add_to(parser)
        self.describe(parser)
        return parser


# The flags every Beam job shares, as a command of its own (the commands that run jobs and
# check leftover flags against them: demo, evaluate).
SHARED = CommandFlags(prog="rnncast", description="")
DATASET = CommandFlags(
    prog="rnncast dataset",
    description="Read long-format series (CSV/Parquet), validate them, cut them into chunks of "
    "--num-steps, pack the chunks into stateful batches of --batch-size lanes (or independent "
    "windows), and write GZIP TFRecords plus metadata.json into --output. A Beam job: runs on "
    "DirectRunner by default and on any Beam runner given with --runner.",
    add=add_dataset_flags,
    help={"--horizon": "H: steps ahead the dataset's targets cover (default 24)."},
)
FORECAST = CommandFlags(
    prog="rnncast forecast",
    description="Apply a model exported by 'rnncast train' to long-format series (CSV/Parquet): "
    "an H-step point and quantile forecast per series, written as Parquet into --output; "
    "optionally the per-series RNN state (--state-out) so the next run (--state-in) reads only "
    "new points. A Beam job: DirectRunner by default, any runner with --runner.",
    add=add_forecast_flags,
    required=("--model", "--input", "--output"),
    help={
        "--horizon": "H: steps ahead to forecast, at most the model's horizon (default: all of it)."
    },
)
STREAM = CommandFlags(
    prog="rnncast stream",
    description="Forecast continuously from an unbounded stream of points: new CSV/Parquet "
    "files matching --input-pattern (or Pub/Sub / Kafka messages) are validated like 'rnncast "
    "forecast' input, each series' RNN state is advanced over its new points in timestamp "
    "order (bootstrapped from a batch --state-out with --state-in, or cold-started), and "
    "forecasts are written per window under --output, with dead letters and periodic state "
    "snapshots. A Beam streaming job: the DirectRunner's streaming engine by default, any "
    "streaming runner with --runner.",
    add=add_stream_flags,
    required=("--model", "--output"),
    refused={
        "--input": "is for the batch jobs; watch files with --input-pattern GLOB",
        "--max-rejected-fraction": "does not apply to a stream: it refuses no run, rejected "
        "points go to the dead letters of their window; drop the flag",
    },
    help={
        "--horizon": "H: steps ahead in each forecast, at most the model's horizon (default: "
        "all of it).",
        "--output": "Output directory: forecasts and dead letters per window, state snapshots.",
    },
)


def schedule_parser() -> argparse.ArgumentParser:
    """The parser of ``rnncast schedule-run``'s own flags (the rest are the forecast job's
    and Beam's)."""
    parser = argparse.ArgumentParser(
        prog="rnncast schedule-run",
        allow_abbrev=False,
        description="One scheduled batch-forecast period: forecast from the latest committed "
        "state into dated state and forecast directories under --root, then advance the "
        "LATEST pointer atomically. Safe to retry after a crash.",
        epilog="Other flags are the forecast job's (see 'rnncast forecast --help'), e.g. "
        "--horizon H (steps ahead, at most the model's horizon; default all of it) and "
        "--lanes, and Beam pipeline options.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--model", help="Model: a MODEL_DIR of rnncast train, or its export.")
    parser.add_argument("--input", help="New points (CSV/Parquet, glob, dir).")
    parser.add_argument("--root", help="Root of the dated state and forecasts.")
    mark_required(parser, ["--model", "--input", "--root"])
    parser.add_argument(
        "--run-date",
        default=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
        help="Period of this run (sortable, e.g. 2026-11-29 or 2026-11-29T06); default today "
        "(UTC).",
    )
    return parser
