"""Progress on the console (stderr): bars with an ETA, and rate-limited heartbeat lines.

Pure Python (no Beam, no TensorFlow), so the jobs, ``rnncast train`` and ``rnncast evaluate``
share one implementation. Everything here writes to a stream (default: stderr), never to
an output file, and takes its clock as an argument, so tests need no sleeping.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TextIO

MODES = ("auto", "always", "never")
# Seconds between heartbeat lines of the Beam jobs; 0 prints on every event (tests).
HEARTBEAT_ENV = "RNNCAST_HEARTBEAT_SECONDS"
DEFAULT_HEARTBEAT_SECONDS = 10.0
BAR_WIDTH = 30


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is an interactive terminal (False when it cannot say)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def bar_enabled(mode: str, stream: TextIO) -> bool:
    """Whether to draw a live bar: ``always``, ``never``, or ``auto`` (only on a terminal,
    so logs and pipes get no carriage-return noise)."""
    if mode not in MODES:
        raise ValueError(f"progress mode must be one of {', '.join(MODES)}, not {mode!r}")
    return mode == "always" or (mode == "auto" and is_terminal(stream))


def eta_seconds(done: int, total: int, elapsed: float) -> float | None:
    """Seconds left for ``total - done`` items at the mean time per item so far (None
    before the first item is done)."""
    if done <= 0 or total <= 0:
        return None
    return max(total - done, 0) * elapsed / done


def format_seconds(seconds: float | None) -> str:
    """``42s``, ``3m05s``, ``2h07m``; ``?`` when unknown."""
    if seconds is None or seconds != seconds:
        return "?"
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def bar_line(label: str, done: int, total: int, elapsed: float, extra: str = "") -> str:
    """One bar: ``label [#####.....] 12/40 ETA 1m05s (25s) extra``."""
    filled = int(BAR_WIDTH * min(done, total) / max(total, 1))
    eta = format_seconds(eta_seconds(done, total, elapsed)) if done < total else "0s"
    text = (
        f"{label} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} "
        f"ETA {eta} ({format_seconds(elapsed)})"
    )
    return f"{text} {extra}" if extra else text


class Bar:
    """A progress bar redrawn in place on a terminal (``enabled``); silent otherwise."""

    def __init__(
        self,
        total: int,
        label: str,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.total = total
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = is_terminal(self.stream) if enabled is None else enabled
        self._clock = clock
        self._started = clock()
        self._width = 0
        self._open = False

    def update(self, done: int, extra: str = "") -> None:
        if not self.enabled:
            return
        line = bar_line(self.label, done, self.total, self._clock() - self._started, extra)
        pad = " " * max(self._width - len(line), 0)  # wipe a longer previous line
        self._width = len(line)
        self._open = True
        print(f"\r{line}{pad}", end="", file=self.stream, flush=True)

    def close(self) -> None:
        """End the bar's line (so the next line starts clean)."""
        if self._open:
            print("\r" + " " * self._width + "\r", end="", file=self.stream, flush=True)
            self._open = False


def progress(
    items: Iterable,
    total: int,
    label: str,
    stream: TextIO | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Iterator:
    """Yield ``items`` while drawing a bar with an ETA on ``stream`` (default stderr); when
    it is not a terminal, a plain line at each quarter instead, so logs stay readable."""
    stream = stream if stream is not None else sys.stderr
    bar = Bar(total, label, stream, clock=clock)
    marks = {max(1, round(total * k / 4)) for k in range(1, 5)}
    started = clock()
    for done, item in enumerate(items, start=1):
        yield item
        if bar.enabled:
            bar.update(done)
            if done >= total:
                print(file=stream, flush=True)
                bar._open = False
        elif done in marks:
            print(f"{label}: {done}/{total} ({clock() - started:.0f}s)", file=stream, flush=True)


def eta_note(done: int, total: int, elapsed: float) -> str:
    """``2m10s elapsed, ETA 5m03s`` after ``done`` of ``total`` steps (the ETA from the mean
    time per step so far); empty before the first step is done."""
    if done <= 0:
        return ""
    eta = format_seconds(eta_seconds(done, total, elapsed))
    return f"{format_seconds(elapsed)} elapsed, ETA {eta}"


class RateLimiter:
    """True at most once every ``interval`` seconds (``interval`` 0: every call): the first
    call always, or, given ``since``, the first call ``interval`` seconds after it."""

    def __init__(
        self,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
        since: float | None = None,
    ):
        self.interval = interval
        self._clock = clock
        self._last = since

    def ready(self) -> bool:
        now = self._clock()
        if self._last is not None and now - self._last < self.interval:
            return False
        self._last = now
        return True


def heartbeat_interval() -> float:
    """Seconds between heartbeat lines: ``$RNNCAST_HEARTBEAT_SECONDS`` or 10; negative: off."""
    text = os.environ.get(HEARTBEAT_ENV, "").strip()
    try:
        return float(text) if text else DEFAULT_HEARTBEAT_SECONDS
    except ValueError:
        return DEFAULT_HEARTBEAT_SECONDS


class Heartbeat:
    """Counts of one job run in this process, printed as one line when the rate limiter
    allows (first ``interval`` seconds after the start, so short runs stay quiet):
    ``rnncast dataset: 1,234 rows read, 56 series done (35s)``. ``order`` names the
    counters, in the order they are shown, with their wording."""

    def __init__(
        self,
        label: str,
        order: tuple[tuple[str, str], ...],
        interval: float,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.label = label
        self.order = order
        self.counts = {key: 0 for key, _ in order}
        self.stream = stream
        self._clock = clock
        self._started = clock()
        self._limiter = RateLimiter(interval, clock, self._started) if interval >= 0 else None
        self._lock = threading.Lock()

    def line(self) -> str:
        parts = ", ".join(f"{self.counts[key]:,} {words}" for key, words in self.order)
        return f"{self.label}: {parts} ({format_seconds(self._clock() - self._started)})"

    def add(self, key: str, count: int = 1) -> None:
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + int(count)
            if self._limiter is not None and self._limiter.ready():
                stream = self.stream if self.stream is not None else sys.stderr
                print(self.line(), file=stream, flush=True)


@dataclass(frozen=True)
class JobProgress:
    """What a Beam job's DoFns need to report progress (picklable): the job's console label,
    its run (counts are kept per run and process) and its counters with their wording."""

    label: str
    run: str
    order: tuple[tuple[str, str], ...]

    def add(self, key: str, count: int = 1) -> None:
        """Count ``count`` ``key`` events in this process's heartbeat of the run."""
        heartbeat_for(self).add(key, count)


_HEARTBEATS: dict[tuple[str, str], Heartbeat] = {}
_HEARTBEATS_LOCK = threading.Lock()


def heartbeat_for(job: JobProgress) -> Heartbeat:
    """This process's heartbeat of ``job``'s run (created on first use, with the interval
    of :func:`heartbeat_interval` then). In multi-process runners each worker process prints
    its own counts."""
    key = (job.label, job.run)
    with _HEARTBEATS_LOCK:
        if key not in _HEARTBEATS:
            _HEARTBEATS[key] = Heartbeat(job.label, job.order, heartbeat_interval())
        return _HEARTBEATS[key]


def forget(job: JobProgress) -> None:
    """Drop this process's heartbeat of ``job``'s run (at the end of the run)."""
    with _HEARTBEATS_LOCK:
        _HEARTBEATS.pop((job.label, job.run), None)
