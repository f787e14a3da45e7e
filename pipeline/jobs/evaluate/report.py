"""``rnncast evaluate``'s outputs: metrics, forecasts, the Markdown/HTML summary, plots, the
dead letters and ``evaluation.json``. Every file goes through :func:`commit.write_bytes`, so
``--output`` may be a local folder or an object store (``gs://``, ``s3://``) like every other
job's."""

from __future__ import annotations

import collections
import html
import json
import re

import numpy as np
import pandas as pd
from apache_beam.io.filesystems import FileSystems

from rnncast import schemas
from rnncast.pipeline.core import backtest
from rnncast.pipeline.io import commit

METRICS_FILE = "metrics"
METRIC_COLUMNS = list(schemas.load(schemas.EVALUATION)["metrics_columns"])
SUMMARY_FILE = "evaluation.json"
REJECTED_FILE = "rejected/rejected-00000-of-00001.jsonl"
TABLE_COLUMNS = (
    "method",
    "forecasts",
    "mase",
    "smape",
    "scaled_pinball",
    "wql",
    "coverage",
    "beats_seasonal_naive",
)
# The method of a metrics record that stands for a (series, origin) pair with nothing to score.
NO_PAIR = "-"


def write(output: str, name: str, data: bytes) -> None:
    """Write ``data`` to ``output/name`` (``name`` uses ``/``), atomically."""
    commit.write_bytes(FileSystems.join(output, *name.split("/")), data)


def write_metrics(output: str, scores: pd.DataFrame, forecasts: pd.DataFrame) -> dict:
    """``metrics.parquet``/``.csv`` (one row per series, origin and method) and
    ``forecasts.parquet``; returns their entry of ``evaluation.json``'s ``files``."""
    write(output, f"{METRICS_FILE}.parquet", commit.parquet_bytes(scores))
    csv = scores.to_csv(index=False, float_format="%.6g", lineterminator="\n")
    write(output, f"{METRICS_FILE}.csv", csv.encode("utf-8"))
    write(output, "forecasts.parquet", commit.parquet_bytes(forecasts))
    return {
        "metrics": [f"{METRICS_FILE}.parquet", f"{METRICS_FILE}.csv"],
        "forecasts": "forecasts.parquet",
    }


def write_plots(
    output, loaded, origin, forecasts, scores, model, horizon, season, count
) -> list[str]:
    """Forecast plots of ``count`` series at ``origin`` and the MASE distribution; returns
    their names relative to ``output``."""
    from rnncast.pipeline.jobs.evaluate import plots

    written = []
    last = forecasts[forecasts["origin"] == pd.Timestamp(origin)]
    band = (model.quantile_columns[0], model.quantile_columns[-1]) if model.quantiles else None
    scored = last.loc[last["actual"].notna(), "series_id"].unique().tolist()
    for index, series_id in enumerate(backtest.plot_series(scored, count)):
        mine = last[last["series_id"] == series_id]
        obs = loaded.series[series_id]
        tail = max(3 * horizon, 2 * season)
        keep = np.flatnonzero(obs.timestamp <= origin)[-tail:]
        history = pd.Series(obs.value[keep], index=pd.to_datetime(obs.timestamp[keep]))
        model_rows = mine[mine["method"] == backtest.MODEL].set_index("timestamp")
        actual = model_rows["actual"].dropna()
        baselines = {
            m: rows.set_index("timestamp")["forecast"]
            for m, rows in mine.groupby("method")
            if m not in (backtest.MODEL, backtest.NAIVE)
        }
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", series_id)[:40]
        name = f"plots/forecast-{index:02d}-{safe}.png"
        png = plots.forecast_plot(
            f"{series_id}: forecast from {pd.Timestamp(origin)} (last origin)",
            history,
            actual,
            model_rows,
            band,
            baselines,
        )
        write(output, name, png)
        written.append(name)
    methods = list(dict.fromkeys(scores["method"]))
    name = "plots/mase_distribution.png"
    write(output, name, plots.mase_distribution_plot(scores[scores["targets"] > 0], methods))
    written.append(name)
    return written


