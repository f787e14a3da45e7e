"""Per-series logic: de-duplication, frequency inference, regularisation, scaling, calendar.

Pure numpy/pandas functions; the Beam job applies them to one series at a time, so memory is
bounded by the largest series, not by the number of series.
"""

from __future__ import annotations

import collections
import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from rnncast.pipeline.core.choices import FILL_METHODS, MAX_GAP_STEPS, SCALING_METHODS

NAT = np.iinfo(np.int64).min
NS_PER_SECOND = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_SECOND
# The longest seasonal lag a model remembers: a week of 5-minute steps.
MAX_SEASONAL_LAG = 2016
# A seasonal lag is used when the typical training series holds this many of its cycles.
MIN_LAG_CYCLES = 3


@dataclass
class SeriesPart:
    """Accepted rows of one series from one input file (any order)."""

    source: str
    row_number: np.ndarray  # int64 [n]
    timestamp: np.ndarray  # int64 ns since epoch, UTC [n]
    value: np.ndarray  # float64 [n]
    covariates: np.ndarray  # float64 [n, k]

    def __len__(self) -> int:
        return len(self.value)


@dataclass
class Observations:
    """Unique, time-ordered observations of one series, with provenance of every row."""

    timestamp: np.ndarray  # int64 ns, strictly increasing
    value: np.ndarray
    covariates: np.ndarray
    source_index: np.ndarray  # int32 index into ``sources``
    row_number: np.ndarray
    sources: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.value)

    def subset(self, mask: np.ndarray) -> Observations:
        return Observations(
            self.timestamp[mask],
            self.value[mask],
            self.covariates[mask],
            self.source_index[mask],
            self.row_number[mask],
            self.sources,
        )


@dataclass
class RegularSeries:
    """A series on a regular grid: ``timestamp[i] = grid point i``; unobserved points are filled."""

    series_id: str
    timestamp: np.ndarray  # int64 ns [n]
    value: np.ndarray  # float64 [n], filled where not observed
    observed: np.ndarray  # bool [n]
    covariates: np.ndarray  # float64 [n, k], filled like value

    def __len__(self) -> int:
        return len(self.value)


def combine_parts(parts: list[SeriesPart]) -> Observations:
    """Concatenate the (one or more) parts of one series, duplicates included, in provenance
    order."""
    parts = sorted(parts, key=lambda p: (p.source, int(p.row_number[0])))
    sources = tuple(sorted({p.source for p in parts}))
    index = {s: i for i, s in enumerate(sources)}
    return Observations(
        timestamp=np.concatenate([p.timestamp for p in parts]),
        value=np.concatenate([p.value for p in parts]),
        covariates=np.concatenate([p.covariates for p in parts]),
        source_index=np.concatenate([np.full(len(p), index[p.source], np.int32) for p in parts]),
        row_number=np.concatenate([p.row_number for p in parts]),
        sources=sources,
    )


def deduplicate(rows: Observations) -> tuple[Observations, dict[str, np.ndarray]]:
    """Sort by time and resolve repeated timestamps.

    An exact repeat of an earlier row (in file, then row order) is a ``duplicate``; when one
    timestamp carries different values, every row of it is a ``conflict``. Returns the unique
    observations and, per reason, the positions (into ``rows``) that are rejected.
    """
    if len(rows) and np.all(rows.timestamp[1:] > rows.timestamp[:-1]):
        # Already time-ordered without repeats (the common case): the sort below would be
        # the identity and reject nothing.
        none = np.zeros(0, np.int64)
        return rows.subset(np.arange(len(rows))), {"duplicate": none, "conflict": none.copy()}
    order = np.lexsort((rows.row_number, rows.source_index, rows.timestamp))
    ts = rows.timestamp[order]
    payload = np.column_stack([rows.value[order], rows.covariates[order]])
    n = len(ts)
    if n == 0:
        return rows, {"duplicate": np.zeros(0, np.int64), "conflict": np.zeros(0, np.int64)}
    starts_group = np.ones(n, dtype=bool)
    starts_group[1:] = ts[1:] != ts[:-1]
    group = np.cumsum(starts_group) - 1
    first_of_group = np.flatnonzero(starts_group)
    differs = np.any(payload != payload[first_of_group[group]], axis=1)
    conflict_group = np.zeros(len(first_of_group), dtype=bool)
    np.logical_or.at(conflict_group, group, differs)
    conflict = conflict_group[group]
    duplicate = ~starts_group & ~conflict
    keep = starts_group & ~conflict
    rejected = {"duplicate": order[duplicate], "conflict": order[conflict]}
    return rows.subset(order[keep]), rejected


