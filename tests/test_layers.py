"""The package's layers, as imports: core (numpy/pandas only) < io < beam < jobs < cli.

``rnncast.pipeline.core`` holds the logic and imports neither Beam nor TensorFlow; ``io``
reads and writes files; ``beam`` holds the transforms the jobs share; a job does not import
another job, except the two that run other jobs by design (below).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDERS = {"pipeline": "rnncast.pipeline", "model": "rnncast.model", "rnncast": "rnncast"}
HEAVY = ("apache_beam", "tensorflow", "keras")
# Jobs that run other jobs: evaluate trains and forecasts at every origin, schedule-run runs
# one forecast job per period. Each may import those jobs.
RUNS_JOBS = {
    "rnncast.pipeline.jobs.evaluate": {
        "rnncast.pipeline.jobs.dataset",
        "rnncast.pipeline.jobs.forecast",
    },
    "rnncast.pipeline.jobs.schedule": {"rnncast.pipeline.jobs.forecast"},
}


def _modules() -> dict[str, str]:
    """Every module of the package: import name -> file."""
    found = {}
    for folder, package in FOLDERS.items():
        for directory, _, files in os.walk(os.path.join(ROOT, folder)):
            relative = os.path.relpath(directory, os.path.join(ROOT, folder))
            prefix = package if relative == "." else f"{package}.{relative.replace(os.sep, '.')}"
            for name in files:
                if name.endswith(".py"):
                    module = prefix if name == "__init__.py" else f"{prefix}.{name[:-3]}"
                    found[module] = os.path.join(directory, name)
    return found


MODULES = _modules()


def _imports(path: str) -> set[str]:
    """Every module ``path`` imports, at any depth of the file (lazy imports included); for
    ``from package import name`` both the package and ``package.name``."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[:2] == ["rnncast", "pipeline"] and len(parts) > 2:
        return parts[2]
    return None


def test_the_package_has_the_four_layers():
    layers = {_layer(m) for m in MODULES if _layer(m)}
    assert {"core", "io", "beam", "jobs", "cli"} <= layers
    # Nothing else at the top of rnncast.pipeline: every module sits in a layer.
    assert layers == {"core", "io", "beam", "jobs", "cli"}, layers


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) == "core"))
def test_core_imports_only_core_numpy_pandas_arrow(module):
    imports = _imports(MODULES[module])
    heavy = sorted(i for i in imports if i.split(".")[0] in HEAVY)
    assert not heavy, f"{module} imports {heavy}"
    inner = sorted(
        i
        for i in imports
        if i.startswith("rnncast.")
        and i in MODULES
        and not i.startswith("rnncast.pipeline.core")
        and i not in ("rnncast.schemas", "rnncast.errors")
    )
    assert not inner, f"{module} imports {inner} from outside core"


@pytest.mark.parametrize(
    "module",
    sorted(m for m in MODULES if _layer(m) in ("io", "beam") or m.startswith("rnncast.model")),
)
def test_lower_layers_do_not_import_jobs_or_the_cli(module):
    forbidden = ["rnncast.pipeline.jobs", "rnncast.pipeline.cli"]
    if _layer(module) == "io" or module.startswith("rnncast.model"):
        forbidden.append("rnncast.pipeline.beam")
    bad = sorted(i for i in _imports(MODULES[module]) if i.startswith(tuple(forbidden)))
    assert not bad, f"{module} imports {bad}"


def _job(module: str) -> str:
    """The job a module belongs to: ``rnncast.pipeline.jobs.stream`` for its submodules."""
    return ".".join(module.split(".")[:4])


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) == "jobs"))
def test_a_job_does_not_import_another_job(module):
    jobs = {
        _job(i)
        for i in _imports(MODULES[module])
        if i.startswith("rnncast.pipeline.jobs.") and i in MODULES
    } - {_job(module)}
    assert jobs <= RUNS_JOBS.get(_job(module), set()), f"{module} imports {sorted(jobs)}"


def test_core_loads_without_beam_or_tensorflow(tmp_path):
    # The static check above, confirmed by what Python actually loads.
    core = sorted(m for m in MODULES if _layer(m) == "core")
    code = (
        f"import sys\nfor m in {core!r}: __import__(m)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]"


def test_the_checks_see_a_violation(tmp_path):
    # The rules above would catch a core module that imports Beam or a job.
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import apache_beam as beam\ndef later():\n    from rnncast.pipeline.jobs import forecast\n"
    )
    imports = _imports(str(bad))
    assert "apache_beam" in imports and "rnncast.pipeline.jobs.forecast" in imports


def test_readme_architecture_tree_lists_every_module():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        readme = handle.read()
    section = readme.split("## Architecture", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    listed, folders = set(), []
    for line in section.splitlines():
        if not line.strip():
            continue
        depth = (len(line) - len(line.lstrip())) // 2
        name = line.split()[0]
        folders = folders[:depth]
        if name.endswith("/"):
            folders.append(name.rstrip("/"))
        else:
            listed.add("/".join([*folders, name]))
    # Package __init__ files are listed where they hold code of their own.
    with_code = {
        os.path.join(ROOT, "rnncast"),
        os.path.join(ROOT, "pipeline", "jobs", "stream"),
        os.path.join(ROOT, "pipeline", "jobs", "evaluate"),
    }
    on_disk = {
        os.path.relpath(path, ROOT)
        for path in MODULES.values()
        if not path.endswith("__init__.py") or os.path.dirname(path) in with_code
    }
    assert listed == on_disk, (sorted(listed - on_disk), sorted(on_disk - listed))
