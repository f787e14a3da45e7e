"""Beam coders of the per-series state (plain bytes, no pickle)."""

from __future__ import annotations

from apache_beam.coders import Coder

from rnncast.pipeline.core import streaming
from rnncast.pipeline.core.shard_book import ShardBook


class SeriesStateCoder(Coder):
    """:class:`~rnncast.pipeline.core.forecasting.SeriesState` as plain arrays (see
    :mod:`~rnncast.pipeline.core.streaming`)."""

    def encode(self, value):
        return streaming.encode_state(value)

    def decode(self, encoded):
        return streaming.decode_state(encoded)

    def is_deterministic(self):
        return True


class PendingCoder(Coder):
    """A buffered :class:`~rnncast.pipeline.core.streaming.Pending` part with its arrival time."""

    def encode(self, value):
        return streaming.encode_part(value.part, value.arrival)

    def decode(self, encoded):
        part, arrival = streaming.decode_part(encoded)
        return streaming.Pending(arrival, part)

    def is_deterministic(self):
        return True


class RecentCoder(Coder):
    """Hashes of recently consumed points (:class:`~rnncast.pipeline.core.streaming.Recent`)."""

    def encode(self, value):
        return streaming.encode_recent(value)

    def decode(self, encoded):
        return streaming.decode_recent(encoded)

    def is_deterministic(self):
        return True


class BookCoder(Coder):
    """A shard's :class:`~rnncast.pipeline.core.streaming.SeriesSlot` per series id, as
    columns (:class:`~rnncast.pipeline.core.shard_book.ShardBook`)."""

    def encode(self, value):
        return value.encode()

    def decode(self, encoded):
        return ShardBook.decode(encoded)

    def is_deterministic(self):
        return True


class TimesCoder(Coder):
    """A time (µs) per series id: a shard's next flush or window end per series."""

    def encode(self, value):
        return streaming.encode_times(value)

    def decode(self, encoded):
        return streaming.decode_times(encoded)

    def is_deterministic(self):
        return True


class KeyedPendingCoder(Coder):
    """``(series_id, Pending)``: a buffered part of one of a shard's series, or ``("",
    PendingGroup)``: the parts of its series that arrived together; read back as
    ``(series_id, EncodedPending)`` or ``("", EncodedGroup)``, decoded when a series in
    it is due."""

    def encode(self, value):
        return streaming.encode_keyed_part(*value)

    def decode(self, encoded):
        return streaming.decode_keyed_part_lazily(encoded)

    def is_deterministic(self):
        return True
