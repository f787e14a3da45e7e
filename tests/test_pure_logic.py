"""Unit tests of the pure numpy/pandas pieces (no Beam pipeline, no TensorFlow except to
check our protobuf bytes against TensorFlow's own)."""

from __future__ import annotations

import dataclasses
import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnncast.pipeline.core import chunking, series, synthetic, validation
from rnncast.pipeline.io.tfrecord import encode_example, frame_record

HOUR_NS = 3600 * 10**9


@settings(max_examples=60)
@given(
    floats=st.lists(st.floats(width=32, allow_nan=False), max_size=20),
    ints=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=10),
    text=st.binary(max_size=300),
)
def test_encoded_example_is_byte_identical_to_tensorflow(floats, ints, text):
    import tensorflow as tf

    features = {
        "a_bytes": text,
        "b_floats": np.array(floats, np.float32),
        "c_ints": np.array(ints, np.int64),
        "d_scalar": 7,
    }
    ours = encode_example(features)
    proto = tf.train.Example(
        features=tf.train.Features(
            feature={
                "a_bytes": tf.train.Feature(bytes_list=tf.train.BytesList(value=[text])),
                "b_floats": tf.train.Feature(float_list=tf.train.FloatList(value=floats)),
                "c_ints": tf.train.Feature(int64_list=tf.train.Int64List(value=ints)),
                "d_scalar": tf.train.Feature(int64_list=tf.train.Int64List(value=[7])),
            }
        )
    )
    assert tf.train.Example.FromString(ours) == proto
    assert len(ours) == len(proto.SerializeToString(deterministic=True))


def test_tfrecord_framing_reads_back_in_tensorflow(tmp_path):
    import tensorflow as tf

    records = [b"", b"x", bytes(range(256)) * 40]
    (tmp_path / "f.tfrecord").write_bytes(b"".join(frame_record(r) for r in records))
    assert [r.numpy() for r in tf.data.TFRecordDataset(str(tmp_path / "f.tfrecord"))] == records


def test_timestamps_iso_variants_offsets_and_impossible_dates():
    strings = pa.array(
        [
            "2020-01-01T00:00:00",
            "2020-01-01 01:00:00",
            "2020-01-01T03:00:00+02:00",
            "2020-01-01T01:00:00Z",
            "2021-02-30",
            "soon",
            None,
        ]
    )
    got = validation.parse_timestamps(strings)
    hours = (got[:4] - got[0]) // HOUR_NS
    assert hours.tolist() == [0, 1, 1, 1]
    assert (got[4:] == series.NAT).all()


# --- timestamps: every element parsed on its own (issue 11) ---------------------------------

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_GARBAGE = (
    "",
    "soon",
    "12:00",
    "2021-02-30",
    "2020-13-01T00:00:00",
    "2020-01-01T25:00:00",
    "1500-01-01T00:00:00",  # before the ns range
    "3000-06-01",  # after it
    "1500-01-01T00:00:00+01:00",
    "2262-06-01T00:00:00Z",
)


def _reference_ns(text: str | None) -> int:
    """One string on its own with the standard library: naive = UTC, offsets converted."""
    if text is None:
        return series.NAT
    try:
        stamp = datetime.datetime.fromisoformat(text)
    except ValueError:
        return series.NAT
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.timezone.utc)
    ns = (stamp - _EPOCH) // datetime.timedelta(microseconds=1) * 1000
    return ns if -(2**63) < ns < 2**63 else series.NAT


@st.composite
def _timestamp_text(draw) -> str | None:
    kind = draw(st.sampled_from(["naive", "space", "z", "offset", "date", "garbage", "null"]))
    if kind == "garbage":
        return draw(st.sampled_from(_GARBAGE))
    if kind == "null":
        return None
    moment = draw(
        st.datetimes(datetime.datetime(1678, 1, 1), datetime.datetime(2261, 12, 31, 23, 59))
    )
    if kind == "date":
        return moment.strftime("%Y-%m-%d")
    text = moment.strftime("%Y-%m-%dT%H:%M:%S" if kind != "space" else "%Y-%m-%d %H:%M:%S")
    if moment.microsecond and draw(st.booleans()):
        text += f".{moment.microsecond:06d}"
    if kind == "z":
        return text + "Z"
    if kind == "offset":
        minutes = draw(st.integers(-14 * 60, 14 * 60))
        sign = "-" if minutes < 0 else "+"
        return text + f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return text


