"""Tables: a CSV/TSV (perhaps gzipped) or Parquet upload → ``table.parquet`` and its schema.

pyarrow reads the text block by block and each block goes straight to the Parquet writer,
so a large file never sits whole in memory; the per-column figures are then read back one
column at a time.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import re
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from torchkiln.service.store.errors import DatasetRejected, NotATable

TABLE_FILE = "table.parquet"
# Strings with more distinct values than this are free text, which models cannot use.
MAX_CATEGORIES = 1000
# Strings: if this many rows already hold more than MAX_CATEGORIES values, count by sorting.
DISTINCT_PROBE_ROWS = 65536
EXAMPLES = 5
PREVIEW_ROWS = 20
BLOCK_BYTES = 1 << 20
ROW_GROUP_BYTES = 8 << 20
HEAD_BYTES = 64 * 1024
DELIMITERS = ",\t;|"
CONVERSION = re.compile(r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to (\w+)")
RAGGED = re.compile(r"Expected (\d+) columns, got (\d+)")

Opener = Callable[[], Any]


def text_opener(path: Path, gzipped: bool) -> Opener:
    """A fresh byte stream of the upload's text each call, gunzipped if asked (by Python's
    gzip: it refuses a truncated stream, where pyarrow's may end quietly at the break)."""
    if gzipped:
        return lambda: gzip.open(path)
    return lambda: pa.input_stream(str(path))


def text_head(open_text: Opener) -> bytes:
    try:
        with open_text() as stream:
            return stream.read(HEAD_BYTES)
    except (OSError, EOFError, zlib.error, pa.ArrowInvalid) as error:
        raise DatasetRejected(f"the gzip stream is broken ({error}): upload it again") from None


