"""Where points come from: watched files, Pub/Sub or Kafka messages, read and validated."""

from __future__ import annotations

import os
import sys
import time

import apache_beam as beam
from apache_beam.coders import StrUtf8Coder, VarIntCoder
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.transforms import userstate
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from rnncast.pipeline.beam.transforms import REJECTED
from rnncast.pipeline.core import streaming
from rnncast.pipeline.core.validation import InputColumns
from rnncast.pipeline.io import observations
from rnncast.pipeline.jobs.stream.options import NAMESPACE, StreamConfig
from rnncast.pipeline.jobs.stream.pacing import Pacing


class _WatchFilesFn(beam.DoFn):
    """Poll a glob and emit each new file once (one key, a self-renewing timer).

    The Python DirectRunner's streaming engine cannot run splittable DoFns
    (``fileio.MatchContinuously``), so on it this loop does the matching. The engine runs one
    bundle at a time, and each round of firings costs it tens of milliseconds of CPU: while the
    other steps of this process are busy, a firing waits only ``TICK`` seconds; when they have
    been idle for ``IDLE`` seconds it sleeps until the next match is due."""

    TICK = 0.02
    IDLE = 1.0

    SEEN = userstate.BagStateSpec("seen", StrUtf8Coder())
    STARTED = userstate.ReadModifyWriteStateSpec("started", VarIntCoder())
    POLL = userstate.TimerSpec("poll", TimeDomain.WATERMARK)

    def __init__(self, pattern, poll_interval, stop_after_seconds, max_files, pacing: str):
        self._pattern = pattern
        self._pacing = pacing
        self._interval = poll_interval
        self._stop_after = stop_after_seconds
        self._max_files = max_files

    def process(
        self,
        element,
        started=beam.DoFn.StateParam(STARTED),
        poll=beam.DoFn.TimerParam(POLL),
    ):
        started.write(int(time.time()))
        poll.set(Timestamp(0))
        print(f"rnncast stream: watching {self._pattern}", file=sys.stderr, flush=True)

    @userstate.on_timer(POLL)
    def on_poll(
        self,
        seen=beam.DoFn.StateParam(SEEN),
        started=beam.DoFn.StateParam(STARTED),
        poll=beam.DoFn.TimerParam(POLL),
    ):
        if started.read() is None:  # stopped; a firing delivered again (see step._set_timer)
            return
        pacing = Pacing.of(self._pacing)
        wait = pacing.wait_before_match(self._interval)
        if wait > 0:
            time.sleep(self.TICK if pacing.busy(self.IDLE) else wait)
            poll.set(Timestamp(0))
            return
        pacing.matched()
        known = set(seen.read())
        new = [p for p in match_files(self._pattern) if p not in known]
        if self._max_files is not None:
            new = new[: max(self._max_files - len(known), 0)]
        for path in new:
            seen.add(path)
            pacing.note_activity()
            yield TimestampedValue(path, Timestamp.now())
        elapsed = time.time() - started.read()
        done = (self._stop_after is not None and elapsed >= self._stop_after) or (
            self._max_files is not None and len(known) + len(new) >= self._max_files
        )
        if done:
            print(
                f"rnncast stream: stopped watching after {len(known) + len(new)} file(s)",
                file=sys.stderr,
                flush=True,
            )
            started.clear()
            return
        poll.set(Timestamp(0))


def match_files(pattern: str) -> list[str]:
    try:
        matches = FileSystems.match([pattern])[0].metadata_list
    except Exception:  # noqa: BLE001 - nothing there yet (Beam raises BeamIOError)
        return []
    return sorted(m.path for m in matches if not os.path.basename(m.path).startswith((".", "_")))


class WatchFiles(beam.PTransform):
    """New files matching a glob, each once, with its match time as event time: a polling
    loop on the DirectRunner, ``fileio.MatchContinuously`` on other runners."""

    def __init__(self, config: StreamConfig, direct: bool):
        super().__init__()
        self._config = config
        self._direct = direct

    def expand(self, pbegin):
        c = self._config
        if self._direct:
            return (
                pbegin
                | "Start" >> beam.Create([("watch", None)])
                | "Poll"
                >> beam.ParDo(
                    _WatchFilesFn(
                        c.input_pattern,
                        c.poll_interval,
                        c.stop_after_seconds,
                        c.max_files,
                        pacing=c.output,
                    )
                )
            )
        from apache_beam.io import fileio

        stop = (
            Timestamp.now() + c.stop_after_seconds
            if c.stop_after_seconds is not None
            else fileio.MAX_TIMESTAMP
        )
        return (
            pbegin
            | "Match"
            >> fileio.MatchContinuously(
                c.input_pattern, interval=c.poll_interval, stop_timestamp=stop
            )
            | "Paths" >> beam.Map(lambda metadata: metadata.path)
        )


class _ReadFn(beam.DoFn):
    """Validate one file (a path) or one message (``(source, payload)``) like the batch jobs;
    output ``(series_id, SeriesPart)`` and dead-letter frames."""

    def __init__(self, columns: InputColumns, messages: bool, pacing: str | None):
        self._columns = columns
        self._messages = messages
        self._pacing = pacing
        self._rows = Metrics.counter(NAMESPACE, "rows_read")
        self._files = Metrics.counter(NAMESPACE, "files_read")

    def process(self, element):
        if self._pacing is not None:
            Pacing.of(self._pacing).note_activity()
        if self._messages:
            source, payload = element
            result = streaming.parse_message(payload, self._columns, source)
        else:
            result = observations.read_file(element, self._columns)
            self._files.inc()
        self._rows.inc(result.rows_read)
        for frame in result.rejected:
            yield beam.pvalue.TaggedOutput(REJECTED, frame)
        yield from result.parts


class ReadPoints(beam.PTransform):
    """Files (paths) or messages (``(source, payload bytes)``) → ``(series_id, SeriesPart)``
    main output and ``rejected`` dead-letter frames. ``pacing``: the run whose file watcher
    should know that this step is busy (see :mod:`.pacing`), if any."""

    def __init__(self, columns: InputColumns, messages: bool, pacing: str | None = None):
        super().__init__()
        self._columns = columns
        self._messages = messages
        self._pacing = pacing

    def expand(self, arrivals):
        read = arrivals | "Validate" >> beam.ParDo(
            _ReadFn(self._columns, self._messages, self._pacing)
        ).with_outputs(REJECTED, main="points")
        return {"points": read.points, REJECTED: read[REJECTED]}
