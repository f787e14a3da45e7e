"""Finding, checking and reading input files (CSV or Parquet) in Arrow batches.

All file access goes through Beam ``FileSystems``, so local paths, ``gs://`` and ``s3://`` work
alike. Problems that make a whole file unusable (missing, empty, not CSV/Parquet, missing
columns) raise :class:`InputError` with a message naming the file and the fix; problems of
single rows are left to :mod:`rnncast.pipeline.core.validation`.
"""

from __future__ import annotations

import bz2
import codecs
import contextlib
import io
import os
import zlib
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from rnncast.errors import InputError
from rnncast.pipeline.core.validation import COLUMN_PRESETS, InputColumns, csv_line_numbers

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst")
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_BLOCK_BYTES = 1 << 24
PARQUET_BATCH_ROWS = 1 << 17


# What reading a damaged file raises: Arrow's errors, I/O errors, and what Decompressed
# raises for a compressed stream that is cut short (EOFError) or corrupt (ValueError).
_READ_ERRORS = (pa.ArrowException, OSError, EOFError, ValueError)

# First bytes of each compressed CSV suffix (open_input checks them before decompressing, so
# a plain file named ``.csv.gz`` is named as such instead of failing deep inside the reader).
_MAGIC = {
    ".csv.gz": (b"\x1f\x8b", "gzip"),
    ".csv.bz2": (b"BZh", "bzip2"),
    ".csv.zst": (b"\x28\xb5\x2f\xfd", "zstd"),
}


def file_format(path: str) -> str:
    lower = path.lower()
    if lower.endswith(CSV_SUFFIXES):
        return "csv"
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise InputError(
        f"{path}: unknown file type; input files must end in one of "
        f"{', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}"
    )


def list_inputs(location: str) -> list[str]:
    """The input files named by ``location``: one file, a glob, or a directory (its CSV and
    Parquet files, hidden and ``_``-prefixed files skipped). Sorted, so the job is deterministic."""
    from rnncast.errors import OutputError
    from rnncast.pipeline.io.locations import check_filesystem

    try:
        check_filesystem(location, "--input")
    except OutputError as err:
        raise InputError(str(err)) from err
    pattern = location
    if location.endswith("/") or ("://" not in location and os.path.isdir(location)):
        pattern = location.rstrip("/") + "/*"
    try:
        matches = FileSystems.match([pattern])[0].metadata_list
    except Exception as err:  # Beam raises BeamIOError for unreadable locations
        raise InputError(f"{location}: cannot list input files ({err})") from err
    paths = sorted(
        m.path
        for m in matches
        if not os.path.basename(m.path).startswith((".", "_"))
        and (pattern == location or m.path.lower().endswith(CSV_SUFFIXES + PARQUET_SUFFIXES))
    )
    if not paths:
        raise InputError(
            f"{location}: no input files found; pass a CSV/Parquet file, a glob such as "
            "'data/*.csv', or a directory containing .csv or .parquet files"
        )
    for path in paths:
        file_format(path)
    return paths


def check_input(path: str, columns: InputColumns) -> None:
    """Check that ``path`` is a readable CSV/Parquet file with the columns the job needs."""
    kind = file_format(path)
    try:
        with open_input(path) as handle:
            if kind == "parquet":
                names = pq.read_schema(handle).names
            else:
                reader = pacsv.open_csv(
                    ReplaceInvalidUtf8(handle),
                    read_options=pacsv.ReadOptions(block_size=1 << 16, use_threads=False),
                    # Bad lines are the rows' business (dead-lettered when read), not the file's.
                    parse_options=pacsv.ParseOptions(invalid_row_handler=lambda row: "skip"),
                )
                names = reader.schema.names
    except InputError:
        raise
    except _READ_ERRORS as err:
        what = "Parquet" if kind == "parquet" else "CSV (with a header row)"
        raise InputError(
            f"{path}: not a readable {what} file ({_describe(err)}); fix or remove the file"
        ) from err
    missing = [c for c in columns.all if c not in names]
    if missing:
        presets = [k for k, v in COLUMN_PRESETS.items() if set(v) <= set(names)]
        if presets and columns.series_id in missing:  # e.g. Nixtla's file, rnncast's names
            fix = f"Pass --columns {presets[0]} ({'/'.join(COLUMN_PRESETS[presets[0]])})"
        else:
            fix = (
                "Rename the columns, or point the job at them with --columns nixtla|gluonts "
                "or --series-id-column/--timestamp-column/--value-column/--covariates"
            )
        raise InputError(f"{path}: missing column(s) {missing}; the file has {names}. {fix}")


