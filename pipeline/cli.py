"""The ``rnncast`` command line: one subcommand per job."""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import re
import sys

from rnncast import __version__, quiet_import
from rnncast.errors import JobArgumentError, RnncastError
from rnncast.usage import HelpFormatter, flags_of, mark_required, parse_strictly

COMMANDS = {
    "dataset": "Beam job: series (CSV/Parquet) -> stateful TFRecord batches + metadata.json.",
    "train": "Train an RNN forecaster on a dataset (truncated BPTT), then export it.",
    "export": "Export a trained model directory as a SavedModel (step/forecast signatures).",
    "forecast": "Beam job: forecasts for every series from an exported model, incremental.",
    "evaluate": "Rolling-origin backtest against naive, seasonal naive and classical baselines.",
    "stream": "Beam streaming job: forecasts from new files / messages as points arrive.",
    "schedule-run": "One scheduled period: forecast from the latest state, advance LATEST.",
    "synthetic": "Write the deterministic synthetic series set (CSV or Parquet).",
    "demo": "Run the main flow end to end on the embedded real dataset.",
}


def _help_parser(command: str) -> argparse.ArgumentParser | None:
    """The ``--help`` parser of a Beam command, built without Beam, pandas or TensorFlow
    (its flags are declared in ``rnncast.pipeline.beam.flags``); None for the other
    commands, whose own parsers are already that cheap."""
    from rnncast.pipeline.beam import flags

    if command == "evaluate":
        from rnncast.pipeline.jobs.evaluate.options import build_parser

        return build_parser()
    return {
        "dataset": flags.DATASET.help_parser,
        "forecast": flags.FORECAST.help_parser,
        "stream": flags.STREAM.help_parser,
        "schedule-run": flags.schedule_parser,
    }.get(command, lambda: None)()


def _dataset(argv: list[str]) -> int:
    from rnncast.pipeline.jobs import dataset as dataset_job

    dataset_job.run(argv)
    return 0


def _forecast(argv: list[str]) -> int:
    from rnncast.pipeline.jobs import forecast as forecast_job

    forecast_job.run(argv)
    return 0


def _evaluate(argv: list[str]) -> int:
    from rnncast.pipeline.jobs import evaluate as evaluate_job

    evaluate_job.run(argv)
    return 0


def _stream(argv: list[str]) -> int:
    from rnncast.pipeline.jobs import stream as stream_job

    stream_job.run(argv)
    return 0


def _schedule_run(argv: list[str]) -> int:
    from rnncast.pipeline.jobs import schedule

    return schedule.main(argv)


def _train(argv: list[str]) -> int:
    from rnncast.model.flags import build_parser, config_from_args

    # Flags first (--help and mistakes answer at once), TensorFlow after.
    args = parse_strictly(build_parser(), argv)
    from rnncast.model import export, train

    code = train.main(argv)
    # In a multi-worker run only the chief exports (the others write nothing).
    if code == 0 and config_from_args(args, args.data, args.model_dir).is_chief:
        print(f"rnncast train: exported {export.export_model(args.model_dir)}")
    return code


def _export_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnncast export",
        allow_abbrev=False,
        description="Write MODEL_DIR/export: a SavedModel with 'step' and 'forecast' "
        "signatures, rnncast_model.json, weights.npz (what the rnncast jobs load) and "
        "model.keras, from the best checkpoint.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--model-dir", help="Model directory of rnncast train.")
    mark_required(parser, ["--model-dir"])
    return parser


def _export(argv: list[str]) -> int:
    args = parse_strictly(_export_parser(), argv)
    from rnncast.model import export

    print(f"rnncast export: wrote {export.export_model(args.model_dir)}")
    return 0


def _synthetic_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnncast synthetic",
        allow_abbrev=False,
        description="Write the deterministic synthetic series set used by tests and benchmarks.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--output", help="File to write (.csv or .parquet).")
    mark_required(parser, ["--output"])
    parser.add_argument("--num-series", type=int, default=100, help="Number of series.")
    parser.add_argument("--min-length", type=int, default=500, help="Shortest series (points).")
    parser.add_argument("--max-length", type=int, default=5000, help="Longest series (points).")
    parser.add_argument(
        "--num-covariates",
        type=int,
        default=0,
        help="Number of numeric covariate columns to add (named cov0, cov1, ...).",
    )
    # The old name of --num-covariates (elsewhere --covariates names columns); kept for one
    # release, not listed.
    parser.add_argument("--covariates", type=int, dest="num_covariates", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help="Seed; same seed, same bytes.")
    return parser


