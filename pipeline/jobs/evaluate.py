"""``rnncast evaluate``: rolling-origin backtest of the model against classical baselines.

For each origin the history (every valid point at or before it) is written as its own input
file; the real dataset job, training and export run on that file only (or an exported model
is reused with ``--model``), and the real forecast job forecasts from it. Baselines are
computed from the same history in the same run, and every method is scored on the points
observed after the origin. Nothing after an origin can reach its model or its forecast:
neither ever reads a file that contains it.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import html
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from apache_beam.options.pipeline_options import PipelineOptions

from rnncast import schemas
from rnncast.errors import InputError, JobArgumentError, ModelError
from rnncast.pipeline.beam.options import JobOptions, add_job_arguments, parse_job_options
from rnncast.pipeline.beam.transforms import FrequencyVotes
from rnncast.pipeline.core import backtest, forecasting, metrics
from rnncast.pipeline.core import series as series_lib
from rnncast.pipeline.core.deadletters import rejected_payload
from rnncast.pipeline.core.validation import InputColumns
from rnncast.pipeline.io import commit, observations
from rnncast.pipeline.io.locations import check_output_directory
from rnncast.pipeline.io.model_loader import read_model_info

if TYPE_CHECKING:  # types only: the model package imports TensorFlow
    from rnncast.model.config import TrainConfig
    from rnncast.pipeline.jobs.dataset import DatasetConfig

DESCRIPTION = (
    "Rolling-origin backtest: for each origin, train (or reuse with --model) a model only on "
    "the data up to the origin, forecast H steps with the forecast job, and score it with "
    "naive, seasonal naive and (when statsforecast is installed) AutoETS/AutoTheta on the "
    "same origins: MASE, sMAPE, scaled pinball loss, weighted quantile loss and interval "
    "coverage, per series and overall, with a Markdown/HTML summary and PNG plots."
)
METRICS_FILE = "metrics"
METRIC_COLUMNS = list(schemas.load(schemas.EVALUATION)["metrics_columns"])
SUMMARY_FILE = "evaluation.json"


def build_parser() -> argparse.ArgumentParser:
    from rnncast.model.train import add_training_arguments
    from rnncast.pipeline.jobs.dataset import DatasetOptions

    parser = argparse.ArgumentParser(
        prog="rnncast evaluate",
        allow_abbrev=False,
        description=DESCRIPTION,
        epilog="--output is the directory for metrics, summary and plots; --horizon "
        "defaults to the --model export's horizon, else 24. Other flags are Beam pipeline "
        "options for the dataset and forecast jobs (e.g. --runner, --direct_running_mode).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        # --seed is both the dataset job's and training's: one flag seeds both.
        conflict_handler="resolve",
    )
    g = parser.add_argument_group("backtest")
    g.add_argument(
        "--origins",
        type=int,
        default=None,
        help="K: number of origins (default 3, or as many as --origin-every allows while the "
        "oldest origin keeps at least half the data as history).",
    )
    g.add_argument(
        "--origin-every",
        type=int,
        default=None,
        help="N: steps between origins (default H: test windows do not overlap).",
    )
    g.add_argument(
        "--season",
        type=int,
        default=None,
        help="m: season of the seasonal naive baseline and of MASE's scale (default from the "
        "frequency: 24 for hourly, 7 for daily, ...).",
    )
    g.add_argument(
        "--refit-every",
        type=int,
        default=1,
        help="Train a new model at every R-th origin (1: at each); the origins in between "
        "reuse the latest model, which only saw data before an earlier origin.",
    )
    g.add_argument(
        "--warm-start",
        action="store_true",
        help="Fine-tune: each refit after the first starts from the previous refit's weights "
        "(trained on data before the previous origin) instead of a random initialisation.",
    )
    g.add_argument(
        "--model",
        default=None,
        help="Reuse this export (MODEL_DIR/export) at every origin instead of training. The "
        "backtest is leak-free only if it was trained on data before the first origin.",
    )
    g.add_argument(
        "--classical",
        default="auto",
        help="Classical baselines from statsforecast: 'auto' (AutoETS,AutoTheta when the "
        "'classical' extra is installed, and MSTL when a season of --mstl-seasons is longer "
        "than 24), 'none', or a comma-separated list of "
        f"{', '.join(backtest.CLASSICAL_MODELS)}.",
    )
    g.add_argument(
        "--mstl-seasons",
        default=None,
        help="Comma-separated seasons of the MSTL baseline, e.g. 24,168 for hourly data with "
        "daily and weekly cycles (default: the season m alone).",
    )
    g.add_argument(
        "--plot-series", type=int, default=4, help="Series plotted (chosen by sorted id)."
    )
    # The dataset job's own flags (and the input/output/horizon every job shares).
    add_job_arguments(parser, DatasetOptions)
    t = parser.add_argument_group("model and training (as in rnncast train)")
    add_training_arguments(t)
    return parser


def _mstl_seasons(text: str | None) -> tuple[int, ...]:
    if text is None:
        return ()
    try:
        seasons = tuple(int(m) for m in text.split(",") if m.strip())
    except ValueError:
        seasons = ()
    if not seasons or min(seasons) < 1:
        raise JobArgumentError(
            f"rnncast evaluate: --mstl-seasons {text!r}: give positive integers, e.g. 24,168"
        )
    return seasons


def _classical_models(choice: str, seasons: tuple[int, ...] = ()) -> tuple[str, ...]:
    if choice == "none":
        return ()
    if choice == "auto":
        if not backtest.classical_available():
            return ()
        long_season = any(m > 24 for m in seasons)
        return backtest.AUTO_CLASSICAL + (("MSTL",) if long_season else ())
    names = tuple(n.strip() for n in choice.split(",") if n.strip())
    unknown = [n for n in names if n not in backtest.CLASSICAL_MODELS]
    if unknown:
        raise JobArgumentError(
            f"rnncast evaluate: --classical {unknown} unknown; use auto, none or "
            f"{','.join(backtest.CLASSICAL_MODELS)}"
        )
    if names and not backtest.classical_available():
        raise JobArgumentError(
            "rnncast evaluate: --classical needs statsforecast; install it with "
            "pip install 'rnncast[classical]' (or pass --classical none)"
        )
    return names


def progress(items: Iterable, total: int, label: str) -> Iterator:
    """Yield ``items`` while drawing a progress bar on stderr (a few plain lines when stderr
    is not a terminal, so logs stay readable)."""
    tty = sys.stderr.isatty()
    marks = {max(1, round(total * k / 4)) for k in range(1, 5)}
    started = time.perf_counter()
    for done, item in enumerate(items, start=1):
        yield item
        elapsed = time.perf_counter() - started
        if tty:
            filled = int(30 * done / max(total, 1))
            print(
                f"\r{label} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total} {elapsed:.0f}s",
                end="" if done < total else "\n",
                file=sys.stderr,
                flush=True,
            )
        elif done in marks:
            print(f"{label}: {done}/{total} ({elapsed:.0f}s)", file=sys.stderr, flush=True)


def _origin_label(index: int, origin: int) -> str:
    return f"{index:02d}-{pd.Timestamp(origin).strftime('%Y%m%dT%H%M%S')}"


def _train_at(
    config: EvaluateConfig,
    history_path: str,
    work: str,
    pipeline_options: PipelineOptions,
    freq: str,
    init_from: str | None,
) -> str:
    """Dataset job, training (from ``init_from``'s weights when given) and export on one
    origin's history; returns the export dir."""
    from rnncast.model.export import export_model
    from rnncast.model.train import train
    from rnncast.pipeline.jobs import dataset as dataset_job

    data = os.path.join(work, "dataset")
    dataset_job.run_config(origin_dataset(config, history_path, data, freq), pipeline_options)
    model_dir = os.path.join(work, "model")
    train(dataclasses.replace(config.training, data=data, model_dir=model_dir, init_from=init_from))
    return export_model(model_dir, servable=False)


def origin_dataset(config: EvaluateConfig, history_path: str, output: str, freq: str):
    """The dataset job's config for one origin: the backtest's dataset settings on the
    origin's history file (written with the standard column names)."""
    covariates = config.dataset.columns.covariates
    return dataclasses.replace(
        config.dataset,
        input=history_path,
        output=output,
        horizon=config.horizon,
        freq=freq,
        columns=InputColumns(covariates=covariates),
    )


def _forecast_at(
    export: str, history_path: str, work: str, horizon: int, pipeline_options: PipelineOptions
) -> pd.DataFrame:
    from rnncast.pipeline.jobs import forecast as forecast_job

    output = os.path.join(work, "forecasts")
    forecast_job.run_config(
        forecast_job.ForecastConfig(
            model=export, input=history_path, output=output, horizon=horizon
        ),
        pipeline_options,
    )
    return commit.read_committed_frame(output)


def score_origin(
    loaded: backtest.LoadedInput,
    origin: int,
    model_rows: pd.DataFrame,
    model: forecasting.ModelInfo,
    horizon: int,
    season: int,
    classical: tuple[str, ...],
    label: str,
    mstl_seasons: tuple[int, ...] = (),
) -> tuple[list[dict], list[pd.DataFrame]]:
    """Score the model's forecasts and every baseline for one origin: one metrics record per
    (series, method) and the forecasts next to the actuals."""
    levels = list(model.quantiles)
    quantile_columns = model.quantile_columns
    by_series = {sid: rows for sid, rows in model_rows.groupby("series_id", sort=False)}
    records, forecasts = [], []
    ids = sorted(loaded.series)
    for series_id in progress(ids, len(ids), f"origin {label}: scoring"):
        obs = loaded.series[series_id]
        regular = backtest.regular_history(series_id, obs, origin, model.freq, model.fill)
        if regular is None or obs.timestamp[-1] <= origin:
            # Nothing to score, but said so (not_scored in the summary), never silently.
            reason = "starts_after_origin" if regular is None else "ends_at_or_before_origin"
            records.append(
                {"series_id": series_id, "origin": origin, "method": NO_PAIR, "status": reason}
            )
            continue
        targets = backtest.future_targets(model.freq, int(regular.timestamp[-1]), horizon)
        actual = backtest.actuals_at(obs, targets)
        methods: dict[str, tuple[np.ndarray, np.ndarray | None, str]] = {}
        rows = by_series.get(series_id)
        if rows is not None and rows["step"].notna().all():
            rows = rows.sort_values("step")
            got = rows["timestamp"].to_numpy().astype("datetime64[ns]").astype(np.int64)
            if not np.array_equal(got, targets):
                raise ModelError(
                    f"{series_id}: the forecast job's target timestamps differ from the grid "
                    "after the history (model frequency or fill differ from the backtest's)"
                )
            methods[backtest.MODEL] = (
                rows["forecast"].to_numpy(np.float64),
                rows[quantile_columns].to_numpy(np.float64),
                str(rows["status"].iloc[0]),
            )
        else:
            status = "missing" if rows is None else str(rows["status"].iloc[0])
            methods[backtest.MODEL] = (np.full(horizon, np.nan), None, status)
        history = regular.value
        for name, (point, bands) in backtest.baseline_forecasts(
            history, horizon, season, levels, classical, mstl_seasons
        ).items():
            methods[name] = (point, bands, "failed" if np.isnan(point).all() else "ok")
        for method, (point, bands, status) in methods.items():
            scored = backtest.score(actual, point, bands, levels, history, season)
            records.append(
                {"series_id": series_id, "origin": origin, "method": method, "status": status}
                | scored
            )
            frame = pd.DataFrame(
                {
                    "series_id": series_id,
                    "origin": np.full(horizon, origin).astype("datetime64[ns]"),
                    "method": method,
                    "step": np.arange(1, horizon + 1, dtype=np.int32),
                    "timestamp": targets.astype("datetime64[ns]"),
                    "actual": actual,
                    "forecast": point,
                }
            )
            for k, column in enumerate(quantile_columns):
                frame[column] = bands[:, k] if bands is not None else np.nan
            forecasts.append(frame)
    return records, forecasts


def _plots(output, loaded, origin, forecasts, scores, model, horizon, season, count) -> list[str]:
    from rnncast.pipeline.jobs import evaluate_plots as plots

    directory = os.path.join(output, "plots")
    os.makedirs(directory, exist_ok=True)
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
        path = os.path.join(directory, f"forecast-{index:02d}-{safe}.png")
        plots.forecast_plot(
            path,
            f"{series_id}: forecast from {pd.Timestamp(origin)} (last origin)",
            history,
            actual,
            model_rows,
            band,
            baselines,
        )
        written.append(path)
    path = os.path.join(directory, "mase_distribution.png")
    methods = list(dict.fromkeys(scores["method"]))
    plots.mase_distribution_plot(path, scores[scores["targets"] > 0], methods)
    written.append(path)
    return written


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


DEFAULT_HORIZON = 24


def trained_until(model: forecasting.ModelInfo | None) -> int | None:
    """The last timestamp (ns) of the data a reused export was trained on (its dataset's
    series ends, which ``rnncast_model.json`` records), or None without ``--model``."""
    if model is None or not model.series_scaling:
        return None
    return max(pd.Timestamp(info["end"]).value for info in model.series_scaling.values())


# The method of a metrics record that stands for a (series, origin) pair with nothing to score.
NO_PAIR = "-"


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


def _write_summary(output, table, settings, plot_paths, not_scored) -> None:
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
        *[f"![{os.path.basename(p)}](plots/{os.path.basename(p)})" for p in plot_paths],
        "",
    ]
    with open(os.path.join(output, "summary.md"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(markdown))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in TABLE_COLUMNS)

    def cell(value) -> str:
        if isinstance(value, float):
            return "–" if np.isnan(value) else f"{value:.3f}"
        return html.escape(str(value))

    body = "".join(
        "<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
        for row in table[list(TABLE_COLUMNS)].itertuples(index=False)
    )
    images = "".join(
        f'<p><img src="plots/{html.escape(os.path.basename(p))}" alt=""></p>' for p in plot_paths
    )
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>rnncast backtest</title>"
        "<style>body{font-family:sans-serif}td,th{padding:2px 10px;text-align:right}"
        "td:first-child{text-align:left}</style></head><body>"
        f"<h1>rnncast backtest</h1><p>{html.escape(markdown[2])}</p>"
        f"<table><tr>{head}</tr>{body}</table>{images}</body></html>\n"
    )
    with open(os.path.join(output, "summary.html"), "w", encoding="utf-8") as handle:
        handle.write(page)


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    """Settings of one backtest. ``dataset`` and ``training`` are the dataset job's and
    training's own configs, used at every origin with the origin's history as input (their
    ``input``/``output`` and ``data``/``model_dir`` are set per origin)."""

    input: str
    output: str
    dataset: DatasetConfig
    training: TrainConfig
    horizon: int | None = None
    origins: int | None = None
    origin_every: int | None = None
    season: int | None = None
    refit_every: int = 1
    warm_start: bool = False
    model: str | None = None
    classical: str = "auto"
    mstl_seasons: tuple[int, ...] = ()
    plot_series: int = 4

    def check(self) -> EvaluateConfig:
        if not self.input or not self.output:
            raise JobArgumentError("rnncast evaluate: --input and --output are required")
        if self.training.init_from:
            raise JobArgumentError(
                "rnncast evaluate: --init-from could carry data from after the origins into "
                "the backtest; use --warm-start (each refit starts from the previous origin's "
                "model) or --model"
            )
        if self.refit_every < 1 or self.plot_series < 0:
            raise JobArgumentError("rnncast evaluate: --refit-every >= 1 and --plot-series >= 0")
        if self.mstl_seasons and min(self.mstl_seasons) < 1:
            raise JobArgumentError("rnncast evaluate: --mstl-seasons must be positive")
        return self


