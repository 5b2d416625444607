"""Where artifacts live: the artifacts folder (the default) or an object store.

One small interface over both, keyed by relative posix paths (``jobs/12/epoch-000003.pt``).
``TORCHKILN_ARTIFACTS_URL=s3://bucket/prefix`` picks the object store, through fsspec (s3fs
for ``s3://``), which finds the endpoint and credentials the standard AWS way
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, profiles, roles).

Writes land whole or not at all: locally a temp file renamed into place; in S3 one PUT, or a
multipart upload, whose object appears only when the upload completes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

# A remote version marker is asked again at most this often (a HEAD request); a local one is
# a stat per call. This process's own writes are seen at once.
REMOTE_STAMP_TTL_S = 1.0
# s3fs's own part size: an upload this large or more goes in parts (a multipart upload).
PART_BYTES = 50 * 2**20
# A killed local write's leftover, ".epoch-000004.pt.<random>.tmp" beside the final file.
TEMP_GLOB = ".*.*.tmp"
_BLOCK = 1 << 20

VersionProbe = Callable[[], object]


@dataclass(frozen=True)
class StoredObject:
    key: str
    sha256: str
    size_bytes: int


class CorruptArtifact(Exception):
    """The stored bytes are not the ones recorded when they were written."""


class ArtifactStore(ABC):
    """Artifacts by key. ``get_bytes`` and ``version_probe`` raise or answer None for a
    missing key; ``delete`` of one is a no-op."""

    is_local: bool

    @abstractmethod
    def put_bytes(self, key: str, data: bytes | memoryview) -> StoredObject: ...

    @abstractmethod
    def put_file(self, key: str, source: Path) -> StoredObject: ...

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """The object's bytes; FileNotFoundError if there is none."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def delete_prefix(self, prefix: str) -> None:
        """Every object under the folder ``prefix``."""

    @abstractmethod
    def list_prefix(self, prefix: str) -> list[str]:
        """The keys under the folder ``prefix``, at any depth."""

    @abstractmethod
    def remove_unfinished(self, prefix: str) -> None:
        """Drop the leftovers of writes killed mid-way in the folder ``prefix``: temp files,
        unfinished uploads. Only while no one writes there."""

    @abstractmethod
    def version_probe(self, key: str) -> VersionProbe:
        """A cheap call whose answer changes whenever ``key`` is rewritten (None: absent)."""

    @abstractmethod
    def describe(self, key: str) -> str:
        """Where ``key`` is, for messages."""

    def get_bytes(self, key: str, sha256: str | None = None) -> bytes:
        """The object's bytes, checked against ``sha256`` when one was recorded."""
        data = self.read_bytes(key)
        if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
            raise CorruptArtifact(f"{self.describe(key)} does not match its recorded sha256")
        return data


class LocalStore(ArtifactStore):
    """Files under ``root``, each written to a temp name beside it, then renamed."""

    is_local = True

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / key

    def put_bytes(self, key: str, data: bytes | memoryview) -> StoredObject:
        return self.put_file_with(key, lambda handle: handle.write(data))

    def put_file(self, key: str, source: Path) -> StoredObject:
        def copy(handle: BinaryIO) -> None:
            with source.open("rb") as origin:
                shutil.copyfileobj(origin, handle, _BLOCK)

        return self.put_file_with(key, copy)

    def put_file_with(self, key: str, fill: Callable[[BinaryIO], Any]) -> StoredObject:
        """Write ``key`` by ``fill(handle)``, straight into its temp file."""
        # Readers and crashes see the old file or the new one, never half; a killed writer
        # leaves ".<name>.<random>.tmp", which checkpoint_files.TEMP_GLOB finds.
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                fill(handle)
                handle.flush()
                os.fsync(handle.fileno())
            digest, size = file_digest(Path(tmp_name))
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return StoredObject(key, digest, size)

    def read_bytes(self, key: str) -> bytes:
        # One open: retention may unlink the file at any moment, and an open handle keeps
        # reading it.
        return self.path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self.path(prefix), ignore_errors=True)

    def list_prefix(self, prefix: str) -> list[str]:
        folder = self.path(prefix)
        return sorted(p.relative_to(self.root).as_posix() for p in folder.rglob("*") if p.is_file())

    def remove_unfinished(self, prefix: str) -> None:
        for path in self.path(prefix).glob(TEMP_GLOB):
            path.unlink(missing_ok=True)

    def version_probe(self, key: str) -> VersionProbe:
        # A rename makes a new inode, so the stamp changes even where mtimes are coarse; the
        # path is built once (its joins cost more than the stat).
        path = os.fspath(self.path(key))

        def stamp() -> tuple[int, int] | None:
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                return None
            return stat.st_ino, stat.st_mtime_ns

        return stamp

    def describe(self, key: str) -> str:
        return os.fspath(self.path(key))