EDGE_FRACTION = 0.1


def isolated_by_gap(
    timestamp: np.ndarray,
    max_gap_steps: float = MAX_GAP_STEPS,
    edge_fraction: float = EDGE_FRACTION,
) -> np.ndarray:
    """Mask of the points of one series (sorted, unique timestamps) that lie apart from it.

    The series is cut into clusters at every gap longer than ``max_gap_steps`` times its median
    spacing. Clusters at the edges are isolated, from the first one inward and from the last
    one inward, while the points cut on that side stay within ``edge_fraction`` of the
    series' points; the largest cluster (the latest of equally large ones) is always kept, and
    interior clusters are never cut. So a typo ten years after 300 hourly points is cut, a
    year-long outage between two halves is not. ``max_gap_steps <= 0`` turns the check off.
    """
    n = len(timestamp)
    isolated = np.zeros(n, dtype=bool)
    if max_gap_steps <= 0 or n < 3:
        return isolated
    gaps = np.diff(timestamp)
    if gaps.max() <= max_gap_steps * float(gaps.min()):
        # No gap can exceed max_gap_steps x the median (>= the smallest gap): skip the
        # median's partial sort, the dearest step of loading a series.
        return isolated
    breaks = np.flatnonzero(gaps > max_gap_steps * float(np.median(gaps))) + 1
    if len(breaks) == 0:
        return isolated
    bounds = np.concatenate([[0], breaks, [n]])
    sizes = np.diff(bounds)
    largest = len(sizes) - 1 - int(np.argmax(sizes[::-1]))
    budget = edge_fraction * n
    first = 0  # clusters [first, last] are kept
    while first < largest and bounds[first + 1] <= budget:
        first += 1
    last = len(sizes) - 1
    while last > largest and n - bounds[last] <= budget:
        last -= 1
    isolated[: bounds[first]] = True
    isolated[bounds[last + 1] :] = True
    return isolated


def filled_fraction(observed: np.ndarray) -> float:
    """Share of a regular series' grid points that were filled, not observed (0 when empty)."""
    return float(1.0 - observed.mean()) if len(observed) else 0.0


def frequency_vote(timestamp: np.ndarray) -> tuple[str | None, int | None]:
    """One series' evidence for the dataset frequency: pandas' inferred alias, or the modal step."""
    if len(timestamp) < 2:
        return None, None
    alias = None
    if len(timestamp) >= 3:
        try:
            alias = pd.infer_freq(pd.DatetimeIndex(timestamp.astype("datetime64[ns]")))
        except (TypeError, ValueError):
            alias = None
    steps, counts = np.unique(np.diff(timestamp), return_counts=True)
    return alias, int(steps[np.argmax(counts)])


