"""An upload streamed to a temporary folder inside the datasets directory, hashed as it comes."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from pathlib import Path

from torchkiln.service.store.errors import DatasetTooLarge

UPLOAD_PREFIX = ".upload-"
STALE_AFTER_S = 24 * 3600


class UploadSink:
    """Receives the file's bytes; ``discard`` leaves nothing behind."""

    def __init__(self, datasets_dir: Path, max_bytes: int) -> None:
        datasets_dir.mkdir(parents=True, exist_ok=True)
        # Inside datasets_dir: the same filesystem, so the finished dataset is one rename away.
        self.folder = Path(tempfile.mkdtemp(prefix=UPLOAD_PREFIX, dir=datasets_dir))
        self.path = self.folder / "upload"
        self.max_bytes = max_bytes
        self.size = 0
        self._hash = hashlib.sha256()
        self._file = open(self.path, "wb")  # noqa: SIM115 -- closed by finish() or discard()

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.max_bytes:
            raise DatasetTooLarge(self.max_bytes)
        self._hash.update(data)
        self._file.write(data)

    def finish(self) -> str:
        """Close the file; its sha256 in hex."""
        self._file.close()
        return self._hash.hexdigest()

    def discard(self) -> None:
        self._file.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def remove_stale_uploads(datasets_dir: Path, older_than_s: float = STALE_AFTER_S) -> None:
    """Uploads a crash left half-written. Only old ones: another HTTP process may be
    receiving one right now."""
    if not datasets_dir.is_dir():
        return
    cutoff = time.time() - older_than_s
    for folder in datasets_dir.glob(UPLOAD_PREFIX + "*"):
        if folder.stat().st_mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