@settings(max_examples=300)
@given(
    texts=st.lists(_timestamp_text(), min_size=1, max_size=30),
    cuts=st.lists(st.integers(0, 30), max_size=4),
)
def test_timestamps_parse_each_element_alone_whatever_the_batches(texts, cuts):
    expected = [_reference_ns(t) for t in texts]
    bounds = sorted({0, len(texts), *(c for c in cuts if c <= len(texts))})
    pieces = [texts[a:b] for a, b in zip(bounds, bounds[1:])]
    batched = np.concatenate(
        [validation.parse_timestamps(pa.array(p, pa.string())) for p in pieces]
    )
    chunked = validation.parse_timestamps(pa.chunked_array(pieces, pa.string()))
    assert batched.tolist() == expected, list(zip(texts, batched.tolist(), expected))
    assert chunked.tolist() == expected


def test_timestamps_next_to_an_offset_stay_utc():
    # Issue 11: a +09:00 series followed by a naive one; the naive one was moved 9 hours back.
    got = validation.parse_timestamps(
        pa.array(["2020-01-01T09:00:00+09:00", "2020-01-01T00:00:00", "2020-01-01"])
    )
    assert (got == pd.Timestamp("2020-01-01").value).all()


@pytest.mark.parametrize("unit", ["s", "ms", "us"])
def test_native_timestamps_out_of_the_ns_range_are_invalid_not_errors(unit):
    column = pa.array(
        [
            datetime.datetime(1500, 1, 1),
            datetime.datetime(2020, 1, 1),
            None,
            datetime.datetime(3000, 1, 1),
        ],
        pa.timestamp(unit, tz="UTC"),
    )
    got = validation.parse_timestamps(column)
    assert got.tolist() == [series.NAT, pd.Timestamp("2020-01-01").value, series.NAT, series.NAT]
    days = pa.array([datetime.date(1500, 1, 1), datetime.date(2020, 1, 2)], pa.date32())
    assert validation.parse_timestamps(days).tolist() == [
        series.NAT,
        pd.Timestamp("2020-01-02").value,
    ]


def test_numbers_distinguish_nan_literals_from_garbage():
    values, is_number = validation.parse_numbers(pa.array(["1.5", "nan", "inf", "", "x1", "2e3"]))
    assert is_number.tolist() == [True, True, True, False, False, True]
    assert values[0] == 1.5 and values[5] == 2000.0 and np.isinf(values[2])


def test_deduplicate_keeps_first_exact_repeat_and_rejects_all_conflicts():
    rows = series.Observations(
        timestamp=np.array([3, 1, 1, 2, 2, 1], np.int64) * HOUR_NS,
        value=np.array([5.0, 1.0, 1.0, 2.0, 9.0, 1.0]),
        covariates=np.zeros((6, 0)),
        source_index=np.zeros(6, np.int32),
        row_number=np.arange(2, 8, dtype=np.int64),
        sources=("f.csv",),
    )
    unique, rejected = series.deduplicate(rows)
    assert (unique.timestamp // HOUR_NS).tolist() == [1, 3]
    assert unique.row_number.tolist() == [3, 2]  # the first of the repeated rows is kept
    assert sorted(rows.row_number[rejected["duplicate"]].tolist()) == [4, 7]
    assert sorted(rows.row_number[rejected["conflict"]].tolist()) == [5, 6]


def test_time_ordered_rows_deduplicate_and_place_on_the_grid_as_shuffled_rows_do():
    # Time-ordered unique rows and rows on one grid phase take shortcuts; the same rows
    # shuffled (plus one stray off-phase point) go the general way: same unique rows, grid.
    rng = np.random.default_rng(1)
    ts = np.cumsum(rng.integers(1, 4, 300)).astype(np.int64) * HOUR_NS
    n = len(ts)
    rows = series.Observations(
        ts, rng.normal(size=n), rng.normal(size=(n, 2)), np.zeros(n, np.int32),
        np.arange(n, dtype=np.int64), ("f.csv",),
    )  # fmt: skip
    shuffled = rows.subset(rng.permutation(n))
    fast, fast_rejected = series.deduplicate(rows)
    slow, slow_rejected = series.deduplicate(shuffled)
    for name in ("timestamp", "value", "covariates", "row_number"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name))
    assert all(len(v) == 0 for v in [*fast_rejected.values(), *slow_rejected.values()])
    position, grid = series.grid_positions(ts, "h")
    stray = np.sort(np.append(ts, ts[-1] + 60 * 10**9))
    stray_position, stray_grid = series.grid_positions(stray, "h")
    np.testing.assert_array_equal(grid, stray_grid)
    np.testing.assert_array_equal(position, stray_position[:-1])
    assert stray_position[-1] == -1


