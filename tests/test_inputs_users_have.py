"""Inputs users have (issue 14): --timestamp-format (strftime, epoch_s, epoch_ms), the
--columns presets (nixtla, gluonts), the one message when every timestamp is rejected, and
--model MODEL_DIR. Real jobs on real files, driven through their command lines."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnncast.errors import JobArgumentError, ModelError
from rnncast.pipeline import cli
from rnncast.pipeline.beam.options import parse_job_options
from rnncast.pipeline.core.validation import (
    NAT,
    InputColumns,
    parse_timestamps,
    suggest_timestamp_format,
    timestamps_all_invalid,
)
from rnncast.pipeline.jobs import dataset as dataset_job
from rnncast.pipeline.jobs import forecast as forecast_job

DAYS = pd.date_range("2012-01-01", periods=90, freq="D")
FORMATS = ("%d/%m/%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%m/%d/%Y", "%Y%m%d%H%M%S", "%d-%m-%Y")


def standard_frame() -> pd.DataFrame:
    """Two daily series in rnncast's own columns, timestamps as datetimes."""
    rng = np.random.default_rng(14)
    frames = []
    for k, series_id in enumerate(("north", "south")):
        values = 10 * k + np.sin(np.arange(len(DAYS)) / 3) + rng.normal(0, 0.1, len(DAYS))
        frames.append(pd.DataFrame({"series_id": series_id, "timestamp": DAYS, "value": values}))
    return pd.concat(frames, ignore_index=True)


def written(frame: pd.DataFrame, path: Path, timestamps, names=None) -> str:
    """``frame`` as CSV with its timestamps written by ``timestamps`` and columns renamed."""
    out = frame.copy()
    out["timestamp"] = timestamps(pd.DatetimeIndex(out["timestamp"]))
    out.rename(columns=dict(zip(("series_id", "timestamp", "value"), names or ()))).to_csv(
        path, index=False
    )
    return str(path)


