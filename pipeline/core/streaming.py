"""Streaming forecast logic: per-series buffering, duplicate and lateness decisions, and advancing
a series over newly consumed points.

Pure numpy/pandas; ``rnncast stream`` (:mod:`rnncast.pipeline.jobs.stream`) runs these
functions inside a stateful Beam step keyed by a shard of the series id (:func:`shard_of`):
each key holds many series, and the series due at one firing advance together as lanes of
one model call. A series advances through
:func:`rnncast.pipeline.core.forecasting.prepare` with its saved
:class:`~rnncast.pipeline.core.forecasting.SeriesState`,
exactly like an incremental batch run, so the grid, fill, scaling and digest logic is the batch
job's own; a cold start is ``prepare`` without a saved state.

Times: data timestamps are int64 ns since the epoch (UTC); Beam times (arrivals, timers) are
int64 microseconds.
"""

from __future__ import annotations

import io
import itertools
import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from rnncast.pipeline.core import forecasting
from rnncast.pipeline.core import series as series_lib
from rnncast.pipeline.core.deadletters import rejected_observations
from rnncast.pipeline.core.series import Observations, SeriesPart
from rnncast.pipeline.core.validation import (
    InputColumns,
    csv_line_numbers,
    validate_read_batch,
)

LATE = "late"
DUPLICATE = "duplicate"
UNREADABLE_FILE = "unreadable_file"
ACCEPTED = ""


# --- reading input: files and messages through the batch validation --------------------


@dataclass
class ReadResult:
    """What one input file or message yields: rows read, dead letters, per-series parts."""

    rows_read: int
    rejected: list[pd.DataFrame]
    parts: list[tuple[str, SeriesPart]]

    def add(self, rows_read: int, parts: list[tuple[str, SeriesPart]], rejected) -> None:
        """Add one validated batch: its rows read, accepted parts and dead letters."""
        self.rows_read += rows_read
        if len(rejected):
            self.rejected.append(rejected)
        self.parts.extend(parts)


def parse_message(payload: bytes, columns: InputColumns, source: str) -> ReadResult:
    """Validate the rows of one message (Pub/Sub, Kafka): JSON lines (one object per row with
    the input columns) or CSV with a header row. Row numbers are 1-based lines of the message
    (for CSV, header = line 1)."""
    text = payload.decode("utf-8", errors="replace")
    out = ReadResult(0, [], [])
    if text.lstrip().startswith("{"):
        table, row_numbers, malformed = _json_lines(text, columns)
    else:
        table, row_numbers, malformed = _csv_text(payload, columns)
    parts, rejected = validate_read_batch(table, columns, source, row_numbers, malformed)
    out.add(table.num_rows + len(malformed), parts, rejected)
    return out


def _json_lines(text: str, columns: InputColumns):
    values = {name: [] for name in columns.all}
    numbers, malformed = [], []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not an object")
        except ValueError:
            malformed.append((line_number, line))
            continue
        for name in columns.all:
            value = row.get(name)
            values[name].append(None if value is None else str(value))
        numbers.append(line_number)
    table = pa.table({name: pa.array(values[name], pa.string()) for name in columns.all})
    return table, np.array(numbers, np.int64), malformed


def _csv_text(payload: bytes, columns: InputColumns):
    malformed: list[tuple[int, str]] = []

    def on_invalid_row(row) -> str:
        malformed.append((int(row.number) if row.number is not None else -1, row.text))
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(payload),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid_row),
            convert_options=pacsv.ConvertOptions(
                include_columns=list(columns.all),
                column_types={name: pa.string() for name in columns.all},
                strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, KeyError):
        # No usable header: every line of the message is malformed.
        lines = payload.decode("utf-8", errors="replace").splitlines()
        empty = pa.table({name: pa.array([], pa.string()) for name in columns.all})
        return empty, np.zeros(0, np.int64), [(i, t) for i, t in enumerate(lines, 1) if t]
    index = np.arange(table.num_rows, dtype=np.int64)
    return table, csv_line_numbers(index, [line for line, _ in malformed]), malformed


# --- per-series decisions ---------------------------------------------------------------


@dataclass
class Pending:
    """Points of one series waiting for the watermark: a part and its Beam arrival time."""

    arrival: int  # Beam element timestamp, microseconds
    part: SeriesPart


