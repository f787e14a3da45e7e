"""Atomic commit of a job's output directory, and which job owns it.

A run writes everything under ``DIR/_staging/<run_id>/``. Only when the run succeeded are its
files moved to their final names (which carry the run id, and never replace a file with
other content, so the files the current ``metadata.json`` lists stay as they are); then
``metadata.json`` is replaced in one atomic rename: that rename is the commit. ``_SUCCESS``
(the run id, for tools that wait for a marker) is written after it; readers need only
``metadata.json``. Last, the files that the *previous* ``metadata.json`` listed and the new
one does not are deleted — no other file is ever deleted.

``metadata.json`` names the kind of job that wrote it (``"job"``). Before a run writes
anything, :func:`check_owner` refuses an output directory that belongs to another kind of job,
holds a ``metadata.json`` that is not rnncast's, or holds files in the folders the job writes
without any rnncast metadata.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import posixpath
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.localfilesystem import LocalFileSystem

from rnncast import schemas
from rnncast.errors import OutputError

if TYPE_CHECKING:
    from rnncast.pipeline.core.validation import InputColumns

METADATA = "metadata.json"
SUCCESS = "_SUCCESS"
STAGING = "_staging"
SPILL = "_spill"
OWNER = "_owner"  # DIR/_staging/_owner: the job kind of a run not yet committed there
DATA_DIRECTORIES = ("train", "validation", "rejected")

JOB = "job"
DATASET = "dataset"
FORECAST = "forecast"
STATE = "state"
JOBS = {
    DATASET: "a dataset written by 'rnncast dataset'",
    FORECAST: "forecasts written by 'rnncast forecast --output'",
    STATE: "a state directory written by 'rnncast forecast --state-out' or 'rnncast stream'",
}
# metadata.json written before the "job" field existed: its "schema" names the job.
_LEGACY_SCHEMAS = {
    "rnncast.dataset_metadata": DATASET,
    "rnncast.forecast": FORECAST,
    "rnncast.state": STATE,
}


def metadata_header(schema: str, job: str, run_id: str) -> dict:
    """The keys every ``metadata.json`` starts with: its contract and the schema versions,
    the job that owns the directory, and the run."""
    return {
        "schema": schemas.load(schema)["name"],
        "schema_version": dict(schemas.CURRENT_VERSIONS),
        "job": job,
        "run_id": run_id,
    }


def rejected_counts(rejected: dict) -> dict[str, int]:
    """Dead letters per reason, every reason of the contract listed (0 when none), from the
    summary the dead-letter writer outputs (``WriteRejected``)."""
    return {reason: rejected["by_reason"].get(reason, 0) for reason in schemas.rejection_reasons()}


def rejected_entry(rejected: dict) -> dict:
    """The ``rejected_files`` entry of ``metadata.json`` for that summary."""
    return {
        "name": "rejected/" + rejected["path"].rsplit("/", 1)[-1],
        "records": rejected["records"],
        "sha256": rejected["sha256"],
    }


def run_id(settings: dict, paths: list[str], extra: str = "") -> str:
    """Deterministic id of a run: its settings (without output locations), the input files'
    names and sizes, and ``extra`` (contract versions, model, ...)."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    digest.update(extra.encode())
    for match in FileSystems.match(paths):
        for metadata in match.metadata_list:
            digest.update(f"{metadata.path}\x1f{metadata.size_in_bytes}\x1e".encode())
    return digest.hexdigest()[:16]


def check_counts(
    counts: dict,
    source: str,
    max_rejected_fraction: float,
    staging: str,
    columns: InputColumns | None = None,
) -> None:
    """Refuse to commit a run with no rows, broken accounting or too many rejected rows
    (when every timestamp was rejected, say so and which ``--timestamp-format`` fits: see
    :func:`check_timestamps`; ``columns`` are the run's ``InputColumns``)."""
    from rnncast.errors import InputError, RejectedRowsError

    if counts["rows_read"] == 0:
        raise InputError(
            f"{source}: the input has no data rows; nothing to write. Check the path and that "
            "the files contain rows below the header"
        )
    if counts["rows_read"] != counts["rows_accepted"] + counts["rows_rejected"]:
        raise AssertionError(f"row accounting is off ({counts}); this is a bug in rnncast")
    if columns is not None:
        check_timestamps(counts, source, staging, columns)
    fraction = counts["rows_rejected"] / counts["rows_read"]
    if fraction > max_rejected_fraction:
        reasons = {k: v for k, v in counts["rejected_by_reason"].items() if v}
        raise RejectedRowsError(
            f"{source}: {counts['rows_rejected']} of {counts['rows_read']} rows "
            f"({fraction:.2%}) were rejected {reasons}, more than --max-rejected-fraction "
            f"{max_rejected_fraction}. Nothing was committed; the rejected rows and their "
            f"reasons are in {FileSystems.join(staging, 'rejected')}. Fix the input or raise "
            "--max-rejected-fraction" + timestamp_hint(staging, columns)
        )