VARIANTS = {
    "standard": (lambda t: t.strftime("%Y-%m-%dT%H:%M:%S"), None, []),
    "day_first": (lambda t: t.strftime("%d/%m/%Y"), None, ["--timestamp-format", "%d/%m/%Y"]),
    "epoch_s": (lambda t: t.asi8 // 10**9, None, ["--timestamp-format", "epoch_s"]),
    "epoch_ms": (lambda t: t.asi8 // 10**6, None, ["--timestamp-format", "epoch_ms"]),
    "nixtla": (lambda t: t.strftime("%Y-%m-%d"), ("unique_id", "ds", "y"), ["--columns", "nixtla"]),
    "gluonts_day_first": (
        lambda t: t.strftime("%d.%m.%Y %H:%M"),
        ("item_id", "timestamp", "target"),
        ["--columns", "gluonts", "--timestamp-format", "%d.%m.%Y %H:%M"],
    ),
    "nixtla_renamed_value": (
        lambda t: t.strftime("%Y-%m-%d"),
        ("unique_id", "ds", "sales"),
        ["--columns", "nixtla", "--value-column", "sales"],
    ),
}
DATASET_FLAGS = ["--num-steps", "8", "--batch-size", "2", "--horizon", "3"]


# --- pure: parsing with a format ---------------------------------------------------------

instants = st.datetimes(min_value=dt.datetime(1678, 1, 1), max_value=dt.datetime(2262, 1, 1)).map(
    lambda d: d.replace(microsecond=0)
)


@settings(max_examples=150, deadline=None)
@given(st.lists(instants, min_size=1, max_size=20), st.sampled_from(FORMATS), st.data())
def test_a_strftime_format_parses_what_it_wrote_and_refuses_what_it_did_not(moments, fmt, data):
    index = pd.DatetimeIndex(moments).as_unit("ns")
    # What the format keeps of each instant (e.g. %d.%m.%Y %H:%M drops the seconds).
    expected = pd.to_datetime(index.strftime(fmt), format=fmt).as_unit("ns").asi8
    text = [data.draw(st.sampled_from(["", " ", "\t"])) + s for s in index.strftime(fmt)]
    assert parse_timestamps(pa.array(text), fmt).tolist() == expected.tolist()
    # The same instants in another layout (ISO-8601) never match a day-first format.
    if fmt.startswith("%d"):
        iso = pa.array(list(index.strftime("%Y-%m-%dT%H:%M:%S")))
        assert (parse_timestamps(iso, fmt) == NAT).all()


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.one_of(instants.map(lambda d: d.strftime("%d/%m/%Y")), st.text(max_size=12))),
    st.lists(st.one_of(st.none(), st.text(max_size=12))),
    st.sampled_from(("%d/%m/%Y", "epoch_s", "epoch_ms", None)),
)
def test_each_value_parses_on_its_own_whatever_is_around_it(values, others, fmt):
    """Arbitrary text never fails a batch: each element gets a time or NaT, the same as when it
    is parsed alone, whatever precedes it."""
    together = parse_timestamps(pa.array(others + values, pa.string()), fmt)
    alone = [parse_timestamps(pa.array([v], pa.string()), fmt)[0] for v in others + values]
    assert together.tolist() == alone


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(-(2**31), 2**33), min_size=1, max_size=20),
    st.sampled_from(("epoch_s", "epoch_ms")),
)
def test_epoch_seconds_and_milliseconds_convert_exactly_from_text_and_numbers(numbers, fmt):
    ns_per_unit = {"epoch_s": 10**9, "epoch_ms": 10**6}[fmt]
    expected = [n * ns_per_unit for n in numbers]
    assert parse_timestamps(pa.array([str(n) for n in numbers]), fmt).tolist() == expected
    assert parse_timestamps(pa.array(numbers, pa.int64()), fmt).tolist() == expected
    # Not a number, or beyond the int64-nanosecond range: NaT (rejected as invalid_timestamp).
    bad = pa.array(["2012-01-01", "x", "", "nan", str(10**19 // ns_per_unit)])
    assert (parse_timestamps(bad, fmt) == NAT).all()


def test_native_parquet_timestamps_are_read_as_they_are_whatever_the_format():
    column = pa.array(pd.DatetimeIndex(DAYS[:3]).as_unit("s").to_numpy())
    for fmt in (None, "%d/%m/%Y", "epoch_s"):
        assert parse_timestamps(column, fmt).tolist() == DAYS[:3].as_unit("ns").asi8.tolist()


@settings(max_examples=100, deadline=None)
@given(st.lists(instants.filter(lambda d: d.year >= 1900), min_size=1, max_size=30))
def test_the_suggested_format_parses_every_sample_it_was_given(moments):
    index = pd.DatetimeIndex(moments).as_unit("ns")
    for fmt, text in (
        ("%d/%m/%Y", index.strftime("%d/%m/%Y")),
        ("epoch_s", [str(v // 10**9) for v in index.asi8]),
    ):
        suggestion = suggest_timestamp_format(list(text))
        chosen = re.match(r"'([^']*)'|(epoch_\w+)", suggestion)
        parsed = parse_timestamps(pa.array(list(text)), chosen.group(1) or chosen.group(2))
        if fmt == "%d/%m/%Y" and any(d.day > 12 for d in moments):
            assert suggestion.endswith("(day first)")
        if fmt == "%d/%m/%Y" and any(d.day > 12 for d in moments) or fmt == "epoch_s":
            assert (parsed != NAT).all()


def test_suggestions_for_the_inputs_of_the_issue():
    assert suggest_timestamp_format(["01/02/2012", "13/02/2012"]) == "'%d/%m/%Y' (day first)"
    assert suggest_timestamp_format(["02/13/2012"]) == "'%m/%d/%Y' (month first)"
    assert suggest_timestamp_format(["01.02.2012 10:30"]) == (
        "'%d.%m.%Y %H:%M' (day first) or '%m.%d.%Y %H:%M' (month first)"
    )
    assert suggest_timestamp_format(["1325376000"]) == "epoch_s"
    assert suggest_timestamp_format(["1325376000000"]) == "epoch_ms"
    assert not timestamps_all_invalid(10, {"invalid_timestamp": 3, "duplicate": 7})
    assert timestamps_all_invalid(10, {"invalid_timestamp": 9, "malformed_row": 1})


def test_column_presets_and_explicit_flags_over_them():
    assert InputColumns.from_flags() == InputColumns()
    assert InputColumns.from_flags("nixtla").all == ("unique_id", "ds", "y")
    assert InputColumns.from_flags("gluonts").all == ("item_id", "timestamp", "target")
    assert InputColumns.from_flags("nixtla", value="sales").all == ("unique_id", "ds", "sales")
    # Without --timestamp-format the recorded columns are what they were before the flag.
    assert InputColumns().as_json() == {
        "series_id": "series_id",
        "timestamp": "timestamp",
        "value": "value",
        "covariates": (),
    }
    with pytest.raises(ValueError, match="--columns 'darts': unknown preset"):
        InputColumns.from_flags("darts")
    with pytest.raises(ValueError, match="--timestamp-format 'dd/mm/yyyy': no %-directive"):
        InputColumns.from_flags(timestamp_format="dd/mm/yyyy")


def test_every_command_that_reads_series_takes_the_flags():
    from rnncast.pipeline.jobs.evaluate import build_parser, config_from_args
    from rnncast.pipeline.jobs.stream.options import StreamOptions
    from rnncast.pipeline.jobs.stream.options import config_from_options as stream_config

    flags = ["--columns", "gluonts", "--timestamp-format", "epoch_ms", "--value-column", "y"]
    expected = InputColumns("item_id", "timestamp", "y", (), "epoch_ms")
    args, _ = build_parser().parse_known_args(["--input", "a", "--output", "b", *flags])
    assert config_from_args(args).dataset.columns == expected
    options, _ = parse_job_options(
        ["--model", "m", "--output", "o", "--input-pattern", "*.csv", *flags],
        StreamOptions,
        "rnncast stream",
        "",
    )
    assert stream_config(options).columns == expected
    options, _ = parse_job_options(
        ["--model", "m", "--input", "i", "--output", "o", *flags],
        forecast_job.ForecastOptions,
        "rnncast forecast",
        "",
    )
    assert forecast_job.config_from_options(options).columns == expected
    for command in ("dataset", "forecast", "stream", "evaluate", "schedule-run"):
        extra = {"forecast": ["--model", "m"], "schedule-run": ["--model", "m", "--root", "r"]}
        extra["stream"] = ["--model", "m", "--input-pattern", "*.csv"]
        extra["schedule-run"] += ["--run-date", "2020-01-01"]
        # The stream refuses --input (it watches --input-pattern).
        source = [] if command == "stream" else ["--input", "i"]
        cli.check_arguments([command, *source, "--output", "o", *extra.get(command, []), *flags])


def test_an_unusable_format_is_refused_before_anything_is_read(tmp_path, capsys):
    source = written(standard_frame(), tmp_path / "in.csv", VARIANTS["standard"][0])
    with pytest.raises(JobArgumentError, match=r"--timestamp-format 'day/month': no %-direc"):
        dataset_job.run(
            [
                "--input",
                source,
                "--output",
                str(tmp_path / "out"),
                "--timestamp-format",
                "day/month",
            ]
        )
    assert not (tmp_path / "out").exists()


# --- the dataset job on real files --------------------------------------------------------


def dataset_files(directory: Path) -> tuple[list[bytes], dict]:
    """The data files' bytes in the metadata's order, and the metadata without what names the
    run or its input (run id, file names, input paths, column names)."""
    metadata = json.loads((directory / "metadata.json").read_text())
    names = [f["name"] for split in metadata["splits"].values() for f in split["files"]]
    names += [f["name"] for f in metadata["rejected_files"]]
    blobs = [(directory / name).read_bytes() for name in names]
    text = json.dumps(metadata, sort_keys=True).replace(metadata["run_id"], "RUN")
    neutral = json.loads(text)
    for key in ("columns", "input"):
        neutral.pop(key)
    return blobs, neutral


@pytest.fixture(scope="module")
def standard_dataset(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("standard")
    source = written(standard_frame(), tmp / "in.csv", VARIANTS["standard"][0])
    dataset_job.run(["--input", source, "--output", str(tmp / "out"), *DATASET_FLAGS])
    return tmp / "out"


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "standard"])
def test_other_formats_and_column_names_give_the_standard_dataset_bytes(
    variant, standard_dataset, tmp_path
):
    timestamps, names, flags = VARIANTS[variant]
    source = written(standard_frame(), tmp_path / "in.csv", timestamps, names)
    metadata = dataset_job.run(
        ["--input", source, "--output", str(tmp_path / "out"), *DATASET_FLAGS, *flags]
    )
    assert metadata["counts"]["rows_rejected"] == 0
    blobs, neutral = dataset_files(tmp_path / "out")
    expected_blobs, expected = dataset_files(standard_dataset)
    assert blobs == expected_blobs  # TFRecords (and the empty dead letters) byte for byte
    assert neutral == expected
    recorded = metadata["columns"]
    assert (recorded["series_id"], recorded["timestamp"], recorded["value"]) == (
        names or ("series_id", "timestamp", "value")
    )
    if "--timestamp-format" in flags:
        assert recorded["timestamp_format"] == flags[flags.index("--timestamp-format") + 1]


def test_rows_that_do_not_match_the_format_are_dead_letters_with_their_row(tmp_path):
    frame = standard_frame()
    source = tmp_path / "in.csv"
    written(frame, source, lambda t: t.strftime("%d/%m/%Y"))
    lines = source.read_text().splitlines()
    lines[5] = lines[5].replace(lines[5].split(",")[1], "2012-01-05")  # ISO in a day-first file
    source.write_text("\n".join(lines) + "\n")
    flags = [*DATASET_FLAGS, "--timestamp-format", "%d/%m/%Y", "--max-rejected-fraction", "0.1"]
    metadata = dataset_job.run(["--input", str(source), "--output", str(tmp_path / "out"), *flags])
    counts = metadata["counts"]
    assert counts["rejected_by_reason"]["invalid_timestamp"] == 1
    assert counts["rows_read"] == len(frame) == counts["rows_accepted"] + counts["rows_rejected"]
    (record,) = [
        json.loads(line)
        for line in (tmp_path / "out" / metadata["rejected_files"][0]["name"])
        .read_text()
        .splitlines()
    ]
    assert (record["row_number"], record["reason"]) == (6, "invalid_timestamp")
    assert record["row"]["timestamp"] == "2012-01-05" and record["source"].endswith("in.csv")


ALL_INVALID = {
    "day_first": (lambda t: t.strftime("%d/%m/%Y"), "'01/01/2012'", "'%d/%m/%Y' (day first)"),
    "epoch_s": (lambda t: t.asi8 // 10**9, "'1325376000'", "epoch_s"),
}


def expected_error(path, rows, first, suggestion) -> str:
    return (
        f"{path}: all {rows:,} timestamps were rejected as invalid_timestamp (first: {first}); "
        f"pass --timestamp-format, e.g. --timestamp-format {suggestion}, or check "
        "--timestamp-column"
    )


@pytest.mark.parametrize("variant", ALL_INVALID)
def test_dataset_every_timestamp_rejected_says_so_and_which_format(variant, tmp_path, capsys):
    timestamps, first, suggestion = ALL_INVALID[variant]
    source = written(standard_frame(), tmp_path / "in.csv", timestamps)
    code = cli.main(["dataset", "--input", source, "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1] == "rnncast dataset: error: " + expected_error(source, 180, first, suggestion)
    assert "frequency" not in err[-1]
    assert not (tmp_path / "out" / "metadata.json").exists()


@pytest.mark.parametrize("variant", ALL_INVALID)
def test_evaluate_every_timestamp_rejected_says_so_and_which_format(variant, tmp_path, capsys):
    timestamps, first, suggestion = ALL_INVALID[variant]
    source = written(standard_frame(), tmp_path / "in.csv", timestamps)
    code = cli.main(["evaluate", "--input", source, "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1] == "rnncast evaluate: error: " + expected_error(source, 180, first, suggestion)


def test_a_format_that_matches_nothing_is_named(tmp_path, capsys):
    source = written(standard_frame(), tmp_path / "in.csv", lambda t: t.strftime("%d/%m/%Y"))
    code = cli.main(
        [
            "dataset",
            "--input",
            source,
            "--output",
            str(tmp_path / "out"),
            "--timestamp-format",
            "%Y-%m-%d",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2
    assert "all 180 timestamps were rejected as invalid_timestamp (first: '01/01/2012')" in err
    assert "they do not match --timestamp-format '%Y-%m-%d'" in err
    assert "'%d/%m/%Y' (day first)" in err


# --- the forecast job: formats, presets, --model MODEL_DIR ---------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, standard_dataset):
    from rnncast.model.config import TrainConfig
    from rnncast.model.export import export_model
    from rnncast.model.train import train

    tmp = tmp_path_factory.mktemp("model")
    config = TrainConfig(
        str(standard_dataset),
        str(tmp / "model"),
        cell="gru",
        layers=1,
        units=4,
        epochs=1,
        min_batches_per_epoch=0,
    )
    train(config, log=lambda _: None)
    export_model(config.model_dir, servable=False)
    return tmp / "model"


def read_forecasts(output: Path) -> pd.DataFrame:
    metadata = json.loads((output / "metadata.json").read_text())
    return pd.concat([pd.read_parquet(output / f["name"]) for f in metadata["files"]])


def tree(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_forecast_model_dir_equals_its_export(model_dir, tmp_path, capsys):
    source = written(standard_frame(), tmp_path / "in.csv", VARIANTS["standard"][0])
    common = ["--input", source]
    assert (
        cli.main(
            [
                "forecast",
                "--model",
                str(model_dir / "export"),
                *common,
                "--output",
                str(tmp_path / "a"),
                "--state-out",
                str(tmp_path / "sa"),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        cli.main(
            [
                "forecast",
                "--model",
                str(model_dir),
                *common,
                "--output",
                str(tmp_path / "b"),
                "--state-out",
                str(tmp_path / "sb"),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert f"--model {model_dir} is a model directory; using its export {model_dir}/export" in err
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    assert tree(tmp_path / "sa") == tree(tmp_path / "sb")


def test_forecast_of_other_formats_and_columns_equals_the_standard_one(model_dir, tmp_path):
    forecasts = []
    for variant in ("standard", "gluonts_day_first", "epoch_ms"):
        timestamps, names, flags = VARIANTS[variant]
        source = written(standard_frame(), tmp_path / f"{variant}.csv", timestamps, names)
        forecast_job.run(
            [
                "--model",
                str(model_dir),
                "--input",
                source,
                "--output",
                str(tmp_path / variant),
                *flags,
            ]
        )
        forecasts.append(read_forecasts(tmp_path / variant).reset_index(drop=True))
    pd.testing.assert_frame_equal(forecasts[0], forecasts[1])
    pd.testing.assert_frame_equal(forecasts[0], forecasts[2])


@pytest.mark.parametrize("variant", ALL_INVALID)
def test_forecast_every_timestamp_rejected_says_so(variant, model_dir, tmp_path, capsys):
    timestamps, first, suggestion = ALL_INVALID[variant]
    source = written(standard_frame(), tmp_path / "in.csv", timestamps)
    code = cli.main(
        [
            "forecast",
            "--model",
            str(model_dir),
            "--input",
            source,
            "--output",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1] == "rnncast forecast: error: " + expected_error(source, 180, first, suggestion)


def test_a_directory_with_neither_an_export_nor_a_model_is_refused_clearly(tmp_path):
    source = written(standard_frame(), tmp_path / "in.csv", VARIANTS["standard"][0])
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        ModelError, match="not an rnncast export or model directory .*pass MODEL_DIR or MODEL_DIR"
    ):
        forecast_job.run(
            [
                "--model",
                str(tmp_path / "empty"),
                "--input",
                source,
                "--output",
                str(tmp_path / "out"),
            ]
        )


def test_one_day_first_file_among_iso_files_is_named_with_its_format(tmp_path, capsys):
    frame = standard_frame()
    folder = tmp_path / "in"
    folder.mkdir()
    written(frame[frame.series_id == "north"], folder / "a.csv", VARIANTS["standard"][0])
    day_first = written(
        frame[frame.series_id == "south"], folder / "b.csv", lambda t: t.strftime("%d/%m/%Y")
    )
    code = cli.main(["dataset", "--input", str(folder), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2
    assert "90 of 180 rows (50.00%) were rejected {'invalid_timestamp': 90}" in err
    assert err.endswith(
        f"Its invalid_timestamp rows look like '01/01/2012' ({day_first}): if that file's "
        "timestamps are all in that form, pass --timestamp-format '%d/%m/%Y' (day first)"
    )


def test_stream_messages_are_read_with_the_preset_and_the_format():
    from rnncast.pipeline.core.streaming import parse_message

    columns = InputColumns.from_flags("nixtla", timestamp_format="epoch_s")
    payload = (
        b'{"unique_id": "a", "ds": 1325376000, "y": 1.5}\n'
        b'{"unique_id": "a", "ds": "01/02/2012", "y": 2}\n'
    )
    result = parse_message(payload, columns, "message")
    assert result.rows_read == 2
    [(series_id, part)] = result.parts
    assert (series_id, part.timestamp.tolist()) == ("a", [pd.Timestamp("2012-01-01").value])
    assert pd.concat(result.rejected)["reason"].tolist() == ["invalid_timestamp"]
    columns = InputColumns.from_flags("gluonts", timestamp_format="%d.%m.%Y %H:%M")
    result = parse_message(b"item_id,timestamp,target\nb,01.02.2012 10:30,1\n", columns, "m")
    assert [p.timestamp.tolist() for _, p in result.parts] == [
        [pd.Timestamp("2012-02-01 10:30").value]
    ]


def test_the_python_api_takes_the_preset_and_the_format(standard_dataset, tmp_path):
    import rnncast.api as rc

    frame = standard_frame().rename(columns={"series_id": "unique_id", "value": "y"})
    frame["ds"] = pd.DatetimeIndex(frame.pop("timestamp")).strftime("%d/%m/%Y")
    rc.build_dataset(
        frame,
        str(tmp_path / "out"),
        columns="nixtla",
        timestamp_format="%d/%m/%Y",
        num_steps=8,
        batch_size=2,
        horizon=3,
    )
    assert dataset_files(tmp_path / "out") == dataset_files(standard_dataset)


def test_a_file_in_a_preset_s_columns_read_without_it_names_the_preset(tmp_path):
    from rnncast.errors import InputError

    timestamps, names, _ = VARIANTS["gluonts_day_first"]
    source = written(standard_frame(), tmp_path / "in.csv", timestamps, names)
    with pytest.raises(
        InputError,
        match=r"missing column\(s\) \['series_id', 'value'\].*"
        r"Pass --columns gluonts \(item_id/timestamp/target\)",
    ):
        dataset_job.run(["--input", source, "--output", str(tmp_path / "out")])
