"""``rnncast dataset``: long series -> padded stateful batches (or windows) -> GZIP TFRecords.

The job is thin: it parses options, checks inputs, composes the transforms below, runs the
pipeline on whatever runner the Beam options name, and commits the run atomically (see
:mod:`rnncast.pipeline.io.commit`).
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import hashlib
import logging
import math
import sys
import uuid
from dataclasses import asdict, dataclass, field, replace

import apache_beam as beam
import numpy as np
import pandas as pd
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from rnncast import schemas
from rnncast.errors import InputError, JobArgumentError, RejectedRowsError
from rnncast.pipeline.beam import flags
from rnncast.pipeline.beam.engine import batch_runner
from rnncast.pipeline.beam.options import JobOptions, input_columns, parse_job_options
from rnncast.pipeline.beam.transforms import (
    REJECTED,
    ROWS_READ,
    AssembleConfig,
    AssembledSeries,
    AssembleSeries,
    ReadInputs,
    WriteRejected,
    assemble,
    count_progress,
)
from rnncast.pipeline.core import chunking
from rnncast.pipeline.core import progress as progress_lib
from rnncast.pipeline.core import series as series_lib
from rnncast.pipeline.core.choices import MOSTLY_FILLED
from rnncast.pipeline.core.validation import InputColumns, timestamp_format_problem
from rnncast.pipeline.io import commit, spill
from rnncast.pipeline.io.examples import encode_empty_row, encode_rows
from rnncast.pipeline.io.inputs import check_input, list_inputs
from rnncast.pipeline.io.locations import check_output_directory
from rnncast.pipeline.io.tfrecord import frame_record, write_tfrecord_file

LOGGER = logging.getLogger(__name__)
SPLITS = ("train", "validation")
# Series with more filled than observed grid points are named in the summary and metadata.
MOSTLY_FILLED_SHOWN = 10  # at most this many named on the console
# The heartbeat's counters (also Beam metrics in the "rnncast" namespace), in console order.
PROGRESS_COUNTS = (
    ("rows_read", "rows read"),
    ("series_done", "series cut"),
    ("files_written", "files written"),
)
DESCRIPTION = flags.DATASET.description


class DatasetOptions(JobOptions):
    """Flags of ``rnncast dataset`` (declared in :mod:`rnncast.pipeline.beam.flags`)."""

    FLAGS = flags.DATASET

    @classmethod
    def _add_argparse_args(cls, parser):
        flags.add_dataset_flags(parser)


@dataclass(frozen=True)
class DatasetConfig:
    """Validated, picklable settings of one dataset run."""

    input: str
    output: str
    num_steps: int = 64
    batch_size: int = 32
    horizon: int = 24
    freq: str | None = None
    columns: InputColumns = field(default_factory=InputColumns)
    validation_fraction: float = 0.1
    validation_start: str | None = None
    validation_warmup_steps: int | None = None
    layout: str = "stateful"
    warmup_chunks: int = 0
    max_batches_per_stream: int = 256
    window_stride: int | None = None
    num_shards: int | None = None
    fill: str = "ffill"
    scaling: str = "standard"
    calendar_features: str = "auto"
    max_rejected_fraction: float = 0.01
    max_gap_steps: float = series_lib.MAX_GAP_STEPS
    max_filled_fraction: float = 1.0
    seed: int = 0

    @property
    def warmup_steps(self) -> int:
        if self.validation_warmup_steps is None:
            return 4 * self.num_steps
        return self.validation_warmup_steps

    @property
    def validation_start_ns(self) -> int | None:
        return series_lib.utc_ns(self.validation_start)

    def check(self) -> DatasetConfig:
        problems = [] if self.input and self.output else ["--input and --output are required"]
        for name in ("num_steps", "batch_size", "horizon", "max_batches_per_stream"):
            if getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')} must be >= 1")
        if not 0.0 <= self.validation_fraction < 1.0:
            problems.append("--validation-fraction must be in [0, 1)")
        if not 0.0 <= self.max_rejected_fraction <= 1.0:
            problems.append("--max-rejected-fraction must be in [0, 1]")
        if not 0.0 <= self.max_filled_fraction <= 1.0:
            problems.append("--max-filled-fraction must be in [0, 1]")
        if not self.max_gap_steps >= 0.0:  # NaN too
            problems.append("--max-gap-steps must be >= 0 (0 turns the check off)")
        if self.warmup_chunks < 0 or self.warmup_steps < 0:
            problems.append("--warmup-chunks and --validation-warmup-steps must be >= 0")
        if self.window_stride is not None and self.window_stride < 1:
            problems.append("--window-stride must be >= 1")
        if self.num_shards is not None and self.num_shards < 1:
            problems.append("--num-shards must be >= 1")
        if self.validation_start is not None:
            try:
                self.validation_start_ns  # noqa: B018 - parse check
            except ValueError:
                problems.append(f"--validation-start {self.validation_start!r} is not a timestamp")
        format_problem = timestamp_format_problem(self.columns.timestamp_format)
        if format_problem:
            problems.append(format_problem)
        if self.freq is not None:
            try:
                series_lib.validate_frequency(self.freq)
            except ValueError as err:
                problems.append(str(err))
        if problems:
            raise JobArgumentError("rnncast dataset: " + "; ".join(problems))
        return self


def config_from_options(options: DatasetOptions) -> DatasetConfig:
    if not options.input or not options.output:
        raise JobArgumentError("rnncast dataset: --input and --output are required")
    covariates = tuple(c for item in options.covariates for c in item.split(",") if c)
    return DatasetConfig(
        input=options.input,
        output=options.output.rstrip("/"),
        num_steps=options.num_steps,
        batch_size=options.batch_size,
        horizon=options.horizon or 24,
        freq=options.freq,
        columns=input_columns(options, covariates, "rnncast dataset"),
        validation_fraction=options.validation_fraction,
        validation_start=options.validation_start,
        validation_warmup_steps=options.validation_warmup_steps,
        layout=options.layout,
        warmup_chunks=options.warmup_chunks,
        max_batches_per_stream=options.max_batches_per_stream,
        window_stride=options.window_stride,
        num_shards=options.num_shards,
        fill=options.fill,
        scaling=options.scaling,
        calendar_features=options.calendar_features,
        max_rejected_fraction=options.max_rejected_fraction,
        max_gap_steps=options.max_gap_steps,
        max_filled_fraction=options.max_filled_fraction,
        seed=options.seed,
    ).check()


# --- per-series preparation -------------------------------------------------------------


@dataclass
class PreparedSeries:
    """A series with its split point, scaling and tracks (features are built when cutting)."""

    regular: series_lib.RegularSeries
    train_length: int
    loc: float
    scale: float
    tracks: dict[str, chunking.Track]
    digest: str

    @property
    def series_id(self) -> str:
        return self.regular.series_id


def feature_names(config: DatasetConfig, freq: str) -> tuple[str, ...]:
    return ("value", *config.columns.covariates, *calendar_names(config, freq))


def calendar_names(config: DatasetConfig, freq: str) -> tuple[str, ...]:
    return () if config.calendar_features == "none" else series_lib.calendar_feature_names(freq)


def prepare_series(assembled: AssembledSeries, config: DatasetConfig) -> PreparedSeries:
    regular = assembled.regular
    train_length = series_lib.split_index(
        regular.timestamp, config.validation_fraction, config.validation_start_ns
    )
    observed_train = regular.observed.copy()
    observed_train[train_length:] = False
    loc, scale = series_lib.scaling_stats(regular.value, observed_train, config.scaling)
    return PreparedSeries(
        regular=regular,
        train_length=train_length,
        loc=loc,
        scale=scale,
        tracks=chunking.split_tracks(len(regular), train_length, config.warmup_steps),
        digest=assembled.digest,
    )


def series_features(regular: series_lib.RegularSeries, config: DatasetConfig, freq: str):
    """Model inputs [n, F] (float32): value, covariates, calendar features."""
    return series_lib.model_features(regular, calendar_names(config, freq))


def pooled_lag_errors(summaries: list[dict]) -> dict[str, float | None]:
    """Per lag, the in-sample scaled MAE pooled over every series' pairs (None: no pair)."""
    totals: dict[int, list[float]] = {}
    for summary in summaries:
        for lag, (total, count) in summary["lag_errors"].items():
            entry = totals.setdefault(int(lag), [0.0, 0])
            entry[0] += total
            entry[1] += count
    return {
        str(lag): (total / count if count else None)
        for lag, (total, count) in sorted(totals.items())
    }


