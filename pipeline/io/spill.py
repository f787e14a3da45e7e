"""Spill files: bulk data kept out of the runner's shuffle.

The job shuffles only small references; the rows themselves are written once to files in
the run's staging directory and read back by the step that needs them. So a worker (and the
in-memory DirectRunner) holds one series or one output file at a time, however many series
there are. Formats are plain Arrow IPC and TFRecord framing, never pickle. Files are written
under a temporary name and renamed, so a retried bundle rewrites them safely.
"""

from __future__ import annotations

import collections
import functools
import struct
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from rnncast.pipeline.core.series import SeriesPart
from rnncast.pipeline.io import commit

_RAW = CompressionTypes.UNCOMPRESSED


@dataclass(frozen=True)
class PartRef:
    """Where the rows of one series from one input batch were spilled (record batch ``batch``)."""

    path: str
    batch: int
    source: str


@dataclass(frozen=True)
class BlobRef:
    """A byte range of a spill file."""

    path: str
    offset: int
    length: int


def write_parts(path: str, parts: list[SeriesPart]) -> list[PartRef]:
    """Write each part as one Arrow record batch of ``path``; return a reference per part."""
    width = parts[0].covariates.shape[1]
    schema = pa.schema(
        [("timestamp", pa.int64()), ("value", pa.float64()), ("row_number", pa.int64())]
        + [(f"covariate_{k}", pa.float64()) for k in range(width)]
    )
    temporary = path + ".tmp"
    with (
        FileSystems.create(temporary, compression_type=_RAW) as sink,
        pa.ipc.new_file(sink, schema) as writer,
    ):
        for part in parts:
            columns = [part.timestamp, part.value, part.row_number]
            columns += [part.covariates[:, k] for k in range(width)]
            writer.write_batch(pa.record_batch(columns, schema=schema))
    commit.replace(temporary, path)
    return [PartRef(path, i, part.source) for i, part in enumerate(parts)]


@functools.lru_cache(maxsize=4)
def _open_parts(path: str) -> pa.ipc.RecordBatchFileReader:
    # A spill file holds the rows of many series and every series opens it: keep the last
    # few (one input batch each, so memory stays bounded) instead of re-reading the footer.
    with FileSystems.open(path, compression_type=_RAW) as source:
        return pa.ipc.open_file(pa.BufferReader(source.read()))


def read_parts(refs: list[PartRef]) -> list[SeriesPart]:
    """Load the parts that ``refs`` point to."""
    by_path = collections.defaultdict(list)
    for ref in refs:
        by_path[ref.path].append(ref)
    parts = []
    for path in sorted(by_path):
        reader = _open_parts(path)
        for ref in by_path[path]:
            batch = reader.get_batch(ref.batch)
            columns = [c.to_numpy(zero_copy_only=False) for c in batch.columns]
            covariates = (
                np.column_stack(columns[3:]) if len(columns) > 3 else np.zeros((len(columns[0]), 0))
            )
            parts.append(SeriesPart(ref.source, columns[2], columns[0], columns[1], covariates))
    return parts


def write_blobs(path: str, blobs: list[bytes]) -> list[BlobRef]:
    """Write ``blobs`` back to back into ``path``; return a reference per blob."""
    refs, offset = [], 0
    temporary = path + ".tmp"
    with FileSystems.create(temporary, compression_type=_RAW) as sink:
        for blob in blobs:
            sink.write(blob)
            refs.append(BlobRef(path, offset, len(blob)))
            offset += len(blob)
    commit.replace(temporary, path)
    return refs


def read_blobs(refs: list[BlobRef]) -> list[bytes]:
    """The bytes of each reference, in the order given (each file opened once)."""
    out: list[bytes | None] = [None] * len(refs)
    by_path = collections.defaultdict(list)
    for i, ref in enumerate(refs):
        by_path[ref.path].append(i)
    for path, indices in by_path.items():
        with FileSystems.open(path, compression_type=_RAW) as source:
            for i in sorted(indices, key=lambda i: refs[i].offset):
                source.seek(refs[i].offset)
                out[i] = source.read(refs[i].length)
    return out


def split_framed(blob: bytes) -> list[memoryview]:
    """Split back-to-back TFRecord-framed records (framing kept, so they can be copied as-is).

    The records are views into ``blob``, not copies: a stream file's records are held until
    it is written, and copies would double that memory."""
    records, position, view = [], 0, memoryview(blob)
    while position < len(blob):
        (length,) = struct.unpack_from("<Q", blob, position)
        end = position + 8 + 4 + length + 4
        records.append(view[position:end])
        position = end
    return records
