"""Reading a dataset directory written by ``rnncast dataset`` as a ``tf.data.Dataset``.

Only the files that the committed ``metadata.json`` lists are read (replacing it is the commit;
see :mod:`rnncast.pipeline.io.commit`). Each file's size and SHA-256 are checked against the
metadata before it is read, so a truncated or corrupted file fails with an error naming it
instead of being skipped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import tensorflow as tf
from apache_beam.io.filesystems import FileSystems

from rnncast import schemas
from rnncast.errors import CorruptFileError, DatasetError
from rnncast.pipeline.io import commit


def load_metadata(data_dir: str) -> dict:
    """The committed metadata of ``data_dir`` (checked against ``_SUCCESS``)."""
    path = FileSystems.join(data_dir, commit.METADATA)
    if not FileSystems.exists(path):
        raise DatasetError(f"{path}: not found; run 'rnncast dataset --output {data_dir}' first")
    # metadata.json is replaced in one rename once every file it lists is in place, so the
    # file read here is always a complete run (_SUCCESS, written after it, is not needed).
    try:
        metadata = commit.read_json(path, f"rerun 'rnncast dataset --output {data_dir}'")
    except CorruptFileError as err:
        raise DatasetError(str(err)) from err
    if commit.job_of(metadata) != commit.DATASET:
        raise DatasetError(
            f"{path}: not a dataset (it describes "
            f"{commit.JOBS.get(commit.job_of(metadata), 'no rnncast output')}); give the "
            "--output directory of 'rnncast dataset'"
        )
    version = metadata.get("schema_version", {}).get(schemas.TFRECORD)
    if version != schemas.CURRENT_VERSIONS[schemas.TFRECORD]:
        raise DatasetError(
            f"{path}: TFRecord schema version {version}, this rnncast reads "
            f"{schemas.CURRENT_VERSIONS[schemas.TFRECORD]}; regenerate the dataset"
        )
    return metadata


def feature_spec(metadata: dict) -> dict[str, tf.io.FixedLenFeature]:
    """The ``tf.io.parse_example`` spec of one row, from ``schemas/tfrecord`` and the metadata."""
    sizes = {
        "T": metadata["num_steps"],
        "H": metadata["horizon"],
        "F": len(metadata["feature_names"]),
    }
    dtypes = {"string": tf.string, "int64": tf.int64, "float32": tf.float32}
    spec = {}
    for name, feature in schemas.load(schemas.TFRECORD)["features"].items():
        shape = [int(np.prod([sizes[d] for d in feature["shape"]]))] if feature["shape"] else []
        spec[name] = tf.io.FixedLenFeature(shape, dtypes[feature["dtype"]])
    return spec


def data_files(data_dir: str, metadata: dict, split: str, verify: bool = True) -> list[str]:
    """Full paths of ``split``'s files, in stream order, each checked against the metadata."""
    if split not in metadata["splits"]:
        raise DatasetError(f"{data_dir}: no split {split!r}; splits are {list(metadata['splits'])}")
    paths = []
    for entry in metadata["splits"][split]["files"]:
        path = FileSystems.join(data_dir, entry["name"])
        if verify:
            verify_file(path, entry)
        paths.append(path)
    return paths


def verify_file(path: str, entry: dict) -> None:
    """Raise :class:`DatasetError` naming ``path`` if it is missing, truncated or corrupted."""
    if not FileSystems.exists(path):
        raise DatasetError(f"{path}: listed in metadata.json but missing; rerun 'rnncast dataset'")
    digest = hashlib.sha256()
    size = 0
    with FileSystems.open(path, compression_type="uncompressed") as source:
        while block := source.read(1 << 22):
            digest.update(block)
            size += len(block)
    if size != entry["bytes"]:
        raise DatasetError(
            f"{path}: truncated or extended ({size} bytes, metadata.json says {entry['bytes']}); "
            "rerun 'rnncast dataset' to rewrite it"
        )
    if digest.hexdigest() != entry["sha256"]:
        raise DatasetError(
            f"{path}: corrupted (SHA-256 differs from metadata.json); rerun 'rnncast dataset'"
        )


