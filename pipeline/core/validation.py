"""Row-level validation of input batches, vectorised over Arrow columns.

A batch is a ``pyarrow.Table`` as read from one input file. Validation splits it into accepted
rows, grouped per series as :class:`~rnncast.pipeline.core.series.SeriesPart`, and rejected
rows with their reasons (a :class:`pandas.DataFrame` in the dead-letter layout of
``schemas/rejected``).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from rnncast import schemas
from rnncast.pipeline.core.choices import COLUMN_PRESETS
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


# --timestamp-format values that are not strftime formats: numbers since 1970-01-01 UTC.
EPOCH_FORMATS: dict[str, int] = {"epoch_s": 10**9, "epoch_ms": 10**6}  # ns per unit


@dataclass(frozen=True)
class InputColumns:
    """Names of the input columns (overridable by flags), the covariates to read, and how text
    timestamps are parsed (``timestamp_format``: None = ISO-8601, a strftime format such as
    ``%d/%m/%Y``, or ``epoch_s``/``epoch_ms``; native Parquet timestamps are never reparsed)."""

    series_id: str = "series_id"
    timestamp: str = "timestamp"
    value: str = "value"
    covariates: tuple[str, ...] = field(default_factory=tuple)
    timestamp_format: str | None = None

    @property
    def all(self) -> tuple[str, ...]:
        return (self.series_id, self.timestamp, self.value, *self.covariates)

    @classmethod
    def from_flags(
        cls,
        preset: str | None = None,
        series_id: str | None = None,
        timestamp: str | None = None,
        value: str | None = None,
        covariates: tuple[str, ...] = (),
        timestamp_format: str | None = None,
    ) -> InputColumns:
        """The columns of ``--columns PRESET`` (default rnncast), each overridden by its
        explicit ``--series-id-column``/``--timestamp-column``/``--value-column``; ValueError
        names the flag when the preset or the format is unknown."""
        if (preset or "rnncast") not in COLUMN_PRESETS:
            raise ValueError(
                f"--columns {preset!r}: unknown preset; use one of {', '.join(COLUMN_PRESETS)}"
            )
        names = COLUMN_PRESETS[preset or "rnncast"]
        given = (series_id, timestamp, value)
        out = cls(*(g or n for g, n in zip(given, names)), tuple(covariates), timestamp_format)
        problem = timestamp_format_problem(timestamp_format)
        if problem:
            raise ValueError(problem)
        return out

    def as_json(self) -> dict:
        """The columns as ``metadata.json`` and run ids record them (``timestamp_format`` only
        when set, so runs without it keep their bytes)."""
        out = asdict(self)
        if out["timestamp_format"] is None:
            del out["timestamp_format"]
        return out


def timestamp_format_problem(timestamp_format: str | None) -> str | None:
    """Why ``--timestamp-format`` cannot be used (None when it can)."""
    if timestamp_format is None or timestamp_format in EPOCH_FORMATS:
        return None
    fix = "use a strftime format such as '%d/%m/%Y' or '%d.%m.%Y %H:%M', or epoch_s / epoch_ms"
    if "%" not in timestamp_format:
        return f"--timestamp-format {timestamp_format!r}: no %-directive; {fix}"
    try:
        pd.to_datetime(pd.Series(["x"]), format=timestamp_format, errors="coerce")
    except ValueError as err:
        return f"--timestamp-format {timestamp_format!r}: {err}; {fix}"
    return None


NAT = np.iinfo(np.int64).min
_NS_PER_UNIT = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
# An ISO-8601 time of day followed by a UTC offset (Z, +hh, +hhmm, +hh:mm) at the very end.
# Date-only strings ("2020-01-01") end in "-01" but have no time part, so they never match.
_HAS_OFFSET = r"[Tt ]\d.*(?:[Zz]|[+-]\d{1,2}(?::?\d{2})?)$"


def parse_timestamps(
    column: pa.ChunkedArray | pa.Array, timestamp_format: str | None = None
) -> np.ndarray:
    """Timestamps as int64 ns since the epoch (UTC); unparsable ones become NaT (min int64).

    Every element is parsed on its own, whatever its neighbours (and batch boundaries) are:
    naive values are taken as UTC, values with an offset (``Z``, ``+09:00``, ...) are converted
    to UTC, and unparsable values or instants outside the int64-nanosecond range (before
    1677-09-21 or after 2262-04-11) become NaT. Surrounding whitespace is ignored.

    ``timestamp_format`` (``--timestamp-format``): None parses ISO-8601; a strftime format
    (``%d/%m/%Y``) must match the whole value (``%z`` offsets are converted to UTC);
    ``epoch_s``/``epoch_ms`` take numbers (text or numeric columns) as seconds/milliseconds
    since 1970-01-01 UTC. Native timestamp and date columns are read as they are, whatever
    the format.
    """
    column = _combine(column)
    if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type):
        return _native_ns(column)
    if timestamp_format in EPOCH_FORMATS:
        return _epoch_ns(column, EPOCH_FORMATS[timestamp_format])
    if timestamp_format is not None:
        return _formatted_ns(column, timestamp_format)
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


def _epoch_ns(column: pa.Array, ns_per_unit: int) -> np.ndarray:
    """Numbers (text or numeric) since the epoch as int64 ns; NaT where not a finite number
    or outside the int64-nanosecond range. Whole numbers convert exactly."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        column = pc.utf8_trim_whitespace(column)
    values, is_number = parse_numbers(column)
    limit = np.iinfo(np.int64).max / ns_per_unit
    ok = is_number & np.isfinite(values)
    ok[ok] = np.abs(values[ok]) < limit
    out = np.full(len(values), NAT, dtype=np.int64)
    whole = ok & (np.floor(np.where(ok, values, 0.0)) == np.where(ok, values, 0.0))
    out[whole] = values[whole].astype(np.int64) * ns_per_unit
    fraction = ok & ~whole
    out[fraction] = np.round(values[fraction] * ns_per_unit).astype(np.int64)
    return out


