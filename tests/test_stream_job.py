"""``rnncast stream``: the per-series decisions (pure)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import run_job, write_csv

from model.export import export_model
from model.train import TrainConfig, train
from pipeline import forecasting, streaming, synthetic
from pipeline.series import SeriesPart, combine_parts
from pipeline.validation import InputColumns

HOUR = pd.Timedelta(hours=1)
END = pd.Timestamp("2021-06-01T00:00:00")
COLUMNS = ["forecast", "q0.1", "q0.5", "q0.9"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny GRU trained one epoch, and series aligned to end at END (for a shared clock)."""
    tmp = tmp_path_factory.mktemp("smodel")
    frame = synthetic.generate(4, 120, 160, seed=11)
    source = write_csv(frame, tmp / "train.csv")
    run_job(source, tmp / "data", "--num-steps", 16, "--batch-size", 4, "--horizon", 4)
    config = TrainConfig(
        str(tmp / "data"), str(tmp / "model"), cell="gru", layers=1, units=8, epochs=1
    )
    train(config, log=lambda _: None)
    shift = END - frame.groupby("series_id")["timestamp"].transform("max")
    frame = frame.assign(timestamp=frame["timestamp"] + shift)
    return export_model(config.model_dir), frame


def model_info(path) -> forecasting.ModelInfo:
    return forecasting.ModelInfo.load(path)


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