@dataclass
class Recent:
    """Hashes of a series' recently consumed points, to tell repeats from late points."""

    timestamp: np.ndarray  # int64 ns, sorted
    hashes: np.ndarray  # uint64

    @classmethod
    def empty(cls) -> Recent:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.uint64))


def raw_of(part: SeriesPart | Observations | Columns) -> np.ndarray:
    """Value and covariates of each row as ``[n, 1 + k]`` float64."""
    return np.column_stack([part.value, part.covariates]).astype(np.float64)


def all_new(part: SeriesPart, saved: forecasting.SeriesState | LastPoint | None) -> bool:
    """Whether every row of ``part`` is after the series' last consumed point (or the series is
    cold): then :func:`classify` accepts them all, and nothing else of the slot is needed."""
    return saved is None or len(part) == 0 or int(part.timestamp.min()) > saved.last_timestamp


def classify(
    part: SeriesPart, saved: forecasting.SeriesState | LastPoint | None, recent: Recent
) -> np.ndarray:
    """Decide each arriving row of a series: ``""`` (buffer it), ``duplicate`` (an exact repeat
    of a consumed point: ignored) or ``late`` (at or before the last consumed point: the series
    has been advanced past it). Repeats of points still buffered are resolved when consumed."""
    reasons = np.full(len(part), ACCEPTED, dtype=object)
    if all_new(part, saved):
        return reasons
    old = part.timestamp <= saved.last_timestamp
    raw = raw_of(part)
    hashes = forecasting.point_hashes(part.timestamp, raw)
    at = np.searchsorted(recent.timestamp, part.timestamp)
    inside = at < len(recent.timestamp)
    known = np.zeros(len(part), bool)
    known[inside] = (recent.timestamp[at[inside]] == part.timestamp[inside]) & (
        recent.hashes[at[inside]] == hashes[inside]
    )
    last = saved.last_raw.astype(np.float64)
    is_last = (part.timestamp == saved.last_timestamp) & np.all(raw == last[None, :], axis=1)
    reasons[old] = LATE
    reasons[old & (known | is_last)] = DUPLICATE
    return reasons


def remember(
    recent: Recent,
    consumed: Observations,
    last_timestamp: int,
    horizon: int,
    hashes: np.ndarray | None = None,
) -> Recent:
    """Add consumed points to ``recent`` and keep those within ``horizon`` ns of the last one
    (``hashes``: the consumed points' :func:`~rnncast.pipeline.core.forecasting.point_hashes`,
    when already computed)."""
    if hashes is None:
        hashes = forecasting.point_hashes(consumed.timestamp, raw_of(consumed))
    return remember_points(recent, consumed.timestamp, hashes, last_timestamp, horizon)


def remember_points(
    recent: Recent, added: np.ndarray, hashes: np.ndarray, last_timestamp: int, horizon: int
) -> Recent:
    """:func:`remember` of the points at ``added`` with their ``hashes``."""
    timestamp = np.concatenate([recent.timestamp, added])
    hashes = np.concatenate([recent.hashes, hashes])
    after = not len(recent.timestamp) or not len(added) or added[0] > recent.timestamp[-1]
    if after and (len(added) < 2 or (np.diff(added) > 0).all()):
        # Appended in order (recent is kept sorted): drop the oldest, nothing to sort.
        start = int(np.searchsorted(timestamp, last_timestamp - horizon, side="right"))
        return Recent(timestamp[start:], hashes[start:])
    keep = timestamp > last_timestamp - horizon
    order = np.argsort(timestamp[keep], kind="stable")
    return Recent(timestamp[keep][order], hashes[keep][order])


def cutoff(pending: list[Pending], fire: int, lateness: int) -> int | None:
    """The data time up to which a series is consumed when its timer fires at ``fire`` (µs):
    the newest point of every part that arrived at least ``lateness`` µs before; None when no
    part is due yet."""
    due = [p for p in pending if p.arrival + lateness <= fire and len(p.part)]
    if not due:
        return None
    return int(max(p.part.timestamp.max() for p in due))


