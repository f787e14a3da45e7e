"""Benchmark of `rnncast stream`: points/s of the stateful step, and file-to-forecast latency.

On the synthetic set (default 200 hourly series of 800-1,200 points) it trains a small model for
one epoch (quality is irrelevant here), runs `rnncast forecast --state-out` over the history
(all but the newest `--ticks` points per series), then measures:

  0. the batch forecast job's work in-process, one core: every series' history prepared and
     run as lanes of 256 per model call -> points/s (the per-point cost to compare with);
  1. the stateful step in-process, one core, one new point per series per advance (and 24):
     the old per-series step (before issue 16: one `step` call per series), the per-shard step
     at commit c55dbfc (each due series through `advance`, JSON-headed slots), and the step
     now: the job's own `_AdvanceShardFn` driven in-process (one element per shard and file,
     as `_GroupByShardFn` makes them, then the shard's flush timer; state cells through the
     step's coders, as the DirectRunner's), with 16 shards and with 1; the old two run
     `rnncast.pipeline.core.streaming` as it was at c55dbfc, loaded from git history
     (`git show`), and are emulations of those steps. Timed alternating, `--repeats` times
     each (median); the arrivals are built before timing. Prints "new / old per series per
     core" and "stream per-point cost / batch per-point cost";
  2. the whole job on the DirectRunner (streaming engine, a single worker thread): the stream is
     started with --state-in, warmed up on one tiny file, then `--ticks - 6` files (one new
     point per series each) land at once -> points/s end to end, files read to forecasts
     written;
  3. latency: 6 more files (one point each for 10 series) land one at a time; the time from the
     rename that lands a file to the forecast file with its points being written.

`--step-calls` prints, before the phases, the cost of one model call by shape (lanes x steps)
in TensorFlow and in numpy (`rnncast.model.numpy_step`), for the benchmark's model and for
untrained 2x64 GRU, 2x64 LSTM and 2x128 GRU models: the crossover that sets
`model_loader.NUMPY_MAX_LANE_STEPS`, up to which the jobs' calls run in numpy.

Phases 2 and 3 run `--job-runs` times, each a new stream; a run whose awaited forecasts do not
come within `--stall-timeout` seconds counts as stalled (the stream's thread stacks are
printed), and the script exits 1 if any did. `--job-only` skips phases 0 and 1.

    python benchmarks/bench_stream.py [--num-series 200] [--poll-interval 0.5] [--shards 16]
        [--repeats 3] [--job-runs 1] [--job-only] [--stall-timeout 180] [--step-calls]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import glob
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))  # direct_key: the step's in-process key
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
LATENCY_FILES = 6
HORIZON = 86_400 * 10**9  # the stream's default --dedupe-horizon (1 day), ns

BASELINE_COMMIT = "c55dbfc"  # the per-shard step before the one-pass prepare and binary slots


def module_at(commit: str, path: str, name: str):
    """The module at ``path`` as it was at ``commit`` (from git history, so the old step is
    timed with its own code and state encodings without a copy of it in the tree)."""
    import importlib.util

    source = subprocess.run(
        ["git", "show", f"{commit}:{path}"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve annotations through sys.modules
    exec(compile(source, f"{commit}:{path}", "exec"), module.__dict__)
    return module


baseline = module_at(BASELINE_COMMIT, "pipeline/core/streaming.py", "streaming_" + BASELINE_COMMIT)


def cli(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "rnncast", *args],
        check=True,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def write_csv(frame, path: str) -> None:
    out = frame.copy()
    out["timestamp"] = out["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S")
    out.to_csv(path + ".tmp", index=False)
    os.rename(path + ".tmp", path)  # lands whole


class StallError(RuntimeError):
    """The stream wrote no forecast for the points it was waiting for in time."""


class Outputs:
    """The forecast files written so far (each read once): which series have which origins."""

    def __init__(self, output: str):
        self._pattern = os.path.join(output, "forecasts", "*", "*.parquet")
        self._seen: set[str] = set()
        self.origins: dict = {}  # origin -> set of series ids

    def refresh(self) -> None:
        import pandas as pd

        for path in sorted(set(glob.glob(self._pattern)) - self._seen):
            rows = pd.read_parquet(path, columns=["series_id", "origin"]).dropna()
            self._seen.add(path)
            for origin, ids in rows.groupby("origin")["series_id"]:
                self.origins.setdefault(origin, set()).update(ids)

    def wait_for(self, origin, count: int, job, timeout: float) -> float:
        """Wait until ``count`` series have a forecast from ``origin``; return the time. On a
        timeout, the stream's thread stacks (``kill -USR1``) go into the error, so a stall
        says where it is."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.refresh()
            if len(self.origins.get(origin, ())) >= count:
                return time.perf_counter()
            if job.poll() is not None:
                raise RuntimeError(f"the stream exited early:\n{job.stdout.read()}")
            time.sleep(0.02)
        job.send_signal(signal.SIGUSR1)
        time.sleep(2)
        job.kill()
        got = {str(k): len(v) for k, v in sorted(self.origins.items())}
        raise StallError(
            f"only {len(self.origins.get(origin, ()))} of {count} series have a forecast from "
            f"{origin} after {timeout} s; series per origin so far: {got}; the stream's "
            f"output and thread stacks:\n{job.stdout.read()}"
        )


