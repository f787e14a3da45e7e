"""The batch jobs through Beam's portable path, as Flink, Spark and Dataflow run them: a job
service receives the pipeline proto and a separate SDK worker pool executes the DoFns in other
processes (``--runner PortableRunner --environment_type EXTERNAL``). Their outputs must be
byte-identical to the local engine's.

Both services are the ones Beam ships in Python (no Java, no download): the job service
``local_job_service_main`` (which runs the pipeline with Beam's portable FnApiRunner) and
``worker_pool_main`` (which starts SDK harness workers on request).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner.fn_runner import FnApiRunner
from conftest import write_csv

from rnncast.errors import JobArgumentError
from rnncast.model.config import TrainConfig
from rnncast.model.export import export_model
from rnncast.model.train import train
from rnncast.pipeline.beam.engine import batch_runner
from rnncast.pipeline.core import synthetic
from rnncast.pipeline.core.validation import InputColumns
from rnncast.pipeline.jobs import dataset as dataset_job
from rnncast.pipeline.jobs import forecast as forecast_job


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"service exited ({process.returncode}): {log.read_text()[-2000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("localhost", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"port {port} did not open in {timeout} s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def portable(tmp_path_factory):
    """A job service and an SDK worker pool on localhost; yields the pipeline flags that send
    a job to them (``args``) and the folder of their logs. Both are stopped at the end."""
    folder = tmp_path_factory.mktemp("portable")
    env = dict(os.environ)
    # The pool starts workers with `python -m ...`: the venv's python must come first.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    job_port, pool_port = _free_port(), _free_port()
    commands = {
        "job_service": [
            sys.executable,
            "-m",
            "apache_beam.runners.portability.local_job_service_main",
            "--port",
            str(job_port),
        ],
        "worker_pool": [
            sys.executable,
            "-m",
            "apache_beam.runners.worker.worker_pool_main",
            "--service_port",
            str(pool_port),
        ],
    }
    processes = []
    try:
        for (name, command), port in zip(commands.items(), (job_port, pool_port)):
            log = folder / f"{name}.log"
            process = subprocess.Popen(
                command, cwd=folder, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
            )
            processes.append(process)
            _wait_for_port(port, process, log)
        yield {
            "args": [
                "--runner",
                "PortableRunner",
                "--job_endpoint",
                f"localhost:{job_port}",
                "--environment_type",
                "EXTERNAL",
                "--environment_config",
                f"localhost:{pool_port}",
            ],
            "logs": folder,
        }
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _files(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    folder = tmp_path_factory.mktemp("series")
    frame = synthetic.generate(6, 300, 420, seed=5, gap_fraction=0.01, num_covariates=1)
    return write_csv(frame, folder / "series.csv"), folder


def _dataset(source: str, output: Path, pipeline_args: list[str]) -> dict:
    config = dataset_job.DatasetConfig(
        input=source,
        output=str(output),
        num_steps=16,
        batch_size=4,
        horizon=4,
        columns=InputColumns(covariates=("covariate_0",)),
    )
    return dataset_job.run_config(config, PipelineOptions(pipeline_args))


def test_dataset_job_on_the_portable_runner_equals_the_local_engine(portable, series):
    source, folder = series
    local = _dataset(source, folder / "local", [])
    remote = _dataset(source, folder / "portable", portable["args"])
    assert remote == local  # metadata.json: same run id, files, counts
    assert _files(folder / "portable") == _files(folder / "local")
    # The job service ran it, with SDK workers the pool started in processes of their own.
    logs = portable["logs"]
    assert "with state DONE" in (logs / "job_service.log").read_text()
    assert "Starting worker with command" in (logs / "worker_pool.log").read_text()


def test_forecast_job_on_the_portable_runner_equals_the_local_engine(portable, series):
    source, folder = series
    data = folder / "local"
    if not (data / "metadata.json").exists():
        _dataset(source, data, [])
    config = TrainConfig(str(data), str(folder / "model"), units=8, epochs=1, dropout=0.0)
    train(config, log=lambda _: None)
    model = export_model(config.model_dir)
    outputs = {}
    for name, args in (("local", []), ("portable", portable["args"])):
        forecast_job.run_config(
            forecast_job.ForecastConfig(
                model=model,
                input=source,
                output=str(folder / f"forecasts-{name}"),
                state_out=str(folder / f"state-{name}"),
            ),
            PipelineOptions(args),
        )
        outputs[name] = {part: _files(folder / f"{part}-{name}") for part in ("forecasts", "state")}
    assert outputs["portable"] == outputs["local"]
    assert outputs["local"]["forecasts"] and outputs["local"]["state"]


@pytest.mark.parametrize(
    "args, engine",
    [
        ([], "FnApiRunner"),
        (["--runner", "DirectRunner"], "FnApiRunner"),
        (["--direct_running_mode", "multi_processing"], "FnApiRunner"),
        (["--runner", "PrismRunner"], None),
        (["--runner", "PortableRunner"], None),
        (["--runner", "DirectRunner", "--streaming"], None),
    ],
)
def test_the_local_engine_is_chosen_not_left_to_a_download(args, engine):
    # Beam's DirectRunner would try Prism first (a download) and fall back; the batch jobs
    # name the FnApiRunner themselves and leave every other runner to Beam.
    runner = batch_runner(PipelineOptions(args))
    assert (runner is not None and isinstance(runner, FnApiRunner)) == (engine is not None)
    if runner is not None:
        # The options reach its workers, as with the DirectRunner.
        encoded = runner._provision_info.provision_info.pipeline_options  # noqa: SLF001
        assert ('string_value: "multi_processing"' in str(encoded)) == ("multi_processing" in args)


RUNNER_MODULE = '''
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner.fn_runner import FnApiRunner


class ClusterOptions(PipelineOptions):
    """Declared in the runner's module, as Beam's Dask runner declares --dask_client_address."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--cluster_address", default=None)


