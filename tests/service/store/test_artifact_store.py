"""The artifact store over a real S3 endpoint (moto's server): round trips, sha256 checks,
whole-or-nothing uploads, and the version probe the prediction cache polls."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import boto3
import pytest
import torch

from torchkiln.service.store import artifact_store
from torchkiln.service.store.artifact_store import (
    CorruptArtifact,
    LocalStore,
    RemoteStore,
    open_store,
)
from torchkiln.service.store.checkpoint_files import (
    CorruptCheckpoint,
    fetch_checkpoint,
    store_checkpoint,
)
from torchkiln.service.store.settings import Settings

pytestmark = pytest.mark.slow  # a live S3 server

CPU = torch.device("cpu")


def test_settings_pick_the_store(tmp_path: Path, bucket_url: str) -> None:
    assert isinstance(Settings(artifacts_dir=tmp_path).artifact_store(), LocalStore)
    remote = Settings(artifacts_dir=tmp_path, artifacts_url=bucket_url).artifact_store()
    assert isinstance(remote, RemoteStore) and remote.describe("a") == f"{bucket_url}/a"
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        Settings(artifacts_url="my-bucket")


def test_put_get_list_delete_round_trip(bucket_url: str, tmp_path: Path) -> None:
    store = open_store(tmp_path, bucket_url)
    stored = store.put_bytes("jobs/1/a.bin", b"hello")
    assert stored.sha256 == hashlib.sha256(b"hello").hexdigest() and stored.size_bytes == 5
    source = tmp_path / "b.bin"
    source.write_bytes(b"world" * 1000)
    assert store.put_file("jobs/1/sub/b.bin", source).size_bytes == 5000
    assert store.get_bytes("jobs/1/a.bin", stored.sha256) == b"hello"
    assert store.list_prefix("jobs/1") == ["jobs/1/a.bin", "jobs/1/sub/b.bin"]
    assert store.exists("jobs/1/a.bin") and not store.exists("jobs/2/a.bin")
    store.delete("jobs/1/a.bin")
    store.delete("jobs/1/a.bin")  # a missing key is no error
    with pytest.raises(FileNotFoundError):
        store.get_bytes("jobs/1/a.bin")
    store.delete_prefix("jobs")
    assert store.list_prefix("jobs") == [] and list(tmp_path.iterdir()) == [source]


def test_a_changed_object_is_refused_by_its_sha256(bucket_url: str, tmp_path: Path) -> None:
    store = open_store(tmp_path, bucket_url)
    payload = {"model": {"w": torch.ones(3)}, "epoch": 1}
    saved = store_checkpoint(store, "jobs/1/epoch-000001.pt", payload)
    assert fetch_checkpoint(store, saved.key, CPU, saved.sha256)["epoch"] == 1
    # Another writer (or bit rot) replaces the bytes behind the recorded digest.
    store.put_bytes(saved.key, store.get_bytes(saved.key) + b"tampered")
    with pytest.raises(CorruptArtifact, match="does not match its recorded sha256"):
        store.get_bytes(saved.key, saved.sha256)
    with pytest.raises(CorruptCheckpoint, match="jobs/1/epoch-000001.pt"):
        fetch_checkpoint(store, saved.key, CPU, saved.sha256)


def test_the_version_probe_sees_writes_here_at_once_and_elsewhere_soon(
    bucket_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(artifact_store, "REMOTE_STAMP_TTL_S", 0.2)
    here, elsewhere = open_store(tmp_path, bucket_url), RemoteStore(bucket_url)
    probe = here.version_probe("models/m.succeeded")
    assert probe() is None
    here.put_bytes("models/m.succeeded", b"1")
    first = probe()
    assert first is not None and probe() == first  # the second within the TTL: no request
    elsewhere.put_bytes("models/m.succeeded", b"2")  # another host's write
    time.sleep(0.25)
    assert probe() not in (None, first)


# The child uploads 30 MiB in 5 MiB parts (S3's smallest), one at a time, so the parent sees
# the multipart upload begun and kills the child long before its completion.
UPLOADER = textwrap.dedent(
    """
    import os, sys
    from torchkiln.service.store.artifact_store import RemoteStore
    store = RemoteStore(sys.argv[1], part_bytes=5 * 2**20, max_concurrency=1)
    store.put_bytes("jobs/7/epoch-000001.pt", os.urandom(30 * 2**20))
    """
)


def test_an_upload_killed_mid_way_leaves_no_object(bucket_url: str, tmp_path: Path) -> None:
    bucket = bucket_url.removeprefix("s3://").split("/")[0]
    s3 = boto3.client("s3")
    child = subprocess.Popen([sys.executable, "-c", UPLOADER, bucket_url], env=os.environ.copy())
    try:
        upload = None
        deadline = time.monotonic() + 30
        while upload is None and time.monotonic() < deadline and child.poll() is None:
            uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
            upload = next(iter(uploads), None)
            time.sleep(0.005)
        assert upload is not None, "the child never started its multipart upload"
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    store = open_store(tmp_path, bucket_url)
    assert not store.exists("jobs/7/epoch-000001.pt")
    assert store.list_prefix("jobs/7") == []
    # The job's worker, starting its next attempt, drops the unfinished upload's parts.
    store.remove_unfinished("jobs/7")
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_the_local_store_writes_whole_files_only(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put_bytes("jobs/1/a.pt", b"old")

    def half_then_crash(handle) -> None:  # noqa: ANN001
        handle.write(b"new, half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.put_file_with("jobs/1/a.pt", half_then_crash)
    assert store.get_bytes("jobs/1/a.pt") == b"old"
    assert store.list_prefix("jobs/1") == ["jobs/1/a.pt"]
    probe = store.version_probe("jobs/1/a.pt")
    before = probe()
    store.put_bytes("jobs/1/a.pt", b"old")
    assert probe() != before
