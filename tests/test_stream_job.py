"""``rnncast stream``: the per-series decisions (pure), TestStream-driven runs against the batch
forecast job (in order, out of order within lateness, late, duplicates, a new series), bootstrap
from and hand-over to batch state, and a real file-watching run on the DirectRunner (with an
unreadable file that becomes a dead letter)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import apache_beam as beam
import numpy as np
import pandas as pd
import pytest
from apache_beam.coders import VarIntCoder
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing import test_stream
from apache_beam.transforms import userstate
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp
from conftest import run_job, write_csv
from direct_key import DirectKey
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from rnncast.model.config import TrainConfig
from rnncast.model.export import export_model
from rnncast.model.train import train
from rnncast.pipeline.beam.engine import fix_streaming_engine
from rnncast.pipeline.core import forecasting, streaming, synthetic
from rnncast.pipeline.core.series import SeriesPart, combine_parts
from rnncast.pipeline.core.shard_book import ShardBook
from rnncast.pipeline.core.validation import InputColumns
from rnncast.pipeline.io.model_loader import read_model_info
from rnncast.pipeline.io.state_store import load_state_files
from rnncast.pipeline.jobs import forecast as forecast_job
from rnncast.pipeline.jobs import stream as stream_job
from rnncast.pipeline.jobs.stream import options as stream_options
from rnncast.pipeline.jobs.stream import sinks, step
from rnncast.pipeline.jobs.stream.options import StreamConfig
from rnncast.pipeline.jobs.stream.sinks import shard_file

HOUR = pd.Timedelta(hours=1)
END = pd.Timestamp("2021-06-01T00:00:00")
COLUMNS = ["forecast", "q0.1", "q0.5", "q0.9"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny GRU trained one epoch, and series aligned to end at END (for a shared clock)."""
    tmp = tmp_path_factory.mktemp("smodel")
    frame = synthetic.generate(4, 120, 160, seed=11)
    source = write_csv(frame, tmp / "train.csv")
    run_job(source, tmp / "data", num_steps=16, batch_size=4, horizon=4)
    config = TrainConfig(
        str(tmp / "data"), str(tmp / "model"), cell="gru", layers=1, units=8, epochs=1
    )
    train(config, log=lambda _: None)
    shift = END - frame.groupby("series_id")["timestamp"].transform("max")
    frame = frame.assign(timestamp=frame["timestamp"] + shift)
    return export_model(config.model_dir), frame


def model_info(path) -> forecasting.ModelInfo:
    return read_model_info(path)


# --- pure decisions ---------------------------------------------------------------------


def part(timestamps, values, source="m", rows=None) -> SeriesPart:
    ts = pd.DatetimeIndex(timestamps).as_unit("ns").asi8
    rows = np.arange(1, len(ts) + 1) if rows is None else np.asarray(rows)
    return SeriesPart(source, rows, ts, np.asarray(values, float), np.zeros((len(ts), 0)))


def saved_at(timestamp, value) -> forecasting.SeriesState:
    return forecasting.SeriesState(
        "a",
        0,
        pd.Timestamp(timestamp).value,
        np.array([value]),
        0,
        0.0,
        1.0,
        "training",
        np.zeros((1, 2), np.float32),
        np.zeros(2),
        np.zeros((2, 3)),
        "f",
    )


def test_classify_buffers_new_points_and_tells_repeats_from_late_points():
    t = pd.date_range("2021-01-01", periods=5, freq="h")
    consumed = part(t[:3], [1.0, 2.0, 3.0])
    recent = streaming.remember(
        streaming.Recent.empty(), combine_parts([consumed]), consumed.timestamp[-1], 10**15
    )
    saved = saved_at(t[2], 3.0)
    arriving = part([t[1], t[1], t[2], t[3], t[0]], [2.0, 9.0, 3.0, 4.0, 1.0])
    reasons = streaming.classify(arriving, saved, recent)
    assert list(reasons) == ["duplicate", "late", "duplicate", "", "duplicate"]
    # Beyond the dedupe horizon a repeat cannot be recognised: it is late.
    short = streaming.remember(streaming.Recent.empty(), combine_parts([consumed]), t[2].value, 1)
    assert list(streaming.classify(part([t[0]], [1.0]), saved, short)) == ["late"]
    assert list(streaming.classify(part([t[2]], [3.0]), saved, short)) == ["duplicate"]
    assert list(streaming.classify(arriving, None, recent)) == [""] * 5


def test_pending_points_are_consumed_in_time_order_when_due():
    t = pd.date_range("2021-01-01", periods=6, freq="h")
    us = lambda ts: ts.value // 1000  # noqa: E731
    pending = [
        streaming.Pending(us(t[3]), part([t[3]], [3.0])),
        streaming.Pending(us(t[4]), part([t[1], t[4]], [1.0, 4.0])),
        streaming.Pending(us(t[5]), part([t[5]], [5.0])),
    ]
    lateness = us(t[1]) - us(t[0])
    assert streaming.cutoff(pending, us(t[3]), lateness) is None
    until = streaming.cutoff(pending, us(t[4]), lateness)
    assert until == t[3].value
    take, keep = streaming.split_pending(pending, until)
    assert sorted(np.concatenate([p.timestamp for p in take])) == [t[1].value, t[3].value]
    assert [list(p.part.timestamp) for p in keep] == [[t[4].value], [t[5].value]]
    assert streaming.next_fire(keep, lateness) == us(t[5])


