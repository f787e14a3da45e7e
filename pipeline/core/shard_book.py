"""A shard's series slots as columns: what the stream's stateful step keeps per key.

A key of ``rnncast stream`` holds every series of one shard (see
:func:`rnncast.pipeline.core.streaming.shard_of`). Each firing reads the shard's book, advances
the series due and writes the book back, so the cost of reading and writing it is paid per
firing, for every series touched. Stored per series (one encoded slot each), that was ~20 µs
of Python per series and firing (decode, re-encode, look-up), a third of the step's cost
(issue 16). Here a book is one array per field, rows sorted by series id:

- the saved state's fields (timestamps, digest, scaling, last values, RNN state, forecast)
  as fixed-width columns, for every series whose state has the book's shapes (one model: all);
- the recently consumed points' times and hashes as one ragged column (:class:`Ragged`);
- the rest, rare (the points of a cold series still too short to start, the forecast held
  for its window end under ``--emit window``, a state of another shape), as an encoded
  :class:`~rnncast.pipeline.core.streaming.SeriesSlot` per series in a ragged byte column.

Reading a book is one ``np.frombuffer`` per column (views, no copies), whatever its size;
looking a series up is a binary search over the ids' fixed-width bytes; writing it back
replaces the changed rows of every column at once (:meth:`ShardBook.updated`).

Plain bytes, no pickle; the layout is Beam state of a running job only (snapshots are
Parquet), so no version is kept. The same slots give the same bytes.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

import numpy as np

from rnncast.pipeline.core import forecasting, streaming

# n, id width, last-value width W, state S x U, horizon H, quantiles Q, strings, recent points,
# extra bytes.
_HEAD = struct.Struct("<10I")
_TERMINATOR = b"\xff"  # never in UTF-8: ids never end in NUL, which fixed-width bytes drop
SAVED = 1  # flags: the row's saved state is in the record
EXTRA = 2  # the row has an encoded remainder (waiting points, held forecast, odd state)
_POINT = np.dtype([("timestamp", "<i8"), ("hash", "<u8")])  # a recently consumed point
_BYTE = np.dtype(np.uint8)
_EARLIEST = np.iinfo(np.int64).min  # (np.iinfo costs microseconds a call)


@dataclass(frozen=True)
class Ragged:
    """Rows of different lengths: row ``i`` is ``values[offsets[i]:offsets[i + 1]]``."""

    offsets: np.ndarray  # int64 [n + 1]
    values: np.ndarray

    @classmethod
    def empty(cls, n: int, dtype: np.dtype) -> Ragged:
        return cls(np.zeros(n + 1, np.int64), np.zeros(0, dtype))

    def row(self, i: int) -> np.ndarray:
        return self.values[int(self.offsets[i]) : int(self.offsets[i + 1])]

    def gathered(
        self, source: np.ndarray | None, rows: list[int], values: np.ndarray, lengths: list[int]
    ) -> Ragged:
        """New rows: row ``rows[k]`` is the ``k``-th piece of ``values`` (pieces of
        ``lengths``, in order), every other row ``j`` old row ``source[j]`` (``source``
        None: the same rows). Vectorized over the rows kept."""
        count = len(self.offsets) - 1 if source is None else len(source)
        piece_lengths = np.array(lengths, np.int64)
        if len(rows) == count and rows == sorted(rows):  # every row new, in order
            offsets = np.zeros(count + 1, np.int64)
            np.cumsum(piece_lengths, out=offsets[1:])
            return Ragged(offsets, values)
        if source is None:
            old_lengths = np.diff(self.offsets)
            old_starts = self.offsets[:-1]
        elif len(self.offsets) > 1:
            at = np.maximum(source, 0)  # added rows (-1) all come as pieces
            old_lengths, old_starts = np.diff(self.offsets)[at], self.offsets[:-1][at]
        else:
            old_lengths = old_starts = np.zeros(count, np.int64)
        row_lengths, starts = old_lengths.copy(), old_starts.copy()
        piece_starts = np.zeros(len(rows), np.int64)
        np.cumsum(piece_lengths[:-1], out=piece_starts[1:])
        row_lengths[rows] = piece_lengths
        starts[rows] = len(self.values) + piece_starts
        offsets = np.zeros(count + 1, np.int64)
        np.cumsum(row_lengths, out=offsets[1:])
        index = np.repeat(starts - offsets[:-1], row_lengths) + np.arange(offsets[-1])
        return Ragged(offsets, np.concatenate([self.values, values])[index])


@dataclass(frozen=True)
class Shapes:
    """The fixed widths of a book's state fields."""

    width: int = 0  # W: value and covariates
    layers: int = 0  # S
    units: int = 0  # U
    horizon: int = 0  # H
    quantiles: int = 0  # Q

    @classmethod
    def of(cls, state: forecasting.SeriesState) -> Shapes:
        rnn, quantiles = state.state, state.quantiles
        if getattr(rnn, "ndim", 0) == 2 and getattr(quantiles, "ndim", 0) == 2:  # the usual
            return cls(np.size(state.last_raw), *rnn.shape, *quantiles.shape)
        rnn = np.asarray(rnn)
        rnn = rnn.reshape(1, -1) if rnn.ndim == 1 else rnn
        horizon = np.size(state.point)
        quantiles = np.asarray(quantiles).reshape(horizon, -1)
        return cls(np.size(state.last_raw), *rnn.shape, horizon, quantiles.shape[1])

    def fit(self, state: forecasting.SeriesState) -> bool:
        """Whether ``state``'s arrays have these shapes (so it can be stored in a record)."""
        try:  # the usual: arrays as SeriesState documents them
            return (
                state.state.shape == (self.layers, self.units)
                and state.quantiles.shape == (self.horizon, self.quantiles)
                and state.last_raw.size == self.width
                and state.point.size == self.horizon
            )
        except AttributeError:
            return Shapes.of(state) == self

    def record(self) -> np.dtype:
        """One series' fixed-width fields (little-endian, packed)."""
        return _record(self)


