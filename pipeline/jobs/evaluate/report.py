"""``rnncast evaluate``'s outputs: metrics, forecasts, the Markdown/HTML summary, plots, the
dead letters and ``evaluation.json``. Every file goes through :func:`commit.write_bytes`, so
``--output`` may be a local folder or an object store (``gs://``, ``s3://``) like every other
job's."""

from __future__ import annotations

import collections
import dataclasses
import html
import json
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from apache_beam.io.filesystems import FileSystems
from pandas.tseries.frequencies import to_offset

from rnncast import schemas
from rnncast.pipeline.core import backtest, forecasting
from rnncast.pipeline.core import series as series_lib
from rnncast.pipeline.core.series import NS_PER_DAY, nominal_period_ns
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
    output: str,
    loaded: backtest.LoadedInput,
    origins: Sequence[int],
    forecasts: pd.DataFrame,
    scores: pd.DataFrame,
    model: forecasting.ModelInfo,
    horizon: int,
    season: int,
    count: int,
    value_name: str = "value",
    freq: str = "D",
) -> list[str]:
    """One PNG per plotted series (``count`` of them, spread over the ids scored at any
    origin) with a panel per origin, and the MASE distribution; returns their names
    relative to ``output``."""
    from rnncast.pipeline.jobs.evaluate import plots

    written = []
    band = (model.quantile_columns[0], model.quantile_columns[-1]) if model.quantiles else None
    band_label = f"rnncast {band[0]}–{band[1]}" if band else ""
    scored = forecasts.loc[forecasts["actual"].notna(), "series_id"].unique().tolist()
    tail = max(2 * horizon, season)  # history before each origin, in steps
    for index, series_id in enumerate(backtest.plot_series(scored, count)):
        panels = forecast_panels(
            loaded.series[series_id],
            forecasts[forecasts["series_id"] == series_id],
            origins,
            band,
            tail,
        )
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", series_id)[:40]
        name = f"plots/forecast-{index:02d}-{safe}.png"
        png = plots.forecast_panels_plot(
            f"{series_id}: {value_name}, forecasts from {len(panels)} origin"
            f"{'s' if len(panels) != 1 else ''}",
            panels,
            [f"origin {format_time(p.origin, freq)}" for p in panels],
            value_name,
            band_label,
        )
        write(output, name, png)
        written.append(name)
    methods = list(dict.fromkeys(scores["method"]))
    name = "plots/mase_distribution.png"
    write(output, name, plots.mase_distribution_plot(scores[scores["targets"] > 0], methods))
    written.append(name)
    return written


@dataclasses.dataclass(frozen=True)
class Panel:
    """What one origin's panel of a forecast plot draws: the history tail, the actuals, the
    model's forecast, its band as drawn (clipped at zero for a non-negative history) and
    every baseline (naive included)."""

    origin: pd.Timestamp
    history: pd.Series
    actual: pd.Series
    forecast: pd.Series
    band: tuple[pd.Series, pd.Series] | None
    baselines: dict[str, pd.Series]


def drawn_band(
    lower: pd.Series, upper: pd.Series, history: np.ndarray
) -> tuple[pd.Series, pd.Series]:
    """The band as drawn: clipped at zero when the history is non-negative (a forecaster
    reads a band below zero for rain or counts as a plotting error). Only the drawing; the
    stored forecasts keep their values."""
    values = np.asarray(history, dtype=float)
    values = values[np.isfinite(values)]
    if values.size and values.min() >= 0:
        return lower.clip(lower=0.0), upper.clip(lower=0.0)
    return lower, upper


def forecast_panels(
    obs: series_lib.Observations,
    rows: pd.DataFrame,
    origins: Sequence[int],
    band: tuple[str, str] | None,
    tail: int,
) -> list[Panel]:
    """One :class:`Panel` per origin (oldest first) at which ``rows`` (one series' rows of
    ``forecasts.parquet``) hold forecasts; ``tail`` history points before each origin."""
    panels = []
    for origin in origins:
        stamp = pd.Timestamp(origin)
        mine = rows[rows["origin"] == stamp]
        model_rows = mine[mine["method"] == backtest.MODEL].set_index("timestamp")
        if model_rows.empty:
            continue
        before = obs.timestamp <= origin
        keep = np.flatnonzero(before)[-tail:]
        history = pd.Series(obs.value[keep], index=pd.to_datetime(obs.timestamp[keep]))
        drawn = None
        if band is not None:
            drawn = drawn_band(model_rows[band[0]], model_rows[band[1]], obs.value[before])
        panels.append(
            Panel(
                origin=stamp,
                history=history,
                actual=model_rows["actual"].dropna(),
                forecast=model_rows["forecast"],
                band=drawn,
                baselines={
                    m: group.set_index("timestamp")["forecast"]
                    for m, group in mine.groupby("method", sort=True)
                    if m != backtest.MODEL
                },
            )
        )
    return panels


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