def config_from_args(args) -> EvaluateConfig:
    """The config of parsed ``rnncast evaluate`` flags (:func:`build_parser`)."""
    from rnncast.model.train import config_from_args as training_config
    from rnncast.pipeline.jobs.dataset import config_from_options as dataset_config

    return EvaluateConfig(
        input=args.input,
        output=args.output,
        dataset=dataset_config(args),
        training=training_config(args, "", ""),
        horizon=args.horizon,
        origins=args.origins,
        origin_every=args.origin_every,
        season=args.season,
        refit_every=args.refit_every,
        warm_start=bool(args.warm_start),
        model=args.model,
        classical=args.classical,
        mstl_seasons=_mstl_seasons(args.mstl_seasons),
        plot_series=args.plot_series,
    )


def run(argv: list[str]) -> dict:
    """Run ``rnncast evaluate`` with command-line ``argv``; returns ``evaluation.json``."""
    args, beam_args = build_parser().parse_known_args(argv)
    if not args.input or not args.output:
        raise JobArgumentError("rnncast evaluate: --input and --output are required")
    # The rest must be Beam options (for the dataset and forecast jobs it runs).
    _, pipeline_options = parse_job_options(beam_args, JobOptions, "rnncast evaluate", DESCRIPTION)
    return run_config(config_from_args(args), pipeline_options)