@functools.lru_cache(maxsize=64)
def _record(shapes: Shapes) -> np.dtype:
    # One dtype object per shapes: numpy copies records between arrays of the very same
    # dtype as bytes, but between equal dtypes built apart field by field (~10x slower).
    return np.dtype(
        [
            ("flags", "u1"),
            ("first", "<i8"),
            ("last", "<i8"),
            ("digest", "<u8"),
            ("loc", "<f8"),
            ("scale", "<f8"),
            ("scaling", "<u4"),  # index into the book's strings
            ("fingerprint", "<u4"),
            ("last_raw", "<f8", (shapes.width,)),
            ("state", "<f4", (shapes.layers, shapes.units)),
            ("point", "<f8", (shapes.horizon,)),
            ("quantiles", "<f8", (shapes.horizon, shapes.quantiles)),
        ]
    )


def _blocks_remembered(
    held: np.ndarray, timestamp: np.ndarray, hashes: np.ndarray, counts: np.ndarray, since
) -> Ragged | None:
    """:meth:`ShardBook.advanced`'s recent points when every row held ``held [n, k]`` and
    gains as many new points (None: the counts differ): row by row, old then new, those
    after ``since``."""
    n = len(held)
    if not n or (counts != counts[0]).any():
        return None
    points = np.empty((n, held.shape[1] + int(counts[0])), _POINT)
    points[:, : held.shape[1]] = held
    added = points[:, held.shape[1] :]
    added["timestamp"] = timestamp.reshape(n, -1)
    added["hash"] = hashes.reshape(n, -1)
    keep = points["timestamp"] > np.asarray(since, np.int64)[:, None]
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(keep.sum(axis=1), out=offsets[1:])
    return Ragged(offsets, points[keep])


