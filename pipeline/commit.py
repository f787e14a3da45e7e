"""Atomic commit of a job's output directory.

A run writes everything under ``DIR/_staging/<run_id>/``. Only when the run succeeded are its
files moved to their final names (which carry the run id, so they never overwrite files an
older ``metadata.json`` points to), then ``metadata.json`` is replaced in one rename and
``_SUCCESS`` records the committed run id. Readers use only the files ``metadata.json`` lists,
and check ``_SUCCESS``; files of earlier runs are deleted after the commit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Iterator

from apache_beam.io.filesystems import FileSystems

METADATA = "metadata.json"
SUCCESS = "_SUCCESS"
STAGING = "_staging"
SPILL = "_spill"
DATA_DIRECTORIES = ("train", "validation", "rejected")


def run_id(settings: dict, paths: list[str], extra: str = "") -> str:
    """Deterministic id of a run: its settings (without output locations), the input files'
    names and sizes, and ``extra`` (contract versions, model, ...)."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    digest.update(extra.encode())
    for match in FileSystems.match(paths):
        for metadata in match.metadata_list:
            digest.update(f"{metadata.path}\x1f{metadata.size_in_bytes}\x1e".encode())
    return digest.hexdigest()[:16]


def check_counts(counts: dict, source: str, max_rejected_fraction: float, staging: str) -> None:
    """Refuse to commit a run with no rows, broken accounting or too many rejected rows."""
    from pipeline.inputs import InputError, RejectedRowsError

    if counts["rows_read"] == 0:
        raise InputError(
            f"{source}: the input has no data rows; nothing to write. Check the path and that "
            "the files contain rows below the header"
        )
    if counts["rows_read"] != counts["rows_accepted"] + counts["rows_rejected"]:
        raise AssertionError(f"row accounting is off ({counts}); this is a bug in rnncast")
    fraction = counts["rows_rejected"] / counts["rows_read"]
    if fraction > max_rejected_fraction:
        reasons = {k: v for k, v in counts["rejected_by_reason"].items() if v}
        raise RejectedRowsError(
            f"{source}: {counts['rows_rejected']} of {counts['rows_read']} rows "
            f"({fraction:.2%}) were rejected {reasons}, more than --max-rejected-fraction "
            f"{max_rejected_fraction}. Nothing was committed; the rejected rows and their "
            f"reasons are in {FileSystems.join(staging, 'rejected')}. Fix the input or raise "
            "--max-rejected-fraction"
        )


def check_filled(
    over: list[dict], source: str, freq: str | None, max_filled_fraction: float, shown: int = 10
) -> None:
    """Refuse to commit a run with series (``over``: ``series_id``, ``filled_fraction``, most
    filled first) that are more than ``max_filled_fraction`` filled points."""
    from pipeline.inputs import InputError

    if not over:
        return
    names = ", ".join(f"{s['series_id']!r} ({s['filled_fraction']:.1%})" for s in over[:shown])
    more = f" and {len(over) - shown} more" if len(over) > shown else ""
    raise InputError(
        f"{source}: {len(over)} series are more than --max-filled-fraction "
        f"{max_filled_fraction} filled points at freq {freq}: {names}{more}. Nothing was "
        "committed. Such series are sparser than the dataset frequency (e.g. weekly or "
        "monthly series in a daily file) or have long gaps: give them their own run with "
        "their --freq, fix the input, or raise --max-filled-fraction"
    )