def read_batches(
    path: str, columns: InputColumns
) -> Iterator[tuple[pa.Table, np.ndarray, list[tuple[int, str]]]]:
    """Yield ``(table, row_numbers, malformed)`` batches of ``path``.

    ``row_numbers`` are 1-based: the physical line for CSV (header = line 1), the row index for
    Parquet. ``malformed`` lists ``(line, text)`` of CSV lines that do not parse into the
    header's columns, reported with the batch in which they were met.
    """
    reader = _read_parquet if file_format(path) == "parquet" else _read_csv
    try:
        yield from reader(path, columns)
    except InputError:
        raise
    except _READ_ERRORS as err:
        raise InputError(
            f"{path}: cannot be read past the rows already counted ({_describe(err)}); the "
            "file is truncated or corrupt. Fix or remove it and rerun"
        ) from err


def _describe(err: BaseException) -> str:
    if isinstance(err, EOFError):
        return "the compressed data ends early or is corrupt"
    return f"{type(err).__name__}: {err}"


def _read_parquet(path, columns):
    with FileSystems.open(path) as handle:
        reader = pq.ParquetFile(handle)
        first = 1
        for batch in reader.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=list(columns.all)):
            table = pa.Table.from_batches([batch])
            yield table, np.arange(first, first + table.num_rows, dtype=np.int64), []
            first += table.num_rows


def _decompressor(codec: str):
    if codec == "gzip":
        return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    if codec == "bzip2":
        return bz2.BZ2Decompressor()
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj()


class _ChunkTransform(io.RawIOBase):
    """A readable stream of ``raw``'s bytes as :meth:`_transform` turns them, chunk by chunk
    (what Arrow's readers take as a file)."""

    CHUNK = 1 << 20

    def __init__(self, raw):
        self._raw = raw
        self._out = bytearray()
        self._done = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while not self._done and (size is None or size < 0 or len(self._out) < size):
            chunk = self._raw.read(self.CHUNK)
            self._done = not chunk
            self._out += self._transform(chunk, final=self._done)
        if size is None or size < 0:
            size = len(self._out)
        data = bytes(self._out[:size])
        del self._out[:size]
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _transform(self, chunk: bytes, final: bool) -> bytes:
        raise NotImplementedError


class Decompressed(_ChunkTransform):
    """The decompressed bytes of a gzip, bzip2 or zstd stream (several members or frames
    included) that raises ``EOFError`` when the stream ends inside a member.

    Beam's own decompressing reader returns a truncated stream's bytes as if they were all the
    data, so a half-copied ``.csv.gz`` would lose its rows without a word.
    """

    def __init__(self, raw, codec: str):
        super().__init__(raw)
        self._codec = codec
        self._decompressor = _decompressor(codec)
        self._started = False  # a member has begun (not yet ended cleanly)

    def _transform(self, chunk: bytes, final: bool) -> bytes:
        if final and self._started:
            raise EOFError(f"the {self._codec} data ends before its end-of-stream marker")
        out = bytearray()
        while chunk:
            self._started = True
            try:
                out += self._decompressor.decompress(chunk)
            except Exception as err:  # noqa: BLE001 - zlib.error, OSError, zstandard.ZstdError
                raise ValueError(f"corrupt {self._codec} data ({err})") from err
            if not self._decompressor.eof:
                break
            # A member ended; what follows is the next member (or trailing zero padding).
            chunk = self._decompressor.unused_data
            self._started = False
            self._decompressor = _decompressor(self._codec)
            if not chunk.strip(b"\x00"):
                break
        return bytes(out)


