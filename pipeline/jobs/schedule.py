"""``rnncast schedule-run``: the job a scheduler runs each period.

Layout under ``--root`` (any Beam file system):

    ROOT/LATEST                     run date of the newest committed state
    ROOT/runs/<date>.json           which state a run started from (written before it starts)
    ROOT/state/<date>/              --state-out of that run (committed atomically)
    ROOT/forecasts/<date>/          its forecasts

A run forecasts with ``--state-in`` = the state ``LATEST`` names and ``--state-out`` = a new dated
directory, then moves ``LATEST`` in one atomic write. It is safe to retry after a crash at any
point: the run's manifest pins the state it started from, so a retry (before or after the
pointer moved) reads the same state and writes the same outputs; a half-written state is never
named by ``LATEST`` and never read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from apache_beam.io.filesystems import FileSystems

from rnncast.errors import ModelError, OutputError
from rnncast.pipeline.beam import flags
from rnncast.pipeline.beam.options import parse_job_options
from rnncast.pipeline.io import commit
from rnncast.pipeline.jobs import forecast as forecast_job
from rnncast.usage import flags_of

LATEST = "LATEST"


def _read_text(path: str) -> str | None:
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path) as source:
        return source.read().decode("utf-8").strip()


def schedule_run(
    model: str,
    input_path: str,
    root: str,
    run_date: str,
    beam_args: list[str] | None = None,
    after_forecast: Callable[[], None] | None = None,
) -> dict:
    """Run one scheduled period; ``after_forecast`` is a test hook between commit and pointer."""
    root = root.rstrip("/")
    owner = FileSystems.join(root, commit.METADATA)
    if FileSystems.exists(owner):
        raise OutputError(
            f"{root}: holds {owner}, the output of another rnncast job; schedule-run keeps its "
            "own dated forecasts/ and state/ directories under --root. Choose another --root"
        )
    manifest_path = FileSystems.join(root, "runs", f"{run_date}.json")
    latest = _read_text(FileSystems.join(root, LATEST))
    if FileSystems.exists(manifest_path):
        state_from = commit.read_json(manifest_path)["state_from"]  # a retry: same input state
    else:
        if latest is not None and run_date <= latest:
            raise ModelError(
                f"{root}: run {run_date} is not after the latest run {latest}; scheduled runs "
                "move forward (rerun an existing date only to retry it)"
            )
        state_from = latest
        if not FileSystems.exists(FileSystems.join(root, "runs")):
            FileSystems.mkdirs(FileSystems.join(root, "runs"))
        commit.write_json(manifest_path, {"run_date": run_date, "state_from": state_from})
    # The other flags are the forecast job's own (e.g. --horizon, --lanes) and Beam options.
    options, pipeline_options = parse_job_options(
        list(beam_args or []),
        forecast_job.ForecastOptions,
        "rnncast schedule-run",
        forecast_job.DESCRIPTION,
    )
    config = replace(
        forecast_job.config_from_options(options),
        model=model,
        input=input_path,
        output=FileSystems.join(root, "forecasts", run_date),
        state_out=FileSystems.join(root, "state", run_date),
        state_in=None if state_from is None else FileSystems.join(root, "state", state_from),
    )
    metadata = forecast_job.run_config(config, pipeline_options)
    if after_forecast is not None:
        after_forecast()
    if latest is None or run_date >= latest:
        commit.write_bytes(FileSystems.join(root, LATEST), (run_date + "\n").encode("utf-8"))
    print(f"rnncast schedule-run: {run_date} done; {LATEST} -> {max(run_date, latest or '')}")
    return metadata


def main(argv: list[str]) -> int:
    parser = flags.schedule_parser()
    args, beam_args = parser.parse_known_args(argv)
    # The rest are the forecast job's flags and Beam options; a misspelled one is named here
    # with the closest of all of them, schedule-run's own included.
    parse_job_options(
        beam_args,
        forecast_job.ForecastOptions,
        "rnncast schedule-run",
        forecast_job.DESCRIPTION,
        flags_of(parser),
    )
    schedule_run(args.model, args.input, args.root, args.run_date, beam_args)
    return 0
