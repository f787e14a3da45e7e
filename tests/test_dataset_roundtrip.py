"""Round trip of the real Beam dataset job: every accepted point appears exactly once as an
observed input, in time order, in its series' lane; targets, padding and resets are right."""

from __future__ import annotations

import numpy as np
import pandas as pd
from conftest import read_split, run_job, write_csv
from hypothesis import given, settings
from hypothesis import strategies as st

HOUR = 3600


@st.composite
def series_sets(draw):
    T = draw(st.integers(2, 5))
    lengths = st.sampled_from([1, T - 1, T, T + 1, 3 * T + 2, 9 * T + 1]).filter(lambda n: n > 0)
    count = draw(st.integers(1, 4))
    frames = []
    for i in range(count):
        n = draw(lengths)
        start = pd.Timestamp("2021-03-01") + pd.Timedelta(hours=draw(st.integers(0, 50)))
        grid = start + pd.to_timedelta(np.arange(n), unit="h")
        keep = np.ones(n, bool)
        if n > 2:
            drops = draw(st.lists(st.integers(1, n - 1), max_size=3))
            keep[drops] = False
        values = np.round(np.sin(np.arange(n) / 3.0) * 10 + i * 100 + np.arange(n) * 0.1, 3)
        frames.append(
            pd.DataFrame(
                {
                    "series_id": f"s/{i}" if i % 2 else f"../{i}",
                    "timestamp": grid[keep],
                    "value": values[keep],
                }
            )
        )
    ghost_rows = draw(st.integers(0, 2))  # a series whose every row is rejected: length 0
    frames.append(
        pd.DataFrame(
            {
                "series_id": "ghost",
                "timestamp": pd.Timestamp("2021-03-01") + pd.to_timedelta(range(ghost_rows), "h"),
                "value": [np.nan] * ghost_rows,
            }
        )
    )
    frame = pd.concat(frames, ignore_index=True)
    frame = frame.sample(frac=1.0, random_state=draw(st.integers(0, 1000))).reset_index(drop=True)
    options = {
        "T": T,
        "H": draw(st.integers(1, 4)),
        "B": draw(st.integers(1, 3)),
        "fraction": draw(st.sampled_from([0.0, 0.25])),
        "warmup_chunks": draw(st.integers(0, 1)),
        "validation_warmup": draw(st.integers(0, 2 * T)),
        "max_batches": draw(st.sampled_from([2, 100])),
    }
    return frame, options


def expected_points(frame: pd.DataFrame, fraction: float):
    """Per series: grid start, length, split index, and the observed points by grid index."""
    out = {}
    for sid, group in frame[np.isfinite(frame["value"])].groupby("series_id"):
        ts = pd.DatetimeIndex(group["timestamp"]).as_unit("s").asi8
        order = np.argsort(ts)
        ts, values = ts[order], group["value"].to_numpy()[order]
        index = (ts - ts[0]) // HOUR
        n = int(index[-1]) + 1
        out[sid] = {
            "start": int(ts[0]),
            "n": n,
            "split": n - int(round(fraction * n)),
            "points": dict(zip(index.tolist(), values.tolist())),
        }
    return out


def check_dataset(data_dir, frame, opts, metadata):
    T, H, B = opts["T"], opts["H"], opts["B"]
    expected = expected_points(frame, opts["fraction"])
    seen = {}
    targets = set()
    for split in ("train", "validation"):
        rows = read_split(data_dir, split)
        if not rows:
            continue
        n_rows = len(rows["sequence_length"])
        for f in np.unique(rows["file_index"]):
            assert (rows["file_index"] == f).sum() % B == 0, "a stream is not whole batches"
        position = np.concatenate(
            [np.arange((rows["file_index"] == f).sum()) for f in np.unique(rows["file_index"])]
        )
        assert (rows["lane"] == position % B).all()
        previous = {}
        for r in range(n_rows):
            key = (rows["file_index"][r], rows["lane"][r])
            sid, length = rows["series_id"][r], rows["sequence_length"][r]
            inputs, observed = rows["inputs"][r], rows["observed"][r]
            # Padding is zeros; empty lanes are all zeros and reset.
            assert not inputs[length:].any() and not observed[length:].any()
            if sid == "":
                assert length == 0 and rows["reset"][r]
                previous[key] = None
                continue
            info = expected[sid]
            origin = (rows["start_time"][r] - info["start"]) // HOUR
            if not rows["reset"][r]:
                prev = previous[key]
                assert prev is not None and prev[0] == sid and prev[1] + T == origin
            previous[key] = (sid, origin)
            warmup = rows["target_start"][r] >= T + H
            for t in range(length):
                g = origin + t
                if observed[t]:
                    assert inputs[t, 0] == np.float32(info["points"][g])
                else:
                    assert g not in info["points"]
                in_split = g < info["split"] if split == "train" else g >= info["split"]
                if observed[t] and not warmup and in_split:
                    point = (sid, g)
                    assert point not in seen, f"{point} appears twice"
                    seen[point] = inputs[t, 0]
            mask = rows["target_mask"][r]
            for t, h in zip(*np.nonzero(mask)):
                j = origin + t + 1 + h
                assert rows["targets"][r][t, h] == np.float32(info["points"][j])
                if split == "train":
                    assert j < info["split"], "a validation value is a training target"
                else:
                    assert j >= info["split"]
                item = (split, sid, origin + t, h)
                assert item not in targets, f"target {item} trained twice"
                targets.add(item)
    every_point = {(sid, g) for sid, info in expected.items() for g in info["points"]}
    assert set(seen) == every_point
    # Every observed target of each split appears exactly once.
    want = set()
    W = opts["validation_warmup"]
    for sid, info in expected.items():
        s, n = info["split"], info["n"]
        for o in range(n):
            for h in range(H):
                j = o + 1 + h
                if j not in info["points"]:
                    continue
                if o < s and j < s:
                    want.add(("train", sid, o, h))
                elif j >= s and o >= max(0, s - W) and j < n:
                    want.add(("validation", sid, o, h))
    assert targets == want
    assert metadata["splits"]["train"]["targets"] + metadata["splits"]["validation"][
        "targets"
    ] == len(want)
    for sid, info in expected.items():
        train_values = [v for g, v in info["points"].items() if g < info["split"]]
        meta = metadata["series"][sid]
        if train_values:
            assert np.isclose(meta["loc"], np.mean(train_values))


@settings(max_examples=25)
@given(series_sets())
def test_every_point_once_in_its_lane(tmp_path_factory, drawn):
    frame, opts = drawn
    tmp = tmp_path_factory.mktemp("roundtrip")
    source = write_csv(frame, tmp / "input.csv")
    metadata = run_job(
        source,
        tmp / "out",
        num_steps=opts["T"],
        horizon=opts["H"],
        batch_size=opts["B"],
        validation_fraction=opts["fraction"],
        warmup_chunks=opts["warmup_chunks"],
        validation_warmup_steps=opts["validation_warmup"],
        max_batches_per_stream=opts["max_batches"],
        freq="h",
        calendar_features="none",
        max_rejected_fraction=1.0,
    )
    ghosts = int((frame["series_id"] == "ghost").sum())
    counts = metadata["counts"]
    assert counts["rows_read"] == len(frame)
    assert counts["rows_accepted"] == len(frame) - ghosts
    # pandas writes NaN to CSV as an empty field: a missing value.
    assert counts["rejected_by_reason"]["invalid_value"] == counts["rows_rejected"] == ghosts
    assert "ghost" not in metadata["series"]
    check_dataset(tmp / "out", frame, opts, metadata)
