"""The command line as users meet it (issue 14): quiet by default, ``-v`` for more, help that
tells the truth and answers without TensorFlow, and misspelled flags answered with the right
one. Real ``rnncast`` subprocesses; nothing here times anything (benchmarks/bench_help.py
does)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pandas as pd
import pytest

from rnncast.pipeline.cli import COMMANDS
from rnncast.usage import suggestion

# The user's environment, without the test suite's own TF_CPP_MIN_LOG_LEVEL: rnncast must be
# quiet by itself.
ENV = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
HEAVY = ("tensorflow", "keras", "apache_beam", "pandas", "pyarrow")
# Runs the real command line in-process, then names the heavy modules it loaded.
LOADED = (
    "import sys\n"
    "from rnncast.pipeline.cli import main\n"
    "try:\n    code = main(sys.argv[1:])\n"
    "except SystemExit as exit:\n    code = exit.code\n"
    f"print('LOADED', sorted(m for m in {HEAVY!r} if m in sys.modules), code)\n"
)


def rnncast(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rnncast", *args],
        capture_output=True,
        text=True,
        env=env or ENV,
        timeout=600,
    )


def loaded(*args: str) -> tuple[str, list[str], str]:
    """(stdout before the report, heavy modules loaded, stderr) of ``rnncast ARGS``."""
    done = subprocess.run(
        [sys.executable, "-c", LOADED, *args], capture_output=True, text=True, env=ENV
    )
    out, _, report = done.stdout.rpartition("LOADED ")
    modules = re.findall(r"'([a-z_]+)'", report.split("]")[0])
    return out, modules, done.stderr


@pytest.fixture(scope="module")
def helps() -> dict[str, tuple[str, list[str], str]]:
    """Every command's ``--help``, with what it loaded."""
    return {command: loaded(command, "--help") for command in COMMANDS}


def test_help_and_version_load_no_tensorflow_beam_or_pandas(helps):
    for command, (out, modules, err) in helps.items():
        assert out.startswith(f"usage: rnncast {command} "), (command, err[-2000:])
        assert modules == [], (command, modules)
    for args in (["--help"], ["--version"], []):
        out, modules, _ = loaded(*args)
        assert out and modules == [], (args, modules)


def test_flag_mistakes_answer_before_tensorflow_loads():
    _, modules, err = loaded("train", "--data", "d", "--model-dir", "m", "--epoch", "3")
    assert modules == []
    assert "--epoch: unknown argument; did you mean --epochs?" in err


def test_help_says_what_is_required_and_shows_no_empty_defaults(helps):
    required = {
        "dataset": ["--input", "--output"],
        "train": ["--data", "--model-dir"],
        "export": ["--model-dir"],
        "forecast": ["--model", "--input", "--output"],
        "evaluate": ["--input", "--output"],
        "stream": ["--model", "--output"],
        "schedule-run": ["--model", "--input", "--root"],
        "synthetic": ["--output"],
        "demo": [],
    }
    for command, (out, _, _) in helps.items():
        assert "(default: None)" not in out, command
        assert "(default: False)" not in out, command
        if not required[command]:
            assert "required arguments:" not in out
            continue
        section = out.split("required arguments:\n", 1)[1].split("\n\n", 1)[0]
        listed = re.findall(r"^  (--[a-z-]+)", section, re.M)
        assert listed == required[command], (command, section)
        usage = out.split("\n\n", 1)[0]
        for flag in required[command]:  # without brackets in the usage line
            assert re.search(rf"(?<!\[){flag}\s+[A-Z_]+", usage), (command, flag)


def _flag_help(out: str, flag: str) -> str:
    match = re.search(rf"^  {flag}(?: [A-Z_]+)?\s+(.*?)(?=^  -|\n\n|\Z)", out, re.M | re.S)
    assert match, flag
    return " ".join(match.group(1).split())


def test_each_command_words_horizon_its_own_way(helps):
    texts = {c: _flag_help(helps[c][0], "--horizon") for c in ("dataset", "forecast", "stream")}
    texts["evaluate"] = _flag_help(helps["evaluate"][0], "--horizon")
    assert "targets cover (default 24)" in texts["dataset"]
    assert "at most the model's horizon" in texts["forecast"]
    assert "at most the model's horizon" in texts["stream"]
    assert "the --model export's horizon, else 24" in texts["evaluate"]
    assert len(set(texts.values())) == len(texts)
    assert "--horizon" in helps["schedule-run"][0]  # passed to the forecast job, explained


