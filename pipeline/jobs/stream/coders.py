"""Beam coders of the per-series state (plain bytes, no pickle)."""

from __future__ import annotations

from apache_beam.coders import Coder

from rnncast.pipeline.core import streaming


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
