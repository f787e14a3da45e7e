"""`rnncast evaluate`'s report without training: best-method marking, the per-series and
per-origin tables, the Markdown and HTML summary, and what the forecast plots draw."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from rnncast.pipeline.core import backtest
from rnncast.pipeline.core import series as series_lib
from rnncast.pipeline.core.forecasting import quantile_column
from rnncast.pipeline.jobs.evaluate import report

NAN = float("nan")
DAY = 86_400 * 10**9


def overall(**columns) -> pd.DataFrame:
    frame = pd.DataFrame(columns)
    for column in report.TABLE_COLUMNS:
        if column not in frame:
            frame[column] = 1.0
    return frame


# --- best method per column -------------------------------------------------------------------


def test_lower_is_better_and_ties_are_all_marked():
    table = overall(
        method=["rnncast", "seasonal_naive", "naive"],
        mase=[0.9, 1.2, 0.9],
        smape=[30.0, 20.0, 25.0],
        wql=[0.30011, 0.3004, 0.5],  # 0.300 and 0.300 as shown: a tie
    )
    best = report.best_in_columns(table, 0.8)
    assert best["mase"] == {0, 2}
    assert best["smape"] == {1}
    assert best["wql"] == {0, 1}


def test_coverage_is_best_closest_to_nominal_and_beats_highest():
    table = overall(
        method=["rnncast", "seasonal_naive", "AutoETS", "AutoTheta"],
        coverage=[0.70, NAN, 0.95, 0.85],
        beats_seasonal_naive=[0.6, NAN, 0.75, 0.75],
    )
    best = report.best_in_columns(table, 0.8)
    assert best["coverage"] == {3}  # 0.85 is 0.05 away; 0.70 is 0.10 away
    assert best["beats_seasonal_naive"] == {2, 3}
    # Without a nominal level (point forecasts only) no coverage is marked.
    assert report.best_in_columns(table, NAN)["coverage"] == set()


def test_an_all_nan_column_marks_nothing():
    table = overall(method=["a", "b"], coverage=[NAN, NAN])
    assert report.best_in_columns(table, 0.8)["coverage"] == set()


def test_overall_table_bolds_the_best_cells_in_markdown_and_html():
    table = overall(method=["rnncast", "naive"], mase=[0.8, 1.1], forecasts=[4, 4])
    rendered = report.overall_table(table, 0.8)
    mase = list(report.TABLE_COLUMNS).index("mase")
    assert (0, mase) in rendered.bold and (1, mase) not in rendered.bold
    markdown = report.to_markdown([("table", rendered)])
    assert "| rnncast | 4 | **0.800** |" in markdown
    assert "| naive | 4 | 1.100 |" in markdown
    assert "<td><strong>0.800</strong></td>" in report.to_html([("table", rendered)])


# --- per-series and per-origin tables ---------------------------------------------------------


def scores_frame() -> pd.DataFrame:
    rows = []
    origins = pd.to_datetime(["2020-01-10", "2020-01-20"])
    mase = {
        ("a", 0, "rnncast"): 1.0,
        ("a", 0, "naive"): 2.0,
        ("a", 1, "rnncast"): 3.0,
        ("a", 1, "naive"): 2.0,
        ("b", 0, "rnncast"): 0.5,
        ("b", 0, "naive"): 0.25,
    }
    for (series_id, k, method), value in mase.items():
        rows.append(
            {
                "series_id": series_id,
                "origin": origins[k],
                "method": method,
                "targets": 3,
                "mase": value,
            }
        )
    # A pair with nothing to score counts nowhere.
    rows.append(
        {"series_id": "c", "origin": origins[1], "method": "rnncast", "targets": 0, "mase": NAN}
    )
    return pd.DataFrame(rows)


def test_mase_per_series_is_the_mean_over_origins():
    frame = report.mase_by(scores_frame(), "series_id", ["rnncast", "naive"])
    assert frame["series_id"].tolist() == ["a", "b"]
    assert frame["pairs"].tolist() == [2, 1]
    assert frame["rnncast"].tolist() == [2.0, 0.5]
    assert frame["naive"].tolist() == [2.0, 0.25]
    table = report.mase_table(frame, "series_id")
    assert table.header == ("series_id", "pairs", "MASE rnncast", "MASE naive")
    assert table.rows[0] == ("a", "2", "2.000", "2.000")
    assert table.bold == {(0, 2), (0, 3), (1, 3)}  # a tie in row a, naive best for b


def test_mase_per_origin_is_the_mean_over_series():
    frame = report.mase_by(scores_frame(), "origin", ["rnncast", "naive"])
    assert frame["pairs"].tolist() == [2, 1]
    assert frame["rnncast"].tolist() == [0.75, 3.0]
    assert frame["naive"].tolist() == [1.125, 2.0]
    labels = [report.format_time(o, "D") for o in frame["origin"]]
    assert labels == ["2020-01-10", "2020-01-20"]
    assert report.mase_table(frame, "origin", labels).rows[1][0] == "2020-01-20"


def test_the_per_series_table_keeps_the_series_with_most_pairs_sorted_by_id():
    frame = pd.DataFrame(
        {"series_id": ["d", "a", "c", "b"], "pairs": [1, 3, 3, 2], "rnncast": [1.0] * 4}
    )
    assert report.top_series(frame, 3)["series_id"].tolist() == ["a", "b", "c"]
    assert report.top_series(frame, 10)["series_id"].tolist() == ["a", "b", "c", "d"]


def test_origins_are_formatted_by_frequency():
    assert report.format_time("2015-12-17", "D") == "2015-12-17"
    assert report.format_time("2015-12-17", "W-SUN") == "2015-12-17"
    assert report.format_time("2015-12-01", "MS") == "2015-12-01"
    assert report.format_time("2015-12-17 13:00", "h") == "2015-12-17 13:00"


# --- the summary as Markdown and HTML ---------------------------------------------------------


def test_inline_markdown_becomes_html():
    text = "Input `a<b>.csv` and **bold `x`** & more"
    assert report.inline_html(text) == (
        "Input <code>a&lt;b&gt;.csv</code> and <strong>bold <code>x</code></strong> &amp; more"
    )


def settings(**changes) -> dict:
    return {
        "input": "data/in.csv",
        "freq": "D",
        "season": 7,
        "horizon": 3,
        "origins": ["2020-01-10 00:00:00", "2020-01-20 00:00:00"],
        "nominal_coverage": 0.8,
        "origins_precede_model_training_end": False,
        "model_trained_through": None,
    } | changes


def test_the_summary_has_definitions_every_table_and_no_raw_markdown_in_html():
    scores = scores_frame()
    table = overall(
        method=["rnncast", "naive"], forecasts=[3, 3], mase=[1.5, 1.4], coverage=[0.7, NAN]
    )
    not_scored = {"scored_pairs": 3, "pairs": 0, "pairs_by_reason": {}, "by_method": {}}
    blocks = report.summary_blocks(
        table, scores, settings(), ["plots/forecast-00-a.png"], not_scored
    )
    markdown = report.to_markdown(blocks)
    page = report.to_html(blocks)
    for name, _ in report.METRIC_DEFINITIONS:
        assert f"- `{name}`: " in markdown
        assert f"<li><code>{name}</code>: " in page
    assert "`data/in.csv`" in markdown and "<code>data/in.csv</code>" in page
    assert "00:00:00" not in markdown and "2020-01-10 … 2020-01-20" in markdown
    for heading in ("Accuracy", "MASE per series", "MASE per origin"):
        assert f"## {heading}" in markdown and f"<h2>{heading}</h2>" in page
    assert page.count("<table>") == 3
    assert "| naive | 3 | **1.400** |" in markdown
    assert "| a | 2 | **2.000** | **2.000** |" in markdown
    assert "| 2020-01-10 | 2 | 0.750 | 1.125 |" in markdown.replace("**", "")
    assert '<img src="plots/forecast-00-a.png"' in page
    text = re.sub(r"<[^>]+>", "", page)
    assert "`" not in text and "**" not in text
    assert "http" not in page  # self-contained: no external assets


def test_a_long_panel_says_how_many_series_are_left_out():
    rows = [
        {"series_id": f"s{k:03d}", "origin": pd.Timestamp("2020-01-10"), "method": "rnncast"}
        | {"targets": 2, "mase": 1.0}
        for k in range(25)
    ]
    table = overall(method=["rnncast"], forecasts=[25])
    not_scored = {"scored_pairs": 25, "pairs": 0, "pairs_by_reason": {}, "by_method": {}}
    blocks = report.summary_blocks(table, pd.DataFrame(rows), settings(), [], not_scored)
    series_table = [c for k, c in blocks if k == "table"][1]
    assert len(series_table.rows) == report.SERIES_ROWS
    assert "5 more in `metrics.csv`" in report.to_markdown(blocks)


def test_not_a_backtest_is_said_in_both_summaries():
    table = overall(method=["rnncast"], forecasts=[3])
    not_scored = {"scored_pairs": 3, "pairs": 0, "pairs_by_reason": {}, "by_method": {}}
    blocks = report.summary_blocks(
        table,
        scores_frame(),
        settings(origins_precede_model_training_end=True, model_trained_through="2020-02-01"),
        [],
        not_scored,
    )
    assert "**Not a backtest:**" in report.to_markdown(blocks)
    assert "<strong>Not a backtest:</strong>" in report.to_html(blocks)


# --- forecast plots ---------------------------------------------------------------------------


def test_bands_are_clipped_at_zero_only_for_a_non_negative_history():
    lower = pd.Series([-1.0, 0.5, -0.2])
    upper = pd.Series([2.0, -0.1, 3.0])
    low, high = report.drawn_band(lower, upper, np.array([0.0, 1.0, np.nan]))
    assert low.tolist() == [0.0, 0.5, 0.0] and high.tolist() == [2.0, 0.0, 3.0]
    assert lower.tolist() == [-1.0, 0.5, -0.2]  # the forecasts themselves are unchanged
    low, high = report.drawn_band(lower, upper, np.array([-0.5, 1.0]))
    assert low.tolist() == lower.tolist() and high.tolist() == upper.tolist()


def rain_forecasts(series_ids, origins, horizon, levels):
    """Forecast rows as the job writes them: every method at every origin, a band that dips
    below zero."""
    frames = []
    for series_id in series_ids:
        for origin in origins:
            targets = origin + DAY * np.arange(1, horizon + 1)
            for method in (backtest.MODEL, backtest.SEASONAL_NAIVE, backtest.NAIVE):
                frame = pd.DataFrame(
                    {
                        "series_id": series_id,
                        "origin": np.full(horizon, origin).astype("datetime64[ns]"),
                        "method": method,
                        "step": np.arange(1, horizon + 1, dtype=np.int32),
                        "timestamp": targets.astype("datetime64[ns]"),
                        "actual": np.linspace(0.0, 2.0, horizon),
                        "forecast": np.full(horizon, 0.5),
                    }
                )
                frame[quantile_column(levels[0])] = -1.0
                frame[quantile_column(levels[1])] = 2.0
                frames.append(frame)
    return pd.concat(frames, ignore_index=True)


class _Model:
    """The two fields of an export's ModelInfo that the plots read."""

    quantiles = (0.1, 0.9)
    quantile_columns = [quantile_column(0.1), quantile_column(0.9)]


