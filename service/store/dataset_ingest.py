"""What an upload is (by its first bytes, not its name) and its conversion into a dataset
folder: ``table.parquet`` or ``images/``, and ``schema.json``."""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchkiln.service.store import dataset_archives, dataset_tables
from torchkiln.service.store.dataset_archives import ArchiveLimits
from torchkiln.service.store.errors import DatasetRejected

SCHEMA_FILE = "schema.json"
GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
TAR_MAGIC_AT, TAR_MAGIC = 257, b"ustar"
HEAD_BYTES = 1024


@dataclass(frozen=True)
class Ingested:
    kind: str  # "table" | "images"
    format: str  # "csv" | "tsv" | "parquet" | "zip" | "tar"
    schema: dict[str, Any]


def ingest(
    upload: Path, folder: Path, limits: ArchiveLimits, *, columns: list[str] | None = None
) -> Ingested:
    """Convert ``upload`` into the dataset folder ``folder`` (created here); refusals are
    ``DatasetRejected``/``NotATable`` saying what to fix. ``columns`` names the columns of a
    CSV/TSV that has no header row."""
    folder.mkdir()
    fmt = sniff_format(upload)
    if columns is not None and fmt not in ("text", "gzip"):
        raise DatasetRejected(
            f"columns names a header-less CSV/TSV's columns; this upload is {fmt}: leave it out"
        )
    if fmt in ("zip", "tar"):
        schema = dataset_archives.unpack(upload, fmt, folder, limits)
        kind = "images"
    else:
        table = folder / dataset_tables.TABLE_FILE
        if fmt == "parquet":
            dataset_tables.check_parquet(upload)
            upload.rename(table)
            schema = dataset_tables.table_schema(table)
        else:
            open_text = dataset_tables.text_opener(upload, gzipped=fmt == "gzip")
            head = dataset_tables.text_head(open_text)
            delimiter, header = dataset_tables.sniff_text(head, columns)
            schema = dataset_tables.convert_text(
                open_text, delimiter, header, table, has_header=columns is None
            )
            fmt = "tsv" if delimiter == "\t" else "csv"
        kind = "table"
    (folder / SCHEMA_FILE).write_text(json.dumps(schema))
    return Ingested(kind=kind, format=fmt, schema=schema)


def sniff_format(upload: Path) -> str:
    """zip, tar, parquet, gzip (text inside) or text, from the first bytes."""
    with open(upload, "rb") as file:
        head = file.read(HEAD_BYTES)
    if not head:
        raise DatasetRejected("the file is empty: upload a table or an archive of images")
    if head.startswith(ZIP_MAGICS):
        return "zip"
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    if head.startswith(GZIP_MAGIC):
        return "tar" if _is_tar(_gunzipped_head(upload)) else "gzip"
    return "tar" if _is_tar(head) else "text"


def _is_tar(head: bytes) -> bool:
    return head[TAR_MAGIC_AT : TAR_MAGIC_AT + len(TAR_MAGIC)] == TAR_MAGIC


def _gunzipped_head(upload: Path) -> bytes:
    try:
        with gzip.open(upload) as stream:
            return stream.read(HEAD_BYTES)
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetRejected(f"the gzip file is broken ({error}): upload it again") from None
