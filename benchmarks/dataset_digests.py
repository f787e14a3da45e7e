"""SHA-256 of every file the dataset job writes, for a fixed set of synthetic inputs and options.

A guard for speed work on the job: its outputs must stay byte-identical (determinism
standard). Run it before a change with ``--save FILE`` and after it with ``--check FILE``;
the inputs are written to fixed paths (the run id and metadata name them).

    python benchmarks/dataset_digests.py --save /tmp/digests.json
    python benchmarks/dataset_digests.py --check /tmp/digests.json [--beam-args "..."]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# name -> (input file, job flags). Covers both layouts, covariates, CSV and Parquet, a
# validation split with warm-up, warm-up chunks, rejected rows, and several input batches.
CASES = {
    "stateful": ("plain.parquet", ["--num-steps", "32", "--batch-size", "8", "--horizon", "12"]),
    "stateful-warmup": (
        "plain.parquet",
        ["--num-steps", "16", "--batch-size", "5", "--horizon", "6", "--warmup-chunks", "2"]
        + ["--max-batches-per-stream", "40", "--validation-warmup-steps", "20"],
    ),
    "windows": (
        "plain.parquet",
        ["--layout", "windows", "--num-steps", "24", "--window-stride", "7", "--horizon", "5"],
    ),
    "covariates-csv": (
        "covariates.csv",
        ["--num-steps", "20", "--batch-size", "4", "--horizon", "3"]
        + ["--covariates", "covariate_0", "covariate_1", "--max-rejected-fraction", "0.2"],
    ),
    "covariates-windows": (
        "covariates.csv",
        ["--layout", "windows", "--num-steps", "20", "--horizon", "3", "--num-shards", "3"]
        + ["--covariates", "covariate_0,covariate_1", "--max-rejected-fraction", "0.2"]
        + ["--scaling", "mean", "--calendar-features", "none"],
    ),
}


def make_inputs(directory: str) -> None:
    sys.path.insert(0, ROOT)
    import numpy as np
    import pandas as pd

    from rnncast.pipeline.core import synthetic

    os.makedirs(directory, exist_ok=True)
    plain = synthetic.generate(60, 300, 2500, seed=3)
    synthetic.write(plain, os.path.join(directory, "plain.parquet"))
    frame = synthetic.generate(25, 50, 900, seed=4, num_covariates=2)
    # Some rows the job rejects: duplicates, a conflict, a missing value, off-grid times.
    extra = frame.iloc[[5, 6, 400, 401]].copy()
    extra.loc[extra.index[1], "value"] += 1.0
    bad = frame.iloc[[10, 500]].copy()
    bad["value"] = np.nan
    off = frame.iloc[[20, 700]].copy()
    off["timestamp"] = off["timestamp"] + np.timedelta64(17, "m")
    frame = pd.concat([frame, extra, bad, off], ignore_index=True)
    synthetic.write(frame, os.path.join(directory, "covariates.csv"))


def digests(directory: str) -> dict[str, str]:
    out = {}
    for base, _, files in sorted(os.walk(directory)):
        for name in sorted(files):
            path = os.path.join(base, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
    return out


def run_cases(work: str, beam_args: list[str]) -> dict[str, dict[str, str]]:
    inputs = os.path.join(work, "inputs")
    if not os.path.isdir(inputs):
        make_inputs(inputs)
    result = {}
    for case, (name, flags) in CASES.items():
        out = os.path.join(work, "out", case)
        shutil.rmtree(out, ignore_errors=True)
        command = [sys.executable, "-m", "rnncast", "dataset", "--input"]
        command += [os.path.join(inputs, name), "--output", out, *flags, *beam_args]
        subprocess.run(
            command,
            check=True,
            capture_output=True,
            env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3"),
        )
        result[case] = digests(out)
        print(f"{case}: {len(result[case])} files", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--save")
    group.add_argument("--check")
    parser.add_argument("--work", default="/tmp/rnncast-dataset-digests")
    parser.add_argument("--beam-args", default="")
    args = parser.parse_args()
    result = run_cases(args.work, args.beam_args.split())
    if args.save:
        with open(args.save, "w") as f:
            json.dump(result, f, indent=1, sort_keys=True)
        return
    with open(args.check) as f:
        expected = json.load(f)
    differ = [
        f"{case}/{path}"
        for case in expected
        for path in sorted(set(expected[case]) | set(result.get(case, {})))
        if expected[case].get(path) != result.get(case, {}).get(path)
    ]
    if differ:
        raise SystemExit("outputs differ: " + ", ".join(differ))
    print(f"identical: {sum(len(v) for v in result.values())} files in {len(result)} cases")


if __name__ == "__main__":
    main()
