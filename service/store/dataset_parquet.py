"""A Parquet file written from record batches on a thread of its own, so the write (pyarrow
lets go of the GIL for it) runs beside the CSV parse and the column figures instead of after
them. At most one row group waits for it: memory stays bounded by about two row groups."""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

ROW_GROUP_BYTES = 8 << 20
_DONE = None


class Discard:
    """Takes the batches and keeps none: schema inference alone."""

    def __enter__(self) -> Discard:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def add(self, batch: pa.RecordBatch) -> None:
        pass


def parquet_writer(
    out: Path | None, schema: pa.Schema, **options: Any
) -> BackgroundParquetWriter | Discard:
    """A writer to ``out``, or without ``out`` one that discards."""
    return Discard() if out is None else BackgroundParquetWriter(out, schema, **options)


class BackgroundParquetWriter:
    """``add`` batches in row order inside ``with``; they go out as row groups of about
    ``ROW_GROUP_BYTES`` (rather than one per CSV block). A write error is raised by the
    next ``add`` or by leaving the block."""

    def __init__(self, out: Path, schema: pa.Schema, **options: Any) -> None:
        self._writer = pq.ParquetWriter(out, schema, **options)
        self._pending: list[pa.RecordBatch] = []
        self._pending_bytes = 0
        self._queue: queue.Queue[pa.Table | None] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._write, name="parquet-writer", daemon=True)

    def __enter__(self) -> BackgroundParquetWriter:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        try:
            if kind is None and self._pending:
                self._put(pa.Table.from_batches(self._pending))
        finally:
            self._pending = []
            self._queue.put(_DONE)
            self._thread.join()
            self._writer.close()
        if kind is None:
            self._raise()

    def add(self, batch: pa.RecordBatch) -> None:
        self._pending.append(batch)
        self._pending_bytes += batch.nbytes
        if self._pending_bytes >= ROW_GROUP_BYTES:
            self._put(pa.Table.from_batches(self._pending))
            self._pending, self._pending_bytes = [], 0

    def _put(self, table: pa.Table) -> None:
        self._raise()
        self._queue.put(table)

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _write(self) -> None:
        while (table := self._queue.get()) is not _DONE:
            if self._error is None:  # after an error, drain until told to stop
                try:
                    self._writer.write_table(table)
                except BaseException as error:  # noqa: BLE001 -- raised on the caller's thread
                    self._error = error
