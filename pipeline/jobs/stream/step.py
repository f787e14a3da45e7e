"""The stateful step: per shard of series, buffer points, advance the RNN states of the series
due together in one lane-batched model run, emit forecasts."""

from __future__ import annotations

import io
import threading

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.transforms import userstate
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from rnncast.pipeline.beam.transforms import REJECTED
from rnncast.pipeline.core import forecasting, streaming
from rnncast.pipeline.core.deadletters import rejected_observations
from rnncast.pipeline.core.series import combine_parts
from rnncast.pipeline.core.shard_book import ShardBook
from rnncast.pipeline.io import model_loader
from rnncast.pipeline.jobs.stream.coders import BookCoder, KeyedPendingCoder, TimesCoder
from rnncast.pipeline.jobs.stream.options import FORECASTS, NAMESPACE, STATES, StreamConfig
from rnncast.pipeline.jobs.stream.pacing import Pacing


class _Bootstrap:
    """The series states of ``--state-in``, loaded once per worker process."""

    def __init__(self, files: tuple[str, ...], model: forecasting.ModelInfo):
        self.states: dict[str, forecasting.SeriesState] = {}
        self._by_shard: dict[int, dict] = {}
        for path in files:
            with FileSystems.open(path) as source:
                frame = pq.read_table(io.BytesIO(source.read())).to_pandas()
            for state in forecasting.states_from_frame(frame, model):
                self.states[state.series_id] = state

    def of_shard(self, shard: int, shards: int) -> dict[str, forecasting.SeriesState]:
        """The states of the series in ``shard`` (a new dict)."""
        if shards not in self._by_shard:
            groups: dict[int, dict[str, forecasting.SeriesState]] = {}
            for series_id, state in self.states.items():
                groups.setdefault(streaming.shard_of(series_id, shards), {})[series_id] = state
            self._by_shard[shards] = groups
        return dict(self._by_shard[shards].get(shard, {}))


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


# Series advanced together as lanes of one model call at most (the batch job's --lanes default).
MAX_LANES = 256


class _Book:
    """A shard's series slots for one call: the columnar book (``shard_book.ShardBook``) read
    once, the slots touched decoded, and only those written back on :meth:`save` (a shard
    may hold thousands of series)."""

    def __init__(self, cell, bootstrap: _Bootstrap):
        self._cell = cell
        self._bootstrap = bootstrap
        self._book: ShardBook = cell.read() or ShardBook.empty()
        self._rows: dict[str, int] = {}
        self._slots: dict[str, streaming.SeriesSlot] = {}

    def locate(self, series_ids: list[str]) -> None:
        """Find the rows of ``series_ids`` in one search (else one search per series)."""
        new = [series_id for series_id in series_ids if series_id not in self._rows]
        self._rows.update(zip(new, self._book.rows(new).tolist()))

    @property
    def columns(self) -> ShardBook:
        return self._book

    def rows_of(self, series_ids: list[str]) -> np.ndarray:
        if not self._rows:  # the first search of the call, as a rule the only one
            rows = self._book.rows(series_ids)
            self._rows = dict(zip(series_ids, rows.tolist()))
            return rows
        self.locate(series_ids)
        return np.array([self._rows[series_id] for series_id in series_ids], np.int64)

    def advance_columns(self, rows, records, timestamp, hashes, counts, horizon) -> None:
        """Write advanced records and remembered points (``ShardBook.advanced``); the slots
        of these series must not have been decoded."""
        self._book = self._book.advanced(rows, records, timestamp, hashes, counts, horizon)

    def _row(self, series_id: str) -> int:
        if series_id not in self._rows:
            self.locate([series_id])
        return self._rows[series_id]

    def load(self, series_ids: list[str]) -> None:
        """Decode the slots of ``series_ids`` in one pass over the book (else one each); a
        series seen for the first time starts from its ``--state-in`` state, if any."""
        self.locate(series_ids)
        stored, rows = [], []
        for series_id in series_ids:
            if series_id in self._slots:
                continue
            row = self._rows[series_id]
            if row < 0:
                saved = self._bootstrap.states.get(series_id)
                self._slots[series_id] = streaming.SeriesSlot(saved=saved)
            else:
                stored.append(series_id)
                rows.append(row)
        self._slots.update(zip(stored, self._book.slots(rows, stored)))

    def slot(self, series_id: str) -> streaming.SeriesSlot:
        """The series' slot (see :meth:`load`)."""
        if series_id not in self._slots:
            self.load([series_id])
        return self._slots[series_id]

    def peek(
        self, series_id: str, with_recent: bool = True
    ) -> tuple[forecasting.SeriesState | streaming.LastPoint | None, streaming.Recent | None]:
        """What classifying an arrival needs of the series (its last consumed point and,
        unless ``with_recent`` is false, its recent hashes), without decoding the rest."""
        if series_id in self._slots:
            slot = self._slots[series_id]
            return slot.saved, slot.recent
        row = self._row(series_id)
        if row < 0:
            return self._bootstrap.states.get(series_id), streaming.Recent.empty()
        return self._book.last_point(row), self._book.recent(row) if with_recent else None

    def save(self) -> None:
        rows = [self._row(series_id) for series_id in self._slots]  # (found by load)
        self._cell.write(self._book.updated(self._slots, rows))


