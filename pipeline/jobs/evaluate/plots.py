"""PNG plots of a backtest (matplotlib, headless): forecasts of chosen series (a panel per
origin) and the per-series MASE distribution of every method. Each returns the PNG's bytes,
which the report writes through FileSystems (local folders and object stores alike)."""

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


def forecast_panels_plot(
    title: str,
    panels: Sequence,
    labels: Sequence[str],
    ylabel: str,
    band_label: str,
) -> bytes:
    """A small multiple of one series: a panel per origin (``panels``: objects with
    ``history``, ``actual``, ``forecast``, ``band`` and ``baselines``, see
    ``report.Panel``), sharing the y-axis, titled by ``labels``; one legend for all."""
    import matplotlib.dates as mdates

    plt = _pyplot()
    count = max(1, len(panels))
    columns = min(3, count)
    rows = -(-count // columns)
    figure, axes = plt.subplots(
        rows,
        columns,
        figsize=(4.2 * columns, 2.9 * rows + 0.7),
        dpi=100,
        sharey=True,
        squeeze=False,
    )
    styles = ["--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1))]
    colors = ["tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    for k, axis in enumerate(axes.flat):
        if k >= len(panels):
            axis.set_visible(False)
            continue
        panel = panels[k]
        axis.plot(
            panel.history.index,
            panel.history.to_numpy(),
            color="0.55",
            linewidth=1.0,
            label="history",
        )
        axis.plot(
            panel.actual.index,
            panel.actual.to_numpy(),
            color="black",
            linewidth=1.4,
            label="actual",
        )
        if panel.band is not None:
            axis.fill_between(
                panel.forecast.index,
                panel.band[0].to_numpy(),
                panel.band[1].to_numpy(),
                color="tab:blue",
                alpha=0.18,
                linewidth=0,
                label=band_label,
            )
        axis.plot(
            panel.forecast.index,
            panel.forecast.to_numpy(),
            color="tab:blue",
            linewidth=1.6,
            label="rnncast",
        )
        for j, (name, values) in enumerate(sorted(panel.baselines.items())):
            axis.plot(
                values.index,
                values.to_numpy(),
                linestyle=styles[j % len(styles)],
                color=colors[j % len(colors)],
                linewidth=1.0,
                label=name,
            )
        axis.axvline(panel.origin, color="0.7", linewidth=0.8)
        axis.set_title(labels[k], fontsize=9)
        locator = mdates.AutoDateLocator(maxticks=5)
        axis.xaxis.set_major_locator(locator)
        axis.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
        if k % columns == 0:
            axis.set_ylabel(ylabel, fontsize=9)
        axis.yaxis.set_tick_params(labelleft=True)
    if panels:
        handles, names = axes.flat[0].get_legend_handles_labels()
        figure.legend(
            handles,
            names,
            loc="upper center",
            ncol=min(len(names), 8),
            fontsize=8,
            frameon=False,
            bbox_to_anchor=(0.5, 1 - 0.4 / figure.get_figheight()),
        )
    else:
        axes.flat[0].text(0.5, 0.5, "no forecasts", ha="center", va="center")
    figure.suptitle(title, fontsize=11, y=1 - 0.12 / figure.get_figheight())
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.5 / figure.get_figheight()))
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