def parse_rows(serialized: tf.Tensor, metadata: dict, scale: bool = True) -> dict[str, tf.Tensor]:
    """Parse a batch of serialized rows and derive targets and the loss mask.

    Returns ``inputs`` [B, T, F] (value column scaled when ``scale``), ``targets`` [B, T, H]
    (scaled when ``scale``), ``target_mask`` [B, T, H], ``observed`` [B, T], and the scalars
    ``sequence_length``, ``reset``, ``series_id``, ``chunk_index``, ``lane``, ``start_time``,
    ``loc``, ``scale``.
    """
    T, H = metadata["num_steps"], metadata["horizon"]
    F = len(metadata["feature_names"])
    rows = tf.io.parse_example(serialized, feature_spec(metadata))
    values = tf.reshape(rows["values"], [-1, T, F])
    loc = rows["loc"][:, None]
    spread = rows["scale"][:, None]
    value = values[:, :, 0]
    lookahead = rows["lookahead"]
    if scale:
        value = (value - loc) / spread
        lookahead = (lookahead - loc) / spread
        values = tf.concat([value[:, :, None], values[:, :, 1:]], axis=2)
    observed = tf.cast(rows["observed"], tf.bool)
    ext = tf.concat([value, lookahead], axis=1)  # [B, T + H]
    ext_observed = tf.concat([observed, tf.cast(rows["lookahead_observed"], tf.bool)], axis=1)
    index = 1 + tf.range(T)[:, None] + tf.range(H)[None, :]  # [T, H]: position t + 1 + h
    targets = tf.gather(ext, index, axis=1)
    target_observed = tf.gather(ext_observed, index, axis=1)
    sequence_length = tf.cast(rows["sequence_length"], tf.int32)
    in_sequence = tf.range(T)[None, :] < sequence_length[:, None]
    eligible = index[None] >= tf.cast(rows["target_start"], tf.int32)[:, None, None]
    # Padding and unobserved steps are zero in the inputs; filled values stay as filled.
    mask = target_observed & eligible & in_sequence[:, :, None]
    return {
        "inputs": values,
        "targets": tf.where(mask, targets, tf.zeros_like(targets)),
        "target_mask": mask,
        "observed": observed,
        "sequence_length": sequence_length,
        "reset": tf.cast(rows["reset"], tf.bool),
        "series_id": rows["series_id"],
        "chunk_index": rows["chunk_index"],
        "lane": rows["lane"],
        "start_time": rows["start_time"],
        "loc": rows["loc"],
        "scale": rows["scale"],
    }


def make_dataset(
    data_dir: str,
    split: str = "train",
    stream_order: list[int] | None = None,
    scale: bool = True,
    verify: bool = True,
    batch_size: int | None = None,
    shuffle_seed: int | None = None,
) -> tf.data.Dataset:
    """Batches of ``split`` in ``data_dir`` as a ``tf.data.Dataset`` of feature dicts.

    Stateful layout: each stream file is read in order and grouped by the dataset's batch size,
    so lane ``k`` of one batch continues lane ``k`` of the previous one; streams follow each
    other in ``stream_order`` (default: file order). Every stream begins with ``reset`` set on
    all lanes. Windows layout: rows are independent; ``batch_size`` defaults to the dataset's,
    and ``shuffle_seed`` adds a seeded shuffle on top of the files' deterministic order.
    """
    metadata = load_metadata(data_dir)
    paths = data_files(data_dir, metadata, split, verify)
    if metadata["layout"] == "stateful":
        order = _stream_order(stream_order, len(paths))
        return _stateful_batches(paths, tf.constant(order, tf.int64), metadata, scale)
    batch = batch_size or metadata["batch_size"]
    dataset = tf.data.TFRecordDataset(tf.constant(paths, tf.string), compression_type="GZIP")
    if shuffle_seed is not None:
        dataset = dataset.shuffle(8192, seed=shuffle_seed, reshuffle_each_iteration=True)
    return _parsed(dataset.batch(batch), metadata, scale)


# A split whose parsed batches are estimated below this stays in memory after its first read
# (StreamSplit): re-parsing the same records every pass took a third of a small model's
# training time on 2 cores, as the parser and the train step compete for the same cores.
CACHE_BYTES = 256 * 2**20


