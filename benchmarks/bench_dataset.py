"""Benchmark of `rnncast dataset` against a bare script and a minimal numpy + TFRecordWriter loop.

Generates the synthetic set (default 2,000 series of 2,500-7,500 hourly points, about 10^7
points; --num-series and the lengths make it smaller), then in the same run times, each in its
own fresh process:
  (a) the dataset job on DirectRunner, in-process (the default mode): validation,
      regularisation, lane packing, atomic commit;
  (b) the same job with --direct_running_mode=multi_processing --direct_num_workers=2;
  (c) a bare single-process script that reads the same file, puts each series on its hourly
      grid, cuts the same T-step chunks with the same features and H look-ahead values, and
      writes them with tf.io.TFRecordWriter (GZIP) -- no validation, no packing;
  (d) a minimal loop: the points already in memory as numpy arrays, cut into T-step chunks,
      one tf.train.Example with the job's 13 features per chunk, TFRecordWriter (GZIP).
Prints points/s of each, the ratios the targets name, each one's peak RSS (summed over its
process tree, so multi_processing workers count), whether (a) and (b) wrote the same bytes,
and the job's padding waste; with --memory-scan, the job's peak RSS at 1/4, 1/2 and all of
the series.

    python benchmarks/bench_dataset.py [--num-series 2000] [--memory-scan]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

BASELINE = r"""
import os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, pandas as pd, tensorflow as tf
from rnncast.pipeline.core import series as S
path, out, T, H = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
start = time.perf_counter()
frame = pd.read_parquet(path)
names = S.calendar_feature_names("h")
options = tf.io.TFRecordOptions(compression_type="GZIP")
feature = tf.train.Feature
def i64(v): return feature(int64_list=tf.train.Int64List(value=v))
def f32(v): return feature(float_list=tf.train.FloatList(value=v))
with tf.io.TFRecordWriter(out, options) as writer:
    for sid, group in frame.groupby("series_id", sort=True):
        ts = group["timestamp"].to_numpy().astype("datetime64[ns]").astype(np.int64)
        order = np.argsort(ts); ts = ts[order]; value = group["value"].to_numpy()[order]
        step = 3600 * 10**9
        pos = (ts - ts[0]) // step; n = int(pos[-1]) + 1
        grid = ts[0] + step * np.arange(n)
        y = np.zeros(n); obs = np.zeros(n, np.int64); y[pos] = value; obs[pos] = 1
        last = np.maximum.accumulate(np.where(obs == 1, np.arange(n), 0)); y = y[last]
        feats = np.column_stack([y, S.calendar_features(grid, names)]).astype(np.float32)
        chunks = -(-n // T)
        padded = np.zeros((chunks * T + H, feats.shape[1]), np.float32); padded[:n] = feats
        pobs = np.zeros(len(padded), np.int64); pobs[:n] = obs
        for c in range(chunks):
            a = c * T
            ex = tf.train.Example(features=tf.train.Features(feature={
                "series_id": feature(bytes_list=tf.train.BytesList(value=[sid.encode()])),
                "chunk_index": i64([c]),
                "sequence_length": i64([min(T, n - a)]),
                "reset": i64([int(c == 0)]),
                "start_time": i64([int(grid[a] // 10**9)]),
                "values": f32(padded[a:a + T].ravel()),
                "observed": i64(pobs[a:a + T]),
                "lookahead": f32(padded[a + T:a + T + H, 0]),
                "lookahead_observed": i64(pobs[a + T:a + T + H]),
            }))
            writer.write(ex.SerializeToString())
print(time.perf_counter() - start, flush=True)
"""

MINIMAL = r"""
import os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, pandas as pd, tensorflow as tf
from rnncast.pipeline.core import series as S
path, out, T, H = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
# Not timed: the points as numpy arrays in memory, one (id, timestamps, values) per series.
frame = pd.read_parquet(path)
frame["ns"] = frame["timestamp"].to_numpy().astype("datetime64[ns]").astype(np.int64)
frame = frame.sort_values(["series_id", "ns"], kind="stable")
ids, first = np.unique(frame["series_id"].to_numpy(), return_index=True)
bounds = [*first[1:], len(frame)]
ns, values = frame["ns"].to_numpy(), frame["value"].to_numpy()
series = [(i, ns[a:b], values[a:b]) for i, a, b in zip(ids, first, bounds)]
del frame
names = S.calendar_feature_names("h")
feature = tf.train.Feature
def i64(v): return feature(int64_list=tf.train.Int64List(value=v))
def f32(v): return feature(float_list=tf.train.FloatList(value=v))
start = time.perf_counter()
# Timed: features (value + calendar), T-step chunks with H look-ahead values, one
# tf.train.Example per chunk with the job's 13 features, TFRecordWriter GZIP. No validation,
# no regular grid (points taken as they come), no lane packing, one process.
with tf.io.TFRecordWriter(out, tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
    for sid, ts, y in series:
        n = len(y)
        feats = np.column_stack([y, S.calendar_features(ts, names)]).astype(np.float32)
        chunks = -(-n // T)
        padded = np.zeros((chunks * T + H, feats.shape[1]), np.float32); padded[:n] = feats
        # Python lists: protobuf copies them in C (numpy arrays go element by element).
        F = feats.shape[1]; flat = padded.ravel().tolist(); ahead = padded[:, 0].tolist()
        obs = [1] * n + [0] * (len(padded) - n)
        sid_feature = feature(bytes_list=tf.train.BytesList(value=[sid.encode()]))
        loc, scale = f32([y.mean()]), f32([y.std() or 1.0])
        for c in range(chunks):
            a = c * T
            ex = tf.train.Example(features=tf.train.Features(feature={
                "series_id": sid_feature, "chunk_index": i64([c]), "lane": i64([0]),
                "sequence_length": i64([min(T, n - a)]), "reset": i64([int(c == 0)]),
                "start_time": i64([int(ts[a] // 10**9)]), "values": f32(flat[a * F:(a + T) * F]),
                "observed": i64(obs[a:a + T]), "lookahead": f32(ahead[a + T:a + T + H]),
                "lookahead_observed": i64(obs[a + T:a + T + H]), "target_start": i64([0]),
                "loc": loc, "scale": scale,
            }))
            writer.write(ex.SerializeToString())
print(time.perf_counter() - start, flush=True)
"""

# Runs a command; samples the summed RSS of its whole process tree (multi_processing workers
# included) every 50 ms from /proc, and reports the largest sum and the wall time.
MEASURE = r"""
import os, subprocess, sys, time
PAGE = os.sysconf("SC_PAGE_SIZE")
def tree_rss(root):
    parents, rss = {}, {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            parents[int(pid)], rss[int(pid)] = int(fields[1]), int(fields[21]) * PAGE
        except (OSError, IndexError):
            pass
    tree, frontier = {root}, [root]
    while frontier:
        frontier = [p for p, q in parents.items() if q in frontier and p not in tree]
        tree.update(frontier)
    return sum(rss.get(p, 0) for p in tree)
start = time.perf_counter()
child = subprocess.Popen(sys.argv[1:])
peak = 0
while child.poll() is None:
    peak = max(peak, tree_rss(child.pid))
    time.sleep(0.05)
wall = time.perf_counter() - start
print("MEASURE", child.returncode, wall, peak)
"""


def measured(command: list[str]) -> tuple[float, int, str]:
    """Run ``command`` in a fresh process; return wall seconds, peak RSS bytes, stdout."""
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, *command],
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT),
    )
    line = [x for x in result.stdout.splitlines() if x.startswith("MEASURE")][-1].split()
    if int(line[1]) != 0:
        raise SystemExit(f"command failed: {command}\n{result.stderr[-3000:]}")
    return float(line[2]), int(line[3]), result.stdout


def run_job(data: str, out: str, T: int, B: int, H: int, extra: list[str]) -> tuple[float, int]:
    wall, peak, _ = measured(
        [
            sys.executable,
            "-m",
            "rnncast",
            "dataset",
            "--input",
            data,
            "--output",
            out,
            "--num-steps",
            str(T),
            "--batch-size",
            str(B),
            "--horizon",
            str(H),
            "--validation-fraction",
            "0",
            *extra,
        ]
    )
    return wall, peak


MULTI_PROCESSING = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def file_digests(metadata: dict) -> list:
    return [(f["name"], f["sha256"]) for s in metadata["splits"].values() for f in s["files"]]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--num-series", type=int, default=2000)
    parser.add_argument("--min-length", type=int, default=2500)
    parser.add_argument("--max-length", type=int, default=7500)
    parser.add_argument("--num-steps", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--horizon", type=int, default=24)
    parser.add_argument("--memory-scan", action="store_true")
    parser.add_argument("--beam-args", default="", help="Extra Beam flags for the job.")
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    from rnncast.pipeline.core import synthetic

    T, B, H = args.num_steps, args.batch_size, args.horizon
    with tempfile.TemporaryDirectory(prefix="rnncast-bench-") as tmp:
        t0 = time.perf_counter()
        frame = synthetic.generate(args.num_series, args.min_length, args.max_length, seed=0)
        data = os.path.join(tmp, "synthetic.parquet")
        synthetic.write(frame, data)
        points = len(frame)
        print(
            f"generated {points:,} points in {args.num_series} series "
            f"({time.perf_counter() - t0:.1f} s)",
            flush=True,
        )

        beam_args = args.beam_args.split()
        job_wall, job_peak = run_job(data, os.path.join(tmp, "job"), T, B, H, beam_args)
        with open(os.path.join(tmp, "job", "metadata.json")) as f:
            metadata = json.load(f)
        mp_wall, mp_peak = run_job(
            data, os.path.join(tmp, "job-mp"), T, B, H, [*beam_args, *MULTI_PROCESSING]
        )
        with open(os.path.join(tmp, "job-mp", "metadata.json")) as f:
            same_files = file_digests(json.load(f)) == file_digests(metadata)
        _, base_peak, base_out = measured(
            [sys.executable, "-c", BASELINE, data, os.path.join(tmp, "bare.gz"), str(T), str(H)]
        )
        _, min_peak, min_out = measured(
            [sys.executable, "-c", MINIMAL, data, os.path.join(tmp, "min.gz"), str(T), str(H)]
        )
        # The bare script's and the minimal loop's own timers exclude interpreter and
        # TensorFlow start-up (the minimal loop's also its reading: its points are numpy
        # arrays in memory); the job's figures include Python and Beam start-up, so the
        # ratios are conservative.
        base_wall, min_wall = float(base_out.splitlines()[0]), float(min_out.splitlines()[0])
        rate = {
            "job": points / job_wall,
            "mp": points / mp_wall,
            "bare": points / base_wall,
            "min": points / min_wall,
        }
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, "
            f"python {platform.python_version()}; load average {os.getloadavg()}"
        )
        print("| run | wall | points/s | peak RSS (process tree) |")
        print("| --- | ---: | ---: | ---: |")
        for label, wall, key, peak in (
            ("`rnncast dataset` in-process (DirectRunner default)", job_wall, "job", job_peak),
            ("`rnncast dataset` multi_processing, 2 workers", mp_wall, "mp", mp_peak),
            ("bare numpy + TFRecordWriter script", base_wall, "bare", base_peak),
            ("minimal numpy + TFRecordWriter loop", min_wall, "min", min_peak),
        ):
            print(f"| {label} | {wall:.1f} s | {rate[key]:,.0f} | {peak / 2**30:.2f} GiB |")
        print(
            f"ratio in-process job / bare script: {rate['job'] / rate['bare']:.2f}  (target >= 1.5)"
        )
        print(
            f"ratio multi_processing job / minimal loop: {rate['mp'] / rate['min']:.2f}  "
            f"(target >= 0.4)"
        )
        print(f"ratio in-process job / minimal loop: {rate['job'] / rate['min']:.2f}")
        print(f"ratio multi_processing / in-process job: {rate['mp'] / rate['job']:.2f}")
        print(
            f"multi_processing peak RSS <= 1 GiB: {'met' if mp_peak <= 2**30 else 'NOT met'}; "
            f"its files byte-identical to in-process: {same_files}"
        )
        print(f"padding waste (train): {metadata['padding_waste']:.2%}  (target <= 5%)")
        if args.memory_scan:
            for fraction in (0.25, 0.5):
                ids = sorted(frame["series_id"].unique())[
                    : int(len(frame["series_id"].unique()) * fraction)
                ]
                part = frame[frame["series_id"].isin(ids)]
                path = os.path.join(tmp, f"part-{fraction}.parquet")
                synthetic.write(part, path)
                wall, peak = run_job(path, os.path.join(tmp, f"job-{fraction}"), T, B, H, beam_args)
                print(
                    f"memory scan: {len(ids):5d} series {len(part):11,d} points  "
                    f"peak RSS {peak / 2**30:.2f} GiB  ({len(part) / wall:,.0f} points/s)"
                )
            print(
                f"memory scan: {args.num_series:5d} series {points:11,d} points  "
                f"peak RSS {job_peak / 2**30:.2f} GiB"
            )


if __name__ == "__main__":
    main()
