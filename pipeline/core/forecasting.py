"""Batch inference logic: per-series preparation, incremental state, lane-batched model runs.

Pure numpy/pandas; the model is any ``step`` callable with the exported signature (the jobs
pass ``rnncast.pipeline.io.model_loader.LoadedModel.step``), so the logic is reused by the
Beam jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rnncast import schemas
from rnncast.errors import ModelError
from rnncast.pipeline.core import series as series_lib

# Statuses of a series in one run (every series known to the run gets exactly one).
FULL = "full"  # forecast from the whole history in the input
INCREMENTAL = "incremental"  # continued from saved state over the new points
RECOMPUTED = "recomputed"  # saved state discarded: the input rewrites consumed history
FROM_STATE = "from_state"  # no new points: the saved forecast is emitted again
TOO_SHORT = "too_short"  # a series unknown to the model with too little history to scale
NO_DATA = "no_data"  # known to the model or the state, but no valid point in this run
STATUSES = (FULL, INCREMENTAL, RECOMPUTED, FROM_STATE, TOO_SHORT, NO_DATA)

StepFn = Callable[..., dict]

MODEL_FILE = "rnncast_model.json"
REEXPORT = "re-export the model with 'rnncast export --model-dir MODEL_DIR'"
# Keys of rnncast_model.json the jobs read.
MODEL_KEYS = (
    "fingerprint",
    "model",
    "freq",
    "fill",
    "num_steps",
    "horizon",
    "quantiles",
    "feature_names",
    "covariates",
    "calendar_features",
    "state_size",
    "scaling",
    "series",
)


@dataclass(frozen=True)
class ModelInfo:
    """What the forecast job needs to know about an exported model (``rnncast_model.json``)."""

    path: str
    fingerprint: str
    freq: str
    fill: str
    num_steps: int
    horizon: int
    quantiles: tuple[float, ...]
    feature_names: tuple[str, ...]
    covariates: tuple[str, ...]
    calendar_features: tuple[str, ...]
    state_size: tuple[int, ...]
    scaling: str
    series_scaling: dict = field(default_factory=dict, hash=False, compare=False)
    network: dict = field(default_factory=dict, hash=False, compare=False)  # RNNForecaster config

    @classmethod
    def from_json(cls, info, export_dir: str, path: str) -> ModelInfo:
        """Check and read the parsed ``rnncast_model.json`` of ``export_dir`` (read from
        ``path``; :func:`rnncast.pipeline.io.model_loader.read_model_info` reads the file)."""
        fix = REEXPORT
        if not isinstance(info, dict):
            raise ModelError(f"{path}: not a JSON object; {fix}")
        missing = [key for key in MODEL_KEYS if key not in info]
        if missing:
            raise ModelError(f"{path}: missing {', '.join(missing)}; {fix}")
        try:
            return cls(
                path=export_dir,
                fingerprint=str(info["fingerprint"]),
                freq=str(info["freq"]),
                fill=str(info["fill"]),
                num_steps=int(info["num_steps"]),
                horizon=int(info["horizon"]),
                quantiles=tuple(float(q) for q in info["quantiles"]),
                feature_names=tuple(info["feature_names"]),
                covariates=tuple(info["covariates"]),
                calendar_features=tuple(info["calendar_features"]),
                state_size=tuple(int(s) for s in info["state_size"]),
                scaling=str(info["scaling"]),
                series_scaling=dict(info["series"]),
                network=dict(info["model"]),
            )
        except (TypeError, ValueError) as err:
            raise ModelError(f"{path}: malformed entry ({err}); {fix}") from err

    @property
    def quantile_columns(self) -> list[str]:
        return [quantile_column(q) for q in self.quantiles]


def quantile_column(level: float) -> str:
    """Column name of a quantile level in the forecast output, e.g. ``q0.1``."""
    return f"q{level:g}"


@dataclass
class SeriesState:
    """What a series needs to continue in a later run (plain arrays; stored as Parquet)."""

    series_id: str
    first_timestamp: int  # ns, first grid point
    last_timestamp: int  # ns, last observed point consumed
    last_raw: np.ndarray  # float64 [1 + k]: value and covariates at last_timestamp
    digest: int  # order-independent hash of every consumed observed point
    loc: float
    scale: float
    scaling: str  # "training" or "own_history"
    state: np.ndarray  # float32 [S, U]
    point: np.ndarray  # float64 [H] forecast from last_timestamp, original units
    quantiles: np.ndarray  # float64 [H, Q]
    model_fingerprint: str


_HASH_TIME = np.uint64(0x9E3779B97F4A7C15)
_HASH_COLUMN = np.uint64(0xC2B2AE3D27D4EB4F)
_HASH_MIX = np.uint64(0xBF58476D1CE4E5B9)
_HASH_SHIFT = np.uint64(29)


def point_hashes(timestamp: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """64-bit hash of each observed point (timestamp and raw value/covariates)."""
    # (uint64 arithmetic wraps silently on arrays; in place, as a stream hashes every tick.)
    h = np.asarray(timestamp, np.int64).astype(np.uint64)
    h *= _HASH_TIME
    for k in range(raw.shape[1]):
        bits = np.ascontiguousarray(raw[:, k], dtype=np.float64).view(np.uint64)
        column = bits + np.uint64(k + 1)
        column *= _HASH_COLUMN
        h ^= column
        h ^= h >> _HASH_SHIFT
        h *= _HASH_MIX
    return h


def points_digest(timestamp: np.ndarray, raw: np.ndarray) -> int:
    """Order-independent 64-bit hash of observed points (sum of per-point hashes), so the
    digest of a history extended by new points is the sum of both parts' digests."""
    if len(timestamp) == 0:
        return 0
    return int(point_hashes(timestamp, raw).sum(dtype=np.uint64))