def not_scored_counts(records: pd.DataFrame) -> dict:
    """What was not scored and why: (series, origin) pairs with no actual after the origin
    (or no history before it), and per method the pairs it gave no forecast for (by status)."""
    skipped = records[records["method"] == NO_PAIR]
    scored = records[records["method"] != NO_PAIR]
    missing = scored[scored["mase"].isna()]
    methods = {
        method: dict(sorted(collections.Counter(group["status"]).items()))
        for method, group in missing.groupby("method", sort=True)
    }
    return {
        "pairs": int(len(skipped)),
        "pairs_by_reason": dict(sorted(collections.Counter(skipped["status"]).items())),
        "scored_pairs": int(scored[["series_id", "origin"]].drop_duplicates().shape[0]),
        "by_method": methods,
    }


def describe_not_scored(not_scored: dict) -> str:
    """One line for the console and the summary."""
    text = f"{not_scored['scored_pairs']} (series, origin) pairs scored"
    if not_scored["pairs"]:
        reasons = ", ".join(f"{k} {v}" for k, v in not_scored["pairs_by_reason"].items())
        text += f"; {not_scored['pairs']} not scored ({reasons})"
    for method, statuses in not_scored["by_method"].items():
        reasons = ", ".join(f"{k} {v}" for k, v in statuses.items())
        text += f"; {method} gave no forecast for {sum(statuses.values())} ({reasons})"
    return text


def write_summary(output, table, settings, plot_names, not_scored) -> None:
    """``summary.md`` and ``summary.html``: the accuracy table, what was not scored, plots."""
    markdown = [
        "# rnncast backtest",
        "",
        f"Input `{settings['input']}`; {len(settings['origins'])} origins "
        f"({settings['origins'][0]} … {settings['origins'][-1]}), horizon {settings['horizon']}, "
        f"season {settings['season']}, frequency {settings['freq']}.",
        "",
        backtest.markdown_table(table, TABLE_COLUMNS),
        "",
        "MASE and scaled pinball are scaled by the in-sample seasonal naive error; sMAPE in %; "
        "WQL pooled over all series and origins; coverage of the outermost quantile interval "
        f"(nominal {settings['nominal_coverage']:.2f}). Means over (series, origin) pairs; "
        "beats_seasonal_naive is the share of pairs with a lower MASE than seasonal naive.",
        "",
        f"Not scored: {describe_not_scored(not_scored)}.",
        "",
        *(
            [
                f"**Not a backtest:** the reused model was trained on data through "
                f"{settings['model_trained_through']}, after the first origin.",
                "",
            ]
            if settings["origins_precede_model_training_end"]
            else []
        ),
        *[f"![{name.rsplit('/', 1)[-1]}]({name})" for name in plot_names],
        "",
    ]
    write(output, "summary.md", "\n".join(markdown).encode("utf-8"))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in TABLE_COLUMNS)

    def cell(value) -> str:
        if isinstance(value, float):
            return "–" if np.isnan(value) else f"{value:.3f}"
        return html.escape(str(value))

    body = "".join(
        "<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
        for row in table[list(TABLE_COLUMNS)].itertuples(index=False)
    )
    images = "".join(f'<p><img src="{html.escape(name)}" alt=""></p>' for name in plot_names)
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>rnncast backtest</title>"
        "<style>body{font-family:sans-serif}td,th{padding:2px 10px;text-align:right}"
        "td:first-child{text-align:left}</style></head><body>"
        f"<h1>rnncast backtest</h1><p>{html.escape(markdown[2])}</p>"
        f"<table><tr>{head}</tr>{body}</table>{images}</body></html>\n"
    )
    write(output, "summary.html", page.encode("utf-8"))


def write_evaluation_json(output: str, summary: dict) -> None:
    write(output, SUMMARY_FILE, json.dumps(summary, indent=2, sort_keys=True).encode("utf-8"))