def series_summary(assembled: AssembledSeries, freq: str, config: DatasetConfig) -> dict:
    prepared = prepare_series(assembled, config)
    regular = prepared.regular
    train = slice(0, prepared.train_length)
    seen = regular.value[train][regular.observed[train]]
    lags = (1, *series_lib.seasonal_lags(freq))
    errors = series_lib.lag_errors(
        regular.value[train], regular.observed[train], prepared.scale, lags
    )
    return {
        "series_id": regular.series_id,
        "start": pd.Timestamp(int(regular.timestamp[0]), unit="ns").isoformat(),
        "end": pd.Timestamp(int(regular.timestamp[-1]), unit="ns").isoformat(),
        "length": int(len(regular)),
        "observed": int(regular.observed.sum()),
        "filled_fraction": round(series_lib.filled_fraction(regular.observed), 6),
        "train_length": int(prepared.train_length),
        "loc": prepared.loc,
        "scale": prepared.scale,
        "digest": prepared.digest,
        "min_observed": float(seen.min()) if len(seen) else None,
        "lag_errors": errors,
        "chunks": {
            split: track.num_chunks(config.num_steps) for split, track in prepared.tracks.items()
        },
        "windows": {
            split: len(chunking.window_starts(track, config.num_steps, stride(config)))
            for split, track in prepared.tracks.items()
        },
    }