class ClusterRunner(FnApiRunner):
    """A runner of its own module: runs locally, but only with its option set."""

    def run_pipeline(self, pipeline, options):
        assert options.view_as(ClusterOptions).cluster_address == "tcp://scheduler:8786"
        return super().run_pipeline(pipeline, options)
'''


def test_a_runner_named_by_module_brings_its_own_options(series, tmp_path, monkeypatch):
    # A runner's options are registered when its module is imported, which Beam does only
    # when it builds the runner: rnncast's strict flag check must not refuse them before.
    (tmp_path / "cluster_runner.py").write_text(RUNNER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    source, folder = series
    base = ["--input", source, "--num-steps", "16", "--batch-size", "4", "--horizon", "4"]
    base += ["--covariates", "covariate_0"]
    local = dataset_job.run([*base, "--output", str(tmp_path / "local")])
    on_runner = dataset_job.run(
        [*base, "--output", str(tmp_path / "cluster")]
        + ["--runner", "cluster_runner.ClusterRunner", "--cluster_address", "tcp://scheduler:8786"]
    )
    assert on_runner == local
    # Without the runner the option is unknown, as before.
    with pytest.raises(JobArgumentError, match="unknown argument"):
        dataset_job.run([*base, "--output", str(tmp_path / "x"), "--cluster_addres", "y"])


def test_runners_the_jobs_cannot_run_on_are_refused_with_the_reason(series, tmp_path):
    source, _ = series
    argv = ["--input", source, "--output", str(tmp_path / "o"), "--runner"]
    with pytest.raises(JobArgumentError, match="Dask runner mixes the extra named outputs"):
        dataset_job.run([*argv, "apache_beam.runners.dask.dask_runner.DaskRunner"])
    with pytest.raises(JobArgumentError, match="Dask runner"):
        forecast_job.run([*argv, "DaskRunner", "--model", str(tmp_path)])
    with pytest.raises(JobArgumentError, match="cannot import no_such_module"):
        dataset_job.run([*argv, "no_such_module.Runner"])
    assert not (tmp_path / "o").exists()