@dataclass
class Work:
    """One series' pending model run: the features to feed and the state to start from."""

    series_id: str
    status: str
    features: np.ndarray  # float32 [n, F], raw units
    observed: np.ndarray  # bool [n]
    initial_state: np.ndarray | None  # float32 [S, U] or None (zeros)
    first_timestamp: int
    last_timestamp: int
    last_raw: np.ndarray
    digest: int
    loc: float
    scale: float
    scaling: str


def scaling_for(series_id: str, regular: series_lib.RegularSeries, model: ModelInfo):
    """The model's training scaling for a known series; for an unknown one, the statistics of
    its first ``num_steps`` observed points (so later runs keep the same scaling), or None
    when it has fewer."""
    known = model.series_scaling.get(series_id)
    if known is not None:
        return known["loc"], known["scale"], "training"
    values = regular.value[regular.observed]
    if len(values) < model.num_steps:
        return None
    head = values[: model.num_steps]
    loc, scale = series_lib.scaling_stats(head, np.ones(len(head), bool), model.scaling)
    return loc, scale, "own_history"


def prepare(
    series_id: str,
    unique: series_lib.Observations | None,
    saved: SeriesState | None,
    model: ModelInfo,
    as_of: int | None,
) -> tuple[Work | SeriesState | str, np.ndarray, int]:
    """Decide how one series is forecast in this run.

    Returns ``(outcome, off_grid, skipped)``: ``outcome`` is a :class:`Work` to run, the saved
    :class:`SeriesState` when there is nothing new, or a status string (``too_short``,
    ``no_data``); ``off_grid`` masks ``unique``'s rows off the grid; ``skipped`` counts valid
    points not used (already consumed, or after ``as_of``).
    """
    empty_mask = np.zeros(0 if unique is None else len(unique), bool)
    if unique is None or len(unique) == 0:
        return (saved if saved is not None else NO_DATA), empty_mask, 0
    keep = np.ones(len(unique), bool)
    if as_of is not None:
        keep &= unique.timestamp <= as_of
    skipped = int((~keep).sum())
    rows = unique.subset(keep)
    width = rows.covariates.shape[1]
    if saved is not None:
        old = rows.timestamp <= saved.last_timestamp
        raw_old = np.column_stack([rows.value[old], rows.covariates[old]])
        rewrites = (
            old.any()
            and rows.timestamp[0] <= saved.first_timestamp
            and points_digest(rows.timestamp[old], raw_old) != saved.digest
        )
        if not rewrites:
            skipped += int(old.sum())
            new = rows.subset(~old)
            if len(new) == 0:
                return saved, _mask(keep, np.zeros(len(rows), bool)), skipped
            # Continue the grid through the last consumed point, then drop it.
            anchor = series_lib.Observations(
                np.array([saved.last_timestamp], np.int64),
                saved.last_raw[:1].copy(),
                saved.last_raw[None, 1:].copy(),
                np.zeros(1, np.int32),
                np.zeros(1, np.int64),
                ("<state>",),
            )
            joined = _concat(anchor, new)
            regular, off_grid = series_lib.regularise(
                series_id, joined, model.freq, model.fill, anchor=saved.last_timestamp
            )
            regular = _drop_first(regular)
            off = np.zeros(len(rows), bool)
            off[~old] = off_grid[1:]
            if len(regular) == 0:  # every new point was off the grid
                return saved, _mask(keep, off), skipped
            observed_raw = np.column_stack([new.value, new.covariates])[~off_grid[1:]]
            digest = (
                saved.digest + points_digest(new.timestamp[~off_grid[1:]], observed_raw)
            ) % 2**64
            return (
                _work(
                    series_id,
                    INCREMENTAL,
                    regular,
                    model,
                    saved.state,
                    saved.first_timestamp,
                    digest,
                    saved.loc,
                    saved.scale,
                    saved.scaling,
                ),
                _mask(keep, off),
                skipped,
            )
    status = RECOMPUTED if saved is not None else FULL
    regular, off_grid = series_lib.regularise(series_id, rows, model.freq, model.fill)
    if len(regular) == 0:
        return NO_DATA, _mask(keep, off_grid), skipped
    scaling = scaling_for(series_id, regular, model)
    if scaling is None:
        return TOO_SHORT, _mask(keep, off_grid), skipped
    observed_raw = np.column_stack([rows.value, rows.covariates])[~off_grid]
    digest = points_digest(rows.timestamp[~off_grid], observed_raw.reshape(-1, 1 + width))
    return (
        _work(series_id, status, regular, model, None, int(regular.timestamp[0]), digest, *scaling),
        _mask(keep, off_grid),
        skipped,
    )