def test_frequency_votes_and_calendar_frequencies():
    hourly = np.arange(0, 50, dtype=np.int64) * HOUR_NS
    gappy = np.delete(hourly, [3, 10, 11])
    votes = [series.frequency_vote(hourly), series.frequency_vote(gappy)]
    import collections

    aliases = collections.Counter(a for a, _ in votes if a)
    steps = collections.Counter(s for _, s in votes if s)
    assert series.choose_frequency(aliases, steps) == "h"
    assert series.choose_frequency(collections.Counter(), steps) == "h"
    months = pd.date_range("2020-01-01", periods=12, freq="MS").as_unit("ns").asi8
    assert series.frequency_vote(months)[0] == "MS"
    with pytest.raises(ValueError, match="pass --freq"):
        series.choose_frequency(collections.Counter(), collections.Counter({31 * 86400 * 10**9: 3}))


def test_regularise_fills_gaps_flags_them_and_rejects_off_grid():
    ts = np.array([0, 1, 4, 5], np.int64) * HOUR_NS
    ts = np.insert(ts, 2, int(1.5 * HOUR_NS))
    obs = series.Observations(
        ts,
        np.array([1.0, 2.0, 99.0, 5.0, 6.0]),
        np.zeros((5, 0)),
        np.zeros(5, np.int32),
        np.arange(5),
        ("f",),
    )
    for fill, expected in [
        ("ffill", [1, 2, 2, 2, 5, 6]),
        ("zero", [1, 2, 0, 0, 5, 6]),
        ("interpolate", [1, 2, 3, 4, 5, 6]),
    ]:
        regular, off_grid = series.regularise("s", obs, "h", fill)
        assert off_grid.tolist() == [False, False, True, False, False]
        assert regular.value.tolist() == expected
        assert regular.observed.tolist() == [True, True, False, False, True, True]


def test_calendar_features_follow_the_clock():
    names = series.calendar_feature_names("h")
    stamps = pd.DatetimeIndex(["2021-01-04 06:00", "2021-01-05 18:00"]).as_unit("ns").asi8
    feats = dict(zip(names, series.calendar_features(stamps, names).T))
    np.testing.assert_allclose(feats["hour_of_day_sin"], [1.0, -1.0], atol=1e-12)
    # 2021-01-04 is a Monday: phase (0 + 0.25) / 7.
    np.testing.assert_allclose(feats["day_of_week_sin"][0], np.sin(2 * np.pi * 0.25 / 7))
    assert series.calendar_feature_names("MS") == ("day_of_year_sin", "day_of_year_cos")


@st.composite
def chunk_sets(draw):
    counts = draw(st.lists(st.integers(0, 40), min_size=1, max_size=12))
    return (
        [(f"s{i}", c) for i, c in enumerate(counts)],
        draw(st.integers(1, 6)),
        draw(st.integers(1, 8)),
        draw(st.integers(0, 2)),
    )