def stride(config: DatasetConfig) -> int:
    return config.window_stride or config.num_steps


# --- the global plan ----------------------------------------------------------------------


def make_plan(summaries: list[dict], config: DatasetConfig) -> dict:
    """Where every series' rows go. Stateful: a lane layout per split; windows: shard counts."""
    ids = chunking.tape_order([s["series_id"] for s in summaries], config.seed)
    by_id = {s["series_id"]: s for s in summaries}
    plan: dict = {"splits": {}}
    for split in SPLITS:
        if config.layout == "stateful":
            warmup = (
                config.warmup_chunks
                if split == "train"
                else max(config.warmup_chunks, math.ceil(config.warmup_steps / config.num_steps))
            )
            layout = chunking.pack_lanes(
                [(i, by_id[i]["chunks"].get(split, 0)) for i in ids],
                config.batch_size,
                config.max_batches_per_stream,
                warmup,
            )
            segments = collections.defaultdict(list)
            for segment in layout.segments:
                segments[segment.series_id].append(segment)
            plan["splits"][split] = {
                "num_streams": layout.num_streams,
                "num_batches": layout.num_batches,
                "segments": dict(segments),
            }
        else:
            windows = sum(by_id[i]["windows"].get(split, 0) for i in ids)
            shards = config.num_shards or max(1, math.ceil(windows / 8192))
            plan["splits"][split] = {"num_shards": shards if windows else 0}
    return plan


# --- cutting and writing ------------------------------------------------------------------


ROW_STATS = "row_stats"


