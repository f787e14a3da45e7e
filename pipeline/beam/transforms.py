"""Beam transforms shared by the rnncast jobs: read and validate inputs, assemble series,
write dead-letter rows. Each step is a named ``PTransform``; the logic they run lives in the
pure modules (:mod:`rnncast.pipeline.core.validation`, :mod:`rnncast.pipeline.core.series`)."""

from __future__ import annotations

import collections
import hashlib
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import pandas as pd
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from rnncast.pipeline.core import series as series_lib
from rnncast.pipeline.core.deadletters import (
    deduplicated,
    empty_rejected,
    rejected_observations,
    rejected_payload,
)
from rnncast.pipeline.core.progress import JobProgress
from rnncast.pipeline.core.validation import InputColumns
from rnncast.pipeline.io import commit, observations, spill

REJECTED = "rejected"
ROWS_READ = "rows_read"
FREQUENCY_VOTE = "frequency_vote"
# Beam metrics of the batch jobs (rows_read, rows_invalid, series_done, files_written, ...).
METRICS_NAMESPACE = "rnncast"


def count_progress(progress: JobProgress | None, key: str, amount: int = 1) -> None:
    """Count ``amount`` ``key`` events: a Beam counter (every runner reports it) and, with
    ``progress``, this process's rate-limited heartbeat line on stderr (the local view)."""
    if amount:
        Metrics.counter(METRICS_NAMESPACE, key).inc(int(amount))
    if progress is not None:
        progress.add(key, int(amount))


class _ReadFileFn(beam.DoFn):
    def __init__(self, columns: InputColumns, spill_dir: str, progress: JobProgress | None):
        self._columns = columns
        self._spill_dir = spill_dir
        self._progress = progress

    def process(self, path: str):
        name = hashlib.sha256(path.encode("utf-8")).hexdigest()[:24]
        batches = observations.validated_batches(path, self._columns)
        for index, (rows_read, parts, rejected) in enumerate(batches):
            yield beam.pvalue.TaggedOutput(ROWS_READ, rows_read)
            count_progress(self._progress, "rows_read", rows_read)
            count_progress(None, "rows_invalid", len(rejected))
            if len(rejected):
                yield beam.pvalue.TaggedOutput(REJECTED, rejected)
            if parts:
                spill_path = FileSystems.join(self._spill_dir, f"parts-{name}-{index:06d}.arrow")
                refs = spill.write_parts(spill_path, [part for _, part in parts])
                for (series_id, _), ref in zip(parts, refs):
                    yield series_id, ref


class ReadInputs(beam.PTransform):
    """Read input files in Arrow batches and validate every row.

    Accepted rows are spilled, per input batch and series, under ``spill_dir``. Outputs: main
    ``(series_id, PartRef)``; ``rejected`` dead-letter frames; ``rows_read`` counts. Files are
    spread over workers; within a file, rows are read in batches. Counts ``rows_read`` (and
    ``rows_invalid``) as Beam metrics and, with ``progress``, on its heartbeat.
    """

    def __init__(
        self,
        paths: list[str],
        columns: InputColumns,
        spill_dir: str,
        progress: JobProgress | None = None,
    ):
        super().__init__()
        self._paths = list(paths)
        self._columns = columns
        self._spill_dir = spill_dir
        self._progress = progress

    def expand(self, pbegin):
        return (
            pbegin
            | "ListFiles" >> beam.Create(self._paths)
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadAndValidate"
            >> beam.ParDo(_ReadFileFn(self._columns, self._spill_dir, self._progress)).with_outputs(
                REJECTED, ROWS_READ, main="accepted"
            )
        )


def load_unique(
    series_id: str, refs: list[spill.PartRef], max_gap_steps: float = 0.0
) -> tuple[series_lib.Observations, list[pd.DataFrame]]:
    """A series' spilled rows, de-duplicated: its unique rows and the dead letters of the
    rest (:func:`~rnncast.pipeline.core.deadletters.deduplicated`)."""
    rows = series_lib.combine_parts(spill.read_parts(list(refs)))
    return deduplicated(series_id, rows, max_gap_steps)


class _DeduplicateFn(beam.DoFn):
    def __init__(self, max_gap_steps: float = 0.0):
        self._max_gap_steps = max_gap_steps

    def process(self, element):
        series_id, refs = element
        unique, rejected = load_unique(series_id, refs, self._max_gap_steps)
        for frame in rejected:
            yield beam.pvalue.TaggedOutput(REJECTED, frame)
        yield beam.pvalue.TaggedOutput(FREQUENCY_VOTE, series_lib.frequency_vote(unique.timestamp))


class FrequencyVotes(beam.CombineFn):
    """Combine per-series frequency votes (:func:`series.frequency_vote`) into
    ``{"freq": alias}`` or ``{"error": message}``; also usable outside Beam, call by call."""

    def create_accumulator(self):
        return collections.Counter(), collections.Counter()

    def add_input(self, accumulator, vote):
        alias, step = vote
        if alias is not None:
            accumulator[0][alias] += 1
        if step is not None:
            accumulator[1][step] += 1
        return accumulator

    def merge_accumulators(self, accumulators):
        aliases, steps = collections.Counter(), collections.Counter()
        for a, s in accumulators:
            aliases.update(a)
            steps.update(s)
        return aliases, steps

    def extract_output(self, accumulator):
        try:
            return {
                "freq": series_lib.validate_frequency(series_lib.choose_frequency(*accumulator))
            }
        except ValueError as err:
            return {"error": str(err)}