def check_timestamps(counts: dict, source: str, staging: str, columns: InputColumns) -> None:
    """InputError with :func:`~rnncast.pipeline.core.validation.all_timestamps_invalid_message`
    when no row passed the row checks, mostly for ``invalid_timestamp``; the samples come from
    the run's staged dead letters (``STAGING/rejected/*.jsonl``)."""
    from rnncast.errors import InputError
    from rnncast.pipeline.core import validation

    by_reason = counts["rejected_by_reason"]
    if not validation.timestamps_all_invalid(counts["rows_read"], by_reason):
        return
    raise InputError(
        validation.all_timestamps_invalid_message(
            source,
            counts["rows_read"],
            by_reason["invalid_timestamp"],
            [value for _, value in staged_invalid_timestamps(staging, columns.timestamp)],
            columns.timestamp_format,
        )
    )


def timestamp_hint(staging: str, columns: InputColumns | None) -> str:
    """For an error about rejected rows: which ``--timestamp-format`` the staged
    ``invalid_timestamp`` dead letters look like they need (e.g. one day-first file among
    ISO ones), or "" (no such rows, a format given, or no telling)."""
    from rnncast.pipeline.core import validation

    if columns is None or columns.timestamp_format is not None:
        return ""
    samples = staged_invalid_timestamps(staging, columns.timestamp)
    return validation.timestamp_format_hint(samples)