@given(
    parts=st.lists(
        st.tuples(
            st.integers(0, 20),  # arrival
            st.lists(st.integers(0, 30), min_size=1, max_size=4),  # point times
        ),
        min_size=1,
        max_size=6,
    ),
    fire=st.integers(0, 30),
    lateness=st.integers(0, 5),
)
@hypothesis_settings(max_examples=200, deadline=None)
def test_a_firing_decodes_only_the_buffered_parts_it_needs_with_the_same_outcome(
    parts, fire, lateness
):
    # The buffer comes back from Beam state encoded; a firing decodes a part only when it is
    # due or holds due points. Taking from encoded parts must equal taking from decoded ones.
    pending = [
        streaming.Pending(arrival, part(pd.to_datetime(times, unit="h"), np.arange(len(times))))
        for arrival, times in parts
    ]
    encoded = [
        streaming.decode_keyed_part_lazily(streaming.encode_keyed_part("s", p))[1] for p in pending
    ]
    want_take, want_keep, want_next = streaming.take_due(pending, fire, lateness)
    take, keep, upcoming = streaming.take_due(encoded, fire, lateness)
    assert upcoming == want_next
    assert [list(p.timestamp) for p in take] == [list(p.timestamp) for p in want_take]
    keep = [p.decode() if isinstance(p, streaming.EncodedPending) else p for p in keep]
    assert [(p.arrival, list(p.part.timestamp)) for p in keep] == [
        (p.arrival, list(p.part.timestamp)) for p in want_keep
    ]
    for item in encoded:  # the header read without decoding
        assert item.first_timestamp() == item.decode().part.timestamp.min()


def test_a_new_series_waits_until_it_has_num_steps_points(exported):
    model = model_info(exported[0])
    t = pd.date_range("2021-01-01", periods=model.num_steps, freq="h")
    first = streaming.advance("fresh", [part(t[:10], np.arange(10.0))], [], None, model)
    assert first.status == forecasting.TOO_SHORT and first.work is None
    assert sum(len(p) for p in first.waiting) == 10
    second = streaming.advance(
        "fresh",
        [part(t[9:], np.arange(9.0, model.num_steps), source="n")],
        first.waiting,
        None,
        model,
    )
    assert second.status == forecasting.FULL and second.waiting == []
    assert len(second.work.features) == model.num_steps
    assert [frame.reason.tolist() for frame in second.rejected] == [["duplicate"]]


T40 = pd.date_range("2021-01-01", periods=40, freq="h")


@pytest.mark.parametrize(
    "takes, one_pass",
    [
        (  # several points per series: ranks and sums per series
            {
                "one": [part(T40[20:23], [1.0, 2.5, -3.0])],
                "two": [
                    part(T40[23:25], [4.0, 5.0], source="z"),
                    part(T40[20:23], [1.0, 2.0, 3.0]),
                ],
                "gap": [part([T40[20], T40[22]], [1.0, 2.0])],
                "late": [part(T40[19:21], [9.0, 1.0])],
                "repeat": [part([T40[20], T40[20], T40[21]], [1.0, 1.0, 2.0])],
                "cold": [part(T40[:20], np.arange(20.0))],
                "none": [],
            },
            ["one", "two"],
        ),
        (  # one point per series (a stream's tick: extend_columns' shortcut)
            {
                "one": [part(T40[20:21], [1.0])],
                "other": [part(T40[20:21], [-2.5])],
                "gap": [part(T40[21:22], [1.0])],
                "late": [part(T40[19:20], [9.0])],
                "cold": [part(T40[:1], [0.5])],
            },
            ["one", "other"],
        ),
    ],
    ids=["points", "a point each"],
)
def test_a_firing_prepares_its_series_together_as_each_alone(exported, takes, one_pass):
    """advance_many gives every due series exactly what advance gives it alone: the one-pass
    case (a saved series extended one grid step per point, one part or two) and the series it
    hands back to advance (a gap to fill, a late point, a repeat, a cold series)."""
    model = model_info(exported[0])
    state = saved_at(T40[19], 3.5)
    S, U = len(model.state_size), model.state_size[0]
    state.state = np.linspace(0, 1, S * U, dtype=np.float32).reshape(S, U)
    state.digest = 2**64 - 5  # the sum wraps
    slots = {sid: streaming.SeriesSlot(saved=None if sid == "cold" else state) for sid in takes}
    together, hashes = streaming.advance_many(takes, slots, model)
    assert sorted(hashes) == one_pass  # the one-pass case, and only it
    assert list(together) == list(takes)
    for sid, parts in takes.items():
        alone = streaming.advance(sid, parts, [], slots[sid].saved, model)
        got = together[sid]
        assert (got.status, len(got.rejected), got.waiting == []) == (
            alone.status,
            len(alone.rejected),
            alone.waiting == [],
        ), sid
        assert (got.work is None) == (alone.work is None), sid
        if alone.work is None:
            continue
        for name in ("features", "observed", "initial_state", "last_raw"):
            a, b = getattr(got.work, name), getattr(alone.work, name)
            if a is None or b is None:  # a cold start has no initial state
                assert a is b, (sid, name)
                continue
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), (sid, name)
        for name in ("status", "first_timestamp", "last_timestamp", "digest", "loc", "scale"):
            assert getattr(got.work, name) == getattr(alone.work, name), (sid, name)
        np.testing.assert_array_equal(got.consumed.timestamp, alone.consumed.timestamp)
        recent = streaming.remember(
            streaming.Recent.empty(), got.consumed, got.work.last_timestamp, 10**15, hashes.get(sid)
        )
        expected = streaming.remember(
            streaming.Recent.empty(), alone.consumed, alone.work.last_timestamp, 10**15
        )
        assert recent.hashes.tobytes() == expected.hashes.tobytes(), sid


