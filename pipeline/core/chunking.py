"""Cutting series into fixed-length rows and packing them into lanes of stateful batches.

Vocabulary:
- track: the contiguous range of a series that one split reads (training: the training part;
  validation: a tail of the training part, for warm-up, plus the validation part).
- chunk: ``num_steps`` consecutive grid points of a track; the last one is padded.
- lane: one position of the batch; lane ``k`` of batch ``j + 1`` continues lane ``k`` of batch
  ``j``. A stream is ``batch_size`` lanes of equal length, written as one ordered file.
- segment: consecutive chunks of one track placed on one lane, optionally preceded by warm-up
  chunks (re-read from just before the segment, targets masked out of the loss).

All functions are pure numpy and independent of Beam and TensorFlow.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Track:
    """Grid points ``[begin, end)`` of a series read by one split; targets count from
    ``target_begin`` (absolute grid index) on, and nothing past ``end`` is ever exposed."""

    begin: int
    end: int
    target_begin: int

    def num_chunks(self, num_steps: int) -> int:
        return -(-(self.end - self.begin) // num_steps)


def split_tracks(length: int, train_length: int, warmup_steps: int) -> dict[str, Track]:
    """Training and validation tracks of a series with ``length`` points, ``train_length`` of
    them for training. Validation re-reads up to ``warmup_steps`` training points before its
    first target so a model can warm its state up; those points' own targets are training
    targets and are masked (``target_begin``)."""
    tracks = {}
    if train_length > 0:
        tracks["train"] = Track(0, train_length, 0)
    if length > train_length:
        tracks["validation"] = Track(max(0, train_length - warmup_steps), length, train_length)
    return tracks


@dataclass(frozen=True)
class Segment:
    """Chunks ``[first_chunk, first_chunk + num_chunks)`` of one track, on ``lane`` of
    ``stream`` from batch ``row`` on, after ``warmup_chunks`` re-read chunks."""

    series_id: str
    stream: int
    lane: int
    row: int
    first_chunk: int
    num_chunks: int
    warmup_chunks: int

    @property
    def num_rows(self) -> int:
        return self.warmup_chunks + self.num_chunks


@dataclass(frozen=True)
class LaneLayout:
    """How one split's chunks are laid out: ``num_streams`` files of ``num_batches`` batches."""

    batch_size: int
    num_streams: int
    num_batches: int
    segments: tuple[Segment, ...]


def tape_order(series_ids: list[str], seed: int) -> list[str]:
    """A deterministic pseudo-random order of series (so neighbouring lanes mix series)."""
    return sorted(series_ids, key=lambda s: (stable_hash(seed, s), s))


def stable_hash(seed: int, *parts: object) -> int:
    """A 64-bit hash that is the same in every process and on every machine."""
    text = "\x1f".join([str(seed), *map(str, parts)]).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