def test_every_plotted_series_gets_a_panel_per_origin_with_every_baseline(tmp_path):
    start = pd.Timestamp("2020-01-01").value
    n = 60
    stamps = start + DAY * np.arange(n)
    values = np.abs(np.sin(np.arange(n)))  # non-negative, like rain
    loaded = backtest.LoadedInput(
        series={
            sid: series_lib.Observations(
                stamps,
                values,
                np.zeros((n, 0)),
                np.zeros(n, np.int32),
                np.arange(1, n + 1),
                ("x.csv",),
            )
            for sid in ("a", "b", "c")
        },
        rejected=pd.DataFrame(),
        rows_read=3 * n,
    )
    origins = [int(stamps[40]), int(stamps[45]), int(stamps[50])]
    forecasts = rain_forecasts(["a", "b", "c"], origins, 5, (0.1, 0.9))
    panels = report.forecast_panels(
        loaded.series["a"],
        forecasts[forecasts["series_id"] == "a"],
        origins,
        ("q0.1", "q0.9"),
        20,
    )
    assert [p.origin.value for p in panels] == origins
    for panel in panels:
        assert sorted(panel.baselines) == [backtest.NAIVE, backtest.SEASONAL_NAIVE]
        assert (panel.band[0] == 0.0).all() and (panel.band[1] == 2.0).all()
        assert panel.history.index[-1] == panel.origin and len(panel.history) == 20
    assert (forecasts["q0.1"] == -1.0).all()  # stored forecasts untouched

    scores = pd.DataFrame(
        {"series_id": ["a"], "origin": [pd.Timestamp(origins[0])], "method": ["rnncast"]}
        | {"targets": [5], "mase": [1.0]}
    )
    names = report.write_plots(
        str(tmp_path), loaded, origins, forecasts, scores, _Model(), 5, 7, 2, "rain_mm", "D"
    )
    assert names == [
        "plots/forecast-00-a.png",
        "plots/forecast-01-c.png",
        "plots/mase_distribution.png",
    ]
    first = {name: (tmp_path / name).read_bytes() for name in names}
    for data in first.values():
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # Deterministic bytes from run to run.
    report.write_plots(
        str(tmp_path), loaded, origins, forecasts, scores, _Model(), 5, 7, 2, "rain_mm", "D"
    )
    assert {name: (tmp_path / name).read_bytes() for name in names} == first