@settings(max_examples=300)
@given(chunk_sets())
def test_pack_lanes_places_every_chunk_once_with_full_lanes(drawn):
    counts, batch, max_batches, warmup = drawn
    layout = chunking.pack_lanes(counts, batch, max_batches, warmup)
    placed = {}
    occupancy = {}
    for seg in layout.segments:
        assert 0 <= seg.lane < batch and 0 <= seg.stream < layout.num_streams
        assert seg.warmup_chunks <= seg.first_chunk
        for k in range(seg.num_rows):
            cell = (seg.stream, seg.lane, seg.row + k)
            assert cell not in occupancy and seg.row + k < layout.num_batches
            occupancy[cell] = seg
        for c in range(seg.first_chunk, seg.first_chunk + seg.num_chunks):
            assert (seg.series_id, c) not in placed
            placed[(seg.series_id, c)] = seg
    assert set(placed) == {(s, c) for s, n in counts for c in range(n)}
    total = sum(n for _, n in counts)
    if total:
        # Only the tail of the last lane in use may be empty.
        cells = sorted(occupancy, key=lambda c: (c[0] * batch + c[1], c[2]))
        used_lanes = {c[0] * batch + c[1] for c in cells}
        for lane in range(max(used_lanes)):
            assert all(
                (lane // batch, lane % batch, r) in occupancy for r in range(layout.num_batches)
            )
        assert layout.num_batches <= max_batches + warmup + 1


def test_single_long_series_fills_all_lanes_with_small_waste():
    layout = chunking.pack_lanes([("long", 1000)], 32, 256, warmup_chunks=1)
    assert {s.lane for s in layout.segments} == set(range(32))
    assert layout.num_batches * 32 - 1000 - 31 < 32


def test_cut_rows_pads_with_zeros_and_hides_values_past_track_end():
    features = np.arange(10, dtype=np.float32)[:, None] + 1
    observed = np.ones(10, bool)
    track = chunking.Track(0, 7, 0)
    rows = chunking.cut_rows(features, observed, track, np.array([0, 4]), np.zeros(2, bool), 4, 3)
    assert rows.sequence_length.tolist() == [4, 3]
    assert rows.values[1, :, 0].tolist() == [5, 6, 7, 0]
    assert rows.lookahead[0].tolist() == [5, 6, 7]
    assert rows.lookahead[1].tolist() == [0, 0, 0]  # points 8..10 are past the track end
    assert rows.lookahead_observed[1].tolist() == [0, 0, 0]


def test_synthetic_generator_is_deterministic_and_varied():
    a = synthetic.generate(5, 100, 400, seed=3)
    b = synthetic.generate(5, 100, 400, seed=3)
    pd.testing.assert_frame_equal(a, b)
    sizes = a.groupby("series_id").size()
    starts = a.groupby("series_id")["timestamp"].min()
    assert sizes.nunique() > 1 and starts.nunique() > 1
    prefix = a[a.series_id.isin(sizes.index[:3])].reset_index(drop=True)
    pd.testing.assert_frame_equal(synthetic.generate(3, 100, 400, seed=3), prefix)


def test_encoded_rows_carry_exactly_the_contract_features():
    import tensorflow as tf

    from rnncast import schemas
    from rnncast.pipeline.io.examples import encode_empty_row, encode_rows

    features = np.ones((6, 2), np.float32)
    track = chunking.Track(0, 6, 0)
    rows = chunking.cut_rows(features, np.ones(6, bool), track, np.array([0]), [False], 4, 2)
    records = encode_rows("s", rows, np.arange(6) * HOUR_NS, 0.0, 1.0, 0, np.ones(1, np.int64))
    for record in records + [encode_empty_row(0, 4, 2, 2)]:
        names = set(tf.train.Example.FromString(record).features.feature)
        assert names == set(schemas.tfrecord_feature_names())


def test_encoded_rows_are_byte_identical_to_encoding_each_row_features():
    # encode_rows builds all rows at once from cached headers; the reference is the generic
    # encoder (itself checked against TensorFlow above) on each row's features. Odd values
    # on purpose: negative and ten-byte varints, observed flags outside [0, 128).
    from rnncast.pipeline.io.examples import encode_rows, row_features
    from rnncast.pipeline.io.tfrecord import encode_example

    rng = np.random.default_rng(0)
    features = rng.normal(size=(50, 3)).astype(np.float32)
    observed = (rng.random(50) < 0.8).astype(np.int64)
    track = chunking.Track(2, 47, 30)
    starts = np.array([0, 5, 16, 40])
    rows = chunking.cut_rows(features, observed, track, starts, [True, False, False, False], 8, 3)
    timestamp = (np.arange(50) * 3 - 7) * HOUR_NS
    for lanes, chunk_index in ((3, None), (np.array([0, 200, -1, 2**40]), [-1, 0, 300, 2**62])):
        if chunk_index is not None:
            rows = dataclasses.replace(rows, chunk_index=np.array(chunk_index))
        reset = np.array([1, 0, 0, 1])
        for odd in (False, True):
            if odd:
                rows = dataclasses.replace(rows, observed=rows.observed * 130 - 1)
            args = ("s\u00e9rie", rows, timestamp, 1.5, 0.25, lanes, reset)
            expected = [encode_example(row_features(*args, i)) for i in range(len(rows))]
            assert encode_rows(*args) == expected


def _targets_by_origin_and_horizon(rows: chunking.Rows, T: int, H: int) -> int:
    # The definition, pair by pair: origin t, horizon h, target point j = t + 1 + h.
    ext = np.concatenate([rows.observed, rows.lookahead_observed], axis=1)
    return sum(
        1
        for r in range(len(rows))
        for t in range(T)
        for h in range(H)
        if t < rows.sequence_length[r]
        and t + 1 + h >= rows.target_start[r]
        and ext[r, t + 1 + h] == 1
    )


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 9), st.integers(1, 7), st.integers(0, 2**32 - 1))
def test_target_count_equals_counting_every_origin_and_horizon(T, H, seed):
    from rnncast.pipeline.jobs.dataset import count_targets

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    observed = (rng.random(n) < 0.7).astype(np.int64)
    begin = int(rng.integers(0, n))
    track = chunking.Track(begin, n, int(rng.integers(begin, n + 3)))
    starts = np.arange(0, n - begin, max(1, int(rng.integers(1, T + 2))))
    warmup = rng.random(len(starts)) < 0.2
    features = np.zeros((n, 1), np.float32)
    rows = chunking.cut_rows(features, observed, track, starts, warmup, T, H)
    assert count_targets(rows, T, H) == _targets_by_origin_and_horizon(rows, T, H)