def _synthetic(argv: list[str]) -> int:
    args = parse_strictly(_synthetic_parser(), argv)
    if any(a.split("=", 1)[0] == "--covariates" for a in argv):
        print(
            "rnncast synthetic: --covariates is deprecated (it will be removed in the next "
            "release); use --num-covariates",
            file=sys.stderr,
        )
    from rnncast.pipeline.core import synthetic

    frame = synthetic.generate(
        args.num_series,
        args.min_length,
        args.max_length,
        args.seed,
        num_covariates=args.num_covariates,
    )
    synthetic.write(frame, args.output)
    print(
        f"rnncast synthetic: wrote {len(frame)} rows of {args.num_series} series to {args.output}"
    )
    return 0


# The demo's settings for the embedded daily weather (two weeks ahead). The model settings
# were chosen on validation origins before the test origins (benchmarks/tune_defaults.py).
DEMO_DATASET = {"num_steps": 32, "batch_size": 8, "horizon": 14}
DEMO_MODEL = {"units": 32}
DEMO_BACKTEST = {"horizon": 14, "origins": 6, "origin_every": 14, "refit_every": 3}


def demo_backtest(data: str, output: str, epochs: int = 20, **backtest):
    """The demo's rolling-origin evaluation of ``data`` into ``output``: an
    :class:`~rnncast.pipeline.jobs.evaluate.EvaluateConfig` (``backtest`` overrides its own
    fields; replace ``dataset``/``training`` for the rest)."""
    from rnncast.model.config import TrainConfig
    from rnncast.pipeline.jobs.dataset import DatasetConfig
    from rnncast.pipeline.jobs.evaluate import EvaluateConfig

    return EvaluateConfig(
        input=data,
        output=output,
        # Templates: each origin sets the input and output (data and model directory).
        dataset=DatasetConfig(input=data, output=output, **DEMO_DATASET),
        training=TrainConfig(data="", model_dir="", epochs=epochs, **DEMO_MODEL),
        **{**DEMO_BACKTEST, **backtest},
    )


def _demo_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnncast demo",
        allow_abbrev=False,
        description="Run the whole flow on the embedded Seattle daily weather (2012-2015): "
        "the dataset job, training, export, the forecast job (with state) and a rolling-origin "
        "evaluation against baselines, writing everything under --output and printing the "
        "accuracy table.",
        epilog="Other flags are Beam pipeline options for its jobs (e.g. --direct_num_workers).",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--output", default="rnncast-demo", help="Directory for all outputs.")
    parser.add_argument("--epochs", type=int, default=20, help="Training epochs.")
    parser.add_argument("--skip-evaluate", action="store_true", help="Stop after the forecast job.")
    return parser


def _demo(argv: list[str]) -> int:
    parser = _demo_parser()
    args, beam_args = parser.parse_known_args(argv)
    from apache_beam.options.pipeline_options import PipelineOptions

    from rnncast.pipeline.beam.options import JobOptions, parse_job_options

    # The rest must be Beam options (a misspelled demo flag is named with the right one).
    parse_job_options(beam_args, JobOptions, "rnncast demo", parser.description, flags_of(parser))

    from rnncast.model import export, train
    from rnncast.model.config import TrainConfig
    from rnncast.pipeline import embedded_data_path
    from rnncast.pipeline.jobs import dataset as dataset_job
    from rnncast.pipeline.jobs import evaluate as evaluate_job
    from rnncast.pipeline.jobs import forecast as forecast_job

    data = embedded_data_path()
    dataset = os.path.join(args.output, "dataset")
    print("rnncast demo: 1/4 dataset job", file=sys.stderr)
    dataset_job.run_config(
        dataset_job.DatasetConfig(input=data, output=dataset, **DEMO_DATASET),
        PipelineOptions(beam_args),
    )
    model_dir = os.path.join(args.output, "model")
    print("rnncast demo: 2/4 training and export", file=sys.stderr)
    train.train(TrainConfig(dataset, model_dir, epochs=args.epochs, **DEMO_MODEL))
    print(f"rnncast train: exported {export.export_model(model_dir)}")
    print("rnncast demo: 3/4 forecast job", file=sys.stderr)
    forecasts = os.path.join(args.output, "forecasts")
    forecast_job.run_config(
        forecast_job.ForecastConfig(
            model=os.path.join(model_dir, "export"),
            input=data,
            output=forecasts,
            state_out=os.path.join(args.output, "state"),
        ),
        PipelineOptions(beam_args),
    )
    if args.skip_evaluate:
        return 0
    print("rnncast demo: 4/4 rolling-origin evaluation", file=sys.stderr)
    evaluation = os.path.join(args.output, "evaluation")
    evaluate_job.run_config(
        demo_backtest(data, evaluation, args.epochs), PipelineOptions(beam_args)
    )
    print(
        f"rnncast demo: forecasts in {forecasts}, evaluation summary "
        f"{os.path.join(evaluation, 'summary.md')}, plots in {os.path.join(evaluation, 'plots')}"
    )
    return 0