_LOADED: dict = {}


def _load(
    model_path: str, state_dir: str, jit: bool = False, shapes=((1, 1),), as_then: bool = False
):
    """The model info, the loaded model (once per process and mode: an XLA step compiles per
    shape, and a new load would compile again) and the saved states. Each ``(lanes, steps)``
    call shape in ``shapes`` is run once first: tracing (~1 s) and XLA's compiling (~1 s per
    shape) are not per-point cost. ``as_then``: every call in TensorFlow, as the old steps
    emulated here ran (before the numpy step for small calls)."""
    import numpy as np
    import pandas as pd

    from rnncast.pipeline.core import forecasting
    from rnncast.pipeline.io.model_loader import load_model, read_model_info
    from rnncast.pipeline.io.state_store import load_state_files

    model = read_model_info(model_path)
    files, _ = load_state_files(state_dir, model)
    states = {}
    for path in files:
        for state in forecasting.states_from_frame(pd.read_parquet(path), model):
            states[state.series_id] = state
    key = (model_path, jit, as_then)
    if key not in _LOADED:
        then = {"numpy_max_lane_steps": 0} if as_then else {}
        _LOADED[key] = load_model(model_path, jit, **then)
    loaded = _LOADED[key]
    for lanes, steps in shapes:
        features = np.zeros((steps, len(model.feature_names)), np.float32)
        work = forecasting.Work(
            "warm", "full", features, np.ones(steps, bool), None, 0, 0, np.zeros(1), 0, 0.0,
            1.0, "own",
        )  # fmt: skip
        forecasting.run_lanes([work] * lanes, loaded.step, model)
    # Loading TensorFlow and the model leaves a large heap of young objects: collect it now,
    # or the first variant timed after a load pays a one-off full collection (~0.3 s).
    gc.collect()
    return model, loaded, states


def _part(rows):
    import numpy as np
    import pandas as pd

    from rnncast.pipeline.core.series import SeriesPart

    ts = pd.DatetimeIndex(rows["timestamp"]).as_unit("ns").asi8
    return SeriesPart(
        "bench", np.arange(len(ts)), ts, rows["value"].to_numpy(), np.zeros((len(ts), 0))
    )


def _arrivals(live, per_flush: int) -> list[dict]:
    """Per advance, each series' new points as the part that arrives (built before timing:
    parsing input is not the step's cost)."""
    groups = {sid: g.sort_values("timestamp") for sid, g in live.groupby("series_id")}
    width = len(next(iter(groups.values())))
    return [
        {sid: _part(rows.iloc[first : first + per_flush]) for sid, rows in sorted(groups.items())}
        for first in range(0, width, per_flush)
    ]