def pack_lanes(
    chunk_counts: list[tuple[str, int]],
    batch_size: int,
    max_batches_per_stream: int,
    warmup_chunks: int = 0,
) -> LaneLayout:
    """Lay the tracks, in the given order, end to end on a tape and cut it into equal lanes.

    Every lane but the last is full, so padding comes only from each track's last chunk and
    the tail of the last lane. A track that crosses a lane boundary continues on the next lane
    as a new segment (reset, plus up to ``warmup_chunks`` re-read chunks). One long series
    alone therefore fills all lanes.
    """
    if batch_size < 1 or max_batches_per_stream < 1:
        raise ValueError("batch_size and max_batches_per_stream must be positive")
    total = sum(n for _, n in chunk_counts)
    if total == 0:
        return LaneLayout(batch_size, 0, 0, ())
    num_streams = max(1, math.ceil(total / (batch_size * max_batches_per_stream)))
    num_lanes = num_streams * batch_size
    lane_length = math.ceil((total + warmup_chunks * (num_lanes - 1)) / num_lanes)
    if warmup_chunks >= lane_length:
        warmup_chunks = 0
        lane_length = math.ceil(total / num_lanes)
    segments = []
    lane, row = 0, 0
    for series_id, count in chunk_counts:
        chunk = 0
        while chunk < count:
            if row == lane_length:
                lane, row = lane + 1, 0
            warmup = min(warmup_chunks, chunk) if row == 0 else 0
            take = min(count - chunk, lane_length - row - warmup)
            segments.append(
                Segment(series_id, lane // batch_size, lane % batch_size, row, chunk, take, warmup)
            )
            row += warmup + take
            chunk += take
    if lane >= num_lanes:
        raise AssertionError("lane packing overflowed; this is a bug in pack_lanes")
    return LaneLayout(batch_size, num_streams, lane_length, tuple(segments))


@dataclass
class Rows:
    """Rows cut from one track as arrays: ``m`` rows, ``T`` steps, ``F`` features, horizon ``H``."""

    start: np.ndarray  # int64 [m] absolute grid index of step 0
    chunk_index: np.ndarray  # int64 [m]
    sequence_length: np.ndarray  # int64 [m]
    values: np.ndarray  # float32 [m, T, F]
    observed: np.ndarray  # int64 [m, T]
    lookahead: np.ndarray  # float32 [m, H]
    lookahead_observed: np.ndarray  # int64 [m, H]
    target_start: np.ndarray  # int64 [m]

    def __len__(self) -> int:
        return len(self.start)


def cut_rows(
    features: np.ndarray,
    observed: np.ndarray,
    track: Track,
    starts: np.ndarray,
    warmup: np.ndarray,
    num_steps: int,
    horizon: int,
    chunk_index: np.ndarray | None = None,
) -> Rows:
    """Cut rows of ``num_steps`` starting at track offsets ``starts``.

    ``features`` [n, F] holds the whole series (column 0 is the target value). Steps past the
    track end are zero padding; ``lookahead`` holds the ``horizon`` values after each row, zero
    and unobserved past the track end, so a training row never exposes validation values.
    Rows flagged ``warmup`` carry no targets (``target_start = T + H``).
    """
    starts = np.asarray(starts, dtype=np.int64)
    span = track.end - track.begin
    width = int(starts.max()) + num_steps + horizon if len(starts) else 0
    padded = np.zeros((max(width, span), features.shape[1]), dtype=np.float32)
    padded[:span] = features[track.begin : track.end]
    padded_observed = np.zeros(len(padded), dtype=np.int64)
    padded_observed[:span] = observed[track.begin : track.end]
    steps = starts[:, None] + np.arange(num_steps)[None, :]
    ahead = starts[:, None] + num_steps + np.arange(horizon)[None, :]
    absolute_start = track.begin + starts
    no_targets = num_steps + horizon
    target_start = np.clip(track.target_begin - absolute_start, 0, no_targets)
    target_start = np.where(np.asarray(warmup, dtype=bool), no_targets, target_start)
    return Rows(
        start=absolute_start,
        chunk_index=(
            starts // num_steps if chunk_index is None else np.asarray(chunk_index, np.int64)
        ),
        sequence_length=np.clip(span - starts, 0, num_steps),
        values=padded[steps],
        observed=padded_observed[steps],
        lookahead=padded[ahead, 0],
        lookahead_observed=padded_observed[ahead],
        target_start=target_start.astype(np.int64),
    )


def segment_rows(
    features: np.ndarray,
    observed: np.ndarray,
    track: Track,
    segment: Segment,
    num_steps: int,
    horizon: int,
) -> Rows:
    """The rows of one segment of a stateful lane: warm-up chunks, then its own chunks."""
    first = segment.first_chunk - segment.warmup_chunks
    chunks = np.arange(first, segment.first_chunk + segment.num_chunks, dtype=np.int64)
    warmup = chunks < segment.first_chunk
    return cut_rows(features, observed, track, chunks * num_steps, warmup, num_steps, horizon)


def window_starts(track: Track, num_steps: int, stride: int) -> np.ndarray:
    """Offsets of independent windows of ``num_steps`` every ``stride`` steps over a track."""
    span = track.end - track.begin
    return np.arange(0, max(span, 0), stride, dtype=np.int64)


def padding_waste(sequence_lengths_sum: int, num_rows: int, num_steps: int) -> float:
    """Padded steps / all steps of ``num_rows`` rows with ``sequence_lengths_sum`` valid steps."""
    total = num_rows * num_steps
    return 0.0 if total == 0 else (total - sequence_lengths_sum) / total
