"""`rnncast evaluate`: backtest logic against hand-computed values, the accounting of every
input row, the leakage guarantee with real training, and the command's outputs."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import object_store
import pandas as pd
import pytest
from conftest import write_csv
from hypothesis import given
from hypothesis import strategies as st

from rnncast import schemas
from rnncast.errors import JobArgumentError
from rnncast.pipeline.core import backtest, synthetic
from rnncast.pipeline.core import series as series_lib
from rnncast.pipeline.core.choices import CLASSICAL_MODELS
from rnncast.pipeline.core.validation import InputColumns
from rnncast.pipeline.io.observations import load_input
from rnncast.pipeline.jobs import evaluate as evaluate_job

DAY = 86_400 * 10**9
HOUR = 3_600 * 10**9


def ts(text: str) -> int:
    return pd.Timestamp(text).value


def observations(timestamps, values) -> series_lib.Observations:
    n = len(values)
    return series_lib.Observations(
        np.asarray(timestamps, np.int64),
        np.asarray(values, float),
        np.zeros((n, 0)),
        np.zeros(n, np.int32),
        np.arange(1, n + 1),
        ("x.csv",),
    )


# --- origins and targets ---------------------------------------------------------------------


def test_origins_leave_exactly_the_horizon_after_the_last_one():
    start, end = ts("2020-01-01"), ts("2020-03-01")
    origins = backtest.choose_origins(end, "D", 7, 3, None, start)
    assert origins == [ts("2020-02-09"), ts("2020-02-16"), ts("2020-02-23")]
    spaced = backtest.choose_origins(end, "D", 7, 3, 2, start)
    assert np.diff(spaced).tolist() == [2 * DAY, 2 * DAY]


def test_origins_without_a_count_keep_half_the_data_as_history():
    start, end = ts("2020-01-01"), ts("2020-01-01") + 100 * HOUR
    origins = backtest.choose_origins(end, "h", 10, None, 10, start)
    assert origins[0] >= start + 50 * HOUR
    assert origins[-1] == end - 10 * HOUR
    assert len(origins) == 5  # 90, 80, 70, 60, 50 hours after the start


def test_too_many_origins_is_a_clear_error():
    with pytest.raises(ValueError, match="no history"):
        backtest.choose_origins(ts("2020-01-10"), "D", 3, 5, None, ts("2020-01-01"))


def test_monthly_targets_follow_the_calendar():
    got = backtest.future_targets("MS", ts("2020-01-01"), 3)
    assert got.tolist() == [ts("2020-02-01"), ts("2020-03-01"), ts("2020-04-01")]


def test_actuals_are_looked_up_by_timestamp_and_missing_ones_are_nan():
    obs = observations([0, HOUR, 3 * HOUR], [1.0, 2.0, 4.0])
    got = backtest.actuals_at(obs, np.array([HOUR, 2 * HOUR, 3 * HOUR, 9 * HOUR]))
    np.testing.assert_array_equal(got, [2.0, np.nan, 4.0, np.nan])


# --- scores ----------------------------------------------------------------------------------


def test_scores_against_hand_computed_values():
    history = np.array([1.0, 2.0, 3.0, 2.0, 3.0, 4.0])  # season 3: |diffs| = 1, 1, 1 -> scale 1
    actual = np.array([3.0, np.nan, 5.0])
    point = np.array([2.0, 9.0, 5.0])
    quantiles = np.array([[1.0, 2.0, 4.0], [0.0, 9.0, 10.0], [4.0, 5.0, 6.0]])
    got = backtest.score(actual, point, quantiles, [0.1, 0.5, 0.9], history, 3)
    assert got["targets"] == 2
    assert got["mase"] == pytest.approx(0.5)  # errors 1 and 0 over scale 1
    assert got["smape"] == pytest.approx(100 * (2 * 1 / 5) / 2)
    # Pinball per (target, level): (3 vs 1,2,4) -> 0.2, 0.5, 0.1; (5 vs 4,5,6) -> 0.1, 0, 0.1.
    assert got["pinball_sum"] == pytest.approx(1.0)
    assert got["scaled_pinball"] == pytest.approx(1.0 / 6)
    assert got["wql"] == pytest.approx(2 * 1.0 / 3 / 8)
    assert got["coverage"] == 1.0


def test_a_point_forecast_stands_for_every_quantile_and_has_no_coverage():
    history = np.arange(10.0)
    got = backtest.score(np.array([10.0, 11.0]), np.array([9.0, 9.0]), None, [0.1, 0.9], history, 1)
    assert got["mase"] == pytest.approx(1.5)
    assert np.isnan(got["coverage"])
    assert got["pinball_sum"] == pytest.approx(0.9 * 1 + 0.9 * 2 + 0.1 * 1 + 0.1 * 2)


def test_seasonal_naive_mase_is_exactly_one_on_a_repeating_trend():
    # Each season adds 1 to every value: the seasonal naive error in and out of sample is 1.
    season = 4
    series = np.concatenate([np.arange(season) + k for k in range(10)]).astype(float)
    history, actual = series[:-season], series[-season:]
    forecasts = backtest.baseline_forecasts(history, season, season, [0.5])
    got = backtest.score(actual, *forecasts[backtest.SEASONAL_NAIVE], [0.5], history, season)
    assert got["mase"] == 1.0


def test_overall_pools_wql_and_counts_wins_against_seasonal_naive():
    rows = []
    for sid, (model_mase, naive_mase) in {"a": (0.5, 1.0), "b": (2.0, 1.0)}.items():
        for method, value in (("rnncast", model_mase), ("seasonal_naive", naive_mase)):
            rows.append(
                {
                    "series_id": sid,
                    "origin": 0,
                    "method": method,
                    "targets": 2,
                    "mase": value,
                    "smape": 10.0,
                    "scaled_pinball": value / 2,
                    "wql": 0.0,
                    "coverage": np.nan,
                    "pinball_sum": 3.0 if sid == "a" else 1.0,
                    "abs_actual": 10.0 if sid == "a" else 30.0,
                }
            )
    table = backtest.overall(pd.DataFrame(rows), num_levels=2).set_index("method")
    assert list(table.index) == ["rnncast", "seasonal_naive"]
    assert table.loc["rnncast", "mase"] == pytest.approx(1.25)
    assert table.loc["rnncast", "wql"] == pytest.approx(2 * 4.0 / (2 * 40.0))
    assert table.loc["rnncast", "beats_seasonal_naive"] == 0.5
    assert table.loc["seasonal_naive", "beats_seasonal_naive"] == 0.0


@pytest.mark.parametrize(("level", "width"), [(0.1, 80), (0.9, 80), (0.025, 95), (0.25, 50)])
def test_quantile_levels_map_to_central_intervals(level, width):
    assert backtest._interval_level(level) == width


def test_classical_baselines_give_ordered_quantiles_when_installed():
    pytest.importorskip("statsforecast")
    rng = np.random.default_rng(0)
    history = 10 + np.sin(np.arange(200) * 2 * np.pi / 7) + rng.normal(0, 0.1, 200)
    got = backtest.baseline_forecasts(
        history, 7, 7, [0.1, 0.5, 0.9], CLASSICAL_MODELS, seasons=(7, 28)
    )
    for name in CLASSICAL_MODELS:
        point, bands = got[name]
        assert point.shape == (7,) and bands.shape == (7, 3)
        assert np.all(bands[:, 0] <= bands[:, 1]) and np.all(bands[:, 1] <= bands[:, 2])
        np.testing.assert_allclose(bands[:, 1], point)
    # MSTL picks up the weekly cycle: its forecast follows the sine, not a flat line.
    truth = 10 + np.sin(np.arange(200, 207) * 2 * np.pi / 7)
    assert np.max(np.abs(got["MSTL"][0] - truth)) < 0.3


def test_a_classical_model_that_fails_on_a_tiny_history_gives_no_forecast():
    pytest.importorskip("statsforecast")
    history = np.array([1010.5, 1021.9, 1073.0, 1050.3, 1032.1])  # AutoETS: "tiny datasets"
    got = backtest.baseline_forecasts(history, 3, 1, [0.1, 0.5, 0.9], ("AutoETS",))
    point, bands = got["AutoETS"]
    assert np.isnan(point).all() and bands.shape == (3, 3) and np.isnan(bands).all()
    scored = backtest.score(np.ones(3), point, bands, [0.1, 0.5, 0.9], history, 1)
    assert scored["targets"] == 0 and np.isnan(scored["mase"])
    assert got[backtest.SEASONAL_NAIVE][0].tolist() == [1032.1] * 3


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_classical_baselines_of_all_series_at_once_equal_one_series_at_a_time(n_jobs):
    # One StatsForecast call (in worker processes with n_jobs=2) fits every model to every
    # series on its own: the numbers are exactly those of one series at a time, and a model
    # that fails on one (too short) series gives it NaN without touching the others.
    pytest.importorskip("statsforecast")
    rng = np.random.default_rng(3)
    histories = {
        f"s{k}": 10 + np.sin(np.arange(n) * 2 * np.pi / 7) + rng.normal(0, 0.3, n)
        for k, n in enumerate((40, 63, 90))
    }
    histories["tiny"] = np.array([1010.5, 1021.9, 1073.0, 1050.3, 1032.1])
    levels = [0.1, 0.5, 0.9]
    got = backtest.classical_forecasts(
        histories, 5, 7, levels, CLASSICAL_MODELS, (7,), n_jobs=n_jobs
    )
    assert set(got) == set(histories)
    for series_id, history in histories.items():
        one = backtest.baseline_forecasts(history, 5, 7, levels, CLASSICAL_MODELS, (7,))
        assert list(got[series_id]) == list(CLASSICAL_MODELS)
        for name in CLASSICAL_MODELS:
            np.testing.assert_array_equal(got[series_id][name][0], one[name][0])
            np.testing.assert_array_equal(got[series_id][name][1], one[name][1])
    assert np.isnan(got["tiny"]["AutoETS"][0]).all()
    assert not np.isnan(got["s0"]["AutoETS"][0]).any()
    assert backtest.classical_forecasts(histories, 5, 7, levels, ()) == {k: {} for k in histories}


def test_classical_baselines_use_worker_processes_only_for_many_series_on_many_cores():
    assert backtest.classical_jobs(1000, 16) == -1
    assert backtest.classical_jobs(4, 16) == 1
    assert backtest.classical_jobs(1000, 2) == 1


def test_auto_classical_adds_mstl_only_for_a_season_longer_than_24():
    pytest.importorskip("statsforecast")
    assert evaluate_job.classical_models("auto", (24,)) == ("AutoETS", "AutoTheta")
    assert evaluate_job.classical_models("auto", (24, 168)) == ("AutoETS", "AutoTheta", "MSTL")
    assert evaluate_job.classical_models("MSTL", (7,)) == ("MSTL",)
    assert evaluate_job.parse_mstl_seasons("24,168") == (24, 168)
    with pytest.raises(JobArgumentError, match="mstl-seasons"):
        evaluate_job.parse_mstl_seasons("24,x")


def test_plotted_series_are_spread_over_the_sorted_ids():
    ids = [f"s{i:02d}" for i in range(10)]
    assert backtest.plot_series(ids[::-1], 3) == ["s00", "s04", "s09"]
    assert backtest.plot_series(ids[:2], 4) == ["s00", "s01"]


# --- every input row is accounted for ----------------------------------------------------------


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", ""]),
            st.integers(0, 30),
            st.one_of(st.floats(-5, 5), st.just(float("nan")), st.just("x")),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_every_row_is_accepted_once_or_rejected_with_a_reason(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("rows") / "in.csv"
    frame = pd.DataFrame(
        {
            "series_id": [r[0] for r in rows],
            "timestamp": [str(pd.Timestamp("2021-01-01") + pd.Timedelta(hours=r[1])) for r in rows],
            "value": [r[2] for r in rows],
        }
    )
    frame.to_csv(path, index=False)
    loaded = load_input(str(path), InputColumns())
    assert loaded.rows_read == len(rows)
    assert loaded.rows_accepted + len(loaded.rejected) == len(rows)
    assert set(loaded.rejected["reason"]) <= set(schemas.rejection_reasons())
    for obs in loaded.series.values():
        assert np.all(np.diff(obs.timestamp) > 0)
    rebuilt = backtest.history_frame(loaded.series, 2**62, InputColumns())
    assert len(rebuilt) == loaded.rows_accepted


# --- the command -------------------------------------------------------------------------------

TINY = [
    "--num-steps",
    "16",
    "--batch-size",
    "4",
    "--horizon",
    "6",
    "--layers",
    "1",
    "--units",
    "8",
    "--epochs",
    "1",
    "--dropout",
    "0",
    "--validation-fraction",
    "0.2",
    "--classical",
    "none",
]


def _series(seed: int, min_length: int = 200) -> pd.DataFrame:
    return synthetic.generate(3, min_length, 200, seed=seed, gap_fraction=0.0)


def test_no_leakage_values_after_an_origin_change_nothing_at_that_origin(tmp_path):
    frame = _series(3)
    a = tmp_path / "a.csv"
    write_csv(frame, a)
    run = ["--origins", "2", "--origin-every", "12", "--plot-series", "0", "--warm-start", *TINY]
    first = evaluate_job.run(["--input", str(a), "--output", str(tmp_path / "ea"), *run])
    origin = pd.Timestamp(first["origins"][0])
    changed = frame.copy()
    after = changed["timestamp"] > origin
    changed.loc[after, "value"] = changed.loc[after, "value"] * 3 + 100
    b = tmp_path / "b.csv"
    write_csv(changed, b)
    second = evaluate_job.run(["--input", str(b), "--output", str(tmp_path / "eb"), *run])
    assert first["origins"] == second["origins"]

    def origin_outputs(root, label):
        work = root / "origins" / label
        info = json.loads((work / "model" / "export" / "rnncast_model.json").read_text())
        forecasts = pd.read_parquet(root / "forecasts.parquet")
        return info["fingerprint"], forecasts

    labels = sorted(p.name for p in (tmp_path / "ea" / "origins").iterdir())
    fa, forecasts_a = origin_outputs(tmp_path / "ea", labels[0])
    fb, forecasts_b = origin_outputs(tmp_path / "eb", labels[0])
    assert fa == fb, "the model of the first origin saw data after it"
    # --warm-start: the second origin's model was fine-tuned from the first origin's.
    settings = json.loads(
        (tmp_path / "ea" / "origins" / labels[1] / "model" / "train_config.json").read_text()
    )
    assert settings["train"]["init_from"] == str(tmp_path / "ea" / "origins" / labels[0] / "model")
    at_first = forecasts_a["origin"] == origin
    columns = ["series_id", "method", "step", "forecast", "q0.1", "q0.5", "q0.9"]
    pd.testing.assert_frame_equal(
        forecasts_a.loc[at_first, columns].reset_index(drop=True),
        forecasts_b.loc[forecasts_b["origin"] == origin, columns].reset_index(drop=True),
    )
    # The second origin's history includes changed values, so its forecasts must move: the
    # comparison above can fail.
    later = forecasts_a["origin"] > origin
    model = forecasts_a["method"] == "rnncast"
    assert not np.allclose(
        forecasts_a.loc[later & model, "forecast"],
        forecasts_b.loc[(forecasts_b["origin"] > origin) & model, "forecast"],
    )


def test_evaluate_writes_every_output_and_accounts_for_bad_rows(tmp_path):
    frame = _series(5, min_length=180)
    ends = frame.groupby("series_id")["timestamp"].max()
    source = tmp_path / "in.csv"
    write_csv(frame, source)
    with open(source, "a", encoding="utf-8") as handle:
        handle.write("series_0,not-a-time,1.0\nseries_1,2020-01-01T00:00:00,oops\n")
    output = tmp_path / "eval"
    summary = evaluate_job.run(
        [
            "--input",
            str(source),
            "--output",
            str(output),
            "--origins",
            "2",
            "--refit-every",
            "2",
            "--plot-series",
            "2",
            *TINY,
        ]
    )
    jsonschema.validate(summary, schemas.load(schemas.EVALUATION)["json_schema"])
    assert json.loads((output / "evaluation.json").read_text()) == json.loads(json.dumps(summary))
    counts = summary["counts"]
    assert counts["rows_read"] == len(frame) + 2
    assert counts["rows_rejected"] == 2
    assert counts["rejected_by_reason"] == {"invalid_timestamp": 1, "invalid_value": 1}
    dead = [json.loads(line) for line in (output / summary["files"]["rejected"]).open()]
    assert [d["reason"] for d in dead] == ["invalid_timestamp", "invalid_value"]
    # One model for both origins: only the first trained.
    origins = sorted((output / "origins").iterdir())
    assert (origins[0] / "model").exists() and not (origins[1] / "model").exists()

    metrics = pd.read_parquet(output / "metrics.parquet")
    assert list(metrics.columns) == list(schemas.load(schemas.EVALUATION)["metrics_columns"])
    assert set(metrics["method"]) == {"rnncast", "naive", "seasonal_naive"}
    # One row per method for each (series, origin) with points after the origin to score.
    origin_times = [pd.Timestamp(o) for o in summary["origins"]]
    pairs = sum(int(end > o) for end in ends for o in origin_times)
    assert pairs >= 2 and len(metrics) == 3 * pairs
    scored = metrics[metrics["targets"] > 0]
    for column in ("mase", "smape", "scaled_pinball", "wql"):
        assert np.isfinite(scored[column]).all(), column
    model_rows = scored[scored["method"] == "rnncast"]
    assert model_rows["coverage"].between(0, 1).all()
    assert (model_rows["status"] == "full").all()
    csv = pd.read_csv(output / "metrics.csv")
    np.testing.assert_allclose(csv["mase"], metrics["mase"], rtol=1e-5)

    forecasts = pd.read_parquet(output / "forecasts.parquet")
    assert len(forecasts) == len(metrics) * 6
    truth = frame.set_index(["series_id", "timestamp"])["value"]
    keys = list(zip(forecasts["series_id"], forecasts["timestamp"]))
    np.testing.assert_allclose(forecasts["actual"], truth.loc[keys].to_numpy())
    for name in summary["files"]["plots"]:
        assert (output / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    at_any = int((ends > origin_times[0]).sum())
    # Up to two series scored at some origin (a panel per origin each), and the MASE
    # distribution.
    assert len(summary["files"]["plots"]) == min(2, at_any) + 1
    markdown = (output / "summary.md").read_text()
    assert "| rnncast |" in markdown and "| seasonal_naive |" in markdown
    page = (output / "summary.html").read_text()
    assert page.count("<table>") == 3 and "<h2>MASE per origin</h2>" in page
    # Pairs with nothing after the origin are counted and named, never dropped silently.
    not_scored = summary["not_scored"]
    assert not_scored["scored_pairs"] == pairs
    assert not_scored["pairs"] == len(ends) * len(origin_times) - pairs > 0
    assert not_scored["pairs_by_reason"] == {"ends_at_or_before_origin": not_scored["pairs"]}
    assert f"{not_scored['pairs']} not scored (ends_at_or_before_origin" in markdown
    assert summary["origins_precede_model_training_end"] is False

    # Reusing that model: --horizon defaults to the export's, and origins before its training
    # end are flagged outright (in evaluation.json and the summary).
    export = origins[0] / "model" / "export"
    reused = evaluate_job.run(
        ["--input", str(source), "--output", str(tmp_path / "reuse"), "--model", str(export)]
        + ["--origins", "2", "--classical", "none"]
    )
    assert reused["horizon"] == 6
    assert reused["origins_precede_model_training_end"] is False  # trained before origin 1
    early = evaluate_job.run(
        ["--input", str(source), "--output", str(tmp_path / "early"), "--model", str(export)]
        + ["--origins", "4", "--classical", "none"]
    )
    assert early["origins_precede_model_training_end"] is True
    assert early["model_trained_through"] > early["origins"][0]
    assert "Not a backtest" in (tmp_path / "early" / "summary.md").read_text()

    # An object-store --output (gs://, s3://): the results go there through Beam's
    # FileSystems, byte for byte the same as in a local folder; each origin's work stays in a
    # temporary local folder that is removed.
    object_store.ROOT["path"] = str(tmp_path / "bucket")
    remote = evaluate_job.run(
        ["--input", str(source), "--output", "rnncasttest://results/reuse", "--model", str(export)]
        + ["--origins", "2", "--classical", "none"]
    )
    assert remote["files"] == reused["files"]
    stored = tmp_path / "bucket" / "results" / "reuse"
    local_files = {
        str(p.relative_to(tmp_path / "reuse"))
        for p in (tmp_path / "reuse").rglob("*")
        if p.is_file() and "origins" not in p.parts
    }
    assert {str(p.relative_to(stored)) for p in stored.rglob("*") if p.is_file()} == local_files
    for name in local_files - {"evaluation.json"}:  # its timings differ from run to run
        assert (stored / name).read_bytes() == (tmp_path / "reuse" / name).read_bytes(), name
    untimed = [{k: v for k, v in summary.items() if k != "timings"} for summary in (remote, reused)]
    assert untimed[0] == untimed[1]


def test_clear_errors(tmp_path):
    source = tmp_path / "in.csv"
    write_csv(_series(1), source)
    base = ["--input", str(source), "--output", str(tmp_path / "o")]
    with pytest.raises(JobArgumentError, match="AutoFoo"):
        evaluate_job.run([*base, "--classical", "AutoFoo"])
    with pytest.raises(JobArgumentError, match="--warm-start"):
        evaluate_job.run([*base, "--init-from", str(tmp_path)])
    with pytest.raises(JobArgumentError, match="no history"):
        evaluate_job.run([*base, "--origins", "500", *TINY])
    from rnncast.errors import ModelError

    with pytest.raises(ModelError, match="not an rnncast export"):
        evaluate_job.run([*base, "--model", str(tmp_path), *TINY])
    from rnncast.errors import InputError

    with pytest.raises(InputError, match="nope"):
        evaluate_job.run(["--input", str(tmp_path / "nope.csv"), "--output", str(tmp_path / "x")])
