"""Checks of input and output locations before a job reads or writes anything.

Every job names its locations by flag (``--output``, ``--state-out``, ``--model-dir`` ...).
A location that cannot work — a scheme whose filesystem is not installed (``gs://`` without
the ``gcp`` extra), an existing file where a directory is needed, a directory that cannot be
created or written (read-only mount, no permission) — is refused up front with one message
naming the location, the flag and the fix, instead of a traceback half-way through a run.
"""

from __future__ import annotations

import contextlib
import os
import uuid

from apache_beam.io.filesystems import FileSystems

from rnncast.errors import OutputError

# Which extra brings the filesystem of a scheme (Beam registers them when the package imports).
_SCHEME_EXTRAS = {
    "gs": "pip install 'rnncast[gcp]' (Beam's GCP extra)",
    "s3": "pip install 'apache-beam[aws]'",
    "az": "pip install 'apache-beam[azure]'",
    "hdfs": "pip install 'apache-beam[hadoop]'",
}


def scheme(path: str) -> str | None:
    """The URL scheme of ``path`` (``gs``, ``s3`` ...), or None for a local path."""
    head, sep, _ = path.partition("://")
    return head.lower() if sep and head.isidentifier() else None


def is_local(path: str) -> bool:
    return scheme(path) in (None, "file")


def check_filesystem(path: str, flag: str) -> None:
    """Refuse ``path`` when no installed Beam filesystem serves its scheme."""
    try:
        FileSystems.get_filesystem(path)
    except ValueError as err:
        name = scheme(path) or "this"
        hint = _SCHEME_EXTRAS.get(name, "install the Beam extra that provides it")
        raise OutputError(
            f"{path}: no filesystem for '{name}://' paths is installed ({flag}); {hint}, "
            "or use a local path"
        ) from err


def check_output_directory(path: str, flag: str) -> None:
    """Make sure ``path`` can hold a job's output directory: its filesystem is installed, it
    is not a file, and (locally) it can be created and written. Leaves nothing behind: the
    directories it had to create to find out are removed again (the job creates them when it
    writes)."""
    if not path:
        raise OutputError(f"{flag} is empty; pass a directory")
    check_filesystem(path, flag)
    if not is_local(path):
        # Object stores have no directories to create or permissions to probe cheaply; a
        # write error there is reported by the job with the object's path.
        return
    local = os.path.abspath(path[len("file://") :] if path.startswith("file://") else path)
    if os.path.exists(local) and not os.path.isdir(local):
        raise OutputError(
            f"{path}: is an existing file, not a directory ({flag}); pass a directory path"
        )
    created = []
    missing = local
    while not os.path.exists(missing):
        created.append(missing)
        missing = os.path.dirname(missing)
    try:
        try:
            os.makedirs(local, exist_ok=True)
        except OSError as err:
            raise OutputError(
                f"{path}: cannot create the directory ({err.strerror or err}) ({flag}); check "
                "that its parent exists and is writable, or choose another location"
            ) from err
        # Root ignores permission bits, and a read-only mount only shows when writing: probe
        # with a file of our own (a unique name, removed at once) rather than os.access.
        probe = os.path.join(local, f".rnncast-write-probe-{uuid.uuid4().hex}")
        try:
            with open(probe, "wb"):
                pass
        except OSError as err:
            raise OutputError(
                f"{path}: cannot write into the directory ({err.strerror or err}) ({flag}); "
                "make it writable (not a read-only mount) or choose another location"
            ) from err
        os.remove(probe)
    finally:
        for directory in created:  # innermost first
            with contextlib.suppress(OSError):
                os.rmdir(directory)