class StreamSplit:
    """One split of a stateful dataset, read again and again in a stream order set per read.

    Training reads the train split several times per epoch, each time in a new seeded order.
    A split small enough (``cache_bytes``) is parsed once and kept as each stream's list of
    batches. A larger one is read from its files each time through one ``tf.data`` pipeline,
    built once (building it traces its functions again, about 0.1 s a time) with the order
    in a variable that the pipeline reads as an iteration reaches each stream. Either way
    the batches are those of ``make_dataset(data_dir, split, stream_order)``.
    """

    def __init__(
        self,
        data_dir: str,
        split: str,
        scale: bool = True,
        verify: bool = True,
        cache_bytes: int = CACHE_BYTES,
    ):
        metadata = load_metadata(data_dir)
        if metadata["layout"] != "stateful":
            raise DatasetError(f"{data_dir}: StreamSplit reads the stateful layout only")
        paths = data_files(data_dir, metadata, split, verify)
        self.num_streams = len(paths)
        self._data_dir = data_dir
        self._stream_batches = [entry["batches"] for entry in metadata["splits"][split]["files"]]
        self._cache = _parsed_bytes(metadata, metadata["splits"][split]["records"]) <= cache_bytes
        self._streams: list[list[dict]] | None = None
        self._order = tf.Variable(tf.range(len(paths), dtype=tf.int64), trainable=False)
        self._dataset = _stateful_batches(paths, self._order, metadata, scale)

    def batches(self, stream_order: list[int] | None = None) -> Iterable[dict[str, tf.Tensor]]:
        """The split's batches, streams in ``stream_order`` (default: file order).

        Iterate the result before the next call: a pipeline reads the order as it goes.
        """
        order = _stream_order(stream_order, self.num_streams)
        if not self._cache:
            self._order.assign(order)
            return self._dataset
        if self._streams is None:
            self._order.assign(list(range(self.num_streams)))
            parsed = list(self._dataset)
            if len(parsed) != sum(self._stream_batches):
                raise DatasetError(
                    f"{self._data_dir}: the files hold {len(parsed)} batches where metadata.json "
                    f"lists {sum(self._stream_batches)}; rerun 'rnncast dataset'"
                )
            ends = np.cumsum(self._stream_batches)
            self._streams = [
                parsed[end - count : end] for end, count in zip(ends, self._stream_batches)
            ]
        return [batch for index in order for batch in self._streams[index]]


def _parsed_bytes(metadata: dict, records: int) -> int:
    """About how much memory ``records`` parsed rows take (inputs, targets and masks)."""
    T, H, F = metadata["num_steps"], metadata["horizon"], len(metadata["feature_names"])
    return records * (4 * T * F + 5 * T * H + T + 64)


def _stream_order(stream_order: list[int] | None, num_streams: int) -> list[int]:
    order = list(range(num_streams)) if stream_order is None else list(stream_order)
    if sorted(order) != list(range(num_streams)):
        raise DatasetError(f"stream_order must be a permutation of 0..{num_streams - 1}")
    return order


def _stateful_batches(paths: list[str], order, metadata: dict, scale: bool) -> tf.data.Dataset:
    """Each stream file read in order and grouped by the dataset's batch size, so lane ``k`` of
    one batch continues lane ``k`` of the previous one; streams follow each other in ``order``
    (a tensor or a variable of stream indices)."""
    files = tf.constant(paths, tf.string)
    batch = metadata["batch_size"]
    dataset = tf.data.Dataset.range(len(paths)).map(
        lambda position: tf.gather(files, tf.gather(order, position))
    )
    dataset = dataset.flat_map(
        lambda path: tf.data.TFRecordDataset(path, compression_type="GZIP").batch(
            batch, drop_remainder=False
        )
    )
    return _parsed(dataset, metadata, scale)


def _parsed(dataset: tf.data.Dataset, metadata: dict, scale: bool) -> tf.data.Dataset:
    return dataset.map(
        lambda serialized: parse_rows(serialized, metadata, scale),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    ).prefetch(tf.data.AUTOTUNE)
