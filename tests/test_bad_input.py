"""Bad bytes, bad values and unusable locations: every one ends in dead letters or in one
message (exit code 2) that names the file and the fix, never in a traceback; a failed run
leaves no staging behind."""

from __future__ import annotations

import datetime
import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import write_csv
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from rnncast.pipeline import cli
from rnncast.pipeline.core import synthetic
from rnncast.pipeline.core.validation import InputColumns, validate_read_batch
from rnncast.pipeline.io.inputs import read_batches

SMALL = ["--num-steps", "8", "--batch-size", "4", "--horizon", "3", "--freq", "h"]
SMALL += ["--max-rejected-fraction", "1"]
COLUMNS = InputColumns()


def clean_csv(tmp_path, name="in.csv", num_series=2, length=40) -> bytes:
    frame = synthetic.generate(num_series, length, length, seed=3, gap_fraction=0.0)
    with open(write_csv(frame, tmp_path / name), "rb") as handle:
        return handle.read()


def dataset(capsys, source, output, *flags) -> tuple[int, str]:
    """``rnncast dataset`` in-process; returns the exit code and stderr. An exception that
    escapes ``cli.main`` (what a user would see as a traceback) fails the test."""
    code = cli.main(["dataset", "--input", str(source), "--output", str(output), *SMALL, *flags])
    return code, capsys.readouterr().err


def dead_letters(output) -> list[dict]:
    metadata = json.loads((output / "metadata.json").read_text())
    rows = []
    for entry in metadata["rejected_files"]:
        path = output / entry["name"]
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as handle:
            rows += [json.loads(line) for line in handle if line.strip()]
    return rows


def assert_balanced(output) -> dict:
    counts = json.loads((output / "metadata.json").read_text())["counts"]
    assert counts["rows_read"] == counts["rows_accepted"] + counts["rows_rejected"]
    assert sum(counts["rejected_by_reason"].values()) == counts["rows_rejected"]
    return counts


# --- bytes that are not UTF-8 --------------------------------------------------------------


def test_non_utf8_bytes_in_csv_reject_their_row_only(tmp_path, capsys):
    lines = clean_csv(tmp_path).split(b"\n")
    lines[3] = b"\xff\xfe" + lines[3]  # series_id
    sid, ts, value = lines[5].split(b",")
    lines[5] = b",".join([sid, ts + b"\xe9", value])  # timestamp
    sid, ts, value = lines[7].split(b",")
    lines[7] = b",".join([sid, ts, b"1\xc3"])  # value (a cut multi-byte sequence)
    (tmp_path / "bad.csv").write_bytes(b"\n".join(lines))
    code, err = dataset(capsys, tmp_path / "bad.csv", tmp_path / "out")
    assert code == 0, err
    counts = assert_balanced(tmp_path / "out")
    by_reason = {k: v for k, v in counts["rejected_by_reason"].items() if v}
    assert by_reason == {"invalid_series_id": 1, "invalid_timestamp": 1, "invalid_value": 1}
    letters = {r["row_number"]: r for r in dead_letters(tmp_path / "out")}
    assert sorted(letters) == [4, 6, 8]  # physical lines (header = line 1)
    assert letters[4]["reason"] == "invalid_series_id"
    assert letters[4]["row"]["series_id"].startswith("\ufffd")  # the row is kept, marked


def test_non_utf8_binary_ids_in_parquet_are_dead_letters(tmp_path, capsys):
    stamps = [f"2020-01-01T{h:02d}:00:00" for h in range(24)]
    ids = [b"good"] * 24 + [b"bad\xff"] * 24
    table = pa.table(
        {
            "series_id": pa.array(ids, pa.binary()),
            "timestamp": stamps * 2,
            "value": np.arange(48.0),
        }
    )
    pq.write_table(table, tmp_path / "ids.parquet")
    code, err = dataset(capsys, tmp_path / "ids.parquet", tmp_path / "out")
    assert code == 0, err
    counts = assert_balanced(tmp_path / "out")
    assert counts["rejected_by_reason"]["invalid_series_id"] == 24
    assert counts["rows_accepted"] == 24


@pytest.mark.parametrize("unit", ["s", "ms", "us"])
def test_parquet_timestamps_outside_the_nanosecond_range_are_dead_letters(tmp_path, capsys, unit):
    good = [datetime.datetime(2020, 1, 1) + datetime.timedelta(hours=h) for h in range(30)]
    far = [datetime.datetime(1500, 1, 1), datetime.datetime(3000, 6, 1, 12)]
    table = pa.table(
        {
            "series_id": ["a"] * 32,
            "timestamp": pa.array(good + far, pa.timestamp(unit)),
            "value": np.arange(32.0),
        }
    )
    pq.write_table(table, tmp_path / "far.parquet")
    code, err = dataset(capsys, tmp_path / "far.parquet", tmp_path / "out")
    assert code == 0, err
    counts = assert_balanced(tmp_path / "out")
    assert counts["rejected_by_reason"]["invalid_timestamp"] == 2
    assert sorted(r["row_number"] for r in dead_letters(tmp_path / "out")) == [31, 32]


