"""Row-level validation of input batches, vectorised over Arrow columns.

A batch is a ``pyarrow.Table`` as read from one input file. Validation splits it into accepted
rows, grouped per series as :class:`~rnncast.pipeline.core.series.SeriesPart`, and rejected
rows with their reasons (a :class:`pandas.DataFrame` in the dead-letter layout of
``schemas/rejected``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from rnncast import schemas
from rnncast.pipeline.core.deadletters import empty_rejected, rejected_frame
from rnncast.pipeline.core.series import SeriesPart

MAX_SERIES_ID_LENGTH = schemas.load(schemas.INPUT)["columns"]["series_id"]["max_length"]

# Checked in this order; a row is rejected for the first reason that applies.
_ROW_CHECKS = (
    "invalid_series_id",
    "empty_series_id",
    "series_id_too_long",
    "invalid_timestamp",
    "invalid_value",
    "non_finite_value",
    "invalid_covariate",
)


@dataclass(frozen=True)
class InputColumns:
    """Names of the input columns (overridable by flags) and the covariates to read."""

    series_id: str = "series_id"
    timestamp: str = "timestamp"
    value: str = "value"
    covariates: tuple[str, ...] = field(default_factory=tuple)

    @property
    def all(self) -> tuple[str, ...]:
        return (self.series_id, self.timestamp, self.value, *self.covariates)


NAT = np.iinfo(np.int64).min
_NS_PER_UNIT = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
# An ISO-8601 time of day followed by a UTC offset (Z, +hh, +hhmm, +hh:mm) at the very end.
# Date-only strings ("2020-01-01") end in "-01" but have no time part, so they never match.
_HAS_OFFSET = r"[Tt ]\d.*(?:[Zz]|[+-]\d{1,2}(?::?\d{2})?)$"


def parse_timestamps(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Timestamps as int64 ns since the epoch (UTC); unparsable ones become NaT (min int64).

    Every element is parsed on its own, whatever its neighbours (and batch boundaries) are:
    naive values are taken as UTC, values with an offset (``Z``, ``+09:00``, ...) are converted
    to UTC, and unparsable values or instants outside the int64-nanosecond range (before
    1677-09-21 or after 2262-04-11) become NaT. Surrounding whitespace is ignored.
    """
    column = _combine(column)
    if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type):
        return _native_ns(column)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        column = pc.cast(column, pa.string())
    # Fast paths: Arrow parses a column that is all naive (first target) or all with offsets
    # (second); it refuses offsets in the first, naive values in the second, and instants out
    # of the ns range in both, so a mixed or bad column always falls through.
    for target in (pa.timestamp("ns"), pa.timestamp("ns", tz="UTC")):
        try:
            out = pc.cast(pc.cast(column, target), pa.int64())
            return out.fill_null(NAT).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    # Slow path (mixed naive/offset or bad values): pandas would apply one element's offset to
    # later naive ones, so naive strings and strings with an offset are parsed apart.
    text = pc.utf8_trim_whitespace(column)
    has_offset = pc.match_substring_regex(text, _HAS_OFFSET).fill_null(False)
    has_offset = has_offset.to_numpy(zero_copy_only=False)
    strings = np.asarray(text.to_pylist(), dtype=object)
    out = np.full(len(strings), NAT, dtype=np.int64)
    for mask, utc in ((~has_offset, False), (has_offset, True)):
        if mask.any():
            out[mask] = _parse_group(strings[mask], utc)
    return out


def _parse_group(strings: np.ndarray, utc: bool) -> np.ndarray:
    """ISO-8601 strings that are all naive (``utc=False``) or all with an offset, as int64 ns
    (UTC); NaT where unparsable or out of range."""
    try:
        parsed = pd.to_datetime(
            pd.Series(strings, dtype=object), format="ISO8601", utc=utc, errors="coerce"
        )
    except (ValueError, TypeError):
        parsed = None
    if parsed is None or parsed.dt.tz is not None and not utc:
        # An offset form the split did not recognise: parse element by element.
        return np.array(
            [_parse_group(np.array([s], dtype=object), True)[0] for s in strings], dtype=np.int64
        )
    index = pd.DatetimeIndex(parsed).as_unit("ns")
    if index.tz is not None:
        index = index.tz_localize(None)
    return index.asi8.copy()


