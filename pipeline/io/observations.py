"""Input files read and validated the one way every job reads them (the row checks of
:mod:`rnncast.pipeline.core.validation`, then
:func:`~rnncast.pipeline.core.deadletters.deduplicated`): the Beam jobs' read step, the
stream job's file watcher and the backtest."""

from __future__ import annotations

import collections
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa

from rnncast.errors import InputError
from rnncast.pipeline.core import series as series_lib
from rnncast.pipeline.core.backtest import LoadedInput
from rnncast.pipeline.core.deadletters import (
    deduplicated,
    rejected_frame,
    sorted_rejected,
)
from rnncast.pipeline.core.streaming import UNREADABLE_FILE, ReadResult
from rnncast.pipeline.core.validation import InputColumns, validate_read_batch
from rnncast.pipeline.io.inputs import check_input, list_inputs, read_batches


def validated_batches(
    path: str, columns: InputColumns
) -> Iterator[tuple[int, list[tuple[str, series_lib.SeriesPart]], pd.DataFrame]]:
    """``path`` read batch by batch and every row checked, as every job reads its input:
    ``(rows read, accepted parts per series, dead letters)`` per batch."""
    for table, row_numbers, malformed in read_batches(path, columns):
        parts, rejected = validate_read_batch(table, columns, path, row_numbers, malformed)
        yield table.num_rows + len(malformed), parts, rejected


def read_file(path: str, columns: InputColumns) -> ReadResult:
    """Read and validate one input file like the batch jobs do. A file that cannot be used at
    all becomes one ``unreadable_file`` dead letter naming it and the error."""
    out = ReadResult(0, [], [])
    try:
        check_input(path, columns)
        for batch in validated_batches(path, columns):
            out.add(*batch)
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
        for count, accepted, bad in validated_batches(path, columns):
            rows_read += count
            rejected.append(bad)
            for series_id, part in accepted:
                parts[series_id].append(part)
    series = {}
    for series_id in sorted(parts):
        series[series_id], dropped = deduplicated(
            series_id, series_lib.combine_parts(parts[series_id])
        )
        rejected.extend(dropped)
    return LoadedInput(series, sorted_rejected(rejected), rows_read)