HANDLERS = {
    "dataset": _dataset,
    "train": _train,
    "export": _export,
    "forecast": _forecast,
    "evaluate": _evaluate,
    "stream": _stream,
    "schedule-run": _schedule_run,
    "synthetic": _synthetic,
    "demo": _demo,
}


def check_arguments(argv: list[str]) -> None:
    """Parse an ``rnncast`` command line without running it; raise :class:`JobArgumentError`
    on an unknown command or flag (used to check the invocations written in docs)."""
    from rnncast.model.flags import build_parser as train_parser
    from rnncast.pipeline.beam.flags import schedule_parser
    from rnncast.pipeline.beam.options import parse_job_options
    from rnncast.pipeline.jobs.dataset import DESCRIPTION as DATASET
    from rnncast.pipeline.jobs.dataset import DatasetOptions
    from rnncast.pipeline.jobs.evaluate import build_parser as evaluate_parser
    from rnncast.pipeline.jobs.forecast import DESCRIPTION as FORECAST
    from rnncast.pipeline.jobs.forecast import ForecastOptions
    from rnncast.pipeline.jobs.stream import DESCRIPTION as STREAM
    from rnncast.pipeline.jobs.stream import StreamOptions

    command, rest = argv[0], list(argv[1:])
    if command not in HANDLERS:
        raise JobArgumentError(f"unknown command {command!r}")
    beam_options = {
        "dataset": (DatasetOptions, DATASET),
        "forecast": (ForecastOptions, FORECAST),
        "stream": (StreamOptions, STREAM),
    }
    if command in beam_options:
        parse_job_options(
            rest, *(beam_options[command][:1]), f"rnncast {command}", beam_options[command][1]
        )
        return
    parser = {
        "train": train_parser,
        "export": _export_parser,
        "synthetic": _synthetic_parser,
        "demo": _demo_parser,
        "schedule-run": schedule_parser,
        "evaluate": evaluate_parser,
    }[command]()
    try:
        _, unknown = parser.parse_known_args(rest)
    except SystemExit as err:
        raise JobArgumentError(f"rnncast {command}: bad arguments {rest}") from err
    if unknown:
        if command not in ("demo", "schedule-run", "evaluate"):
            raise JobArgumentError(f"rnncast {command}: unknown argument(s) {unknown}")
        # The rest are Beam options for the jobs these commands run.
        parse_job_options(unknown, ForecastOptions, f"rnncast {command}", FORECAST)


VERBOSE = ("-v", "--verbose")
# Commands that run Beam pipelines (their workers get quiet logging flags, below).
BEAM_COMMANDS = ("dataset", "forecast", "evaluate", "stream", "schedule-run", "demo")
# Lines nobody acts on: Beam's note, at import, that the optional Google Cloud client
# libraries are missing (rnncast needs them only for gs:// and Dataflow, 'rnncast[gcp]').
NOISE = ("apitools not found",)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(NOISE)


