"""``rnncast evaluate``: rolling-origin backtest of the model against classical baselines.

For each origin the history (every valid point at or before it) is written as its own input
file; the real dataset job, training and export run on that file only (or an exported model
is reused with ``--model``), and the real forecast job forecasts from it. Baselines are
computed from the same history in the same run, and every method is scored on the points
observed after the origin. Nothing after an origin can reach its model or its forecast:
neither ever reads a file that contains it.

Each origin's work (history file, dataset, model, forecasts) lives in ``OUTPUT/origins`` when
``--output`` is local, and in a temporary local folder, removed at the end, when it is an
object store; the results (:mod:`.report`) go to ``--output`` either way.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import pandas as pd
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from rnncast import schemas
from rnncast.errors import InputError, JobArgumentError, ModelError
from rnncast.pipeline.beam.options import JobOptions, parse_job_options, refused_flags_error
from rnncast.pipeline.beam.transforms import FrequencyVotes
from rnncast.pipeline.core import backtest, forecasting, metrics, validation
from rnncast.pipeline.core import series as series_lib
from rnncast.pipeline.core.deadletters import rejected_payload
from rnncast.pipeline.core.progress import eta_note, progress
from rnncast.pipeline.core.validation import InputColumns
from rnncast.pipeline.io import commit, observations
from rnncast.pipeline.io.locations import check_output_directory, is_local
from rnncast.pipeline.io.model_loader import read_model_info, resolve_export
from rnncast.pipeline.jobs.evaluate import report
from rnncast.pipeline.jobs.evaluate.options import (
    DEFAULT_HORIZON,
    DESCRIPTION,
    REFUSED,
    EvaluateConfig,
    build_parser,
    classical_models,
    config_from_args,
)
from rnncast.pipeline.jobs.evaluate.report import METRIC_COLUMNS, NO_PAIR, TABLE_COLUMNS
from rnncast.usage import flags_of


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
    regulars = {
        sid: backtest.regular_history(sid, loaded.series[sid], origin, model.freq, model.fill)
        for sid in ids
    }
    scored_ids = [
        sid
        for sid in ids
        if regulars[sid] is not None and loaded.series[sid].timestamp[-1] > origin
    ]
    if classical:
        print(
            f"rnncast evaluate: origin {label}: {', '.join(classical)} on {len(scored_ids)} series",
            file=sys.stderr,
        )
    # Every series' classical baselines in one statsforecast call (parallel for many series).
    classical_by_id = backtest.classical_forecasts(
        {sid: regulars[sid].value for sid in scored_ids},
        horizon,
        season,
        levels,
        classical,
        mstl_seasons,
    )
    for series_id in progress(ids, len(ids), f"origin {label}: scoring"):
        obs = loaded.series[series_id]
        regular = regulars[series_id]
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
        baselines = backtest.naive_forecasts(history, horizon, season)
        for name, (point, bands) in (baselines | classical_by_id[series_id]).items():
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


def trained_until(model: forecasting.ModelInfo | None) -> int | None:
    """The last timestamp (ns) of the data a reused export was trained on (its dataset's
    series ends, which ``rnncast_model.json`` records), or None without ``--model``."""
    if model is None or not model.series_scaling:
        return None
    return max(pd.Timestamp(info["end"]).value for info in model.series_scaling.values())


def run(argv: list[str]) -> dict:
    """Run ``rnncast evaluate`` with command-line ``argv``; returns ``evaluation.json``."""
    parser = build_parser()
    args, beam_args = parser.parse_known_args(argv)
    refused = refused_flags_error(beam_args, REFUSED, "rnncast evaluate")
    if refused is not None:
        raise refused
    # The rest must be Beam options (for the dataset and forecast jobs it runs).
    _, pipeline_options = parse_job_options(
        beam_args, JobOptions, "rnncast evaluate", DESCRIPTION, flags_of(parser)
    )
    return run_config(config_from_args(args), pipeline_options)


def run_config(config: EvaluateConfig, pipeline_options: PipelineOptions | None = None) -> dict:
    """Run the backtest of ``config``; the dataset and forecast jobs it runs use the runner of
    ``pipeline_options`` (default: the DirectRunner). Returns ``evaluation.json``."""
    config = config.check()
    pipeline_options = pipeline_options or PipelineOptions()
    classical_models(config.classical, config.mstl_seasons)  # a bad choice fails before reading
    check_output_directory(config.output, "--output")
    started = time.perf_counter()
    if config.model:
        config = dataclasses.replace(config, model=resolve_export(config.model))
    reused = read_model_info(config.model) if config.model else None
    if config.horizon is None:
        horizon = reused.horizon if reused is not None else DEFAULT_HORIZON
        config = dataclasses.replace(config, horizon=horizon)
    loaded = _load(config)
    plan = _plan(config, loaded, reused)
    report.write(config.output, report.REJECTED_FILE, rejected_payload([loaded.rejected])[0])
    _announce(config, loaded, plan)
    if is_local(config.output):
        work_root = os.path.join(config.output, "origins")
        results = _run_origins(config, loaded, plan, reused, work_root, pipeline_options)
    else:
        # Training writes local files; an object-store output gets only the results.
        work_root = tempfile.mkdtemp(prefix="rnncast-evaluate-")
        try:
            results = _run_origins(config, loaded, plan, reused, work_root, pipeline_options)
        finally:
            shutil.rmtree(work_root, ignore_errors=True)
    return _write_results(config, loaded, plan, results, started)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What the backtest decided from the data: frequency, season, baselines, origins."""

    freq: str
    season: int
    mstl_seasons: tuple[int, ...]
    classical: tuple[str, ...]
    origins: list[int]
    trained_through: int | None  # a reused model's training end (None when training)
    leaks: bool  # the reused model saw data after the first origin


