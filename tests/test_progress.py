"""Console progress (rnncast.pipeline.core.progress): ETA, bars, heartbeats; no sleeping,
the clock is a fake one."""

from __future__ import annotations

import io

import pytest

from rnncast.pipeline.core import progress as p


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_eta_is_the_mean_time_per_item_times_those_left():
    assert p.eta_seconds(0, 10, 5.0) is None
    assert p.eta_seconds(2, 10, 30.0) == pytest.approx(120.0)
    assert p.eta_seconds(10, 10, 30.0) == 0.0


@pytest.mark.parametrize(
    "seconds, text",
    [(None, "?"), (4.4, "4s"), (59.6, "1m00s"), (185, "3m05s"), (7620, "2h07m")],
)
def test_durations_read_well(seconds, text):
    assert p.format_seconds(seconds) == text


def test_eta_note_is_empty_before_the_first_step_and_then_extrapolates():
    assert p.eta_note(0, 6, 0.0) == ""
    assert p.eta_note(2, 6, 60.0) == "1m00s elapsed, ETA 2m00s"


def test_bar_modes():
    assert p.bar_enabled("always", io.StringIO())
    assert not p.bar_enabled("never", Terminal())
    assert p.bar_enabled("auto", Terminal())
    assert not p.bar_enabled("auto", io.StringIO())
    with pytest.raises(ValueError, match="auto, always, never"):
        p.bar_enabled("sometimes", io.StringIO())


def test_a_bar_draws_in_place_on_a_terminal_and_is_silent_elsewhere():
    clock, stream = Clock(), Terminal()
    bar = p.Bar(4, "epoch 1/2", stream, clock=clock)
    clock.now += 10
    bar.update(1, "loss 0.5000")
    bar.close()
    text = stream.getvalue()
    assert text.startswith("\repoch 1/2 [")
    assert "1/4 ETA 30s (10s) loss 0.5000" in text
    assert "\n" not in text
    quiet = io.StringIO()
    p.Bar(4, "x", quiet, clock=clock).update(1)
    assert quiet.getvalue() == ""


def test_progress_yields_every_item_and_logs_quarters_when_not_a_terminal():
    stream = io.StringIO()
    assert list(p.progress(range(8), 8, "scoring", stream)) == list(range(8))
    lines = stream.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == [
        "scoring: 2/8",
        "scoring: 4/8",
        "scoring: 6/8",
        "scoring: 8/8",
    ]


def test_progress_on_a_terminal_ends_with_a_newline_and_shows_the_eta():
    stream = Terminal()
    list(p.progress(range(3), 3, "scoring", stream))
    assert stream.getvalue().endswith("\n")
    assert "3/3 ETA 0s" in stream.getvalue()


def test_rate_limiter_allows_one_event_per_interval():
    clock = Clock()
    limiter = p.RateLimiter(10.0, clock)
    seen = []
    for step in range(25):
        clock.now = 100.0 + step
        seen.append(limiter.ready())
    assert [k for k, ok in enumerate(seen) if ok] == [0, 10, 20]
    every = p.RateLimiter(0.0, clock)
    assert every.ready() and every.ready()
    clock.now = 100.0
    later = p.RateLimiter(10.0, clock, since=100.0)
    assert not later.ready()
    clock.now = 110.0
    assert later.ready()


def test_heartbeat_prints_running_counts_at_most_once_per_interval():
    clock, stream = Clock(), io.StringIO()
    beat = p.Heartbeat(
        "rnncast dataset", (("rows", "rows read"), ("series", "series done")), 10.0, stream, clock
    )
    beat.add("rows", 1500)  # within the first interval: counted, not printed
    clock.now += 10
    beat.add("rows", 500)
    clock.now += 6
    beat.add("series", 1)  # within the interval: counted, not printed
    clock.now += 4
    beat.add("series", 1)
    assert stream.getvalue().splitlines() == [
        "rnncast dataset: 2,000 rows read, 0 series done (10s)",
        "rnncast dataset: 2,000 rows read, 2 series done (20s)",
    ]
    off = p.Heartbeat("x", (("rows", "rows"),), -1.0, stream, clock)
    off.add("rows")
    assert off.counts == {"rows": 1} and len(stream.getvalue().splitlines()) == 2


def test_heartbeat_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(p.HEARTBEAT_ENV, raising=False)
    assert p.heartbeat_interval() == p.DEFAULT_HEARTBEAT_SECONDS
    monkeypatch.setenv(p.HEARTBEAT_ENV, "0")
    assert p.heartbeat_interval() == 0.0
    monkeypatch.setenv(p.HEARTBEAT_ENV, "soon")
    assert p.heartbeat_interval() == p.DEFAULT_HEARTBEAT_SECONDS


def test_job_progress_keeps_one_heartbeat_per_run_and_process(monkeypatch):
    monkeypatch.setenv(p.HEARTBEAT_ENV, "-1")
    order = (("rows", "rows read"),)
    first, second = (
        p.JobProgress("rnncast x", "run-1", order),
        p.JobProgress("rnncast x", "run-2", order),
    )
    first.add("rows", 3)
    first.add("rows", 4)
    second.add("rows", 1)
    assert p.heartbeat_for(first).counts == {"rows": 7}
    assert p.heartbeat_for(second).counts == {"rows": 1}
    p.forget(first)
    p.forget(second)
    assert p.heartbeat_for(first).counts == {"rows": 0}
    p.forget(first)