def test_state_and_part_encodings_round_trip_without_pickle():
    state = saved_at("2021-01-01", 2.5)
    state.digest = 2**64 - 1
    back = streaming.decode_state(streaming.encode_state(state))
    assert back.digest == state.digest and back.last_timestamp == state.last_timestamp
    np.testing.assert_array_equal(back.state, state.state)
    assert back.state.dtype == np.float32 and back.quantiles.shape == (2, 3)
    original = part(pd.date_range("2021-01-01", periods=3, freq="h"), [1.0, 2.0, 3.0])
    decoded, arrival = streaming.decode_part(streaming.encode_part(original, 42))
    assert arrival == 42 and decoded.source == "m"
    np.testing.assert_array_equal(decoded.timestamp, original.timestamp)


def test_shards_are_stable_and_a_shard_book_round_trips_without_pickle():
    # CRC-32, not Python's salted hash: the same shard in every process.
    assert streaming.shard_of("series-000000", 16) == 566372313 % 16
    assert {streaming.shard_of(f"s{k}", 4) for k in range(100)} == {0, 1, 2, 3}
    original = part(pd.date_range("2021-01-01", periods=3, freq="h"), [1.0, 2.0, 3.0])
    slot = streaming.SeriesSlot(
        saved_at("2021-01-01", 2.5), streaming.Recent.empty(), [original], None, "too_short"
    )
    back = streaming.decode_slot(streaming.encode_slot(slot))
    assert back.saved.last_timestamp == slot.saved.last_timestamp and back.latest is None
    assert back.latest_status == "too_short" and len(back.waiting) == 1
    np.testing.assert_array_equal(back.waiting[0].value, original.value)
    # The step's state cell: the columnar book through its coder, plain bytes.
    coder = step._AdvanceShardFn.SERIES.coder
    book = ShardBook.empty().updated({"b": slot, "a": streaming.SeriesSlot()})
    encoded = coder.encode(book)
    assert isinstance(encoded, bytes) and coder.encode(coder.decode(encoded)) == encoded
    a, b = coder.decode(encoded).slots([0, 1], ["a", "b"])
    assert a.saved is None and b.saved.last_timestamp == slot.saved.last_timestamp
    series_id, item = streaming.decode_keyed_part(
        streaming.encode_keyed_part("a", streaming.Pending(7, original))
    )
    assert series_id == "a" and item.arrival == 7
    assert streaming.decode_times(streaming.encode_times({"b": 2, "a": 1})) == {"a": 1, "b": 2}


def test_an_arrival_reads_of_a_series_what_the_firing_decodes():
    # classify needs only the saved state's last point and the recent hashes; what the book
    # gives an arrival must be exactly what the firing's full slot holds (cold and saved
    # series, with waiting parts and held forecasts).
    original = part(pd.date_range("2021-01-01", periods=3, freq="h"), [1.0, 2.0, 3.0])
    recent = streaming.Recent(np.array([5, 9], np.int64), np.array([11, 2**64 - 1], np.uint64))
    for slot in (
        streaming.SeriesSlot(),
        streaming.SeriesSlot(None, recent, [original]),
        streaming.SeriesSlot(saved_at("2021-01-01", 2.5), recent, [original], None, "full"),
        streaming.SeriesSlot(saved_at("2021-01-02", 1.0), recent, [], saved_at("2021-01-02", 3.0)),
    ):
        book = ShardBook.decode(ShardBook.empty().updated({"a": slot}).encode())
        last, seen = book.last_point(0), book.recent(0)
        full = book.slots([0], ["a"])[0]
        if full.saved is None:
            assert last is None
        else:
            assert last.last_timestamp == full.saved.last_timestamp
            np.testing.assert_array_equal(last.last_raw, full.saved.last_raw)
        np.testing.assert_array_equal(seen.timestamp, full.recent.timestamp)
        np.testing.assert_array_equal(seen.hashes, full.recent.hashes)
        late = part(pd.date_range("2020-12-31 23:00", periods=3, freq="h"), [1.0, 2.0, 3.0])
        np.testing.assert_array_equal(
            streaming.classify(late, last, seen), streaming.classify(late, full.saved, full.recent)
        )


def test_a_shard_firing_takes_exactly_the_series_due_then():
    t = pd.date_range("2021-01-01", periods=4, freq="h")
    us = lambda ts: ts.value // 1000  # noqa: E731
    times = {"a": us(t[1]), "b": us(t[1]), "c": us(t[3])}
    assert streaming.earliest(times) == us(t[1])
    assert streaming.due_series(times, us(t[1])) == ["a", "b"]
    assert streaming.due_series(times, us(t[0])) == []
    pending = [
        streaming.Pending(us(t[1]), part([t[1]], [1.0])),
        streaming.Pending(us(t[2]), part([t[2]], [2.0])),
    ]
    take, keep, upcoming = streaming.take_due(pending, us(t[1]), 0)
    assert [list(p.timestamp) for p in take] == [[t[1].value]]
    assert len(keep) == 1 and upcoming == us(t[2])
    assert streaming.take_due(keep, us(t[1]), 0) == ([], keep, us(t[2]))


