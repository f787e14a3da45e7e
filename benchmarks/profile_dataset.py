"""Where the dataset job's time goes: per-stage timers (and optionally cProfile) of one
in-process run (DirectRunner, default mode) on a synthetic set.

Each stage is a function of the job wrapped, for this run only, in a wall-clock timer (where
the job's modules call it, so nothing in the job changes). Stages nest (``assemble`` contains
``load_unique``); ``rest`` is the run's wall time minus the outermost stages: Python and Beam
start-up, pipeline construction, the runner's per-element work, the commit.

    python benchmarks/profile_dataset.py [--num-series 400] [--cprofile FILE]
"""

from __future__ import annotations

import argparse
import collections
import functools
import importlib
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

OBS, BEAM, JOB = (
    "rnncast.pipeline.io.observations",
    "rnncast.pipeline.beam.transforms",
    "rnncast.pipeline.jobs.dataset",
)
# (label, module that calls it, attribute, outermost?): the stages, in pipeline order.
STAGES = (
    ("read + validate input batches", OBS, "validated_batches", 1),
    ("spill validated rows (Arrow IPC)", BEAM, "spill.write_parts", 1),
    ("(in the passes) load + de-duplicate a series", BEAM, "load_unique", 0),
    ("(in the passes) regularise", BEAM, "series_lib.regularise", 0),
    ("dedupe pass (DeduplicateFn)", BEAM, "_DeduplicateFn.process", 1),
    ("summary pass (RegulariseFn)", BEAM, "_RegulariseFn.process", 1),
    ("plan (lane packing)", JOB, "make_plan", 1),
    ("cut pass (CutRowsFn)", JOB, "_CutRowsFn._cut", 1),
    ("  features (value + calendar)", JOB, "series_features", 0),
    ("  cut rows", JOB, "chunking.segment_rows", 0),
    ("  row stats (targets)", JOB, "_count_rows", 0),
    ("  encode Examples", JOB, "encode_rows", 0),
    ("  TFRecord framing (CRC32C)", JOB, "frame_record", 0),
    ("  spill encoded rows", JOB, "spill.write_blobs", 0),
    ("write pass (WriteFileFn)", JOB, "_WriteFileFn.process", 1),
    ("write pass, last files (finish_bundle)", JOB, "_WriteFileFn.finish_bundle", 1),
    ("  read spilled rows", JOB, "spill.read_blobs", 0),
    ("  gzip + write file", JOB, "write_tfrecord_file", 0),
    ("dead letters", BEAM, "_WriteRejectedFn.process", 1),
    ("metadata", JOB, "build_metadata", 1),
)


def _install(totals: dict, calls: collections.Counter) -> None:
    for label, module_name, attr, _ in STAGES:
        owner = importlib.import_module(module_name)
        *path, name = attr.split(".")
        for part in path:
            owner = getattr(owner, part)
        original = getattr(owner, name, None)
        if original is None or hasattr(original, "_timed"):  # None: not in this version
            continue
        generator = name in ("validated_batches", "process", "_cut", "finish_bundle")

        def wrapped(*args, _original=original, _label=label, _generator=generator, **kwargs):
            start = time.perf_counter()
            try:
                result = _original(*args, **kwargs)
                if _generator and result is not None:
                    result = list(result)  # the work happens while iterating
                return result
            finally:
                totals[_label] += time.perf_counter() - start
                calls[_label] += 1

        wrapped._timed = True
        setattr(owner, name, functools.wraps(original)(wrapped))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--num-series", type=int, default=400)
    parser.add_argument("--min-length", type=int, default=2500)
    parser.add_argument("--max-length", type=int, default=7500)
    parser.add_argument("--cprofile", help="Also write a cProfile of the run to this file.")
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from rnncast.pipeline.core import synthetic

    with tempfile.TemporaryDirectory(prefix="rnncast-profile-") as tmp:
        frame = synthetic.generate(args.num_series, args.min_length, args.max_length, seed=0)
        data = os.path.join(tmp, "synthetic.parquet")
        synthetic.write(frame, data)
        del frame
        totals: dict = collections.defaultdict(float)
        calls: collections.Counter = collections.Counter()
        _install(totals, calls)
        from rnncast.pipeline.jobs import dataset

        argv = ["--input", data, "--output", os.path.join(tmp, "out"), "--validation-fraction"]
        argv += ["0"]
        start = time.perf_counter()
        if args.cprofile:
            import cProfile

            profiler = cProfile.Profile()
            metadata = profiler.runcall(dataset.run, argv)
            profiler.dump_stats(args.cprofile)
        else:
            metadata = dataset.run(argv)
        wall = time.perf_counter() - start
        points = metadata["counts"]["rows_read"]
    outer = sum(totals[label] for label, *_, top in STAGES if top)
    print("\n| stage | calls | seconds | share |\n| --- | ---: | ---: | ---: |")
    for label, *_ in STAGES:
        print(f"| {label} | {calls[label]} | {totals[label]:.2f} | {totals[label] / wall:.0%} |")
    print(f"| rest (start-up, Beam, commit) | | {wall - outer:.2f} | {(wall - outer) / wall:.0%} |")
    print(f"| **run** | | **{wall:.2f}** | |")
    if points:
        print(f"\n{points:,} points, {points / wall:,.0f} points/s (timers add a little)")


if __name__ == "__main__":
    main()
