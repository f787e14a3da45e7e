"""What a stream writes: forecasts per window, dead letters, state snapshots."""

from __future__ import annotations

import hashlib
import io
from collections import defaultdict

import apache_beam as beam
import pandas as pd
import pyarrow.parquet as pq
from apache_beam.coders import BytesCoder, TupleCoder, VarIntCoder
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.transforms import userstate
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.utils.timestamp import Timestamp

from rnncast.pipeline.core import forecasting, streaming
from rnncast.pipeline.core.deadletters import rejected_payload
from rnncast.pipeline.io import commit
from rnncast.pipeline.io.commit import parquet_bytes, write_parquet
from rnncast.pipeline.io.state_store import state_metadata
from rnncast.pipeline.jobs.stream.coders import SeriesStateCoder, TimesCoder
from rnncast.pipeline.jobs.stream.options import NAMESPACE, STATE, StreamConfig
from rnncast.pipeline.jobs.stream.pacing import Pacing
from rnncast.pipeline.jobs.stream.step import bootstrap_states, window_end


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

    def __init__(self, directory: str, window_us: int, write, pacing: str):
        self._pacing = pacing
        self._directory = directory
        self._window = window_us
        self._write = write

    def start_bundle(self):
        self._buffer = defaultdict(list)

    def process(self, element, timestamp=beam.DoFn.TimestampParam):
        self._buffer[int(timestamp.micros) // self._window * self._window].append(element)

    def finish_bundle(self):
        if self._buffer:
            Pacing.of(self._pacing).note_activity()
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

    def __init__(self, directory, window_us, model, horizon, pacing: str):
        super().__init__()
        writer = _ForecastWriter(model, horizon)
        self._fn = _WriteWindowedFn(directory, window_us, writer, pacing)

    def expand(self, forecasts):
        return forecasts | "Write" >> beam.ParDo(self._fn)


class WriteDeadLetters(beam.PTransform):
    """Dead-letter frames → ``DIR/rejected/<window>/rejected-<hash>.jsonl``."""

    def __init__(self, directory, window_us, pacing: str):
        super().__init__()
        self._fn = _WriteWindowedFn(directory, window_us, _write_rejected, pacing)
        self._rejected = Metrics.counter(NAMESPACE, "rows_rejected")

    def expand(self, frames):
        return frames | "Count" >> beam.Map(_count_rejected) | "Write" >> beam.ParDo(self._fn)


def _count_rejected(frame: pd.DataFrame) -> pd.DataFrame:
    for reason, count in frame["reason"].value_counts().items():
        Metrics.counter(NAMESPACE, f"rejected_{reason}").inc(int(count))
    return frame


def shard_file(shard: int, shards: int) -> str:
    """The snapshot file of a shard, as staged (committed as ``state/<run>-state-…``)."""
    return f"{STATE}/state-{shard:05d}-of-{shards:05d}.parquet"


def shard_table(states) -> bytes:
    """A shard's states as the bytes of one Parquet file of the state schema (sorted by id:
    the same states, the same bytes)."""
    return parquet_bytes(forecasting.states_to_table(sorted(states, key=lambda s: s.series_id)))


def write_snapshot(
    state_dir: str, files: dict[int, bytes], shards: int, model: forecasting.ModelInfo
) -> str:
    """Commit per-shard Parquet files (``files``: shard → bytes) as one state directory in the
    ``--state-out`` format; returns its run id (a hash of the content, so an unchanged snapshot
    is the same run)."""
    digest = hashlib.sha256()
    for shard, data in sorted(files.items()):
        digest.update(f"{shard}/{shards}:".encode() + hashlib.sha256(data).digest())
    run_id = "stream-" + digest.hexdigest()[:16]
    if commit.committed_run(state_dir) == run_id:
        return run_id
    staging = commit.prepare_staging(state_dir, run_id, commit.STATE, (STATE,))
    entries = []
    for shard, data in sorted(files.items()):
        name = shard_file(shard, shards)
        commit.write_bytes(FileSystems.join(staging, name), data)
        records = pq.read_metadata(io.BytesIO(data)).num_rows
        sha256 = hashlib.sha256(data).hexdigest()
        entries.append({"name": name, "records": records, "bytes": len(data), "sha256": sha256})
    commit.remove_spill(staging)
    commit.commit_run(
        state_dir, staging, state_metadata(run_id, model, entries), commit.STATE, (STATE,)
    )
    return run_id


def committed_shard_file(state_dir: str, shard: int, shards: int) -> bytes:
    """The bytes of the shard's file in the committed snapshot of ``state_dir``."""
    metadata = commit.read_json(FileSystems.join(state_dir, commit.METADATA))
    suffix = "-" + shard_file(shard, shards).split("/", 1)[1]
    (name,) = [e["name"] for e in metadata["files"] if e["name"].endswith(suffix)]
    with FileSystems.open(FileSystems.join(state_dir, name)) as source:
        return source.read()


def _arm_at_window_end(timer, next_fire, micros: int, window: int) -> None:
    """Set ``timer`` to the end of the window holding ``micros`` unless it is already set
    earlier (``next_fire`` remembers when it is set; cleared when it fires)."""
    at = window_end(micros, window)
    current = next_fire.read()
    if current is None or at < current:
        timer.set(Timestamp(micros=at))
        next_fire.write(at)


def _is_due(timer, next_fire, fire) -> bool:
    """Whether a firing at ``fire`` is the one ``next_fire`` is armed for. A repeated firing
    (the DirectRunner can deliver one again after elements re-armed the timer for a later
    window, clearing it; see ``step._set_timer``) re-arms the timer for ``next_fire`` and is
    not due; with nothing armed, nothing is new since the last firing."""
    at = next_fire.read()
    if at is None:
        return False
    if at > int(fire.micros):
        timer.set(Timestamp(micros=at))
        return False
    return True


class _SnapshotShardFn(beam.DoFn):
    """Per shard (the key): the latest state of each of its series; at each window end (event
    time) the shard's states, with its ``--state-in`` series not seen since, become one
    Parquet file, handed to :class:`_CommitSnapshotFn` as ``(shard, window end, bytes)``."""

    UPDATES = userstate.BagStateSpec("updates", SeriesStateCoder())
    NEXT = userstate.ReadModifyWriteStateSpec("next", VarIntCoder())
    SNAPSHOT = userstate.TimerSpec("snapshot", TimeDomain.WATERMARK)

    def __init__(self, config: StreamConfig, model: forecasting.ModelInfo, state_files):
        self._config = config
        self._model = model
        self._state_files = tuple(state_files)

    def setup(self):
        self._bootstrap = bootstrap_states(self._state_files, self._model)

    def process(
        self,
        element,
        timestamp=beam.DoFn.TimestampParam,
        updates=beam.DoFn.StateParam(UPDATES),
        next_fire=beam.DoFn.StateParam(NEXT),
        snapshot=beam.DoFn.TimerParam(SNAPSHOT),
    ):
        Pacing.of(self._config.output).note_activity()
        for state in element[1]:  # the series one firing of the shard advanced
            updates.add(state)
        _arm_at_window_end(snapshot, next_fire, int(timestamp.micros), self._config.window_us)

    @userstate.on_timer(SNAPSHOT)
    def on_snapshot(
        self,
        key=beam.DoFn.KeyParam,
        fire=beam.DoFn.TimestampParam,
        updates=beam.DoFn.StateParam(UPDATES),
        next_fire=beam.DoFn.StateParam(NEXT),
        snapshot=beam.DoFn.TimerParam(SNAPSHOT),
    ):
        if not _is_due(snapshot, next_fire, fire):
            return
        next_fire.clear()
        latest = streaming.latest_per_series(list(updates.read()))
        updates.clear()
        for state in latest.values():
            updates.add(state)
        merged = self._bootstrap.of_shard(key, self._config.shards)
        merged.update(latest)
        yield "all", (key, int(fire.micros), shard_table(merged.values()))


class _CommitSnapshotFn(beam.DoFn):
    """One key for the commits, holding only shard files not committed yet: at each window
    end the shards' newest files, the committed files of the other shards this run wrote
    before, and the ``--state-in`` states of shards never advanced are committed as one state
    directory (one file per shard)."""

    FILES = userstate.BagStateSpec(
        "files", TupleCoder([VarIntCoder(), VarIntCoder(), BytesCoder()])
    )
    WRITTEN = userstate.ReadModifyWriteStateSpec("written", TimesCoder())
    NEXT = userstate.ReadModifyWriteStateSpec("next", VarIntCoder())
    COMMIT = userstate.TimerSpec("commit", TimeDomain.WATERMARK)

    def __init__(self, config: StreamConfig, model: forecasting.ModelInfo, state_files):
        self._config = config
        self._model = model
        self._state_files = tuple(state_files)

    def setup(self):
        self._bootstrap = bootstrap_states(self._state_files, self._model)

    def process(
        self,
        element,
        timestamp=beam.DoFn.TimestampParam,
        files=beam.DoFn.StateParam(FILES),
        next_fire=beam.DoFn.StateParam(NEXT),
        commit_timer=beam.DoFn.TimerParam(COMMIT),
    ):
        files.add(element[1])
        _arm_at_window_end(commit_timer, next_fire, int(timestamp.micros), self._config.window_us)

    @userstate.on_timer(COMMIT)
    def on_commit(
        self,
        fire=beam.DoFn.TimestampParam,
        files=beam.DoFn.StateParam(FILES),
        written=beam.DoFn.StateParam(WRITTEN),
        next_fire=beam.DoFn.StateParam(NEXT),
        commit_timer=beam.DoFn.TimerParam(COMMIT),
    ):
        if not _is_due(commit_timer, next_fire, fire):
            return
        next_fire.clear()
        newest: dict[int, tuple[int, bytes]] = {}
        for shard, end, data in files.read():
            if shard not in newest or end >= newest[shard][0]:
                newest[shard] = (end, data)
        files.clear()
        shards, state_dir = self._config.shards, self._config.state_dir
        before = written.read() or {}
        out = {}
        for shard in range(shards):
            if shard in newest:
                out[shard] = newest[shard][1]
            elif str(shard) in before:
                out[shard] = committed_shard_file(state_dir, shard, shards)
            else:
                initial = self._bootstrap.of_shard(shard, shards)
                if initial:
                    out[shard] = shard_table(initial.values())
        run_id = write_snapshot(state_dir, out, shards, self._model)
        written.write({**before, **{str(shard): 1 for shard in newest}})
        yield run_id


class SnapshotState(beam.PTransform):
    """State updates ``(shard, [SeriesState, ...])`` → state snapshots under ``DIR/state``
    (``--state-out`` format, one Parquet file per shard)."""

    def __init__(self, config, model, state_files):
        super().__init__()
        self._shard_fn = _SnapshotShardFn(config, model, state_files)
        self._commit_fn = _CommitSnapshotFn(config, model, state_files)

    def expand(self, states):
        return (
            states
            | "SnapshotShards" >> beam.ParDo(self._shard_fn)
            | "Commit" >> beam.ParDo(self._commit_fn)
        )