class _CutRowsFn(beam.DoFn):
    """Cut one series into encoded rows, spill them (one file per series) and output, keyed by
    the TFRecord file they belong to, references to them; also the row counts (padding waste,
    targets) of what was cut."""

    def __init__(
        self,
        config: DatasetConfig,
        spill_dir: str,
        progress: progress_lib.JobProgress | None = None,
    ):
        self._config = config
        self._spill_dir = spill_dir
        self._progress = progress

    def process(self, element, plan, frequency):
        # Without a frequency the run fails with FrequencyVotes' message: nothing to cut.
        if "freq" in frequency:
            yield from self._cut(element, plan, frequency)

    def _cut(self, element, plan, frequency):
        series_id, refs = element
        config = self._config
        assembled, _ = assemble(
            series_id, refs, frequency["freq"], config.fill, config.max_gap_steps
        )
        if assembled is None:
            return
        T, H = config.num_steps, config.horizon
        prepared = prepare_series(assembled, config)
        regular = prepared.regular
        features = series_features(regular, config, frequency["freq"])

        def encode(rows: chunking.Rows, lanes, reset) -> list[bytes]:
            return encode_rows(
                series_id, rows, regular.timestamp, prepared.loc, prepared.scale, lanes, reset
            )

        stats: collections.Counter = collections.Counter()
        blobs: list[bytes] = []
        keys: list[tuple] = []
        for split, track in prepared.tracks.items():
            if config.layout == "stateful":
                for segment in plan["splits"][split]["segments"].get(series_id, []):
                    rows = chunking.segment_rows(features, regular.observed, track, segment, T, H)
                    _count_rows(stats, split, rows, T, H)
                    reset = np.zeros(len(rows), np.int64)
                    reset[0] = 1
                    records = encode(rows, segment.lane, reset)
                    blobs.append(b"".join(frame_record(r) for r in records))
                    keys.append(((split, segment.stream), (segment.lane, segment.row)))
                continue
            starts = chunking.window_starts(track, T, stride(config))
            if len(starts) == 0:
                continue
            rows = chunking.cut_rows(
                features,
                regular.observed,
                track,
                starts,
                np.zeros(len(starts), bool),
                T,
                H,
                chunk_index=starts // stride(config),
            )
            _count_rows(stats, split, rows, T, H)
            shards = plan["splits"][split]["num_shards"]
            for window, record in zip(rows.chunk_index, encode(rows, -1, np.ones(len(rows)))):
                key = chunking.stable_hash(config.seed, split, series_id, int(window))
                blobs.append(frame_record(record))
                keys.append(((split, key % shards), key))
        if blobs:
            name = hashlib.sha256(series_id.encode("utf-8")).hexdigest()[:32]
            path = FileSystems.join(self._spill_dir, f"rows-{name}.tfrecords")
            for (file_key, position), ref in zip(keys, spill.write_blobs(path, blobs)):
                yield file_key, (position, ref)
        count_progress(self._progress, "series_done")
        yield beam.pvalue.TaggedOutput(ROW_STATS, dict(stats))


class _WriteFileFn(beam.DoFn):
    """Write one stream (lanes x batches, empty lanes filled) or one shard of windows from the
    spilled rows of its series.

    Files are written by a small thread pool: GZIP compression is most of the work and zlib
    (and hashlib) release the GIL, so on one worker two files compress at once. Each file is
    still one sequential stream, so its bytes do not depend on the threads. At most
    ``_IN_FLIGHT`` files are pending (memory: one stream file's records each)."""

    _THREADS = 2
    _IN_FLIGHT = 2

    def __init__(
        self,
        config: DatasetConfig,
        staging: str,
        progress: progress_lib.JobProgress | None = None,
    ):
        self._config = config
        self._staging = staging
        self._progress = progress
        self._pool = None
        self._pending: collections.deque = collections.deque()

    def setup(self):
        self._pool = concurrent.futures.ThreadPoolExecutor(
            self._THREADS, thread_name_prefix="rnncast-write"
        )

    def start_bundle(self):
        self._pending = collections.deque()

    def teardown(self):
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def process(self, element, plan, num_features):
        self._pending.append(self._pool.submit(self._write, element, plan, num_features))
        while len(self._pending) >= self._IN_FLIGHT or (self._pending and self._pending[0].done()):
            yield self._finished(self._pending.popleft())

    def finish_bundle(self):
        while self._pending:
            info = self._finished(self._pending.popleft())
            # What process() outputs carry: the grouped input's end-of-window timestamp.
            yield WindowedValue(info, GlobalWindow().max_timestamp(), [GlobalWindow()])

    def _finished(self, future) -> dict:
        try:
            info = future.result()
        except BaseException:
            # A retried bundle rewrites these files: let the bundle's other writers end first.
            concurrent.futures.wait(self._pending)
            self._pending.clear()
            raise
        count_progress(self._progress, "files_written")
        return info

    def _write(self, element, plan, num_features) -> dict:
        (split, index), items = element
        items = sorted(items, key=lambda item: item[0])
        blobs = spill.read_blobs([ref for _, ref in items])
        config = self._config
        split_plan = plan["splits"][split]
        if config.layout == "stateful":
            count = split_plan["num_streams"]
            name = f"stream-{index:05d}-of-{count:05d}.tfrecord.gz"
            segments = [(lane, row, blob) for ((lane, row), _), blob in zip(items, blobs)]
            records = self._stream_records(segments, split_plan["num_batches"], num_features)
        else:
            count = split_plan["num_shards"]
            name = f"shard-{index:05d}-of-{count:05d}.tfrecord.gz"
            records = blobs  # already in shuffle-key order
        info = write_tfrecord_file(FileSystems.join(self._staging, split, name), records)
        info.update(split=split, index=index, name=f"{split}/{name}")
        if config.layout == "stateful":
            info["batches"] = split_plan["num_batches"]
        return info

    def _stream_records(self, segments, num_batches, num_features):
        config = self._config
        grid: list[list[bytes | memoryview | None]] = [
            [None] * config.batch_size for _ in range(num_batches)
        ]
        for lane, row, blob in segments:
            for offset, record in enumerate(spill.split_framed(blob)):
                grid[row + offset][lane] = record
        empty = [
            frame_record(encode_empty_row(lane, config.num_steps, num_features, config.horizon))
            for lane in range(config.batch_size)
        ]
        return [
            record if record is not None else empty[lane]
            for batch in grid
            for lane, record in enumerate(batch)
        ]


