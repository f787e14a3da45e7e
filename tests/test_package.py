"""The installable package: one import name (``rnncast.*``), its version, and what a wheel holds."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

import rnncast

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def _python(code: str, cwd, env=None) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env or ENV, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def test_import_rnncast_is_light_and_leaks_no_top_level_names(tmp_path):
    # From a directory outside the checkout, as a user's script runs, on the installed package.
    installed = {k: v for k, v in ENV.items() if k != "PYTHONPATH"}
    out = _python(
        "import importlib.util, sys, rnncast\n"
        "print(rnncast.__version__)\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'apache_beam') if m in sys.modules))\n"
        "print([n for n in ('pipeline', 'model', 'schemas') if importlib.util.find_spec(n)])\n",
        cwd=tmp_path,
        env=installed,
    )
    assert out.splitlines() == [importlib.metadata.version("rnncast"), "[]", "[]"]
    assert rnncast.__version__ == importlib.metadata.version("rnncast")


def test_version_flag(tmp_path):
    script = os.path.join(os.path.dirname(sys.executable), "rnncast")
    for command in ([sys.executable, "-m", "rnncast", "--version"], [script, "--version"]):
        done = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == f"rnncast {rnncast.__version__}"


def test_source_checkout_imports_without_installing(tmp_path):
    # PYTHONPATH=the repository (benchmarks and a snapshot of the tree run this way): the
    # subpackages resolve to the checkout's folders, not to an installed copy.
    env = dict(ENV, PYTHONPATH=ROOT)
    out = _python(
        "import rnncast.pipeline.core.series as s, rnncast.schemas as c\n"
        "print(s.__file__, c.__file__)",
        cwd=tmp_path,
        env=env,
    )
    series, schemas = out.split()
    assert series == os.path.join(ROOT, "pipeline", "core", "series.py")
    assert schemas == os.path.join(ROOT, "schemas", "__init__.py")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    # Built from a copy of what the package is made of, so the build leaves nothing in the
    # checkout.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), source)
    for name in ("rnncast", "pipeline", "model", "schemas"):
        shutil.copytree(
            os.path.join(ROOT, name), source / name, ignore=shutil.ignore_patterns("__pycache__")
        )
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = out.glob("rnncast-*.whl")
    return path


def test_wheel_holds_one_package_with_its_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"rnncast"}
    for expected in (
        "rnncast/__init__.py",
        "rnncast/pipeline/cli.py",
        "rnncast/pipeline/jobs/stream/step.py",
        "rnncast/model/forecaster.py",
        "rnncast/schemas/metadata.v1.json",
        "rnncast/pipeline/data/seattle_weather_daily_2012_2015.csv",
    ):
        assert expected in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert (
        "rnncast = rnncast.pipeline.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    )


def test_installed_wheel_reads_its_own_schemas_and_data(wheel, tmp_path):
    target = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), wheel],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = _python(
        "import os, rnncast.schemas as c, rnncast.pipeline as p\n"
        "print(c.__file__)\n"
        "print(os.path.getsize(p.embedded_data_path()) > 0, sorted(c.CURRENT_VERSIONS)[:1])\n",
        cwd=tmp_path,
        env=dict(ENV, PYTHONPATH=str(target)),
    )
    first, second = out.splitlines()
    assert first == str(target / "rnncast" / "schemas" / "__init__.py")
    assert second.startswith("True ['")
