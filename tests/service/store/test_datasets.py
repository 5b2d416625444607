"""The datasets store: lookup for submit-time validation, in_use for DELETE, type widening,
capped distinct counts, the background Parquet writer."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from torchkiln.service.store import (
    dataset_columns,
    dataset_csv_chunks,
    dataset_parquet,
    dataset_tables,
    datasets,
)
from torchkiln.service.store.db import read_session, write_session
from torchkiln.service.store.errors import DatasetRejected
from torchkiln.service.store.jobs import enqueue_job
from torchkiln.service.store.states import JobState
from torchkiln.service.store.tables import Dataset, Job


def add_dataset(engine: Engine, sha256: str) -> int:
    with write_session(engine) as session:
        dataset = Dataset(
            name="d", kind="table", format="csv", sha256=sha256, size_bytes=3,
            data_schema={"kind": "table", "rows": 1, "columns": []},
        )  # fmt: skip
        session.add(dataset)
        session.flush()
        return dataset.id  # type: ignore[return-value]


def add_job(engine: Engine, dataset_ids: list[int], status: JobState) -> int:
    lineage = {"datasets": [{"id": i, "role": "train"} for i in dataset_ids]}
    with write_session(engine) as session:
        job = enqueue_job(
            session=session,
            model="linear",
            params={"epochs": 1, "seed": 0, "lineage": lineage},
            device="auto",
            priority=0,
            max_attempts=1,
        )
        job.status = status
        return job.id  # type: ignore[return-value]


def test_lookup_names_the_dataset_or_raises(engine: Engine) -> None:
    dataset_id = add_dataset(engine, "a" * 64)
    with read_session(engine) as session:
        found = datasets.lookup_in(session)(dataset_id)
        assert found == {
            "id": dataset_id,
            "name": "d",
            "sha256": "a" * 64,
            "kind": "table",
            "schema": {"kind": "table", "rows": 1, "columns": []},
        }
        with pytest.raises(LookupError, match="upload one with POST /datasets"):
            datasets.lookup(session, dataset_id + 1)


def test_only_queued_and_running_jobs_hold_a_dataset(engine: Engine, tmp_path: Path) -> None:
    held, free = add_dataset(engine, "b" * 64), add_dataset(engine, "c" * 64)
    running = add_job(engine, [held], JobState.RUNNING)
    add_job(engine, [free], JobState.SUCCEEDED)
    with read_session(engine) as session:
        assert datasets.in_use(session, held) == [running]
        assert datasets.in_use(session, free) == []
    with pytest.raises(datasets.DatasetInUse, match=f"job\\(s\\) {running}"):
        datasets.delete_dataset(engine, tmp_path, held)
    datasets.delete_dataset(engine, tmp_path, free)
    with write_session(engine) as session:
        session.execute(sa.update(Job).values(status=JobState.CANCELLED))
    datasets.delete_dataset(engine, tmp_path, held)
    # AUTOINCREMENT: a new dataset never takes a deleted one's id.
    assert add_dataset(engine, "d" * 64) > free


def test_a_column_widens_when_a_later_block_does_not_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dataset_tables, "BLOCK_BYTES", 64)
    source = tmp_path / "t.csv"
    source.write_text("n,m\n" + "1,2\n" * 40 + "1.5,x\n")
    out = tmp_path / "t.parquet"
    opener = dataset_tables.text_opener(source, gzipped=False)
    dataset_tables.convert_text(opener, ",", ["n", "m"], out)
    n, m = dataset_tables.table_schema(out)["columns"]
    assert (n["type"], n["distinct"], m["type"]) == ("numeric", 2, "categorical")


def test_distinct_counts_stop_past_the_cap_the_same_from_csv_and_parquet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dataset_tables, "BLOCK_BYTES", 128)  # several blocks
    monkeypatch.setattr(dataset_columns, "DISTINCT_CAP", 10)
    rows = [f"{i % 5},{i / 7:.4f},s{i},{'abc'[i % 3] if i != 4 else ''}" for i in range(60)]
    source = tmp_path / "t.csv"
    source.write_text("k,f,s,c\n" + "\n".join(rows) + "\n")
    out = tmp_path / "t.parquet"
    streamed = dataset_tables.convert_text(
        dataset_tables.text_opener(source, gzipped=False), ",", ["k", "f", "s", "c"], out
    )
    assert dataset_tables.table_schema(out) == streamed
    k, f, s, c = streamed["columns"]
    assert (k["type"], k["distinct"], "distinct_capped" in k) == ("numeric", 5, False)
    assert (f["type"], f["distinct_capped"], f["distinct"]) == ("numeric", True, 11)
    assert f["examples"] == [0.0, 0.1429, 0.2857, 0.4286, 0.5714]
    assert (s["type"], s["distinct_capped"], "categories" in s) == ("text", True, False)
    assert (c["categories"], c["missing"], c["distinct"]) == (["a", "b", "c"], 1, 3)
    # Schema inference alone: the same figures, no file.
    assert (
        dataset_tables.convert_text(
            dataset_tables.text_opener(source, gzipped=False), ",", ["k", "f", "s", "c"], None
        )
        == streamed
    )


def test_a_background_write_error_reaches_the_caller(tmp_path: Path) -> None:
    schema = pa.schema([("a", pa.int64())])
    wrong = pa.record_batch([pa.array(["x"])], names=["a"])  # raised by add or on leaving
    with pytest.raises(ValueError, match="schema does not match"):  # noqa: PT012
        with dataset_parquet.BackgroundParquetWriter(tmp_path / "w.parquet", schema) as writer:
            writer.add(wrong)


def test_chunks_cut_between_rows_never_inside_quotes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dataset_csv_chunks, "CHUNK_BYTES", 16)  # cuts land everywhere
    rows = [f'{i},"line {i}\nstill, ""{i}"""' for i in range(40)]
    source = tmp_path / "q.csv"
    source.write_bytes(("\ufeffn,text\r\n" + "\r\n".join(rows) + "\r\n").encode())
    with source.open("rb") as stream:
        assert len(list(dataset_csv_chunks.row_chunks(stream))) > 20
    parse, convert = dataset_tables._options(",", {"n": pa.int64(), "text": pa.string()})
    with source.open("rb") as stream:
        table = pa.Table.from_batches(
            dataset_csv_chunks.parsed_batches(stream, ["n", "text"], parse, convert)
        )
    assert table.column("n").to_pylist() == list(range(40))
    assert table.column("text")[7].as_py() == 'line 7\nstill, "7"'


def test_bytes_past_the_first_block_that_are_not_utf8_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dataset_tables, "BLOCK_BYTES", 64)  # in it, they would make b binary
    source = tmp_path / "bad.csv"
    source.write_bytes(b"a,b\n" + b"1,x\n" * 40 + b"2,\xff\xfe\n")
    opener = dataset_tables.text_opener(source, gzipped=False)
    with pytest.raises(DatasetRejected, match="not UTF-8"):
        dataset_tables.convert_text(opener, ",", ["a", "b"], None)