class ShardBook:
    """A shard's :class:`~rnncast.pipeline.core.streaming.SeriesSlot` per series id, as
    columns (see the module's docstring). Immutable: :meth:`updated` returns a new book."""

    def __init__(
        self,
        keys: np.ndarray,
        records: np.ndarray,
        strings: tuple[str, ...],
        shapes: Shapes,
        recent: Ragged,
        extra: Ragged,
    ):
        self._keys = keys  # fixed-width bytes: UTF-8 id + terminator, sorted
        self._records = records  # [n] of shapes.record()
        self._strings = strings
        self.shapes = shapes
        self._recent = recent  # of _POINT
        self._extra = extra  # of bytes: an encoded SeriesSlot, or none

    # --- reading ---------------------------------------------------------------------------

    @classmethod
    def empty(cls) -> ShardBook:
        shapes = Shapes()
        return cls(
            np.zeros(0, "S1"),
            np.zeros(0, shapes.record()),
            (),
            shapes,
            Ragged.empty(0, _POINT),
            Ragged.empty(0, _BYTE),
        )

    def __len__(self) -> int:
        return len(self._keys)

    def ids(self) -> list[str]:
        return [key[:-1].decode("utf-8") for key in self._keys.tolist()]

    def rows(self, series_ids: list[str]) -> np.ndarray:
        """The row of each series (-1 where the book has none): one binary search for all."""
        if not len(self._keys) or not series_ids:
            return np.full(len(series_ids), -1, np.int64)
        # The probes in the book's width (searching and comparing like types is several times
        # cheaper): a longer id, cut there, keeps no terminator, so it matches no key.
        keys = np.array([s.encode("utf-8") + _TERMINATOR for s in series_ids], self._keys.dtype)
        at = np.searchsorted(self._keys, keys).astype(np.int64, copy=False)
        np.minimum(at, len(self._keys) - 1, out=at)
        at[self._keys[at] != keys] = -1
        return at

    def last_point(self, row: int) -> streaming.LastPoint | forecasting.SeriesState | None:
        """What :func:`~rnncast.pipeline.core.streaming.classify` reads of the row's saved
        state (None: a cold series)."""
        if row < 0:
            return None
        record = self._records[row]
        if record["flags"] & SAVED:
            return streaming.LastPoint(int(record["last"]), record["last_raw"])
        return self._remainder(row).saved

    def all_new(self, rows: np.ndarray, parts: list) -> np.ndarray:
        """Per part of the series at ``rows``: True where the row's record holds a saved
        state and every point of the part is after its last consumed one (so
        :func:`~rnncast.pipeline.core.streaming.classify` accepts them all); False where that
        is not so or not known from the records (a cold series, one not in the book, an
        empty part): the caller classifies those one by one."""
        rows = np.asarray(rows, np.int64)
        sizes = [len(part.timestamp) for part in parts]
        if not len(parts) or 0 in sizes or not len(self._keys):
            return np.zeros(len(parts), bool)
        timestamps = np.concatenate([part.timestamp for part in parts])
        if len(timestamps) == len(parts):  # a point each (a stream's tick)
            earliest = timestamps
        else:
            starts = np.zeros(len(parts), np.int64)
            np.cumsum(sizes[:-1], out=starts[1:])
            earliest = np.minimum.reduceat(timestamps, starts)
        at = np.maximum(rows, 0)
        saved = (rows >= 0) & (self._records["flags"][at] & SAVED).astype(bool)
        return saved & (earliest > self._records["last"][at])

    def recent(self, row: int) -> streaming.Recent:
        if row < 0:
            return streaming.Recent.empty()
        points = self._recent.row(row)
        return streaming.Recent(points["timestamp"], points["hash"])

    def slots(self, rows: list[int], series_ids: list[str]) -> list[streaming.SeriesSlot]:
        """The slots of ``rows`` (all >= 0) of ``series_ids``, their arrays read-only views of
        the book: each field gathered once for all rows."""
        if not rows:
            return []
        records = self._records[rows]
        flags = records["flags"].tolist()
        with_state = [i for i, flag in enumerate(flags) if flag & SAVED]
        states = dict(
            zip(with_state, self.states(records[with_state], [series_ids[i] for i in with_state]))
        )
        points = self._recent.values
        times, hashes = points["timestamp"], points["hash"]
        index = np.asarray(rows, np.int64)
        starts = self._recent.offsets[index].tolist()
        ends = self._recent.offsets[index + 1].tolist()
        out = []
        for i in range(len(rows)):
            recent = streaming.Recent(times[starts[i] : ends[i]], hashes[starts[i] : ends[i]])
            saved = states.get(i)
            if flags[i] & EXTRA:
                slot = self._remainder(rows[i])
                slot.recent = recent
                slot.saved = saved if saved is not None else slot.saved
            else:
                slot = streaming.SeriesSlot(saved, recent)
            out.append(slot)
        return out

    # --- the columnar path of a firing (see step._AdvanceShardFn) ----------------------------

    def plain(self, rows: np.ndarray, fingerprint: str) -> np.ndarray:
        """Which ``rows`` (-1: none) hold only a saved state of the model ``fingerprint`` in
        their record (no remainder): those a firing can advance as columns."""
        rows = np.asarray(rows, np.int64)
        if fingerprint not in self._strings or not len(rows):
            return np.zeros(len(rows), bool)
        at = np.maximum(rows, 0)  # the fields read alone, not whole records
        return (
            (rows >= 0)
            & (self._records["flags"][at] == SAVED)
            & (self._records["fingerprint"][at] == self._strings.index(fingerprint))
        )

    def records(self, rows: np.ndarray) -> np.ndarray:
        """A copy of the records of ``rows``."""
        return self._records[np.asarray(rows, np.int64)]

    def states(self, records: np.ndarray, series_ids: list[str]) -> list:
        """The :class:`~rnncast.pipeline.core.forecasting.SeriesState` of each record (arrays
        are views of ``records``)."""
        first, last, digest, loc, scale, scaling, fingerprint = (
            records[name].tolist()
            for name in ("first", "last", "digest", "loc", "scale", "scaling", "fingerprint")
        )
        last_raw, state, point, quantiles = (
            records[name] for name in ("last_raw", "state", "point", "quantiles")
        )
        strings = self._strings
        # (Iterating the arrays: a view per row, cheaper than indexing each.)
        return [
            forecasting.SeriesState(
                series_id=series_id,
                first_timestamp=first[i],
                last_timestamp=last[i],
                last_raw=row_last_raw,
                digest=digest[i],
                loc=loc[i],
                scale=scale[i],
                scaling=strings[scaling[i]],
                state=row_state,
                point=row_point,
                quantiles=row_quantiles,
                model_fingerprint=strings[fingerprint[i]],
            )
            for i, (series_id, row_last_raw, row_state, row_point, row_quantiles) in enumerate(
                zip(series_ids, last_raw, state, point, quantiles)
            )
        ]

    def advanced(
        self,
        rows: np.ndarray,
        records: np.ndarray,
        timestamp: np.ndarray,
        hashes: np.ndarray,
        counts: np.ndarray,
        horizon: int,
    ) -> ShardBook:
        """This book with the records of ``rows`` replaced by ``records`` (advanced states,
        same strings), and each row's recent points extended by its ``counts`` new points
        (``timestamp``, ``hashes``, in row order, after every point it holds) and cut to those
        within ``horizon`` ns of its new last point: :func:`~rnncast.pipeline.core.streaming.
        remember` of every row at once."""
        rows = np.asarray(rows, np.int64)
        n, old = len(self._keys), self._recent
        counts = np.asarray(counts, np.int64)
        if len(rows) == n and (rows == np.arange(n)).all():  # every series of the shard
            updated = records
            held = len(old.values) // n if n else 0
            if len(old.values) == n * held and (old.offsets == np.arange(n + 1) * held).all():
                # The steady state: every row holds as many points and gains as many: as
                # [n, held + new] blocks, the same points in the same order.
                recent = _blocks_remembered(
                    old.values.reshape(n, held),
                    timestamp,
                    hashes,
                    counts,
                    records["last"] - horizon,
                )
                if recent is not None:
                    return ShardBook(
                        self._keys, updated, self._strings, self.shapes, recent, self._extra
                    )
        else:
            updated = self._records.copy()
            updated[rows] = records
        old_lengths = old.offsets[1:] - old.offsets[:-1]
        lengths = old_lengths.copy()
        lengths[rows] += counts
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # Each row's old points first, then its new ones (all later: no sort needed).
        points = np.empty(int(offsets[-1]), _POINT)
        shift = np.repeat(offsets[:-1] - old.offsets[:-1], old_lengths)
        points[np.arange(len(old.values)) + shift] = old.values
        first_new = offsets[rows] + old_lengths[rows]  # where each row's new points go
        at = np.repeat(first_new - (np.cumsum(counts) - counts), counts) + np.arange(counts.sum())
        added = np.empty(len(at), _POINT)
        added["timestamp"], added["hash"] = timestamp, hashes
        points[at] = added
        # Cut each advanced row to its horizon (sorted rows: a prefix goes).
        since = np.full(n, _EARLIEST, np.int64)
        since[rows] = records["last"] - horizon
        keep = points["timestamp"] > np.repeat(since, lengths)
        running = np.zeros(len(keep) + 1, np.int64)
        np.cumsum(keep, out=running[1:])
        recent = Ragged(running[offsets], points[keep])  # row i keeps running[o_i+1] - running[o_i]
        return ShardBook(self._keys, updated, self._strings, self.shapes, recent, self._extra)

    def _remainder(self, row: int) -> streaming.SeriesSlot:
        if not self._records[row]["flags"] & EXTRA:
            return streaming.SeriesSlot()
        return streaming.decode_slot(self._extra.row(row).tobytes())

    # --- writing ---------------------------------------------------------------------------

    def updated(
        self, slots: dict[str, streaming.SeriesSlot], rows: list[int] | None = None
    ) -> ShardBook:
        """This book with ``slots`` written (replacing a series' row, or adding one);
        ``rows``: the series' rows (:meth:`rows`), when already known."""
        if not slots:
            return self
        ids = list(slots)
        rows = self.rows(ids).tolist() if rows is None else list(rows)
        added = [series_id for series_id, row in zip(ids, rows) if row < 0]
        n = len(self._keys)
        source = None  # the same rows
        if added:
            new_keys = np.array([s.encode("utf-8") + _TERMINATOR for s in added], "S")
            keys = np.concatenate([self._keys, new_keys]) if n else new_keys  # the wider
            order = np.argsort(keys, kind="stable")
            keys = keys[order]
            source = np.where(order < n, order, -1)
            position = np.empty(len(order), np.int64)
            position[order] = np.arange(len(order))
            at_end = dict(zip(added, position[n:].tolist()))
            rows = [at_end[i] if r < 0 else int(position[r]) for i, r in zip(ids, rows)]
        else:
            keys = self._keys
        shapes = self.shapes
        if not len(self._records) or not (self._records["flags"] & SAVED).any():
            # No state in the records yet: they take the shapes of the first one written (a
            # book's states come from one model, so all have them; another goes to extras).
            first = next((s.saved for s in slots.values() if s.saved is not None), None)
            shapes = Shapes() if first is None else Shapes.of(first)
        if shapes == self.shapes and n:
            kept = self._records
            records = kept.copy() if source is None else kept[np.maximum(source, 0)]
            if source is not None:
                records[source < 0] = np.zeros(1, records.dtype)  # added: written below
        else:  # no kept row has a state in its record: only the flags carry over
            records = np.zeros(len(keys), shapes.record())
            if n:
                old = self._records["flags"]
                at = np.arange(n) if source is None else source
                records["flags"] = np.where(at >= 0, old[np.maximum(at, 0)], 0)
        fitting, fit_rows, flags, extras = [], [], [], []
        timestamps, hashes = [], []
        for row, slot in zip(rows, slots.values()):
            saved = slot.saved
            fits = saved is not None and shapes.fit(saved)
            rare = (
                not fits and saved is not None
                or bool(slot.waiting)
                or slot.latest is not None
                or slot.latest_status is not None
            )  # fmt: skip
            flags.append((SAVED if fits else 0) | (EXTRA if rare else 0))
            if fits:
                fitting.append(saved)
                fit_rows.append(row)
            timestamps.append(slot.recent.timestamp)
            hashes.append(slot.recent.hashes)
            if rare:
                remainder = streaming.SeriesSlot(
                    None if fits else saved, streaming.Recent.empty(), slot.waiting, slot.latest,
                    slot.latest_status,
                )  # fmt: skip
                extras.append(streaming.encode_slot(remainder))
            else:
                extras.append(b"")
        strings = list(self._strings)
        if fitting:
            records[fit_rows] = _records_of(fitting, shapes, strings)
        others = [row for row, flag in zip(rows, flags) if not flag & SAVED]
        if others:  # no state in the record: zeros, as a book written afresh has
            records[others] = np.zeros(1, records.dtype)
        records["flags"][rows] = flags
        if shapes != Shapes() and not (records["flags"] & SAVED).any():
            # No state left in any record: the shapes of an empty book (the same bytes).
            shapes, flagged = Shapes(), records["flags"]
            records = np.zeros(len(keys), shapes.record())
            records["flags"] = flagged
        strings = _pruned_strings(strings, records)
        points = np.empty(sum(map(len, timestamps)), _POINT)
        if len(points):
            points["timestamp"], points["hash"] = np.concatenate(timestamps), np.concatenate(hashes)
        recent = self._recent.gathered(source, rows, points, list(map(len, timestamps)))
        extra = self._extra.gathered(
            source, rows, np.frombuffer(b"".join(extras), _BYTE), list(map(len, extras))
        )
        return ShardBook(keys, records, tuple(strings), shapes, recent, extra)

    def encode(self) -> bytes:
        n, shapes = len(self._keys), self.shapes
        strings = [s.encode("utf-8") for s in self._strings]
        head = _HEAD.pack(
            n,
            self._keys.dtype.itemsize if n else 0,
            shapes.width,
            shapes.layers,
            shapes.units,
            shapes.horizon,
            shapes.quantiles,
            len(strings),
            len(self._recent.values),
            len(self._extra.values),
        )
        return b"".join(
            [
                head,
                np.array([len(s) for s in strings], "<u4").tobytes(),
                *strings,
                self._keys.tobytes() if n else b"",
                self._records.tobytes(),
                self._recent.offsets.tobytes(),
                self._recent.values.tobytes(),
                self._extra.offsets.tobytes(),
                self._extra.values.tobytes(),
            ]
        )

    @classmethod
    def decode(cls, data: bytes | memoryview) -> ShardBook:
        if not len(data):
            return cls.empty()
        data = memoryview(data)
        n, id_width, W, S, U, H, Q, count, points, extra_bytes = _HEAD.unpack_from(data, 0)
        offset = _HEAD.size
        lengths = np.frombuffer(data, "<u4", count, offset).tolist()
        offset += 4 * count
        strings = []
        for length in lengths:
            strings.append(str(data[offset : offset + length], "utf-8"))
            offset += length

        def take(dtype, count: int) -> np.ndarray:
            nonlocal offset
            array = np.frombuffer(data, dtype, count, offset)
            offset += array.nbytes
            return array

        keys = take(f"S{id_width}", n) if n else np.zeros(0, "S1")
        shapes = Shapes(W, S, U, H, Q)
        records = take(shapes.record(), n)
        recent = Ragged(take(np.int64, n + 1), take(_POINT, points))
        extra = Ragged(take(np.int64, n + 1), take(_BYTE, extra_bytes))
        return cls(keys, records, tuple(strings), shapes, recent, extra)


