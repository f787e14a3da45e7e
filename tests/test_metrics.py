"""Metrics and baselines against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from rnncast.pipeline.core import metrics


def test_seasonal_naive_mase_is_exactly_one_on_a_trend():
    # y_t = t: in-sample |y_t - y_{t-m}| = m everywhere, and so is every out-of-sample error
    # of the seasonal naive forecast for h <= m.
    history, season = np.arange(48, dtype=float), 12
    actual = np.arange(48, 60, dtype=float)
    forecast = metrics.seasonal_naive_forecast(history, 12, season)
    assert forecast.tolist() == list(range(36, 48))
    assert metrics.mase(actual, forecast, history, season) == 1.0


def test_hand_computed_values():
    history = np.array([1.0, 3.0, 2.0, 4.0])
    actual = np.array([5.0, 5.0])
    forecast = np.array([4.0, 7.0])
    # naive in-sample errors (season 1): |3-1|, |2-3|, |4-2| -> mean 5/3
    assert metrics.seasonal_naive_scale(history, 1) == pytest.approx(5 / 3)
    assert metrics.mase(actual, forecast, history, 1) == pytest.approx(1.5 / (5 / 3))
    # sMAPE: 200*1/9 and 200*2/12, averaged
    assert metrics.smape(actual, forecast) == pytest.approx((200 / 9 + 200 / 6) / 2)
    assert metrics.smape(np.zeros(2), np.zeros(2)) == 0.0
    quantiles = np.array([[4.0, 6.0], [6.0, 8.0]])
    levels = (0.1, 0.9)
    # pinball: step 1: 0.1*1, 0.1*1 (=(0.9-1)*(-1)); step 2: (0.1-1)*(-1)=0.9, 0.1*3=0.3
    expected = np.array([[0.1, 0.1], [0.9, 0.3]])
    np.testing.assert_allclose(metrics.pinball(actual, quantiles, levels), expected)
    assert metrics.weighted_quantile_loss(actual, quantiles, levels) == pytest.approx(
        np.mean(2 * expected.sum(axis=0) / 10)
    )
    assert metrics.scaled_pinball(actual, quantiles, levels, history, 1) == pytest.approx(
        expected.mean() / (5 / 3)
    )
    assert metrics.coverage(actual, quantiles[:, 0], quantiles[:, 1]) == 0.5


def test_baselines_and_default_seasons():
    history = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert metrics.naive_forecast(history, 3).tolist() == [5.0, 5.0, 5.0]
    assert metrics.seasonal_naive_forecast(history, 5, 2).tolist() == [4, 5, 4, 5, 4]
    assert metrics.seasonal_naive_forecast(history[:1], 2, 3).tolist() == [1.0, 1.0]
    assert [metrics.default_season(f) for f in ("h", "15min", "D", "W", "MS", "QS", "YS")] == [
        24,
        96,
        7,
        52,
        12,
        4,
        1,
    ]
