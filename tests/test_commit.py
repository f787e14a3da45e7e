"""Who owns an output directory, what a commit may delete, and crashes at every step of the
commit (the directory then reads as the complete old run or the complete new run)."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import run_job, write_csv

from rnncast.errors import OutputError
from rnncast.pipeline import cli
from rnncast.pipeline.core import synthetic
from rnncast.pipeline.io import commit
from rnncast.pipeline.io.reader import load_metadata, make_dataset

SMALL = dict(num_steps=8, batch_size=4, horizon=3, freq="h")
OTHER = dict(num_steps=16, batch_size=2, horizon=2, freq="h")
# SMALL as flags, for the tests of the command line itself.
SMALL_FLAGS = ("--num-steps", "8", "--batch-size", "4", "--horizon", "3", "--freq", "h")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    frame = synthetic.generate(3, 120, 120, seed=1, gap_fraction=0.0)
    return write_csv(frame, tmp_path_factory.mktemp("in") / "in.csv")


def tree(directory) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def listed(metadata: dict) -> set[str]:
    return {e["name"] for e in commit._file_entries(metadata)}


def first_batch_shape(data_dir) -> tuple:
    return tuple(next(iter(make_dataset(str(data_dir), "train")))["inputs"].shape[:2])


def test_user_files_survive_reruns_and_only_listed_stale_files_go(tmp_path, source):
    out = tmp_path / "out"
    (out).mkdir()
    (out / "README.md").write_text("my notes\n")  # unrelated file at the top: fine
    first = run_job(source, out, **SMALL, max_batches_per_stream=2)
    (out / "train" / "notes.txt").write_text("mine\n")
    (out / "validation" / "keep").mkdir()
    (out / "validation" / "keep" / "x.bin").write_bytes(b"x")
    second = run_job(source, out, **OTHER)
    third = run_job(source, out, **SMALL)
    assert (out / "README.md").read_text() == "my notes\n"
    assert (out / "train" / "notes.txt").read_text() == "mine\n"
    assert (out / "validation" / "keep" / "x.bin").read_bytes() == b"x"
    # Files the earlier runs listed are gone once no committed metadata lists them.
    for name in (listed(first) | listed(second)) - listed(third):
        assert not (out / name).exists(), name
    user = {"README.md", "train/notes.txt", "validation/keep/x.bin"}
    assert set(tree(out)) == listed(third) | user | {"metadata.json", "_SUCCESS"}
    assert first_batch_shape(out) == (4, 8)
    assert load_metadata(str(out))["job"] == "dataset"


def test_directory_with_foreign_files_or_metadata_is_refused(tmp_path, source):
    used = tmp_path / "used"
    (used / "rejected").mkdir(parents=True)
    (used / "rejected" / "old.jsonl").write_text("{}\n")
    with pytest.raises(OutputError, match=f"{used}: holds files in rejected/"):
        run_job(source, used, **SMALL)
    assert tree(used) == {"rejected/old.jsonl": b"{}\n"} and not (used / "_staging").exists()

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "metadata.json").write_text('{"name": "some other tool"}\n')
    with pytest.raises(OutputError, match=f"{foreign}: its metadata.json was not written"):
        run_job(source, foreign, **SMALL)
    (foreign / "metadata.json").write_text("not json")
    with pytest.raises(OutputError, match=f"{foreign}: its metadata.json is not readable"):
        run_job(source, foreign, **SMALL)
    assert tree(foreign) == {"metadata.json": b"not json"}


def test_forecast_directory_is_refused_by_the_dataset_job_through_the_cli(tmp_path, source, capsys):
    out = tmp_path / "forecasts"
    out.mkdir()
    # A committed forecast output (as written before the "job" field: its schema names it).
    (out / "metadata.json").write_text(json.dumps({"schema": "rnncast.forecast", "files": []}))
    before = tree(out)
    # Through the command line on purpose: its exit code and message are what is tested.
    argv = ["dataset", "--input", source, "--output", str(out), *SMALL_FLAGS]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"{out}: holds forecasts written by 'rnncast forecast --output'" in err
    assert "Choose another output directory" in err and "Traceback" not in err
    assert tree(out) == before


def _crash_at(monkeypatch, point: str, target) -> None:
    """Make the commit into ``target`` stop right after step ``point`` (the first time)."""

    def step(name, output):
        if name == point and output == str(target):
            raise KeyboardInterrupt(f"crash after {point}")

    monkeypatch.setattr(commit, "_step", step)


@pytest.mark.parametrize("point", commit.STEPS)
def test_crash_at_every_commit_step_leaves_the_old_or_the_new_run(
    tmp_path, source, monkeypatch, point
):
    old_dir, new_dir, out = tmp_path / "old", tmp_path / "new", tmp_path / "out"
    old = run_job(source, old_dir, **SMALL)
    new = run_job(source, new_dir, **OTHER)
    shutil.copytree(old_dir, out)
    _crash_at(monkeypatch, point, out)
    with pytest.raises(KeyboardInterrupt):
        run_job(source, out, **OTHER)
    monkeypatch.undo()
    committed = load_metadata(str(out))
    if commit.STEPS.index(point) < commit.STEPS.index("metadata"):
        assert committed == old and first_batch_shape(out) == (4, 8)
        assert {n: tree(out)[n] for n in listed(old)} == {n: tree(old_dir)[n] for n in listed(old)}
    else:
        assert committed == new and first_batch_shape(out) == (2, 16)
    # The same command again finishes the run and leaves exactly what a clean run leaves.
    assert run_job(source, out, **OTHER) == new
    assert tree(out) == tree(new_dir)


def test_first_run_crashed_while_moving_files_in_can_be_rerun(tmp_path, source, monkeypatch):
    out = tmp_path / "out"
    _crash_at(monkeypatch, "move", out)
    with pytest.raises(KeyboardInterrupt):
        run_job(source, out, **SMALL)
    monkeypatch.undo()
    moved = [p for d in ("train", "validation", "rejected") for p in (out / d).iterdir()]
    assert not (out / "metadata.json").exists() and len(moved) == 1
    assert (out / "_staging" / "_owner").read_text() == "dataset\n"
    # Its files are its own: the rerun adopts them; another job is still refused.
    with pytest.raises(OutputError, match="an uncommitted run of another job"):
        commit.check_owner(str(out), commit.FORECAST, ("forecasts", "rejected"))
    clean = run_job(source, tmp_path / "clean", **SMALL)
    assert run_job(source, out, **SMALL) == clean
    assert tree(out) == tree(tmp_path / "clean")


def test_schedule_run_refuses_a_root_that_is_a_job_output(tmp_path, source, capsys):
    data = tmp_path / "data"
    run_job(source, data, **SMALL)
    before = tree(data)
    argv = ["schedule-run", "--model", str(tmp_path / "m"), "--input", source, "--root", str(data)]
    assert cli.main([*argv, "--run-date", "2026-01-01"]) == 2
    assert f"{data}: holds {data / 'metadata.json'}" in capsys.readouterr().err
    assert tree(data) == before
