"""Entry point for Beam's Python operators: ``python schedule_run_pipeline.py --model ...``
runs one ``rnncast schedule-run`` period with the remaining flags as Beam options."""

import sys

from rnncast.pipeline.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["schedule-run", *sys.argv[1:]]))
