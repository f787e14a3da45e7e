"""PNG plots of a backtest (matplotlib, headless): forecasts of chosen series and the
per-series MASE distribution of every method. Each returns the PNG's bytes, which the report
writes through FileSystems (local folders and object stores alike)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pandas as pd

# Fixed metadata keeps the PNG bytes the same from run to run.
_PNG_METADATA = {"Software": None}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def forecast_plot(
    title: str,
    history: pd.Series,
    actual: pd.Series,
    forecast: pd.DataFrame,
    band: tuple[str, str] | None,
    baselines: dict[str, pd.Series],
) -> bytes:
    """History tail, actuals, the model's forecast with its quantile band, and baselines.

    ``forecast`` is indexed by timestamp with a ``forecast`` column and the ``band`` columns."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(9, 3.6), dpi=100)
    axis.plot(history.index, history.to_numpy(), color="0.35", linewidth=1.0, label="history")
    axis.plot(actual.index, actual.to_numpy(), color="black", linewidth=1.4, label="actual")
    if band is not None:
        axis.fill_between(
            forecast.index,
            forecast[band[0]].to_numpy(),
            forecast[band[1]].to_numpy(),
            color="tab:blue",
            alpha=0.2,
            label=f"rnncast {band[0]}–{band[1]}",
        )
    axis.plot(forecast.index, forecast["forecast"].to_numpy(), color="tab:blue", label="rnncast")
    styles = ["--", ":", "-.", (0, (5, 1))]
    for k, (name, values) in enumerate(sorted(baselines.items())):
        axis.plot(
            values.index,
            values.to_numpy(),
            linestyle=styles[k % len(styles)],
            linewidth=1.0,
            label=name,
        )
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=7, ncol=3, loc="upper left")
    axis.grid(alpha=0.3)
    figure.autofmt_xdate()
    figure.tight_layout()
    return _png(plt, figure)


def mase_distribution_plot(scores: pd.DataFrame, methods: Sequence[str]) -> bytes:
    """Box plot (with every point) of the MASE of each (series, origin), one box per method;
    the dashed line at 1 is the in-sample seasonal naive error."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 3.6), dpi=100)
    data = [scores.loc[scores["method"] == m, "mase"].dropna().to_numpy() for m in methods]
    axis.boxplot(data, showfliers=False)
    axis.set_xticks(range(1, len(methods) + 1), list(methods))
    for k, values in enumerate(data, start=1):
        jitter = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(1)
        axis.scatter(np.full(len(values), k) + jitter[: len(values)], values, s=10, alpha=0.6)
    axis.axhline(1.0, color="0.5", linestyle="--", linewidth=0.8)
    axis.set_ylabel("MASE per series and origin")
    axis.set_title("Per-series MASE (lower is better)", fontsize=10)
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return _png(plt, figure)


def _png(plt, figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata=_PNG_METADATA)
    plt.close(figure)
    return buffer.getvalue()
