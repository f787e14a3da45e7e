"""What a stream writes: forecasts per window, dead letters, state snapshots."""

from __future__ import annotations

import hashlib
import io
from collections import defaultdict

import apache_beam as beam
import pandas as pd
from apache_beam.coders import VarIntCoder
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
from rnncast.pipeline.jobs.stream.coders import SeriesStateCoder
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
        updates.add(element[1])
        at = window_end(int(timestamp.micros), self._config.window_us)
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
