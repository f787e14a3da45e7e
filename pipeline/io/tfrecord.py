"""Writing ``tf.train.Example`` records and GZIP TFRecord files without TensorFlow.

The Example protobuf is encoded directly from numpy buffers (packed float/int64 lists), which
is byte-for-byte what ``tf.train.Example.SerializeToString`` produces for the same features in
the same order, and far cheaper than building proto objects per row. Features are written in
sorted name order so the bytes are deterministic. TFRecord framing uses the C CRC32C of
``google-crc32c``.
"""

from __future__ import annotations

import functools
import hashlib
import struct
import zlib
from collections.abc import Iterable, Mapping

import google_crc32c
import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from rnncast.pipeline.io import commit

_MASK_DELTA = 0xA282EAD8


# Feature kinds: the field tags of tf.train.Feature's oneof.
BYTES_LIST, FLOAT_LIST, INT64_LIST = 0x0A, 0x12, 0x1A
_SMALL_VARINTS = [bytes([v]) for v in range(128)]


def varint(value: int) -> bytes:
    """Protobuf base-128 varint of an int64 (negative values use ten bytes, as protobuf does)."""
    if 0 <= value < 128:
        return _SMALL_VARINTS[value]
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _length_delimited(field_tag: int, payload: bytes) -> bytes:
    return bytes([field_tag]) + varint(len(payload)) + payload


def _packed_varints(values: np.ndarray) -> bytes:
    values = np.asarray(values, dtype=np.int64)
    if values.size and values.min() >= 0 and values.max() < 128:
        return values.astype(np.uint8).tobytes()
    return b"".join(varint(int(v)) for v in values)


def encode_feature(value: bytes | str | np.ndarray | int | float) -> bytes:
    """Encode one ``tf.train.Feature``: bytes/str -> bytes_list, float arrays -> float_list,
    int arrays or ints -> int64_list."""
    if isinstance(value, str):
        value = value.encode("utf-8")
    if isinstance(value, bytes):
        return _length_delimited(BYTES_LIST, _length_delimited(0x0A, value))
    array = np.asarray(value)
    if array.dtype.kind == "f":
        packed = array.astype("<f4", copy=False).tobytes()
        return _length_delimited(FLOAT_LIST, _length_delimited(0x0A, packed) if packed else b"")
    packed = _packed_varints(array.ravel())
    return _length_delimited(INT64_LIST, _length_delimited(0x0A, packed) if packed else b"")


def encode_entry(name: str, value: bytes | str | np.ndarray | int | float) -> bytes:
    """One entry of ``Features.feature`` (the map): the name and its encoded feature."""
    return _length_delimited(
        0x0A,
        _length_delimited(0x0A, name.encode("utf-8"))
        + _length_delimited(0x12, encode_feature(value)),
    )


@functools.lru_cache(maxsize=1024)
def entry_header(name: str, kind: int, payload_length: int) -> bytes:
    """The bytes of :func:`encode_entry` before a packed list payload of ``payload_length``
    bytes (``kind``: FLOAT_LIST or INT64_LIST): they depend on nothing else, so encoders
    that build many records reuse them and append the payload."""
    if payload_length == 0:
        return encode_entry(name, np.zeros(0, np.float32 if kind == FLOAT_LIST else np.int64))
    inner = _length_delimited(0x0A, bytes(payload_length))
    entry = _length_delimited(
        0x0A,
        _length_delimited(0x0A, name.encode("utf-8"))
        + _length_delimited(0x12, _length_delimited(kind, inner)),
    )
    return entry[:-payload_length]


def encode_example(features: Mapping[str, bytes | str | np.ndarray | int | float]) -> bytes:
    """Serialise a ``tf.train.Example`` with ``features`` (written in sorted name order)."""
    entries = b"".join(encode_entry(name, features[name]) for name in sorted(features))
    return _length_delimited(0x0A, entries)


def masked_crc32c(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame_record(record: bytes) -> bytes:
    """One TFRecord: length, masked CRC of the length, data, masked CRC of the data."""
    length = struct.pack("<Q", len(record))
    return (
        length
        + struct.pack("<I", masked_crc32c(length))
        + record
        + struct.pack("<I", masked_crc32c(record))
    )


def write_tfrecord_file(path: str, framed_records: Iterable[bytes | memoryview]) -> dict:
    """Write GZIP TFRecords to ``path`` through Beam ``FileSystems`` (any scheme).

    The file is written under a temporary name and renamed when complete, so it never appears
    half-written under its final name. Compression is done here (zlib, mtime 0) rather than by
    the file system so the bytes are deterministic and their SHA-256 is known without a re-read.
    The records already carry their TFRecord framing (:func:`frame_record`), so spilled
    records are copied as they are.
    Returns ``{"path", "records", "bytes", "sha256"}``.
    """
    temporary = f"{path}.tmp-{hashlib.sha256(path.encode()).hexdigest()[:8]}"
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    digest = hashlib.sha256()
    size = 0
    count = 0
    sink = FileSystems.create(temporary, compression_type=CompressionTypes.UNCOMPRESSED)
    try:
        pending: list[bytes] = []
        pending_size = 0
        for record in framed_records:
            pending.append(record)
            pending_size += len(record)
            count += 1
            if pending_size >= 1 << 22:
                size += _write_compressed(sink, compressor, b"".join(pending), digest)
                pending, pending_size = [], 0
        size += _write_compressed(sink, compressor, b"".join(pending), digest)
        tail = compressor.flush()
        sink.write(tail)
        digest.update(tail)
        size += len(tail)
    finally:
        sink.close()
    commit.replace(temporary, path)
    return {"path": path, "records": count, "bytes": size, "sha256": digest.hexdigest()}


def _write_compressed(sink, compressor, data: bytes, digest) -> int:
    chunk = compressor.compress(data)
    if chunk:
        sink.write(chunk)
        digest.update(chunk)
    return len(chunk)