class _SplitStatsFn(beam.CombineFn):
    """Rows, valid steps, warm-up rows and trained targets per split, from the plan's rows."""

    def create_accumulator(self):
        return collections.Counter()

    def add_input(self, accumulator, item):
        accumulator.update(item)
        return accumulator

    def merge_accumulators(self, accumulators):
        total = collections.Counter()
        for a in accumulators:
            total.update(a)
        return total

    def extract_output(self, accumulator):
        return dict(accumulator)


def _count_rows(stats, split, rows: chunking.Rows, T: int, H: int) -> None:
    stats[f"{split}.rows"] += len(rows)
    stats[f"{split}.valid_steps"] += int(rows.sequence_length.sum())
    stats[f"{split}.warmup_rows"] += int((rows.target_start >= T + H).sum())
    stats[f"{split}.targets"] += int(count_targets(rows, T, H))


def count_targets(rows: chunking.Rows, T: int, H: int) -> int:
    """Number of (origin, horizon) targets that count in the loss across ``rows``.

    Target (t, h) of a row is the point j = t + 1 + h of its steps + look-ahead; it counts when
    t < sequence_length, j >= target_start and j is observed. Summed per j instead of per
    (t, h): the number of origins t that reach j is the length of [j - H, j - 1] within
    [0, sequence_length - 1], so the work is [rows, T + H], not [rows, T, H].
    """
    ext_observed = np.concatenate([rows.observed, rows.lookahead_observed], axis=1)
    j = np.arange(1, T + H)
    last_origin = np.minimum(rows.sequence_length, T)[:, None] - 1
    origins = np.minimum(last_origin, j - 1) - np.maximum(0, j - H) + 1
    eligible = (j >= rows.target_start[:, None]) & (ext_observed[:, j] == 1)
    return int((np.clip(origins, 0, None) * eligible).sum())