# --- the summary: one document, rendered as Markdown and as HTML ------------------------------

# Lower is better for these; coverage is best closest to its nominal level and
# beats_seasonal_naive highest.
LOWER_IS_BETTER = ("mase", "smape", "scaled_pinball", "wql")
HIGHER_IS_BETTER = ("beats_seasonal_naive",)
DIGITS = 3
# Per-series table: at most this many series (those with the most scored pairs).
SERIES_ROWS = 20
METRIC_DEFINITIONS = (
    (
        "mase",
        "mean absolute scaled error: the mean absolute error divided by the in-sample mean "
        "absolute error of the seasonal naive forecast (below 1 beats it in-sample).",
    ),
    ("smape", "symmetric mean absolute percentage error, in % (0 to 200)."),
    (
        "scaled_pinball",
        "the pinball (quantile) loss averaged over the quantile levels, on the MASE scale; a "
        "point forecast stands for every quantile.",
    ),
    (
        "wql",
        "weighted quantile loss: 2 × the pinball loss summed over all series and origins, "
        "divided by the sum of the absolute actuals (pooled, not a mean of pairs).",
    ),
    (
        "coverage",
        "the share of actuals inside the outermost quantile interval; best when closest to "
        "its nominal level.",
    ),
    (
        "beats_seasonal_naive",
        "the share of (series, origin) pairs with a lower MASE than seasonal naive (higher is "
        "better).",
    ),
)


@dataclasses.dataclass(frozen=True)
class Table:
    """A table as text cells; ``bold`` holds the (row, column) cells to mark. The first column
    is left-aligned, the others right-aligned."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    bold: frozenset[tuple[int, int]] = frozenset()


def format_number(value, digits: int = DIGITS) -> str:
    """A number rounded to ``digits``; NaN (or None) as a dash."""
    if value is None or (isinstance(value, (float, np.floating)) and np.isnan(value)):
        return "–"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value)


def _best(values: Sequence[float], goal: str, target: float = float("nan")) -> set[int]:
    """Positions of the best of ``values`` (``goal``: "min", "max" or "closest" to
    ``target``), compared as shown (rounded), so ties are all marked; none when all are NaN."""
    shown = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    if goal == "closest":
        if np.isnan(target):
            return set()
        shown = -np.abs(shown - target)
    elif goal == "min":
        shown = -shown
    shown = np.round(shown, DIGITS)
    if np.isnan(shown).all():
        return set()
    top = np.nanmax(shown)
    return {k for k, v in enumerate(shown) if v == top}


def best_in_columns(table: pd.DataFrame, nominal_coverage: float) -> dict[str, set[int]]:
    """For each metric column of the overall ``table``, the row positions holding its best
    value: lowest for MASE, sMAPE, scaled pinball and WQL; closest to ``nominal_coverage``
    for coverage; highest for beats_seasonal_naive. Ties (as shown, rounded) are all best."""
    marks = {c: _best(table[c].tolist(), "min") for c in LOWER_IS_BETTER if c in table}
    if "coverage" in table:
        marks["coverage"] = _best(table["coverage"].tolist(), "closest", nominal_coverage)
    for column in HIGHER_IS_BETTER:
        if column in table:
            marks[column] = _best(table[column].tolist(), "max")
    return marks


def overall_table(table: pd.DataFrame, nominal_coverage: float) -> Table:
    """The overall accuracy table with the best value of each metric column in bold."""
    marks = best_in_columns(table, nominal_coverage)
    columns = list(TABLE_COLUMNS)
    rows = tuple(
        tuple(format_number(v) for v in row) for row in table[columns].itertuples(index=False)
    )
    bold = frozenset((r, columns.index(c)) for c, positions in marks.items() for r in positions)
    return Table(tuple(columns), rows, bold)


def mase_by(scores: pd.DataFrame, key: str, methods: Sequence[str]) -> pd.DataFrame:
    """Mean MASE per ``key`` (``series_id`` or ``origin``) and method over the scored pairs,
    one column per method in ``methods``' order, with ``pairs``: the number of (series,
    origin) pairs scored for that key. Rows sorted by ``key``."""
    scored = scores[(scores["targets"] > 0) & (scores["method"] != NO_PAIR)]
    means = scored.pivot_table(index=key, columns="method", values="mase", aggfunc="mean")
    means = means.reindex(columns=list(methods))
    pairs = scored.groupby(key)["series_id" if key == "origin" else "origin"].nunique()
    frame = means.assign(pairs=pairs).reset_index()
    frame.columns.name = None
    return frame[[key, "pairs", *methods]].sort_values(key).reset_index(drop=True)


def top_series(frame: pd.DataFrame, count: int = SERIES_ROWS) -> pd.DataFrame:
    """The ``count`` series of a :func:`mase_by` ``series_id`` frame with the most scored
    pairs (ties by id), sorted by id."""
    ranked = frame.sort_values(["pairs", "series_id"], ascending=[False, True], kind="stable")
    return ranked.head(count).sort_values("series_id").reset_index(drop=True)


def mase_table(frame: pd.DataFrame, key: str, labels: Sequence[str] | None = None) -> Table:
    """A :func:`mase_by` frame as a table, the lowest MASE of each row in bold (ties all);
    ``labels`` replace the ``key`` column's text (formatted origins)."""
    methods = [c for c in frame.columns if c not in (key, "pairs")]
    rows, bold = [], set()
    for r, record in enumerate(frame.itertuples(index=False)):
        values = list(record)[2:]
        label = labels[r] if labels is not None else str(record[0])
        rows.append((label, str(record[1]), *(format_number(v) for v in values)))
        bold.update((r, 2 + k) for k in _best(values, "min"))
    header = (key, "pairs", *(f"MASE {m}" for m in methods))
    return Table(header, tuple(rows), frozenset(bold))


