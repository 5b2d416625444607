"""POST/GET/DELETE /datasets over the app: every accepted format, and every refusal with a
message saying what to fix and nothing left on disk."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from torchkiln.service.api.app import create_app
from torchkiln.service.store.settings import Settings


def png(colour: int = 0, size: tuple[int, int] = (4, 3)) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def tarred(members: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def upload(client: TestClient, data: bytes, filename: str = "data.csv", **form: str) -> Any:
    return client.post("/datasets", files={"file": (filename, data)}, data=form)


def leftovers(settings: Settings) -> list[str]:
    folder = settings.datasets_dir
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_csv_becomes_a_table_with_its_schema(client: TestClient, settings: Settings) -> None:
    body = b"age,city,smoker,note\n31,Oslo,true,a\n45,Rome,false,\n52,Oslo,true,c\n"
    created = upload(client, body, name="people")
    assert created.status_code == 201, created.text
    dataset = created.json()
    assert (dataset["name"], dataset["kind"], dataset["format"]) == ("people", "table", "csv")
    assert dataset["bytes"] == len(body)
    schema = dataset["schema"]
    assert schema["rows"] == 3
    age, city, smoker, note = schema["columns"]
    assert (age["type"], age["distinct"], age["examples"]) == ("numeric", 3, [31, 45, 52])
    assert (city["type"], city["categories"]) == ("categorical", ["Oslo", "Rome"])
    assert (smoker["type"], smoker["categories"]) == ("boolean", ["false", "true"])
    assert note["missing"] == 1
    folder = settings.datasets_dir / str(dataset["id"])
    assert sorted(p.name for p in folder.iterdir()) == ["schema.json", "table.parquet"]

    again = upload(client, body, filename="other.csv")
    assert (again.status_code, again.json()["id"]) == (200, dataset["id"])
    read = client.get(f"/datasets/{dataset['id']}").json()
    assert read["preview"][1] == {"age": 45, "city": "Rome", "smoker": False, "note": None}
    listed = client.get("/datasets", params={"limit": 1}).json()
    assert listed["count"] == 1 and listed["data"][0]["sha256"] == dataset["sha256"]

    assert client.delete(f"/datasets/{dataset['id']}").status_code == 204
    assert client.get(f"/datasets/{dataset['id']}").status_code == 404
    assert client.delete(f"/datasets/{dataset['id']}").status_code == 404
    assert leftovers(settings) == []


def test_tsv_with_a_bom_and_quotes_gzip_and_parquet(client: TestClient, tmp_path: Path) -> None:
    tsv = '\ufeffid\ttext\n1\t"a\tquoted\nvalue"\n2\tplain\n'.encode()
    answer = upload(client, tsv, "t.tsv").json()
    assert answer["format"] == "tsv"
    assert [c["name"] for c in answer["schema"]["columns"]] == ["id", "text"]
    assert answer["schema"]["rows"] == 2

    gz = gzip.compress(b"x;y\n1;2.5\n3;4\n")
    answer = upload(client, gz, "s.csv.gz").json()
    assert (answer["format"], answer["schema"]["rows"]) == ("csv", 2)

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"v": [1.0, None, float("nan")], "k": ["a", "b", "a"]}), path)
    answer = upload(client, path.read_bytes(), "t.parquet").json()
    v, k = answer["schema"]["columns"]
    assert answer["format"] == "parquet" and v["missing"] == 2 and k["distinct"] == 2


def test_a_headerless_table_takes_its_names_from_columns(
    client: TestClient, settings: Settings
) -> None:
    body = gzip.compress(b"0.5,-1,1\n0.25,0.75,0\n1,2,1\n")
    answer = upload(client, body, "d.csv.gz", columns="Glucose, Age ,Outcome")
    assert answer.status_code == 201, answer.text
    schema = answer.json()["schema"]
    assert [c["name"] for c in schema["columns"]] == ["Glucose", "Age", "Outcome"]
    assert schema["rows"] == 3  # the first row is data
    for columns, words in (("a,b", "names 2 columns but the first row has 3"), ("a,a,b", "dup")):
        refused = upload(client, b"1,2,3\n4,5,6\n", columns=columns)
        assert refused.status_code == 422 and words in refused.json()["detail"], refused.text
    archive = upload(client, zipped({"a/1.png": png(), "b/2.png": png(1)}), "i.zip", columns="x")
    assert archive.status_code == 422 and "header-less CSV/TSV" in archive.json()["detail"]
    assert leftovers(settings) == ["1"]


def test_image_folders_from_zip_and_tar(client: TestClient) -> None:
    members = {
        "digits/train/cat/1.png": png(1),
        "digits/train/dog/2.png": png(2),
        "digits/train/dog/3.png": png(3, (5, 5)),
        "digits/val/cat/4.png": png(4),
        "__MACOSX/digits/._1.png": b"junk",
    }
    answer = upload(client, zipped(members), "d.zip").json()
    assert (answer["kind"], answer["format"]) == ("images", "zip")
    schema = answer["schema"]
    assert schema["classes"] == [{"name": "cat", "count": 2}, {"name": "dog", "count": 2}]
    assert schema["splits"]["train"] == {"images": 3, "classes": {"cat": 1, "dog": 2}}
    assert schema["sizes"][0] == [4, 3] and schema["modes"] == ["L"]
    preview = client.get(f"/datasets/{answer['id']}").json()["preview"]
    assert preview[0] == {"class": "cat", "path": "images/train/cat/1.png"}

    answer = upload(client, tarred({"a/1.png": png(5), "b/2.png": png(6)}), "d.tar.gz").json()
    assert answer["format"] == "tar" and answer["schema"]["splits"] == {}


def link_tar(kind: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("a/evil")
        info.type, info.linkname = kind, "/etc/passwd"
        archive.addfile(info)
    return buffer.getvalue()


ROWS = b"a,b\n" + b"".join(b"%d,%d\n" % (i, i * 7919 % 10007) for i in range(5000))
BAD_UPLOADS = [
    (b"", "empty", 422, "the file is empty"),
    (b"\x00\x01\x02\xff binary", "binary", 415, "binary, not a table"),
    (b"a,b\n1,2\n3,4,5\n", "ragged", 422, "line 3 has 3 fields"),
    (b"1,2\n3,4\n", "no header", 422, "add a header row"),
    (b"a,b,a\n1,2,3\n", "duplicate names", 422, "duplicate column names ['a']"),
    (b"a,,c\n1,2,3\n", "unnamed column", 422, "column 2 has no name"),
    (b"a,b\n", "header only", 422, "no rows"),
    (b"a,b\n\xff\xfe,1\n", "not utf-8", 415, "not UTF-8"),
    (b"PAR1 not really", "broken parquet", 422, "not a readable Parquet"),
    (zipped({"../x/1.png": png()}), "zip-slip", 422, "outside the archive"),
    (zipped({"/abs/1.png": png()}), "absolute", 422, "absolute path"),
    (link_tar(tarfile.SYMTYPE), "symlink", 422, "link or device"),
    (link_tar(tarfile.LNKTYPE), "hardlink", 422, "link or device"),
    (zipped({"a/1.png": png(), "b/2.png": b"not a png"}), "undecodable", 422, "b/2.png"),
    (zipped({"a/1.png": png(), "a/2.png": png(1)}), "one class", 422, "at least two class"),
    (zipped({"a/1.png": png(), "b/c/d/2.png": png()}), "mixed depth", 422, "does not fit"),
    (b"PK\x03\x04 truncated", "broken zip", 422, "archive is broken"),
    (
        gzip.compress(ROWS)[: len(gzip.compress(ROWS)) // 2],
        "cut gzip",
        422,
        "gzip stream is broken",
    ),
]


def test_bad_uploads_say_what_to_fix_and_leave_nothing(
    client: TestClient, settings: Settings
) -> None:
    # One app for all of them: a fresh app a case would cost more than the cases.
    for data, case, expected_status, words in BAD_UPLOADS:
        answer = upload(client, data)
        assert answer.status_code == expected_status, (case, answer.text)
        assert words in answer.json()["detail"], (case, answer.text)
    assert leftovers(settings) == []


@pytest.fixture
def small_client(settings: Settings) -> Iterator[TestClient]:
    limited = settings.model_copy(update={"max_dataset_bytes": 4000, "max_decoded_bytes": 3000})
    with TestClient(create_app(limited)) as test_client:
        yield test_client


def test_size_caps_and_archive_bombs(small_client: TestClient, settings: Settings) -> None:
    too_big = upload(small_client, b"a,b\n" + b"1,2\n" * 2000)
    assert too_big.status_code == 413 and "MAX_DATASET_BYTES" in too_big.json()["detail"]
    # About 1 KB compressed, 3 MB unpacked.
    bomb = zipped({"a/1.png": b"\0" * 3_000_000, "b/2.png": png()})
    refused = upload(small_client, bomb, "bomb.zip")
    assert refused.status_code == 422 and "unpacks to more than" in refused.json()["detail"]
    assert leftovers(settings) == []


def test_the_form_must_carry_a_file(client: TestClient) -> None:
    assert client.post("/datasets", json={"file": "x"}).status_code == 415
    missing = client.post("/datasets", data={"name": "x"}, files={"other": ("a", b"1")})
    assert missing.status_code == 422 and "field named 'file'" in missing.json()["detail"]
