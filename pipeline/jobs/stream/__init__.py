"""``rnncast stream``: forecasts from an unbounded stream of points (Beam streaming).

New input files matching ``--input-pattern`` (or messages from Pub/Sub or Kafka) are validated
like the batch jobs' input; points are keyed by ``series_id``; a stateful step holds per series
the RNN state, the last consumed timestamp and the scaling (bootstrapped from a batch run's
``--state-out``, or cold-started), buffers points until the watermark (plus
``--allowed-lateness``), advances the state over them in timestamp order with the exported
model's ``step`` signature and emits a forecast. Forecasts are written as Parquet files per
window, dead letters as JSON lines, and state snapshots in the ``--state-out`` format (a batch
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