def configure_logging(verbose: bool) -> None:
    """Quiet by default: warnings and errors only, from Python and absl, nothing from
    TensorFlow's C++ (set before TensorFlow loads; an environment variable the user set
    wins); ``verbose``: INFO lines too. Call before importing TensorFlow or Beam."""
    if not verbose:
        # C++: no INFO, WARNING ("Type inference failed"), ERROR (missing CUDA drivers).
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        if os.environ["TF_CPP_MIN_LOG_LEVEL"] != "0":
            # Its start-up lines come before that level applies (see rnncast.quiet_import).
            quiet_import()
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(level)
    if not any(isinstance(f, _DropNoise) for f in root.filters):  # main() may run again
        root.addFilter(_DropNoise())
    # absl's Python logger (Keras and TensorFlow use it) follows the root level.
    logging.getLogger("absl").setLevel(level)
    # Beam warns about every rnncast flag it does not know each time options are viewed;
    # parse_job_options already refuses unknown flags, so those warnings carry no news.
    logging.getLogger("apache_beam.options.pipeline_options").setLevel(logging.ERROR)
    # Beam logs a DoFn's exception with its traceback before re-raising it; the re-raised
    # error reaches the handler below (a user error: one line; anything else: the traceback).
    logging.getLogger("apache_beam.runners.common").setLevel(logging.CRITICAL)


def quiet_workers(argv: list[str]) -> list[str]:
    """``argv`` plus the Beam options that keep worker processes
    (``--direct_running_mode=multi_processing``, remote runners) at warnings, without their
    start-up notes and the "Discarding unparseable args" list of rnncast's own flags; flags
    the user gave win."""
    given = {a.split("=", 1)[0] for a in argv}
    extra = []
    if "--default_sdk_harness_log_level" not in given:
        extra.append("--default_sdk_harness_log_level=WARNING")
    if "--sdk_harness_log_level_overrides" not in given:
        # The worker's start-up module (__main__ when Beam starts it, by name when rnncast's
        # local workers do: rnncast.pipeline.beam.worker); pipeline_options: the
        # discarded-args list.
        levels = {
            "__main__": "ERROR",
            "apache_beam.runners.worker.sdk_worker_main": "ERROR",
            "apache_beam.options.pipeline_options": "ERROR",
        }
        extra.append(f"--sdk_harness_log_level_overrides={json.dumps(levels)}")
    return [*argv, *extra]


def _dump_stacks_on_sigusr1() -> None:
    """``kill -USR1 PID`` prints every thread's Python stack to stderr: what a long-running
    job (``stream``, a large ``dataset``) is doing when it seems stuck, without stopping it."""
    import contextlib
    import faulthandler
    import signal

    if not hasattr(signal, "SIGUSR1"):  # Windows
        return

    def dump(signum, frame) -> None:
        # Runs in the main thread with the GIL held, so no other thread's frames change while
        # they are read. (faulthandler.register dumps from the C signal handler while the
        # other threads run on, and crashed the stream with SIGSEGV in about 1 run in 10.)
        with contextlib.suppress(OSError, ValueError, AttributeError, RuntimeError):
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)

    # Not from another thread than the main one (an embedding program): signal.signal refuses.
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGUSR1, dump)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="rnncast",
        description="Forecasting pipeline for long time series (Apache Beam + Keras).",
        epilog="Run 'rnncast COMMAND --help' for the flags of a command. -v/--verbose, "
        "before or after COMMAND, shows INFO logs (TensorFlow's, Beam's and its workers').",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)
    parser.add_argument("--version", action="version", version=f"rnncast {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="Show INFO logs.")
    verbose = any(a in VERBOSE for a in argv)
    argv = [a for a in argv if a not in VERBOSE]
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    if argv[0] == "--version":
        print(f"rnncast {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in HANDLERS:
        close = difflib.get_close_matches(command, list(COMMANDS), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        parser.error(f"unknown command {command!r}; {hint}choose from {', '.join(COMMANDS)}")
    helping = any(a in ("-h", "--help") for a in rest)
    if helping and (help_parser := _help_parser(command)) is not None:
        help_parser.print_help()
        return 0
    configure_logging(verbose)
    _dump_stacks_on_sigusr1()
    if command in BEAM_COMMANDS and not verbose and not helping:
        rest = quiet_workers(rest)
    try:
        return HANDLERS[command](rest)
    except Exception as err:
        known = _user_error(err)
        if known is None:
            raise
        message = re.sub(r"( \[while running '[^']*'\])+$", "", str(known))
        print(f"rnncast {command}: error: {message}", file=sys.stderr)
        return 2


def _user_error(err: BaseException) -> BaseException | None:
    """``err`` or the user error it wraps (a runner may re-raise a worker's error as its own
    type, with the original as cause or context); None for anything else (a bug)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, RnncastError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


if __name__ == "__main__":
    raise SystemExit(main())
