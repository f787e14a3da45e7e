"""``rnncast stream``: forecasts from an unbounded stream of points (Beam streaming).

New input files matching ``--input-pattern`` (or messages from Pub/Sub or Kafka) are validated
like the batch jobs' input; points are keyed by a stable shard of ``series_id`` (``--shards``); a
stateful step holds per series of its shard the RNN state, the last consumed timestamp and the
scaling (bootstrapped from a batch run's ``--state-out``, or cold-started), buffers points until
the watermark (plus ``--allowed-lateness``), advances the states of the series due together
over their points in timestamp order, as lanes of one run of the exported model's ``step``
signature, and emits forecasts. Forecasts are written as Parquet files per window, dead letters
as JSON lines, and state snapshots in the ``--state-out`` format, one file per shard (a batch
``rnncast forecast --state-in`` continues from them).
"""

from rnncast.pipeline.jobs.stream.job import StreamForecast, run, run_config
from rnncast.pipeline.jobs.stream.options import DESCRIPTION, StreamConfig, StreamOptions
from rnncast.pipeline.jobs.stream.sources import ReadPoints

__all__ = [
    "DESCRIPTION",
    "ReadPoints",
    "StreamConfig",
    "StreamForecast",
    "StreamOptions",
    "run",
    "run_config",
]
