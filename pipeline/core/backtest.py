"""Rolling-origin backtesting logic: origins, history cuts, baselines and scores.

Pure numpy/pandas (statsforecast, when installed, for the classical baseline); the
``rnncast evaluate`` command composes these with the real dataset, training and forecast jobs.

Conventions: an *origin* is a timestamp on the data's grid. The history of an origin is every
observation at or before it; its forecasts are for the ``horizon`` grid points after each
series' last observation in that history, and are scored against the observations at those
timestamps (missing ones are skipped).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rnncast.pipeline.core import metrics
from rnncast.pipeline.core import series as series_lib
from rnncast.pipeline.core.validation import InputColumns

MODEL = "rnncast"
NAIVE = "naive"
SEASONAL_NAIVE = "seasonal_naive"
METRIC_COLUMNS = ("mase", "smape", "scaled_pinball", "wql", "coverage")
# Classical baselines of an origin run in worker processes (statsforecast's n_jobs=-1) from
# this many series up and on machines with at least PARALLEL_MIN_CORES cores; otherwise one
# process (measured on 2 busy cores: 64 series took 25 s in the pool, 21 s in one process).
PARALLEL_MIN_SERIES = 32
PARALLEL_MIN_CORES = 4


@dataclass
class LoadedInput:
    """Every input row, validated: unique observations per series, and the rejected rows."""

    series: dict[str, series_lib.Observations]
    rejected: pd.DataFrame
    rows_read: int

    @property
    def rows_accepted(self) -> int:
        return sum(len(obs) for obs in self.series.values())


def grid_step(freq: str, origin: int, steps: int) -> int:
    """The timestamp ``steps`` grid points after ``origin`` (negative: before)."""
    return int(series_lib.grid_offsets(freq, [origin], [steps])[0, 0])


def choose_origins(
    end: int, freq: str, horizon: int, count: int | None, every: int | None, start: int
) -> list[int]:
    """Rolling origins, oldest first: the last one leaves exactly ``horizon`` grid points up to
    ``end`` (the newest timestamp), the others step back ``every`` points (default: the
    horizon, so test windows do not overlap). Without ``count``, as many as fit while the
    history before the oldest origin is at least half of the data (``start`` .. ``end``)."""
    every = every or horizon
    if every < 1 or horizon < 1:
        raise ValueError("--horizon and --origin-every must be >= 1")
    last = grid_step(freq, end, -horizon)
    if count is not None:
        if count < 1:
            raise ValueError("--origins must be >= 1")
        origins = [grid_step(freq, last, -every * k) for k in range(count)]
    else:
        middle = start + (end - start) // 2
        origins = []
        while not origins or grid_step(freq, last, -every * len(origins)) >= middle:
            origins.append(grid_step(freq, last, -every * len(origins)))
    if origins[-1] <= start:
        raise ValueError(
            f"{len(origins)} origins spaced {every} steps before the last {horizon} leave no "
            "history before the oldest one; use fewer --origins or a smaller --origin-every"
        )
    return sorted(origins)


def history_frame(
    series: dict[str, series_lib.Observations], origin: int, columns: InputColumns
) -> pd.DataFrame:
    """The observations at or before ``origin`` as a long input table (sorted, so the file
    written from it, and every job run on it, is byte-identical for the same history)."""
    frames = []
    for series_id, obs in series.items():
        keep = obs.timestamp <= origin
        if keep.any():
            frame = pd.DataFrame(
                {
                    columns.series_id: series_id,
                    columns.timestamp: pd.to_datetime(obs.timestamp[keep], utc=True),
                    columns.value: obs.value[keep],
                }
            )
            for k, name in enumerate(columns.covariates):
                frame[name] = obs.covariates[keep, k]
            frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=list(columns.all))
    return pd.concat(frames, ignore_index=True)


def regular_history(
    series_id: str, obs: series_lib.Observations, origin: int, freq: str, fill: str
) -> series_lib.RegularSeries | None:
    """The history of one series on its grid, filled like the jobs fill it (None: empty)."""
    keep = obs.timestamp <= origin
    if not keep.any():
        return None
    regular, _ = series_lib.regularise(series_id, obs.subset(keep), freq, fill)
    return regular if len(regular) else None


def future_targets(freq: str, last: int, horizon: int) -> np.ndarray:
    """Timestamps of the ``horizon`` grid points after ``last``."""
    return series_lib.grid_offsets(freq, [last], np.arange(1, horizon + 1))[0]


def actuals_at(obs: series_lib.Observations, targets: np.ndarray) -> np.ndarray:
    """Observed values at ``targets`` (NaN where there is no observation)."""
    position = np.searchsorted(obs.timestamp, targets)
    found = position < len(obs.timestamp)
    found[found] = obs.timestamp[position[found]] == targets[found]
    out = np.full(len(targets), np.nan)
    out[found] = obs.value[position[found]]
    return out


def classical_available() -> bool:
    """Whether the optional classical baseline (``pip install 'rnncast[classical]'``) is there."""
    try:
        import statsforecast.models  # noqa: F401
    except ImportError:
        return False
    return True


def baseline_forecasts(
    history: np.ndarray,
    horizon: int,
    season: int,
    levels: Sequence[float],
    classical: Sequence[str] = (),
    seasons: Sequence[int] = (),
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """``{method: (point [H], quantiles [H, Q] or None)}`` for the baselines, from the filled
    history of one series. Naive methods have no interval (None); the classical models give
    the quantiles of ``levels`` from their symmetric prediction intervals; one that fails on
    this history (too short for it) gives NaN forecasts. MSTL decomposes
    with every season of ``seasons`` (default: ``season`` alone) and forecasts the trend
    with AutoETS (statsforecast's default). For many series at once, :func:`naive_forecasts`
    and :func:`classical_forecasts` give the same numbers."""
    out = naive_forecasts(history, horizon, season)
    if classical:
        widths = _interval_widths(levels)
        for name, model in zip(classical, _classical_models(classical, season, seasons)):
            try:
                result = model.forecast(y=np.asarray(history, np.float64), h=horizon, level=widths)
            except Exception:  # noqa: BLE001 - statsforecast raises many types on tiny data
                # e.g. AutoETS's NotImplementedError("tiny datasets") on a 5-point history: the
                # method gives no forecast for this series (scored as nothing, status
                # "failed") instead of ending the whole backtest.
                result = _NoForecast().forecast(h=horizon, level=widths)
            out[name] = _point_and_bands(result, "", levels)
    return out


def naive_forecasts(
    history: np.ndarray, horizon: int, season: int
) -> dict[str, tuple[np.ndarray, None]]:
    """The naive and seasonal naive forecasts of one series (no interval)."""
    return {
        NAIVE: (metrics.naive_forecast(history, horizon), None),
        SEASONAL_NAIVE: (metrics.seasonal_naive_forecast(history, horizon, season), None),
    }


def classical_forecasts(
    histories: Mapping[str, np.ndarray],
    horizon: int,
    season: int,
    levels: Sequence[float],
    classical: Sequence[str],
    seasons: Sequence[int] = (),
    n_jobs: int | None = None,
) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """``{series_id: {model: (point [H], quantiles [H, Q])}}``: the classical baselines of
    :func:`baseline_forecasts` for every series in one ``StatsForecast`` call, each model
    fitted to each series on its own (the same numbers as one series at a time), in worker
    processes (``n_jobs``; default :func:`classical_jobs`). A model that fails on a series
    gives it NaN forecasts, as one at a time."""
    if not classical or not histories:
        return {series_id: {} for series_id in histories}
    from statsforecast import StatsForecast

    if n_jobs is None:
        n_jobs = classical_jobs(len(histories), os.cpu_count() or 1)
    widths = _interval_widths(levels)
    models = _classical_models(classical, season, seasons)
    frame = pd.concat(
        [
            pd.DataFrame(
                {
                    "unique_id": series_id,
                    "ds": np.arange(1, len(history) + 1, dtype=np.int64),
                    "y": np.asarray(history, np.float64),
                }
            )
            for series_id, history in histories.items()
        ],
        ignore_index=True,
    )
    engine = StatsForecast(models=models, freq=1, n_jobs=n_jobs, fallback_model=_NoForecast())
    result = engine.forecast(df=frame, h=horizon, level=widths)
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for series_id, rows in result.groupby("unique_id", sort=False):
        columns = {
            name: rows[name].to_numpy(np.float64)
            for name in rows.columns
            if name not in ("unique_id", "ds")
        }
        out[str(series_id)] = {
            name: _point_and_bands(columns, repr(model), levels)
            for name, model in zip(classical, models)
        }
    missing = set(histories) - set(out)
    if missing:
        raise RuntimeError(f"statsforecast returned no forecast for {sorted(missing)[:5]}")
    return out


def classical_jobs(num_series: int, cores: int) -> int:
    """statsforecast's ``n_jobs`` for ``num_series`` series: -1 (every core) for many series
    on a machine with several cores, else 1 (a pool costs more than it gives there)."""
    return -1 if num_series >= PARALLEL_MIN_SERIES and cores >= PARALLEL_MIN_CORES else 1


def _classical_models(classical: Sequence[str], season: int, seasons: Sequence[int]) -> list:
    from statsforecast import models as sf_models

    models = []
    for name in classical:
        if name == "MSTL":
            lengths = sorted({int(m) for m in (seasons or (season,)) if m > 1}) or [1]
            models.append(sf_models.MSTL(season_length=lengths))
        else:
            models.append(getattr(sf_models, name)(season_length=max(season, 1)))
    return models


def _interval_widths(levels: Sequence[float]) -> list:
    return sorted({_interval_level(q) for q in levels if abs(q - 0.5) > 1e-9})


def _point_and_bands(
    result: Mapping[str, np.ndarray], prefix: str, levels: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Point and quantile columns from a statsforecast result: keys ``mean``, ``lo-80``...
    of one model (``prefix`` empty), or ``AutoETS``, ``AutoETS-lo-80``... (``prefix``
    the model's name) of a ``StatsForecast`` frame."""
    point = np.asarray(result[prefix or "mean"], np.float64)
    columns = []
    for q in levels:
        if abs(q - 0.5) <= 1e-9:
            columns.append(point)
        else:
            side = "lo" if q < 0.5 else "hi"
            key = f"{side}-{_interval_level(q)}"
            columns.append(np.asarray(result[f"{prefix}-{key}" if prefix else key], np.float64))
    return point, np.stack(columns, axis=1)


class _NoForecast:
    """statsforecast's fallback model: NaN forecasts (and intervals) where a model fails."""

    def forecast(self, h: int, level=(), **_) -> dict[str, np.ndarray]:
        out = {"mean": np.full(h, np.nan)}
        for width in level:
            out[f"lo-{width}"] = np.full(h, np.nan)
            out[f"hi-{width}"] = np.full(h, np.nan)
        return out

    def __repr__(self) -> str:
        return "NoForecast"


def _interval_level(q: float) -> int | float:
    """The central interval (in percent) whose bound is quantile ``q``: 0.1 and 0.9 -> 80."""
    width = round(abs(1.0 - 2.0 * q) * 100.0, 6)
    return int(width) if float(width).is_integer() else width


def score(
    actual: np.ndarray,
    point: np.ndarray,
    quantiles: np.ndarray | None,
    levels: Sequence[float],
    history: np.ndarray,
    season: int,
) -> dict[str, float]:
    """Metrics of one forecast over the targets that were observed (NaN actuals skipped).

    Without quantiles the point forecast stands for every level (pinball loss of a point
    forecast) and coverage is undefined (NaN). ``coverage`` is that of the outermost
    interval of ``levels``. A method that gave no forecast (NaN points) scores nothing."""
    valid = ~np.isnan(actual) & ~np.isnan(point)
    result = {"targets": int(valid.sum())}
    if not valid.any():
        nan = {name: float("nan") for name in METRIC_COLUMNS}
        return {**result, **nan, "pinball_sum": 0.0, "abs_actual": 0.0}
    actual, point = actual[valid], point[valid]
    if quantiles is None:
        bands = np.repeat(point[:, None], len(levels), axis=1)
        covered = float("nan")
    else:
        bands = quantiles[valid]
        order = np.argsort(levels)
        covered = metrics.coverage(actual, bands[:, order[0]], bands[:, order[-1]])
    pinball_sum = float(metrics.pinball(actual, bands, levels).sum())
    abs_actual = float(np.abs(actual).sum())
    return {
        **result,
        "mase": metrics.mase(actual, point, history, season),
        "smape": metrics.smape(actual, point),
        "scaled_pinball": metrics.scaled_pinball(actual, bands, levels, history, season),
        "wql": metrics.weighted_quantile_loss(actual, bands, levels) if abs_actual else np.nan,
        "coverage": covered,
        # Kept so the overall WQL can be pooled over every series and origin.
        "pinball_sum": pinball_sum,
        "abs_actual": abs_actual,
    }


def overall(scores: pd.DataFrame, num_levels: int) -> pd.DataFrame:
    """One row per method: mean MASE, sMAPE, scaled pinball and coverage over the (series,
    origin) pairs that have targets, the WQL pooled over all of them, and the count of pairs
    where the method beats seasonal naive on MASE."""
    scored = scores[scores["targets"] > 0]
    reference = scored[scored["method"] == SEASONAL_NAIVE].set_index(["series_id", "origin"])[
        "mase"
    ]
    rows = []
    for method, group in scored.groupby("method", sort=False):
        indexed = group.set_index(["series_id", "origin"])["mase"]
        shared = indexed.index.intersection(reference.index)
        total_abs = group["abs_actual"].sum()
        rows.append(
            {
                "method": method,
                "forecasts": len(group),
                "mase": float(np.nanmean(group["mase"])),
                "smape": float(np.nanmean(group["smape"])),
                "scaled_pinball": float(np.nanmean(group["scaled_pinball"])),
                "wql": (
                    float(2.0 * group["pinball_sum"].sum() / (num_levels * total_abs))
                    if total_abs
                    else float("nan")
                ),
                "coverage": (
                    float(np.nanmean(group["coverage"]))
                    if group["coverage"].notna().any()
                    else float("nan")
                ),
                "beats_seasonal_naive": float(
                    np.mean(indexed.loc[shared] < reference.loc[shared]) if len(shared) else np.nan
                ),
            }
        )
    order = {MODEL: 0, SEASONAL_NAIVE: 1, NAIVE: 2}
    table = pd.DataFrame(rows)
    table["_order"] = [order.get(m, 3) for m in table["method"]]
    return table.sort_values(["_order", "method"]).drop(columns="_order").reset_index(drop=True)


def plot_series(series_ids: Sequence[str], count: int) -> list[str]:
    """``count`` series spread evenly over the sorted ids (deterministic, data-independent)."""
    ids = sorted(series_ids)
    if len(ids) <= count:
        return ids
    picks = np.linspace(0, len(ids) - 1, count).round().astype(int)
    return [ids[i] for i in sorted(set(picks.tolist()))]


def markdown_table(table: pd.DataFrame, columns: Sequence[str], digits: int = 3) -> str:
    """A GitHub Markdown table of ``columns`` (numbers rounded; NaN shown as a dash)."""

    def cell(value) -> str:
        if isinstance(value, (float, np.floating)):
            return "–" if np.isnan(value) else f"{value:.{digits}f}"
        return str(value)

    lines = [
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join("---" if k == 0 else "---:" for k, _ in enumerate(columns)) + " |",
    ]
    for row in table[list(columns)].itertuples(index=False):
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)
