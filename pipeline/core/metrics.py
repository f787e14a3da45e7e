"""Forecast accuracy metrics and the classical baselines they are compared with.

Pure numpy. Conventions follow the M4/M5 competitions: MASE is scaled by the in-sample mean
absolute error of the seasonal naive forecast; sMAPE is in percent (0..200) with 0/0 counted
as 0; the weighted quantile loss is 2 * sum(pinball) / sum(|actual|), averaged over levels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pandas.tseries.frequencies import to_offset

from rnncast.pipeline.core.series import NS_PER_DAY, nominal_period_ns


def default_season(freq: str) -> int:
    """Season length for the seasonal naive baseline: the cycle a frequency usually shows."""
    period = nominal_period_ns(to_offset(freq).freqstr)
    if period < NS_PER_DAY:
        return max(1, int(round(NS_PER_DAY / period)))  # daily cycle of sub-daily data
    if period < 7 * NS_PER_DAY:
        return 7  # weekly cycle of daily data
    if period < 28 * NS_PER_DAY:
        return 52  # yearly cycle of weekly data
    if period < 80 * NS_PER_DAY:
        return 12
    if period < 300 * NS_PER_DAY:
        return 4
    return 1


def naive_forecast(history: np.ndarray, horizon: int) -> np.ndarray:
    """The last value, repeated."""
    return np.full(horizon, float(history[-1]))


def seasonal_naive_forecast(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """The value one season earlier (the last full season, repeated)."""
    if len(history) < season:
        return naive_forecast(history, horizon)
    last_season = history[-season:]
    return np.array([last_season[h % season] for h in range(horizon)], float)


def seasonal_naive_scale(history: np.ndarray, season: int) -> float:
    """In-sample mean absolute error of the seasonal naive forecast (MASE's denominator)."""
    lag = season if len(history) > season else 1
    if len(history) <= lag:
        return float("nan")
    return float(np.mean(np.abs(history[lag:] - history[:-lag])))


def mase(actual: np.ndarray, forecast: np.ndarray, history: np.ndarray, season: int) -> float:
    return float(np.mean(np.abs(actual - forecast))) / seasonal_naive_scale(history, season)


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    denominator = np.abs(actual) + np.abs(forecast)
    ratio = np.divide(
        2 * np.abs(actual - forecast),
        denominator,
        out=np.zeros(len(actual)),
        where=denominator > 0,
    )
    return float(100.0 * np.mean(ratio))


def pinball(actual: np.ndarray, quantiles: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """Pinball loss per step and level: ``quantiles`` is [H, Q]; returns [H, Q]."""
    levels = np.asarray(levels, float)[None, :]
    diff = actual[:, None] - quantiles
    return np.maximum(levels * diff, (levels - 1.0) * diff)


def scaled_pinball(
    actual: np.ndarray,
    quantiles: np.ndarray,
    levels: Sequence[float],
    history: np.ndarray,
    season: int,
) -> float:
    """Mean pinball loss over steps and levels, scaled like MASE."""
    return float(np.mean(pinball(actual, quantiles, levels))) / seasonal_naive_scale(
        history, season
    )


def weighted_quantile_loss(
    actual: np.ndarray, quantiles: np.ndarray, levels: Sequence[float]
) -> float:
    """2 * sum of pinball losses / sum of |actual|, averaged over the levels."""
    total = np.sum(np.abs(actual))
    per_level = 2.0 * pinball(actual, quantiles, levels).sum(axis=0) / total
    return float(np.mean(per_level))


def coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of actual values inside [lower, upper]."""
    return float(np.mean((actual >= lower) & (actual <= upper)))
