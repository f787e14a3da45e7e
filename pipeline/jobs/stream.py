"""``rnncast stream``: forecasts from an unbounded stream of points (Beam streaming).

New input files matching ``--input-pattern`` (or messages from Pub/Sub or Kafka) are validated
like the batch jobs' input; points are keyed by ``series_id``; a stateful step holds per series
the RNN state, the last consumed timestamp and the scaling (bootstrapped from a batch run's
``--state-out``, or cold-started), buffers points until the watermark (plus
``--allowed-lateness``), advances the state over them in timestamp order with the exported
model's ``step`` signature and emits a forecast. Forecasts are written as Parquet files per
window, dead letters as JSON lines, and state snapshots in the ``--state-out`` format (a batch
``rnncast forecast --state-in`` continues from them).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

import apache_beam as beam
import pandas as pd
import pyarrow.parquet as pq
from apache_beam.coders import BooleanCoder, Coder, StrUtf8Coder, VarIntCoder
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.transforms import userstate
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from rnncast.errors import JobArgumentError
from rnncast.pipeline.beam.options import JobOptions, parse_job_options
from rnncast.pipeline.beam.transforms import REJECTED
from rnncast.pipeline.core import forecasting, streaming
from rnncast.pipeline.core.deadletters import rejected_observations, rejected_payload
from rnncast.pipeline.core.series import combine_parts
from rnncast.pipeline.core.validation import InputColumns
from rnncast.pipeline.io import commit, model_loader, observations
from rnncast.pipeline.io.commit import parquet_bytes, write_parquet
from rnncast.pipeline.io.locations import check_output_directory
from rnncast.pipeline.io.state_store import load_state_files, state_metadata

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

    @classmethod
    def _add_argparse_args(cls, parser):
        g = parser.add_argument_group("rnncast stream")
        g.add_argument("--model", help="Export directory (MODEL_DIR/export of rnncast train).")
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
    horizon: int = 1
    emit: str = "every"
    window_us: int = 3_600_000_000
    lateness_us: int = 0
    dedupe_horizon_ns: int = 86_400 * 10**9
    poll_interval: float = 5.0
    stop_after_seconds: float | None = None
    max_files: int | None = None
    columns: InputColumns = field(default_factory=InputColumns)

    @property
    def state_dir(self) -> str:
        return FileSystems.join(self.output, STATE)


def config_from_options(options: StreamOptions, model: forecasting.ModelInfo) -> StreamConfig:
    prog = "rnncast stream"
    if not options.output:
        raise JobArgumentError(f"{prog}: --output is required")
    if options.input:
        raise JobArgumentError(
            f"{prog}: --input is for the batch jobs; watch files with --input-pattern GLOB"
        )
    sources = [
        options.input_pattern,
        options.pubsub_subscription,
        options.kafka_bootstrap_servers or options.kafka_topic,
    ]
    if sum(bool(s) for s in sources) != 1:
        raise JobArgumentError(
            f"{prog}: give exactly one source: --input-pattern GLOB, --pubsub-subscription SUB "
            "or --kafka-bootstrap-servers HOSTS --kafka-topic TOPIC"
        )
    if bool(options.kafka_bootstrap_servers) != bool(options.kafka_topic):
        raise JobArgumentError(
            f"{prog}: Kafka needs both --kafka-bootstrap-servers and --kafka-topic"
        )
    if options.horizon is not None and not 1 <= options.horizon <= model.horizon:
        raise JobArgumentError(f"{prog}: --horizon must be in 1..{model.horizon} (the model's)")
    if options.poll_interval <= 0:
        raise JobArgumentError(f"{prog}: --poll-interval must be > 0 seconds")
    if options.max_files is not None and options.max_files < 1:
        raise JobArgumentError(f"{prog}: --max-files must be >= 1")
    try:
        window = streaming.parse_duration(options.window, "--window")
        lateness = streaming.parse_duration(options.allowed_lateness, "--allowed-lateness")
        dedupe = streaming.parse_duration(options.dedupe_horizon, "--dedupe-horizon")
    except ValueError as err:
        raise JobArgumentError(f"{prog}: {err}") from err
    if window <= 0:
        raise JobArgumentError(f"{prog}: --window must be positive, e.g. 1h")
    return StreamConfig(
        model=options.model,
        output=options.output.rstrip("/"),
        input_pattern=options.input_pattern,
        pubsub_subscription=options.pubsub_subscription,
        pubsub_timestamp_attribute=options.pubsub_timestamp_attribute,
        kafka_bootstrap_servers=options.kafka_bootstrap_servers,
        kafka_topic=options.kafka_topic,
        state_in=options.state_in,
        horizon=options.horizon or model.horizon,
        emit=options.emit,
        window_us=window,
        lateness_us=lateness,
        dedupe_horizon_ns=dedupe * 1000,
        poll_interval=options.poll_interval,
        stop_after_seconds=options.stop_after_seconds,
        max_files=options.max_files,
        columns=InputColumns(
            options.series_id_column,
            options.timestamp_column,
            options.value_column,
            model.covariates,
        ),
    )


# --- coders of the per-series state (plain bytes, no pickle) ------------------------------


class SeriesStateCoder(Coder):
    """:class:`~rnncast.pipeline.core.forecasting.SeriesState` as plain arrays (see
    :mod:`~rnncast.pipeline.core.streaming`)."""

    def encode(self, value):
        return streaming.encode_state(value)

    def decode(self, encoded):
        return streaming.decode_state(encoded)

    def is_deterministic(self):
        return True


class PendingCoder(Coder):
    """A buffered :class:`~rnncast.pipeline.core.streaming.Pending` part with its arrival time."""

    def encode(self, value):
        return streaming.encode_part(value.part, value.arrival)

    def decode(self, encoded):
        part, arrival = streaming.decode_part(encoded)
        return streaming.Pending(arrival, part)

    def is_deterministic(self):
        return True


class RecentCoder(Coder):
    """Hashes of recently consumed points (:class:`~rnncast.pipeline.core.streaming.Recent`)."""

    def encode(self, value):
        return streaming.encode_recent(value)

    def decode(self, encoded):
        return streaming.decode_recent(encoded)

    def is_deterministic(self):
        return True


# --- sources ---------------------------------------------------------------------------


class _WatchFilesFn(beam.DoFn):
    """Poll a glob and emit each new file once (one key, a self-renewing timer).

    The Python DirectRunner's streaming engine cannot run splittable DoFns
    (``fileio.MatchContinuously``), so on it this loop does the matching. The engine runs one
    bundle at a time, and each round of firings costs it tens of milliseconds of CPU: while the
    other steps of this process are busy, a firing waits only ``TICK`` seconds; when they have
    been idle for ``IDLE`` seconds it sleeps until the next match is due."""

    TICK = 0.02
    IDLE = 1.0

    SEEN = userstate.BagStateSpec("seen", StrUtf8Coder())
    STARTED = userstate.ReadModifyWriteStateSpec("started", VarIntCoder())
    POLL = userstate.TimerSpec("poll", TimeDomain.WATERMARK)

    def __init__(self, pattern, poll_interval, stop_after_seconds, max_files):
        self._pattern = pattern
        self._interval = poll_interval
        self._stop_after = stop_after_seconds
        self._max_files = max_files

    def process(
        self,
        element,
        started=beam.DoFn.StateParam(STARTED),
        poll=beam.DoFn.TimerParam(POLL),
    ):
        started.write(int(time.time()))
        poll.set(Timestamp(0))
        print(f"rnncast stream: watching {self._pattern}", file=sys.stderr, flush=True)

    @userstate.on_timer(POLL)
    def on_poll(
        self,
        seen=beam.DoFn.StateParam(SEEN),
        started=beam.DoFn.StateParam(STARTED),
        poll=beam.DoFn.TimerParam(POLL),
    ):
        wait = _LAST_MATCH.get(self._pattern, 0.0) + self._interval - time.monotonic()
        if wait > 0:
            busy = time.monotonic() - _ACTIVITY[0] < self.IDLE
            time.sleep(self.TICK if busy else wait)
            poll.set(Timestamp(0))
            return
        _LAST_MATCH[self._pattern] = time.monotonic()
        known = set(seen.read())
        new = [p for p in _match(self._pattern) if p not in known]
        if self._max_files is not None:
            new = new[: max(self._max_files - len(known), 0)]
        for path in new:
            seen.add(path)
            _active()
            yield TimestampedValue(path, Timestamp.now())
        elapsed = time.time() - started.read()
        done = (self._stop_after is not None and elapsed >= self._stop_after) or (
            self._max_files is not None and len(known) + len(new) >= self._max_files
        )
        if done:
            print(
                f"rnncast stream: stopped watching after {len(known) + len(new)} file(s)",
                file=sys.stderr,
                flush=True,
            )
            return
        poll.set(Timestamp(0))


# The DirectRunner file watcher's pacing, per process (the engine makes a DoFn instance per
# bundle, so instance attributes do not last): when a step last did work, when a glob was
# last matched.
_ACTIVITY = [0.0]
_LAST_MATCH: dict[str, float] = {}


def _active() -> None:
    _ACTIVITY[0] = time.monotonic()


def _match(pattern: str) -> list[str]:
    try:
        matches = FileSystems.match([pattern])[0].metadata_list
    except Exception:  # noqa: BLE001 - nothing there yet (Beam raises BeamIOError)
        return []
    return sorted(m.path for m in matches if not os.path.basename(m.path).startswith((".", "_")))


class WatchFiles(beam.PTransform):
    """New files matching a glob, each once, with its match time as event time: a polling
    loop on the DirectRunner, ``fileio.MatchContinuously`` on other runners."""

    def __init__(self, config: StreamConfig, direct: bool):
        super().__init__()
        self._config = config
        self._direct = direct

    def expand(self, pbegin):
        c = self._config
        if self._direct:
            return (
                pbegin
                | "Start" >> beam.Create([("watch", None)])
                | "Poll"
                >> beam.ParDo(
                    _WatchFilesFn(
                        c.input_pattern, c.poll_interval, c.stop_after_seconds, c.max_files
                    )
                )
            )
        from apache_beam.io import fileio

        stop = (
            Timestamp.now() + c.stop_after_seconds
            if c.stop_after_seconds is not None
            else fileio.MAX_TIMESTAMP
        )
        return (
            pbegin
            | "Match"
            >> fileio.MatchContinuously(
                c.input_pattern, interval=c.poll_interval, stop_timestamp=stop
            )
            | "Paths" >> beam.Map(lambda metadata: metadata.path)
        )


class _ReadFn(beam.DoFn):
    """Validate one file (a path) or one message (``(source, payload)``) like the batch jobs;
    output ``(series_id, SeriesPart)`` and dead-letter frames."""

    def __init__(self, columns: InputColumns, messages: bool):
        self._columns = columns
        self._messages = messages
        self._rows = Metrics.counter(NAMESPACE, "rows_read")
        self._files = Metrics.counter(NAMESPACE, "files_read")

    def process(self, element):
        _active()
        if self._messages:
            source, payload = element
            result = streaming.parse_message(payload, self._columns, source)
        else:
            result = observations.read_file(element, self._columns)
            self._files.inc()
        self._rows.inc(result.rows_read)
        for frame in result.rejected:
            yield beam.pvalue.TaggedOutput(REJECTED, frame)
        yield from result.parts


class ReadPoints(beam.PTransform):
    """Files (paths) or messages (``(source, payload bytes)``) → ``(series_id, SeriesPart)``
    main output and ``rejected`` dead-letter frames."""

    def __init__(self, columns: InputColumns, messages: bool):
        super().__init__()
        self._columns = columns
        self._messages = messages

    def expand(self, arrivals):
        read = arrivals | "Validate" >> beam.ParDo(
            _ReadFn(self._columns, self._messages)
        ).with_outputs(REJECTED, main="points")
        return {"points": read.points, REJECTED: read[REJECTED]}


# --- the stateful step ---------------------------------------------------------------------


class _Bootstrap:
    """The series states of ``--state-in``, loaded once per worker process."""

    def __init__(self, files: tuple[str, ...], model: forecasting.ModelInfo):
        self.states: dict[str, forecasting.SeriesState] = {}
        for path in files:
            with FileSystems.open(path) as source:
                frame = pq.read_table(io.BytesIO(source.read())).to_pandas()
            for state in forecasting.states_from_frame(frame, model):
                self.states[state.series_id] = state


_PROCESS_CACHE: dict = {}
_PROCESS_CACHE_LOCK = threading.Lock()


def _per_process(key: tuple, factory):
    """One object per worker process and key, kept for the life of the process.

    (Not ``shared.Shared``: the DirectRunner's streaming engine makes a DoFn instance per
    bundle, so a shared handle is released between bundles and the model was reloaded
    for every bundle, ~0.5 s each.)"""
    with _PROCESS_CACHE_LOCK:
        if key not in _PROCESS_CACHE:
            _PROCESS_CACHE[key] = factory()
        return _PROCESS_CACHE[key]


def _bootstrap_states(files, model) -> _Bootstrap:
    files = tuple(files)
    return _per_process(("bootstrap", model.fingerprint, files), lambda: _Bootstrap(files, model))


def _window_end(micros: int, window: int) -> int:
    """The last microsecond of the fixed window holding ``micros``."""
    return (micros // window + 1) * window - 1


class _AdvanceSeriesFn(beam.DoFn):
    """Per series: buffer arriving points, consume them in timestamp order when the watermark
    passes them (plus the allowed lateness), advance the RNN state and emit forecasts."""

    SAVED = userstate.ReadModifyWriteStateSpec("saved", SeriesStateCoder())
    STARTED = userstate.ReadModifyWriteStateSpec("started", BooleanCoder())
    RECENT = userstate.ReadModifyWriteStateSpec("recent", RecentCoder())
    PENDING = userstate.BagStateSpec("pending", PendingCoder())
    WAITING = userstate.BagStateSpec("waiting", PendingCoder())
    NEXT = userstate.ReadModifyWriteStateSpec("next", VarIntCoder())
    LATEST = userstate.ReadModifyWriteStateSpec("latest", SeriesStateCoder())
    LATEST_STATUS = userstate.ReadModifyWriteStateSpec("latest_status", StrUtf8Coder())
    EMIT_AT = userstate.ReadModifyWriteStateSpec("emit_at", VarIntCoder())
    FLUSH = userstate.TimerSpec("flush", TimeDomain.WATERMARK)
    EMIT = userstate.TimerSpec("emit", TimeDomain.WATERMARK)

    def __init__(self, config: StreamConfig, model: forecasting.ModelInfo, state_files):
        self._config = config
        self._model = model
        self._state_files = tuple(state_files)
        self._consumed = Metrics.counter(NAMESPACE, "points_consumed")
        self._forecasts = Metrics.counter(NAMESPACE, "forecasts")
        self._model_calls = Metrics.counter(NAMESPACE, "model_calls")

    def setup(self):
        model = self._model
        self._loaded = _per_process(
            ("model", model.path, model.fingerprint), lambda: model_loader.worker_model(model)
        )
        self._bootstrap = _bootstrap_states(self._state_files, self._model)

    def _saved(self, series_id, saved, started):
        if not started.read():
            started.write(True)
            initial = self._bootstrap.states.get(series_id)
            if initial is not None:
                saved.write(initial)
            return initial
        return saved.read()

    def process(
        self,
        element,
        timestamp=beam.DoFn.TimestampParam,
        saved=beam.DoFn.StateParam(SAVED),
        started=beam.DoFn.StateParam(STARTED),
        recent=beam.DoFn.StateParam(RECENT),
        pending=beam.DoFn.StateParam(PENDING),
        next_fire=beam.DoFn.StateParam(NEXT),
        flush=beam.DoFn.TimerParam(FLUSH),
    ):
        _active()
        series_id, part = element
        state = self._saved(series_id, saved, started)
        reasons = streaming.classify(part, state, recent.read() or streaming.Recent.empty())
        accepted = reasons == streaming.ACCEPTED
        if not accepted.all():
            rows = combine_parts([part])
            for reason in (streaming.DUPLICATE, streaming.LATE):
                positions = reasons == reason
                if positions.any():
                    frame = rejected_observations(series_id, rows, positions.nonzero()[0], reason)
                    yield beam.pvalue.TaggedOutput(REJECTED, frame)
        if not accepted.any():
            return
        arrival = int(timestamp.micros)
        pending.add(streaming.Pending(arrival, streaming.part_subset(part, accepted)))
        fire = arrival + self._config.lateness_us
        current = next_fire.read()
        if current is None or fire < current:
            flush.set(Timestamp(micros=fire))
            next_fire.write(fire)

    @userstate.on_timer(FLUSH)
    def on_flush(
        self,
        key=beam.DoFn.KeyParam,
        fire=beam.DoFn.TimestampParam,
        saved=beam.DoFn.StateParam(SAVED),
        started=beam.DoFn.StateParam(STARTED),
        recent=beam.DoFn.StateParam(RECENT),
        pending=beam.DoFn.StateParam(PENDING),
        waiting=beam.DoFn.StateParam(WAITING),
        next_fire=beam.DoFn.StateParam(NEXT),
        latest=beam.DoFn.StateParam(LATEST),
        latest_status=beam.DoFn.StateParam(LATEST_STATUS),
        emit_at=beam.DoFn.StateParam(EMIT_AT),
        flush=beam.DoFn.TimerParam(FLUSH),
        emit=beam.DoFn.TimerParam(EMIT),
    ):
        _active()
        series_id = key
        config = self._config
        items = list(pending.read())
        until = streaming.cutoff(items, int(fire.micros), config.lateness_us)
        if until is None:
            take, keep = [], items
        else:
            take, keep = streaming.split_pending(items, until)
        pending.clear()
        for item in keep:
            pending.add(item)
        upcoming = streaming.next_fire(keep, config.lateness_us)
        if upcoming is None:
            next_fire.clear()
        else:
            flush.set(Timestamp(micros=upcoming))
            next_fire.write(upcoming)
        if not take:
            return
        state = self._saved(series_id, saved, started)
        held = [item.part for item in waiting.read()]
        result = streaming.advance(series_id, take, held, state, self._model)
        for frame in result.rejected:
            yield beam.pvalue.TaggedOutput(REJECTED, frame)
        waiting.clear()
        for part in result.waiting:
            waiting.add(streaming.Pending(0, part))
        new_state = None
        if result.work is not None:
            new_state = forecasting.run_lanes([result.work], self._loaded.step, self._model)[0]
            self._model_calls.inc(-(-len(result.work.features) // self._model.num_steps))
            self._consumed.inc(len(result.consumed))
            saved.write(new_state)
            recent.write(
                streaming.remember(
                    recent.read() or streaming.Recent.empty(),
                    result.consumed,
                    new_state.last_timestamp,
                    config.dedupe_horizon_ns,
                )
            )
            yield beam.pvalue.TaggedOutput(STATES, ("all", new_state))
        if result.status is None:
            return
        if config.emit == "every":
            self._forecasts.inc()
            yield series_id, result.status, new_state
            return
        end = _window_end(int(fire.micros), config.window_us)
        pending_end = emit_at.read()
        if pending_end is not None and pending_end < end:
            # An earlier window's emission has not fired yet (timers of one key may fire out of
            # order); emit it now rather than let this window's timer replace it.
            yield from self._emit_latest(series_id, latest, latest_status, emit_at)
        if new_state is not None:
            latest.write(new_state)
        latest_status.write(result.status)
        emit_at.write(end)
        emit.set(Timestamp(micros=end))

    @userstate.on_timer(EMIT)
    def on_emit(
        self,
        key=beam.DoFn.KeyParam,
        latest=beam.DoFn.StateParam(LATEST),
        latest_status=beam.DoFn.StateParam(LATEST_STATUS),
        emit_at=beam.DoFn.StateParam(EMIT_AT),
    ):
        yield from self._emit_latest(key, latest, latest_status, emit_at)

    def _emit_latest(self, series_id, latest, latest_status, emit_at):
        status = latest_status.read()
        emit_at.clear()
        if status is None:
            return
        state = latest.read() if status != forecasting.TOO_SHORT else None
        latest_status.clear()
        latest.clear()
        self._forecasts.inc()
        yield series_id, status, state


class AdvanceSeries(beam.PTransform):
    """``(series_id, SeriesPart)`` → forecasts ``(series_id, status, SeriesState | None)``
    (main), ``states`` updates for snapshots and ``rejected`` dead-letter frames."""

    def __init__(self, config: StreamConfig, model: forecasting.ModelInfo, state_files):
        super().__init__()
        self._config = config
        self._model = model
        self._state_files = tuple(state_files)

    def expand(self, points):
        return points | "Advance" >> beam.ParDo(
            _AdvanceSeriesFn(self._config, self._model, self._state_files)
        ).with_outputs(STATES, REJECTED, main=FORECASTS)


# --- outputs ---------------------------------------------------------------------------------


def window_name(micros: int, window: int) -> str:
    """Directory name of the window holding ``micros``: ``START_END`` in UTC, e.g.
    ``20240101T000000Z_20240101T010000Z``."""
    start = micros // window * window
    fmt = "%Y%m%dT%H%M%SZ"
    as_time = lambda us: pd.Timestamp(us * 1000, unit="ns").strftime(fmt)  # noqa: E731
    return f"{as_time(start)}_{as_time(start + window)}"


class _WriteWindowedFn(beam.DoFn):
    """Write each bundle's elements as one file per event-time window (content-named, written
    under a temporary name and renamed, so a retried bundle rewrites the same file)."""

    def __init__(self, directory: str, window_us: int, write):
        self._directory = directory
        self._window = window_us
        self._write = write

    def start_bundle(self):
        self._buffer = defaultdict(list)

    def process(self, element, timestamp=beam.DoFn.TimestampParam):
        self._buffer[int(timestamp.micros) // self._window * self._window].append(element)

    def finish_bundle(self):
        if self._buffer:
            _active()
        for start, items in sorted(self._buffer.items()):
            folder = FileSystems.join(self._directory, window_name(start, self._window))
            self._write(folder, items)
        self._buffer = defaultdict(list)


class _ForecastWriter:
    def __init__(self, model: forecasting.ModelInfo, horizon: int):
        self._model = model
        self._horizon = horizon

    def __call__(self, folder: str, items) -> None:
        items = sorted(items, key=lambda f: (f[0], f[2].last_timestamp if f[2] else -1))
        frame = forecasting.forecast_table(items, self._model, self._horizon)
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        name = hashlib.sha256(buffer.getvalue()).hexdigest()[:16]
        write_parquet(FileSystems.join(folder, f"forecasts-{name}.parquet"), frame)


def _write_rejected(folder: str, frames) -> None:
    payload, records, _ = rejected_payload(list(frames))
    if records:
        name = hashlib.sha256(payload).hexdigest()[:16]
        commit.write_bytes(FileSystems.join(folder, f"rejected-{name}.jsonl"), payload)


class WriteForecasts(beam.PTransform):
    """Forecasts → ``DIR/forecasts/<window>/forecasts-<hash>.parquet`` (forecast schema)."""

    def __init__(self, directory, window_us, model, horizon):
        super().__init__()
        self._fn = _WriteWindowedFn(directory, window_us, _ForecastWriter(model, horizon))

    def expand(self, forecasts):
        return forecasts | "Write" >> beam.ParDo(self._fn)


class WriteDeadLetters(beam.PTransform):
    """Dead-letter frames → ``DIR/rejected/<window>/rejected-<hash>.jsonl``."""

    def __init__(self, directory, window_us):
        super().__init__()
        self._fn = _WriteWindowedFn(directory, window_us, _write_rejected)
        self._rejected = Metrics.counter(NAMESPACE, "rows_rejected")

    def expand(self, frames):
        return frames | "Count" >> beam.Map(_count_rejected) | "Write" >> beam.ParDo(self._fn)


def _count_rejected(frame: pd.DataFrame) -> pd.DataFrame:
    for reason, count in frame["reason"].value_counts().items():
        Metrics.counter(NAMESPACE, f"rejected_{reason}").inc(int(count))
    return frame


def write_snapshot(
    state_dir: str, states: list[forecasting.SeriesState], model: forecasting.ModelInfo
) -> str:
    """Commit ``states`` as a state directory in the ``--state-out`` format; returns its run id
    (a hash of the content, so an unchanged snapshot is the same run)."""
    table = forecasting.states_to_table(sorted(states, key=lambda s: s.series_id))
    run_id = "stream-" + hashlib.sha256(parquet_bytes(table)).hexdigest()[:16]
    if commit.committed_run(state_dir) == run_id:
        return run_id
    staging = commit.prepare_staging(state_dir, run_id, commit.STATE, (STATE,))
    name = f"{STATE}/state-00000-of-00001.parquet"
    info = write_parquet(FileSystems.join(staging, name), table)
    commit.remove_spill(staging)
    commit.commit_run(
        state_dir,
        staging,
        state_metadata(run_id, model, [{"name": name, **info}]),
        commit.STATE,
        (STATE,),
    )
    return run_id


class _SnapshotFn(beam.DoFn):
    """One key holds every series' latest state; at each window end (event time) the whole
    set, with the ``--state-in`` series not seen since, is committed as a state directory."""

    UPDATES = userstate.BagStateSpec("updates", SeriesStateCoder())
    NEXT = userstate.ReadModifyWriteStateSpec("next", VarIntCoder())
    SNAPSHOT = userstate.TimerSpec("snapshot", TimeDomain.WATERMARK)

    def __init__(self, config: StreamConfig, model: forecasting.ModelInfo, state_files):
        self._config = config
        self._model = model
        self._state_files = tuple(state_files)

    def setup(self):
        self._bootstrap = _bootstrap_states(self._state_files, self._model)

    def process(
        self,
        element,
        timestamp=beam.DoFn.TimestampParam,
        updates=beam.DoFn.StateParam(UPDATES),
        next_fire=beam.DoFn.StateParam(NEXT),
        snapshot=beam.DoFn.TimerParam(SNAPSHOT),
    ):
        _active()
        updates.add(element[1])
        at = _window_end(int(timestamp.micros), self._config.window_us)
        current = next_fire.read()
        if current is None or at < current:
            snapshot.set(Timestamp(micros=at))
            next_fire.write(at)

    @userstate.on_timer(SNAPSHOT)
    def on_snapshot(
        self,
        updates=beam.DoFn.StateParam(UPDATES),
        next_fire=beam.DoFn.StateParam(NEXT),
    ):
        if next_fire.read() is None:
            return  # a repeated firing: nothing new since the last snapshot
        next_fire.clear()
        latest = streaming.latest_per_series(list(updates.read()))
        updates.clear()
        for state in latest.values():
            updates.add(state)
        merged = dict(self._bootstrap.states)
        merged.update(latest)
        yield write_snapshot(self._config.state_dir, list(merged.values()), self._model)


class SnapshotState(beam.PTransform):
    """State updates → state snapshots under ``DIR/state`` (``--state-out`` format)."""

    def __init__(self, config, model, state_files):
        super().__init__()
        self._fn = _SnapshotFn(config, model, state_files)

    def expand(self, states):
        return states | "Snapshot" >> beam.ParDo(self._fn)


class StreamForecast(beam.PTransform):
    """The stream after reading: ``{"points", "rejected"}`` (from :class:`ReadPoints`) →
    forecast files, dead-letter files and state snapshots under ``config.output``."""

    def __init__(self, config: StreamConfig, model: forecasting.ModelInfo, state_files=()):
        super().__init__()
        self._config = config
        self._model = model
        self._state_files = tuple(state_files)

    def expand(self, read):
        config, model = self._config, self._model
        advanced = read["points"] | "AdvanceSeries" >> AdvanceSeries(
            config, model, self._state_files
        )
        _ = advanced[FORECASTS] | "WriteForecasts" >> WriteForecasts(
            FileSystems.join(config.output, FORECASTS), config.window_us, model, config.horizon
        )
        _ = (
            (read[REJECTED], advanced[REJECTED])
            | "AllRejected" >> beam.Flatten()
            | "WriteRejected"
            >> WriteDeadLetters(FileSystems.join(config.output, REJECTED), config.window_us)
        )
        return advanced[STATES] | "SnapshotState" >> SnapshotState(config, model, self._state_files)


def build(
    pipeline: beam.Pipeline,
    config: StreamConfig,
    model: forecasting.ModelInfo,
    state_files: list[str],
    direct: bool,
) -> beam.PCollection:
    """Add the source chosen by ``config`` and the stream to ``pipeline``; returns the
    snapshot run ids."""
    if config.input_pattern:
        arrivals = pipeline | "WatchFiles" >> WatchFiles(config, direct)
        messages = False
    elif config.pubsub_subscription:
        from apache_beam.io.gcp.pubsub import ReadFromPubSub

        subscription = config.pubsub_subscription
        arrivals = (
            pipeline
            | "ReadPubSub"
            >> ReadFromPubSub(
                subscription=subscription,
                with_attributes=True,
                timestamp_attribute=config.pubsub_timestamp_attribute,
            )
            | "PubSubPayload"
            >> beam.Map(lambda m: (f"pubsub:{subscription}/{m.message_id}", m.data))
        )
        messages = True
    else:
        from apache_beam.io.kafka import ReadFromKafka

        topic = config.kafka_topic
        arrivals = (
            pipeline
            | "ReadKafka"
            >> ReadFromKafka(
                consumer_config={"bootstrap.servers": config.kafka_bootstrap_servers},
                topics=[topic],
            )
            | "KafkaPayload" >> beam.Map(lambda kv: (f"kafka:{topic}", kv[1]))
        )
        messages = True
    read = arrivals | "ReadPoints" >> ReadPoints(config.columns, messages)
    return read | "Stream" >> StreamForecast(config, model, state_files)


def run(argv: list[str]) -> dict:
    """Run ``rnncast stream`` with command-line ``argv`` until it is stopped (or, with
    ``--stop-after-seconds``/``--max-files``, until it has drained); returns the counters."""
    options, pipeline_options = parse_job_options(
        argv, StreamOptions, "rnncast stream", DESCRIPTION
    )
    if not options.model:
        raise JobArgumentError("rnncast stream: --model is required")
    # Checks the export (config, weights, fingerprint) here, so a bad one fails before the run.
    model = model_loader.load_model(options.model).info
    config = config_from_options(options, model)
    state_files = load_state_files(config.state_in, model)[0] if config.state_in else []
    commit.check_owner(config.state_dir, commit.STATE, (STATE,))  # before anything is written
    standard = pipeline_options.view_as(StandardOptions)
    standard.streaming = True
    direct = standard.runner in (None, "DirectRunner", "BundleBasedDirectRunner")
    if direct:
        # The DirectRunner's streaming engine (the default DirectRunner picks a batch one).
        standard.runner = "BundleBasedDirectRunner"
        if config.kafka_topic:
            raise JobArgumentError(
                "rnncast stream: Kafka is a cross-language transform, which the DirectRunner "
                "cannot run; use --runner FlinkRunner, DataflowRunner or PrismRunner"
            )
    check_output_directory(config.output, "--output")
    source = config.input_pattern or config.pubsub_subscription or config.kafka_topic
    print(f"rnncast stream: reading {source}, writing {config.output}", file=sys.stderr)
    pipeline = beam.Pipeline(options=pipeline_options)
    build(pipeline, config, model, state_files, direct)
    result = pipeline.run()
    result.wait_until_finish()
    # Beam counters (rnncast.stream/...) are reported by runners that keep them (Dataflow's
    # UI, Flink); the DirectRunner's streaming engine loses those of timer-driven bundles, so
    # the summary of a bounded run is read from what was written.
    summary = summarise_output(config.output, model)
    print(
        f"rnncast stream: stopped; {summary['forecast_files']} forecast file(s) with "
        f"{summary['forecast_rows']} rows, {summary['snapshot_series']} series in the latest "
        f"state snapshot, dead letters {summary['rejected_by_reason']}"
    )
    return summary


def summarise_output(output: str, model: forecasting.ModelInfo) -> dict:
    """Counts of what a stream has written under ``output`` (all runs into it)."""
    forecast_files = _match(FileSystems.join(output, FORECASTS, "*", "*.parquet"))
    rows = 0
    for path in forecast_files:
        with FileSystems.open(path) as source:
            rows += pq.read_metadata(io.BytesIO(source.read())).num_rows
    reasons: dict[str, int] = {}
    for path in _match(FileSystems.join(output, REJECTED, "*", "*.jsonl")):
        with FileSystems.open(path) as source:
            for line in source.read().decode("utf-8").splitlines():
                reason = json.loads(line)["reason"]
                reasons[reason] = reasons.get(reason, 0) + 1
    state_dir = FileSystems.join(output, STATE)
    series = 0
    if commit.committed_run(state_dir):
        series = commit.read_json(FileSystems.join(state_dir, commit.METADATA))["num_series"]
    return {
        "forecast_files": len(forecast_files),
        "forecast_rows": rows,
        "snapshot_series": series,
        "rejected_by_reason": dict(sorted(reasons.items())),
    }
