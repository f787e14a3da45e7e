"""Pure logic of the forecast job (no Beam, no TensorFlow)."""

from __future__ import annotations

import numpy as np

from rnncast.pipeline.core import forecasting
from rnncast.pipeline.core import series as series_lib

HOUR = 3600 * 10**9
MODEL = forecasting.ModelInfo(
    path="unused",
    fingerprint="f",
    freq="h",
    fill="ffill",
    num_steps=4,
    horizon=2,
    quantiles=(0.1, 0.9),
    feature_names=("value",),
    covariates=(),
    calendar_features=(),
    state_size=(3,),
    scaling="standard",
    series_scaling={"known": {"loc": 1.0, "scale": 2.0}},
)


def observations(hours, values):
    n = len(hours)
    return series_lib.Observations(
        np.asarray(hours, np.int64) * HOUR,
        np.asarray(values, float),
        np.zeros((n, 0)),
        np.zeros(n, np.int32),
        np.arange(n),
        ("f",),
    )


def saved_after(work: forecasting.Work) -> forecasting.SeriesState:
    return forecasting.SeriesState(
        work.series_id,
        work.first_timestamp,
        work.last_timestamp,
        work.last_raw,
        work.digest,
        work.loc,
        work.scale,
        work.scaling,
        np.ones((1, 3), np.float32),
        np.zeros(2),
        np.zeros((2, 2)),
        "f",
    )


def test_digest_of_a_history_is_the_sum_of_its_parts():
    ts = np.arange(10, dtype=np.int64) * HOUR
    raw = np.arange(10, dtype=float)[:, None]
    whole = forecasting.points_digest(ts, raw)
    parts = forecasting.points_digest(ts[:4], raw[:4]) + forecasting.points_digest(ts[4:], raw[4:])
    assert whole == parts % 2**64
    assert forecasting.points_digest(ts, raw + 1e-9) != whole


def test_full_then_incremental_decisions():
    work, off, skipped = forecasting.prepare(
        "known", observations(range(6), range(6)), None, MODEL, None
    )
    assert work.status == forecasting.FULL and (work.loc, work.scale) == (1.0, 2.0)
    saved = saved_after(work)
    # The same history again plus two new points (one missing hour): only the new ones run.
    more = observations([*range(6), 7, 8], [*range(6), 7, 8])
    inc, off, skipped = forecasting.prepare("known", more, saved, MODEL, None)
    assert inc.status == forecasting.INCREMENTAL and skipped == 6
    assert inc.observed.tolist() == [False, True, True]  # hour 6 filled, flagged
    assert inc.features[:, 0].tolist() == [5.0, 7.0, 8.0]  # ffill continues from the state
    assert inc.initial_state is saved.state
    # A rewritten consumed value forces a recompute from the given history.
    changed = observations([*range(6), 7], [0, 1, 2, 99, 4, 5, 7])
    again, _, _ = forecasting.prepare("known", changed, saved, MODEL, None)
    assert again.status == forecasting.RECOMPUTED and again.initial_state is None
    # Nothing new, or only off-grid points: the saved state stands.
    same, _, _ = forecasting.prepare("known", observations(range(6), range(6)), saved, MODEL, None)
    assert same is saved
    stray = series_lib.Observations(
        np.array([6 * HOUR + 5]),
        np.array([1.0]),
        np.zeros((1, 0)),
        np.zeros(1, np.int32),
        np.zeros(1, np.int64),
        ("f",),
    )
    kept, off, _ = forecasting.prepare("known", stray, saved, MODEL, None)
    assert kept is saved and off.tolist() == [True]


def test_as_of_unknown_series_and_missing_data():
    work, _, skipped = forecasting.prepare(
        "new", observations(range(8), range(8)), None, MODEL, as_of=5 * HOUR
    )
    assert skipped == 2 and work.last_timestamp == 5 * HOUR
    assert work.scaling == "own_history"
    assert np.isclose(work.loc, 1.5)  # first num_steps (4) points
    short, _, _ = forecasting.prepare("new", observations(range(3), range(3)), None, MODEL, None)
    assert short == forecasting.TOO_SHORT
    assert forecasting.prepare("known", None, None, MODEL, None)[0] == forecasting.NO_DATA


def test_forecast_table_rows_and_status_rows():
    state = forecasting.SeriesState(
        "b",
        0,
        5 * HOUR,
        np.zeros(1),
        0,
        0.0,
        1.0,
        "training",
        np.zeros((1, 3)),
        np.array([1.0, 2.0]),
        np.array([[0.5, 1.5], [1.0, 3.0]]),
        "f",
    )
    table = forecasting.forecast_table(
        [("b", forecasting.FULL, state), ("a", forecasting.TOO_SHORT, None)], MODEL, 2
    )
    assert table["series_id"].tolist() == ["a", "b", "b"]
    assert table["step"].tolist()[1:] == [1, 2] and table["forecast"].isna().tolist()[0]
    assert (table["timestamp"].iloc[1:] - table["origin"].iloc[1:]).dt.total_seconds().tolist() == [
        3600,
        7200,
    ]
    assert table[["q0.1", "q0.9"]].iloc[2].tolist() == [1.0, 3.0]
