"""How long ``rnncast COMMAND --help`` takes to answer (issue 14: "well under a second").

Runs ``python -m rnncast [COMMAND] --help`` (and ``--version``) as a user does, each REPEAT
times in a fresh process, and prints the median wall time per command as a Markdown table,
with what the command loaded (TensorFlow, Beam) and, for scale, the bare interpreter and the
imports of Beam's pipeline options and of TensorFlow.

    python benchmarks/bench_help.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time

from rnncast.pipeline.cli import COMMANDS

LOADED = (
    "import sys\n"
    "from rnncast.pipeline.cli import main\n"
    "try:\n    main(sys.argv[1:])\n"
    "except SystemExit:\n    pass\n"
    "print('LOADED', ' '.join(m for m in ('tensorflow', 'apache_beam') if m in sys.modules))\n"
)


def wall(command: list[str], repeat: int) -> float:
    """Median seconds of ``command`` over ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def loaded(args: list[str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", LOADED, *args], capture_output=True, text=True, check=True
    )
    return done.stdout.rpartition("LOADED")[2].strip() or "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="Runs per command (median).")
    args = parser.parse_args()
    rows = [(["--help"], "rnncast --help"), (["--version"], "rnncast --version")]
    rows += [([command, "--help"], f"rnncast {command} --help") for command in COMMANDS]
    print(f"{platform.machine()}, Python {platform.python_version()}, median of {args.repeat}")
    print()
    print("| command | wall | loads |")
    print("| --- | ---: | --- |")
    for argv, label in rows:
        seconds = wall([sys.executable, "-m", "rnncast", *argv], args.repeat)
        print(f"| `{label}` | {seconds:.2f} s | {loaded(argv)} |")
    for code, label in [
        ("pass", "bare `python`"),
        ("import apache_beam.options.pipeline_options", "import Beam's pipeline options"),
        ("import tensorflow", "import tensorflow"),
    ]:
        seconds = wall([sys.executable, "-c", code], args.repeat)
        print(f"| {label} (for scale) | {seconds:.2f} s | |")


if __name__ == "__main__":
    main()