def split_pending(
    pending: list[Pending | EncodedPending], until: int
) -> tuple[list[SeriesPart], list[Pending | EncodedPending]]:
    """Parts of every point at or before ``until`` (ns) to consume now, and the rest (a part
    still encoded whose points are all later stays as it is)."""
    take, keep = [], []
    for p in pending:
        if isinstance(p, EncodedPending):
            if p.first_timestamp() > until:
                keep.append(p)
                continue
            p = p.decode()
        now = p.part.timestamp <= until
        if now.all():  # the common case: the whole part is due
            if len(now):
                take.append(p.part)
            continue
        if now.any():
            take.append(part_subset(p.part, now))
        keep.append(Pending(p.arrival, part_subset(p.part, ~now)))
    return take, keep


def next_fire(pending: list[Pending], lateness: int) -> int | None:
    """When (µs) the series' timer must fire next for its buffered points."""
    return min(p.arrival for p in pending) + lateness if pending else None


def part_subset(part: SeriesPart, mask: np.ndarray) -> SeriesPart:
    return SeriesPart(
        part.source,
        part.row_number[mask],
        part.timestamp[mask],
        part.value[mask],
        part.covariates[mask],
    )


@dataclass
class Advance:
    """The outcome of consuming points of one series.

    ``work``: the model run to do (None when nothing advances); ``status``: what to emit
    (``full``/``incremental`` with the new state, ``too_short`` without; None: nothing);
    ``waiting``: the unique points of a cold series still too short to start (kept and
    consumed with later points); ``consumed``: the points the work consumes (for ``recent``);
    ``rejected``: dead-letter frames (duplicates, conflicts, off-grid points).
    """

    work: forecasting.Work | None
    status: str | None
    waiting: list[SeriesPart]
    consumed: Observations | None
    rejected: list[pd.DataFrame]


def advance(
    series_id: str,
    parts: list[SeriesPart],
    waiting: list[SeriesPart],
    saved: forecasting.SeriesState | None,
    model: forecasting.ModelInfo,
) -> Advance:
    """Consume ``parts`` (points after the last consumed one) and the points of a cold series
    still ``waiting``: de-duplicate them like the batch job, then prepare the model run with the
    saved state (incremental) or without (a cold start: ``full``, or ``too_short`` while a
    series unknown to the model has fewer than ``num_steps`` observed points)."""
    parts = [p for p in [*parts, *waiting] if len(p)]
    if not parts:
        return Advance(None, None, list(waiting), None, [])
    rows = series_lib.combine_parts(parts)
    unique, repeated = series_lib.deduplicate(rows)
    rejected = [
        rejected_observations(series_id, rows, positions, reason)
        for reason, positions in repeated.items()
        if len(positions)
    ]
    if len(unique) == 0:
        return Advance(None, None, [], None, rejected)
    outcome, off_grid, _ = forecasting.prepare(series_id, unique, saved, model, None)
    if isinstance(outcome, (forecasting.Work, forecasting.SeriesState)):
        if off_grid.any():
            rejected.append(
                rejected_observations(series_id, unique, np.flatnonzero(off_grid), "off_grid")
            )
        if isinstance(outcome, forecasting.SeriesState):  # every new point was off the grid
            return Advance(None, None, [], None, rejected)
        return Advance(outcome, outcome.status, [], unique.subset(~off_grid), rejected)
    # A cold series too short to scale: keep every unique point; its grid (and so which points
    # are off it) is decided over the whole history once it starts, as in a batch run.
    return Advance(None, forecasting.TOO_SHORT, parts_of(unique), None, rejected)


def parts_of(observations: Observations) -> list[SeriesPart]:
    """Observations back as one part per source file (provenance kept for dead letters)."""
    out = []
    for index in np.unique(observations.source_index):
        mask = observations.source_index == index
        out.append(
            SeriesPart(
                observations.sources[index],
                observations.row_number[mask],
                observations.timestamp[mask],
                observations.value[mask],
                observations.covariates[mask],
            )
        )
    return out