def _formatted_ns(column: pa.Array, timestamp_format: str) -> np.ndarray:
    """Text parsed with a strftime format as int64 ns (UTC; naive = UTC); NaT where the value
    does not match the format or is outside the int64-nanosecond range.

    Each distinct value is parsed once (long inputs repeat each timestamp once per series),
    by pandas: Arrow's strptime turns impossible dates such as 31/02 into the next month."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        column = pc.cast(column, pa.string())
    encoded = pc.dictionary_encode(pc.utf8_trim_whitespace(column))
    text = pd.Series(encoded.dictionary.to_pylist(), dtype=object)
    parsed = pd.to_datetime(text, format=timestamp_format, errors="coerce", utc=True)
    distinct = _index_ns(pd.DatetimeIndex(parsed).tz_localize(None))
    indices = encoded.indices
    valid = pc.is_valid(indices).to_numpy(zero_copy_only=False)
    out = np.full(len(column), NAT, dtype=np.int64)
    out[valid] = distinct[indices.fill_null(0).to_numpy(zero_copy_only=False)[valid]]
    return out


def _index_ns(index: pd.DatetimeIndex) -> np.ndarray:
    """A naive DatetimeIndex of any unit as int64 ns; NaT where missing or out of range."""
    unit = index.unit
    raw = index.asi8.copy()
    missing = np.isnat(index.to_numpy())
    if unit == "ns":
        return np.where(missing, NAT, raw).astype(np.int64)
    factor = _NS_PER_UNIT[unit]
    limit = np.iinfo(np.int64).max // factor
    ok = ~missing & (raw > -limit) & (raw <= limit)
    return np.where(ok, raw * np.where(ok, factor, 0), NAT).astype(np.int64)


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
    timestamps = parse_timestamps(text[columns.timestamp], columns.timestamp_format)
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


# --- every timestamp rejected: say so, and which --timestamp-format fits -----------------

_NUMBER = re.compile(r"[+-]?\d+(?:\.\d*)?")
_SLASHED_DATE = re.compile(r"(\d{1,2})([/.-])(\d{1,2})\2(\d{4})(?:([ T])(\d{1,2}:\d{2})(:\d{2})?)?")


def suggest_timestamp_format(samples: list[str]) -> str:
    """A ``--timestamp-format`` suggestion, as flag text, for rejected timestamp ``samples``:
    ``epoch_s``/``epoch_ms`` for whole numbers (by their size), ``'%d/%m/%Y'`` (separator and
    time of day as in the samples) when a first field is over 12, ``'%m/%d/%Y'`` when a second
    one is, both when neither; a generic example otherwise."""
    texts = [str(s).strip() for s in samples if s is not None and str(s).strip()]
    if texts and all(_NUMBER.fullmatch(t) for t in texts):
        digits = max(len(t.lstrip("+-").split(".")[0]) for t in texts)
        return "epoch_ms" if digits >= 12 else "epoch_s"
    dates = [m for m in (_SLASHED_DATE.fullmatch(t) for t in texts) if m]
    if dates and len(dates) == len(texts):
        first = dates[0]
        sep, time_sep = first.group(2), first.group(5)
        time = ""
        if time_sep:
            time = f"{time_sep}%H:%M" + (":%S" if first.group(7) else "")
        day_first = f"'%d{sep}%m{sep}%Y{time}'"
        month_first = f"'%m{sep}%d{sep}%Y{time}'"
        if any(int(m.group(1)) > 12 for m in dates):
            return f"{day_first} (day first)"
        if any(int(m.group(3)) > 12 for m in dates):
            return f"{month_first} (month first)"
        return f"{day_first} (day first) or {month_first} (month first)"
    return "'%d/%m/%Y' (day first), '%d.%m.%Y %H:%M' or epoch_s (seconds since 1970)"


def all_timestamps_invalid_message(
    source: str,
    rows_read: int,
    invalid: int,
    samples: list[str],
    timestamp_format: str | None = None,
) -> str:
    """The one-line error of an input (or file) whose timestamps were all rejected (no row
    passed the row checks, ``invalid`` of ``rows_read`` as ``invalid_timestamp``)."""
    first = f" (first: {samples[0]!r})" if samples else ""
    if invalid == rows_read:
        head = f"{source}: all {invalid:,} timestamps were rejected as invalid_timestamp{first}"
    else:
        head = (
            f"{source}: no row was accepted; {invalid:,} of {rows_read:,} timestamps were "
            f"rejected as invalid_timestamp{first}"
        )
    if timestamp_format is not None:
        return (
            f"{head}; they do not match --timestamp-format {timestamp_format!r}: fix the format "
            f"(e.g. --timestamp-format {suggest_timestamp_format(samples)}) or the "
            "--timestamp-column"
        )
    return (
        f"{head}; pass --timestamp-format, e.g. --timestamp-format "
        f"{suggest_timestamp_format(samples)}, or check --timestamp-column"
    )


def timestamp_format_hint(samples: list[tuple[str, str]]) -> str:
    """A sentence for an error about rejected rows when its ``invalid_timestamp`` rows
    (``(source, value)`` samples, those of the first source read) look like a format
    :func:`suggest_timestamp_format` recognises; "" otherwise."""
    if not samples:
        return ""
    source, first = samples[0]
    suggestion = suggest_timestamp_format([v for s, v in samples if s == source])
    if suggestion == suggest_timestamp_format([]):
        return ""
    return (
        f". Its invalid_timestamp rows look like {first!r} ({source}): if that file's "
        f"timestamps are all in that form, pass --timestamp-format {suggestion}"
    )


def timestamps_all_invalid(rows_read: int, by_reason: dict[str, int]) -> bool:
    """Whether no row passed the row checks and invalid_timestamp is the most common reason:
    then the timestamps' format, not the frequency or the data, is what went wrong."""
    invalid = by_reason.get("invalid_timestamp", 0)
    row_level = sum(by_reason.get(r, 0) for r in (*_ROW_CHECKS, "malformed_row"))
    return rows_read > 0 and invalid > 0 and row_level == rows_read and invalid * 2 >= rows_read


def invalid_timestamp_samples(rejected: pd.DataFrame, column: str, limit: int = 100) -> list[str]:
    """The first ``limit`` rejected timestamps (as read) of a dead-letter frame."""
    rows = rejected.loc[rejected["reason"] == "invalid_timestamp", "row"].head(limit)
    out = []
    for row in rows:
        value = json.loads(row).get(column)
        if value is not None:
            out.append(str(value))
    return out
