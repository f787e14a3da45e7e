"""One key of a stateful DoFn driven in-process as the DirectRunner's streaming engine drives
it: the stream tests use it to deliver firings exactly as the engine may, and
``benchmarks/bench_stream.py`` to time the stream's step without a runner."""

from __future__ import annotations

import inspect

import apache_beam as beam
from apache_beam.transforms import userstate
from apache_beam.utils.timestamp import Timestamp


class DirectKey:
    """State cells kept encoded by their specs' coders (as the engine keeps them), one timer
    per name, and a firing delivered by clearing its timer first (``process_timer_wrapper``),
    whatever the timer was re-armed to since. The engine can deliver a firing again once the
    first has re-armed the timer: its monitor extracts due timers again while their firing is
    still in flight. Timers are named as declared (Beam's ``ts-`` prefix dropped)."""

    def __init__(self, fn: beam.DoFn, key):
        self.fn, self.key = fn, key
        self.cells: dict = {}
        self.timers: dict = {}
        self._bound: dict = {}

    def _arguments(self, method, timestamp: Timestamp) -> dict:
        """``method``'s keyword arguments (bound once per method: cells and timers persist)."""
        if method.__name__ not in self._bound:
            fixed, stamped = {}, []
            for name, parameter in inspect.signature(method).parameters.items():
                default = parameter.default
                if default is beam.DoFn.KeyParam:
                    fixed[name] = self.key
                elif default is beam.DoFn.TimestampParam:
                    stamped.append(name)
                elif hasattr(default, "state_spec"):
                    spec = default.state_spec
                    fixed[name] = self.cells.setdefault(spec.name, _EncodedCell(spec))
                elif hasattr(default, "timer_spec"):
                    timer = default.timer_spec.name.removeprefix("ts-")
                    fixed[name] = _Timer(self.timers, timer)
            self._bound[method.__name__] = fixed, stamped
        fixed, stamped = self._bound[method.__name__]
        return {**fixed, **dict.fromkeys(stamped, timestamp)}

    def process(self, element, micros: int) -> list:
        stamp = Timestamp(micros=micros)
        return list(self.fn.process(element, **self._arguments(self.fn.process, stamp)) or [])

    def fire(self, timer: str, callback, at: int | None = None) -> list:
        """Deliver ``timer`` at ``at`` (default: where it is set), clearing it first."""
        at = self.timers.pop(timer) if at is None else at
        self.timers.pop(timer, None)
        return list(callback(**self._arguments(callback, Timestamp(micros=at))) or [])


class _EncodedCell:
    def __init__(self, spec):
        self._coder, self._data = spec.coder, None
        self._bag = isinstance(spec, userstate.BagStateSpec)

    def read(self):
        if self._bag:
            return [self._coder.decode(item) for item in self._data or []]
        return None if self._data is None else self._coder.decode(self._data)

    def write(self, value) -> None:
        self._data = self._coder.encode(value)

    def add(self, value) -> None:
        if self._data is None:
            self._data = []
        self._data.append(self._coder.encode(value))

    def clear(self) -> None:
        self._data = None


class _Timer:
    def __init__(self, timers: dict, name: str):
        self._timers, self._name = timers, name

    def set(self, at: Timestamp) -> None:
        self._timers[self._name] = int(at.micros)

    def clear(self) -> None:
        self._timers.pop(self._name, None)
