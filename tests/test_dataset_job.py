"""The dataset job end to end on DirectRunner: rejections, accounting, determinism, atomic
reruns, corrupted files, runner modes and the padding-waste bound."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from dataclasses import replace

import jsonschema
import numpy as np
import pandas as pd
import pytest
from conftest import read_split, run_job, write_csv

from rnncast import schemas
from rnncast.errors import DatasetError, InputError, JobArgumentError
from rnncast.pipeline.core import synthetic
from rnncast.pipeline.io.reader import StreamSplit, make_dataset
from rnncast.pipeline.jobs import dataset as dataset_job
from rnncast.pipeline.jobs.dataset import DatasetConfig

SMALL = dict(num_steps=8, batch_size=4, horizon=3, freq="h")
# SMALL as flags, for the tests of the command line itself.
SMALL_FLAGS = ("--num-steps", "8", "--batch-size", "4", "--horizon", "3", "--freq", "h")


def clean_frame(num_series=3, length=50):
    return synthetic.generate(num_series, length, length, seed=1, gap_fraction=0.0)


def file_bytes(data_dir) -> dict[str, bytes]:
    """Contents of the committed data files, keyed by their name without the run id."""
    metadata = json.loads((data_dir / "metadata.json").read_text())
    out = {}
    for entry in metadata["rejected_files"] + [
        f for split in metadata["splits"].values() for f in split["files"]
    ]:
        directory, name = entry["name"].split("/")
        out[f"{directory}/{name.split('-', 1)[1]}"] = (data_dir / entry["name"]).read_bytes()
    return out


def test_metadata_follows_contract_and_counts_add_up(tmp_path):
    source = write_csv(clean_frame(), tmp_path / "in.csv")
    metadata = run_job(source, tmp_path / "out", **SMALL)
    jsonschema.validate(metadata, schemas.load(schemas.METADATA)["json_schema"])
    on_disk = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert on_disk == metadata
    counts = metadata["counts"]
    assert counts["rows_read"] == 150 == counts["rows_accepted"] + counts["rows_rejected"]
    assert metadata["feature_names"][0] == "value"
    assert metadata["calendar_features"] == [
        "hour_of_day_sin",
        "hour_of_day_cos",
        "day_of_week_sin",
        "day_of_week_cos",
        "day_of_year_sin",
        "day_of_year_cos",
    ]
    assert (tmp_path / "out" / "_SUCCESS").read_text().strip() == metadata["run_id"]
    assert not (tmp_path / "out" / "_staging").exists()


def test_each_rejection_reason_goes_to_dead_letter_with_source_and_row(tmp_path):
    good = clean_frame(2, 40)
    write_csv(good, tmp_path / "a.csv")
    bad_lines = [
        "series_id,timestamp,value",
        "s1,2020-01-01T00:00:00,1.0",
        ",2020-01-01T01:00:00,1.0",  # line 3: empty id
        f"{'x' * 257},2020-01-01T01:00:00,1.0",  # 4: too long
        "s1,2021-02-30T00:00:00,1.0",  # 5: impossible date
        "s1,yesterday,1.0",  # 6: unparsable
        "s1,2020-01-01T02:00:00,abc",  # 7: not a number
        "s1,2020-01-01T03:00:00,nan",  # 8: NaN
        "s1,2020-01-01T04:00:00,inf",  # 9: inf
        "s1,2020-01-01T05:00:00,1.0,extra",  # 10: malformed
        "s1,2020-01-01T00:00:00,1.0",  # 11: duplicate of line 2
        "s2,2020-01-01T00:00:00,1.0",  # 12: conflict with 13
        "s2,2020-01-01T00:00:00,2.0",  # 13: conflict
        "s2,2020-01-01T00:30:00,2.0",  # 14: off the hourly grid
        "s2,2020-01-01T01:00:00,2.0",
        "s2,2020-01-01T02:00:00,2.0",
    ]
    (tmp_path / "b.csv").write_text("\n".join(bad_lines) + "\n")
    metadata = run_job(tmp_path, tmp_path / "out", **SMALL, max_rejected_fraction=1.0)
    counts = metadata["counts"]
    expected = {
        "empty_series_id": 1,
        "series_id_too_long": 1,
        "invalid_timestamp": 2,
        "invalid_value": 1,
        "non_finite_value": 2,
        "malformed_row": 1,
        "duplicate": 1,
        "conflict": 2,
        "off_grid": 1,
    }
    assert {k: v for k, v in counts["rejected_by_reason"].items() if v} == expected
    assert counts["rows_read"] == 80 + 15
    assert counts["rows_rejected"] == 12
    assert counts["rows_accepted"] == 80 + 3
    assert counts["rows_read"] == counts["rows_accepted"] + counts["rows_rejected"]
    name = metadata["rejected_files"][0]["name"]
    records = [json.loads(line) for line in (tmp_path / "out" / name).read_text().splitlines()]
    by_line = {(r["row_number"], r["reason"]) for r in records}
    assert by_line == {
        (3, "empty_series_id"),
        (4, "series_id_too_long"),
        (5, "invalid_timestamp"),
        (6, "invalid_timestamp"),
        (7, "invalid_value"),
        (8, "non_finite_value"),
        (9, "non_finite_value"),
        (10, "malformed_row"),
        (11, "duplicate"),
        (12, "conflict"),
        (13, "conflict"),
        (14, "off_grid"),
    }
    assert all(r["source"].endswith("b.csv") and r["detail"] for r in records)
    assert next(r for r in records if r["row_number"] == 7)["row"]["value"] == "abc"


def test_rejected_fraction_over_threshold_fails_and_commits_nothing(tmp_path):
    frame = clean_frame(1, 50)
    frame.loc[:9, "value"] = np.nan
    source = write_csv(frame, tmp_path / "in.csv")
    with pytest.raises(InputError, match=r"10 of 50 rows .*max-rejected-fraction"):
        run_job(source, tmp_path / "out", **SMALL)
    assert not (tmp_path / "out" / "metadata.json").exists()
    staged = list((tmp_path / "out" / "_staging").glob("*/rejected/*.jsonl"))
    assert len(staged) == 1 and len(staged[0].read_text().splitlines()) == 10


def test_same_input_and_options_give_identical_bytes(tmp_path):
    source = write_csv(clean_frame(4, 120), tmp_path / "in.csv")
    first = run_job(source, tmp_path / "one", **SMALL)
    second = run_job(source, tmp_path / "two", **SMALL)
    assert first == second
    assert file_bytes(tmp_path / "one") == file_bytes(tmp_path / "two")
    for name in ("metadata.json", "_SUCCESS"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_rerun_with_other_options_leaves_only_new_files(tmp_path):
    source = write_csv(clean_frame(3, 200), tmp_path / "in.csv")
    old = run_job(source, tmp_path / "out", **SMALL, max_batches_per_stream=2)
    assert len(old["splits"]["train"]["files"]) > 1
    new = run_job(source, tmp_path / "out", num_steps=16, batch_size=2, horizon=2)
    listed = {e["name"] for s in new["splits"].values() for e in s["files"]}
    listed |= {e["name"] for e in new["rejected_files"]}
    on_disk = {
        str(p.relative_to(tmp_path / "out"))
        for p in (tmp_path / "out").rglob("*")
        if p.is_file() and p.name not in ("metadata.json", "_SUCCESS")
    }
    assert on_disk == listed
    batch = next(iter(make_dataset(str(tmp_path / "out"), "train")))
    assert batch["inputs"].shape[:2] == (2, 16)


@pytest.mark.parametrize("cache_bytes", [0, 2**30], ids=["from_files", "in_memory"])
def test_stream_split_reads_make_datasets_batches_in_any_order(tmp_path, cache_bytes):
    source = write_csv(clean_frame(5, 120), tmp_path / "in.csv")
    metadata = run_job(source, tmp_path / "out", **SMALL, max_batches_per_stream=3)
    data, streams = str(tmp_path / "out"), metadata["splits"]["train"]["num_streams"]
    total = sum(entry["batches"] for entry in metadata["splits"]["train"]["files"])
    assert streams >= 3
    split = StreamSplit(data, "train", cache_bytes=cache_bytes)
    rng = np.random.default_rng(0)
    # Several reads in new orders, as training's passes do: each equals a fresh pipeline's.
    for order in [None, *(rng.permutation(streams).tolist() for _ in range(3))]:
        got = list(split.batches(order))
        want = list(make_dataset(data, "train", stream_order=order))
        assert len(got) == len(want) == total
        for a, b in zip(got, want):
            for key in b:
                np.testing.assert_array_equal(a[key].numpy(), b[key].numpy(), err_msg=key)
    with pytest.raises(DatasetError, match="permutation"):
        split.batches([0] * streams)


def test_run_config_is_what_the_command_line_runs(tmp_path):
    source = write_csv(clean_frame(3, 200), tmp_path / "in.csv")
    # The command-line side stays argv: this test checks that both entry points agree.
    by_flags = dataset_job.run(
        ["--input", source, "--output", str(tmp_path / "flags"), *SMALL_FLAGS]
    )
    config = DatasetConfig(
        input=source,
        output=str(tmp_path / "config") + "/",
        num_steps=8,
        batch_size=4,
        horizon=3,
        freq="h",
    )
    by_config = dataset_job.run_config(config)
    assert by_config["run_id"] == by_flags["run_id"]
    assert file_bytes(tmp_path / "config") == file_bytes(tmp_path / "flags")
    assert (tmp_path / "config" / "metadata.json").read_bytes() == (
        tmp_path / "flags" / "metadata.json"
    ).read_bytes()
    with pytest.raises(JobArgumentError, match="--batch-size must be >= 1"):
        dataset_job.run_config(replace(config, batch_size=0))


def test_input_given_as_file_glob_or_directory_and_parquet(tmp_path):
    frame = clean_frame(2, 30)
    (tmp_path / "dir").mkdir()
    write_csv(frame.iloc[:30], tmp_path / "dir" / "a.csv")
    frame.iloc[30:].to_parquet(tmp_path / "dir" / "b.parquet", index=False)
    by_dir = run_job(tmp_path / "dir", tmp_path / "o1", **SMALL)
    by_glob = run_job(str(tmp_path / "dir" / "*"), tmp_path / "o2", **SMALL)
    assert by_dir["counts"]["rows_accepted"] == by_glob["counts"]["rows_accepted"] == 60
    assert by_dir["input"]["fingerprint"] == by_glob["input"]["fingerprint"]
    assert file_bytes(tmp_path / "o1") == file_bytes(tmp_path / "o2")


@pytest.mark.parametrize("damage", ["truncate", "corrupt"])
def test_damaged_tfrecord_fails_naming_the_file(tmp_path, damage):
    source = write_csv(clean_frame(2, 100), tmp_path / "in.csv")
    metadata = run_job(source, tmp_path / "out", **SMALL)
    path = tmp_path / "out" / metadata["splits"]["train"]["files"][0]["name"]
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=str(path)):
        next(iter(make_dataset(str(tmp_path / "out"), "train")))


def test_metadata_json_is_the_commit_point(tmp_path):
    source = write_csv(clean_frame(1, 40), tmp_path / "in.csv")
    run_job(source, tmp_path / "out", **SMALL)
    (tmp_path / "out" / "_SUCCESS").unlink()  # a marker for other tools, written after
    assert next(iter(make_dataset(str(tmp_path / "out"))))["inputs"].shape[0] == 4
    (tmp_path / "out" / "metadata.json").unlink()
    with pytest.raises(DatasetError, match="metadata.json: not found"):
        make_dataset(str(tmp_path / "out"))


def test_clear_errors_for_bad_inputs_and_flags(tmp_path):
    with pytest.raises(InputError, match="no input files found"):
        run_job(tmp_path / "missing.csv", tmp_path / "out", **SMALL)
    (tmp_path / "empty.csv").write_text("series_id,timestamp,value\n")
    with pytest.raises(InputError, match="no data rows"):
        run_job(tmp_path / "empty.csv", tmp_path / "out", **SMALL)
    (tmp_path / "wrong.csv").write_text("id,time,y\na,2020-01-01,1\n")
    with pytest.raises(InputError, match=r"wrong.csv: missing column\(s\)"):
        run_job(tmp_path / "wrong.csv", tmp_path / "out", **SMALL)
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InputError, match="broken.parquet: not a readable Parquet"):
        run_job(tmp_path / "broken.parquet", tmp_path / "out", **SMALL)
    write_csv(clean_frame(1, 10), tmp_path / "ok.csv")
    # Flag parsing itself (a misspelled flag, a bad value given as a flag): the command line.
    argv = ["--input", str(tmp_path / "ok.csv"), "--output", str(tmp_path / "out")]
    with pytest.raises(JobArgumentError, match="unknown argument"):
        dataset_job.run([*argv, "--num-step", "4"])
    with pytest.raises(JobArgumentError, match="--batch-size must be >= 1"):
        dataset_job.run([*argv, "--batch-size", "0"])


def test_column_names_and_covariates_from_flags(tmp_path):
    frame = synthetic.generate(2, 30, 30, seed=3, gap_fraction=0.0, num_covariates=2)
    frame = frame.rename(columns={"series_id": "id", "timestamp": "ts", "value": "y"})
    source = write_csv(frame.rename(columns={}), tmp_path / "in.csv")
    # The command line on purpose: the column flags and a comma-separated --covariates are
    # parsed into the config's InputColumns here and nowhere else in the tests.
    metadata = dataset_job.run(
        ["--input", source, "--output", str(tmp_path / "out"), *SMALL_FLAGS]
        + ["--series-id-column", "id", "--timestamp-column", "ts", "--value-column", "y"]
        + ["--covariates", "covariate_0,covariate_1"]
    )
    assert metadata["feature_names"][:3] == ["value", "covariate_0", "covariate_1"]
    rows = read_split(tmp_path / "out", "train")
    first = rows["series_id"] == "series-000000"
    got = rows["inputs"][first][0, :, 1]
    want = frame[frame["id"] == "series-000000"]["covariate_0"].to_numpy()[: len(got)]
    np.testing.assert_allclose(got, want.astype(np.float32))


def test_multi_processing_runner_gives_the_same_files(tmp_path):
    source = write_csv(clean_frame(5, 90), tmp_path / "in.csv")
    run_job(source, tmp_path / "inproc", ["--direct_running_mode", "in_memory"], **SMALL)
    run_job(
        source,
        tmp_path / "multi",
        ["--direct_running_mode", "multi_processing", "--direct_num_workers", "2"],
        **SMALL,
    )
    assert file_bytes(tmp_path / "inproc") == file_bytes(tmp_path / "multi")


def test_padding_waste_bound_on_synthetic_and_single_long_series(tmp_path):
    frame = synthetic.generate(60, 300, 3000, seed=7)
    source = write_csv(frame, tmp_path / "syn.csv")
    metadata = run_job(source, tmp_path / "syn", num_steps=32, batch_size=16)
    assert metadata["splits"]["train"]["padding_waste"] <= 0.05
    long = synthetic.generate(1, 20000, 20000, seed=2)
    source = write_csv(long, tmp_path / "long.csv")
    metadata = run_job(source, tmp_path / "long", num_steps=64, batch_size=32)
    train = metadata["splits"]["train"]
    assert train["padding_waste"] <= 0.05
    rows = read_split(tmp_path / "long", "train")
    busy_lanes = {lane for lane, sid in zip(rows["lane"], rows["series_id"]) if sid}
    assert busy_lanes == set(range(32)), "one long series must fill every lane"


def test_embedded_dataset_meets_padding_target(tmp_path, embedded_csv):
    metadata = run_job(embedded_csv, tmp_path / "out")
    assert metadata["num_series"] == 2 and metadata["freq"] == "h"
    assert metadata["counts"]["rows_rejected"] == 0
    assert metadata["padding_waste"] <= 0.05
    # The one missing hour per series is filled and flagged unobserved.
    for info in metadata["series"].values():
        assert info["length"] == info["observed"] + 1


def test_windows_layout_is_independent_shuffled_rows(tmp_path):
    source = write_csv(clean_frame(3, 100), tmp_path / "in.csv")
    metadata = run_job(
        source, tmp_path / "out", **SMALL, layout="windows", window_stride=4, num_shards=2
    )
    assert len(metadata["splits"]["train"]["files"]) == 2
    rows = read_split(tmp_path / "out", "train")
    assert rows["reset"].all() and (rows["lane"] == -1).all()
    order = list(zip(rows["series_id"], rows["chunk_index"]))
    assert order != sorted(order), "windows must be shuffled"
    assert len(set(order)) == len(order) == metadata["splits"]["train"]["records"]


def test_damaged_gzip_written_by_other_tools_is_not_skipped(tmp_path):
    """A plain tf.data reader of our files sees framing errors too (no silent skip)."""
    import tensorflow as tf

    source = write_csv(clean_frame(1, 60), tmp_path / "in.csv")
    metadata = run_job(source, tmp_path / "out", **SMALL)
    path = tmp_path / "out" / metadata["splits"]["train"]["files"][0]["name"]
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[20] ^= 0xFF
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(tf.errors.DataLossError):
        list(tf.data.TFRecordDataset(str(path), compression_type="GZIP"))


def test_validation_start_splits_every_series_at_that_time(tmp_path):
    frame = synthetic.generate(3, 120, 200, seed=5, gap_fraction=0.0)
    source = write_csv(frame, tmp_path / "in.csv")
    split_at = pd.Timestamp(frame["timestamp"].median()).floor("h")
    metadata = run_job(source, tmp_path / "out", **SMALL, validation_start=split_at.isoformat())
    for sid, info in metadata["series"].items():
        stamps = pd.DatetimeIndex(frame[frame["series_id"] == sid]["timestamp"])
        assert info["train_length"] == int((stamps < split_at).sum())
    rows = read_split(tmp_path / "out", "train")
    last_input = rows["start_time"] + (rows["sequence_length"] - 1) * 3600
    assert (last_input[rows["sequence_length"] > 0] < split_at.timestamp()).all()


def test_naive_series_after_an_offset_series_stays_utc(tmp_path, capsys):
    # Issue 11: one series with +09:00 offsets, the next naive (UTC). The naive one used to be
    # moved 9 hours back with nothing rejected.
    hours = pd.date_range("2020-01-01", periods=30, freq="h")
    tokyo = pd.DataFrame(
        {
            "series_id": "tokyo",
            "timestamp": [t.strftime("%Y-%m-%dT%H:%M:%S+09:00") for t in hours],
            "value": np.arange(30.0),
        }
    )
    utc = pd.DataFrame(
        {
            "series_id": "utc",
            "timestamp": [t.strftime("%Y-%m-%dT%H:%M:%S") for t in hours],
            "value": np.arange(30.0),
        }
    )
    pd.concat([tokyo, utc]).to_csv(tmp_path / "in.csv", index=False)
    from rnncast.pipeline import cli

    code = cli.main(
        [
            "dataset",
            "--input",
            str(tmp_path / "in.csv"),
            "--output",
            str(tmp_path / "out"),
            *SMALL_FLAGS,
        ]
    )
    assert code == 0, capsys.readouterr().err
    metadata = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert metadata["counts"]["rows_rejected"] == 0
    assert metadata["series"]["tokyo"]["start"] == "2019-12-31T15:00:00"
    assert metadata["series"]["tokyo"]["end"] == "2020-01-01T20:00:00"
    assert metadata["series"]["utc"]["start"] == "2020-01-01T00:00:00"
    assert metadata["series"]["utc"]["end"] == "2020-01-02T05:00:00"


def test_typo_years_after_a_series_goes_to_dead_letters_with_its_reason(tmp_path):
    hours = pd.date_range("2020-01-01", periods=300, freq="h")
    frame = pd.DataFrame(
        {
            "series_id": np.repeat(["a", "b"], 300),
            "timestamp": np.concatenate([hours, hours]),
            "value": np.arange(600.0),
        }
    )
    typo = pd.DataFrame(
        {"series_id": ["a"], "timestamp": [hours[-1].replace(year=2030)], "value": [1.0]}
    )
    source = write_csv(pd.concat([frame.iloc[:300], typo, frame.iloc[300:]]), tmp_path / "in.csv")
    metadata = run_job(source, tmp_path / "out", **SMALL)
    counts = metadata["counts"]
    assert counts["rows_read"] == 601 == counts["rows_accepted"] + counts["rows_rejected"]
    assert counts["rejected_by_reason"]["isolated_by_gap"] == counts["rows_rejected"] == 1
    assert metadata["series"]["a"]["length"] == 300
    assert metadata["series"]["a"]["end"] == "2020-01-13T11:00:00"
    assert metadata["series_mostly_filled"] == []
    jsonschema.validate(metadata, schemas.load(schemas.METADATA)["json_schema"])
    (dead,) = metadata["rejected_files"]
    record = json.loads((tmp_path / "out" / dead["name"]).read_text())
    assert record["reason"] == "isolated_by_gap" and record["row_number"] == 302
    assert record["row"]["series_id"] == "a" and record["row"]["timestamp"].startswith("2030-")
    # The check can be turned off: then the typo stretches the series over ten years.
    off = run_job(source, tmp_path / "off", **SMALL, max_gap_steps=0.0)
    assert off["counts"]["rows_rejected"] == 0 and off["series"]["a"]["length"] > 87_000
    assert off["series_mostly_filled"] == [
        {"series_id": "a", "filled_fraction": off["series"]["a"]["filled_fraction"]}
    ]


def mixed_frequency_csv(path) -> str:
    parts = [
        ("daily", pd.date_range("2020-01-01", periods=120, freq="D")),
        ("weekly", pd.date_range("2020-01-05", periods=20, freq="W")),
        ("monthly", pd.date_range("2020-01-01", periods=6, freq="MS")),
    ]
    frame = pd.concat(
        pd.DataFrame(
            {"series_id": name, "timestamp": stamps, "value": np.arange(len(stamps)) * 1.0}
        )
        for name, stamps in parts
    )
    return write_csv(frame, path)


def test_weekly_and_monthly_series_in_a_daily_file_are_named(tmp_path, capsys):
    source = mixed_frequency_csv(tmp_path / "in.csv")
    metadata = run_job(source, tmp_path / "out", num_steps=8, batch_size=4, horizon=3)
    assert metadata["freq"] == "D"
    assert metadata["series_mostly_filled"] == [
        {"series_id": "monthly", "filled_fraction": round(1 - 6 / 153, 6)},
        {"series_id": "weekly", "filled_fraction": round(1 - 20 / 134, 6)},
    ]
    assert metadata["series"]["daily"]["filled_fraction"] == 0.0
    jsonschema.validate(metadata, schemas.load(schemas.METADATA)["json_schema"])
    printed = capsys.readouterr().out
    assert "2 series are mostly filled points at freq D" in printed
    assert "'monthly' (96.1%), 'weekly' (85.1%)" in printed


def test_max_filled_fraction_fails_the_job_and_commits_nothing(tmp_path, capsys):
    from rnncast.pipeline import cli

    source = mixed_frequency_csv(tmp_path / "in.csv")
    argv = [
        "dataset",
        "--input",
        source,
        "--output",
        str(tmp_path / "out"),
        "--num-steps",
        "8",
        "--batch-size",
        "4",
        "--horizon",
        "3",
        "--max-filled-fraction",
        "0.5",
    ]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "--max-filled-fraction 0.5" in err and "'monthly' (96.1%), 'weekly' (85.1%)" in err
    assert "2 series are more than" in err and "'daily'" not in err
    assert not (tmp_path / "out" / "metadata.json").exists()
    assert not (tmp_path / "out" / "_SUCCESS").exists()
    # At a limit the weekly series passes, only the monthly one is refused.
    argv[argv.index("0.5")] = "0.9"
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "'monthly'" in err and "'weekly'" not in err


@pytest.mark.parametrize(
    "validation_value, train_value, expected",
    [
        (-5.0, 3.0, True),  # a negative value after the split is not training data
        (3.0, -0.5, False),
        (0.0, 0.0, True),
    ],
)
def test_metadata_says_whether_any_training_value_is_negative(
    tmp_path, validation_value, train_value, expected
):
    """``nonnegative`` (models clip forecasts at zero) looks at observed training values."""
    stamps = pd.date_range("2021-01-01", periods=40, freq="h")
    frame = pd.DataFrame(
        {"series_id": "a", "timestamp": stamps, "value": np.linspace(1.0, 9.0, 40)}
    )
    frame.loc[5, "value"], frame.loc[38, "value"] = train_value, validation_value
    other = frame.assign(series_id="b", value=np.linspace(2.0, 4.0, 40))
    source = write_csv(pd.concat([frame, other]), tmp_path / "in.csv")
    run_job(source, tmp_path / "out", num_steps=8, batch_size=2, horizon=2)
    metadata = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert metadata["nonnegative"] is expected


def test_metadata_measures_naive_and_seasonal_naive_in_sample(tmp_path):
    """``baseline_mae``: per lag (1, then the frequency's seasonal lags), the pooled in-sample
    scaled MAE; a daily cycle repeats exactly, so seasonal naive over 24 h errs by 0."""
    stamps = pd.date_range("2021-01-01", periods=24 * 10, freq="h")
    cycle = np.sin(2 * np.pi * np.arange(len(stamps)) / 24)
    frame = pd.DataFrame({"series_id": "a", "timestamp": stamps, "value": cycle})
    source = write_csv(frame, tmp_path / "in.csv")
    run_job(source, tmp_path / "out", num_steps=24, batch_size=2, horizon=2)
    metadata = json.loads((tmp_path / "out" / "metadata.json").read_text())
    mae = metadata["baseline_mae"]
    assert set(mae) == {"1", "24", "168"}
    assert mae["24"] == pytest.approx(0.0, abs=1e-6) and mae["168"] == pytest.approx(0.0, abs=1e-6)
    scale = np.std(cycle[: int(round(0.9 * len(cycle)))])
    assert mae["1"] == pytest.approx(np.mean(np.abs(np.diff(cycle[:216]))) / scale, rel=1e-3)


def test_heartbeat_counts_rows_series_and_files_without_changing_a_byte(tmp_path):
    # A real command in a real process: the heartbeat at every event, and off.
    source = write_csv(clean_frame(4, 120), tmp_path / "in.csv")
    runs = {}
    for name, seconds in (("beat", "0"), ("quiet", "-1")):
        done = subprocess.run(
            [sys.executable, "-m", "rnncast", "dataset", "--input", str(source)]
            + ["--output", str(tmp_path / name), *SMALL_FLAGS],
            env=dict(os.environ, RNNCAST_HEARTBEAT_SECONDS=seconds, TF_CPP_MIN_LOG_LEVEL="3"),
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        runs[name] = [
            line
            for line in done.stderr.splitlines()
            if re.match(r"rnncast dataset: [\d,]+ rows", line)
        ]
    assert runs["quiet"] == []
    assert len(runs["beat"]) >= 3
    metadata = json.loads((tmp_path / "beat" / "metadata.json").read_text())
    files = sum(len(split["files"]) for split in metadata["splits"].values())
    last = re.match(
        r"rnncast dataset: ([\d,]+) rows read, ([\d,]+) series cut, ([\d,]+) files written \(",
        runs["beat"][-1],
    )
    assert last, runs["beat"][-1]
    counts = [int(g.replace(",", "")) for g in last.groups()]
    assert counts == [metadata["counts"]["rows_read"], len(metadata["series"]), files]
    assert file_bytes(tmp_path / "beat") == file_bytes(tmp_path / "quiet")
    for name in ("metadata.json", "_SUCCESS"):
        assert (tmp_path / "beat" / name).read_bytes() == (tmp_path / "quiet" / name).read_bytes()


def test_beam_metrics_count_rows_series_and_files(tmp_path):
    import apache_beam as beam
    from apache_beam.metrics.metric import MetricsFilter

    source = write_csv(clean_frame(3, 80), tmp_path / "in.csv")
    options = dataset_job.DatasetOptions(
        ["--input", str(source), "--output", str(tmp_path / "out"), *map(str, SMALL)]
    )
    config = dataset_job.config_from_options(options).check()
    staging = tmp_path / "staging"
    staging.mkdir()
    pipeline = beam.Pipeline()
    _ = pipeline | dataset_job.BuildDataset(config, [str(source)], str(staging), "run")
    result = pipeline.run()
    result.wait_until_finish()
    counters = {
        c.key.metric.name: c.committed
        for c in result.metrics().query(MetricsFilter().with_namespace("rnncast"))["counters"]
    }
    metadata = json.loads((staging / "metadata.json").read_text())
    files = sum(len(split["files"]) for split in metadata["splits"].values())
    assert counters["rows_read"] == metadata["counts"]["rows_read"] == 240
    assert counters["series_done"] == len(metadata["series"]) == 3
    assert counters["files_written"] == files