def _records_of(states: list, shapes: Shapes, strings: list[str]) -> np.ndarray:
    """The records of saved states of ``shapes``, every field at once (``strings`` gains the
    scalings and fingerprints it lacks)."""
    out = np.zeros(len(states), shapes.record())
    out["first"] = [s.first_timestamp for s in states]
    out["last"] = [s.last_timestamp for s in states]
    out["digest"] = np.array([s.digest for s in states], np.uint64)
    out["loc"] = [s.loc for s in states]
    out["scale"] = [s.scale for s in states]
    for name, attribute in (("scaling", "scaling"), ("fingerprint", "model_fingerprint")):
        values = [getattr(s, attribute) for s in states]
        for value in sorted(set(values).difference(strings)):
            strings.append(value)
        place = {value: i for i, value in enumerate(strings)}
        out[name] = [place[v] for v in values]
    for name in ("last_raw", "state", "point", "quantiles"):
        shape = out.dtype[name].shape
        try:
            out[name] = np.array([getattr(s, name) for s in states]).reshape(len(states), *shape)
        except ValueError:  # some as [1, W] and some as [W], say
            out[name] = [np.reshape(getattr(s, name), shape) for s in states]
    return out


def _pruned_strings(strings: list[str], records: np.ndarray) -> list[str]:
    """Only the strings used, sorted, the records' indexes remapped (the same slots, the same
    bytes, whatever strings were written before)."""
    saved = (records["flags"] & SAVED).astype(bool)
    present = np.zeros(len(strings), bool)
    for name in ("scaling", "fingerprint"):
        present[records[name][saved]] = True
    if present.all() and all(a < b for a, b in zip(strings, strings[1:])):
        return strings  # the usual: one scaling and one model, unchanged
    used = sorted(s for s, here in zip(strings, present.tolist()) if here)
    place = np.array([used.index(s) if s in used else 0 for s in strings], np.uint32)
    for name in ("scaling", "fingerprint"):
        records[name] = np.where(saved, place[records[name]], 0)
    return used