def test_a_repeated_firing_keeps_the_shards_next_flush(exported, tmp_path):
    """The issue-16 stall: a shard's firing at t1 takes series a and re-arms the flush timer
    for b at t2; the runner delivers the t1 firing again, clearing the timer. The shard must
    still flush b at t2 (it used to keep no timer, and b's points were never consumed)."""
    model_path, frame = exported
    model = model_info(model_path)
    config = StreamConfig(model=model_path, output=str(tmp_path), input_pattern="*", shards=1)
    fn = step._AdvanceShardFn(config, model, [])
    fn.setup()
    shard = DirectKey(fn, 0)
    (a, rows_a), (b, rows_b) = list(frame.groupby("series_id"))[:2]
    t1, t2 = 1_000_000, 2_000_000
    for series_id, rows, at in ((a, rows_a, t1), (b, rows_b, t2)):
        arrived = part(rows.timestamp, rows.value, rows=np.arange(1, len(rows) + 1))
        assert shard.process((0, [(series_id, arrived)]), at) == []
    assert shard.timers == {"flush": t1}

    def forecasts(outputs):
        return [out[0] for out in outputs if isinstance(out, tuple)]

    assert forecasts(shard.fire("flush", fn.on_flush)) == [a]
    assert shard.timers == {"flush": t2}
    assert shard.fire("flush", fn.on_flush, at=t1) == []  # the same firing, delivered again
    assert shard.timers == {"flush": t2}
    assert forecasts(shard.fire("flush", fn.on_flush)) == [b]
    assert shard.timers == {}


def test_a_repeated_firing_keeps_the_next_window_emission_and_snapshot(exported, tmp_path):
    """The same for ``--emit window`` and the state snapshots: a firing delivered again after
    elements armed the next window end re-arms it, and takes no snapshot of the next window's
    states under the earlier window's end."""
    model_path, frame = exported
    model = model_info(model_path)
    hour = 3_600_000_000
    config = StreamConfig(
        model=model_path, output=str(tmp_path), input_pattern="*", shards=1, emit="window"
    )
    fn = step._AdvanceShardFn(config, model, [])
    fn.setup()
    shard = DirectKey(fn, 0)
    (a, rows_a), (b, rows_b) = list(frame.groupby("series_id"))[:2]
    for series_id, rows, at in ((a, rows_a, 10), (b, rows_b, hour + 10)):
        arrived = part(rows.timestamp, rows.value, rows=np.arange(1, len(rows) + 1))
        shard.process((0, [(series_id, arrived)]), at)
    states = [out for out in shard.fire("flush", fn.on_flush) if not isinstance(out, tuple)]
    first_end = hour - 1
    assert shard.timers == {"flush": hour + 10, "emit": first_end}
    assert [out[0] for out in shard.fire("emit", fn.on_emit)] == [a]
    shard.fire("flush", fn.on_flush)  # b, in the second window: emit armed at its end
    assert shard.timers == {"emit": 2 * hour - 1}
    assert shard.fire("emit", fn.on_emit, at=first_end) == []  # delivered again
    assert shard.timers == {"emit": 2 * hour - 1}
    assert [out[0] for out in shard.fire("emit", fn.on_emit)] == [b]

    snapshots = DirectKey(sinks._SnapshotShardFn(config, model, []), 0)
    snapshots.fn.setup()
    (advanced,) = [value for value in states if value.tag == stream_options.STATES]
    snapshots.process(advanced.value, 10)
    assert snapshots.timers == {"snapshot": first_end}
    ((_, (key, end, _)),) = snapshots.fire("snapshot", snapshots.fn.on_snapshot)
    assert (key, end) == (0, first_end)
    snapshots.process(advanced.value, hour + 10)
    assert snapshots.fire("snapshot", snapshots.fn.on_snapshot, at=first_end) == []
    assert snapshots.timers == {"snapshot": 2 * hour - 1}
    ((_, (key, end, _)),) = snapshots.fire("snapshot", snapshots.fn.on_snapshot)
    assert end == 2 * hour - 1


