"""The stream's columnar shard book (``pipeline/core/shard_book.py``): pure numpy, no Beam.
The book must hold exactly the slots written (like a dict of slots, whatever the strings,
shapes and remainders), give the same bytes for the same slots, and its columnar advance must
equal writing the advanced slots one by one."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from rnncast.pipeline.core import forecasting, streaming
from rnncast.pipeline.core.series import SeriesPart
from rnncast.pipeline.core.shard_book import ShardBook

MAIN = (1, 2, 3, 4, 3)  # W, S, U, H, Q of the book's model
ODD = (2, 1, 2, 2, 1)  # a state of another shape (kept whole, as a remainder)
HOUR = 3_600 * 10**9
int64s = st.integers(-(2**62), 2**62)


def make_state(series_id: str, shape, last: int, seed: int, scaling="training", model="m"):
    W, S, U, H, Q = shape
    rng = np.random.default_rng(seed)
    return forecasting.SeriesState(
        series_id=series_id,
        first_timestamp=last - 100 * HOUR,
        last_timestamp=last,
        last_raw=rng.normal(size=W),
        digest=int(rng.integers(0, 2**63)) * 2 + 1,  # above 2**63 too
        loc=float(rng.normal()),
        scale=float(rng.uniform(0.5, 2.0)),
        scaling=scaling,
        state=rng.normal(size=(S, U)).astype(np.float32),
        point=rng.normal(size=H),
        quantiles=rng.normal(size=(H, Q)),
        model_fingerprint=model,
    )


@st.composite
def slots(draw, shapes=(MAIN, ODD)):
    seed = draw(st.integers(0, 2**16))
    last = draw(st.integers(10**9, 10**12)) * HOUR // 10**9
    saved = None
    if draw(st.booleans()):
        shape = draw(st.sampled_from(shapes))
        scaling = draw(st.sampled_from(["training", "own_history"]))
        model = draw(st.sampled_from(["m", "other-model"]))
        saved = make_state("x", shape, last, seed, scaling, model)
    count = draw(st.integers(0, 5))
    times = np.sort(np.array(draw(st.lists(int64s, min_size=count, max_size=count)), np.int64))
    hashes = draw(st.lists(st.integers(0, 2**64 - 1), min_size=count, max_size=count))
    recent = streaming.Recent(times, np.array(hashes, np.uint64))
    waiting = []
    for k in range(draw(st.integers(0, 2))):
        n = draw(st.integers(1, 3))  # (a cold series keeps only parts with points)
        waiting.append(
            SeriesPart(
                f"file-{k}.csv",
                np.arange(n, dtype=np.int64),
                np.arange(n, dtype=np.int64) * HOUR,
                np.linspace(0, 1, n),
                np.zeros((n, 0)),
            )
        )
    latest = make_state("x", draw(st.sampled_from(shapes)), last, seed + 1) if (
        draw(st.booleans())
    ) else None  # fmt: skip
    status = draw(st.sampled_from([None, *forecasting.STATUSES]))
    return streaming.SeriesSlot(saved, recent, waiting, latest, status)


def named(slot: streaming.SeriesSlot, series_id: str) -> streaming.SeriesSlot:
    """The slot with its states named after its series (as a shard's are)."""
    for state in (slot.saved, slot.latest):
        if state is not None:
            state.series_id = series_id
    return slot


def assert_same_state(a, b):
    if a is None or b is None:
        assert a is None and b is None
        return
    for name in ("series_id", "first_timestamp", "last_timestamp", "digest", "loc", "scale"):
        assert getattr(a, name) == getattr(b, name), name
    assert (a.scaling, a.model_fingerprint) == (b.scaling, b.model_fingerprint)
    for name in ("last_raw", "state", "point", "quantiles"):
        x, y = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), name
        assert x.size == y.size