def run_config(config: EvaluateConfig, pipeline_options: PipelineOptions | None = None) -> dict:
    """Run the backtest of ``config``; the dataset and forecast jobs it runs use the runner of
    ``pipeline_options`` (default: the DirectRunner). Returns ``evaluation.json``."""
    config = config.check()
    pipeline_options = pipeline_options or PipelineOptions()
    classical = _classical_models(config.classical, config.mstl_seasons)  # before reading input
    check_output_directory(config.output, "--output")
    columns = config.dataset.columns
    started = time.perf_counter()
    reused = read_model_info(config.model) if config.model else None
    if config.horizon is None:
        horizon = reused.horizon if reused is not None else DEFAULT_HORIZON
        config = dataclasses.replace(config, horizon=horizon)
    loaded = observations.load_input(config.input, columns)
    if not loaded.series:
        raise InputError(
            f"{config.input}: no valid rows ({loaded.rows_read} read, all rejected or none); "
            "check the file and the --*-column flags"
        )
    freq = config.dataset.freq or _infer_frequency(loaded)
    season = config.season or metrics.default_season(freq)
    mstl_seasons = config.mstl_seasons or (season,)
    classical = _classical_models(config.classical, mstl_seasons)
    first = min(int(o.timestamp[0]) for o in loaded.series.values())
    end = max(int(o.timestamp[-1]) for o in loaded.series.values())
    count = config.origins if config.origins is not None or config.origin_every else 3
    try:
        origins = backtest.choose_origins(
            end, freq, config.horizon, count, config.origin_every, first
        )
    except ValueError as err:
        raise JobArgumentError(f"rnncast evaluate: {err}") from err
    if reused is not None and reused.horizon < config.horizon:
        raise JobArgumentError(
            f"rnncast evaluate: {config.model} forecasts {reused.horizon} steps; pass --horizon "
            f"<= {reused.horizon}"
        )
    output = config.output
    os.makedirs(os.path.join(output, "rejected"), exist_ok=True)
    with open(os.path.join(output, "rejected", "rejected-00000-of-00001.jsonl"), "wb") as sink:
        sink.write(rejected_payload([loaded.rejected])[0])
    print(
        f"rnncast evaluate: {len(loaded.series)} series, rows read {loaded.rows_read}, "
        f"accepted {loaded.rows_accepted}, rejected {len(loaded.rejected)}; freq {freq}, "
        f"season {season}; {len(origins)} origins; baselines naive, seasonal_naive"
        + "".join(f", {m}" for m in classical),
        file=sys.stderr,
    )
    trained_through = trained_until(reused)
    leaks = trained_through is not None and origins[0] < trained_through
    if reused is not None:
        print(
            f"rnncast evaluate: reusing {config.model} at every origin; the results are "
            f"leak-free only if it was trained on data before {pd.Timestamp(origins[0])}",
            file=sys.stderr,
        )
    if leaks:
        print(
            f"rnncast evaluate: WARNING: {config.model} was trained on data through "
            f"{pd.Timestamp(trained_through)}, after the first origin {pd.Timestamp(origins[0])}: "
            "its scores are not a backtest (the model has seen the answers). Pass origins "
            "after its training end or drop --model to train at each origin",
            file=sys.stderr,
        )
    records, forecast_frames, timings = [], [], []
    export, model = config.model, reused
    for index, origin in enumerate(origins):
        label = _origin_label(index, origin)
        work = os.path.join(output, "origins", label)
        if os.path.isdir(work):
            shutil.rmtree(work)  # a rerun starts the origin afresh (no stale model or data)
        os.makedirs(work)
        history_path = os.path.join(work, "history.parquet")
        history = backtest.history_frame(
            loaded.series, origin, InputColumns(covariates=columns.covariates)
        )
        history.to_parquet(history_path, index=False)
        print(
            f"rnncast evaluate: origin {index + 1}/{len(origins)} {pd.Timestamp(origin)} "
            f"({len(history)} history points)",
            file=sys.stderr,
        )
        clock = {"origin": str(pd.Timestamp(origin)), "train": 0.0}
        tick = time.perf_counter()
        if reused is None and index % config.refit_every == 0:
            init_from = os.path.dirname(export) if config.warm_start and export else None
            export = _train_at(config, history_path, work, pipeline_options, freq, init_from)
            model = read_model_info(export)
            clock["train"] = time.perf_counter() - tick
        tick = time.perf_counter()
        rows = _forecast_at(export, history_path, work, config.horizon, pipeline_options)
        clock["forecast"] = time.perf_counter() - tick
        tick = time.perf_counter()
        got, frames = score_origin(
            loaded, origin, rows, model, config.horizon, season, classical, label, mstl_seasons
        )
        clock["baselines_and_scoring"] = time.perf_counter() - tick
        timings.append(clock)
        records.extend(got)
        forecast_frames.extend(frames)
    everything = pd.DataFrame.from_records(records, columns=METRIC_COLUMNS)
    not_scored = not_scored_counts(everything)
    scores = everything[everything["method"] != NO_PAIR].reset_index(drop=True)
    scores["origin"] = scores["origin"].astype("datetime64[ns]")
    forecasts = pd.concat(forecast_frames, ignore_index=True)
    table = backtest.overall(scores, len(model.quantiles))
    scores.to_parquet(os.path.join(output, f"{METRICS_FILE}.parquet"), index=False)
    scores.to_csv(os.path.join(output, f"{METRICS_FILE}.csv"), index=False, float_format="%.6g")
    forecasts.to_parquet(os.path.join(output, "forecasts.parquet"), index=False)
    plot_paths = (
        _plots(
            output,
            loaded,
            origins[-1],
            forecasts,
            scores,
            model,
            config.horizon,
            season,
            config.plot_series,
        )
        if config.plot_series
        else []
    )
    levels = sorted(model.quantiles)
    settings = {
        "input": config.input,
        "freq": freq,
        "season": season,
        "horizon": config.horizon,
        "origins": [str(pd.Timestamp(o)) for o in origins],
        "refit_every": config.refit_every,
        "warm_start": bool(config.warm_start),
        "model": config.model,
        "model_trained_through": (
            None if trained_through is None else str(pd.Timestamp(trained_through))
        ),
        "origins_precede_model_training_end": bool(leaks),
        "classical": list(classical),
        "mstl_seasons": list(mstl_seasons) if "MSTL" in classical else [],
        "quantiles": levels,
        "nominal_coverage": levels[-1] - levels[0] if len(levels) > 1 else float("nan"),
    }
    _write_summary(output, table, settings, plot_paths, not_scored)
    summary = {
        "schema": schemas.load(schemas.EVALUATION)["name"],
        "schema_version": dict(schemas.CURRENT_VERSIONS),
        **settings,
        "counts": {
            "rows_read": loaded.rows_read,
            "rows_accepted": loaded.rows_accepted,
            "rows_rejected": len(loaded.rejected),
            "rejected_by_reason": dict(
                sorted(collections.Counter(loaded.rejected["reason"]).items())
            ),
            "series": len(loaded.series),
        },
        "overall": json.loads(table.to_json(orient="records")),
        "not_scored": not_scored,
        "timings": {
            **{
                part: round(sum(c[part] for c in timings), 3)
                for part in ("train", "forecast", "baselines_and_scoring")
            },
            "total": round(time.perf_counter() - started, 3),
            "per_origin": [
                {k: round(v, 3) if isinstance(v, float) else v for k, v in c.items()}
                for c in timings
            ],
        },
        "files": {
            "metrics": [f"{METRICS_FILE}.parquet", f"{METRICS_FILE}.csv"],
            "forecasts": "forecasts.parquet",
            "summary": ["summary.md", "summary.html"],
            "plots": [os.path.relpath(p, output) for p in plot_paths],
            "rejected": "rejected/rejected-00000-of-00001.jsonl",
        },
    }
    with open(os.path.join(output, SUMMARY_FILE), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2, sort_keys=True)
    print(f"\nrnncast evaluate: accuracy over {len(origins)} origins (h = {config.horizon})")
    print(backtest.markdown_table(table, TABLE_COLUMNS))
    print(f"rnncast evaluate: {describe_not_scored(not_scored)}")
    print(
        f"rnncast evaluate: wrote {os.path.join(output, 'summary.md')} (and .html), metrics, "
        f"forecasts and {len(plot_paths)} plots under {output} in "
        f"{time.perf_counter() - started:.0f}s"
    )
    return summary


def _infer_frequency(loaded: backtest.LoadedInput) -> str:
    """The dataset frequency, decided exactly as the dataset job decides it."""
    votes = FrequencyVotes()
    counts = votes.create_accumulator()
    for obs in loaded.series.values():
        counts = votes.add_input(counts, series_lib.frequency_vote(obs.timestamp))
    result = votes.extract_output(counts)
    if "error" in result:
        raise InputError(f"rnncast evaluate: {result['error']}")
    return result["freq"]