def sniff_text(head: bytes, columns: list[str] | None = None) -> tuple[str, list[str]]:
    """The delimiter and the header's column names (``columns`` where the text has no header
    row); refuses binary, non-UTF-8 and empty text."""
    if b"\x00" in head:
        raise NotATable(
            "the file is binary, not a table: upload CSV or TSV text (optionally gzipped), "
            "Parquet, or a ZIP/tar archive of image folders"
        )
    # A head cut mid-character or mid-line: keep its complete lines only.
    complete = head if len(head) < HEAD_BYTES else head[: head.rfind(b"\n") + 1] or head
    try:
        text = complete.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise NotATable(
            f"the file is not UTF-8 text (byte {error.start}): save it as UTF-8 CSV or TSV"
        ) from None
    if not text.strip():
        raise DatasetRejected("the file is empty: upload a CSV or TSV with a header row")
    lines = text.splitlines()
    try:
        delimiter = csv.Sniffer().sniff("\n".join(lines[:50]), delimiters=DELIMITERS).delimiter
    except csv.Error:
        delimiter = max(DELIMITERS, key=lines[0].count)
    try:
        header = next(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as error:
        raise DatasetRejected(f"the header row cannot be read: {error}") from None
    if columns is not None:
        if len(columns) != len(header):
            raise DatasetRejected(
                f"columns names {len(columns)} columns but the first row has {len(header)} "
                "fields: name each column once"
            )
        check_names(columns, given=True)
        return delimiter, columns
    check_names(header)
    return delimiter, header


def check_names(names: list[str], *, given: bool = False) -> None:
    """A header row of distinct, non-empty names; a header of numbers is data, not names
    (``given``: the client's ``columns``, which may be anything but empty or repeated)."""
    for index, name in enumerate(names, start=1):
        if not name.strip():
            raise DatasetRejected(f"column {index} has no name: give every column a header")
    seen: set[str] = set()
    duplicates = sorted({n for n in names if n in seen or seen.add(n)})  # type: ignore[func-returns-value]
    if duplicates:
        raise DatasetRejected(f"duplicate column names {duplicates}: rename them to be unique")
    if not given and all(_is_number(name) for name in names):
        raise DatasetRejected(
            "the first row is numbers, not column names: add a header row naming the columns,"
            " or send their names in the form field columns (comma-separated: a,b,label)"
        )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def convert_text(
    open_text: Opener, delimiter: str, header: list[str], out: Path, *, has_header: bool = True
) -> None:
    """Write the text's rows to ``out`` as Parquet. pyarrow infers each column's type from
    the first block; a later value that does not fit widens that column and reads again."""
    types: dict[str, pa.DataType] = {}
    for _ in range(2 * len(header) + 1):
        try:
            names = None if has_header else header
            _write_parquet(open_text, delimiter, types, out, names)
            return
        except pa.ArrowInvalid as error:
            message = str(error)
            match = CONVERSION.search(message)
            if match is not None and int(match.group(1)) < len(header):
                name = header[int(match.group(1))]
                types[name] = pa.float64() if match.group(2) == "int64" else pa.string()
            elif (match := RAGGED.search(message)) is not None:
                raise DatasetRejected(_ragged_message(open_text, delimiter, len(header))) from None
            elif "UTF8" in message or "UTF-8" in message:
                raise DatasetRejected(
                    "the file has bytes that are not UTF-8: save it as UTF-8"
                ) from None
            else:
                raise DatasetRejected(f"the table cannot be read: {message}") from None
        except (OSError, EOFError, zlib.error, pa.ArrowException) as error:  # broken gzip
            raise DatasetRejected(f"the table cannot be read: {error}") from None
    raise DatasetRejected("the column types cannot be inferred: check the file is one table")


def _write_parquet(
    open_text: Opener,
    delimiter: str,
    types: dict[str, pa.DataType],
    out: Path,
    names: list[str] | None = None,
) -> None:
    """``names``: the columns of a text without a header row (its first row is data)."""
    with open_text() as stream:
        reader = pa_csv.open_csv(
            stream,
            read_options=pa_csv.ReadOptions(
                block_size=BLOCK_BYTES, use_threads=False, column_names=names
            ),
            parse_options=pa_csv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(column_types=types, strings_can_be_null=True),
        )
        strings = [f.name for f in reader.schema if _is_string(f.type)]
        # Dictionary pages only pay for strings; on a column of a million distinct floats
        # building one, then falling back, doubles the write.
        with pq.ParquetWriter(out, reader.schema, use_dictionary=strings) as writer:
            pending: list[pa.RecordBatch] = []
            for batch in reader:
                pending.append(batch)
                # Row groups of about ROW_GROUP_BYTES rather than one per 1 MiB block.
                if sum(b.nbytes for b in pending) >= ROW_GROUP_BYTES:
                    writer.write_table(pa.Table.from_batches(pending))
                    pending = []
            if pending:
                writer.write_table(pa.Table.from_batches(pending))
    pa.default_memory_pool().release_unused()


def _ragged_message(open_text: Opener, delimiter: str, width: int) -> str:
    """Which line has the wrong number of fields: pyarrow knows the row, not its line."""
    with open_text() as stream:
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="")
        reader = csv.reader(text, delimiter=delimiter)
        try:
            for row in reader:
                if row and len(row) != width:  # pyarrow skips empty lines too
                    return (
                        f"line {reader.line_num} has {len(row)} fields but the header has "
                        f"{width} columns: fix that row (quote fields that contain the delimiter)"
                    )
        except csv.Error as error:
            return f"line {reader.line_num} cannot be read ({error}): fix that row"
    return f"a row does not have the header's {width} columns: fix it"


def check_parquet(path: Path) -> None:
    try:
        names = pq.ParquetFile(path).schema_arrow.names
    except (pa.ArrowException, OSError) as error:
        raise DatasetRejected(f"not a readable Parquet file ({error}): upload it again") from None
    check_names(names)