def step_per_series(model_path: str, state_dir: str, arrivals) -> float:
    """Points/s of the stateful step as it was before issue 16 (one key and one model call per
    series per advance; state encode/decode per series, the encodings of the time), one core."""
    from rnncast.pipeline.core import forecasting

    old = baseline
    model, loaded, states = _load(model_path, state_dir, as_then=True)
    saved = {sid: old.encode_state(state) for sid, state in states.items()}
    recent = {sid: old.encode_recent(old.Recent.empty()) for sid in saved}
    points = 0
    start = time.perf_counter()
    for parts in arrivals:
        for sid, part in parts.items():
            state = old.decode_state(saved[sid])
            seen = old.decode_recent(recent[sid])
            reasons = old.classify(part, state, seen)
            pending = old.decode_part(old.encode_part(part, 0))[0]
            result = old.advance(sid, [pending], [], state, model)
            new = forecasting.run_lanes([result.work], loaded.step, model)[0]
            saved[sid] = old.encode_state(new)
            recent[sid] = old.encode_recent(
                old.remember(seen, result.consumed, new.last_timestamp, HORIZON)
            )
            points += int((reasons == "").sum())
    return points / (time.perf_counter() - start)


def step_per_shard(model_path: str, state_dir: str, arrivals, shards: int) -> float:
    """Points/s of the stateful step keyed by shard as it was at commit c55dbfc, one core:
    per arrival the shard's book is decoded and the series classified, its part buffered
    (encoded with its series id); per firing the shard's due series advance one by one
    through ``advance`` into lanes of one model run, and their JSON-headed slots are
    re-encoded into the book."""
    from rnncast.pipeline.core import forecasting

    lib = baseline
    counts = {}
    for sid in arrivals[0]:
        shard = lib.shard_of(sid, shards)
        counts[shard] = counts.get(shard, 0) + 1
    width = len(next(iter(arrivals[0].values())).timestamp)
    shapes = {(n, width) for n in counts.values()}
    model, loaded, states = _load(model_path, state_dir, False, shapes, as_then=True)
    books: dict[int, bytes] = {}
    for sid, state in states.items():
        shard = lib.shard_of(sid, shards)
        book = lib.decode_book(books[shard]) if shard in books else {}
        book[sid] = lib.encode_slot(lib.SeriesSlot(saved=state))
        books[shard] = lib.encode_book(book)
    by_shard: dict[int, list[str]] = {}
    for sid in sorted(arrivals[0]):
        by_shard.setdefault(lib.shard_of(sid, shards), []).append(sid)
    points = 0
    start = time.perf_counter()
    for parts in arrivals:
        for shard, ids in by_shard.items():
            pending = []
            for sid in ids:  # process(): one arrival per series, the whole book decoded
                part = parts[sid]
                slot = lib.decode_slot(lib.decode_book(books[shard])[sid])
                reasons = lib.classify(part, slot.saved, slot.recent)
                pending.append(lib.encode_keyed_part(sid, lib.Pending(0, part)))
                points += int((reasons == "").sum())
            book = lib.decode_book(books[shard])  # on_flush: every series of the shard due
            slots, takes = {}, {}
            for encoded in pending:
                sid, item = lib.decode_keyed_part(encoded)
                slots[sid] = lib.decode_slot(book[sid])
                takes[sid], _, _ = lib.take_due([item], 0, 0)
            results = {
                sid: lib.advance(sid, take, [], slots[sid].saved, model)
                for sid, take in takes.items()
            }
            works = [result.work for result in results.values()]
            for state in forecasting.run_lanes(works, loaded.step, model):
                sid = state.series_id
                slot = slots[sid]
                slot.saved = state
                consumed = results[sid].consumed
                slot.recent = lib.remember(slot.recent, consumed, state.last_timestamp, HORIZON)
                book[sid] = lib.encode_slot(slot)
            books[shard] = lib.encode_book(book)
    return points / (time.perf_counter() - start)


