"""A Beam filesystem under its own scheme, ``rnncasttest://``, that keeps its objects in a
local folder: jobs reach it only through ``FileSystems``, as they reach ``gs://`` or
``s3://``, so a job that writes with plain ``open`` (or ``os``) fails on it. No bucket can be
reached from the test machines; this stands in for one without mocking the job's own code.

Beam finds filesystems by subclass, so importing this module registers the scheme.
"""

from __future__ import annotations

import os

from apache_beam.io.filesystem import FileSystem
from apache_beam.io.localfilesystem import LocalFileSystem

SCHEME = "rnncasttest"
# The folder behind the scheme; a test sets it (e.g. to a tmp_path) before use.
ROOT = {"path": None}


def local(path: str) -> str:
    """The local file behind ``rnncasttest://a/b``."""
    assert ROOT["path"], "set object_store.ROOT['path'] first"
    return os.path.join(ROOT["path"], path[len(SCHEME) + 3 :])


class FolderObjectStore(FileSystem):
    """Object-store semantics (no directories) over a local folder."""

    def __init__(self, pipeline_options=None):
        super().__init__(pipeline_options)
        self._local = LocalFileSystem(pipeline_options)

    @classmethod
    def scheme(cls):
        return SCHEME

    def join(self, basepath, *paths):
        return "/".join([basepath.rstrip("/"), *(p.strip("/") for p in paths)])

    def split(self, path):
        head, _, tail = path.rstrip("/").rpartition("/")
        return head, tail

    def mkdirs(self, path):
        pass  # no directories in an object store

    def has_dirs(self):
        return False

    def _list(self, dir_or_prefix):
        for meta in self._local._list(local(dir_or_prefix)):
            relative = os.path.relpath(meta.path, ROOT["path"])
            yield type(meta)(
                f"{SCHEME}://{relative}", meta.size_in_bytes, meta.last_updated_in_seconds
            )

    def create(self, path, mime_type="application/octet-stream", compression_type="auto"):
        os.makedirs(os.path.dirname(local(path)), exist_ok=True)
        return self._local.create(local(path), mime_type, compression_type)

    def open(self, path, mime_type="application/octet-stream", compression_type="auto"):
        return self._local.open(local(path), mime_type, compression_type)

    def copy(self, source_file_names, destination_file_names):
        self._local.copy(
            list(map(local, source_file_names)), list(map(local, destination_file_names))
        )

    def rename(self, source_file_names, destination_file_names):
        for destination in destination_file_names:
            os.makedirs(os.path.dirname(local(destination)), exist_ok=True)
        self._local.rename(
            list(map(local, source_file_names)), list(map(local, destination_file_names))
        )

    def exists(self, path):
        return self._local.exists(local(path))

    def size(self, path):
        return self._local.size(local(path))

    def last_updated(self, path):
        return self._local.last_updated(local(path))

    def checksum(self, path):
        return self._local.checksum(local(path))

    def metadata(self, path):
        meta = self._local.metadata(local(path))
        return type(meta)(path, meta.size_in_bytes, meta.last_updated_in_seconds)

    def delete(self, paths):
        self._local.delete(list(map(local, paths)))