def _mask(keep: np.ndarray, inner: np.ndarray) -> np.ndarray:
    out = np.zeros(len(keep), bool)
    out[keep] = inner
    return out


def _concat(a: series_lib.Observations, b: series_lib.Observations) -> series_lib.Observations:
    return series_lib.Observations(
        np.concatenate([a.timestamp, b.timestamp]),
        np.concatenate([a.value, b.value]),
        np.concatenate([a.covariates, b.covariates]),
        np.zeros(len(a) + len(b), np.int32),
        np.concatenate([a.row_number, b.row_number]),
        a.sources,
    )


def _drop_first(regular: series_lib.RegularSeries) -> series_lib.RegularSeries:
    return series_lib.RegularSeries(
        regular.series_id,
        regular.timestamp[1:],
        regular.value[1:],
        regular.observed[1:],
        regular.covariates[1:],
    )


def _work(series_id, status, regular, model, state, first, digest, loc, scale, scaling) -> Work:
    observed_at = np.flatnonzero(regular.observed)
    last = observed_at[-1]  # the grid ends at an observed point
    return Work(
        series_id=series_id,
        status=status,
        features=series_lib.model_features(regular, model.calendar_features),
        observed=regular.observed,
        initial_state=state,
        first_timestamp=first,
        last_timestamp=int(regular.timestamp[last]),
        last_raw=np.concatenate([[regular.value[last]], regular.covariates[last]]),
        digest=int(digest),
        loc=float(loc),
        scale=float(scale),
        scaling=scaling,
    )


@dataclass(frozen=True)
class Extension:
    """:func:`extend_columns`' result for ``k`` series of ``N`` new points in all."""

    ok: np.ndarray  # bool [k]: the series extends (its Work is the common case)
    hashes: np.ndarray  # uint64 [N]: point_hashes of every row
    features: np.ndarray | None  # float32 [N, F] (None: no series extends)
    digests: np.ndarray | None  # uint64 [k]: the sum of each series' new points' hashes
    last: np.ndarray | None  # int64 [k]: each series' last row


