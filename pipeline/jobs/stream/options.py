"""Flags and settings of ``rnncast stream``: :class:`StreamOptions`, :class:`StreamConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from apache_beam.io.filesystems import FileSystems

from rnncast.errors import JobArgumentError
from rnncast.pipeline.beam import flags
from rnncast.pipeline.beam.options import JobOptions, input_columns
from rnncast.pipeline.core import forecasting, streaming
from rnncast.pipeline.core.validation import InputColumns, timestamp_format_problem

DESCRIPTION = flags.STREAM.description
FORECASTS = "forecasts"
STATE = "state"
STATES = "states"
NAMESPACE = "rnncast.stream"


class StreamOptions(JobOptions):
    """Flags of ``rnncast stream`` (declared in :mod:`rnncast.pipeline.beam.flags`)."""

    FLAGS = flags.STREAM

    @classmethod
    def _add_argparse_args(cls, parser):
        flags.add_stream_flags(parser)


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
    jit_compile: bool = False
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
        jit_compile=options.jit_compile,
        columns=input_columns(options, (), prog),
    )