class RemoteStore(ArtifactStore):
    """Objects under an fsspec URL (``s3://bucket/prefix``)."""

    is_local = False

    def __init__(self, url: str, part_bytes: int = PART_BYTES, **storage_options: Any) -> None:
        from fsspec.core import url_to_fs  # only hosts with an object store pay the import

        # No listings cache: other hosts write here, and a cached listing would hide them.
        # A client of its own (open_store shares stores): fsspec's shared instances would
        # ignore the AWS_* variables in force now.
        self.fs, root = url_to_fs(
            url, use_listings_cache=False, skip_instance_cache=True, **storage_options
        )
        self.url, self.root = url.rstrip("/"), root.rstrip("/")
        self.part_bytes = part_bytes
        self._stamps: dict[str, tuple[object, float]] = {}
        self._lock = threading.Lock()

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def put_bytes(self, key: str, data: bytes | memoryview) -> StoredObject:
        data = bytes(data)
        # Straight to the final key: s3fs sends one PUT, or a multipart upload completed
        # only after its last part, so the object is whole or absent.
        self.fs.pipe_file(self._path(key), data, chunksize=self.part_bytes)
        self._forget(key)
        return StoredObject(key, hashlib.sha256(data).hexdigest(), len(data))

    def put_file(self, key: str, source: Path) -> StoredObject:
        digest, size = file_digest(source)
        self.fs.put_file(os.fspath(source), self._path(key), chunksize=self.part_bytes)
        self._forget(key)
        return StoredObject(key, digest, size)

    def read_bytes(self, key: str) -> bytes:
        return self.fs.cat_file(self._path(key))

    def exists(self, key: str) -> bool:
        return self.fs.exists(self._path(key))

    def delete(self, key: str) -> None:
        try:
            self.fs.rm_file(self._path(key))
        except FileNotFoundError:
            pass
        self._forget(key)

    def delete_prefix(self, prefix: str) -> None:
        for key in self.list_prefix(prefix):
            self.delete(key)

    def list_prefix(self, prefix: str) -> list[str]:
        try:
            found = self.fs.find(self._path(prefix.rstrip("/")))
        except FileNotFoundError:
            return []
        start = len(self.root) + 1
        return sorted(path[start:] for path in found)

    def remove_unfinished(self, prefix: str) -> None:
        # A killed multipart upload is no object, but its parts are kept (and billed) until
        # aborted; a bucket lifecycle rule would do it too.
        if not hasattr(self.fs, "call_s3"):
            return
        bucket, _, start = self._path(prefix).partition("/")
        listed = self.fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=f"{start}/")
        for upload in listed.get("Uploads", []):
            self.fs.call_s3(
                "abort_multipart_upload",
                Bucket=bucket,
                Key=upload["Key"],
                UploadId=upload["UploadId"],
            )

    def version_probe(self, key: str) -> VersionProbe:
        path = self._path(key)

        def stamp() -> object:
            now = time.monotonic()
            with self._lock:
                cached = self._stamps.get(key)
            if cached is not None and now - cached[1] < REMOTE_STAMP_TTL_S:
                return cached[0]
            try:
                info = self.fs.info(path)
                value: object = (info.get("ETag"), info.get("LastModified"), info.get("size"))
            except FileNotFoundError:
                value = None
            with self._lock:
                self._stamps[key] = (value, now)
            return value

        return stamp

    def _forget(self, key: str) -> None:
        with self._lock:
            self._stamps.pop(key, None)

    def describe(self, key: str) -> str:
        return f"{self.url}/{key}"


def open_store(artifacts_dir: Path, artifacts_url: str | None) -> ArtifactStore:
    """The object store at ``artifacts_url`` if set (``file://`` means that folder), else
    the artifacts folder."""
    if not artifacts_url:
        return LocalStore(artifacts_dir)
    if artifacts_url.startswith("file://"):
        return LocalStore(Path(artifacts_url.removeprefix("file://")))
    # One per URL and process: a new S3 client costs some 0.3 s, too much for every job.
    with _OPENING:
        store = _REMOTE_STORES.get(artifacts_url)
        if store is None:
            store = _REMOTE_STORES[artifacts_url] = RemoteStore(artifacts_url)
    return store


_REMOTE_STORES: dict[str, RemoteStore] = {}
_OPENING = threading.Lock()


def file_digest(path: Path) -> tuple[str, int]:
    """The hex sha256 and size of a file, read in 1 MiB blocks."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size
