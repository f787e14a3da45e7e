"""Benchmark of `rnncast forecast`: full-history throughput and the cost of an incremental run.

On the synthetic set (default 2,000 hourly series of 2,500-7,500 points, ~10^7) it trains a small
model for one epoch (quality is irrelevant here), then times, each as a fresh process:
  - a start-up run on a single short series (Beam, TensorFlow and model load: fixed cost);
  - a full-history forecast run writing state (--state-out): points/s and series/s;
  - an incremental run that reads only the 1% newest points per series with --state-in;
  - a full recompute over history + new points, for comparison;
  - with --jit-compile, the start-up and full-history runs again with the step compiled by
    XLA (compiling is part of the run's time).
Prints each time, the start-up cost, and (incremental - start-up) / (full - start-up)
(target <= 10%).

    python benchmarks/bench_forecast.py [--num-series 2000]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)


def timed(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "rnncast", *args],
        check=True,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--num-series", type=int, default=2000)
    parser.add_argument("--min-length", type=int, default=2500)
    parser.add_argument("--max-length", type=int, default=7500)
    parser.add_argument("--new-fraction", type=float, default=0.01)
    parser.add_argument(
        "--jit-compile", action="store_true", help="Also time the full run with --jit-compile."
    )
    args = parser.parse_args()
    from rnncast.pipeline.core import synthetic

    with tempfile.TemporaryDirectory(prefix="rnncast-bench-") as tmp:
        frame = synthetic.generate(args.num_series, args.min_length, args.max_length, seed=0)
        frame = frame.sort_values(["series_id", "timestamp"]).reset_index(drop=True)
        rank = frame.groupby("series_id").cumcount(ascending=False)
        size = frame.groupby("series_id")["value"].transform("size")
        is_new = rank < (size * args.new_fraction).clip(lower=1)
        paths = {
            name: os.path.join(tmp, f"{name}.parquet")
            for name in ("train", "history", "new", "all", "tiny")
        }
        synthetic.write(frame[frame.series_id < "series-000100"], paths["train"])
        synthetic.write(frame[~is_new], paths["history"])
        synthetic.write(frame[is_new], paths["new"])
        synthetic.write(frame, paths["all"])
        synthetic.write(frame[frame.series_id == "series-000000"].head(200), paths["tiny"])
        data, model_dir = os.path.join(tmp, "data"), os.path.join(tmp, "model")
        timed(
            "dataset",
            "--input",
            paths["train"],
            "--output",
            data,
            "--num-steps",
            "64",
            "--batch-size",
            "32",
            "--horizon",
            "24",
        )
        timed(
            "train",
            "--data",
            data,
            "--model-dir",
            model_dir,
            "--epochs",
            "1",
            "--layers",
            "2",
            "--units",
            "32",
            "--cell",
            "gru",
        )
        model = os.path.join(model_dir, "export")
        out = lambda name: os.path.join(tmp, name)  # noqa: E731
        startup = timed(
            "forecast", "--model", model, "--input", paths["tiny"], "--output", out("o-tiny")
        )
        full = timed(
            "forecast",
            "--model",
            model,
            "--input",
            paths["history"],
            "--output",
            out("o-full"),
            "--state-out",
            out("state"),
        )
        incremental = timed(
            "forecast",
            "--model",
            model,
            "--input",
            paths["new"],
            "--output",
            out("o-inc"),
            "--state-in",
            out("state"),
            "--state-out",
            out("state2"),
        )
        recompute = timed(
            "forecast", "--model", model, "--input", paths["all"], "--output", out("o-all")
        )
        jit = {}
        if args.jit_compile:  # the same full run with the step compiled by XLA
            jit["startup"] = timed(
                "forecast", "--model", model, "--input", paths["tiny"], "--output",
                out("x-tiny"), "--jit-compile",
            )  # fmt: skip
            jit["full"] = timed(
                "forecast", "--model", model, "--input", paths["history"], "--output",
                out("x-full"), "--state-out", out("x-state"), "--jit-compile",
            )  # fmt: skip
        points = int((~is_new).sum())
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores; {args.num_series} series, "
            f"{len(frame):,} points, {int(is_new.sum()):,} new"
        )
        print(f"start-up (1 short series): {startup:6.1f} s")
        print(
            f"full history + state-out:  {full:6.1f} s   "
            f"{points / (full - startup):,.0f} points/s  "
            f"{args.num_series / (full - startup):,.1f} series/s (beyond start-up)"
        )
        print(f"incremental (1% new):      {incremental:6.1f} s")
        print(f"full recompute (all):      {recompute:6.1f} s")
        ratio = (incremental - startup) / (recompute - startup)
        print(f"incremental / full beyond start-up: {ratio:.1%} (target <= 10%)")
        if jit:
            beyond = jit["full"] - jit["startup"]
            print(
                f"--jit-compile: start-up {jit['startup']:6.1f} s; full history + state-out "
                f"{jit['full']:6.1f} s   {points / beyond:,.0f} points/s beyond start-up "
                f"({(full - startup) / beyond:.2f}x the plain run's rate; whole run "
                f"{full / jit['full']:.2f}x)"
            )


if __name__ == "__main__":
    main()