def step_job(model_path: str, state_dir: str, arrivals, shards: int, jit: bool = False) -> float:
    """Points/s of the stream's stateful step itself, one core: the job's ``_AdvanceShardFn``
    driven in-process. Per arrival (a file of one new part per series) each shard gets one
    element of its series' parts, as ``_GroupByShardFn`` makes them, then its flush timer
    fires and advances the shard's due series (lanes of one model run). Its state cells go
    through the step's own coders, as the DirectRunner's do; the series start from the
    ``--state-in`` snapshot. Run twice, the second timed: the first loads the model into the
    step's process cache and traces (and with XLA compiles) every call shape. The key's
    state and timers are ``tests/direct_key.py``'s, which the stream tests drive too."""
    from direct_key import DirectKey

    from rnncast.pipeline.core import streaming
    from rnncast.pipeline.io.model_loader import read_model_info
    from rnncast.pipeline.io.state_store import load_state_files
    from rnncast.pipeline.jobs.stream import step
    from rnncast.pipeline.jobs.stream.options import StreamConfig

    model = read_model_info(model_path)
    files, _ = load_state_files(state_dir, model)
    by_shard: dict[int, list[str]] = {}
    for sid in sorted(arrivals[0]):
        by_shard.setdefault(streaming.shard_of(sid, shards), []).append(sid)
    config = StreamConfig(
        model=model_path, output=state_dir, input_pattern="*", shards=shards, jit_compile=jit
    )
    for _ in range(2):
        fn = step._AdvanceShardFn(config, model, files)
        fn.setup()
        keys = {shard: DirectKey(fn, shard) for shard in by_shard}
        gc.collect()
        points, forecasts = 0, 0
        start = time.perf_counter()
        for parts in arrivals:
            newest = max(int(part.timestamp.max()) for part in parts.values())
            for shard, ids in by_shard.items():
                key = keys[shard]
                key.process((shard, [(sid, parts[sid]) for sid in ids]), newest // 1000)
                fired = key.fire("flush", fn.on_flush)
                forecasts += sum(1 for out in fired if isinstance(out, tuple))
            points += sum(len(part.timestamp) for part in parts.values())
        elapsed = time.perf_counter() - start
    if forecasts != sum(len(parts) for parts in arrivals):
        raise RuntimeError(f"the step emitted {forecasts} forecasts, expected one per arrival")
    return points / elapsed


def batch_in_process(
    model_path: str, state_dir: str, history, lanes: int = 256, jit: bool = False
) -> float:
    """Points/s of the batch forecast job's work on the history, one core: every series
    prepared from scratch (grid, scaling, features) and run as lanes of 256 per model call
    (run once untimed first, so that every call shape is traced and compiled)."""
    from rnncast.pipeline.core import forecasting, streaming

    model, loaded, _ = _load(model_path, state_dir, jit)
    groups = [(sid, g.sort_values("timestamp")) for sid, g in history.groupby("series_id")]
    for _ in range(2):  # the first traces and compiles every call shape; the second is timed
        start = time.perf_counter()
        works = [
            streaming.advance(sid, [_part(rows)], [], None, model).work for sid, rows in groups
        ]
        for first in range(0, len(works), lanes):
            forecasting.run_lanes(works[first : first + lanes], loaded.step, model)
    return len(history) / (time.perf_counter() - start)


STEP_CALL_SHAPES = [
    (1, 1), (12, 1), (64, 1), (256, 1), (12, 24), (64, 24), (32, 64), (64, 64), (256, 64)
]  # fmt: skip


# Besides the benchmark's trained model: untrained models of the sizes users train (2 layers
# of 64 or 128 units), with the benchmark model's inputs (change inputs, lags 24 and 168, last
# anchor, 24 steps ahead). Their weights are the initial ones, which timing does not mind.
STEP_CALL_SIZES = [("gru", 64), ("lstm", 64), ("gru", 128)]


def step_calls(model_path: str, repeats: int) -> dict[str, list[tuple[int, int, float, float]]]:
    """Per model (the benchmark's, then :data:`STEP_CALL_SIZES`) and call shape ``(lanes,
    steps)`` (all lanes full, a carried state): the median seconds of one call in TensorFlow
    and in numpy, timed alternating."""
    import numpy as np

    from rnncast.model.forecaster import RNNForecaster
    from rnncast.model.inference import CompiledStep
    from rnncast.model.numpy_step import NumpyStep
    from rnncast.pipeline.io.model_loader import load_model

    loaded = load_model(model_path)
    network, F = loaded.network, len(loaded.info.feature_names)
    models = {f"the benchmark's {network.num_layers}x{network.units} {network.cell_type}": network}
    for cell, units in STEP_CALL_SIZES:
        model = RNNForecaster(
            cell, 2, units, horizon=24, inputs="change", lags=(24, 168), anchor="last"
        )
        model.build((1, loaded.info.num_steps, F + 1))
        models[f"untrained 2x{units} {cell}"] = model
    rng = np.random.default_rng(0)
    out = {}
    for name, model in models.items():
        # The two steps as the jobs run them (LoadedModel.step picks one by call size).
        tensorflow_step, numpy_step = CompiledStep(model, F), NumpyStep.from_model(model)
        S, U = len(model.state_size), model.units
        rows = []
        for lanes, steps in STEP_CALL_SHAPES:
            args = (
                rng.normal(size=(lanes, steps, F)).astype(np.float32),
                np.ones((lanes, steps), np.float32),
                np.full(lanes, steps, np.int32),
                rng.normal(size=lanes).astype(np.float32),
                np.ones(lanes, np.float32),
                rng.normal(size=(S, lanes, U)).astype(np.float32) * 0.1,
            )
            calls = max(3, int(2000 / (lanes * steps) ** 0.7))
            runs = {"tf": tensorflow_step, "numpy": numpy_step}
            times: dict[str, list[float]] = {run: [] for run in runs}
            for run in runs.values():
                run(*args)  # untimed: the first call of a shape
            for _ in range(repeats):
                for run_name, run in runs.items():
                    start = time.perf_counter()
                    for _ in range(calls):
                        run(*args)
                    times[run_name].append((time.perf_counter() - start) / calls)
            tf_median, numpy_median = (statistics.median(times[k]) for k in ("tf", "numpy"))
            rows.append((lanes, steps, tf_median, numpy_median))
        out[name] = rows
    return out


@dataclasses.dataclass
class JobRun:
    files: int
    points: int
    seconds: float
    latencies: list
    summary: str


def whole_job(model: str, state: str, live, workdir: str, args) -> JobRun:
    """Phases 2 and 3 in one stream on the DirectRunner (see the module docstring); raises
    :class:`StallError` when a forecast does not come within ``--stall-timeout`` seconds."""
    incoming, output = os.path.join(workdir, "incoming"), os.path.join(workdir, "out")
    os.makedirs(incoming)
    ticks = sorted(live.timestamp.unique())
    bulk, late_ticks = ticks[:-LATENCY_FILES], ticks[-LATENCY_FILES:]
    job = subprocess.Popen(
        [sys.executable, "-m", "rnncast", "stream", "--model", model,
         "--input-pattern", os.path.join(incoming, "*.csv"), "--output", output,
         "--state-in", state, "--poll-interval", str(args.poll_interval),
         "--shards", str(args.shards),
         "--max-files", str(1 + len(bulk) + LATENCY_FILES), "--stop-after-seconds", "3600"],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    timeout = args.stall_timeout
    try:
        warm = live[(live.timestamp == bulk[0]) & (live.series_id == "series-000000")]
        write_csv(warm, os.path.join(incoming, "0000-warmup.csv"))
        seen = Outputs(output)
        seen.wait_for(bulk[0], 1, job, timeout)
        rest = live[(live.timestamp.isin(bulk)) & ~live.index.isin(warm.index)]
        for k, tick in enumerate(bulk):
            write_csv(rest[rest.timestamp == tick], os.path.join(incoming, f"{k + 1:04d}.csv"))
        landed = time.perf_counter()
        done = seen.wait_for(bulk[-1], args.num_series, job, timeout)
        latencies = []
        few = sorted(live.series_id.unique())[:10]
        for k, tick in enumerate(late_ticks):
            rows = live[(live.timestamp == tick) & live.series_id.isin(few)]
            write_csv(rows, os.path.join(incoming, f"{len(bulk) + k + 1:04d}.csv"))
            at = time.perf_counter()
            latencies.append(seen.wait_for(tick, len(few), job, timeout) - at)
        out, _ = job.communicate(timeout=600)
    finally:
        if job.poll() is None:
            job.kill()
    summary = out.strip().splitlines()[-1]
    return JobRun(len(bulk), len(rest), done - landed, latencies, summary)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--num-series", type=int, default=200)
    parser.add_argument("--min-length", type=int, default=800)
    parser.add_argument("--max-length", type=int, default=1200)
    parser.add_argument("--ticks", type=int, default=30, help="New points per series.")
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--shards", type=int, default=16, help="The stream's --shards.")
    parser.add_argument(
        "--repeats", type=int, default=3, help="Alternating runs of each in-process step."
    )
    parser.add_argument(
        "--job-runs", type=int, default=1, help="Runs of the whole job (phases 2 and 3)."
    )
    parser.add_argument(
        "--job-only", action="store_true", help="Skip phases 0 and 1 (the in-process rates)."
    )
    parser.add_argument(
        "--step-calls",
        action="store_true",
        help="Also time one model call per shape in TensorFlow and in numpy.",
    )
    parser.add_argument(
        "--stall-timeout",
        type=float,
        default=180.0,
        help="Seconds without the awaited forecasts after which a whole-job run is a stall.",
    )
    args = parser.parse_args()
    import pandas as pd

    from rnncast.pipeline.core import synthetic

    with tempfile.TemporaryDirectory(prefix="rnncast-bench-stream-") as tmp:
        frame = synthetic.generate(
            args.num_series, args.min_length, args.max_length, seed=0, gap_fraction=0.0
        )
        end = pd.Timestamp("2022-01-01")  # every series ends here: one clock for the ticks
        shift = end - frame.groupby("series_id")["timestamp"].transform("max")
        frame = frame.assign(timestamp=frame["timestamp"] + shift)
        first_tick = end - (args.ticks - 1) * pd.Timedelta(hours=1)
        history, live = frame[frame.timestamp < first_tick], frame[frame.timestamp >= first_tick]
        paths = {name: os.path.join(tmp, f"{name}.csv") for name in ("train", "history")}
        write_csv(history[history.series_id < "series-000050"], paths["train"])
        write_csv(history, paths["history"])
        data, model_dir = os.path.join(tmp, "data"), os.path.join(tmp, "model")
        cli("dataset", "--input", paths["train"], "--output", data, "--num-steps", "64",
            "--batch-size", "32", "--horizon", "24")  # fmt: skip
        cli("train", "--data", data, "--model-dir", model_dir, "--epochs", "1", "--layers", "2",
            "--units", "32", "--cell", "gru")  # fmt: skip
        model = os.path.join(model_dir, "export")
        state = os.path.join(tmp, "state")
        cli("forecast", "--model", model, "--input", paths["history"], "--output",
            os.path.join(tmp, "batch"), "--state-out", state)  # fmt: skip

        calls = step_calls(model, args.repeats) if args.step_calls else {}
        if not args.job_only:
            batch_rate = batch_in_process(model, state, history)
            batch_xla = batch_in_process(model, state, history, jit=True)
            rates: dict = {}
            for per_flush in (1, 24):
                arrivals = _arrivals(live, per_flush)
                # old, then c55dbfc's per shard, then now, alternating
                for _ in range(args.repeats):
                    steps = {
                        "old": lambda a: step_per_series(model, state, a),
                        "shard": lambda a: step_per_shard(model, state, a, args.shards),
                        "new": lambda a: step_job(model, state, a, args.shards),
                        "new1": lambda a: step_job(model, state, a, 1),
                        "xla": lambda a: step_job(model, state, a, args.shards, True),
                        "xla1": lambda a: step_job(model, state, a, 1, True),
                    }
                    for name, run in steps.items():
                        if per_flush == 24 and name in ("new1", "xla1"):
                            continue
                        rates.setdefault((per_flush, name), []).append(run(arrivals))
            rate = {key: statistics.median(values) for key, values in rates.items()}

        runs = []
        for run in range(args.job_runs):
            try:
                runs.append(whole_job(model, state, live, os.path.join(tmp, f"job{run}"), args))
            except StallError as stall:
                runs.append(stall)
                print(f"whole job, run {run + 1}: STALLED\n{stall}", file=sys.stderr)
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores; {args.num_series} series, "
            f"{len(history):,} history points, {len(live):,} live points"
        )
        for name, rows in calls.items():
            print(f"one model call, {name}, median of {args.repeats} alternating runs:")
            for lanes, steps, tf_seconds, numpy_seconds in rows:
                print(
                    f"  {lanes:3d} lanes x {steps:2d} steps: TensorFlow "
                    f"{tf_seconds * 1e3:7.3f} ms, numpy {numpy_seconds * 1e3:7.3f} ms, "
                    "TensorFlow / numpy "
                    f"{tf_seconds / numpy_seconds:5.2f}x"
                )
        if not args.job_only:
            print(
                f"batch job's work in-process (prepare + 256 lanes): {batch_rate:10,.0f} points/s"
            )
            print(
                f"same, --jit-compile (XLA):                         {batch_xla:10,.0f} points/s "
                f"({batch_xla / batch_rate:.2f}x)"
            )
            print(f"stateful step in-process, one core, median of {args.repeats} alternating runs:")
            for per_flush in (1, 24):
                old = rate[per_flush, "old"]
                for name, label in (
                    ("old", "old per-series step (before issue 16)"),
                    ("shard", f"per shard at c55dbfc ({args.shards} shards)"),
                    ("new", f"per shard now ({args.shards} shards)"),
                    ("new1", "per shard now (1 shard: all series as lanes of one call)"),
                    ("xla", f"per shard now, --jit-compile ({args.shards} shards)"),
                    ("xla1", "per shard now, --jit-compile (1 shard)"),
                ):
                    if (per_flush, name) not in rate:
                        continue
                    new = rate[per_flush, name]
                    batch = batch_xla if name.startswith("xla") else batch_rate
                    print(
                        f"  {per_flush:2d} point(s) per series per advance, {label}: {new:9,.0f} "
                        f"points/s; new / old per series per core {new / old:5.1f}x; stream "
                        f"per-point cost / batch per-point cost (same mode) {batch / new:6.1f}x"
                    )
        stalls = sum(isinstance(run, StallError) for run in runs)
        for k, run in enumerate(runs):
            if isinstance(run, StallError):
                print(f"whole job, run {k + 1}: stalled (see the stream's stacks above)")
                continue
            print(
                f"whole job, run {k + 1}, DirectRunner, {run.files} files x {args.num_series} "
                f"series x 1 point: {run.points / run.seconds:8,.0f} points/s ({run.points:,} "
                f"points in {run.seconds:.1f} s)"
            )
            latencies = run.latencies
            print(
                f"latency file landed -> forecast written (poll {args.poll_interval} s, "
                f"{LATENCY_FILES} files of 10 points): median {statistics.median(latencies):.2f} "
                f"s, min {min(latencies):.2f} s, max {max(latencies):.2f} s"
            )
            print(run.summary)
        print(f"whole-job runs that stalled: {stalls} of {len(runs)}")
        if stalls:
            sys.exit(1)


if __name__ == "__main__":
    main()