# --- points apart from their series, filled share (issue 11) --------------------------------


def _observations(timestamp: np.ndarray) -> series.Observations:
    n = len(timestamp)
    return series.Observations(
        timestamp=np.asarray(timestamp, np.int64),
        value=np.arange(n, dtype=np.float64),
        covariates=np.zeros((n, 0)),
        source_index=np.zeros(n, np.int32),
        row_number=np.arange(2, n + 2, dtype=np.int64),
        sources=("f.csv",),
    )


def test_typo_ten_years_after_an_hourly_series_is_isolated():
    hourly = np.arange(300, dtype=np.int64) * HOUR_NS
    typo = hourly[-1] + 10 * 365 * 24 * HOUR_NS
    timestamp = np.append(hourly, typo)
    isolated = series.isolated_by_gap(timestamp)
    assert np.flatnonzero(isolated).tolist() == [300]
    kept, _ = series.regularise("a", _observations(timestamp).subset(~isolated), "h")
    assert len(kept) == 300 and kept.observed.all()
    everything, _ = series.regularise("a", _observations(timestamp), "h")
    assert len(everything) == 299 + 87_600 + 1  # what the typo used to cost


def test_leading_stray_points_are_isolated_but_interior_gaps_are_kept():
    hourly = np.arange(300, dtype=np.int64) * HOUR_NS
    year = 365 * 24 * HOUR_NS
    leading = np.concatenate([[-2 * year, -2 * year + HOUR_NS], hourly])
    assert np.flatnonzero(series.isolated_by_gap(leading)).tolist() == [0, 1]
    halves = np.concatenate([hourly[:150], hourly[150:] + year])  # a year-long outage
    assert not series.isolated_by_gap(halves).any()
    islet = np.concatenate([hourly[:150], year + hourly[:3], 2 * year + hourly[150:]])
    assert not series.isolated_by_gap(islet).any()  # an interior cluster is never cut
    # A trailing cluster over 10 % of the series is not "a few stray points": kept.
    big_tail = np.concatenate([hourly, 10 * year + hourly[:40]])
    assert not series.isolated_by_gap(big_tail).any()
    assert not series.isolated_by_gap(np.append(hourly, 10 * year), max_gap_steps=0).any()