def test_a_firings_columnar_path_equals_the_slot_path_byte_for_byte(exported, tmp_path):
    """The series in the usual case advance as columns of the shard's book
    (``_advance_columns``); every other series goes through its slot (``advance_many``,
    ``run_lanes``, ``remember``). With the columnar path off, every firing must give the same
    forecasts, snapshot states and dead letters, and leave the same book bytes, while series
    in and out of the usual case fire together: two points at once, a gap, a repeat within
    an arrival, a late point and a repeat of a consumed one."""
    model_path, frame = exported
    model = model_info(model_path)
    cut = END - 8 * HOUR
    history = frame[frame.timestamp <= cut]
    batch(model_path, history, tmp_path, "b", state_out=str(tmp_path / "s"))
    files, _ = load_state_files(str(tmp_path / "s"), model)
    values = {sid: g.set_index("timestamp")["value"] for sid, g in frame.groupby("series_id")}
    a, b, c, d = sorted(values)

    def at(series_id, *hours, value=None):
        times = [cut + hour * HOUR for hour in hours]
        given = [values[series_id][t] if value is None else value for t in times]
        return (series_id, part(times, given))

    arrivals = [
        [at(s, 1) for s in (a, b, c, d)],  # from --state-in (not in the book yet): slots
        [at(a, 2, 3), at(b, 2), at(c, 2), at(d, 2)],  # a: two points, the others one
        [at(a, 4), at(b, 4), at(c, 3), at(c, 3), at(d, 3)],  # b: a gap; c: a repeat
        [at(a, 5), at(b, 5), at(c, 4), at(d, 4), at(d, 1, value=99.0), at(d, 2)],  # late; seen
    ]
    config = StreamConfig(model=model_path, output=str(tmp_path), input_pattern="*", shards=1)
    runs = {}
    # (columns, whole): the usual firing as columns, and an arrival taken whole when all its
    # series are due (_whole_arrival); both off: every series through its slot and take_due.
    for columns, whole in ((True, True), (True, False), (False, False)):
        fn = step._AdvanceShardFn(config, model, files)
        fn.setup()
        through, wholes = [], []
        if columns:
            advance_columns = fn._advance_columns

            def spy(book, takes, advance_columns=advance_columns, through=through):
                out = advance_columns(book, takes)
                through.append(sorted(state.series_id for state in out[0]))
                return out

            fn._advance_columns = spy
        else:
            fn._advance_columns = lambda book, columns: ([], 0, columns.parts())
        if whole:
            whole_arrival = fn._whole_arrival

            def taken(*args, whole_arrival=whole_arrival, wholes=wholes):
                wholes.append(whole_arrival(*args) is not None)
                return None if not wholes[-1] else whole_arrival(*args)

            fn._whole_arrival = taken
        else:
            fn._whole_arrival = lambda *args: None
        key = DirectKey(fn, 0)
        firings, kept = [], []
        for k, parts in enumerate(arrivals):
            micros = int((cut + (k + 1) * HOUR).value // 1000)
            outputs = key.process((0, parts), micros) + key.fire("flush", fn.on_flush)
            firings.append(outputs)
            # every state cell's bytes (book, buffer, flush times) and the timers
            kept.append(({n: c._data for n, c in key.cells.items()}, dict(key.timers)))
        runs[columns, whole] = (firings, kept, through, wholes)
    # Arrivals 1, 2 and 4 are taken whole; 3 (c twice) goes through take_due.
    assert runs[True, True][3] == [True, True, False, True]
    for used in ((True, True), (True, False)):
        assert runs[used][2] == [[], [b, c, d], [a, d], [a, b, c, d]]  # the rest: slots
    for used in ((True, True), (True, False)):
        compare_firings(runs[used], runs[False, False])
    assert sum(len(out) for out in runs[True, True][0]) > 0


def compare_firings(run, reference) -> None:
    """The same forecasts, snapshot states, dead letters, state cells and timers."""
    for fast, slow in zip(run[0], reference[0], strict=True):
        assert len(fast) == len(slow)
        forecasts = [sorted(o for o in out if isinstance(o, tuple)) for out in (fast, slow)]
        tagged = [
            {o.tag: o.value for o in out if not isinstance(o, tuple) and o.tag == "states"}
            for out in (fast, slow)
        ]
        rejected = [
            [o.value for o in out if not isinstance(o, tuple) and o.tag == "rejected"]
            for out in (fast, slow)
        ]
        assert [f[:2] for f in forecasts[0]] == [f[:2] for f in forecasts[1]]
        for x, y in zip(forecasts[0], forecasts[1]):
            assert streaming.encode_state(x[2]) == streaming.encode_state(y[2]), x[0]
        if tagged[0]:
            states = [sorted(t["states"][1], key=lambda s: s.series_id) for t in tagged]
            assert [streaming.encode_state(s) for s in states[0]] == [
                streaming.encode_state(s) for s in states[1]
            ]
        assert len(rejected[0]) == len(rejected[1])
        for x, y in zip(rejected[0], rejected[1]):
            pd.testing.assert_frame_equal(x, y)
    assert run[1] == reference[1]  # after each firing: every state cell, byte for byte


def test_messages_in_json_lines_and_csv_are_validated_like_files():
    columns = InputColumns()
    payload = (
        b'{"series_id": "a", "timestamp": "2021-01-01T00:00:00", "value": 1.5}\n'
        b"not json\n"
        b'{"series_id": "a", "timestamp": "2021-01-01T01:00:00", "value": "x"}\n'
    )
    result = streaming.parse_message(payload, columns, "pubsub:s/1")
    assert result.rows_read == 3 and len(result.parts) == 1
    reasons = pd.concat(result.rejected).set_index("row_number")["reason"].to_dict()
    assert reasons == {2: "malformed_row", 3: "invalid_value"}
    csv = b"series_id,timestamp,value\nb,2021-01-01T00:00:00,2\nb,2021-01-01T01:00:00,3\n"
    result = streaming.parse_message(csv, columns, "kafka:t")
    assert result.rows_read == 2 and result.parts[0][0] == "b"
    np.testing.assert_array_equal(result.parts[0][1].row_number, [2, 3])


# --- TestStream runs against the batch job ---------------------------------------------------


def message(rows: pd.DataFrame) -> bytes:
    lines = [
        json.dumps(
            {"series_id": r.series_id, "timestamp": r.timestamp.isoformat(), "value": r.value}
        )
        for r in rows.itertuples(index=False)
    ]
    return ("\n".join(lines) + "\n").encode()


class _PollMessages(beam.DoFn):
    """A wall-clock source like the file watcher on the DirectRunner: a self-renewing
    watermark timer, one message per firing, stamped with the time it is sent."""

    NEXT = userstate.ReadModifyWriteStateSpec("next", VarIntCoder())
    POLL = userstate.TimerSpec("poll", TimeDomain.WATERMARK)

    def __init__(self, messages: list[bytes]):
        self._messages = messages

    def process(self, element, poll=beam.DoFn.TimerParam(POLL)):
        poll.set(Timestamp(0))

    @userstate.on_timer(POLL)
    def on_poll(self, sent=beam.DoFn.StateParam(NEXT), poll=beam.DoFn.TimerParam(POLL)):
        k = sent.read() or 0
        if k < len(self._messages):
            sent.write(k + 1)
            yield TimestampedValue((f"poll-{k}", self._messages[k]), Timestamp.now())
            poll.set(Timestamp(0))


def run_stream(
    model_path, deliveries, output, *, lateness="0s", state_in=None, poll=False, **settings
):
    """Run the stream on a TestStream: ``deliveries`` is a list of ``(rows, watermark)``;
    each row set becomes one message timestamped at its newest point, then the watermark
    moves to ``watermark`` (None: stays). ``poll``: the messages come from a wall-clock poll
    loop instead (:class:`_PollMessages`; the watermarks are ignored)."""
    model = model_info(model_path)
    config = stream_job.StreamConfig(
        model=model_path,
        output=str(output),
        state_in=str(state_in) if state_in else None,
        horizon=model.horizon,
        lateness_us=streaming.parse_duration(lateness, "--allowed-lateness"),
        columns=InputColumns(covariates=model.covariates),
        **settings,
    )
    state_files = load_state_files(config.state_in, model)[0] if state_in else []
    events = test_stream.TestStream()
    for k, (rows, watermark) in enumerate(deliveries):
        if len(rows):
            at = rows["timestamp"].max().value / 1e9
            events.add_elements([TimestampedValue((f"msg-{k}", message(rows)), at)])
        if watermark is not None:
            events.advance_watermark_to(watermark.value / 1e9)
    events.advance_watermark_to_infinity()
    options = PipelineOptions([])
    options.view_as(StandardOptions).streaming = True
    fix_streaming_engine()  # as rnncast stream does on the DirectRunner
    if poll:
        options.view_as(StandardOptions).runner = "BundleBasedDirectRunner"
    with beam.Pipeline(options=options) as pipeline:
        if poll:  # on the engine rnncast stream runs on the DirectRunner (see job.run_config)
            messages = [message(rows) for rows, _ in deliveries if len(rows)]
            arrivals = (
                pipeline | beam.Create([("poll", None)]) | beam.ParDo(_PollMessages(messages))
            )
        else:
            arrivals = pipeline | events
        read = arrivals | stream_job.ReadPoints(config.columns, messages=True)
        _ = read | stream_job.StreamForecast(config, model, state_files)


def stream_forecasts(output) -> pd.DataFrame:
    files = sorted((output / "forecasts").glob("*/*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def latest(frame: pd.DataFrame) -> pd.DataFrame:
    ready = frame[frame["step"].notna()]
    newest = ready.groupby("series_id")["origin"].transform("max")
    out = ready[ready["origin"] == newest].drop_duplicates(["series_id", "step"])
    return out.sort_values(["series_id", "step"]).reset_index(drop=True)


def dead_letters(output) -> pd.DataFrame:
    rows = [
        json.loads(line)
        for f in sorted((output / "rejected").glob("*/*.jsonl"))
        for line in f.read_text().splitlines()
    ]
    return pd.DataFrame(rows, columns=["source", "row_number", "reason", "detail", "row"])


def batch(model_path, rows, tmp_path, name, **fields):
    """The batch forecast job on ``rows`` (a library call: ``ForecastConfig`` and
    ``run_config``, which checks the config against the model as ``rnncast forecast`` does)."""
    source = write_csv(rows, tmp_path / f"{name}.csv")
    config = forecast_job.ForecastConfig(
        model=model_path, input=source, output=str(tmp_path / name), **fields
    )
    forecast_job.run_config(config, PipelineOptions([]))
    meta = json.loads((tmp_path / name / "metadata.json").read_text())
    frame = pd.concat(pd.read_parquet(tmp_path / name / f["name"]) for f in meta["files"])
    return frame.sort_values(["series_id", "step"]).reset_index(drop=True)


def assert_same_forecasts(stream, reference, scale):
    reference = reference[reference["step"].notna()].reset_index(drop=True)
    assert list(stream.series_id) == list(reference.series_id)
    assert list(stream.origin) == list(reference.origin)
    difference = np.abs(stream[COLUMNS].to_numpy() - reference[COLUMNS].to_numpy())
    relative = difference / stream["series_id"].map(scale).to_numpy()[:, None]
    assert relative.max() < 1e-5, relative.max()


def snapshot_scale(output) -> dict:
    return pd.read_parquet(output / "state" / "state").set_index("series_id")["scale"].to_dict()


def test_stream_equals_batch_with_disorder_duplicates_late_points_and_a_new_series(
    exported, tmp_path
):
    model_path, frame = exported
    live_steps = 12
    start = END - (live_steps - 1) * HOUR  # live clock: start, start + 1h, ..., END
    history = frame[frame.timestamp < start]
    live = frame[frame.timestamp >= start]
    newcomer = synthetic.generate_series(7, 24, seed=4, gap_fraction=0.0)
    newcomer = newcomer.assign(
        series_id="newcomer", timestamp=END - (len(newcomer) - 1) * HOUR + np.arange(24) * HOUR
    )
    a, b, c = "series-000000", "series-000001", "series-000002"
    deliveries = [
        (history[history.series_id == s], None) for s in sorted(history.series_id.unique())
    ]
    deliveries.append((newcomer[newcomer.timestamp < start], start - HOUR))  # too short: waits
    held_b = live[(live.series_id == b)].iloc[2]  # withheld, then sent when far too late
    for k in range(live_steps):
        now = start + k * HOUR
        rows = pd.concat([live[live.timestamp == now], newcomer[newcomer.timestamp == now]])
        if k == 3:
            rows = rows[rows.series_id != a]  # a's point arrives one step later, out of order
        if k == 4:
            rows = pd.concat([rows, live[(live.series_id == a) & (live.timestamp == now - HOUR)]])
        rows = rows[~((rows.series_id == b) & (rows.timestamp == held_b.timestamp))]
        if k == 6:
            rows = pd.concat([rows, rows[rows.series_id == c]])  # a repeat, both buffered
        if k == 8:
            rows = pd.concat([rows, live[(live.series_id == c) & (live.timestamp == start)]])
            rows = pd.concat([rows, held_b.to_frame().T])  # b has moved past it: late
        deliveries.append((rows, now))
    output = tmp_path / "stream"
    run_stream(model_path, deliveries, output, lateness="1h")

    letters = dead_letters(output)
    assert sorted(letters.reason) == ["duplicate", "duplicate", "late"]
    late = letters[letters.reason == "late"].row.iloc[0]
    assert pd.Timestamp(late["timestamp"]) == held_b.timestamp and late["series_id"] == b

    everything = pd.concat([frame, newcomer])
    consumed = everything[
        ~((everything.series_id == b) & (everything.timestamp == held_b.timestamp))
    ]
    reference = batch(model_path, consumed, tmp_path, "batch")
    got = latest(stream_forecasts(output))
    assert set(got.status) == {"incremental"} and "newcomer" in set(got.series_id)
    assert (reference.set_index("series_id").loc["newcomer", "scaling"] == "own_history").all()
    assert_same_forecasts(got, reference, snapshot_scale(output))
    statuses = set(stream_forecasts(output).status)
    assert {"full", "incremental", "too_short"} <= statuses


def test_bootstrap_from_batch_state_and_hand_back_to_batch(exported, tmp_path):
    model_path, frame = exported
    cut, cut2 = END - 20 * HOUR, END - 8 * HOUR
    first = frame[frame.timestamp <= cut]
    batch(model_path, first, tmp_path, "b1", state_out=str(tmp_path / "s1"))
    middle = frame[(frame.timestamp > cut) & (frame.timestamp <= cut2)]
    deliveries = [(middle[middle.timestamp == t], t) for t in sorted(middle.timestamp.unique())]
    output = tmp_path / "stream"
    run_stream(
        model_path,
        deliveries,
        output,
        state_in=tmp_path / "s1",
        emit="window",
        window_us=6 * 3_600_000_000,
    )
    forecasts = stream_forecasts(output)
    assert set(forecasts.status) == {"incremental"}
    # --emit window: one forecast (H rows) per series per window file, 12 hours in 6 h windows.
    assert len(list((output / "forecasts").iterdir())) >= 2
    for f in (output / "forecasts").glob("*/*.parquet"):
        rows = pd.read_parquet(f)
        assert rows.groupby("series_id").size().max() == model_info(model_path).horizon
    reference = batch(model_path, frame[frame.timestamp <= cut2], tmp_path, "b2")
    assert_same_forecasts(latest(forecasts), reference, snapshot_scale(output))
    # The snapshot is a --state-in for the batch job, which continues where the stream ended.
    rest = frame[frame.timestamp > cut2]
    continued = batch(model_path, rest, tmp_path, "b3", state_in=str(output / "state"))
    assert set(continued.status) == {"incremental"}
    full = batch(model_path, frame, tmp_path, "b4")
    assert_same_forecasts(continued, full, snapshot_scale(output))


def test_one_shard_for_every_series_still_equals_batch(exported, tmp_path):
    """All series in one shard: those due together advance as lanes of one model run, and each
    gets exactly the forecasts and state it would get alone."""
    model_path, frame = exported
    cut = END - 6 * HOUR
    first = frame[frame.timestamp <= cut]
    batch(model_path, first, tmp_path, "b1", state_out=str(tmp_path / "s1"))
    rest = frame[frame.timestamp > cut]
    ticks = sorted(rest.timestamp.unique())
    deliveries = [(rest[rest.timestamp == t], t) for t in ticks]
    for shards in (1, 3):
        output = tmp_path / f"stream-{shards}"
        run_stream(model_path, deliveries, output, state_in=tmp_path / "s1", shards=shards)
        got = latest(stream_forecasts(output))
        assert set(got.status) == {"incremental"} and got.series_id.nunique() == 4
        reference = batch(model_path, frame, tmp_path, f"b-{shards}")
        assert_same_forecasts(got, reference, snapshot_scale(output))
        # The snapshot: one file per shard holding series, in one committed state directory.
        meta = json.loads((output / "state" / "metadata.json").read_text())
        expected = {shard_file(k, shards).split("/")[1] for k in range(shards)}
        held = {streaming.shard_of(s, shards) for s in frame.series_id.unique()}
        assert len(meta["files"]) == len(held) and meta["num_series"] == 4
        assert {f["name"].split("-", 2)[2] for f in meta["files"]} <= expected
        files = load_state_files(str(output / "state"), model_info(model_path))[0]
        assert len(files) == len(held)


class _Burst(beam.DoFn):
    """A polling source: one element per round for ``count`` rounds, then idle rounds (each
    still hands the next step an empty bundle), as the file watcher between files."""

    ROUND = userstate.ReadModifyWriteStateSpec("round", VarIntCoder())
    POLL = userstate.TimerSpec("poll", TimeDomain.WATERMARK)

    def __init__(self, count: int, idle_rounds: int):
        self._count, self._idle = count, idle_rounds

    def process(self, element, poll=beam.DoFn.TimerParam(POLL)):
        poll.set(Timestamp(0))

    @userstate.on_timer(POLL)
    def on_poll(self, rounds=beam.DoFn.StateParam(ROUND), poll=beam.DoFn.TimerParam(POLL)):
        k = rounds.read() or 0
        rounds.write(k + 1)
        if k < self._count:
            yield TimestampedValue(("key", k), Timestamp.now())
        if k < self._count + self._idle:
            poll.set(Timestamp(0))


class _SlowRecord(beam.DoFn):
    """A stateful step slower than its source, with a flush timer per element (as the
    stream's step): appends each element it sees to ``path``."""

    SEEN = userstate.BagStateSpec("seen", VarIntCoder())
    FLUSH = userstate.TimerSpec("flush", TimeDomain.WATERMARK)

    def __init__(self, path: str):
        self._path = path

    def process(
        self,
        element,
        timestamp=beam.DoFn.TimestampParam,
        seen=beam.DoFn.StateParam(SEEN),
        flush=beam.DoFn.TimerParam(FLUSH),
    ):
        time.sleep(0.02)
        seen.add(element[1])
        flush.set(timestamp)
        with open(self._path, "a") as out:
            out.write(f"{element[1]} {time.monotonic()}\n")

    @userstate.on_timer(FLUSH)
    def on_flush(self, seen=beam.DoFn.StateParam(SEEN)):
        time.sleep(0.02)
        seen.clear()


def test_the_streaming_engine_runs_a_stateful_steps_bundles_in_order_without_starving(tmp_path):
    """On the DirectRunner's streaming engine, fixed as ``rnncast stream`` runs it: bundles
    of a stateful step slower than its polling source are processed in the order they were
    produced, each before the source's idle rounds end (Beam's own queue is last in, first
    out, and the empty bundle of each round kept older bundles waiting: issue 16's stall)."""
    fix_streaming_engine()
    seen = tmp_path / "seen.txt"
    options = PipelineOptions([])
    options.view_as(StandardOptions).streaming = True
    options.view_as(StandardOptions).runner = "BundleBasedDirectRunner"
    with beam.Pipeline(options=options) as pipeline:
        _ = (
            pipeline
            | beam.Create([("poll", None)])
            | beam.ParDo(_Burst(count=30, idle_rounds=400))
            | beam.ParDo(_SlowRecord(str(seen)))
        )
    ended = time.monotonic()
    records = [line.split() for line in seen.read_text().splitlines()]
    assert [int(k) for k, _ in records] == list(range(30))
    # Every element was recorded well before the 400 idle rounds of the source had ended.
    assert ended - float(records[-1][1]) > 1.0


def test_a_wall_clock_source_on_the_direct_runner_consumes_every_point(exported, tmp_path):
    """Messages from a wall-clock poll loop on the real DirectRunner (as ``rnncast stream``
    runs it), one point each, in time order, every series in one shard: each point is
    consumed in the order it came, none is dead-lettered as late, and the last forecasts
    equal the batch job's. (On Beam's own engine, which runs a stateful step's bundles last
    in, first out, later points overtook earlier ones and those became late dead letters.)"""
    model_path, frame = exported
    cut = END - 10 * HOUR
    batch(model_path, frame[frame.timestamp <= cut], tmp_path, "b1", state_out=str(tmp_path / "s1"))
    rest = frame[frame.timestamp > cut].sort_values(["timestamp", "series_id"])
    deliveries = [(rest.iloc[[k]], None) for k in range(len(rest))]
    output = tmp_path / "stream"
    run_stream(model_path, deliveries, output, state_in=tmp_path / "s1", shards=1, poll=True)
    assert dead_letters(output).empty
    got = latest(stream_forecasts(output))
    reference = batch(model_path, frame, tmp_path, "b2")
    assert_same_forecasts(got, reference, snapshot_scale(output))


# --- a real file-watching run ------------------------------------------------------------------


def test_file_watching_run_picks_up_new_files_and_stops_by_itself(exported, tmp_path):
    model_path, frame = exported
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    cuts = [END - 10 * HOUR, END - 5 * HOUR, END]
    chunks = [
        frame[
            (frame.timestamp <= cut) & (frame.timestamp > (cuts[i - 1] if i else pd.Timestamp(0)))
        ]
        for i, cut in enumerate(cuts)
    ]
    output = tmp_path / "out"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    job = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rnncast",
            "stream",
            "--model",
            model_path,
            "--input-pattern",
            str(incoming / "*.csv"),
            "--output",
            str(output),
            "--poll-interval",
            "0.2",
            "--max-files",
            str(len(chunks) + 1),
            "--stop-after-seconds",
            "240",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        for k, (chunk, cut) in enumerate(zip(chunks, cuts)):
            name = incoming / f"points-{k}.csv"
            write_csv(chunk, str(name) + ".tmp")
            os.rename(str(name) + ".tmp", name)  # lands whole, after the job started
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                files = list((output / "forecasts").glob("*/*.parquet"))
                if files and (pd.concat(pd.read_parquet(f) for f in files).origin == cut).any():
                    break
                assert job.poll() is None, job.stdout.read()
                time.sleep(0.5)
            else:
                pytest.fail(f"no forecast from {name} within 180 s")
            if k == 0:  # a running job prints its stacks on SIGUSR1 and goes on
                job.send_signal(signal.SIGUSR1)
        (incoming / "broken.csv").write_text("id,when,amount\na,2021-01-01,1\n")
        out, _ = job.communicate(timeout=180)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 0, out
    assert "stopped watching after 4 file(s)" in out, out
    assert "(most recent call first)" in out and "cli.py" in out
    assert "dead letters {'unreadable_file': 1}" in out
    broken = dead_letters(output).iloc[0]
    assert broken.source.endswith("broken.csv") and "missing column(s)" in broken.row["error"]
    reference = batch(model_path, frame, tmp_path, "batch")
    assert_same_forecasts(latest(stream_forecasts(output)), reference, snapshot_scale(output))
    assert load_state_files(str(output / "state"), model_info(model_path))[0]