@dataclass(frozen=True)
class Columns:
    """One part per series, as columns, one series after another: series ``i``'s rows are
    ``offsets[i]:offsets[i + 1]`` of each array. How a buffered arrival is read back
    (:class:`PendingGroup`), and what a firing advances as columns (``step.py``)."""

    series_ids: list[str]
    sources: list[str]
    offsets: np.ndarray  # int64 [n + 1]
    row_number: np.ndarray  # int64 [N]
    timestamp: np.ndarray  # int64 ns [N]
    value: np.ndarray  # float64 [N]
    covariates: np.ndarray  # float64 [N, k]

    @classmethod
    def of(cls, parts: list[tuple[str, SeriesPart]]) -> Columns:
        """The columns of ``(series_id, part)`` pairs, in order."""
        if not parts:
            none = np.zeros(0, np.int64)
            return cls([], [], np.zeros(1, np.int64), none, none, np.zeros(0), np.zeros((0, 0)))
        series_parts = [part for _, part in parts]
        offsets = np.zeros(len(parts) + 1, np.int64)
        np.cumsum([len(part) for part in series_parts], out=offsets[1:])
        return cls(
            [series_id for series_id, _ in parts],
            [part.source for part in series_parts],
            offsets,
            *(
                np.concatenate([getattr(part, name) for part in series_parts])
                for name in ("row_number", "timestamp", "value", "covariates")
            ),
        )

    def __len__(self) -> int:
        return len(self.series_ids)

    def counts(self) -> np.ndarray:
        return self.offsets[1:] - self.offsets[:-1]

    def parts(self) -> list[tuple[str, SeriesPart]]:
        """Each series' ``(series_id, part)``, the part's arrays views of the columns."""
        bounds = self.offsets.tolist()
        row_number, timestamp, value = self.row_number, self.timestamp, self.value
        covariates = self.covariates
        return [
            (
                series_id,
                SeriesPart(source, row_number[a:b], timestamp[a:b], value[a:b], covariates[a:b]),
            )
            for series_id, source, a, b in zip(self.series_ids, self.sources, bounds, bounds[1:])
        ]

    def subset(self, index: list[int]) -> Columns:
        """Series ``index`` (in that order)."""
        if index == list(range(len(self))):
            return self
        at = np.asarray(index, np.int64)
        counts = self.counts()[at]
        offsets = np.zeros(len(at) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        rows = np.repeat(self.offsets[at] - offsets[:-1], counts) + np.arange(offsets[-1])
        return Columns(
            [self.series_ids[i] for i in index],
            [self.sources[i] for i in index],
            offsets,
            self.row_number[rows],
            self.timestamp[rows],
            self.value[rows],
            self.covariates[rows],
        )

    def by_series_id(self) -> Columns:
        """The series sorted by id (stable)."""
        ids = self.series_ids
        return self.subset(sorted(range(len(ids)), key=ids.__getitem__))


def advance_many(
    takes: dict[str, list[SeriesPart]], slots: dict[str, SeriesSlot], model: forecasting.ModelInfo
) -> tuple[dict[str, Advance], dict[str, np.ndarray]]:
    """:func:`advance` of every series due at one firing (``takes``: the parts each consumes;
    ``slots``: their slots). The common case (a saved series whose new points extend its grid
    one step each) is prepared for all series at once by
    :func:`~rnncast.pipeline.core.forecasting.extend_many`; the rest go through
    :func:`advance` one by one, with the same outcome. Returns the advances and, for the series
    prepared together, the hashes of their consumed points (for :func:`remember`)."""
    ids, saved, rows = [], [], []
    for series_id, parts in takes.items():
        slot = slots[series_id]
        parts = [p for p in parts if len(p)]
        if slot.saved is None or slot.waiting or not parts:
            continue
        if len(parts) > 1:  # the provenance order of combine_parts (and so of the dead letters)
            parts = sorted(parts, key=lambda p: (p.source, int(p.row_number[0])))
        ids.append(series_id)
        saved.append(slot.saved)
        rows.append(parts)
    out: dict[str, Advance] = {}
    hashes_of: dict[str, np.ndarray] = {}
    if ids:
        flat = [p for parts in rows for p in parts]
        counts = np.array([sum(len(p) for p in parts) for parts in rows], np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        points = Columns.of([("", part) for part in flat])
        timestamp, raw = points.timestamp, raw_of(points)
        works, hashes = forecasting.extend_many(ids, saved, timestamp, raw, offsets, model)
        source_index = np.zeros(len(timestamp), np.int32)  # sliced per series (views)
        row_number = np.zeros(len(timestamp), np.int64)
        bounds = offsets.tolist()
        for i, (series_id, work) in enumerate(zip(ids, works)):
            if work is None:
                continue
            a, b = bounds[i], bounds[i + 1]
            consumed = series_lib.Observations(
                timestamp[a:b], raw[a:b, 0], raw[a:b, 1:], source_index[a:b], row_number[a:b],
                ("",),
            )  # fmt: skip
            out[series_id] = Advance(work, work.status, [], consumed, [])
            hashes_of[series_id] = hashes[a:b]
    for series_id, parts in takes.items():
        if series_id not in out:
            slot = slots[series_id]
            out[series_id] = advance(series_id, parts, slot.waiting, slot.saved, model)
    return out, hashes_of


def latest_per_series(
    states: list[forecasting.SeriesState],
) -> dict[str, forecasting.SeriesState]:
    """The newest state (by last consumed timestamp) of each series."""
    out: dict[str, forecasting.SeriesState] = {}
    for state in states:
        old = out.get(state.series_id)
        if old is None or state.last_timestamp >= old.last_timestamp:
            out[state.series_id] = state
    return out


# --- shards: many series per key, advanced together ------------------------------------


def shard_of(series_id: str, shards: int) -> int:
    """The shard (0..shards-1) of a series: CRC-32 of its id, so the same in every process and
    run (Python's ``hash`` of a str is salted per process)."""
    return zlib.crc32(series_id.encode("utf-8")) % shards


@dataclass
class SeriesSlot:
    """What a shard keeps of one series between firings: its saved RNN state (None: cold),
    the hashes of recently consumed points, the points of a cold series still too short to
    start, and the forecast held for its window end (``--emit window``)."""

    saved: forecasting.SeriesState | None = None
    recent: Recent = field(default_factory=Recent.empty)
    waiting: list[SeriesPart] = field(default_factory=list)
    latest: forecasting.SeriesState | None = None
    latest_status: str | None = None


def take_due(
    pending: list[Pending | EncodedPending], fire: int, lateness: int
) -> tuple[list[SeriesPart], list[Pending | EncodedPending], int | None]:
    """One series' firing at ``fire`` (µs): the parts to consume now, the pending parts that
    stay, and when (µs) the series is due next (None: nothing pending). Parts may come still
    encoded: only those due now, or holding points that are, are decoded (when many files
    land at once, a series has a part per file buffered, and each firing takes one)."""
    ready = [
        p.decode() if isinstance(p, EncodedPending) and p.arrival + lateness <= fire else p
        for p in pending
    ]
    if len(ready) == 1 and ready[0].arrival + lateness <= fire and len(ready[0].part):
        return [ready[0].part], [], None  # the common case: one part, due, taken whole
    until = cutoff([p for p in ready if isinstance(p, Pending)], fire, lateness)
    if until is None:
        take, keep = [], list(pending)
    else:
        take, keep = split_pending(ready, until)
    return take, keep, next_fire(keep, lateness)


def due_series(times: dict[str, int], at: int) -> list[str]:
    """The series whose time (next flush, window end) is at or before ``at``, sorted by id."""
    return sorted(series_id for series_id, time in times.items() if time <= at)


def earliest(times: dict[str, int]) -> int | None:
    """The earliest of a shard's per-series times: when the shard's timer must fire."""
    return min(times.values()) if times else None


def parse_duration(text: str, flag: str) -> int:
    """A duration flag (``1h``, ``90s``, ``0``) in microseconds; ValueError names the flag."""
    try:
        value = pd.Timedelta(text if str(text).strip() != "0" else "0s")
    except (ValueError, TypeError) as err:
        raise ValueError(f"{flag} {text!r}: not a duration; write e.g. 30s, 10min, 1h, 1d") from err
    if value < pd.Timedelta(0):
        raise ValueError(f"{flag} {text!r}: must not be negative")
    return int(value.value // 1000)


# --- plain binary encodings (Beam state coders; no pickle) ---------------------------------


# Binary, no JSON: a firing decodes and re-encodes every slot it touches, and per-series JSON
# headers were most of the step's Python cost. Layouts are fixed per record (little-endian);
# they are Beam state of a running job only (snapshots are Parquet), so no version is kept.
_STATE = struct.Struct("<qqQdd5I")  # first, last, digest, loc, scale; len(last_raw), S, U, H, Q
_PART = struct.Struct("<qII")  # arrival, rows, covariates per row
_TEXT = struct.Struct("<I")


def _text(value: str) -> bytes:
    data = value.encode("utf-8")
    return _TEXT.pack(len(data)) + data


def _read_text(data, offset: int) -> tuple[str, int]:
    (size,) = _TEXT.unpack_from(data, offset)
    offset += _TEXT.size
    return str(data[offset : offset + size], "utf-8"), offset + size


def encode_part(part: SeriesPart, arrival: int = 0) -> bytes:
    n = len(part.value)
    covariates = np.asarray(part.covariates, np.float64).reshape(n, -1)
    return b"".join(
        [
            _PART.pack(int(arrival), n, covariates.shape[1]),
            _text(part.source),
            np.asarray(part.row_number, np.int64).tobytes(),
            np.asarray(part.timestamp, np.int64).tobytes(),
            np.asarray(part.value, np.float64).tobytes(),
            np.ascontiguousarray(covariates).tobytes(),
        ]
    )


def decode_part(data: bytes) -> tuple[SeriesPart, int]:
    # Views of the bytes, no copies (see decode_recent).
    arrival, n, k = _PART.unpack_from(data, 0)
    source, offset = _read_text(data, _PART.size)
    row_number = np.frombuffer(data, np.int64, n, offset)
    timestamp = np.frombuffer(data, np.int64, n, offset + 8 * n)
    value = np.frombuffer(data, np.float64, n, offset + 16 * n)
    covariates = np.frombuffer(data, np.float64, n * k, offset + 24 * n).reshape(n, k)
    return SeriesPart(source, row_number, timestamp, value, covariates), arrival


def encode_state(state: forecasting.SeriesState) -> bytes:
    last_raw = np.asarray(state.last_raw, np.float64).ravel()
    rnn = np.asarray(state.state, np.float32)
    rnn = rnn.reshape(1, -1) if rnn.ndim == 1 else rnn
    point = np.asarray(state.point, np.float64).ravel()
    quantiles = np.asarray(state.quantiles, np.float64).reshape(len(point), -1)
    head = _STATE.pack(
        int(state.first_timestamp),
        int(state.last_timestamp),
        int(state.digest),
        float(state.loc),
        float(state.scale),
        len(last_raw),
        *rnn.shape,
        *quantiles.shape,
    )
    return b"".join(
        [
            head,
            _text(state.series_id),
            _text(state.scaling),
            _text(state.model_fingerprint),
            last_raw.tobytes(),
            rnn.tobytes(),  # tobytes() writes C order whatever the layout
            point.tobytes(),
            quantiles.tobytes(),
        ]
    )


def decode_state(data: bytes) -> forecasting.SeriesState:
    # Views of the bytes, no copies (see decode_recent).
    first, last, digest, loc, scale, width, S, U, H, Q = _STATE.unpack_from(data, 0)
    series_id, offset = _read_text(data, _STATE.size)
    scaling, offset = _read_text(data, offset)
    fingerprint, offset = _read_text(data, offset)
    last_raw = np.frombuffer(data, np.float64, width, offset)
    offset += 8 * width
    state = np.frombuffer(data, np.float32, S * U, offset).reshape(S, U)
    offset += 4 * S * U
    point = np.frombuffer(data, np.float64, H, offset)
    quantiles = np.frombuffer(data, np.float64, H * Q, offset + 8 * H).reshape(H, Q)
    return forecasting.SeriesState(
        series_id=series_id,
        first_timestamp=first,
        last_timestamp=last,
        last_raw=last_raw,
        digest=digest,
        loc=loc,
        scale=scale,
        scaling=scaling,
        state=state,
        point=point,
        quantiles=quantiles,
        model_fingerprint=fingerprint,
    )


def encode_recent(recent: Recent) -> bytes:
    return (
        np.asarray(recent.timestamp, np.int64).tobytes()
        + np.asarray(recent.hashes, np.uint64).tobytes()
    )


def decode_recent(data: bytes) -> Recent:
    # Read-only views of the bytes, no copies (as every decoder here: a firing decodes the
    # slots it touches; nothing writes into a decoded array, and numpy refuses if it tries).
    n = len(data) // 16
    return Recent(np.frombuffer(data, np.int64, n), np.frombuffer(data, np.uint64, n, 8 * n))


def _frame(blobs: list[bytes]) -> bytes:
    """Length-prefixed concatenation of byte strings."""
    return b"".join(len(b).to_bytes(4, "little") + b for b in blobs)


def _unframe(data: bytes | memoryview) -> list[memoryview]:
    """The byte strings of :func:`_frame`, as views into ``data`` (no copies: a shard's book
    is read whole for every arrival, so copying each slot would cost O(shard size))."""
    data = memoryview(data)
    out, offset, end, unpack = [], 0, len(data), _TEXT.unpack_from
    while offset < end:
        (size,) = unpack(data, offset)
        out.append(data[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return out


_SLOT_STATUS = (None, *forecasting.STATUSES)


def encode_slot(slot: SeriesSlot) -> bytes:
    head = bytes(
        [slot.saved is not None, slot.latest is not None, _SLOT_STATUS.index(slot.latest_status)]
    )
    blobs = [head, encode_recent(slot.recent)]
    blobs += [encode_state(s) for s in (slot.saved, slot.latest) if s is not None]
    blobs += [encode_part(p) for p in slot.waiting]
    return _frame(blobs)


def decode_slot(data: bytes) -> SeriesSlot:
    head, recent, *rest = _unframe(data)
    has_saved, has_latest, status = head[0], head[1], head[2]
    saved = decode_state(rest.pop(0)) if has_saved else None
    latest = decode_state(rest.pop(0)) if has_latest else None
    waiting = [decode_part(blob)[0] for blob in rest]
    return SeriesSlot(saved, decode_recent(recent), waiting, latest, _SLOT_STATUS[status])


class LastPoint(NamedTuple):
    """The last consumed point of a saved series: all :func:`classify` reads of its state."""

    last_timestamp: int
    last_raw: np.ndarray


# A time per series id as bytes: the count, the times (int64, by id), then the ids joined by
# 0xFF (never in UTF-8, which encodes every id: ids may hold any other character). Binary, not
# JSON: every arrival and firing of a shard reads and writes its flush times (half the cost).
_IDS_SEPARATOR = "\udcff"  # 0xFF under "surrogateescape"


def encode_times(times: dict[str, int]) -> bytes:
    ids = sorted(times)
    return b"".join(
        [
            _TEXT.pack(len(ids)),
            np.array([times[series_id] for series_id in ids], "<i8").tobytes(),
            _IDS_SEPARATOR.join(ids).encode("utf-8", "surrogateescape"),
        ]
    )


def decode_times(data: bytes) -> dict[str, int]:
    (count,) = _TEXT.unpack_from(data, 0)
    if not count:
        return {}
    times = np.frombuffer(data, "<i8", count, _TEXT.size).tolist()
    text = bytes(data[_TEXT.size + 8 * count :]).decode("utf-8", "surrogateescape")
    return dict(zip(text.split(_IDS_SEPARATOR), times))


@dataclass(frozen=True)
class EncodedPending:
    """A buffered part as stored (:func:`encode_part`'s bytes) with its arrival time read from
    the header: a firing reads every part buffered in its shard but decodes only those of the
    series due; the others go back into the buffer as they came."""

    arrival: int
    data: bytes | memoryview

    def decode(self) -> Pending:
        part, arrival = decode_part(self.data)
        return Pending(arrival, part)

    def first_timestamp(self) -> int:
        """The earliest timestamp (ns) of the part's points, read without decoding it."""
        _, n, _ = _PART.unpack_from(self.data, 0)
        (size,) = _TEXT.unpack_from(self.data, _PART.size)  # the source's name
        start = _PART.size + _TEXT.size + size + 8 * n  # past the row numbers
        return int(np.frombuffer(self.data, np.int64, n, start).min()) if n else 2**63 - 1


_GROUP = struct.Struct("<qII")  # arrival, parts, covariates per row


def _group_head(data: bytes | memoryview):
    """A :class:`PendingGroup`'s arrival, covariate width, lengths (ids, sources, rows) and
    series ids, and where its sources start."""
    arrival, count, width = _GROUP.unpack_from(data, 0)
    lengths = np.frombuffer(data, "<u4", 3 * count, _GROUP.size).reshape(3, count).tolist()
    offset, ids = _GROUP.size + 12 * count, []
    for size in lengths[0]:
        ids.append(str(data[offset : offset + size], "utf-8"))
        offset += size
    return arrival, width, lengths, ids, offset


@dataclass(frozen=True)
class PendingGroup:
    """The parts of a shard's series that arrived together (one file or message), buffered
    as one item: one encoding per arrival, not one per series (each costs microseconds of
    Python, in the stream's step and in the runner's state), read back as views."""

    arrival: int  # Beam element timestamp, microseconds
    parts: list[tuple[str, SeriesPart]]  # (series_id, part), in arrival order

    def encode(self) -> bytes:
        parts = [part for _, part in self.parts]
        ids = [series_id.encode("utf-8") for series_id, _ in self.parts]
        sources = [part.source.encode("utf-8") for part in parts]
        width = np.shape(parts[0].covariates)[-1] if parts else 0
        lengths = [list(map(len, ids)), list(map(len, sources)), [len(p.value) for p in parts]]
        blobs = [
            _GROUP.pack(int(self.arrival), len(parts), width),
            np.array(lengths, "<u4").reshape(3, len(parts)).tobytes(),
            *ids,
            *sources,
        ]
        if parts:  # each column whole (one concatenation, converted as it goes)
            blobs += [
                np.concatenate([p.row_number for p in parts], dtype=np.int64).tobytes(),
                np.concatenate([p.timestamp for p in parts], dtype=np.int64).tobytes(),
                np.concatenate([p.value for p in parts], dtype=np.float64).tobytes(),
            ]
        if parts and width:
            covariates = [
                np.asarray(p.covariates, np.float64).reshape(len(p.value), width) for p in parts
            ]
            blobs.append(np.concatenate(covariates).tobytes())
        return b"".join(blobs)

    @classmethod
    def decode(cls, data: bytes | memoryview) -> PendingGroup:
        return cls(_GROUP.unpack_from(data, 0)[0], _group_columns(data).parts())


def _group_columns(data: bytes | memoryview) -> Columns:
    """A :class:`PendingGroup`'s parts as :class:`Columns`, views of ``data``."""
    data = memoryview(data)
    _, width, lengths, ids, offset = _group_head(data)
    sources = []
    for size in lengths[1]:
        sources.append(str(data[offset : offset + size], "utf-8"))
        offset += size
    bounds = list(itertools.accumulate(lengths[2], initial=0))
    offsets, total = np.array(bounds, np.int64), bounds[-1]
    return Columns(
        ids,
        sources,
        offsets,
        np.frombuffer(data, np.int64, total, offset),
        np.frombuffer(data, np.int64, total, offset + 8 * total),
        np.frombuffer(data, np.float64, total, offset + 16 * total),
        np.frombuffer(data, np.float64, total * width, offset + 24 * total).reshape(total, width),
    )


@dataclass(frozen=True)
class EncodedGroup:
    """A buffered :class:`PendingGroup` as stored: a firing reads its series ids, and decodes
    its parts only when some of its series are due (else it goes back as it came)."""

    data: bytes | memoryview

    def series_ids(self) -> list[str]:
        return _group_head(self.data)[3]

    def decode(self) -> PendingGroup:
        return PendingGroup.decode(self.data)

    def arrival(self) -> int:
        return _GROUP.unpack_from(self.data, 0)[0]

    def columns(self) -> Columns:
        """Its parts as :class:`Columns` (no object per part)."""
        return _group_columns(self.data)


def encode_keyed_part(
    series_id: str, item: Pending | EncodedPending | PendingGroup | EncodedGroup
) -> bytes:
    """A shard's buffered item: one series' part (``series_id``), or the group of parts that
    arrived together (``series_id`` empty: ids are never empty)."""
    if isinstance(item, (PendingGroup, EncodedGroup)):
        return _frame([b"", item.data if isinstance(item, EncodedGroup) else item.encode()])
    data = item.data if isinstance(item, EncodedPending) else encode_part(item.part, item.arrival)
    return _frame([series_id.encode("utf-8"), data])


def decode_keyed_part_lazily(data: bytes) -> tuple[str, EncodedPending | EncodedGroup]:
    series_id, blob = _unframe(data)
    if not len(series_id):
        return "", EncodedGroup(blob)
    arrival = _PART.unpack_from(blob, 0)[0]
    return bytes(series_id).decode("utf-8"), EncodedPending(arrival, blob)


def decode_keyed_part(data: bytes) -> tuple[str, Pending]:
    series_id, item = decode_keyed_part_lazily(data)
    return series_id, item.decode()
