"""Flags and settings of ``rnncast stream``: :class:`StreamOptions`, :class:`StreamConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from apache_beam.io.filesystems import FileSystems

from rnncast.errors import JobArgumentError
from rnncast.pipeline.beam.options import JobOptions, input_columns
from rnncast.pipeline.core import forecasting, streaming
from rnncast.pipeline.core.validation import InputColumns, timestamp_format_problem

DESCRIPTION = (
    "Forecast continuously from an unbounded stream of points: new CSV/Parquet files matching "
    "--input-pattern (or Pub/Sub / Kafka messages) are validated like 'rnncast forecast' input, "
    "each series' RNN state is advanced over its new points in timestamp order (bootstrapped "
    "from a batch --state-out with --state-in, or cold-started), and forecasts are written per "
    "window under --output, with dead letters and periodic state snapshots. A Beam streaming "
    "job: the DirectRunner's streaming engine by default, any streaming runner with --runner."
)
FORECASTS = "forecasts"
STATE = "state"
STATES = "states"
EMIT_MODES = ("every", "window")
NAMESPACE = "rnncast.stream"


class StreamOptions(JobOptions):
    """Flags of ``rnncast stream``."""

    REQUIRED = ("--model", "--output")
    REFUSED = {
        "--input": "is for the batch jobs; watch files with --input-pattern GLOB",
        "--max-rejected-fraction": "does not apply to a stream: it refuses no run, rejected "
        "points go to the dead letters of their window; drop the flag",
    }
    HELP = {
        "--horizon": "H: steps ahead in each forecast, at most the model's horizon (default: "
        "all of it).",
        "--output": "Output directory: forecasts and dead letters per window, state snapshots.",
    }

    @classmethod
    def _add_argparse_args(cls, parser):
        g = parser.add_argument_group("rnncast stream")
        g.add_argument(
            "--model", help="Model: a MODEL_DIR of rnncast train, or its MODEL_DIR/export."
        )
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


@dataclass(frozen=True)
class StreamConfig:
    """Validated, picklable settings of one stream."""

    model: str
    output: str
    input_pattern: str | None = None
    pubsub_subscription: str | None = None
    pubsub_timestamp_attribute: str | None = None
    kafka_bootstrap_servers: str | None = None
    kafka_topic: str | None = None
    state_in: str | None = None
    horizon: int | None = None
    emit: str = "every"
    window_us: int = 3_600_000_000
    lateness_us: int = 0
    dedupe_horizon_ns: int = 86_400 * 10**9
    shards: int = 16
    poll_interval: float = 5.0
    stop_after_seconds: float | None = None
    max_files: int | None = None
    columns: InputColumns = field(default_factory=InputColumns)

    @property
    def state_dir(self) -> str:
        return FileSystems.join(self.output, STATE)

    def check(self, model: forecasting.ModelInfo) -> StreamConfig:
        """This config, checked against ``model`` and completed from it (the horizon when
        unset, the model's covariates as input columns); JobArgumentError names the flag."""
        prog = "rnncast stream"
        if not self.model:
            raise JobArgumentError(f"{prog}: --model is required")
        if not self.output:
            raise JobArgumentError(f"{prog}: --output is required")
        sources = [
            self.input_pattern,
            self.pubsub_subscription,
            self.kafka_bootstrap_servers or self.kafka_topic,
        ]
        if sum(bool(s) for s in sources) != 1:
            raise JobArgumentError(
                f"{prog}: give exactly one source: --input-pattern GLOB, --pubsub-subscription "
                "SUB or --kafka-bootstrap-servers HOSTS --kafka-topic TOPIC"
            )
        if bool(self.kafka_bootstrap_servers) != bool(self.kafka_topic):
            raise JobArgumentError(
                f"{prog}: Kafka needs both --kafka-bootstrap-servers and --kafka-topic"
            )
        if self.horizon is not None and not 1 <= self.horizon <= model.horizon:
            raise JobArgumentError(f"{prog}: --horizon must be in 1..{model.horizon} (the model's)")
        if self.poll_interval <= 0:
            raise JobArgumentError(f"{prog}: --poll-interval must be > 0 seconds")
        if self.max_files is not None and self.max_files < 1:
            raise JobArgumentError(f"{prog}: --max-files must be >= 1")
        if self.shards < 1:
            raise JobArgumentError(f"{prog}: --shards must be >= 1")
        if self.window_us <= 0:
            raise JobArgumentError(f"{prog}: --window must be positive, e.g. 1h")
        format_problem = timestamp_format_problem(self.columns.timestamp_format)
        if format_problem:
            raise JobArgumentError(f"{prog}: {format_problem}")
        return replace(
            self,
            output=self.output.rstrip("/"),
            horizon=self.horizon or model.horizon,
            columns=replace(self.columns, covariates=model.covariates),
        )


def config_from_options(options: StreamOptions) -> StreamConfig:
    """The config the flags describe (checked against the model by :meth:`StreamConfig.check`)."""
    prog = "rnncast stream"
    try:
        window = streaming.parse_duration(options.window, "--window")
        lateness = streaming.parse_duration(options.allowed_lateness, "--allowed-lateness")
        dedupe = streaming.parse_duration(options.dedupe_horizon, "--dedupe-horizon")
    except ValueError as err:
        raise JobArgumentError(f"{prog}: {err}") from err
    return StreamConfig(
        model=options.model,
        output=options.output,
        input_pattern=options.input_pattern,
        pubsub_subscription=options.pubsub_subscription,
        pubsub_timestamp_attribute=options.pubsub_timestamp_attribute,
        kafka_bootstrap_servers=options.kafka_bootstrap_servers,
        kafka_topic=options.kafka_topic,
        state_in=options.state_in,
        horizon=options.horizon,
        emit=options.emit,
        window_us=window,
        lateness_us=lateness,
        dedupe_horizon_ns=dedupe * 1000,
        shards=options.shards,
        poll_interval=options.poll_interval,
        stop_after_seconds=options.stop_after_seconds,
        max_files=options.max_files,
        columns=input_columns(options, (), prog),
    )