def format_time(value, freq: str) -> str:
    """A timestamp as a forecaster reads it at ``freq``: the date alone for daily or longer
    periods, with hours and minutes below a day."""
    stamp = pd.Timestamp(value)
    if nominal_period_ns(to_offset(freq).freqstr) >= NS_PER_DAY and stamp == stamp.normalize():
        return stamp.strftime("%Y-%m-%d")
    return stamp.strftime("%Y-%m-%d %H:%M")


def summary_blocks(
    table: pd.DataFrame,
    scores: pd.DataFrame,
    settings: dict,
    plot_names: Sequence[str],
    not_scored: dict,
) -> list[tuple[str, object]]:
    """The summary as blocks (``("h1"|"h2"|"p", text)``, ``("ul", [items])``,
    ``("table", Table)``, ``("img", path)``); text may hold Markdown inline code and bold."""
    origins = settings["origins"]
    freq = settings["freq"]
    nominal = settings["nominal_coverage"]
    methods = table["method"].tolist()
    blocks: list[tuple[str, object]] = [
        ("h1", "rnncast backtest"),
        (
            "p",
            f"Input `{settings['input']}`; {len(origins)} origins "
            f"({format_time(origins[0], freq)} … {format_time(origins[-1], freq)}), horizon "
            f"{settings['horizon']}, season {settings['season']}, frequency `{freq}`.",
        ),
    ]
    if settings["origins_precede_model_training_end"]:
        blocks.append(
            (
                "p",
                f"**Not a backtest:** the reused model was trained on data through "
                f"{settings['model_trained_through']}, after the first origin.",
            )
        )
    coverage = "" if np.isnan(nominal) else f" {nominal:.2f}"
    blocks += [
        ("h2", "Accuracy"),
        ("table", overall_table(table, nominal)),
        (
            "p",
            "Means over (series, origin) pairs; **bold** marks the best method of each "
            f"column: lowest, except coverage (closest to the nominal{coverage}) and "
            "beats_seasonal_naive (highest). Ties are all marked.",
        ),
        ("ul", [f"`{name}`: {text}" for name, text in METRIC_DEFINITIONS]),
        ("p", f"{describe_not_scored(not_scored)}."),
    ]
    series = mase_by(scores, "series_id", methods)
    shown = top_series(series)
    more = len(series) - len(shown)
    blocks += [
        ("h2", "MASE per series"),
        (
            "p",
            "Mean over origins; **bold** marks the lowest of each row."
            + (
                f" The {len(shown)} series with the most scored pairs; {more} more in "
                "`metrics.csv`."
                if more
                else ""
            ),
        ),
        ("table", mase_table(shown, "series_id")),
        ("h2", "MASE per origin"),
        ("p", "Mean over series; **bold** marks the lowest of each row."),
    ]
    origin_frame = mase_by(scores, "origin", methods)
    labels = [format_time(o, freq) for o in origin_frame["origin"]]
    blocks.append(("table", mase_table(origin_frame, "origin", labels)))
    if plot_names:
        blocks.append(("h2", "Plots"))
        blocks += [("img", name) for name in plot_names]
    return blocks