class BuildDataset(beam.PTransform):
    """The whole dataset job as one transform: inputs -> staged TFRecords, rejected rows and
    a staged ``metadata.json`` under ``staging``. With ``progress``, a heartbeat of rows
    read, series cut and files written (Beam metrics count them either way)."""

    def __init__(
        self,
        config: DatasetConfig,
        paths: list[str],
        staging: str,
        run_id: str,
        progress: progress_lib.JobProgress | None = None,
    ):
        super().__init__()
        self._config = config
        self._paths = paths
        self._staging = staging
        self._run_id = run_id
        self._progress = progress

    def expand(self, pbegin):
        config = self._config
        spill_dir = FileSystems.join(self._staging, commit.SPILL)
        read = pbegin | "ReadInputs" >> ReadInputs(
            self._paths, config.columns, spill_dir, self._progress
        )
        assembled = read.accepted | "AssembleSeries" >> AssembleSeries(
            AssembleConfig(config.freq, config.fill, config.max_gap_steps),
            summarise=functools.partial(series_summary, config=config),
        )
        frequency = beam.pvalue.AsSingleton(assembled["frequency"])
        summaries = assembled["summaries"]
        plan = (
            summaries
            | "CollectSummaries" >> beam.combiners.ToList()
            | "Plan" >> beam.Map(make_plan, config)
        )
        num_features = frequency.pvalue | "NumFeatures" >> beam.Map(
            lambda f: len(feature_names(config, f["freq"])) if "freq" in f else 0
        )
        cut = assembled["series"] | "CutRows" >> beam.ParDo(
            _CutRowsFn(config, spill_dir, self._progress),
            plan=beam.pvalue.AsSingleton(plan),
            frequency=frequency,
        ).with_outputs(ROW_STATS, main="rows")
        files = (
            cut.rows
            | "GroupByFile" >> beam.GroupByKey()
            | "WriteFiles"
            >> beam.ParDo(
                _WriteFileFn(config, self._staging, self._progress),
                plan=beam.pvalue.AsSingleton(plan),
                num_features=beam.pvalue.AsSingleton(num_features),
            )
        )
        stats = cut[ROW_STATS] | "SumRowStats" >> beam.CombineGlobally(_SplitStatsFn())
        rows_read = read[ROWS_READ] | "CountRowsRead" >> beam.CombineGlobally(sum)
        rejected = (
            (read[REJECTED], assembled[REJECTED])
            | "AllRejected" >> beam.Flatten()
            | "WriteRejected" >> WriteRejected(FileSystems.join(self._staging, "rejected"))
        )
        return (
            pbegin
            | "MetadataTrigger" >> beam.Create([None])
            | "WriteMetadata"
            >> beam.Map(
                _write_staged_metadata,
                config=config,
                run_id=self._run_id,
                paths=self._paths,
                staging=self._staging,
                frequency=frequency,
                summaries=beam.pvalue.AsList(summaries),
                files=beam.pvalue.AsList(files),
                plan=beam.pvalue.AsSingleton(plan),
                stats=beam.pvalue.AsSingleton(stats),
                rows_read=beam.pvalue.AsSingleton(rows_read),
                rejected=beam.pvalue.AsSingleton(rejected),
            )
        )


def _write_staged_metadata(
    _, config, run_id, paths, staging, frequency, summaries, files, plan, stats, rows_read, rejected
):
    metadata = build_metadata(
        config, run_id, paths, frequency, summaries, files, plan, stats, rows_read, rejected
    )
    commit.write_json(FileSystems.join(staging, commit.METADATA), metadata)
    return metadata["counts"]