def table_schema(path: Path) -> dict[str, Any]:
    """schema.json's content for a Parquet table, one column in memory at a time."""
    parquet = pq.ParquetFile(path)
    rows = parquet.metadata.num_rows
    if rows == 0:
        raise DatasetRejected("the table has a header but no rows: add data rows")
    columns = []
    for name in parquet.schema_arrow.names:
        columns.append(column_schema(_read_column(parquet, name), name))
        # Hand the column's pages back to the OS now: the allocator would keep them, and a
        # server's memory would grow by the widest column of the largest upload.
        pa.default_memory_pool().release_unused()
    return {"kind": "table", "rows": rows, "columns": columns}


def _read_column(parquet: pq.ParquetFile, name: str) -> pa.ChunkedArray:
    # Row group by row group: reading a whole column concatenates it, twice its size.
    chunks = [
        chunk
        for group in range(parquet.num_row_groups)
        for chunk in parquet.read_row_group(group, columns=[name], use_threads=False)
        .column(0)
        .chunks
    ]
    return pa.chunked_array(chunks, type=parquet.schema_arrow.field(name).type)


def column_schema(column: pa.ChunkedArray, name: str) -> dict[str, Any]:
    kind = _kind(column.type)
    values = column.drop_null()
    nans = 0
    if pa.types.is_floating(column.type):
        is_nan = pc.is_nan(values)
        nans = pc.sum(is_nan).as_py() or 0
        values = values.filter(pc.invert(is_nan)) if nans else values
    distinct, uniques = _distinct(values, kind)
    if kind == "categorical" and distinct > MAX_CATEGORIES:
        kind = "text"
    try:
        head = pc.unique(values.slice(0, 5000)).to_pylist()
    except pa.ArrowNotImplementedError:
        head = [str(v) for v in values.slice(0, EXAMPLES).to_pylist()]
    entry: dict[str, Any] = {
        "name": name,
        "type": kind,
        "missing": column.null_count + nans,
        "distinct": distinct,
        "examples": [json_value(v) for v in head][:EXAMPLES],
    }
    if kind in ("categorical", "boolean") and uniques is not None:
        entry["categories"] = sorted(_category(v) for v in uniques.to_pylist())
    return entry


def _distinct(values: pa.ChunkedArray, kind: str) -> tuple[int, pa.Array | None]:
    """How many distinct values (no nulls or NaNs among them), and the values themselves
    when there are few. Counted by sorting where there are many: a hash table of a million
    distinct values costs several times the column's memory."""
    if len(values) == 0:
        return 0, None
    dtype = values.type
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype):
        ordered = np.sort(values.to_numpy())
        return int(np.count_nonzero(ordered[1:] != ordered[:-1])) + 1, None
    try:
        probe = pc.unique(values.slice(0, DISTINCT_PROBE_ROWS))
        if len(probe) <= MAX_CATEGORIES:
            uniques = pc.unique(values)
            if len(uniques) <= MAX_CATEGORIES:
                return len(uniques), uniques
            return len(uniques), None
        ordered = values.take(pc.sort_indices(values))
        changes = pc.not_equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1))
        return (pc.sum(changes).as_py() or 0) + 1, None
    except pa.ArrowNotImplementedError:  # nested columns (lists, structs): text anyway
        return 0, None


def _kind(dtype: pa.DataType) -> str:
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if pa.types.is_boolean(dtype):
        return "boolean"
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "numeric"
    return "categorical" if _is_string(dtype) else "text"


def _is_string(dtype: pa.DataType) -> bool:
    return pa.types.is_string(dtype) or pa.types.is_large_string(dtype)


def _category(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def json_value(value: Any) -> Any:
    """A cell as JSON: numbers, strings, booleans and null as they are, NaN as null, the
    rest (dates, decimals, bytes) as their text."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


def preview_rows(path: Path, rows: int = PREVIEW_ROWS) -> list[dict[str, Any]]:
    if not path.exists():  # its folder removed by hand: the row still answers
        return []
    batch = next(pq.ParquetFile(path).iter_batches(batch_size=rows), None)
    if batch is None:
        return []
    return [{k: json_value(v) for k, v in row.items()} for row in batch.to_pylist()]