def _markdown_table(table: Table) -> str:
    def cell(r: int, c: int, text: str) -> str:
        return f"**{text}**" if (r, c) in table.bold else text

    lines = [
        "| " + " | ".join(table.header) + " |",
        "| " + " | ".join("---" if k == 0 else "---:" for k in range(len(table.header))) + " |",
    ]
    for r, row in enumerate(table.rows):
        lines.append("| " + " | ".join(cell(r, c, t) for c, t in enumerate(row)) + " |")
    return "\n".join(lines)


def to_markdown(blocks: Sequence[tuple[str, object]]) -> str:
    """The summary blocks as GitHub Markdown."""
    parts = []
    for kind, content in blocks:
        if kind == "h1":
            parts.append(f"# {content}")
        elif kind == "h2":
            parts.append(f"## {content}")
        elif kind == "p":
            parts.append(str(content))
        elif kind == "ul":
            parts.append("\n".join(f"- {item}" for item in content))
        elif kind == "table":
            parts.append(_markdown_table(content))
        elif kind == "img":
            parts.append(f"![{content.rsplit('/', 1)[-1]}]({content})")
        else:
            raise ValueError(f"unknown block {kind!r}")
    return "\n\n".join(parts) + "\n"


_INLINE = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*")


def inline_html(text: str) -> str:
    """Markdown inline text as HTML: `code` → <code>, **bold** → <strong>, the rest escaped."""
    out, at = [], 0
    for match in _INLINE.finditer(text):
        out.append(html.escape(text[at : match.start()]))
        if match.group(1) is not None:
            out.append(f"<code>{html.escape(match.group(1))}</code>")
        else:
            out.append(f"<strong>{inline_html(match.group(2))}</strong>")
        at = match.end()
    out.append(html.escape(text[at:]))
    return "".join(out)


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
    body = []
    for r, row in enumerate(table.rows):
        cells = "".join(
            f"<td><strong>{html.escape(t)}</strong></td>"
            if (r, c) in table.bold
            else f"<td>{html.escape(t)}</td>"
            for c, t in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return (
        f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n"
        + "\n".join(body)
        + ("\n</tbody>\n</table>")
    )


_CSS = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1000px;"
    "margin:2em auto;padding:0 1em;color:#222;line-height:1.45}"
    "h1{font-size:1.6em;margin-bottom:.3em}h2{font-size:1.25em;margin-top:1.6em;"
    "border-bottom:1px solid #ddd;padding-bottom:.2em}"
    "code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em;"
    "background:#f3f3f3;padding:.1em .3em;border-radius:3px}"
    "table{border-collapse:collapse;margin:.8em 0;font-variant-numeric:tabular-nums}"
    "th,td{padding:4px 12px;text-align:right;border-bottom:1px solid #e5e5e5}"
    "td{white-space:nowrap}"
    "th{background:#f6f6f6;border-bottom:2px solid #ccc}"
    "td:first-child,th:first-child{text-align:left}"
    "tbody tr:hover{background:#fafafa}"
    "td strong{color:#0b5394}"
    "li{margin:.25em 0}img{max-width:100%;height:auto;display:block;margin:1em 0}"
)


def to_html(blocks: Sequence[tuple[str, object]]) -> str:
    """The summary blocks as one self-contained HTML page (inline CSS; images by their
    relative paths)."""
    parts = []
    for kind, content in blocks:
        if kind in ("h1", "h2"):
            parts.append(f"<{kind}>{inline_html(str(content))}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{inline_html(str(content))}</p>")
        elif kind == "ul":
            items = "".join(f"<li>{inline_html(item)}</li>" for item in content)
            parts.append(f"<ul>{items}</ul>")
        elif kind == "table":
            parts.append(_html_table(content))
        elif kind == "img":
            name = html.escape(content)
            alt = html.escape(content.rsplit("/", 1)[-1])
            parts.append(f'<p><img src="{name}" alt="{alt}"></p>')
        else:
            raise ValueError(f"unknown block {kind!r}")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>rnncast backtest</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )


def write_summary(
    output: str,
    table: pd.DataFrame,
    settings: dict,
    plot_names: Sequence[str],
    not_scored: dict,
    scores: pd.DataFrame,
) -> None:
    """``summary.md`` and ``summary.html`` from the same blocks: the accuracy table with the
    best methods marked, the metric definitions, what was not scored, MASE per series and per
    origin, and the plots."""
    blocks = summary_blocks(table, scores, settings, plot_names, not_scored)
    write(output, "summary.md", to_markdown(blocks).encode("utf-8"))
    write(output, "summary.html", to_html(blocks).encode("utf-8"))


def write_evaluation_json(output: str, summary: dict) -> None:
    write(output, SUMMARY_FILE, json.dumps(summary, indent=2, sort_keys=True).encode("utf-8"))