@dataclasses.dataclass
class _Results:
    records: list[dict]
    forecasts: list[pd.DataFrame]
    timings: list[dict]
    model: forecasting.ModelInfo


def _load(config: EvaluateConfig) -> backtest.LoadedInput:
    columns = config.dataset.columns
    loaded = observations.load_input(config.input, columns)
    by_reason = loaded.rejected["reason"].value_counts().to_dict()
    if validation.timestamps_all_invalid(loaded.rows_read, by_reason):
        raise InputError(
            validation.all_timestamps_invalid_message(
                config.input,
                loaded.rows_read,
                by_reason["invalid_timestamp"],
                validation.invalid_timestamp_samples(loaded.rejected, columns.timestamp),
                columns.timestamp_format,
            )
        )
    if not loaded.series:
        raise InputError(
            f"{config.input}: no valid rows ({loaded.rows_read} read, all rejected or none); "
            "check the file and the --*-column flags"
        )
    return loaded


def _plan(
    config: EvaluateConfig, loaded: backtest.LoadedInput, reused: forecasting.ModelInfo | None
) -> _Plan:
    freq = config.dataset.freq or _infer_frequency(loaded)
    season = config.season or metrics.default_season(freq)
    mstl_seasons = config.mstl_seasons or (season,)
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
    trained_through = trained_until(reused)
    return _Plan(
        freq=freq,
        season=season,
        mstl_seasons=mstl_seasons,
        classical=classical_models(config.classical, mstl_seasons),
        origins=origins,
        trained_through=trained_through,
        leaks=trained_through is not None and origins[0] < trained_through,
    )


def _announce(config: EvaluateConfig, loaded: backtest.LoadedInput, plan: _Plan) -> None:
    print(
        f"rnncast evaluate: {len(loaded.series)} series, rows read {loaded.rows_read}, "
        f"accepted {loaded.rows_accepted}, rejected {len(loaded.rejected)}; freq {plan.freq}, "
        f"season {plan.season}; {len(plan.origins)} origins; baselines naive, seasonal_naive"
        + "".join(f", {m}" for m in plan.classical),
        file=sys.stderr,
    )
    first = pd.Timestamp(plan.origins[0])
    if config.model:
        print(
            f"rnncast evaluate: reusing {config.model} at every origin; the results are "
            f"leak-free only if it was trained on data before {first}",
            file=sys.stderr,
        )
    if plan.leaks:
        print(
            f"rnncast evaluate: WARNING: {config.model} was trained on data through "
            f"{pd.Timestamp(plan.trained_through)}, after the first origin {first}: "
            "its scores are not a backtest (the model has seen the answers). Pass origins "
            "after its training end or drop --model to train at each origin",
            file=sys.stderr,
        )


