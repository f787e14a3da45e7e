"""The stateful step: per series, buffer points, advance the RNN state, emit forecasts."""

from __future__ import annotations

import io
import threading

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.coders import BooleanCoder, StrUtf8Coder, VarIntCoder
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.transforms import userstate
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.utils.timestamp import Timestamp

from rnncast.pipeline.beam.transforms import REJECTED
from rnncast.pipeline.core import forecasting, streaming
from rnncast.pipeline.core.deadletters import rejected_observations
from rnncast.pipeline.core.series import combine_parts
from rnncast.pipeline.io import model_loader
from rnncast.pipeline.jobs.stream.coders import PendingCoder, RecentCoder, SeriesStateCoder
from rnncast.pipeline.jobs.stream.options import FORECASTS, NAMESPACE, STATES, StreamConfig
from rnncast.pipeline.jobs.stream.pacing import Pacing


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


def bootstrap_states(files, model) -> _Bootstrap:
    files = tuple(files)
    return _per_process(("bootstrap", model.fingerprint, files), lambda: _Bootstrap(files, model))


def window_end(micros: int, window: int) -> int:
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
        self._bootstrap = bootstrap_states(self._state_files, self._model)
        self._pacing = Pacing.of(self._config.output)

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
        self._pacing.note_activity()
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
        """The watermark passed pending points: take those due, advance, publish. (Beam hands
        each state cell and timer over as a parameter of its own; the steps take only theirs.)"""
        self._pacing.note_activity()
        take = self._take_due(pending, next_fire, flush, int(fire.micros))
        if not take:
            return
        result, new_state = yield from self._advance(key, take, saved, started, recent, waiting)
        if result.status is not None:
            yield from self._publish(
                key,
                result.status,
                new_state,
                int(fire.micros),
                latest,
                latest_status,
                emit_at,
                emit,
            )

    def _take_due(self, pending, next_fire, flush, fire: int) -> list[streaming.Pending]:
        """The pending points due at ``fire`` (the rest stay pending; the timer moves to the
        next of them)."""
        lateness = self._config.lateness_us
        items = list(pending.read())
        until = streaming.cutoff(items, fire, lateness)
        if until is None:
            take, keep = [], items
        else:
            take, keep = streaming.split_pending(items, until)
        pending.clear()
        for item in keep:
            pending.add(item)
        upcoming = streaming.next_fire(keep, lateness)
        if upcoming is None:
            next_fire.clear()
        else:
            flush.set(Timestamp(micros=upcoming))
            next_fire.write(upcoming)
        return take

    def _advance(self, series_id, take, saved, started, recent, waiting):
        """Consume ``take`` in timestamp order: advance the saved RNN state, remember the
        consumed points for de-duplication, yield dead letters and the state for snapshots.
        Returns the :func:`streaming.advance` result and the new state (None: not advanced)."""
        state = self._saved(series_id, saved, started)
        held = [item.part for item in waiting.read()]
        result = streaming.advance(series_id, take, held, state, self._model)
        for frame in result.rejected:
            yield beam.pvalue.TaggedOutput(REJECTED, frame)
        waiting.clear()
        for part in result.waiting:
            waiting.add(streaming.Pending(0, part))
        if result.work is None:
            return result, None
        new_state = forecasting.run_lanes([result.work], self._loaded.step, self._model)[0]
        self._model_calls.inc(-(-len(result.work.features) // self._model.num_steps))
        self._consumed.inc(len(result.consumed))
        saved.write(new_state)
        recent.write(
            streaming.remember(
                recent.read() or streaming.Recent.empty(),
                result.consumed,
                new_state.last_timestamp,
                self._config.dedupe_horizon_ns,
            )
        )
        yield beam.pvalue.TaggedOutput(STATES, ("all", new_state))
        return result, new_state

    def _publish(self, series_id, status, new_state, fire, latest, latest_status, emit_at, emit):
        """Emit the forecast now (``--emit every``) or hold it for the end of its window."""
        config = self._config
        if config.emit == "every":
            self._forecasts.inc()
            yield series_id, status, new_state
            return
        end = window_end(fire, config.window_us)
        pending_end = emit_at.read()
        if pending_end is not None and pending_end < end:
            # An earlier window's emission has not fired yet (timers of one key may fire out of
            # order); emit it now rather than let this window's timer replace it.
            yield from self._emit_latest(series_id, latest, latest_status, emit_at)
        if new_state is not None:
            latest.write(new_state)
        latest_status.write(status)
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