@contextlib.contextmanager
def open_input(path: str) -> Iterator[io.RawIOBase]:
    """A binary stream of ``path``'s content, decompressed by its suffix (``.gz``, ``.bz2``,
    ``.zst``); a truncated compressed file raises ``EOFError`` when read to its end, and a file
    whose first bytes are not its suffix's codec raises :class:`InputError` naming the fix."""
    suffix = next((s for s in _MAGIC if path.lower().endswith(s)), None)
    try:
        raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    except OSError as err:
        raise InputError(f"{path}: cannot be opened ({err}); check the path") from err
    with raw:
        if suffix is None:
            yield raw
            return
        magic, codec = _MAGIC[suffix]
        if raw.read(len(magic)) != magic:
            plain = path[: -len(suffix)] + ".csv"
            raise InputError(
                f"{path}: named {suffix} but not {codec}-compressed; rename it to {plain} "
                f"if it is plain CSV, or compress it with {codec}"
            )
        raw.seek(0)
        yield Decompressed(raw, codec)


class ReplaceInvalidUtf8(_ChunkTransform):
    """A byte stream with every byte sequence that is not UTF-8 replaced by U+FFFD.

    Arrow's CSV reader cannot report a malformed line whose bytes are not UTF-8 (it fails the
    whole file), and a field with such bytes is no text at all. Replacing them lets every line
    reach validation, which rejects fields holding U+FFFD (``invalid_series_id``; timestamps
    and values with it do not parse). Valid UTF-8 passes through unchanged: the common case
    costs one validity check per chunk.
    """

    def __init__(self, raw):
        super().__init__(raw)
        self._tail = b""  # an incomplete multi-byte sequence at the end of the last chunk

    def _transform(self, chunk: bytes, final: bool) -> bytes:
        return self._repair(self._tail + chunk, final)

    def _repair(self, data: bytes, final: bool) -> bytes:
        try:
            data.decode("utf-8")
            self._tail = b""
            return data
        except UnicodeDecodeError as err:
            if not final and err.end == len(data) and err.reason == "unexpected end of data":
                self._tail = data[err.start :]  # valid so far; the rest comes with the next chunk
                return data[: err.start]
        text, consumed = codecs.utf_8_decode(data, "replace", final)
        self._tail = data[consumed:]
        return text.encode("utf-8")


def _read_csv(path, columns):
    malformed: list[tuple[int, str]] = []

    def on_invalid_row(row) -> str:
        malformed.append((int(row.number) if row.number is not None else -1, row.text))
        return "skip"

    with open_input(path) as raw:
        reader = pacsv.open_csv(
            ReplaceInvalidUtf8(raw),
            read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=False),
            parse_options=pacsv.ParseOptions(
                invalid_row_handler=on_invalid_row, ignore_empty_lines=False
            ),
            convert_options=pacsv.ConvertOptions(
                include_columns=list(columns.all),
                column_types={name: pa.string() for name in columns.all},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        valid_before = 0
        reported = 0
        for batch in reader:
            table = pa.Table.from_batches([batch])
            valid_index = np.arange(valid_before, valid_before + table.num_rows, dtype=np.int64)
            lines = csv_line_numbers(valid_index, [line for line, _ in malformed])
            valid_before += table.num_rows
            yield table, lines, malformed[reported:]
            reported = len(malformed)
        if reported < len(malformed):
            empty = pa.table({name: pa.array([], pa.string()) for name in columns.all})
            yield empty, np.zeros(0, np.int64), malformed[reported:]
