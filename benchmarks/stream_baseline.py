"""FROZEN COPY of rnncast.pipeline.core.streaming at commit c55dbfc (before the batched
flush and the binary slot codec), kept so bench_stream.py can time the old steps with their own
state encodings. Not used by the package.

Streaming forecast logic: per-series buffering, duplicate and lateness decisions, and advancing
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
import json
import zlib
from dataclasses import dataclass, field

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


def raw_of(part: SeriesPart | Observations) -> np.ndarray:
    """Value and covariates of each row as ``[n, 1 + k]`` float64."""
    return np.column_stack([part.value, part.covariates]).astype(np.float64)


def classify(part: SeriesPart, saved: forecasting.SeriesState | None, recent: Recent) -> np.ndarray:
    """Decide each arriving row of a series: ``""`` (buffer it), ``duplicate`` (an exact repeat
    of a consumed point: ignored) or ``late`` (at or before the last consumed point: the series
    has been advanced past it). Repeats of points still buffered are resolved when consumed."""
    reasons = np.full(len(part), ACCEPTED, dtype=object)
    if saved is None or len(part) == 0:
        return reasons
    old = part.timestamp <= saved.last_timestamp
    if not old.any():
        return reasons
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


def remember(recent: Recent, consumed: Observations, last_timestamp: int, horizon: int) -> Recent:
    """Add consumed points to ``recent`` and keep those within ``horizon`` ns of the last one."""
    timestamp = np.concatenate([recent.timestamp, consumed.timestamp])
    hashes = np.concatenate(
        [recent.hashes, forecasting.point_hashes(consumed.timestamp, raw_of(consumed))]
    )
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


def split_pending(pending: list[Pending], until: int) -> tuple[list[SeriesPart], list[Pending]]:
    """Parts of every point at or before ``until`` (ns) to consume now, and the rest."""
    take, keep = [], []
    for p in pending:
        now = p.part.timestamp <= until
        if now.any():
            take.append(part_subset(p.part, now))
        if (~now).any():
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
    pending: list[Pending], fire: int, lateness: int
) -> tuple[list[SeriesPart], list[Pending], int | None]:
    """One series' firing at ``fire`` (µs): the parts to consume now, the pending parts that
    stay, and when (µs) the series is due next (None: nothing pending)."""
    until = cutoff(pending, fire, lateness)
    if until is None:
        take, keep = [], list(pending)
    else:
        take, keep = split_pending(pending, until)
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


def _pack(meta: dict, arrays: list[np.ndarray]) -> bytes:
    header = dict(meta)
    header["_arrays"] = [[a.dtype.str, list(a.shape)] for a in arrays]
    head = json.dumps(header, sort_keys=True).encode("utf-8")
    body = b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)
    return len(head).to_bytes(4, "little") + head + body


def _unpack(data: bytes) -> tuple[dict, list[np.ndarray]]:
    size = int.from_bytes(data[:4], "little")
    meta = json.loads(bytes(data[4 : 4 + size]).decode("utf-8"))
    offset = 4 + size
    arrays = []
    for dtype, shape in meta.pop("_arrays"):
        dtype = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        arrays.append(np.frombuffer(data, dtype, count, offset).reshape(shape).copy())
        offset += count * dtype.itemsize
    return meta, arrays


def encode_part(part: SeriesPart, arrival: int = 0) -> bytes:
    return _pack(
        {"source": part.source, "arrival": int(arrival)},
        [
            np.asarray(part.row_number, np.int64),
            np.asarray(part.timestamp, np.int64),
            np.asarray(part.value, np.float64),
            np.asarray(part.covariates, np.float64).reshape(len(part.value), -1),
        ],
    )


def decode_part(data: bytes) -> tuple[SeriesPart, int]:
    meta, (row_number, timestamp, value, covariates) = _unpack(data)
    return SeriesPart(meta["source"], row_number, timestamp, value, covariates), meta["arrival"]


def encode_state(state: forecasting.SeriesState) -> bytes:
    return _pack(
        {
            "series_id": state.series_id,
            "first_timestamp": int(state.first_timestamp),
            "last_timestamp": int(state.last_timestamp),
            "digest": f"{state.digest:016x}",
            "loc": float(state.loc),
            "scale": float(state.scale),
            "scaling": state.scaling,
            "model_fingerprint": state.model_fingerprint,
        },
        [
            np.asarray(state.last_raw, np.float64),
            np.asarray(state.state, np.float32),
            np.asarray(state.point, np.float64),
            np.asarray(state.quantiles, np.float64),
        ],
    )


def decode_state(data: bytes) -> forecasting.SeriesState:
    meta, (last_raw, state, point, quantiles) = _unpack(data)
    return forecasting.SeriesState(
        series_id=meta["series_id"],
        first_timestamp=meta["first_timestamp"],
        last_timestamp=meta["last_timestamp"],
        last_raw=last_raw,
        digest=int(meta["digest"], 16),
        loc=meta["loc"],
        scale=meta["scale"],
        scaling=meta["scaling"],
        state=state,
        point=point,
        quantiles=quantiles,
        model_fingerprint=meta["model_fingerprint"],
    )


def encode_recent(recent: Recent) -> bytes:
    return _pack({}, [recent.timestamp.astype(np.int64), recent.hashes.astype(np.uint64)])


def decode_recent(data: bytes) -> Recent:
    _, (timestamp, hashes) = _unpack(data)
    return Recent(timestamp, hashes)


def _frame(blobs: list[bytes]) -> bytes:
    """Length-prefixed concatenation of byte strings."""
    return b"".join(len(b).to_bytes(4, "little") + b for b in blobs)


def _unframe(data: bytes | memoryview) -> list[memoryview]:
    """The byte strings of :func:`_frame`, as views into ``data`` (no copies: a shard's book
    is read whole for every arrival, so copying each slot would cost O(shard size))."""
    data = memoryview(data)
    out, offset = [], 0
    while offset < len(data):
        size = int.from_bytes(data[offset : offset + 4], "little")
        out.append(data[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return out


def encode_slot(slot: SeriesSlot) -> bytes:
    meta = {
        "saved": slot.saved is not None,
        "latest": slot.latest is not None,
        "latest_status": slot.latest_status,
    }
    blobs = [json.dumps(meta, sort_keys=True).encode("utf-8"), encode_recent(slot.recent)]
    blobs += [encode_state(s) for s in (slot.saved, slot.latest) if s is not None]
    blobs += [encode_part(p) for p in slot.waiting]
    return _frame(blobs)


def decode_slot(data: bytes) -> SeriesSlot:
    head, recent, *rest = _unframe(data)
    meta = json.loads(bytes(head).decode("utf-8"))
    saved = decode_state(rest.pop(0)) if meta["saved"] else None
    latest = decode_state(rest.pop(0)) if meta["latest"] else None
    waiting = [decode_part(blob)[0] for blob in rest]
    return SeriesSlot(saved, decode_recent(recent), waiting, latest, meta["latest_status"])


def encode_book(book: dict[str, bytes]) -> bytes:
    """A shard's encoded slots by series id (sorted: the same dict, the same bytes). Slots stay
    encoded inside, so a firing decodes and re-encodes only the series it touches."""
    blobs = []
    for series_id in sorted(book):
        blobs += [series_id.encode("utf-8"), book[series_id]]
    return _frame(blobs)


def decode_book(data: bytes) -> dict[str, bytes | memoryview]:
    blobs = _unframe(data)
    return {bytes(blobs[i]).decode("utf-8"): blobs[i + 1] for i in range(0, len(blobs), 2)}


def encode_times(times: dict[str, int]) -> bytes:
    return json.dumps(times, sort_keys=True, separators=(",", ":")).encode("utf-8")


def decode_times(data: bytes) -> dict[str, int]:
    return json.loads(data.decode("utf-8"))


def encode_keyed_part(series_id: str, item: Pending) -> bytes:
    return _frame([series_id.encode("utf-8"), encode_part(item.part, item.arrival)])


def decode_keyed_part(data: bytes) -> tuple[str, Pending]:
    series_id, blob = _unframe(data)
    part, arrival = decode_part(blob)
    return bytes(series_id).decode("utf-8"), Pending(arrival, part)