def choose_frequency(aliases: collections.Counter, steps: collections.Counter) -> str:
    """Pick the dataset frequency from all series' votes (most votes wins, ties by name/size)."""
    if aliases:
        return sorted(aliases.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    if not steps:
        raise ValueError(
            "cannot infer the frequency: no series has two or more valid points; pass --freq"
        )
    step = sorted(steps.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    if 27 * NS_PER_DAY <= step <= 32 * NS_PER_DAY or step >= 365 * NS_PER_DAY:
        raise ValueError(
            "cannot infer a calendar frequency (month/quarter/year) from series with gaps; "
            "pass --freq, e.g. --freq MS"
        )
    return to_offset(pd.Timedelta(step, unit="ns")).freqstr


def validate_frequency(freq: str) -> str:
    """Normalise a pandas offset alias; refuse unknown or sub-second frequencies."""
    try:
        offset = to_offset(freq)
    except ValueError as err:
        raise ValueError(
            f"--freq {freq!r} is not a pandas offset alias (e.g. h, D, 15min, MS)"
        ) from err
    if nominal_period_ns(offset.freqstr) < NS_PER_SECOND:
        raise ValueError(f"--freq {freq!r} is below one second; rnncast supports 1s and coarser")
    return offset.freqstr


@functools.lru_cache(maxsize=128)
def offset_of(freq: str) -> pd.DateOffset:
    """``to_offset(freq)``, cached: an offset is immutable, and pandas takes ~40 us to parse
    one, which a stream paid in every firing of every shard."""
    return to_offset(freq)


def nominal_period_ns(freq: str) -> int:
    """Typical length of one step of ``freq`` in nanoseconds (exact for fixed frequencies)."""
    offset = offset_of(freq)
    if isinstance(offset, pd.offsets.Tick):
        return int(offset.nanos)
    origin = pd.Timestamp("2001-01-01")
    return int(((origin + 2 * offset) - (origin + offset)).value)


def grid_offsets(freq: str, origins: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Timestamps ``steps`` grid points after each of ``origins`` (negative: before), as an
    int64 array ``[len(origins), len(steps)]``; calendar frequencies follow the calendar."""
    origins = np.asarray(origins, np.int64)
    steps = np.asarray(steps, np.int64)
    offset = offset_of(freq)
    if isinstance(offset, pd.offsets.Tick):
        return origins[:, None] + steps[None, :] * int(offset.nanos)
    return np.array(
        [[(pd.Timestamp(int(o)) + int(k) * offset).value for k in steps] for o in origins],
        np.int64,
    ).reshape(len(origins), len(steps))


def grid_positions(
    timestamp: np.ndarray, freq: str, anchor: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Grid index of each (sorted, unique) timestamp, or -1 where it is off the grid; and the grid.

    Fixed frequencies are anchored at the phase most timestamps share; calendar frequencies
    (month start, week ending Sunday, ...) use pandas' anchoring. ``anchor`` (ns) forces the
    grid through that instant (an incremental run continues the grid of the previous one).
    """
    if len(timestamp) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    offset = offset_of(freq)
    if isinstance(offset, pd.offsets.Tick):
        step = int(offset.nanos)
        # Anchor at the phase most points share, so one stray first point cannot shift the grid.
        phase = timestamp % step
        if anchor is None and phase.min() == phase.max():
            grid_phase = phase[0]  # one phase (the common case): no need to count them
        elif anchor is None:
            phases, first_seen, counts = np.unique(phase, return_index=True, return_counts=True)
            grid_phase = phases[np.lexsort((first_seen, -counts))[0]]
        else:
            grid_phase = anchor % step
        on_grid = phase == grid_phase
        anchor = timestamp[on_grid][0]
        position = np.where(on_grid, (timestamp - anchor) // step, -1)
        last = int(position.max())
        return position, anchor + step * np.arange(last + 1, dtype=np.int64)
    grid = (
        pd.date_range(
            pd.Timestamp(int(timestamp[0] if anchor is None else anchor), unit="ns"),
            pd.Timestamp(int(timestamp[-1]), unit="ns"),
            freq=offset,
        )
        .as_unit("ns")
        .asi8
    )
    where = np.searchsorted(grid, timestamp)
    inside = where < len(grid)
    on_grid = np.zeros(len(timestamp), dtype=bool)
    on_grid[inside] = grid[where[inside]] == timestamp[inside]
    position = np.where(on_grid, where, -1)
    if not on_grid.any():
        return position, np.zeros(0, np.int64)
    first, last = position[on_grid][0], position[on_grid][-1]
    return np.where(on_grid, position - first, -1), grid[first : last + 1]


def regularise(
    series_id: str,
    observations: Observations,
    freq: str,
    fill: str = "ffill",
    anchor: int | None = None,
) -> tuple[RegularSeries, np.ndarray]:
    """Place observations on the regular grid; fill missing points (flagged unobserved).

    Returns the regular series and a mask of observations that are off the grid (rejected).
    """
    if fill not in FILL_METHODS:
        raise ValueError(f"unknown fill method {fill!r}; choose from {FILL_METHODS}")
    position, grid = grid_positions(observations.timestamp, freq, anchor)
    on_grid = position >= 0
    n = len(grid)
    observed = np.zeros(n, dtype=bool)
    observed[position[on_grid]] = True
    width = observations.covariates.shape[1]
    raw = np.zeros((n, 1 + width))
    raw[position[on_grid]] = np.column_stack(
        [observations.value[on_grid], observations.covariates[on_grid]]
    )
    filled = fill_missing(raw, observed, fill)
    return (
        RegularSeries(series_id, grid, filled[:, 0].copy(), observed, filled[:, 1:].copy()),
        ~on_grid,
    )


def fill_missing(values: np.ndarray, observed: np.ndarray, method: str) -> np.ndarray:
    """Fill rows of ``values`` [n, k] where ``observed`` is False (the first row is observed)."""
    if observed.all() or len(observed) == 0:
        return values
    if method == "zero":
        out = values.copy()
        out[~observed] = 0.0
        return out
    observed_at = np.flatnonzero(observed)
    if method == "ffill":
        last = np.maximum.accumulate(np.where(observed, np.arange(len(observed)), 0))
        return values[last]
    out = np.empty_like(values)
    steps = np.arange(len(observed))
    for k in range(values.shape[1]):
        out[:, k] = np.interp(steps, observed_at, values[observed_at, k])
    return out


def split_index(
    timestamp: np.ndarray, validation_fraction: float, validation_start_ns: int | None
) -> int:
    """Number of leading grid points that belong to training; the rest is validation."""
    n = len(timestamp)
    if validation_start_ns is not None:
        return int(np.searchsorted(timestamp, validation_start_ns, side="left"))
    return n - int(round(validation_fraction * n))


def scaling_stats(value: np.ndarray, observed: np.ndarray, method: str) -> tuple[float, float]:
    """Per-series ``(loc, scale)`` from observed training values; scaled = (x - loc) / scale."""
    if method not in SCALING_METHODS:
        raise ValueError(f"unknown scaling {method!r}; choose from {SCALING_METHODS}")
    seen = value[observed]
    if method == "none" or len(seen) == 0:
        return 0.0, 1.0
    if method == "mean":
        scale = float(np.mean(np.abs(seen)))
        return 0.0, scale if np.isfinite(scale) and scale > 0 else 1.0
    loc, scale = float(np.mean(seen)), float(np.std(seen))
    return loc, scale if np.isfinite(scale) and scale > 0 else 1.0


def seasonal_lags(freq: str) -> tuple[int, ...]:
    """The seasonal lags (in steps) a model of this frequency may see, the main season first:
    below daily data the week, then the day; daily data the week, then 52 weeks (364 days,
    so weekdays line up); weekly 52, monthly 12, quarterly 4; yearly data none. Lags longer
    than ``MAX_SEASONAL_LAG`` steps are left out (their memory would dominate the state);
    :func:`usable_lags` drops those the data is too short for.

    The week leads below daily data because pedestrian and traffic counts differ between
    weekdays and weekends: on the benchmark's hourly validation origins anchoring on the week
    beat the day on the pedestrian counts and was level on the flights (BENCHMARKS.md,
    issue 12)."""
    period = nominal_period_ns(freq)
    if period < NS_PER_DAY:
        per_day = NS_PER_DAY / period
        lags = (round(7 * per_day), round(per_day)) if per_day == round(per_day) else ()
    elif period == NS_PER_DAY:
        lags = (7, 364)
    elif period < 7 * NS_PER_DAY:
        lags = (7 * NS_PER_DAY // period,) if (7 * NS_PER_DAY) % period == 0 else ()
    elif period < 28 * NS_PER_DAY:
        lags = (52,)
    elif period < 80 * NS_PER_DAY:
        lags = (12,)
    elif period < 300 * NS_PER_DAY:
        lags = (4,)
    else:
        lags = ()
    return tuple(int(lag) for lag in lags if 1 < lag <= MAX_SEASONAL_LAG)


def usable_lags(lags: tuple[int, ...], train_lengths: list[int]) -> tuple[int, ...]:
    """The lags whose ``MIN_LAG_CYCLES`` cycles fit in the median training length: a lag the
    model sees only in the last part of each series (a yearly lag on two years of daily
    data) made the benchmark's validation error worse, one that repeats often made it
    better (BENCHMARKS.md, issue 12)."""
    if not train_lengths:
        return ()
    typical = float(np.median(train_lengths))
    return tuple(lag for lag in lags if lag * MIN_LAG_CYCLES <= typical)


def lag_errors(
    value: np.ndarray, observed: np.ndarray, scale: float, lags: tuple[int, ...]
) -> dict[int, tuple[float, int]]:
    """In-sample error of "same as ``lag`` steps ago" per lag (1: naive, a season: seasonal
    naive): the sum of ``|x[t] - x[t-lag]| / scale`` over pairs of observed grid points, and
    the number of pairs. Summed over series, it tells which baseline fits the data."""
    out = {}
    for lag in lags:  # a lag as long as the series leaves empty slices: no pair
        both = observed[lag:] & observed[:-lag]
        diff = np.abs(value[lag:] - value[:-lag])[both] / scale
        out[lag] = (float(diff.sum()), int(both.sum()))
    return out


def best_baseline_lag(errors: dict[int, float]) -> int:
    """The lag (1 or a seasonal lag) with the lowest in-sample error; ties go to the
    shorter lag, and 1 where nothing was measured."""
    measured = {lag: e for lag, e in errors.items() if e is not None and np.isfinite(e)}
    return min(measured, key=lambda lag: (measured[lag], lag)) if measured else 1


def calendar_feature_names(freq: str) -> tuple[str, ...]:
    """Calendar features that vary within the seasonal cycles this frequency can resolve."""
    period = nominal_period_ns(freq)
    names: list[str] = []
    if period < NS_PER_DAY:
        names += ["hour_of_day_sin", "hour_of_day_cos"]
    if period < 7 * NS_PER_DAY:
        names += ["day_of_week_sin", "day_of_week_cos"]
    if period < 300 * NS_PER_DAY:
        names += ["day_of_year_sin", "day_of_year_cos"]
    return tuple(names)


def calendar_features(timestamp: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """Sine/cosine encodings [n, len(names)] of the cycles in ``names`` (UTC)."""
    if len(timestamp) and timestamp[0] == timestamp[-1] and (timestamp == timestamp[0]).all():
        # One time for every point: a stream firing's tick of many series. Every shard's
        # firing asks for the same tick, and the ~20 array steps below cost the same for one
        # point as for a dozen, so the row is computed once per tick and process.
        row = _calendar_row(int(timestamp[0]), tuple(names))
        return np.repeat(row[None, :], len(timestamp), axis=0)
    return _calendar_features(timestamp, names)


@functools.lru_cache(maxsize=1024)
def _calendar_row(timestamp: int, names: tuple[str, ...]) -> np.ndarray:
    row = _calendar_features(np.array([timestamp], np.int64), names)[0]
    row.flags.writeable = False  # shared by every caller
    return row


def _calendar_features(timestamp: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    seconds = timestamp // NS_PER_SECOND
    day = seconds // 86_400
    day_fraction = (seconds % 86_400) / 86_400.0
    phases = {}
    if any(n.startswith("hour_of_day") for n in names):
        phases["hour_of_day"] = day_fraction
    if any(n.startswith("day_of_week") for n in names):
        phases["day_of_week"] = (((day + 3) % 7) + day_fraction) / 7.0  # 1970-01-01 was a Thursday
    if any(n.startswith("day_of_year") for n in names):
        # numpy calendar arithmetic (what pandas' dayofyear gives, without its ~0.3 ms of
        # overhead per call, which the stream pays for every advance of a series)
        days = timestamp.astype("datetime64[ns]").astype("datetime64[D]")
        day_of_year = (days - days.astype("datetime64[Y]")).astype(np.int64) + 1
        phases["day_of_year"] = (day_of_year - 1 + day_fraction) / 365.25
    out = np.empty((len(timestamp), len(names)))
    for k, name in enumerate(names):
        cycle, _, trig = name.rpartition("_")
        angle = 2 * np.pi * phases[cycle]
        out[:, k] = np.sin(angle) if trig == "sin" else np.cos(angle)
    return out


def model_features(regular: RegularSeries, calendar_names: tuple[str, ...]) -> np.ndarray:
    """Model inputs [n, F] (float32, raw units): value, covariates, calendar features."""
    calendar = calendar_features(regular.timestamp, calendar_names)
    return np.column_stack([regular.value, regular.covariates, calendar]).astype(np.float32)


def utc_ns(text: str | None) -> int | None:
    """A timestamp flag (ISO-8601; naive = UTC, offsets converted) as ns since the epoch."""
    if text is None:
        return None
    stamp = pd.Timestamp(text)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return int(stamp.as_unit("ns").value)