@dataclass(frozen=True)
class AssembleConfig:
    """Options of series assembly (shared by the dataset and forecast jobs).

    ``max_gap_steps``: points apart from their series by a gap over this many times its median
    spacing are rejected (``isolated_by_gap``, see :func:`series.isolated_by_gap`); 0 = off."""

    freq: str | None = None
    fill: str = "ffill"
    max_gap_steps: float = 0.0


class AssembledSeries:
    """A regular series with the provenance needed to report its rejected rows."""

    def __init__(self, regular: series_lib.RegularSeries, digest: str):
        self.regular = regular
        self.digest = digest


def assemble(
    series_id: str, refs: list[spill.PartRef], freq: str, fill: str, max_gap_steps: float = 0.0
) -> tuple[AssembledSeries | None, pd.DataFrame]:
    """Load, de-duplicate, drop isolated points and regularise one series from its spilled
    rows; also return the dead-letter frame of its off-grid rows. ``None`` when no row is on
    the grid."""
    unique, _ = load_unique(series_id, refs, max_gap_steps)
    regular, off_grid = series_lib.regularise(series_id, unique, freq, fill)
    rejected = (
        rejected_observations(series_id, unique, np.flatnonzero(off_grid), "off_grid")
        if off_grid.any()
        else empty_rejected()
    )
    if len(regular) == 0:
        return None, rejected
    return AssembledSeries(regular, series_digest(regular)), rejected


class _RegulariseFn(beam.DoFn):
    def __init__(self, config: AssembleConfig, summarise):
        self._config = config
        self._summarise = summarise

    def process(self, element, frequency):
        series_id, refs = element
        if "error" in frequency:
            # The job reports the frequency error once; the rows are not lost, the run fails.
            return
        config = self._config
        assembled, rejected = assemble(
            series_id, refs, frequency["freq"], config.fill, config.max_gap_steps
        )
        if len(rejected):
            yield beam.pvalue.TaggedOutput(REJECTED, rejected)
        if assembled is not None:
            yield self._summarise(assembled, frequency["freq"])


def series_digest(regular: series_lib.RegularSeries) -> str:
    """SHA-256 of a series' id and observed content (the input fingerprint is built from these)."""
    digest = hashlib.sha256(regular.series_id.encode("utf-8"))
    observed = regular.observed
    digest.update(regular.timestamp[observed].tobytes())
    digest.update(regular.value[observed].tobytes())
    digest.update(np.ascontiguousarray(regular.covariates[observed]).tobytes())
    return digest.hexdigest()


class AssembleSeries(beam.PTransform):
    """Group spilled rows per series, reject duplicates/conflicts/isolated/off-grid rows, infer the
    frequency (unless given) and place every series on its regular grid.

    Only references are shuffled; each pass re-reads one series' rows from the spill. Outputs:
    ``series`` ``(series_id, [PartRef])`` for later passes (see :func:`assemble`);
    ``summaries``: ``summarise(AssembledSeries, freq)`` per series (with the off-grid rows in
    ``rejected``; skipped when ``summarise`` is None, for jobs that place series on the grid
    themselves); ``rejected`` frames; ``frequency`` (singleton dict).
    """

    def __init__(self, config: AssembleConfig, summarise=None):
        super().__init__()
        self._config = config
        self._summarise = summarise

    def expand(self, accepted):
        grouped = accepted | "GroupBySeries" >> beam.GroupByKey()
        unique = grouped | "Deduplicate" >> beam.ParDo(
            _DeduplicateFn(self._config.max_gap_steps)
        ).with_outputs(REJECTED, FREQUENCY_VOTE)
        if self._config.freq:
            frequency = accepted.pipeline | "GivenFrequency" >> beam.Create(
                [{"freq": series_lib.validate_frequency(self._config.freq)}]
            )
        else:
            frequency = unique[FREQUENCY_VOTE] | "InferFrequency" >> beam.CombineGlobally(
                FrequencyVotes()
            )
        outputs = {"series": grouped, REJECTED: unique[REJECTED], "frequency": frequency}
        if self._summarise is not None:
            regular = grouped | "Regularise" >> beam.ParDo(
                _RegulariseFn(self._config, self._summarise),
                frequency=beam.pvalue.AsSingleton(frequency),
            ).with_outputs(REJECTED, main="summaries")
            outputs["summaries"] = regular.summaries
            outputs[REJECTED] = (unique[REJECTED], regular[REJECTED]) | "FlattenRejected" >> (
                beam.Flatten()
            )
        return outputs


class _WriteRejectedFn(beam.DoFn):
    def __init__(self, directory: str):
        self._directory = directory

    def process(self, element):
        _, frames = element
        payload, records, counts = rejected_payload(list(frames))
        path = FileSystems.join(self._directory, "rejected-00000-of-00001.jsonl")
        commit.write_bytes(path, payload)
        yield {
            "path": path,
            "records": records,
            "bytes": len(payload),
            "sha256": hashlib.sha256(payload).hexdigest(),
            "by_reason": counts,
        }


class WriteRejected(beam.PTransform):
    """Write all dead-letter rows, sorted, as JSON lines into ``directory``; output one summary
    ``{"path", "records", "by_reason", ...}``. Always writes a file (empty when nothing was
    rejected), so the layout does not depend on the data."""

    def __init__(self, directory: str):
        super().__init__()
        self._directory = directory

    def expand(self, frames):
        seed = frames.pipeline | "Nothing" >> beam.Create([("rejected", empty_rejected())])
        keyed = frames | "Key" >> beam.Map(lambda frame: ("rejected", frame))
        return (
            (keyed, seed)
            | "Merge" >> beam.Flatten()
            | "Gather" >> beam.GroupByKey()
            | "Write" >> beam.ParDo(_WriteRejectedFn(self._directory))
        )