def _native_ns(column: pa.Array) -> np.ndarray:
    """A native timestamp/date column as int64 ns (UTC; naive taken as UTC); NaT where null or
    outside the int64-nanosecond range."""
    if pa.types.is_date32(column.type):
        factor, raw = 86_400 * 10**9, pc.cast(column, pa.int32())
    elif pa.types.is_date64(column.type):
        factor, raw = 10**6, pc.cast(column, pa.int64())
    else:  # timestamps are stored as UTC instants (tz-aware) or wall time (naive = UTC)
        factor, raw = _NS_PER_UNIT[column.type.unit], pc.cast(column, pa.int64())
    valid = pc.is_valid(raw).to_numpy(zero_copy_only=False)
    units = pc.cast(raw, pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    limit = np.iinfo(np.int64).max // factor
    valid &= (units > -limit) & (units <= limit)
    return np.where(valid, units * factor, NAT).astype(np.int64)


def parse_numbers(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Floats and a mask of entries that are numbers at all (NaN/inf literals count as numbers)."""
    column = _combine(column)
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        valid = pc.is_valid(column).to_numpy(zero_copy_only=False)
        values = pc.cast(column, pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
        return values, valid
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        column = pc.cast(column, pa.string())
    try:
        values = pc.cast(column, pa.float64())
        valid = pc.is_valid(values).to_numpy(zero_copy_only=False)
        return values.fill_null(np.nan).to_numpy(zero_copy_only=False), valid
    except pa.ArrowInvalid:
        pass
    text = pd.Series(column.to_pylist(), dtype=object)
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    literal_nan = text.str.strip().str.lower().isin(["nan", "+nan", "-nan"]).to_numpy(dtype=bool)
    return values, ~np.isnan(values) | literal_nan


def validate_batch(
    table: pa.Table, columns: InputColumns, source: str, row_numbers: np.ndarray
) -> tuple[list[tuple[str, SeriesPart]], pd.DataFrame]:
    """Check every row of ``table``; return accepted rows grouped per series, and rejected rows."""
    n = table.num_rows
    # Bytes that are not UTF-8 fail their row, not the file: they reach here as U+FFFD (the CSV
    # reader's ReplaceInvalidUtf8, text_column for binary Parquet columns).
    text = {name: text_column(table.column(name)) for name in columns.all}
    ids = text[columns.series_id]
    if not (pa.types.is_string(ids.type) or pa.types.is_large_string(ids.type)):
        ids = pc.cast(ids, pa.string())
    id_not_utf8 = pc.match_substring(ids, "\ufffd").fill_null(False)
    id_not_utf8 = id_not_utf8.to_numpy(zero_copy_only=False)
    id_length = pc.utf8_length(ids).fill_null(0).to_numpy(zero_copy_only=False)
    timestamps = parse_timestamps(text[columns.timestamp])
    values, value_is_number = parse_numbers(text[columns.value])
    covariates = np.empty((n, len(columns.covariates)), dtype=np.float64)
    covariate_ok = np.ones(n, dtype=bool)
    for k, name in enumerate(columns.covariates):
        covariates[:, k], is_number = parse_numbers(text[name])
        covariate_ok &= is_number & np.isfinite(covariates[:, k])

    failed = {
        "invalid_series_id": id_not_utf8,
        "empty_series_id": id_length == 0,
        "series_id_too_long": id_length > MAX_SERIES_ID_LENGTH,
        "invalid_timestamp": timestamps == NAT,
        "invalid_value": ~value_is_number,
        "non_finite_value": value_is_number & ~np.isfinite(values),
        "invalid_covariate": ~covariate_ok,
    }
    reason_code = np.zeros(n, dtype=np.int8)
    for code, reason in reversed(list(enumerate(_ROW_CHECKS, start=1))):
        reason_code[failed[reason]] = code
    bad = np.flatnonzero(reason_code)
    if len(bad):
        rows = [
            {k: _printable(v) for k, v in row.items()}
            for row in table.select(list(columns.all)).take(pa.array(bad)).to_pylist()
        ]
        rejected = rejected_frame(
            source, row_numbers[bad], [_ROW_CHECKS[c - 1] for c in reason_code[bad]], rows
        )
    else:
        rejected = empty_rejected()

    good = np.flatnonzero(reason_code == 0)
    if len(good) == 0:
        return [], rejected
    encoded = pc.dictionary_encode(ids.take(pa.array(good)))
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    names = encoded.dictionary.to_pylist()
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    parts = []
    for piece in np.split(order, bounds):
        rows = good[piece]
        parts.append(
            (
                names[codes[piece[0]]],
                SeriesPart(
                    source=source,
                    row_number=row_numbers[rows],
                    timestamp=timestamps[rows],
                    value=values[rows],
                    covariates=covariates[rows],
                ),
            )
        )
    return parts, rejected


def validate_read_batch(
    table: pa.Table,
    columns: InputColumns,
    source: str,
    row_numbers: np.ndarray,
    malformed: list[tuple[int, str]],
) -> tuple[list[tuple[str, SeriesPart]], pd.DataFrame]:
    """:func:`validate_batch` for a batch as :func:`rnncast.pipeline.io.inputs.read_batches`
    yields it: its CSV lines that did not parse are rejected too (``malformed_row``)."""
    frames = []
    if malformed:
        frames.append(
            rejected_frame(
                source,
                np.array([line for line, _ in malformed], np.int64),
                ["malformed_row"] * len(malformed),
                [{"text": text} for _, text in malformed],
            )
        )
    parts: list[tuple[str, SeriesPart]] = []
    if table.num_rows:
        parts, rejected = validate_batch(table, columns, source, row_numbers)
        frames.append(rejected)
    frames = [f for f in frames if len(f)]
    if not frames:
        return parts, empty_rejected()
    return parts, frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def text_column(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A binary column as UTF-8 strings, bytes that are not UTF-8 replaced by U+FFFD (which
    validation rejects); other columns as they are."""
    column = _combine(column)
    if not (pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)):
        return column
    try:
        return pc.cast(column, pa.string())
    except pa.ArrowInvalid:  # only a batch that holds such bytes takes this slow path
        return pa.array(
            [None if raw is None else raw.decode("utf-8", "replace") for raw in column.to_pylist()],
            pa.string(),
        )


def _printable(value):
    """A rejected field for the dead-letter JSON: bytes as text, undecodable bytes escaped."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return value


def _combine(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column


def csv_line_numbers(valid_index: np.ndarray, skipped_lines) -> np.ndarray:
    """The 1-based physical lines (header = line 1) of valid CSV rows, given their 0-based
    positions among the valid rows and the lines of the rows the parser skipped: valid row
    ``g`` is on line ``g + 2`` plus the number of skipped lines before it."""
    skipped = np.sort(np.asarray(skipped_lines, dtype=np.int64))
    thresholds = skipped - 2 - np.arange(len(skipped))
    return valid_index + 2 + np.searchsorted(thresholds, valid_index, side="right")
