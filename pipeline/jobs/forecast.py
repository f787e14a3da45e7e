"""``rnncast forecast``: apply an exported model to the series (Beam), incrementally from state.

Reads and validates the input exactly like the dataset job (the same transforms), places each
series on the model's grid, runs the model's ``step`` over the history chunk by chunk with
carried state — many series as lanes of each call, the model loaded once per worker process
(built from rnncast's code, weights as data, fingerprint checked:
``rnncast.pipeline.io.model_loader``; the export's SavedModel is never loaded) — and writes
an H-step forecast per series. With
``--state-out`` it also writes each series' state after its last observed point; a later run
with ``--state-in`` reads only the points after it. Outputs and state are committed atomically
(forecasts first, then state), so a crash leaves the previous state usable.
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import sys
import uuid
from dataclasses import asdict, dataclass, field, replace

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.utils import shared

from rnncast import schemas
from rnncast.errors import JobArgumentError
from rnncast.pipeline.beam import flags
from rnncast.pipeline.beam.engine import batch_runner
from rnncast.pipeline.beam.options import JobOptions, input_columns, parse_job_options
from rnncast.pipeline.beam.transforms import (
    REJECTED,
    ROWS_READ,
    AssembleConfig,
    AssembleSeries,
    ReadInputs,
    WriteRejected,
    count_progress,
    load_unique,
)
from rnncast.pipeline.core import forecasting
from rnncast.pipeline.core import progress as progress_lib
from rnncast.pipeline.core.deadletters import rejected_observations
from rnncast.pipeline.core.series import MAX_GAP_STEPS, utc_ns
from rnncast.pipeline.core.validation import InputColumns, timestamp_format_problem
from rnncast.pipeline.io import commit, model_loader, state_store
from rnncast.pipeline.io.inputs import check_input, list_inputs
from rnncast.pipeline.io.locations import check_output_directory

DESCRIPTION = flags.FORECAST.description
FORECASTS = "forecasts"
OUTPUT_DIRECTORIES = (FORECASTS, "rejected")
STATE_DIRECTORIES = ("state",)
# The heartbeat's counters (also Beam metrics in the "rnncast" namespace), in console order.
PROGRESS_COUNTS = (("rows_read", "rows read"), ("series_forecast", "series through the model"))


class ForecastOptions(JobOptions):
    """Flags of ``rnncast forecast`` (declared in :mod:`rnncast.pipeline.beam.flags`)."""

    FLAGS = flags.FORECAST

    @classmethod
    def _add_argparse_args(cls, parser):
        flags.add_forecast_flags(parser)


@dataclass(frozen=True)
class ForecastConfig:
    """Validated, picklable settings of one forecast run."""

    model: str
    input: str
    output: str
    state_in: str | None = None
    state_out: str | None = None
    horizon: int | None = None
    as_of: str | None = None
    lanes: int = 256
    columns: InputColumns = field(default_factory=InputColumns)
    max_rejected_fraction: float = 0.01
    max_gap_steps: float = MAX_GAP_STEPS
    jit_compile: bool = False

    @property
    def as_of_ns(self) -> int | None:
        return utc_ns(self.as_of)

    def check(self, model: forecasting.ModelInfo) -> ForecastConfig:
        """This config, checked against ``model`` and completed from it (the horizon when
        unset, the model's covariates as input columns); JobArgumentError names the flag."""
        missing = [
            f"--{n.replace('_', '-')}" for n in ("model", "input", "output") if not getattr(self, n)
        ]
        if missing:
            raise JobArgumentError(f"rnncast forecast: {', '.join(missing)} required")
        if self.horizon is not None and not 1 <= self.horizon <= model.horizon:
            raise JobArgumentError(
                f"rnncast forecast: --horizon must be in 1..{model.horizon} (the model's horizon)"
            )
        if self.lanes < 1:
            raise JobArgumentError("rnncast forecast: --lanes must be >= 1")
        format_problem = timestamp_format_problem(self.columns.timestamp_format)
        if format_problem:
            raise JobArgumentError(f"rnncast forecast: {format_problem}")
        if not self.max_gap_steps >= 0.0:  # NaN too
            raise JobArgumentError("rnncast forecast: --max-gap-steps must be >= 0 (0: off)")
        if self.state_out and same_directory(self.output, self.state_out):
            raise JobArgumentError(
                f"rnncast forecast: --output and --state-out are both {self.output}; forecasts "
                "and state are committed separately, each with its own metadata.json. Give them "
                "two directories"
            )
        try:
            self.as_of_ns  # noqa: B018 - parse check
        except ValueError as err:
            raise JobArgumentError(f"rnncast forecast: --as-of {self.as_of!r}: {err}") from err
        return replace(
            self,
            output=self.output.rstrip("/"),
            state_out=self.state_out.rstrip("/") if self.state_out else None,
            horizon=self.horizon or model.horizon,
            columns=replace(self.columns, covariates=model.covariates),
        )


def config_from_options(options: ForecastOptions) -> ForecastConfig:
    """The config the flags describe (checked against the model by :meth:`ForecastConfig.check`)."""
    return ForecastConfig(
        model=options.model,
        input=options.input,
        output=options.output,
        state_in=options.state_in,
        state_out=options.state_out,
        horizon=options.horizon,
        as_of=options.as_of,
        lanes=options.lanes,
        columns=input_columns(options, (), "rnncast forecast"),
        max_rejected_fraction=options.max_rejected_fraction,
        max_gap_steps=options.max_gap_steps,
        jit_compile=options.jit_compile,
    )


def same_directory(a: str, b: str) -> bool:
    """Whether two output locations name one directory (``out/x``, ``out/x/``, ``./out/x``)."""
    if "://" in a or "://" in b:
        return a.rstrip("/") == b.rstrip("/")
    return os.path.normpath(os.path.abspath(a)) == os.path.normpath(os.path.abspath(b))


# --- state directories ----------------------------------------------------------------


class _ReadStateFn(beam.DoFn):
    def __init__(self, model: forecasting.ModelInfo):
        self._model = model

    def process(self, path: str):
        with FileSystems.open(path) as source:
            frame = pq.read_table(io.BytesIO(source.read())).to_pandas()
        for state in forecasting.states_from_frame(frame, self._model):
            yield state.series_id, state


# --- per-series preparation and model runs ---------------------------------------------

WORK = "work"
DONE = "done"
SKIPPED = "skipped"


class _PrepareFn(beam.DoFn):
    def __init__(self, model: forecasting.ModelInfo, as_of: int | None, max_gap_steps: float):
        self._model = model
        self._as_of = as_of
        self._max_gap_steps = max_gap_steps

    def process(self, element):
        series_id, grouped = element
        refs = [r for refs in grouped["refs"] for r in refs]
        saved = next(iter(grouped["saved"]), None)
        unique = None
        if refs:
            # The same rows AssembleSeries kept (its isolated_by_gap rows are dead letters).
            unique, _ = load_unique(series_id, refs, self._max_gap_steps)
        outcome, off_grid, skipped = forecasting.prepare(
            series_id, unique, saved, self._model, self._as_of
        )
        if off_grid.any():
            yield beam.pvalue.TaggedOutput(
                REJECTED,
                rejected_observations(series_id, unique, np.flatnonzero(off_grid), "off_grid"),
            )
        if skipped:
            yield beam.pvalue.TaggedOutput(SKIPPED, skipped)
        if isinstance(outcome, forecasting.Work):
            yield beam.pvalue.TaggedOutput(WORK, outcome)
        elif isinstance(outcome, forecasting.SeriesState):
            yield series_id, forecasting.FROM_STATE, outcome
        else:
            yield series_id, outcome, None


class _RunModelFn(beam.DoFn):
    """Run batches of series through the model as lanes; the model is loaded once per
    process through Beam's shared-object manager."""

    def __init__(
        self,
        model: forecasting.ModelInfo,
        progress: progress_lib.JobProgress | None = None,
        jit_compile: bool = False,
    ):
        self._model = model
        self._shared = shared.Shared()
        self._progress = progress
        self._jit_compile = jit_compile

    def setup(self):
        model, jit = self._model, self._jit_compile
        self._loaded = self._shared.acquire(
            lambda: model_loader.worker_model(model, jit),
            tag=f"{model.path}\x1f{model.fingerprint}\x1f{jit}",
        )

    def process(self, works):
        works = sorted(works, key=lambda w: (len(w.features), w.series_id))
        for work, state in zip(works, forecasting.run_lanes(works, self._loaded.step, self._model)):
            yield work.series_id, work.status, state
        count_progress(self._progress, "series_forecast", len(works))


# --- writing ----------------------------------------------------------------------------


class _WriteForecastsFn(beam.DoFn):
    def __init__(self, model: forecasting.ModelInfo, horizon: int, staging: str):
        self._model = model
        self._horizon = horizon
        self._staging = staging

    def process(self, element):
        _, finals = element
        frame = forecasting.forecast_table(list(finals), self._model, self._horizon)
        name = f"{FORECASTS}/forecasts-00000-of-00001.parquet"
        info = commit.write_parquet(FileSystems.join(self._staging, name), frame)
        yield {"name": name, **info}


class _WriteStateFn(beam.DoFn):
    def __init__(self, staging: str):
        self._staging = staging

    def process(self, element):
        _, finals = element
        states = sorted((s for _, _, s in finals if s is not None), key=lambda s: s.series_id)
        name = "state/state-00000-of-00001.parquet"
        info = commit.write_parquet(
            FileSystems.join(self._staging, name), forecasting.states_to_table(states)
        )
        yield {"name": name, **info}


class Forecast(beam.PTransform):
    """The whole forecast job: inputs (+ saved state) -> staged forecasts, rejected rows,
    state and metadata."""

    def __init__(
        self, config, model, paths, state_files, staging, state_staging, run_id, progress=None
    ):
        super().__init__()
        self._progress = progress  # a JobProgress: heartbeat of rows read, series forecast
        self._config = config
        self._model = model
        self._paths = paths
        self._state_files = state_files
        self._staging = staging
        self._state_staging = state_staging
        self._run_id = run_id

    def expand(self, pbegin):
        config, model = self._config, self._model
        spill_dir = FileSystems.join(self._staging, commit.SPILL)
        read = pbegin | "ReadInputs" >> ReadInputs(
            self._paths, config.columns, spill_dir, self._progress
        )
        assembled = read.accepted | "AssembleSeries" >> AssembleSeries(
            AssembleConfig(model.freq, model.fill, config.max_gap_steps)
        )
        saved = (
            pbegin
            | "StateFiles" >> beam.Create(self._state_files)
            | "ReadState" >> beam.ParDo(_ReadStateFn(model))
        )
        known = pbegin | "KnownSeries" >> beam.Create(
            [(sid, True) for sid in sorted(model.series_scaling)]
        )
        prepared = (
            {"refs": assembled["series"], "saved": saved, "known": known}
            | "JoinState" >> beam.CoGroupByKey()
            | "Prepare"
            >> beam.ParDo(_PrepareFn(model, config.as_of_ns, config.max_gap_steps)).with_outputs(
                WORK, REJECTED, SKIPPED, main=DONE
            )
        )
        ran = (
            prepared[WORK]
            # Full batches of lanes (only a bundle's remainder is smaller).
            | "BatchLanes"
            >> beam.BatchElements(min_batch_size=config.lanes, max_batch_size=config.lanes)
            | "RunModel" >> beam.ParDo(_RunModelFn(model, self._progress, config.jit_compile))
        )
        finals = (
            (prepared[DONE], ran)
            | "AllSeries" >> beam.Flatten()
            | "Gather" >> beam.Map(lambda f: ("all", f))
            | "GroupAll" >> beam.GroupByKey()
        )
        forecast_files = finals | "WriteForecasts" >> beam.ParDo(
            _WriteForecastsFn(model, config.horizon, self._staging)
        )
        state_files = (
            finals | "WriteState" >> beam.ParDo(_WriteStateFn(self._state_staging))
            if self._state_staging
            else pbegin | "NoState" >> beam.Create([None])
        )
        statuses = finals | "CountStatuses" >> beam.Map(
            lambda kv: dict(collections.Counter(status for _, status, _ in kv[1]))
        )
        rows_read = read[ROWS_READ] | "CountRowsRead" >> beam.CombineGlobally(sum)
        skipped = prepared[SKIPPED] | "CountSkipped" >> beam.CombineGlobally(sum)
        rejected = (
            (read[REJECTED], assembled[REJECTED], prepared[REJECTED])
            | "AllRejected" >> beam.Flatten()
            | "WriteRejected" >> WriteRejected(FileSystems.join(self._staging, "rejected"))
        )
        side = beam.pvalue.AsSingleton
        return (
            pbegin
            | "MetadataTrigger" >> beam.Create([None])
            | "WriteMetadata"
            >> beam.Map(
                _write_metadata,
                config=config,
                model=model,
                run_id=self._run_id,
                staging=self._staging,
                state_staging=self._state_staging,
                forecast_files=beam.pvalue.AsList(forecast_files),
                state_files=beam.pvalue.AsList(state_files),
                statuses=beam.pvalue.AsList(statuses),
                rows_read=side(rows_read),
                skipped=side(skipped),
                rejected=side(rejected),
            )
        )


def _write_metadata(
    _,
    config,
    model,
    run_id,
    staging,
    state_staging,
    forecast_files,
    state_files,
    statuses,
    rows_read,
    skipped,
    rejected,
):
    by_reason = commit.rejected_counts(rejected)
    status_counts = {s: 0 for s in forecasting.STATUSES}
    for counts in statuses:
        for status, count in counts.items():
            status_counts[status] += count
    rows_rejected = int(sum(by_reason.values()))
    metadata = {
        **commit.metadata_header(schemas.FORECAST, commit.FORECAST, run_id),
        "model": {"path": model.path, "fingerprint": model.fingerprint},
        "horizon": config.horizon,
        "quantiles": list(model.quantiles),
        "as_of": config.as_of,
        "state_in": config.state_in,
        "counts": {
            "rows_read": int(rows_read),
            "rows_accepted": int(rows_read) - rows_rejected,
            "rows_rejected": rows_rejected,
            "rows_skipped": int(skipped),
            "rejected_by_reason": by_reason,
            "series_by_status": status_counts,
        },
        "files": list(forecast_files),
        "rejected_files": [commit.rejected_entry(rejected)],
    }
    commit.write_json(FileSystems.join(staging, commit.METADATA), metadata)
    if state_staging:
        commit.write_json(
            FileSystems.join(state_staging, commit.METADATA),
            state_store.state_metadata(run_id, model, [f for f in state_files if f]),
        )
    return run_id


def run_id_for(config: ForecastConfig, model, paths: list[str], state_run: str | None) -> str:
    settings = asdict(config)
    settings.pop("output")
    settings.pop("state_out")
    settings["columns"] = config.columns.as_json()  # runs without --timestamp-format keep ids
    extra = f"{model.fingerprint}\x1f{state_run}\x1f{schemas.schema_version_string()}"
    return commit.run_id(settings, paths, extra)


def run(argv: list[str]) -> dict:
    """Run ``rnncast forecast`` with command-line ``argv``; returns the committed metadata."""
    options, pipeline_options = parse_job_options(
        argv, ForecastOptions, "rnncast forecast", DESCRIPTION
    )
    return run_config(config_from_options(options), pipeline_options)


def run_config(config: ForecastConfig, pipeline_options: PipelineOptions | None = None) -> dict:
    """Run the forecast job with ``config`` on the runner of ``pipeline_options`` (default:
    the DirectRunner); returns the committed metadata. What ``rnncast forecast`` runs."""
    if not config.model:
        raise JobArgumentError("rnncast forecast: --model is required")
    config = replace(config, model=model_loader.resolve_export(config.model))
    # Checks the export (config, weights, fingerprint) here, so a bad one fails before the run.
    model = model_loader.load_model(config.model).info
    config = config.check(model)
    pipeline_options = pipeline_options or PipelineOptions()
    paths = list_inputs(config.input)
    for path in paths:
        check_input(path, config.columns)
    check_output_directory(config.output, "--output")
    if config.state_out:
        check_output_directory(config.state_out, "--state-out")
    state_files, state_run = ([], None)
    if config.state_in:
        state_files, state_run = state_store.load_state_files(config.state_in, model)
    run_id = run_id_for(config, model, paths, state_run)
    # Both directories are checked before either is written to.
    commit.check_owner(config.output, commit.FORECAST, OUTPUT_DIRECTORIES)
    if config.state_out:
        commit.check_owner(config.state_out, commit.STATE, STATE_DIRECTORIES)
    with contextlib.ExitStack() as stack:
        staging = stack.enter_context(
            commit.staged_run(config.output, run_id, commit.FORECAST, OUTPUT_DIRECTORIES)
        )
        state_staging = (
            stack.enter_context(
                commit.staged_run(config.state_out, run_id, commit.STATE, STATE_DIRECTORIES)
            )
            if config.state_out
            else None
        )
        print(f"rnncast forecast: {len(paths)} input file(s), run {run_id}", file=sys.stderr)
        # Counts per run and process (a rerun in the same process starts from zero).
        progress = progress_lib.JobProgress(
            "rnncast forecast", f"{run_id}-{uuid.uuid4().hex[:8]}", PROGRESS_COUNTS
        )
        runner = batch_runner(pipeline_options)
        try:
            with beam.Pipeline(runner=runner, options=pipeline_options) as pipeline:
                _ = pipeline | "Forecast" >> Forecast(
                    config, model, paths, state_files, staging, state_staging, run_id, progress
                )
        finally:
            progress_lib.forget(progress)
        commit.remove_spill(staging)
        staged = commit.read_json(FileSystems.join(staging, commit.METADATA))
        counts = staged["counts"]
        commit.check_counts(
            counts, config.input, config.max_rejected_fraction, staging, config.columns
        )
        metadata = commit.commit_run(
            config.output, staging, staged, commit.FORECAST, OUTPUT_DIRECTORIES
        )
        if state_staging:
            state_metadata = commit.read_json(FileSystems.join(state_staging, commit.METADATA))
            commit.remove_spill(state_staging)
            commit.commit_run(
                config.state_out, state_staging, state_metadata, commit.STATE, STATE_DIRECTORIES
            )
    print(
        f"rnncast forecast: run {run_id} committed; rows read {counts['rows_read']}, rejected "
        f"{counts['rows_rejected']}, skipped {counts['rows_skipped']}; series "
        + ", ".join(f"{k} {v}" for k, v in counts["series_by_status"].items() if v)
    )
    return metadata