def _set_timer(timer, times: dict[str, int]) -> None:
    """Move a shard's timer to the earliest of its series' times (none: leave it unset).

    Every firing calls this, also one with nothing due: a runner clears a timer before
    delivering it, and the DirectRunner can deliver a firing again after the first one has
    re-armed the timer for later (it extracts timers that are due but still in flight), so a
    repeated firing would otherwise leave the shard with no timer and its buffered points
    would never be consumed (the stall seen in issue 16)."""
    at = streaming.earliest(times)
    if at is not None:
        timer.set(Timestamp(micros=at))


class _AdvanceShardFn(beam.DoFn):
    """Per shard of series (the key): buffer arriving points per series, consume them in
    timestamp order when the watermark passes them (plus the allowed lateness), advance the
    RNN states of all series due at one firing with one lane-batched model run, emit forecasts.

    Each series keeps its own next flush time (FIRES) and window end (EMITS); the shard's
    timer is at the earliest of them, and a firing at t handles exactly the series due at t,
    so every series is consumed at the same times, over the same points, as if it were a key
    of its own."""

    SERIES = userstate.ReadModifyWriteStateSpec("series", BookCoder())
    PENDING = userstate.BagStateSpec("pending", KeyedPendingCoder())
    FIRES = userstate.ReadModifyWriteStateSpec("fires", TimesCoder())
    EMITS = userstate.ReadModifyWriteStateSpec("emits", TimesCoder())
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
        jit = self._config.jit_compile
        self._loaded = _per_process(
            ("model", model.path, model.fingerprint, jit),
            lambda: model_loader.worker_model(model, jit),
        )
        self._bootstrap = bootstrap_states(self._state_files, self._model)
        self._pacing = Pacing.of(self._config.output)

    def process(
        self,
        element,
        timestamp=beam.DoFn.TimestampParam,
        series=beam.DoFn.StateParam(SERIES),
        pending=beam.DoFn.StateParam(PENDING),
        fires=beam.DoFn.StateParam(FIRES),
        flush=beam.DoFn.TimerParam(FLUSH),
    ):
        """``(shard, [(series_id, part), ...])``: parts of the shard's series that arrived
        together (see :class:`_GroupByShardFn`); each is classified and buffered as if it
        had come alone."""
        self._pacing.note_activity()
        _, parts = element
        book = _Book(series, self._bootstrap)  # read only: nothing to save
        # Which parts are all after their series' last consumed point (then every row is
        # accepted), for the series whose state is in the book's records: one pass for all.
        known_new = book.columns.all_new(
            book.rows_of([series_id for series_id, _ in parts]), [part for _, part in parts]
        ).tolist()
        arrival = int(timestamp.micros)
        fire = arrival + self._config.lateness_us
        times = fires.read() or {}
        first = streaming.earliest(times)
        moved = False
        accepted_parts = []
        for known, (series_id, part) in zip(known_new, parts):
            if not known and not streaming.all_new(part, book.peek(series_id, False)[0]):
                # Some rows may be repeats or late.
                saved, recent = book.peek(series_id)
                reasons = streaming.classify(part, saved, recent)
                accepted = reasons == streaming.ACCEPTED
                if not accepted.all():
                    rows = combine_parts([part])
                    for reason in (streaming.DUPLICATE, streaming.LATE):
                        positions = reasons == reason
                        if positions.any():
                            frame = rejected_observations(
                                series_id, rows, positions.nonzero()[0], reason
                            )
                            yield beam.pvalue.TaggedOutput(REJECTED, frame)
                if not accepted.any():
                    continue
                part = streaming.part_subset(part, accepted)
            accepted_parts.append((series_id, part))
            current = times.get(series_id)
            if current is None or fire < current:
                times[series_id] = fire
                moved = True
        if accepted_parts:  # one buffered item per arrival, not one per series
            pending.add(("", streaming.PendingGroup(arrival, accepted_parts)))
        if moved:
            fires.write(times)
            if first is None or fire < first:
                flush.set(Timestamp(micros=fire))

    @userstate.on_timer(FLUSH)
    def on_flush(
        self,
        key=beam.DoFn.KeyParam,
        fire=beam.DoFn.TimestampParam,
        series=beam.DoFn.StateParam(SERIES),
        pending=beam.DoFn.StateParam(PENDING),
        fires=beam.DoFn.StateParam(FIRES),
        emits=beam.DoFn.StateParam(EMITS),
        flush=beam.DoFn.TimerParam(FLUSH),
        emit=beam.DoFn.TimerParam(EMIT),
    ):
        """The watermark passed pending points of some series: take those due, advance them
        all in one model run, publish. (Beam hands each state cell and timer over as a
        parameter of its own; the steps take only theirs.)"""
        self._pacing.note_activity()
        at = int(fire.micros)
        takes = self._take_due(pending, fires, flush, at)
        if not takes:
            return
        book = _Book(series, self._bootstrap)
        advanced = yield from self._advance(key, book, takes)
        if self._config.emit == "every":  # each forecast out now
            self._forecasts.inc(len(advanced))
            yield from advanced
            book.save()
            return
        times = emits.read() or {}
        for series_id, status, new_state in advanced:
            yield from self._publish(series_id, status, new_state, at, book.slot(series_id), times)
        book.save()
        if self._config.emit == "window" and advanced:
            emits.write(times)
            _set_timer(emit, times)

    def _take_due(self, pending, fires, flush, fire: int) -> dict[str, list]:
        """Per series due at ``fire``: its pending points due now (the rest stay pending; the
        timer moves to the earliest next flush of the shard's series)."""
        times = fires.read() or {}
        due = streaming.due_series(times, fire)
        if not due:  # a repeated firing: the runner cleared the timer of the next flush
            _set_timer(flush, times)
            return {}
        items = list(pending.read())
        if len(items) == 1 and isinstance(items[0][1], streaming.EncodedGroup):
            whole = self._whole_arrival(items[0][1], due, fire)
            if whole is not None:  # what the loop below does, without a part per series
                pending.clear()
                for series_id in due:
                    del times[series_id]
                fires.write(times)
                _set_timer(flush, times)
                return whole
        mine: dict[str, list] = {series_id: [] for series_id in due}  # Pending or encoded
        kept = []
        for series_id, item in items:
            if isinstance(item, streaming.EncodedGroup):  # the parts of one arrival
                if not any(member in mine for member in item.series_ids()):
                    kept.append((series_id, item))  # stays encoded
                    continue
                group = item.decode()
                for member, part in group.parts:
                    piece = streaming.Pending(group.arrival, part)
                    if member in mine:
                        mine[member].append(piece)
                    else:
                        kept.append((member, piece))  # buffered again, alone
            elif series_id in mine:
                mine[series_id].append(item)  # decoded by take_due where it is needed
            else:
                kept.append((series_id, item))  # stays encoded
        takes = {}
        lateness = self._config.lateness_us
        for series_id in due:
            take, keep, upcoming = streaming.take_due(mine[series_id], fire, lateness)
            kept.extend((series_id, item) for item in keep)
            if take:
                takes[series_id] = take
            if upcoming is None:
                del times[series_id]
            else:
                times[series_id] = upcoming
        pending.clear()
        for item in kept:
            pending.add(item)
        fires.write(times)
        _set_timer(flush, times)
        return takes

    def _whole_arrival(
        self, group: streaming.EncodedGroup, due: list[str], fire: int
    ) -> streaming.Columns | None:
        """The stream's usual firing: the shard's only buffered item is one arrival whose
        series are exactly those due, each once, all due now. Then each takes its part whole
        (as :func:`~rnncast.pipeline.core.streaming.take_due` would, and nothing stays): the
        arrival's columns, by series id. None: not so."""
        if group.arrival() + self._config.lateness_us > fire:
            return None
        columns = group.columns()
        if sorted(columns.series_ids) != due or not columns.counts().all():
            return None  # (due is sorted and unique: so are the ids then)
        return columns.by_series_id()

    def _advance(self, shard: int, book: _Book, takes: dict[str, list] | streaming.Columns):
        """Consume each series' points in timestamp order: advance the saved RNN states (the
        series with work as lanes of one model run), remember the consumed points for
        de-duplication, yield dead letters and the states for snapshots (keyed by ``shard``,
        so snapshots are taken per shard). Returns
        ``(series_id, status, new state or None)`` of each series with something to publish.

        The series in the stream's usual case (see :meth:`_advance_columns`) advance as
        columns of the shard's book; the others through their slots, one by one where they
        need it; both give the same bytes (``test_stream_job``)."""
        if isinstance(takes, streaming.Columns):  # one part per series (_whole_arrival)
            columns, takes = takes, {}
        else:  # the series with one part as columns (_advance_columns hands back the rest)
            columns = streaming.Columns.of(
                [(series_id, parts[0]) for series_id, parts in takes.items() if len(parts) == 1]
            )
            takes = {series_id: parts for series_id, parts in takes.items() if len(parts) != 1}
        advanced, consumed_points, left = self._advance_columns(book, columns)
        if left:  # the rest, by series id as they came
            takes = dict(sorted([*takes.items(), *((sid, [part]) for sid, part in left)]))
        published = [(state.series_id, forecasting.INCREMENTAL, state) for state in advanced]
        if takes:
            slow, consumed, outcomes = yield from self._advance_slots(book, takes)
            advanced += slow
            consumed_points += consumed
            published += outcomes
        if consumed_points:  # one increment per firing: each costs ~2 µs (the state sampler)
            self._consumed.inc(consumed_points)
        if advanced:  # one element per firing; the snapshot step adds each state to its shard
            yield beam.pvalue.TaggedOutput(STATES, (shard, advanced))
        return published

    def _advance_slots(self, book: _Book, takes: dict[str, list]):
        """The series outside the usual case, through their slots. Yields dead letters;
        returns the new states, the points consumed and ``(series_id, status, new state or
        None)`` of each series with something to publish."""
        book.load(list(takes))
        slots = {series_id: book.slot(series_id) for series_id in takes}
        # Every due series prepared in one pass where it can be (see streaming.advance_many).
        results, hashes = streaming.advance_many(takes, slots, self._model)
        for series_id, result in results.items():
            for frame in result.rejected:
                yield beam.pvalue.TaggedOutput(REJECTED, frame)
            slots[series_id].waiting = result.waiting
        working = [series_id for series_id, result in results.items() if result.work is not None]
        new_states = {}
        for first in range(0, len(working), MAX_LANES):
            lanes = working[first : first + MAX_LANES]
            works = [results[series_id].work for series_id in lanes]
            states = forecasting.run_lanes(works, self._loaded.step, self._model)
            new_states.update(zip(lanes, states))
            longest = max(len(work.features) for work in works)
            self._model_calls.inc(-(-longest // self._model.num_steps))
        slow, consumed_points = [], 0
        for series_id in working:
            slot, new_state = book.slot(series_id), new_states[series_id]
            consumed = results[series_id].consumed
            consumed_points += len(consumed)
            slot.saved = new_state
            slot.recent = streaming.remember(
                slot.recent,
                consumed,
                new_state.last_timestamp,
                self._config.dedupe_horizon_ns,
                hashes.get(series_id),
            )
            slow.append(new_state)
        return (
            slow,
            consumed_points,
            [
                (series_id, result.status, new_states.get(series_id))
                for series_id, result in results.items()
                if result.status is not None
            ],
        )

    def _advance_columns(self, book: _Book, columns: streaming.Columns):
        """Advance the series in the stream's usual case as columns of the shard's book: a
        saved state of this model and nothing else kept (no waiting points, no held
        forecast), one part due (``columns``), its points right after the last consumed one
        on the grid (``forecasting.extend_columns``), as many as most such series have (one,
        as a rule), at most ``num_steps``. Their records are read, advanced by one model call
        per ``MAX_LANES`` and written back, and their recent points remembered, each step one
        array operation for all of them: no per-series slot is decoded or encoded. The same
        arithmetic as the slot path (``advance_many``, ``run_lanes``, ``remember``) on the
        same numbers. Returns their new states, the points they consumed, and the other
        series' ``(series_id, part)``."""
        model = self._model
        if not len(columns):
            return [], 0, []
        counts = columns.counts()
        rows = book.rows_of(columns.series_ids)
        plain = book.columns.plain(rows, model.fingerprint) & (counts <= model.num_steps)
        plain &= counts > 0
        if not plain.any():
            return [], 0, columns.parts()
        width = int(np.argmax(np.bincount(counts[plain])))  # the most common (ties: fewest)
        chosen = plain & (counts == width)
        index = np.flatnonzero(chosen).tolist()
        chosen_columns = columns.subset(index)  # (all of them, as a rule: no copy)
        rows = rows[index] if len(index) < len(rows) else rows
        timestamp, raw = chosen_columns.timestamp, streaming.raw_of(chosen_columns)
        records = book.columns.records(rows)
        extension = forecasting.extend_columns(
            records["last"], timestamp, raw, chosen_columns.offsets, model
        )
        ok = extension.ok
        if not ok.any():
            return [], 0, columns.parts()
        every = bool(ok.all())  # (as a rule: then no gathers)
        lanes, points = slice(None), slice(None)  # the lanes advancing, and their points' rows
        if not every:
            lanes = np.flatnonzero(ok)
            index = [index[i] for i in lanes.tolist()]
            rows, records = rows[lanes], records[lanes]
            points = (lanes[:, None] * width + np.arange(width)[None, :]).ravel()
        ids = [columns.series_ids[i] for i in index]
        features = extension.features[points]
        last = extension.last[lanes]
        for first in range(0, len(ids), MAX_LANES):
            batch = records[first : first + MAX_LANES]
            count = len(batch)
            state, point, quantiles = forecasting.step_lanes(
                self._loaded.step,
                features[first * width : (first + count) * width].reshape(count, width, -1),
                np.ones((count, width), np.float32),
                batch["loc"].astype(np.float32),
                batch["scale"].astype(np.float32),
                batch["state"].transpose(1, 0, 2),
            )
            batch["state"], batch["point"], batch["quantiles"] = state, point, quantiles  # (a view)
            self._model_calls.inc()
        # The digest is a sum modulo 2**64: uint64 arrays wrap (and, unlike scalars, silently).
        records["digest"] = records["digest"] + extension.digests[lanes]
        records["last"] = timestamp[last]
        records["last_raw"] = raw[last].reshape(len(ids), -1)
        book.advance_columns(
            rows,
            records,
            timestamp[points],
            extension.hashes[points],
            np.full(len(ids), width, np.int64),
            self._config.dedupe_horizon_ns,
        )
        done = set(index)
        left = []
        if len(done) < len(columns):  # (as a rule every series advanced)
            left = [pair for i, pair in enumerate(columns.parts()) if i not in done]
        return book.columns.states(records, ids), len(ids) * width, left

    def _publish(self, series_id, status, new_state, fire, slot, emits):
        """Hold the forecast for the end of its window (``--emit window``)."""
        config = self._config
        end = window_end(fire, config.window_us)
        pending_end = emits.get(series_id)
        if pending_end is not None and pending_end < end:
            # An earlier window's emission has not fired yet (its timer is later than the
            # earliest of the shard's); emit it now rather than let this window's replace it.
            yield from self._emit_latest(series_id, slot, emits)
        if new_state is not None:
            slot.latest = new_state
        slot.latest_status = status
        emits[series_id] = end

    @userstate.on_timer(EMIT)
    def on_emit(
        self,
        fire=beam.DoFn.TimestampParam,
        series=beam.DoFn.StateParam(SERIES),
        emits=beam.DoFn.StateParam(EMITS),
        emit=beam.DoFn.TimerParam(EMIT),
    ):
        """Window ends passed: emit the forecast held for each series whose window ended."""
        times = emits.read() or {}
        due = streaming.due_series(times, int(fire.micros))
        if not due:  # a repeated firing: re-arm the next window end (see _set_timer)
            _set_timer(emit, times)
            return
        book = _Book(series, self._bootstrap)
        book.load(due)
        for series_id in due:
            yield from self._emit_latest(series_id, book.slot(series_id), times)
        book.save()
        emits.write(times)
        _set_timer(emit, times)

    def _emit_latest(self, series_id, slot: streaming.SeriesSlot, emits: dict[str, int]):
        status = slot.latest_status
        emits.pop(series_id, None)
        if status is None:
            return
        state = slot.latest if status != forecasting.TOO_SHORT else None
        slot.latest_status = None
        slot.latest = None
        self._forecasts.inc()
        yield series_id, status, state


class _GroupByShardFn(beam.DoFn):
    """``(series_id, part)`` → ``(shard, [(series_id, part), ...])``: the parts of one bundle
    with the same shard, event time and window become one element. The stateful step then
    pays the runner's per-element cost, and reads and writes its shard's flush times, once per
    shard and arrival instead of once per series (a file or message of many series is one
    bundle of one event time). Order within a group is arrival order; nothing else changes:
    the step classifies and buffers each part as if it had come alone."""

    def __init__(self, shards: int):
        self._shards = shards

    def start_bundle(self):
        self._groups: dict = {}

    def process(self, item, timestamp=beam.DoFn.TimestampParam, window=beam.DoFn.WindowParam):
        key = (streaming.shard_of(item[0], self._shards), timestamp, window)
        self._groups.setdefault(key, []).append(item)

    def finish_bundle(self):
        for (shard, timestamp, window), items in self._groups.items():
            yield WindowedValue((shard, items), timestamp, [window])
        self._groups = {}


class AdvanceSeries(beam.PTransform):
    """``(series_id, SeriesPart)`` → forecasts ``(series_id, status, SeriesState | None)``
    (main), ``states`` updates for snapshots (``(shard, [SeriesState, ...])``) and ``rejected``
    dead-letter frames. Keyed by shard (``--shards``): a shard's series due together advance
    in one model run."""

    def __init__(self, config: StreamConfig, model: forecasting.ModelInfo, state_files):
        super().__init__()
        self._config = config
        self._model = model
        self._state_files = tuple(state_files)

    def expand(self, points):
        return (
            points
            | "GroupByShard" >> beam.ParDo(_GroupByShardFn(self._config.shards))
            | "Advance"
            >> beam.ParDo(
                _AdvanceShardFn(self._config, self._model, self._state_files)
            ).with_outputs(STATES, REJECTED, main=FORECASTS)
        )