# --- fuzzing -----------------------------------------------------------------------------

BYTES = st.binary(min_size=1, max_size=6)


@hypothesis_settings(max_examples=150)
@given(data=st.data())
def test_fuzzed_csv_fields_are_accepted_or_rejected_one_by_one(tmp_path_factory, data):
    """Arbitrary bytes in any field of any row: every line ends accepted or rejected (read
    and validated as the jobs do), never an exception."""
    tmp = tmp_path_factory.mktemp("fuzz")
    lines = clean_csv(tmp, length=20).split(b"\n")
    body = [line for line in lines[1:] if line]
    for _ in range(data.draw(st.integers(1, 5))):
        row = data.draw(st.integers(0, len(body) - 1))
        fields = body[row].split(b",")
        column = data.draw(st.integers(0, 2))
        # Line breaks and quotes change how many lines a row spans (tested elsewhere).
        noise = bytes(b for b in data.draw(BYTES) if b not in b'\n\r"')
        fields[column] = noise or b"x"
        body[row] = b",".join(fields)
    (tmp / "f.csv").write_bytes(b"\n".join([lines[0], *body]) + b"\n")
    accepted = rejected = 0
    for table, row_numbers, malformed in read_batches(str(tmp / "f.csv"), COLUMNS):
        parts, dead = validate_read_batch(table, COLUMNS, "f.csv", row_numbers, malformed)
        accepted += sum(len(part) for _, part in parts)
        rejected += len(dead)
    assert accepted + rejected == len(body)


def _mutate(data: bytes, positions: list[int], values: list[int]) -> bytes:
    out = bytearray(data)
    for position, value in zip(positions, values):
        out[position % len(out)] = value
    return bytes(out)


@hypothesis_settings(max_examples=8)
@given(
    positions=st.lists(st.integers(0, 10**6), min_size=1, max_size=4),
    values=st.lists(st.integers(0, 255), min_size=4, max_size=4),
    fmt=st.sampled_from(["csv", "csv.gz", "parquet"]),
)
def test_fuzzed_files_through_the_real_job_end_in_output_or_one_message(
    tmp_path_factory, capsys, positions, values, fmt
):
    tmp = tmp_path_factory.mktemp("jobfuzz")
    frame = synthetic.generate(2, 40, 40, seed=5, gap_fraction=0.0)
    if fmt == "parquet":
        frame.to_parquet(tmp / "x.parquet", index=False)
        source = tmp / "x.parquet"
    else:
        with open(write_csv(frame, tmp / "x.csv"), "rb") as handle:
            raw = handle.read()
        if fmt == "csv.gz":
            raw = gzip.compress(raw, mtime=0)
        source = tmp / f"x.{fmt}"
        source.write_bytes(raw)
    source.write_bytes(_mutate(source.read_bytes(), positions, values))
    code, err = dataset(capsys, source, tmp / "out")
    assert code in (0, 2)
    if code == 0:
        assert_balanced(tmp / "out")
    else:
        assert err.count("error:") == 1 and source.name in err
        assert not (tmp / "out" / "metadata.json").exists()


# --- whole files and locations -----------------------------------------------------------


def test_plain_csv_named_gz_names_the_file_and_the_fix(tmp_path, capsys):
    (tmp_path / "plain.csv.gz").write_bytes(clean_csv(tmp_path))
    code, err = dataset(capsys, tmp_path / "plain.csv.gz", tmp_path / "out")
    assert code == 2
    assert "plain.csv.gz: named .csv.gz but not gzip-compressed" in err
    assert "rename it to" in err


def _compress(codec: str, data: bytes) -> bytes:
    if codec == "gz":
        return gzip.compress(data, mtime=0)
    if codec == "bz2":
        import bz2

        return bz2.compress(data)
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


@pytest.mark.parametrize("codec", ["gz", "bz2", "zst"])
@pytest.mark.parametrize("keep", [0.3, 0.9])
def test_truncated_compressed_input_fails_naming_the_file(tmp_path, capsys, codec, keep):
    """Beam's own reader returns a truncated stream's rows as if they were all: rows would be
    lost without a word (a half-copied file). The job must fail instead."""
    data = _compress(codec, clean_csv(tmp_path, length=6000))
    source = tmp_path / f"cut.csv.{codec}"
    source.write_bytes(data[: int(len(data) * keep)])
    code, err = dataset(capsys, source, tmp_path / "out")
    assert code == 2
    assert f"{source}:" in err and "compressed data ends early or is corrupt" in err
    assert not (tmp_path / "out" / "metadata.json").exists()