@settings(max_examples=200)
@given(
    steps=st.lists(st.one_of(st.integers(1, 3), st.integers(50, 100_000)), min_size=0, max_size=60),
    max_gap_steps=st.sampled_from([0.0, 2.0, 10.0, 100.0]),
)
def test_isolated_points_are_small_edge_clusters_beyond_a_long_gap(steps, max_gap_steps):
    timestamp = np.cumsum(np.array([0, *steps], np.int64)) * HOUR_NS
    isolated = series.isolated_by_gap(timestamp, max_gap_steps)
    n = len(timestamp)
    head = int(np.argmin(isolated)) if not isolated.all() else n
    tail = int(np.argmin(isolated[::-1])) if not isolated.all() else n
    assert head + tail < n  # something is kept, and only a prefix and a suffix are cut
    assert not isolated[head : n - tail].any()
    assert head <= 0.1 * n and tail <= 0.1 * n
    threshold = max_gap_steps * np.median(np.diff(timestamp)) if n > 1 else 0
    if head:
        assert timestamp[head] - timestamp[head - 1] > threshold
    if tail:
        assert timestamp[n - tail] - timestamp[n - tail - 1] > threshold


def test_weekly_series_on_a_daily_grid_is_mostly_filled():
    weekly = pd.date_range("2020-01-05", periods=52, freq="W").as_unit("ns").asi8
    regular, _ = series.regularise("w", _observations(weekly), "D")
    assert len(regular) == 51 * 7 + 1
    assert series.filled_fraction(regular.observed) == pytest.approx(1 - 52 / 358)
    assert series.filled_fraction(np.ones(5, bool)) == 0.0


@pytest.mark.parametrize(
    "freq, lags",
    [
        ("5min", (2016, 288)),
        ("30min", (336, 48)),
        ("h", (168, 24)),
        ("min", (1440,)),  # a week of minutes is past MAX_SEASONAL_LAG
        ("D", (7, 364)),
        ("2D", ()),
        ("W-SUN", (52,)),
        ("MS", (12,)),
        ("QS", (4,)),
        ("YS-JAN", ()),
    ],
)
def test_seasonal_lags_follow_the_frequency_main_season_first(freq, lags):
    assert series.seasonal_lags(freq) == lags


def test_usable_lags_need_three_cycles_in_the_typical_training_series():
    assert series.usable_lags((7, 364), [650, 660, 700]) == (7,)
    assert series.usable_lags((7, 364), [5000, 20]) == (7, 364)  # median 2,510
    assert series.usable_lags((168, 24), [100, 90, 80]) == (24,)
    assert series.usable_lags((12,), []) == ()


def test_lag_errors_measure_naive_and_seasonal_naive_on_observed_pairs():
    value = np.array([1.0, 5.0, 1.0, 5.0, 1.0, 9.0])
    observed = np.array([True, True, True, True, True, False])
    errors = series.lag_errors(value, observed, 2.0, (1, 2, 9))
    assert errors[1] == (8.0, 4)  # |4| / 2 over the four observed neighbours
    assert errors[2] == (0.0, 3)  # the cycle of two repeats exactly; 9.0 is not observed
    assert errors[9] == (0.0, 0)
    assert series.best_baseline_lag({1: 2.0, 2: 0.0}) == 2
    assert series.best_baseline_lag({1: 0.5, 7: 0.5}) == 1  # a tie keeps naive
    assert series.best_baseline_lag({1: None, 7: None}) == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), max_size=60), st.integers(0, 60))
