"""Real-data accuracy benchmark (issue 12): `rnncast evaluate` on the six shipped datasets.

For each dataset of ``benchmarks/data/datasets.json`` the real ``rnncast evaluate`` runs with
the manifest's frequency, season, horizon and covariates, and only the flags a user would
give (``--horizon``, ``--num-steps``, ``--batch-size 16``); everything else is rnncast's
default. Origins (rolling, no leakage: evaluate trains and forecasts from a file holding only
the history at or before each origin):

- ``--split test``: K origins spaced by the horizon on the full file, the last one leaving
  exactly the horizon before the data's end (K = 3, fewer for a dataset too short to keep
  K validation origins before them).
- ``--split validation``: the data is cut at the first test origin (the cut file is written
  to the output directory) and K earlier origins are scored the same way, so choosing
  defaults never sees a test window.

rnncast trains once per dataset, on the history before the first scored origin
(``--refit-every K``), and forecasts every origin from its own history. Naive, seasonal naive,
AutoETS, AutoTheta and (data with a season longer than 24 steps: hourly 24 + 168, daily
7 + 365) MSTL are scored on the same origins in the same run, and, where it is installed
(``pip install -e '.[peers]'``; ``--no-peer`` skips it), a stock peer: mlforecast's LightGBM
on lags and calendar features, refitted at every origin (:func:`peer_scores`).

Every method is scored on the same (series, origin) pairs: those where each method has a
finite MASE (a series with no observation after an origin, one the model could not forecast,
one whose history has a zero seasonal-naive scale, or one where a classical model failed is
left out for all of them; ``not_scored`` counts each method's own misses). Prints a Markdown
table per dataset and a summary, and writes
``DIR/accuracy.md`` and ``DIR/accuracy.json`` (each dataset's evaluate output is kept under
``DIR/<dataset>/``).

    .venv/bin/python benchmarks/accuracy.py [--datasets NAME ...] [--split test|validation]
        [--output DIR] [--origins K] [--quick] [--report-only] [-- extra evaluate flags]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import pandas as pd

from rnncast.pipeline.core import backtest
from rnncast.pipeline.core.validation import InputColumns
from rnncast.pipeline.io import observations
from rnncast.pipeline.jobs import evaluate as evaluate_job

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
MANIFEST = os.path.join(DATA_DIR, "datasets.json")
TEST_ORIGINS = 3
BATCH_SIZE = 16
# The longer cycle of the data (benchmarks/data/README.md), for MSTL: weekly for hourly data,
# yearly for daily data. MSTL runs only where a season is longer than 24 steps.
SECOND_SEASON = {"h": 168, "D": 365}
QUICK_SERIES = 10
QUICK_FLAGS = ["--epochs", "2", "--layers", "1", "--units", "16"]
# evaluate's table columns, counted over the pairs every method scored (not its forecasts).
METHOD_COLUMNS = (
    *(c for c in evaluate_job.TABLE_COLUMNS if c != "forecasts"),
    "pairs",
    "not_scored",
)


def load_manifest() -> dict[str, dict]:
    with open(MANIFEST, encoding="utf-8") as handle:
        return json.load(handle)


def origin_count(meta: dict, wanted: int = TEST_ORIGINS) -> int:
    """K test origins, fewer where the shortest series could not also keep K validation
    origins (and a few points of history) before them."""
    for count in range(wanted, 0, -1):
        if meta["min_length"] - 2 * count * meta["horizon"] >= max(meta["season"] + 1, 4):
            return count
    return 1


def num_steps(meta: dict, count: int) -> int:
    """T = max(2 x season, 64), capped by the longest history at the first validation origin
    (at least 8): a chunk longer than every series is padding only. Same T for both splits."""
    longest = meta["max_length"] - 2 * count * meta["horizon"]
    return min(max(2 * meta["season"], 64), max(8, longest))


def mstl_seasons(meta: dict) -> list[int]:
    second = SECOND_SEASON.get(meta["freq"])
    seasons = sorted({meta["season"], second} - {None}) if second else [meta["season"]]
    return seasons if max(seasons) > 24 else []


def prepare_input(
    name: str, meta: dict, split: str, quick: bool, output: str, wanted: int
) -> tuple:
    """The file evaluate reads: the shipped file (test split), or a copy cut at the first
    test origin (validation split); in quick mode only the first series. Returns the path and
    the test origins."""
    path = os.path.join(DATA_DIR, meta["file"])
    columns = InputColumns(covariates=tuple(meta["covariates"]))
    loaded = observations.load_input(path, columns)
    if quick:
        keep = sorted(loaded.series)[:QUICK_SERIES]
        loaded.series = {k: loaded.series[k] for k in keep}
    first = min(int(o.timestamp[0]) for o in loaded.series.values())
    end = max(int(o.timestamp[-1]) for o in loaded.series.values())
    count = 1 if quick else origin_count(meta, wanted)
    test_origins = backtest.choose_origins(end, meta["freq"], meta["horizon"], count, None, first)
    if split == "test" and not quick:
        return path, test_origins
    cut = test_origins[0] if split == "validation" else end
    frame = backtest.history_frame(loaded.series, cut, columns)
    frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S")
    suffix = "before_test_origins" if split == "validation" else "quick"
    target = os.path.join(output, f"{name}.{suffix}.csv")
    frame.to_csv(target, index=False, float_format="%.17g")
    return target, test_origins


def evaluate_flags(meta: dict, count: int, quick: bool) -> list[str]:
    flags = [
        "--freq",
        meta["freq"],
        "--season",
        str(meta["season"]),
        "--horizon",
        str(meta["horizon"]),
        "--num-steps",
        str(num_steps(meta, count)),
        "--batch-size",
        str(BATCH_SIZE),
        "--origins",
        str(count),
        "--origin-every",
        str(meta["horizon"]),
        "--refit-every",
        str(count),  # one training, at the first origin, on the history before it
        "--plot-series",
        "0",
    ]
    seasons = mstl_seasons(meta)
    classical = ["AutoETS", "AutoTheta", *(["MSTL"] if seasons else [])]
    flags += ["--classical", ",".join(classical)]
    if seasons:
        flags += ["--mstl-seasons", ",".join(map(str, seasons))]
    if meta["covariates"]:
        flags += ["--covariates", *meta["covariates"]]
    return flags + (QUICK_FLAGS if quick else [])


def method_table(scores: pd.DataFrame, num_levels: int, num_series: int, count: int):
    """Per method, over the (series, origin) pairs that every method scored (``pairs``);
    ``not_scored`` counts the series x origins this method itself left unscored (no
    observation after the origin, no forecast, zero MASE scale)."""
    scores = scores.copy()
    scores["pair"] = scores["series_id"] + "@" + scores["origin"].astype(np.int64).astype(str)
    methods = list(dict.fromkeys(scores["method"]))
    finite = scores[np.isfinite(scores["mase"]) & (scores["targets"] > 0)]
    common = set.intersection(*(set(finite.loc[finite["method"] == m, "pair"]) for m in methods))
    shared = finite[finite["pair"].isin(common)]
    reference = shared[shared["method"] == backtest.SEASONAL_NAIVE].set_index("pair")["mase"]
    rows = []
    for method in methods:
        group = shared[shared["method"] == method].set_index("pair").sort_index()
        own = int((finite["method"] == method).sum())
        total_abs = group["abs_actual"].sum()
        rows.append(
            {
                "method": method,
                "mase": float(group["mase"].mean()) if len(group) else float("nan"),
                "smape": float(group["smape"].mean()) if len(group) else float("nan"),
                "scaled_pinball": (
                    float(group["scaled_pinball"].mean()) if len(group) else float("nan")
                ),
                "wql": (
                    float(2.0 * group["pinball_sum"].sum() / (num_levels * total_abs))
                    if total_abs
                    else float("nan")
                ),
                "coverage": (
                    float(group["coverage"].mean())
                    if group["coverage"].notna().any()
                    else float("nan")
                ),
                "beats_seasonal_naive": (
                    float(np.mean(group["mase"] < reference.loc[group.index]))
                    if method != backtest.SEASONAL_NAIVE and len(group)
                    else float("nan")
                ),
                "pairs": len(group),  # the common pairs the means are over
                "not_scored": num_series * count - own,  # pairs this method gave no score
            }
        )
    order = {backtest.MODEL: 0, backtest.SEASONAL_NAIVE: 1, backtest.NAIVE: 2}
    rows.sort(key=lambda row: order.get(row["method"], 3))  # stable: classical in run order
    return pd.DataFrame(rows)


PEER = "LightGBM"


def peer_available() -> bool:
    """Whether the stock peer (mlforecast + LightGBM, not an rnncast dependency) is there."""
    try:
        import lightgbm  # noqa: F401
        import mlforecast  # noqa: F401
    except ImportError:
        return False
    return True


def peer_lags(meta: dict, min_history: int) -> list[int]:
    """Lags of the peer: the last few values, one and two seasons back and the data's longer
    cycle (a week of hours, a year of days), as far as the shortest history allows
    (mlforecast drops rows without every lag)."""
    season, horizon = meta["season"], meta["horizon"]
    wanted = {1, 2, 3, season, 2 * season, max(horizon, 1), SECOND_SEASON.get(meta["freq"], 1)}
    usable = sorted(lag for lag in wanted if 1 <= lag <= max(1, min_history // 2))
    return usable or [1]


# Calendar features of the peer by frequency (mlforecast date_features).
PEER_DATE_FEATURES = {"h": ["hour", "dayofweek"], "D": ["dayofweek", "month"], "MS": ["month"]}


def peer_scores(meta: dict, source: str, origins: list, levels: list[float]) -> pd.DataFrame:
    """A stock global model run with the same protocol, for comparison: mlforecast's LightGBM
    (default hyperparameters, seed 0) on lags of the per-series standardised values (first
    differences too for data with no season shorter than a year, which trends) and calendar
    features, refitted at every origin on the histories (filled as the jobs fill them) and
    forecasting the horizon recursively; point forecasts only, scored like every method (MASE
    against the in-sample seasonal-naive error). Covariates are not given to it."""
    import lightgbm
    from mlforecast import MLForecast
    from mlforecast.target_transforms import Differences, LocalStandardScaler

    freq, season, horizon = meta["freq"], meta["season"], meta["horizon"]
    fill = evaluate_job.build_parser().get_default("fill")  # the benchmark leaves --fill as is
    loaded = observations.load_input(source, InputColumns(covariates=tuple(meta["covariates"])))
    records = []
    for origin in origins:
        origin = int(pd.Timestamp(origin).value)
        histories = {}
        for series_id, obs in loaded.series.items():
            regular = backtest.regular_history(series_id, obs, origin, freq, fill)
            if regular is not None and obs.timestamp[-1] > origin:
                histories[series_id] = regular
        if not histories:
            continue
        frame = pd.concat(
            pd.DataFrame(
                {
                    "unique_id": series_id,
                    "ds": pd.to_datetime(regular.timestamp),
                    "y": regular.value,
                }
            )
            for series_id, regular in histories.items()
        )
        shortest = min(len(r) for r in histories.values())
        model = MLForecast(
            models={PEER: lightgbm.LGBMRegressor(random_state=0, verbose=-1, n_jobs=1)},
            freq=freq,
            lags=peer_lags(meta, shortest - 1),
            date_features=PEER_DATE_FEATURES.get(freq, []),
            # Differences make a trend learnable (monthly and slower panels); the scaler puts
            # series on one scale.
            target_transforms=(
                [Differences([1]), LocalStandardScaler()]
                if freq not in ("h", "D")
                else [LocalStandardScaler()]
            ),
        )
        model.fit(frame, static_features=[])
        predicted = model.predict(horizon).sort_values(["unique_id", "ds"])
        for series_id, rows in predicted.groupby("unique_id", sort=False):
            regular = histories[series_id]
            targets = backtest.future_targets(freq, int(regular.timestamp[-1]), horizon)
            actual = backtest.actuals_at(loaded.series[series_id], targets)
            point = rows[PEER].to_numpy(np.float64)
            scored = backtest.score(actual, point, None, levels, regular.value, season)
            records.append(
                {
                    "series_id": series_id,
                    "origin": pd.Timestamp(origin),
                    "method": PEER,
                    "status": "ok",
                }
                | scored
            )
    return pd.DataFrame(records)


def run_dataset(name: str, meta: dict, args, extra: list[str], previous: dict) -> dict:
    count = 1 if args.quick else origin_count(meta, args.origins)
    source, test_origins = prepare_input(
        name, meta, args.split, args.quick, args.output, args.origins
    )
    out = os.path.join(args.output, name)
    argv = ["--input", source, "--output", out, *evaluate_flags(meta, count, args.quick), *extra]
    if args.report_only:
        # Re-tabulate an earlier run's evaluate output (same flags): its wall time from the
        # earlier accuracy.json, else evaluate's own total.
        with open(os.path.join(out, evaluate_job.SUMMARY_FILE), encoding="utf-8") as handle:
            summary = json.load(handle)
        wall = previous.get(name, {}).get("evaluate_seconds") or summary["timings"]["total"]
    else:
        print(f"accuracy: {name}: rnncast evaluate {' '.join(argv)}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        summary = evaluate_job.run(argv)
        wall = time.perf_counter() - started
    scores = pd.read_parquet(os.path.join(out, "metrics.parquet"))
    peer_seconds = None
    if args.peer and peer_available():
        started = time.perf_counter()
        origins = sorted(scores["origin"].dropna().unique())
        peer = peer_scores(meta, source, origins, list(summary["quantiles"]))
        peer_seconds = time.perf_counter() - started
        if len(peer):
            peer["origin"] = peer["origin"].astype(scores["origin"].dtype)
            scores = pd.concat([scores, peer], ignore_index=True)
    num_series = summary["counts"]["series"]
    table = method_table(scores, len(summary["quantiles"]), num_series, len(summary["origins"]))
    timings = summary.get("timings", {})
    return {
        "dataset": name,
        "split": args.split,
        "freq": meta["freq"],
        "season": meta["season"],
        "horizon": meta["horizon"],
        "series": num_series,
        "origins": summary["origins"],
        "test_origins": [str(pd.Timestamp(o)) for o in test_origins],
        "evaluate_argv": argv,
        "classical": summary["classical"],
        "mstl_seasons": summary.get("mstl_seasons", []),
        "nominal_coverage": summary["nominal_coverage"],
        "table": json.loads(table.to_json(orient="records")),
        "train_seconds": timings.get("train"),
        "evaluate_seconds": wall,
        "peer_seconds": peer_seconds,
    }


def dataset_markdown(result: dict) -> str:
    table = pd.DataFrame(result["table"]).astype({"pairs": int, "not_scored": int})
    coverage = result["nominal_coverage"]
    lines = [
        f"### {result['dataset']} ({result['split']} split)",
        "",
        f"{result['series']} series, freq `{result['freq']}`, season {result['season']}, "
        f"horizon {result['horizon']}; {len(result['origins'])} origins "
        f"{result['origins'][0]} … {result['origins'][-1]} "
        f"({result['series'] * len(result['origins'])} series × origins); classical "
        f"{', '.join(result['classical'])}"
        + (f" (MSTL seasons {result['mstl_seasons']})" if result["mstl_seasons"] else "")
        + ".",
        f"rnncast training {_seconds(result['train_seconds'])}, whole evaluate call "
        f"{_seconds(result['evaluate_seconds'])}. Coverage: nominal {coverage:.2f}.",
        "",
        backtest.markdown_table(table, METHOD_COLUMNS),
        "",
    ]
    return "\n".join(lines)


def summary_frame(results: list[dict]) -> pd.DataFrame:
    rows = []
    for result in results:
        table = {row["method"]: row for row in result["table"]}
        model = table[backtest.MODEL]
        naive = table[backtest.SEASONAL_NAIVE]
        classical = [table[m] for m in result["classical"] if m in table]
        best = min(classical, key=lambda r: r["mase"]) if classical else None
        rows.append(
            {
                "dataset": result["dataset"],
                "rnncast_mase": model["mase"],
                "seasonal_naive_mase": naive["mase"],
                "best_classical": best["method"] if best else "–",
                "best_classical_mase": best["mase"] if best else float("nan"),
                "rnncast_over_snaive": model["mase"] / naive["mase"],
                "rnncast_coverage": model["coverage"],
                "lightgbm_mase": table[PEER]["mase"] if PEER in table else float("nan"),
                "pairs": model["pairs"],
                "train_s": result["train_seconds"] or float("nan"),
                "evaluate_s": result["evaluate_seconds"],
            }
        )
    return pd.DataFrame(rows)


def _seconds(value) -> str:
    return "–" if value is None else f"{value:.0f} s"


def report(results: list[dict], args, extra: list[str]) -> str:
    parts = [
        f"## Accuracy on real data ({args.split} split{', quick' if args.quick else ''})",
        "",
        f"Command: `python benchmarks/accuracy.py --split {args.split}"
        + (f" --origins {args.origins}" if args.origins != TEST_ORIGINS else "")
        + (" --quick" if args.quick else "")
        + (f" -- {' '.join(extra)}" if extra else "")
        + "`",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}.",
        "",
        backtest.markdown_table(summary_frame(results), SUMMARY_COLUMNS),
        "",
        *[dataset_markdown(r) for r in results],
    ]
    return "\n".join(parts)


SUMMARY_COLUMNS = (
    "dataset",
    "rnncast_mase",
    "seasonal_naive_mase",
    "best_classical",
    "best_classical_mase",
    "rnncast_over_snaive",
    "rnncast_coverage",
    "lightgbm_mase",
    "pairs",
    "train_s",
    "evaluate_s",
)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    manifest = load_manifest()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=sorted(manifest), default=None)
    parser.add_argument("--split", choices=("test", "validation"), default="test")
    parser.add_argument("--output", default="accuracy-benchmark")
    parser.add_argument(
        "--origins",
        type=int,
        default=TEST_ORIGINS,
        help="K test (and validation) origins per dataset; fewer where a dataset is too short.",
    )
    parser.add_argument("--quick", action="store_true", help="Smoke test: tiny model, 1 origin.")
    parser.add_argument(
        "--no-peer",
        dest="peer",
        action="store_false",
        help="Skip the stock peer (mlforecast's LightGBM, scored when installed: pip install "
        "lightgbm mlforecast).",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="Do not run evaluate: rebuild the tables from DIR/<dataset>/ of an earlier run "
        "with the same flags.",
    )
    args = parser.parse_args(own)
    os.makedirs(args.output, exist_ok=True)
    previous = {}
    if args.report_only and os.path.exists(os.path.join(args.output, "accuracy.json")):
        with open(os.path.join(args.output, "accuracy.json"), encoding="utf-8") as handle:
            previous = {r["dataset"]: r for r in json.load(handle)["results"]}
    results = []
    for name in args.datasets or list(manifest):
        results.append(run_dataset(name, manifest[name], args, extra, previous))
        text = report(results, args, extra)
        with open(os.path.join(args.output, "accuracy.md"), "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
        with open(os.path.join(args.output, "accuracy.json"), "w", encoding="utf-8") as handle:
            json.dump(
                {"split": args.split, "quick": args.quick, "results": results},
                handle,
                indent=2,
                sort_keys=True,
            )
    print(report(results, args, extra))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