def test_refused_flags_are_not_listed_and_are_refused_with_the_reason(helps, tmp_path):
    stream, evaluate = helps["stream"][0], helps["evaluate"][0]
    assert not re.search(r"--input(?![-\w])", stream)
    assert "--max-rejected-fraction" not in stream
    assert "--input-pattern" in stream
    assert "--init-from" not in evaluate and "--warm-start" in evaluate
    for flag, reason in [
        ("--input", "is for the batch jobs; watch files with --input-pattern GLOB"),
        ("--max-rejected-fraction", "does not apply to a stream"),
    ]:
        done = rnncast("stream", "--model", "m", "--output", str(tmp_path), flag, "0.5")
        assert done.returncode == 2
        assert f"rnncast stream: {flag} {reason}" in done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_misspelled_commands_and_flags_get_a_suggestion(tmp_path):
    done = rnncast("datset", "--help")
    assert done.returncode == 2
    assert "unknown command 'datset'; did you mean 'dataset'?" in done.stderr
    csv = tmp_path / "in.csv"
    csv.write_text("series_id,timestamp,value\na,2024-01-01,1\n")
    done = rnncast(
        "dataset", "--input", str(csv), "--output", str(tmp_path / "o"), "--num_steps", "8"
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--num_steps: unknown argument; did you mean --num-steps?" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    done = rnncast("synthetic", "--output", str(tmp_path / "s.csv"), "--num_series=3")
    assert done.returncode == 2
    assert "--num_series: unknown argument; did you mean --num-series?" in done.stderr
    assert not (tmp_path / "s.csv").exists()
    # Commands whose other flags are Beam options name their own flags too.
    schedule = ["schedule-run", "--model", "m", "--input", "i", "--root", "r"]
    for command, wrong, right in [
        (schedule, "--run_date", "--run-date"),
        (["demo", "--output", str(tmp_path / "demo")], "--epoch", "--epochs"),
    ]:
        done = rnncast(*command, wrong, "3")
        assert done.returncode == 2, done.stderr[-2000:]
        assert f"{wrong}: unknown argument; did you mean {right}?" in done.stderr
    assert not (tmp_path / "demo").exists()


def test_suggestions():
    known = ["--num-steps", "--batch-size", "--direct_num_workers", "--horizon"]
    assert suggestion("--num_steps", known).startswith("did you mean --num-steps?")
    assert suggestion("--num_steps=32", known).startswith("did you mean --num-steps?")
    assert suggestion("--batch-sise", known) == "did you mean --batch-size?"
    assert suggestion("--direct_num_worker", known) == "did you mean --direct_num_workers?"
    assert suggestion("--colour", known) == ""


def test_synthetic_num_covariates_and_its_deprecated_alias(tmp_path, helps):
    out = helps["synthetic"][0]
    assert "--num-covariates" in out
    assert not re.search(r"--covariates(?![-\w])", out)
    frames = {}
    for flag in ("--num-covariates", "--covariates"):
        path = tmp_path / f"{flag.strip('-')}.parquet"
        done = rnncast(
            "synthetic", "--output", str(path), "--num-series", "2", "--min-length", "20",
            "--max-length", "30", flag, "2",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        frames[flag] = pd.read_parquet(path)
        deprecated = "--covariates is deprecated" in done.stderr
        assert deprecated == (flag == "--covariates")
    assert len(frames["--num-covariates"].columns) == 3 + 2
    pd.testing.assert_frame_equal(frames["--num-covariates"], frames["--covariates"])


def _noise(stderr: str) -> list[str]:
    """The lines of ``stderr`` that are not rnncast's own report."""
    return [
        line for line in stderr.splitlines() if line.strip() and not line.startswith("rnncast ")
    ]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("tiny") / "series.csv"
    done = rnncast(
        "synthetic", "--output", str(path), "--num-series", "3", "--min-length", "120",
        "--max-length", "160",
    )  # fmt: skip
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return str(path)


DATASET = ["--num-steps", "16", "--batch-size", "2", "--horizon", "4"]


def test_quiet_by_default_and_verbose_with_v(tiny, tmp_path):
    quiet = rnncast("dataset", "--input", tiny, "--output", str(tmp_path / "q"), *DATASET)
    assert quiet.returncode == 0, quiet.stderr
    assert _noise(quiet.stderr) == [], quiet.stderr
    assert "apitools" not in quiet.stderr and "INFO" not in quiet.stderr
    # -v after the command, then before it: INFO lines (Beam's) come back.
    for args in (["dataset", "-v"], ["--verbose", "dataset"]):
        out = str(tmp_path / args[0].strip("-"))
        loud = rnncast(*args, "--input", tiny, "--output", out, *DATASET)
        assert loud.returncode == 0, loud.stderr
        assert re.search(r"^INFO apache_beam", loud.stderr, re.M), loud.stderr[-2000:]
        assert "apitools" not in loud.stderr


def test_worker_processes_are_quiet_too(tiny, tmp_path):
    done = rnncast(
        "dataset", "--input", tiny, "--output", str(tmp_path / "mp"), *DATASET,
        "--direct_running_mode=multi_processing", "--direct_num_workers=2",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Discarding unparseable args" not in done.stderr
    for chatter in ("sdk_worker", "data_plane", "statecache", "Pipeline_options", "Worker:"):
        assert chatter not in done.stderr, chatter
    # Nothing at all: the workers start through rnncast.pipeline.beam.worker, which drops
    # the two notes Beam's own entry point prints before it reads any option.
    assert _noise(done.stderr) == [], done.stderr
    assert "apitools" not in done.stderr and "Logging handler created" not in done.stderr
    # -v: the workers' notes and INFO lines are back (the worker drops them only when asked).
    loud = rnncast(
        "-v", "dataset", "--input", tiny, "--output", str(tmp_path / "mp-v"), *DATASET,
        "--direct_running_mode=multi_processing", "--direct_num_workers=2",
    )  # fmt: skip
    assert loud.returncode == 0, loud.stderr
    assert loud.stderr.count("Logging handler created") >= 2, loud.stderr[-3000:]


def test_tensorflow_commands_are_quiet(tiny, tmp_path):
    data, model = str(tmp_path / "data"), str(tmp_path / "model")
    assert rnncast("dataset", "--input", tiny, "--output", data, *DATASET).returncode == 0
    train = rnncast(
        "train", "--data", data, "--model-dir", model, "--epochs", "1", "--units", "4",
        "--layers", "1", "--min-batches-per-epoch", "0",
    )  # fmt: skip
    assert train.returncode == 0, train.stderr
    forecast = rnncast(
        "forecast", "--model", f"{model}/export", "--input", tiny, "--output",
        str(tmp_path / "forecasts"),
    )  # fmt: skip
    assert forecast.returncode == 0, forecast.stderr
    for done in (train, forecast):
        assert _noise(done.stderr) == [], done.stderr[-3000:]
    assert "absl::InitializeLog" not in train.stderr + forecast.stderr


# The Beam commands: the help's parser (Beam-free) and the parser the job checks its flags
# with (Beam's, with every pipeline option) must know the same rnncast flags.
BEAM_JOBS = {
    "dataset": ("rnncast.pipeline.jobs.dataset", "DatasetOptions"),
    "forecast": ("rnncast.pipeline.jobs.forecast", "ForecastOptions"),
    "stream": ("rnncast.pipeline.jobs.stream", "StreamOptions"),
}


@pytest.mark.parametrize("command", sorted(BEAM_JOBS))
def test_fast_help_knows_every_flag_the_job_accepts(command, helps):
    import importlib

    from apache_beam.options.pipeline_options import PipelineOptions

    from rnncast.pipeline.beam.options import beam_parser
    from rnncast.usage import flags_of

    module, name = BEAM_JOBS[command]
    options_class = getattr(importlib.import_module(module), name)
    accepted = set(flags_of(beam_parser(options_class, command, "")))
    beams = set(flags_of(beam_parser(PipelineOptions, command, "")))
    own = accepted - beams  # rnncast's flags: what the job accepts beyond Beam's options
    fast = options_class.FLAGS.help_parser()
    listed = set(flags_of(fast)) - {"--help"}
    assert own == listed, own ^ listed
    # ... and the help prints each one but those the command refuses.
    out = helps[command][0]
    for flag in sorted(listed - set(options_class.FLAGS.refused)):
        assert re.search(rf"^  {flag}\b", out, re.M), flag
    assert f"'rnncast {command} --help-beam' lists them all" in out


def test_help_beam_lists_beams_own_options_too():
    done = rnncast("forecast", "--help-beam")
    assert done.returncode == 0, done.stderr
    for flag in ("--runner", "--direct_num_workers", "--temp_location", "--model", "--lanes"):
        assert re.search(rf"^\s+{flag}\b", done.stdout, re.M), flag
    assert "required arguments:" in done.stdout


def test_workers_drop_their_notes_only_when_the_job_asks_for_warnings():
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.portability.portable_runner import JobServiceHandle
    from google.protobuf import json_format

    from rnncast.pipeline.beam.worker import wants_quiet

    def options_json(*args: str) -> str:  # what a worker finds in PIPELINE_OPTIONS
        encoded = JobServiceHandle.encode_pipeline_options(PipelineOptions(args).get_all_options())
        return json_format.MessageToJson(encoded)

    assert wants_quiet(options_json("--default_sdk_harness_log_level=WARNING"))
    assert wants_quiet(options_json("--default_sdk_harness_log_level=ERROR"))
    assert not wants_quiet(options_json("--default_sdk_harness_log_level=INFO"))
    assert not wants_quiet(options_json())
    assert not wants_quiet("not json")