def staged_invalid_timestamps(staging: str, column: str, limit: int = 100) -> list[tuple[str, str]]:
    """``(source, timestamp as read)`` of the first ``limit`` ``invalid_timestamp`` dead
    letters staged under ``STAGING/rejected/``."""
    out: list[tuple[str, str]] = []
    pattern = FileSystems.join(staging, "rejected", "*.jsonl")
    for match in FileSystems.match([pattern])[0].metadata_list:
        with FileSystems.open(match.path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            for line in io.TextIOWrapper(f, encoding="utf-8"):
                record = json.loads(line)
                value = record.get("row", {}).get(column)
                if record.get("reason") == "invalid_timestamp" and value is not None:
                    out.append((record.get("source", ""), str(value)))
                    if len(out) >= limit:
                        return out
    return out


# --- atomic single-file writes ----------------------------------------------------------------


def write_json(path: str, payload: dict | list) -> None:
    """Write JSON to ``path`` atomically (temporary file, then one rename over ``path``)."""
    data = (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode("utf-8")
    write_bytes(path, data)


def write_bytes(path: str, data: bytes, temporary: str | None = None) -> None:
    """Write ``data`` to ``path``: readers see the old content or the new, never neither.

    The one atomic write of rnncast (a temporary name, then :func:`replace`). A local file is
    flushed to disk before the rename, so a crash cannot leave a renamed but empty file.
    """
    temporary = temporary or path + ".tmp"
    if isinstance(FileSystems.get_filesystem(path), LocalFileSystem):
        # As FileSystems.create does, the folder is made when missing.
        os.makedirs(os.path.dirname(os.path.abspath(temporary)), exist_ok=True)
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    else:
        with FileSystems.create(temporary) as sink:
            sink.write(data)
    replace(temporary, path)


def replace(source: str, destination: str) -> None:
    """Rename ``source`` over ``destination`` in one step. Locally ``os.replace`` (atomic on
    POSIX and Windows); object stores copy over the destination object, which readers see
    whole, old or new."""
    if isinstance(FileSystems.get_filesystem(destination), LocalFileSystem):
        os.replace(source, destination)
    else:
        FileSystems.rename([source], [destination])


def parquet_bytes(table: pd.DataFrame | pa.Table) -> bytes:
    """``table`` as the bytes of a Parquet file (pyarrow's defaults, so reruns match)."""
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def write_parquet(path: str, table: pd.DataFrame | pa.Table) -> dict:
    """Write ``table`` as Parquet through FileSystems (temporary name, then rename)."""
    data = parquet_bytes(table)
    write_bytes(path, data)
    return {"records": len(table), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def read_committed_frame(directory: str) -> pd.DataFrame:
    """The Parquet files a committed output directory's ``metadata.json`` lists (forecasts,
    state), in that order, as one DataFrame."""
    files = read_json(FileSystems.join(directory, METADATA))["files"]
    tables = []
    for entry in files:
        with FileSystems.open(FileSystems.join(directory, entry["name"])) as source:
            tables.append(pq.read_table(io.BytesIO(source.read())))
    return pa.concat_tables(tables).to_pandas() if tables else pd.DataFrame()


def read_json(path: str, fix: str = "rerun the job that wrote it") -> dict:
    """The JSON object in ``path``; a truncated or foreign file raises
    :class:`~rnncast.errors.CorruptFileError` naming the file and ``fix``."""
    from rnncast.errors import CorruptFileError

    with FileSystems.open(path) as source:
        data = source.read()
    try:
        payload = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise CorruptFileError(
            f"{path}: not valid JSON ({err}); the file is truncated or corrupt: {fix}"
        ) from err
    if not isinstance(payload, dict):
        kind = type(payload).__name__
        raise CorruptFileError(f"{path}: holds a JSON {kind}, not an object; {fix}")
    return payload


# --- ownership --------------------------------------------------------------------------------


def job_of(metadata) -> str | None:
    """The kind of job that wrote ``metadata`` (None when it is not rnncast's)."""
    if not isinstance(metadata, dict):
        return None
    job = metadata.get(JOB)
    if job in JOBS:
        return job
    if JOB not in metadata:
        return _LEGACY_SCHEMAS.get(metadata.get("schema"))
    return None


def _read_owner(path: str) -> str:
    with FileSystems.open(path) as source:
        return source.read().decode("utf-8", "replace").strip()


def check_owner(output: str, job: str, directories: tuple[str, ...]) -> dict | None:
    """Refuse ``output`` unless ``job`` may write there; returns its committed metadata (None
    when nothing is committed there yet). Writes nothing."""
    path = FileSystems.join(output, METADATA)
    if FileSystems.exists(path):
        try:
            metadata = read_json(path)
        except ValueError as err:  # CorruptFileError
            raise OutputError(
                f"{output}: its {METADATA} is not readable as rnncast metadata ({err}), so it "
                f"may belong to another program; 'rnncast' will not write there. Choose another "
                "output directory"
            ) from err
        owner = job_of(metadata)
        if owner is None:
            raise OutputError(
                f"{output}: its {METADATA} was not written by rnncast; 'rnncast' will not write "
                "there. Choose another output directory"
            )
        if owner != job:
            raise OutputError(
                f"{output}: holds {JOBS[owner]}; writing {JOBS[job].split(' written')[0]} "
                "there would replace its metadata.json and delete its files. Choose another "
                "output directory"
            )
        return metadata
    marker = FileSystems.join(output, STAGING, OWNER)
    if FileSystems.exists(marker):
        owner = _read_owner(marker)
        if owner == job:
            return None  # files left by an interrupted first run of this job are its own
        raise OutputError(
            f"{output}: an uncommitted run of another job ({owner!r}) is under "
            f"{FileSystems.join(output, STAGING)}; choose another output directory"
        )
    used = [d for d in directories if _files_under(FileSystems.join(output, d))]
    if used:
        raise OutputError(
            f"{output}: holds files in {', '.join(d + '/' for d in used)} but no rnncast "
            f"{METADATA}; they are not rnncast's and would be mixed with its output. Choose "
            "another output directory (or move those files away)"
        )
    return None


def _files_under(directory: str) -> list[str]:
    if not FileSystems.exists(directory):
        return []
    pattern = FileSystems.join(directory, "**")
    return [m.path for m in FileSystems.match([pattern])[0].metadata_list]


# --- staging and commit -----------------------------------------------------------------------


def prepare_staging(
    output: str, run_id: str, job: str, directories: tuple[str, ...] = DATA_DIRECTORIES
) -> str:
    """An empty staging directory for ``run_id`` under ``output``, once ``job`` may write
    there (:func:`check_owner`)."""
    check_owner(output, job, directories)
    staging_root = FileSystems.join(output, STAGING)
    staging = FileSystems.join(staging_root, run_id)
    if FileSystems.exists(staging):
        FileSystems.delete([staging])
    for directory in (*directories, SPILL):
        _ensure_directory(FileSystems.join(staging, directory))
    write_bytes(FileSystems.join(staging_root, OWNER), (job + "\n").encode("utf-8"))
    return staging


@contextlib.contextmanager
def staged_run(
    output: str, run_id: str, job: str, directories: tuple[str, ...] = DATA_DIRECTORIES
) -> Iterator[str]:
    """:func:`prepare_staging` for the body of a run; if the run fails, its staging directory
    is removed again (it holds nothing the user can use) unless the error points the user at
    the staged dead letters (:class:`RejectedRowsError`)."""
    from rnncast.errors import RejectedRowsError

    staging = prepare_staging(output, run_id, job, directories)
    try:
        yield staging
    except RejectedRowsError:
        remove_spill(staging)
        raise
    except BaseException:
        discard_staging(output, staging, directories)
        raise


def discard_staging(output: str, staging: str, directories: tuple[str, ...]) -> None:
    """Remove a failed run's staging directory, and ``_staging`` when nothing else is in it
    (its ``_owner`` marker too, unless files of an interrupted commit still need it)."""
    try:
        if FileSystems.exists(staging):
            FileSystems.delete([staging])
        moved = any(_files_under(FileSystems.join(output, d)) for d in directories)
        committed = FileSystems.exists(FileSystems.join(output, METADATA))
        _remove_idle_staging_root(output, keep_owner=moved and not committed)
    except Exception:  # noqa: BLE001 - never hide the run's own error behind a cleanup error
        logging.getLogger(__name__).warning("could not remove %s", staging, exc_info=True)


def _remove_idle_staging_root(output: str, keep_owner: bool) -> None:
    """Delete ``DIR/_staging`` when no run is staged there; ``keep_owner`` keeps it while its
    ``_owner`` marker still vouches for files an interrupted first commit moved into place."""
    staging_root = FileSystems.join(output, STAGING)
    if not FileSystems.exists(staging_root):
        return
    staged = [p for p in _files_under(staging_root) if posixpath.basename(p) != OWNER]
    if not staged and not keep_owner:
        FileSystems.delete([staging_root])


def _ensure_directory(path: str) -> None:
    # Object stores have no directories; mkdirs is a no-op there and fails locally if present.
    if not FileSystems.exists(path):
        FileSystems.mkdirs(path)


def remove_spill(staging: str) -> None:
    """Delete a run's spill files (intermediate data, not part of any output)."""
    path = FileSystems.join(staging, SPILL)
    if FileSystems.exists(path):
        FileSystems.delete([path])


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _final_name(output: str, run_id: str, name: str, sha256: str) -> tuple[str, bool]:
    """Final name of a staged file (``dir/<run>-<name>``) and whether it is already there with
    the same content. A file of that name with other content (the same run id over changed
    input) may be listed by the committed metadata, so the new file gets the content hash too."""
    directory, base = name.split("/", 1)
    for final in (f"{directory}/{run_id}-{base}", f"{directory}/{run_id}-{sha256[:16]}-{base}"):
        path = FileSystems.join(output, final)
        if not FileSystems.exists(path):
            return final, False
        if _sha256(path) == sha256:
            return final, True
    raise AssertionError(f"{output}: two files of {name} with one hash; this is a bug")


# Named steps of commit_run, in order; tests crash the commit at each (see ``_step``).
STEPS = (
    "begin",
    "move",
    "metadata_temp",
    "replaced_record",
    "metadata",
    "success",
    "delete_stale",
    "staging",
)
REPLACED = "_replaced.json"  # DIR/_staging/_replaced.json: files the commit made stale


def _step(name: str, output: str) -> None:
    """The point after step ``name`` of committing into ``output`` (a test hook; no-op)."""


def commit_run(
    output: str,
    staging: str,
    metadata: dict,
    job: str,
    directories: tuple[str, ...] = DATA_DIRECTORIES,
) -> dict:
    """Move a staged run's files into place and make it the run readers see.

    Steps (a crash after any of them leaves the old run or the new run readable, complete):
    move each staged file to a final name no committed file has (or find it already there);
    write the new metadata to a temporary name; record which files of the previous run it
    makes stale (with the new metadata's hash); replace ``metadata.json`` (the commit);
    write ``_SUCCESS``; delete the recorded stale files and the record; delete the staging
    directory. A later commit first finishes a record whose metadata is the committed one.
    """
    if metadata.get(JOB) != job:
        raise AssertionError(f"metadata of a {job} run says job {metadata.get(JOB)!r}")
    previous = check_owner(output, job, directories)
    staging_root = FileSystems.join(output, STAGING)
    record = FileSystems.join(staging_root, REPLACED)
    _finish_replaced(output, record, directories)
    _step("begin", output)
    run_id = metadata["run_id"]
    for directory in directories:
        _ensure_directory(FileSystems.join(output, directory))
    for entry in _file_entries(metadata):
        source = FileSystems.join(staging, entry["name"])
        sha256 = entry.get("sha256") or _sha256(source)
        final, present = _final_name(output, run_id, entry["name"], sha256)
        if present:
            FileSystems.delete([source])
        else:
            FileSystems.rename([source], [FileSystems.join(output, final)])
        entry["name"] = final
        _step("move", output)
    temporary = FileSystems.join(staging, METADATA + ".commit")
    data = (json.dumps(metadata, indent=2, sort_keys=True) + "\n").encode("utf-8")
    with FileSystems.create(temporary) as sink:
        sink.write(data)
    _step("metadata_temp", output)
    keep = {e["name"] for e in _file_entries(metadata)}
    stale = sorted(set(_listed_names(previous, directories)) - keep)
    write_json(record, {"metadata_sha256": hashlib.sha256(data).hexdigest(), "files": stale})
    _step("replaced_record", output)
    replace(temporary, FileSystems.join(output, METADATA))  # the commit
    _step("metadata", output)
    write_bytes(
        FileSystems.join(output, SUCCESS),
        (run_id + "\n").encode("utf-8"),
        FileSystems.join(staging, SUCCESS + ".commit"),
    )
    _step("success", output)
    _finish_replaced(output, record, directories)
    _step("delete_stale", output)
    FileSystems.delete([staging])
    _remove_idle_staging_root(output, keep_owner=False)  # committed: the marker has done its job
    _step("staging", output)
    return metadata


def _finish_replaced(output: str, record: str, directories: tuple[str, ...]) -> None:
    """Delete the files a commit recorded as stale, if that commit's metadata is the one
    committed now (else it never happened, and they are still the committed run's); then
    the record."""
    if not FileSystems.exists(record):
        return
    try:
        replaced = read_json(record)
        with FileSystems.open(FileSystems.join(output, METADATA)) as source:
            committed = source.read()
    except (OSError, ValueError, UnicodeDecodeError):
        replaced, committed = {}, b""
    if replaced.get("metadata_sha256") == hashlib.sha256(committed).hexdigest():
        keep = set(_listed_names(json.loads(committed), directories))
        names = _listed_names({"files": [{"name": n} for n in replaced["files"]]}, directories)
        stale = [FileSystems.join(output, n) for n in names if n not in keep]
        stale = [path for path in stale if FileSystems.exists(path)]
        if stale:
            FileSystems.delete(stale)
    FileSystems.delete([record])


def _listed_names(metadata: dict | None, directories: tuple[str, ...]) -> list[str]:
    """Names of the files ``metadata`` lists that lie inside ``directories`` (only these may
    ever be deleted)."""
    if metadata is None:
        return []
    names = []
    for entry in _file_entries(metadata):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            continue
        parts = posixpath.normpath(name).split("/")
        if len(parts) == 2 and parts[0] in directories and parts[1] not in ("", ".", ".."):
            names.append(name)
    return names


def _file_entries(metadata: dict) -> list[dict]:
    entries = list(metadata.get("rejected_files", [])) + list(metadata.get("files", []))
    for split in metadata.get("splits", {}).values():
        entries.extend(split["files"])
    return entries


def committed_run(output: str) -> str | None:
    """The run id of the committed ``metadata.json``, or None when no run was committed."""
    path = FileSystems.join(output, METADATA)
    if not FileSystems.exists(path):
        return None
    try:
        return read_json(path).get("run_id")
    except ValueError:  # CorruptFileError: nothing usable is committed
        return None