def write_json(path: str, payload: dict) -> None:
    """Write JSON to ``path`` atomically (temporary file, then rename)."""
    data = (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode("utf-8")
    write_bytes(path, data)


def write_bytes(path: str, data: bytes) -> None:
    temporary = path + ".tmp"
    with FileSystems.create(temporary) as sink:
        sink.write(data)
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([temporary], [path])


def read_json(path: str, fix: str = "rerun the job that wrote it") -> dict:
    """The JSON object in ``path``; a truncated or foreign file raises
    :class:`~pipeline.errors.CorruptFileError` naming the file and ``fix``."""
    from pipeline.errors import CorruptFileError

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


def prepare_staging(
    output: str, run_id: str, directories: tuple[str, ...] = DATA_DIRECTORIES
) -> str:
    """An empty staging directory for ``run_id`` under ``output``."""
    staging = FileSystems.join(output, STAGING, run_id)
    if FileSystems.exists(staging):
        FileSystems.delete([staging])
    for directory in (*directories, SPILL):
        _ensure_directory(FileSystems.join(staging, directory))
    return staging


@contextlib.contextmanager
def staged_run(
    output: str, run_id: str, directories: tuple[str, ...] = DATA_DIRECTORIES
) -> Iterator[str]:
    """:func:`prepare_staging` for the body of a run; if the run fails, its staging directory
    is removed again (it holds nothing the user can use) unless the error points the user at
    the staged dead letters (:class:`RejectedRowsError`)."""
    from pipeline.inputs import RejectedRowsError

    staging = prepare_staging(output, run_id, directories)
    try:
        yield staging
    except RejectedRowsError:
        remove_spill(staging)
        raise
    except BaseException:
        discard_staging(output, staging)
        raise


def discard_staging(output: str, staging: str) -> None:
    """Remove a failed run's staging directory, and ``_staging`` when nothing else is in it."""
    try:
        if FileSystems.exists(staging):
            FileSystems.delete([staging])
        staging_root = FileSystems.join(output, STAGING)
        if FileSystems.exists(staging_root) and not _list(staging_root):
            FileSystems.delete([staging_root])
    except Exception:  # noqa: BLE001 - never hide the run's own error behind a cleanup error
        logging.getLogger(__name__).warning("could not remove %s", staging, exc_info=True)


def _ensure_directory(path: str) -> None:
    # Object stores have no directories; mkdirs is a no-op there and fails locally if present.
    if not FileSystems.exists(path):
        FileSystems.mkdirs(path)


def remove_spill(staging: str) -> None:
    """Delete a run's spill files (intermediate data, not part of any output)."""
    path = FileSystems.join(staging, SPILL)
    if FileSystems.exists(path):
        FileSystems.delete([path])


def _list(directory: str) -> list[str]:
    if not FileSystems.exists(directory):
        return []
    return [m.path for m in FileSystems.match([FileSystems.join(directory, "*")])[0].metadata_list]


def commit_run(
    output: str, staging: str, metadata: dict, directories: tuple[str, ...] = DATA_DIRECTORIES
) -> dict:
    """Move a staged run's files into place and make it the run readers see."""
    run_id = metadata["run_id"]
    moves = []
    for entry in _file_entries(metadata):
        directory, name = entry["name"].split("/", 1)
        final = f"{directory}/{run_id}-{name}"
        moves.append((FileSystems.join(staging, entry["name"]), FileSystems.join(output, final)))
        entry["name"] = final
    for directory in directories:
        _ensure_directory(FileSystems.join(output, directory))
    for source, destination in moves:
        if FileSystems.exists(destination):
            FileSystems.delete([destination])
        FileSystems.rename([source], [destination])
    success = FileSystems.join(output, SUCCESS)
    if FileSystems.exists(success):
        FileSystems.delete([success])
    write_json(FileSystems.join(output, METADATA), metadata)
    write_bytes(success, (run_id + "\n").encode("utf-8"))
    keep = {FileSystems.join(output, e["name"]) for e in _file_entries(metadata)}
    stale = [p for d in directories for p in _list(FileSystems.join(output, d)) if p not in keep]
    if stale:
        FileSystems.delete(stale)
    FileSystems.delete([staging])
    staging_root = FileSystems.join(output, STAGING)
    if not _list(staging_root):
        FileSystems.delete([staging_root])
    return metadata


def _file_entries(metadata: dict) -> list[dict]:
    entries = list(metadata.get("rejected_files", [])) + list(metadata.get("files", []))
    for split in metadata.get("splits", {}).values():
        entries.extend(split["files"])
    return entries


def committed_run(output: str) -> str | None:
    """The run id ``_SUCCESS`` names, or None when no run was committed."""
    path = FileSystems.join(output, SUCCESS)
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path) as source:
        return source.read().decode("utf-8").strip()