def _run_origins(
    config: EvaluateConfig,
    loaded: backtest.LoadedInput,
    plan: _Plan,
    reused: forecasting.ModelInfo | None,
    work_root: str,
    pipeline_options: PipelineOptions,
) -> _Results:
    """Train (every ``refit_every``-th origin) or reuse, forecast and score at every origin."""
    results = _Results(records=[], forecasts=[], timings=[], model=reused)
    export = config.model
    covariates = InputColumns(covariates=config.dataset.columns.covariates)
    loop_started = time.perf_counter()
    for index, origin in enumerate(plan.origins):
        label = _origin_label(index, origin)
        work = os.path.join(work_root, label)
        if os.path.isdir(work):
            shutil.rmtree(work)  # a rerun starts the origin afresh (no stale model or data)
        os.makedirs(work)
        history_path = os.path.join(work, "history.parquet")
        history = backtest.history_frame(loaded.series, origin, covariates)
        history.to_parquet(history_path, index=False)
        # The ETA over all origins: the mean time per origin so far times those left.
        eta = eta_note(index, len(plan.origins), time.perf_counter() - loop_started)
        print(
            f"rnncast evaluate: origin {index + 1}/{len(plan.origins)} {pd.Timestamp(origin)} "
            f"({len(history)} history points{'; ' + eta if eta else ''})",
            file=sys.stderr,
        )
        clock = {"origin": str(pd.Timestamp(origin)), "train": 0.0}
        tick = time.perf_counter()
        if reused is None and index % config.refit_every == 0:
            init_from = os.path.dirname(export) if config.warm_start and export else None
            export = _train_at(config, history_path, work, pipeline_options, plan.freq, init_from)
            results.model = read_model_info(export)
            clock["train"] = time.perf_counter() - tick
        tick = time.perf_counter()
        rows = _forecast_at(export, history_path, work, config.horizon, pipeline_options)
        clock["forecast"] = time.perf_counter() - tick
        tick = time.perf_counter()
        got, frames = score_origin(
            loaded,
            origin,
            rows,
            results.model,
            config.horizon,
            plan.season,
            plan.classical,
            label,
            plan.mstl_seasons,
        )
        clock["baselines_and_scoring"] = time.perf_counter() - tick
        results.timings.append(clock)
        results.records.extend(got)
        results.forecasts.extend(frames)
    return results


def _write_results(
    config: EvaluateConfig,
    loaded: backtest.LoadedInput,
    plan: _Plan,
    results: _Results,
    started: float,
) -> dict:
    """Metrics, forecasts, plots, the summary and ``evaluation.json``; the console table."""
    output, model = config.output, results.model
    everything = pd.DataFrame.from_records(results.records, columns=METRIC_COLUMNS)
    not_scored = report.not_scored_counts(everything)
    scores = everything[everything["method"] != NO_PAIR].reset_index(drop=True)
    scores["origin"] = scores["origin"].astype("datetime64[ns]")
    forecasts = pd.concat(results.forecasts, ignore_index=True)
    table = backtest.overall(scores, len(model.quantiles))
    files = report.write_metrics(output, scores, forecasts)
    plot_names = (
        report.write_plots(
            output,
            loaded,
            plan.origins,
            forecasts,
            scores,
            model,
            config.horizon,
            plan.season,
            config.plot_series,
            config.dataset.columns.value,
            plan.freq,
        )
        if config.plot_series
        else []
    )
    levels = sorted(model.quantiles)
    settings = {
        "input": config.input,
        "freq": plan.freq,
        "season": plan.season,
        "horizon": config.horizon,
        "origins": [str(pd.Timestamp(o)) for o in plan.origins],
        "refit_every": config.refit_every,
        "warm_start": bool(config.warm_start),
        "model": config.model,
        "model_trained_through": (
            None if plan.trained_through is None else str(pd.Timestamp(plan.trained_through))
        ),
        "origins_precede_model_training_end": bool(plan.leaks),
        "classical": list(plan.classical),
        "mstl_seasons": list(plan.mstl_seasons) if "MSTL" in plan.classical else [],
        "quantiles": levels,
        "nominal_coverage": levels[-1] - levels[0] if len(levels) > 1 else float("nan"),
    }
    report.write_summary(output, table, settings, plot_names, not_scored, scores)
    timings = results.timings
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
            **files,
            "summary": ["summary.md", "summary.html"],
            "plots": plot_names,
            "rejected": report.REJECTED_FILE,
        },
    }
    report.write_evaluation_json(output, summary)
    print(f"\nrnncast evaluate: accuracy over {len(plan.origins)} origins (h = {config.horizon})")
    print(backtest.markdown_table(table, TABLE_COLUMNS))
    print(f"rnncast evaluate: {report.describe_not_scored(not_scored)}")
    print(
        f"rnncast evaluate: wrote {FileSystems.join(output, 'summary.md')} (and .html), "
        f"metrics, forecasts and {len(plot_names)} plots under {output} in "
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