def extend_columns(
    last_timestamps: np.ndarray,
    timestamp: np.ndarray,
    raw: np.ndarray,
    offsets: np.ndarray,
    model: ModelInfo,
) -> Extension:
    """The array part of :func:`extend_many`, for series given as columns: series ``i`` was
    last consumed at ``last_timestamps[i]`` and its new points are rows
    ``offsets[i]:offsets[i + 1]`` of ``timestamp`` and ``raw``. One grid check, one
    calendar-feature pass and one hash pass cover every series."""
    offsets = np.asarray(offsets, np.int64)
    counts = np.diff(offsets)
    hashes = point_hashes(timestamp, raw)
    none = np.zeros(len(counts), bool)
    offset = series_lib.offset_of(model.freq)
    if len(timestamp) == 0 or not isinstance(offset, pd.offsets.Tick):
        return Extension(none, hashes, None, None, None)
    period = int(offset.nanos)
    last = np.asarray(last_timestamps, np.int64)
    if len(timestamp) == len(counts) and (counts == 1).all():
        # One point per series (a stream's tick): the same, with no ranks or sums to take.
        ok = timestamp == last + period
        if not ok.any():
            return Extension(ok, hashes, None, None, None)
        features = _features(raw, timestamp, model)
        return Extension(ok, hashes, features, hashes, np.arange(len(counts)))
    lane = np.repeat(np.arange(len(counts)), counts)
    rank = np.arange(len(timestamp)) - np.repeat(offsets[:-1], counts)
    # Contiguous: point j of a series is exactly j + 1 grid steps after its last consumed one.
    fits = timestamp == last[lane] + (rank + 1) * period
    # (np.minimum / np.maximum, not .clip: clip costs ~15 us a call in numpy 2, and a stream
    # pays these once per firing of every shard.)
    starts = np.minimum(offsets[:-1], len(fits) - 1)
    ok = (counts > 0) & (np.add.reduceat(fits, starts) == counts)
    if not ok.any():
        return Extension(ok, hashes, None, None, None)
    features = _features(raw, timestamp, model)
    digests = np.add.reduceat(hashes, starts, dtype=np.uint64)  # arrays wrap silently
    return Extension(ok, hashes, features, digests, np.maximum(offsets[1:] - 1, 0))


def _features(raw: np.ndarray, timestamp: np.ndarray, model: ModelInfo) -> np.ndarray:
    """Model inputs (float32): the raw columns, then the calendar features."""
    width = raw.shape[1]
    features = np.empty((len(raw), width + len(model.calendar_features)), np.float32)
    features[:, :width] = raw
    features[:, width:] = series_lib.calendar_features(timestamp, model.calendar_features)
    return features


def extend_many(
    series_ids: list[str],
    saved: list[SeriesState],
    timestamp: np.ndarray,
    raw: np.ndarray,
    offsets: np.ndarray,
    model: ModelInfo,
) -> tuple[list[Work | None], np.ndarray]:
    """:func:`prepare` of many saved series at once for their common streaming case: new
    points right after the last consumed one, on a fixed-frequency grid, one per grid step.

    Series ``i``'s new points are rows ``offsets[i]:offsets[i + 1]`` of ``timestamp`` (int64
    ns) and ``raw`` (float64 ``[N, 1 + k]``: value, covariates), in the order :func:`prepare`
    would see them after de-duplication. The arrays are prepared for every series at once
    (:func:`extend_columns`; per series the same element-wise arithmetic as :func:`prepare`,
    so the same bytes). Returns per series its :class:`Work`, or None where the case does not
    apply (unsorted or repeated timestamps, a point at or before the last consumed one, off
    the grid, a gap to fill, a calendar frequency: the caller prepares those one by one), and
    the hash of every row (:func:`point_hashes`, for de-duplication)."""
    last = np.array([s.last_timestamp for s in saved], np.int64)
    extension = extend_columns(last, timestamp, raw, offsets, model)
    out: list[Work | None] = [None] * len(series_ids)
    if extension.features is None:
        return out, extension.hashes
    # Per-series values gathered once for all series (a firing prepares hundreds of them):
    # each series then takes views and Python numbers.
    bounds = np.asarray(offsets, np.int64).tolist()
    last_timestamps = timestamp[extension.last].tolist()
    last_raws = raw[extension.last]  # a copy: one row per series
    observed = np.ones(len(timestamp), bool)
    digest_sums = extension.digests.tolist()
    features = extension.features
    for i in np.flatnonzero(extension.ok).tolist():
        a, b, state = bounds[i], bounds[i + 1], saved[i]
        out[i] = Work(
            series_id=series_ids[i],
            status=INCREMENTAL,
            features=features[a:b],
            observed=observed[a:b],
            initial_state=state.state,
            first_timestamp=state.first_timestamp,
            last_timestamp=last_timestamps[i],
            last_raw=last_raws[i],
            digest=(state.digest + digest_sums[i]) % 2**64,
            loc=state.loc,
            scale=state.scale,
            scaling=state.scaling,
        )
    return out, extension.hashes


