"""The file watcher's pacing on the DirectRunner: how long a poll may sleep.

The DirectRunner's streaming engine runs one bundle at a time and makes a DoFn instance per
bundle, so what the watcher needs to know (when another step of the same run last did work,
when it last matched its glob) cannot live on a DoFn. It lives in one :class:`Pacing` per run
and process, found by the run's key (its ``--output``, the one directory a run owns)."""

from __future__ import annotations

import threading
import time


class Pacing:
    """When a run's steps last did work and when its glob was last matched (monotonic s)."""

    _runs: dict[str, Pacing] = {}
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.last_activity = 0.0
        self.last_match = 0.0

    @classmethod
    def of(cls, run: str) -> Pacing:
        """The pacing of ``run`` in this process (made on first use)."""
        with cls._lock:
            return cls._runs.setdefault(run, cls())

    def note_activity(self) -> None:
        """A step of the run did work (read, advanced, wrote)."""
        self.last_activity = time.monotonic()

    def busy(self, idle_seconds: float) -> bool:
        """Whether the run did work within the last ``idle_seconds``."""
        return time.monotonic() - self.last_activity < idle_seconds

    def wait_before_match(self, interval: float) -> float:
        """Seconds until the next match is due (<= 0: now)."""
        return self.last_match + interval - time.monotonic()

    def matched(self) -> None:
        self.last_match = time.monotonic()