def assert_same_slot(a: streaming.SeriesSlot, b: streaming.SeriesSlot):
    assert_same_state(a.saved, b.saved)
    assert_same_state(a.latest, b.latest)
    assert a.latest_status == b.latest_status
    assert a.recent.timestamp.tobytes() == b.recent.timestamp.tobytes()
    assert a.recent.hashes.astype(np.uint64).tobytes() == b.recent.hashes.tobytes()
    assert len(a.waiting) == len(b.waiting)
    for x, y in zip(a.waiting, b.waiting):
        assert x.source == y.source and x.timestamp.tobytes() == y.timestamp.tobytes()
        assert x.value.tobytes() == y.value.tobytes()


def read(book: ShardBook, series_ids: list[str]) -> list[streaming.SeriesSlot]:
    rows = book.rows(series_ids).tolist()
    assert min(rows, default=0) >= 0
    return book.slots(rows, series_ids)


ids = st.text(min_size=1, max_size=6)  # any text: NUL, non-ASCII, prefixes of each other


@given(
    stored=st.dictionaries(ids, slots(), max_size=12),
    data=st.data(),
    probes=st.lists(ids, max_size=8),
)
@hypothesis_settings(max_examples=150, deadline=None)
def test_a_book_holds_exactly_the_slots_written_like_a_dict(stored, data, probes):
    stored = {series_id: named(slot, series_id) for series_id, slot in stored.items()}
    again = st.sampled_from(sorted(stored)) if stored else ids  # replace, and add
    written = data.draw(st.dictionaries(st.one_of(again, ids), slots(), max_size=5))
    written = {series_id: named(slot, series_id) for series_id, slot in written.items()}
    book = ShardBook.decode(ShardBook.empty().updated(stored).encode())
    book = ShardBook.decode(book.updated(written).encode())  # on top: replace and add
    expected = {**stored, **written}
    assert len(book) == len(expected) and sorted(book.ids()) == sorted(expected)
    for series_id in [*expected, *probes]:
        assert (book.rows([series_id])[0] >= 0) == (series_id in expected)
    for series_id, slot in zip(expected, read(book, list(expected))):
        assert_same_slot(slot, expected[series_id])
        last = book.last_point(int(book.rows([series_id])[0]))
        saved = expected[series_id].saved
        assert (last is None) == (saved is None)
        if saved is not None:  # what an arrival's classification reads
            assert last.last_timestamp == saved.last_timestamp
            assert np.asarray(last.last_raw).tobytes() == saved.last_raw.tobytes()
    # An arrival's one-pass check: a part is known to be all new only where it is.
    series_ids = list(expected)
    shifts = [data.draw(st.integers(-1, 1)) for _ in series_ids]
    parts = []
    for series_id, shift in zip(series_ids, shifts):
        saved = expected[series_id].saved
        at = (0 if saved is None else saved.last_timestamp) + shift
        timestamp = np.array([at + 5, at], np.int64)
        parts.append(SeriesPart("f", np.arange(2), timestamp, np.zeros(2), np.zeros((2, 0))))
    known = book.all_new(book.rows(series_ids), parts)
    for series_id, part, got in zip(series_ids, parts, known.tolist()):
        saved = expected[series_id].saved
        truth = saved is not None and streaming.all_new(part, saved)
        assert got == (truth and book.shapes.fit(saved)), series_id  # (else: one by one)


@given(
    stored=st.dictionaries(ids, slots(shapes=(MAIN,)), max_size=10),
    data=st.data(),
)
@hypothesis_settings(max_examples=150, deadline=None)
def test_the_same_slots_give_the_same_bytes_whatever_was_written_before(stored, data):
    # Determinism of the stream's state: strings pruned and sorted, records of rows without a
    # state zeroed, ids sorted, whatever order and history led to the same slots.
    stored = {series_id: named(slot, series_id) for series_id, slot in stored.items()}
    again = st.sampled_from(sorted(stored)) if stored else ids  # mostly series seen before
    written = data.draw(st.dictionaries(st.one_of(again, ids), slots(shapes=(MAIN,)), max_size=5))
    written = {series_id: named(slot, series_id) for series_id, slot in written.items()}
    layered = ShardBook.empty().updated(stored).updated(written).encode()
    expected = {**stored, **written}
    afresh = ShardBook.empty().updated(dict(reversed(list(expected.items())))).encode()
    assert layered == afresh