def build_metadata(
    config, run_id, paths, frequency, summaries, files, plan, stats, rows_read, rejected
) -> dict:
    summaries = sorted(summaries, key=lambda s: s["series_id"])
    freq = frequency.get("freq")
    by_reason = commit.rejected_counts(rejected)
    rows_rejected = int(sum(by_reason.values()))
    rows_accepted = int(sum(s["observed"] for s in summaries))
    fingerprint = hashlib.sha256()
    for s in summaries:
        fingerprint.update(s["digest"].encode())
    splits = {}
    for split in SPLITS:
        split_files = sorted((f for f in files if f["split"] == split), key=lambda f: f["index"])
        rows = stats.get(f"{split}.rows", 0)
        valid = stats.get(f"{split}.valid_steps", 0)
        written = sum(f["records"] for f in split_files)
        empty_lanes = written - rows
        entry = {
            "files": [
                {k: f[k] for k in ("name", "records", "bytes", "sha256") if k in f}
                | ({"batches": f["batches"]} if "batches" in f else {})
                for f in split_files
            ],
            "records": written,
            "rows": rows,
            "empty_rows": empty_lanes,
            "valid_steps": valid,
            "warmup_rows": stats.get(f"{split}.warmup_rows", 0),
            "targets": stats.get(f"{split}.targets", 0),
            "padding_waste": chunking.padding_waste(valid, written, config.num_steps),
        }
        if config.layout == "stateful":
            entry["num_streams"] = plan["splits"][split]["num_streams"]
            entry["batches_per_stream"] = plan["splits"][split]["num_batches"]
        splits[split] = entry
    return {
        **commit.metadata_header(schemas.METADATA, commit.DATASET, run_id),
        "status": "error" if "error" in frequency else "ok",
        "error": frequency.get("error"),
        "layout": config.layout,
        "num_steps": config.num_steps,
        "batch_size": config.batch_size,
        "horizon": config.horizon,
        "freq": freq,
        "feature_names": list(feature_names(config, freq)) if freq else [],
        "covariates": list(config.columns.covariates),
        "calendar_features": list(calendar_names(config, freq)) if freq else [],
        "columns": config.columns.as_json(),
        "scaling": config.scaling,
        "fill": config.fill,
        "validation": {
            "fraction": None if config.validation_start else config.validation_fraction,
            "start": config.validation_start,
            "warmup_steps": config.warmup_steps,
        },
        "warmup_chunks": config.warmup_chunks,
        "window_stride": stride(config) if config.layout == "windows" else None,
        "seed": config.seed,
        "counts": {
            "rows_read": int(rows_read),
            "rows_accepted": rows_accepted,
            "rows_rejected": rows_rejected,
            "rejected_by_reason": by_reason,
        },
        "rejected_files": [commit.rejected_entry(rejected)],
        "splits": splits,
        "padding_waste": splits["train"]["padding_waste"],
        "series": {
            s["series_id"]: {
                k: s[k]
                for k in (
                    "loc",
                    "scale",
                    "start",
                    "end",
                    "length",
                    "observed",
                    "filled_fraction",
                    "train_length",
                )
            }
            for s in summaries
        },
        "max_gap_steps": config.max_gap_steps,
        "series_mostly_filled": mostly_filled(summaries, MOSTLY_FILLED),
        # In-sample scaled MAE of naive (lag 1) and seasonal naive per seasonal lag, pooled
        # over series: the model's automatic anchor is the lowest (model.train).
        "baseline_mae": pooled_lag_errors(summaries),
        # No training value below zero (counts, prices): the model's forecasts are clipped at
        # zero (rnncast.model.forecaster.RNNForecaster's nonnegative).
        "nonnegative": bool(summaries)
        and all(s["min_observed"] is None or s["min_observed"] >= 0 for s in summaries),
        "num_series": len(summaries),
        "input": {"files": list(paths), "fingerprint": fingerprint.hexdigest()},
    }


# --- entry point ----------------------------------------------------------------------------


def run_id_for(config: DatasetConfig, paths: list[str]) -> str:
    """The output location is not part of the id, so the same run written to two places is
    byte-identical, metadata.json included."""
    settings = asdict(config)
    settings.pop("output")
    settings["columns"] = config.columns.as_json()  # runs without --timestamp-format keep ids
    return commit.run_id(settings, paths, schemas.schema_version_string())


def run(argv: list[str]) -> dict:
    """Run ``rnncast dataset`` with command-line ``argv``; returns the committed metadata."""
    options, pipeline_options = parse_job_options(
        argv, DatasetOptions, "rnncast dataset", DESCRIPTION
    )
    return run_config(config_from_options(options), pipeline_options)


def run_config(config: DatasetConfig, pipeline_options: PipelineOptions | None = None) -> dict:
    """Run the dataset job with ``config`` on the runner of ``pipeline_options`` (default:
    the DirectRunner); returns the committed metadata. What ``rnncast dataset`` runs."""
    config = replace(config, output=config.output.rstrip("/")).check()
    pipeline_options = pipeline_options or PipelineOptions()
    paths = list_inputs(config.input)
    for path in paths:
        check_input(path, config.columns)
    check_output_directory(config.output, "--output")
    run_id = run_id_for(config, paths)
    with commit.staged_run(config.output, run_id, commit.DATASET) as staging:
        print(f"rnncast dataset: {len(paths)} input file(s), run {run_id}", file=sys.stderr)
        # Counts per run and process (a rerun in the same process starts from zero).
        progress = progress_lib.JobProgress(
            "rnncast dataset", f"{run_id}-{uuid.uuid4().hex[:8]}", PROGRESS_COUNTS
        )
        runner = batch_runner(pipeline_options)
        try:
            with beam.Pipeline(runner=runner, options=pipeline_options) as pipeline:
                _ = pipeline | "BuildDataset" >> BuildDataset(
                    config, paths, staging, run_id, progress
                )
        finally:
            progress_lib.forget(progress)
        commit.remove_spill(staging)
        staged = commit.read_json(FileSystems.join(staging, commit.METADATA))
        check_run(staged, config, staging)
        metadata = commit.commit_run(config.output, staging, staged, commit.DATASET)
    print_summary(metadata)
    return metadata