def step_lanes(
    step: StepFn,
    inputs: np.ndarray,
    observed: np.ndarray,
    loc: np.ndarray,
    scale: np.ndarray,
    state: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One model call of lanes all as long (``inputs [B, T, F]``, ``T`` at most
    ``num_steps``; ``state [S, B, U]``): each lane's new state ``[B, S, U]``, and its forecast
    from its last step, ``point [B, H]`` and ``quantiles [B, H, Q]`` (float64)."""
    width = inputs.shape[1]
    lanes = len(inputs)
    out = step(inputs, observed, np.full(lanes, width, np.int32), loc, scale, state)
    state = np.ascontiguousarray(np.asarray(out["state"]).transpose(1, 0, 2))
    point = np.asarray(out["point"])[:, width - 1].astype(np.float64)
    quantiles = np.asarray(out["quantiles"])[:, width - 1].astype(np.float64)
    return state, point, quantiles


def run_lanes(works: list[Work], step: StepFn, model: ModelInfo) -> list[SeriesState]:
    """Advance every work item over its features, all items as lanes of one batch per chunk
    of ``num_steps`` (never one series per call); return each series' new state and forecast.
    The last chunk is only as wide as its longest lane (the signature takes any width), so a
    few new points cost a few steps, not ``num_steps``."""
    T = model.num_steps
    B = len(works)
    S, U = len(model.state_size), model.state_size[0]
    F = len(model.feature_names)
    zero = np.zeros((S, U), np.float32)
    # [S, B, U] (a view of [B, S, U]): np.array of the lanes' blocks, several times cheaper
    # than np.stack for the dozen lanes of a stream firing.
    state = np.array(
        [zero if w.initial_state is None else np.reshape(w.initial_state, (S, U)) for w in works],
        np.float32,
    ).transpose(1, 0, 2)
    sizes = [len(w.features) for w in works]
    loc = np.array([w.loc for w in works], np.float32)
    scale = np.array([w.scale for w in works], np.float32)
    width = sizes[0]
    if 0 < width <= T and sizes.count(width) == B:
        # One chunk, every lane as long (a stream firing): read every lane's last step.
        inputs = np.array([w.features for w in works], np.float32)
        observed = np.array([w.observed for w in works], np.float32)
        lanes = step_lanes(step, inputs, observed, loc, scale, state)
        return _new_states(works, *lanes, model)
    lengths = np.array(sizes)
    point = np.zeros((B, model.horizon))
    quantiles = np.zeros((B, model.horizon, len(model.quantiles)))
    for chunk in range(int(np.ceil(lengths.max() / T))):
        start = chunk * T
        steps = np.minimum(np.maximum(lengths - start, 0), T).astype(np.int32)
        width = int(steps.max())
        inputs = np.zeros((B, width, F), np.float32)
        observed = np.zeros((B, width), np.float32)
        for lane, work in enumerate(works):
            if steps[lane]:
                inputs[lane, : steps[lane]] = work.features[start : start + steps[lane]]
                observed[lane, : steps[lane]] = work.observed[start : start + steps[lane]]
        out = step(inputs, observed, steps, loc, scale, state)
        state = np.asarray(out["state"])
        ends = np.flatnonzero((lengths > start) & (lengths <= start + T))
        point[ends] = np.asarray(out["point"])[ends, steps[ends] - 1]
        quantiles[ends] = np.asarray(out["quantiles"])[ends, steps[ends] - 1]
    state = np.ascontiguousarray(state.transpose(1, 0, 2))  # [B, S, U]: one block per lane
    return _new_states(works, state, point, quantiles, model)


def _new_states(works, state, point, quantiles, model: ModelInfo) -> list[SeriesState]:
    """Each lane's new state (from ``state`` ``[B, S, U]``) and forecast."""
    return [
        SeriesState(
            series_id=w.series_id,
            first_timestamp=w.first_timestamp,
            last_timestamp=w.last_timestamp,
            last_raw=w.last_raw,
            digest=w.digest,
            loc=w.loc,
            scale=w.scale,
            scaling=w.scaling,
            state=state[lane],
            point=point[lane],
            quantiles=quantiles[lane],
            model_fingerprint=model.fingerprint,
        )
        for lane, w in enumerate(works)
    ]


def forecast_table(
    finals: list[tuple[str, str, SeriesState | None]], model: ModelInfo, horizon: int
) -> pd.DataFrame:
    """The output rows of all series, sorted by (series_id, step): ``horizon`` forecasts per
    series with a state, one status row (forecast columns null) per series without."""
    finals = sorted(finals, key=lambda f: f[0])
    ready = [(sid, status, s) for sid, status, s in finals if s is not None]
    waiting = [(sid, status) for sid, status, s in finals if s is None]
    origin = np.array([s.last_timestamp for _, _, s in ready], np.int64)
    step = np.tile(np.arange(1, horizon + 1, dtype=np.int32), len(ready))
    target = series_lib.grid_offsets(model.freq, origin, np.arange(1, horizon + 1)).ravel()
    Q = len(model.quantiles)
    quantiles = (
        np.stack([s.quantiles[:horizon] for _, _, s in ready]).reshape(-1, Q)
        if ready
        else np.zeros((0, Q))
    )
    columns = {
        "series_id": np.repeat([sid for sid, _, _ in ready], horizon).astype(object),
        "origin": np.repeat(origin, horizon).astype("datetime64[ns]"),
        "timestamp": target.astype("datetime64[ns]"),
        "step": pd.array(step, dtype="Int32"),  # nullable: status rows have no step
        "forecast": (
            np.concatenate([s.point[:horizon] for _, _, s in ready]) if ready else np.zeros(0)
        ),
        **{name: quantiles[:, k] for k, name in enumerate(model.quantile_columns)},
        "status": np.repeat([status for _, status, _ in ready], horizon).astype(object),
        "scaling": np.repeat([s.scaling for _, _, s in ready], horizon).astype(object),
    }
    frame = pd.DataFrame(columns, columns=forecast_columns(model))
    if waiting:
        rows = pd.DataFrame(
            {"series_id": [sid for sid, _ in waiting], "status": [st for _, st in waiting]},
            columns=forecast_columns(model),
        )
        rows = rows.astype(frame.dtypes.to_dict())  # null values, same column types
        frame = pd.concat([frame, rows], ignore_index=True)
        order = np.lexsort((frame["step"].fillna(0).to_numpy(), frame["series_id"].to_numpy()))
        frame = frame.iloc[order].reset_index(drop=True)
    return frame


def forecast_columns(model: ModelInfo) -> list[str]:
    fields = list(schemas.load(schemas.FORECAST)["columns"])
    at = fields.index("forecast") + 1
    return fields[:at] + model.quantile_columns + fields[at:]


STATE_COLUMNS = tuple(schemas.load(schemas.STATE)["columns"])
STATE_TYPES = {name: c["type"] for name, c in schemas.load(schemas.STATE)["columns"].items()}


def states_to_frame(states: list[SeriesState]) -> pd.DataFrame:
    """Series states as a flat table (lists of floats; no pickle)."""
    return pd.DataFrame(
        {
            "series_id": [s.series_id for s in states],
            "first_timestamp": [s.first_timestamp for s in states],
            "last_timestamp": [s.last_timestamp for s in states],
            "last_raw": [s.last_raw.astype(np.float64).tolist() for s in states],
            "digest": [f"{s.digest:016x}" for s in states],
            "loc": [s.loc for s in states],
            "scale": [s.scale for s in states],
            "scaling": [s.scaling for s in states],
            "state": [s.state.astype(np.float32).ravel().tolist() for s in states],
            "point": [s.point.astype(np.float64).tolist() for s in states],
            "quantiles": [s.quantiles.astype(np.float64).ravel().tolist() for s in states],
            "model_fingerprint": [s.model_fingerprint for s in states],
        },
        columns=list(STATE_COLUMNS),
    )


def states_to_table(states: list[SeriesState]):
    """Series states as an Arrow table with the column types of ``schemas/state.v1.json``
    (``state`` as list<float32>, the model's dtype)."""
    import pyarrow as pa

    schema = pa.schema([(n, schemas.arrow_type(t)) for n, t in STATE_TYPES.items()])
    return pa.Table.from_pandas(states_to_frame(states), schema=schema, preserve_index=False)


def states_from_frame(frame: pd.DataFrame, model: ModelInfo) -> list[SeriesState]:
    """States read back; ``state`` may be list<float32> or (older files) list<float64>."""
    S, U = len(model.state_size), model.state_size[0]
    Q = len(model.quantiles)
    return [
        SeriesState(
            series_id=r.series_id,
            first_timestamp=int(r.first_timestamp),
            last_timestamp=int(r.last_timestamp),
            last_raw=np.asarray(r.last_raw, np.float64),
            digest=int(r.digest, 16),
            loc=float(r.loc),
            scale=float(r.scale),
            scaling=r.scaling,
            state=np.asarray(r.state, np.float32).reshape(S, U),
            point=np.asarray(r.point, np.float64),
            quantiles=np.asarray(r.quantiles, np.float64).reshape(-1, Q),
            model_fingerprint=r.model_fingerprint,
        )
        for r in frame.itertuples(index=False)
    ]