def book_of_saved_series(count: int, seed: int, held: int | None = None) -> tuple[ShardBook, dict]:
    """``count`` saved series, each with 0-5 recent points (``held``: each with as many)."""
    rng = np.random.default_rng(seed)
    written = {}
    for k in range(count):
        last = int(rng.integers(1_000, 2_000)) * HOUR
        size = int(rng.integers(0, 6)) if held is None else held
        times = np.sort(last - rng.choice(60, size=size, replace=False) * HOUR)
        recent = streaming.Recent(times, rng.integers(0, 2**63, len(times)).astype(np.uint64))
        written[f"s{k:03d}"] = streaming.SeriesSlot(make_state(f"s{k:03d}", MAIN, last, k), recent)
    return ShardBook.empty().updated(written), written


@given(
    count=st.integers(1, 12),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
@hypothesis_settings(max_examples=100, deadline=None)
def test_advancing_rows_as_columns_equals_writing_each_advanced_slot(count, seed, data):
    """What a firing's columnar path writes (records replaced, recent points extended and cut
    to the horizon, all rows at once) is byte for byte what the slot path writes: each new
    state and :func:`streaming.remember` of each series. Also in the steady state (every
    series of the shard, each holding as many points and gaining as many), which it writes
    as blocks."""
    steady = data.draw(st.booleans())
    book, written = book_of_saved_series(
        count, seed, data.draw(st.integers(0, 5)) if steady else None
    )
    book = ShardBook.decode(book.encode())
    if steady:
        series_ids = sorted(written)
    else:
        series_ids = data.draw(st.lists(st.sampled_from(sorted(written)), min_size=1, unique=True))
    horizon = data.draw(st.sampled_from([0, 3 * HOUR, 24 * HOUR, 10**18]))
    rows = book.rows(series_ids)
    records = book.records(rows)
    gain = data.draw(st.integers(1, 4))
    counts = np.array(
        [gain if steady else data.draw(st.integers(1, 4)) for _ in series_ids], np.int64
    )
    timestamp, hashes, slots = [], [], {}
    rng = np.random.default_rng(seed + 1)
    for k, series_id in enumerate(series_ids):
        old = written[series_id]
        new_times = old.saved.last_timestamp + HOUR * np.arange(1, counts[k] + 1)
        new_hashes = rng.integers(0, 2**63, counts[k]).astype(np.uint64)
        timestamp.append(new_times)
        hashes.append(new_hashes)
        advanced = make_state(series_id, MAIN, int(new_times[-1]), seed + 100 + k)
        advanced.first_timestamp = old.saved.first_timestamp
        records[k]["first"] = advanced.first_timestamp
        records[k]["last"] = advanced.last_timestamp
        records[k]["digest"] = advanced.digest
        records[k]["loc"], records[k]["scale"] = advanced.loc, advanced.scale
        for name in ("last_raw", "state", "point", "quantiles"):
            records[k][name] = getattr(advanced, name)
        recent = streaming.remember_points(
            old.recent, new_times, new_hashes, advanced.last_timestamp, horizon
        )
        slots[series_id] = streaming.SeriesSlot(advanced, recent)
    columns = book.advanced(
        rows, records, np.concatenate(timestamp), np.concatenate(hashes), counts, horizon
    )
    assert columns.encode() == book.updated(slots).encode()
    for state, series_id in zip(book.states(records, series_ids), series_ids):
        assert_same_state(state, slots[series_id].saved)


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=6),  # any text: NUL, separators, non-ASCII
        st.integers(-(2**63), 2**63 - 1),
        max_size=8,
    ),
    st.randoms(use_true_random=False),
)
def test_a_shards_flush_times_round_trip_and_encode_the_same_whatever_the_order(times, rng):
    """The shard's times per series (``TimesCoder``'s bytes): read back exactly, and the same
    bytes for the same times, whatever order they were set in."""
    data = streaming.encode_times(times)
    assert streaming.decode_times(data) == times
    shuffled = list(times.items())
    rng.shuffle(shuffled)
    assert streaming.encode_times(dict(shuffled)) == data
