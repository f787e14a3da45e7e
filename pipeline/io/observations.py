"""Input files read and validated the way every job reads them (the row checks of
:mod:`rnncast.pipeline.core.validation`), for the jobs that read outside a Beam pipeline:
the stream job's file watcher and the backtest."""

from __future__ import annotations

import collections

import numpy as np
import pyarrow as pa

from rnncast.errors import InputError
from rnncast.pipeline.core import series as series_lib
from rnncast.pipeline.core.backtest import LoadedInput
from rnncast.pipeline.core.deadletters import rejected_frame, rejected_observations, sorted_rejected
from rnncast.pipeline.core.streaming import UNREADABLE_FILE, ReadResult, add_read_batch
from rnncast.pipeline.core.validation import InputColumns, validate_read_batch
from rnncast.pipeline.io.inputs import check_input, list_inputs, read_batches


def read_file(path: str, columns: InputColumns) -> ReadResult:
    """Read and validate one input file like the batch jobs do. A file that cannot be used at
    all becomes one ``unreadable_file`` dead letter naming it and the error."""
    out = ReadResult(0, [], [])
    try:
        check_input(path, columns)
        for table, row_numbers, malformed in read_batches(path, columns):
            add_read_batch(out, table, row_numbers, malformed, columns, path)
    except (InputError, OSError, pa.ArrowInvalid) as err:
        out.rows_read += 1
        out.rejected.append(
            rejected_frame(path, np.zeros(1, np.int64), [UNREADABLE_FILE], [{"error": str(err)}])
        )
    return out


def load_input(location: str, columns: InputColumns) -> LoadedInput:
    """Read and validate ``location`` with the jobs' own row checks and de-duplication, so the
    backtest sees exactly the points the dataset and forecast jobs would accept."""
    parts: dict[str, list[series_lib.SeriesPart]] = collections.defaultdict(list)
    rejected = []
    rows_read = 0
    for path in list_inputs(location):
        for table, row_numbers, malformed in read_batches(path, columns):
            rows_read += table.num_rows + len(malformed)
            accepted, bad = validate_read_batch(table, columns, path, row_numbers, malformed)
            rejected.append(bad)
            for series_id, part in accepted:
                parts[series_id].append(part)
    series = {}
    for series_id in sorted(parts):
        rows = series_lib.combine_parts(parts[series_id])
        unique, dropped = series_lib.deduplicate(rows)
        for reason, positions in dropped.items():
            if len(positions):
                rejected.append(rejected_observations(series_id, rows, positions, reason))
        series[series_id] = unique
    return LoadedInput(series, sorted_rejected(rejected), rows_read)