@pytest.mark.parametrize("codec", ["gz", "bz2", "zst"])
def test_corrupt_compressed_input_fails_naming_the_file(tmp_path, capsys, codec):
    data = bytearray(_compress(codec, clean_csv(tmp_path, length=6000)))
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    source = tmp_path / f"bad.csv.{codec}"
    source.write_bytes(bytes(data))
    code, err = dataset(capsys, source, tmp_path / "out")
    assert code == 2
    assert f"{source}:" in err and "corrupt" in err
    assert not (tmp_path / "out" / "metadata.json").exists()


def test_concatenated_gzip_members_are_read_whole(tmp_path, capsys):
    lines = clean_csv(tmp_path, length=300).split(b"\n")
    half = len(lines) // 2
    first, second = b"\n".join(lines[:half]) + b"\n", b"\n".join(lines[half:])
    (tmp_path / "two.csv.gz").write_bytes(_compress("gz", first) + _compress("gz", second))
    code, err = dataset(capsys, tmp_path / "two.csv.gz", tmp_path / "out")
    assert code == 0, err
    assert assert_balanced(tmp_path / "out")["rows_read"] == len([x for x in lines[1:] if x])


def test_file_corrupt_midway_fails_naming_it_and_leaves_no_staging(tmp_path, capsys):
    frame = synthetic.generate(2, 3000, 3000, seed=3, gap_fraction=0.0)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "p.parquet")
    data = bytearray((tmp_path / "p.parquet").read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    (tmp_path / "p.parquet").write_bytes(bytes(data))
    code, err = dataset(capsys, tmp_path / "p.parquet", tmp_path / "out")
    assert code == 2
    assert "p.parquet: cannot be read past the rows already counted" in err
    assert "while running" not in err and err.count("error:") == 1
    assert os.listdir(tmp_path / "out") == []  # staging removed, nothing committed


def test_output_that_is_a_file_is_refused_before_anything_is_written(tmp_path, capsys):
    clean_csv(tmp_path)
    (tmp_path / "taken").write_text("user data\n")
    code, err = dataset(capsys, tmp_path / "in.csv", tmp_path / "taken")
    assert code == 2
    assert "taken: is an existing file, not a directory (--output)" in err
    assert (tmp_path / "taken").read_text() == "user data\n"


def test_read_only_output_is_refused(tmp_path, capsys):
    clean_csv(tmp_path)
    mount = tmp_path / "ro"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        if os.geteuid() == 0:
            pytest.skip(f"cannot mount a read-only tmpfs here: {made.stderr.decode()}")
        os.chmod(mount, 0o500)  # without root, permissions are enough
    try:
        code, err = dataset(capsys, tmp_path / "in.csv", mount / "out")
        assert code == 2
        assert f"{mount / 'out'}: cannot create the directory" in err
        code, err = dataset(capsys, tmp_path / "in.csv", mount)
        assert code == 2
        assert f"{mount}: cannot write into the directory" in err
    finally:
        if made.returncode == 0:
            subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize("flag", ["--input", "--output"])
def test_cloud_paths_without_their_filesystem_say_which_extra(tmp_path, capsys, flag):
    pytest.importorskip("apache_beam")
    try:
        import apache_beam.io.gcp.gcsfilesystem  # noqa: F401

        pytest.skip("the gcp extra is installed here")
    except ImportError:
        pass
    clean_csv(tmp_path)
    paths = {"--input": str(tmp_path / "in.csv"), "--output": str(tmp_path / "out")}
    paths[flag] = "gs://bucket/data" + ("/x.csv" if flag == "--input" else "")
    code = cli.main(["dataset", "--input", paths["--input"], "--output", paths["--output"], *SMALL])
    err = capsys.readouterr().err
    assert code == 2
    assert f"no filesystem for 'gs://' paths is installed ({flag})" in err
    assert "rnncast[gcp]" in err


def test_truncated_dataset_metadata_names_the_file_for_train(tmp_path, capsys):
    clean_csv(tmp_path)
    code, err = dataset(capsys, tmp_path / "in.csv", tmp_path / "data")
    assert code == 0, err
    path = tmp_path / "data" / "metadata.json"
    path.write_bytes(path.read_bytes()[:100])
    code = cli.main(["train", "--data", str(tmp_path / "data"), "--model-dir", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{path}: not valid JSON" in err and "rnncast dataset --output" in err


def test_errors_print_one_line_and_no_traceback_in_a_real_process(tmp_path):
    (tmp_path / "plain.csv.gz").write_bytes(clean_csv(tmp_path))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rnncast",
            "dataset",
            "--input",
            str(tmp_path / "plain.csv.gz"),
            "--output",
            str(tmp_path / "out"),
            *SMALL,
        ],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "plain.csv.gz" in errors[0]