def mostly_filled(summaries: list[dict], threshold: float) -> list[dict]:
    """Series more than ``threshold`` filled, most filled first (then by id)."""
    over = [s for s in summaries if s["filled_fraction"] > threshold]
    return [
        {"series_id": s["series_id"], "filled_fraction": s["filled_fraction"]}
        for s in sorted(over, key=lambda s: (-s["filled_fraction"], s["series_id"]))
    ]


def name_series(over: list[dict], shown: int = MOSTLY_FILLED_SHOWN) -> str:
    """``'a' (97.1%), 'b' (85.9%) and 3 more``: the first ``shown`` of ``over``."""
    names = ", ".join(f"{s['series_id']!r} ({s['filled_fraction']:.1%})" for s in over[:shown])
    return names + (f" and {len(over) - shown} more" if len(over) > shown else "")


def check_run(metadata: dict, config: DatasetConfig, staging: str) -> None:
    """Refuse to commit a run that failed, rejected too much or is mostly filled points; say
    what to do."""
    counts = metadata["counts"]
    if counts["rows_read"]:
        # Every timestamp rejected: say so (not "cannot infer the frequency").
        commit.check_timestamps(counts, config.input, staging, config.columns)
    if metadata["status"] != "ok" and counts["rows_read"]:
        message = f"{config.input}: {metadata['error']}"
        if counts["rows_rejected"]:
            # Often the real cause: e.g. every timestamp was rejected, so no frequency shows.
            reasons = {k: v for k, v in counts["rejected_by_reason"].items() if v}
            message += (
                f". {counts['rows_rejected']} of {counts['rows_read']} rows were rejected "
                f"{reasons}; their reasons are in {FileSystems.join(staging, 'rejected')}"
            ) + commit.timestamp_hint(staging, config.columns)
            raise RejectedRowsError(message)
        raise InputError(message)
    commit.check_counts(
        metadata["counts"], config.input, config.max_rejected_fraction, staging, config.columns
    )
    summaries = [{"series_id": k, **v} for k, v in metadata["series"].items()]
    over = mostly_filled(summaries, config.max_filled_fraction)
    if over:
        raise InputError(
            f"{config.input}: {len(over)} series are more than --max-filled-fraction "
            f"{config.max_filled_fraction} filled points at freq {metadata['freq']}: "
            f"{name_series(over)}. Nothing was committed. Such series are sparser than the "
            "dataset frequency (e.g. weekly or monthly series in a daily file) or have long "
            "gaps: give them their own run with their --freq, fix the input, or raise "
            "--max-filled-fraction"
        )


def print_summary(metadata: dict) -> None:
    counts = metadata["counts"]
    lines = [
        f"rnncast dataset: run {metadata['run_id']} committed ({metadata['num_series']} series, "
        f"freq {metadata['freq']}, layout {metadata['layout']})",
        f"  rows read {counts['rows_read']}, accepted {counts['rows_accepted']}, "
        f"rejected {counts['rows_rejected']}",
    ]
    for reason, count in counts["rejected_by_reason"].items():
        if count:
            lines.append(f"    {reason}: {count}")
    over = metadata["series_mostly_filled"]
    if over:
        lines.append(
            f"  warning: {len(over)} series are mostly filled points at freq {metadata['freq']} "
            f"(over {MOSTLY_FILLED:.0%}; metadata.json lists them all): {name_series(over)}"
        )
    for split, entry in metadata["splits"].items():
        lines.append(
            f"  {split}: {len(entry['files'])} file(s), {entry['records']} records, "
            f"{entry['targets']} targets, padding waste {entry['padding_waste']:.2%}"
        )
    print("\n".join(lines))