def test_csv_line_numbers_count_the_skipped_lines_before_each_row(malformed_flags, split):
    # Data line p (0-based) is physical line p + 2; the malformed ones are skipped by the parser.
    skipped = [p + 2 for p, bad in enumerate(malformed_flags) if bad]
    expected = np.array([p + 2 for p, bad in enumerate(malformed_flags) if not bad], np.int64)
    valid = np.arange(len(expected), dtype=np.int64)
    np.testing.assert_array_equal(validation.csv_line_numbers(valid, skipped), expected)
    # Batch by batch, knowing only the lines skipped so far (as the file reader does).
    split = min(split, len(expected))
    seen = [line for line in skipped if line <= (expected[split - 1] if split else 1)]
    np.testing.assert_array_equal(
        validation.csv_line_numbers(valid[:split], seen), expected[:split]
    )


def _consumed(timestamps):
    n = len(timestamps)
    return series.Observations(
        np.asarray(timestamps, np.int64), np.zeros(n), np.zeros((n, 0)), np.zeros(n, np.int32),
        np.zeros(n, np.int64), ("",),
    )  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    recent=st.lists(st.integers(0, 60), max_size=12, unique=True),
    added=st.lists(st.integers(0, 80), max_size=6, unique=True),
    shuffle=st.booleans(),
    horizon=st.integers(0, 50),
)
def test_remember_matches_the_sorted_window(recent, added, shuffle, horizon):
    """remember keeps exactly the consumed points within the horizon, sorted by time: its
    in-order fast path and its sorting path give what a plain sort-and-filter gives."""
    from rnncast.pipeline.core import streaming

    recent = sorted(recent)
    added = added if shuffle else sorted(added)
    seen = streaming.Recent(
        np.asarray(recent, np.int64), np.asarray([t * 7 + 1 for t in recent], np.uint64)
    )
    hashes = np.asarray([t * 7 + 2 for t in added], np.uint64)
    last = max([*recent, *added], default=0)
    got = streaming.remember(seen, _consumed(added), last, horizon, hashes)
    ts = np.concatenate([seen.timestamp, np.asarray(added, np.int64)])
    hs = np.concatenate([seen.hashes, hashes])
    keep = ts > last - horizon
    order = np.argsort(ts[keep], kind="stable")
    assert got.timestamp.tolist() == ts[keep][order].tolist()
    assert got.hashes.tolist() == hs[keep][order].tolist()


@settings(max_examples=200, deadline=None)
@given(
    timestamps=st.lists(st.integers(0, 100), min_size=1, max_size=6),
    arrival=st.integers(0, 20),
    fire=st.integers(0, 20),
    lateness=st.integers(0, 5),
)
def test_take_due_one_part_is_the_general_rule(timestamps, arrival, fire, lateness):
    """One buffered part, due, is taken whole; the same part next to a not-yet-due one goes
    through the general cutoff-and-split rule and is taken whole there too."""
    from rnncast.pipeline.core import streaming

    n = len(timestamps)
    part = series.SeriesPart(
        "f", np.arange(n), np.asarray(timestamps, np.int64), np.zeros(n), np.zeros((n, 0))
    )
    later = series.SeriesPart("g", np.arange(1), np.asarray([10**9]), np.zeros(1), np.zeros((1, 0)))
    alone = streaming.take_due([streaming.Pending(arrival, part)], fire, lateness)
    general = streaming.take_due(
        [streaming.Pending(arrival, part), streaming.Pending(fire + lateness + 1, later)],
        fire,
        lateness,
    )
    if arrival + lateness <= fire:
        assert [p.timestamp.tolist() for p in alone[0]] == [timestamps]
        assert alone[1:] == ([], None)
        assert [p.timestamp.tolist() for p in general[0]] == [timestamps]
    else:
        assert alone[0] == [] and len(alone[1]) == 1 and alone[2] == arrival + lateness
