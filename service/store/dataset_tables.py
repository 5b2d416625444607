"""Tables: a CSV/TSV (perhaps gzipped) or Parquet upload → ``table.parquet`` and its schema.

pyarrow parses the text a few MiB at a time (on two cores: ``dataset_csv_chunks``), every
column's type fixed from the first block; each piece goes to the per-column figures
(``dataset_columns``) and on to the Parquet writer (``dataset_parquet``), so a large file
never sits whole in memory and is read once. A Parquet upload's figures are read one column
at a time.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from torchkiln.service.store.dataset_columns import TableFigures, is_string, json_value
from torchkiln.service.store.dataset_csv_chunks import parsed_batches
from torchkiln.service.store.dataset_parquet import parquet_writer
from torchkiln.service.store.errors import DatasetRejected, NotATable

TABLE_FILE = "table.parquet"
PREVIEW_ROWS = 20
BLOCK_BYTES = 1 << 20
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
    open_text: Opener,
    delimiter: str,
    header: list[str],
    out: Path | None,
    *,
    has_header: bool = True,
) -> dict[str, Any]:
    """Write the text's rows to ``out`` as Parquet; the table's schema (schema.json's
    content), gathered on the way. pyarrow infers each column's type from the first block;
    a later value that does not fit widens that column and reads again. Without ``out``,
    the schema alone (schema inference, as the benchmark times it against pandas).
    ``has_header`` false: ``header`` is the client's names and the first row is data."""
    names = None if has_header else header
    types: dict[str, pa.DataType] = {}
    chunked = True
    for _ in range(2 * len(header) + 2):
        try:
            types = _first_block_types(open_text, delimiter, types, names)
            return _checked(_read_table(open_text, delimiter, types, out, chunked, names))
        except pa.ArrowInvalid as error:
            message = str(error)
            match = CONVERSION.search(message)
            if "UTF8" in message or "UTF-8" in message:  # a cut at a newline splits no character
                raise DatasetRejected(
                    "the file has bytes that are not UTF-8: save it as UTF-8"
                ) from None
            if match is not None and int(match.group(1)) < len(header):
                name = header[int(match.group(1))]
                types[name] = pa.float64() if match.group(2) == "int64" else pa.string()
            elif chunked:
                # Any other refusal is pyarrow's own reader's to give, block by block as
                # ever: the chunks' cut is then no suspect.
                chunked = False
            elif (match := RAGGED.search(message)) is not None:
                raise DatasetRejected(_ragged_message(open_text, delimiter, len(header))) from None
            else:
                raise DatasetRejected(f"the table cannot be read: {message}") from None
        except (OSError, EOFError, zlib.error, pa.ArrowException) as error:  # broken gzip
            raise DatasetRejected(f"the table cannot be read: {error}") from None
    raise DatasetRejected("the column types cannot be inferred: check the file is one table")


def _first_block_types(
    open_text: Opener,
    delimiter: str,
    types: dict[str, pa.DataType],
    names: list[str] | None = None,
) -> dict[str, pa.DataType]:
    """Every column's type: ``types``, and for the others what pyarrow infers from the first
    block (null for a column empty there: a value later widens it to text, as ever)."""
    with open_text() as stream:
        schema = _open_reader(stream, delimiter, types, names).schema
    return {**{f.name: f.type for f in schema}, **types}


def _options(
    delimiter: str, types: dict[str, pa.DataType]
) -> tuple[pa_csv.ParseOptions, pa_csv.ConvertOptions]:
    return (
        pa_csv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        pa_csv.ConvertOptions(column_types=types, strings_can_be_null=True),
    )


def _open_reader(
    stream: Any, delimiter: str, types: dict[str, pa.DataType], names: list[str] | None = None
) -> pa_csv.CSVStreamingReader:
    """``names``: the columns of a text without a header row (its first row is data)."""
    parse_options, convert_options = _options(delimiter, types)
    read_options = pa_csv.ReadOptions(block_size=BLOCK_BYTES, use_threads=False, column_names=names)
    return pa_csv.open_csv(
        stream,
        read_options=read_options,
        parse_options=parse_options,
        convert_options=convert_options,
    )


def _read_table(
    open_text: Opener,
    delimiter: str,
    types: dict[str, pa.DataType],
    out: Path | None,
    chunked: bool,
    names: list[str] | None = None,
) -> dict[str, Any]:
    """The rows through the column figures into ``out``: parsed in chunks on two cores, or
    (``chunked`` false) by pyarrow's streaming reader on one."""
    schema = pa.schema(list(types.items()))
    figures = TableFigures(schema)
    strings = [f.name for f in schema if is_string(f.type)]
    with open_text() as stream:
        if chunked:
            batches: Iterable[pa.RecordBatch] = parsed_batches(
                stream, schema.names, *_options(delimiter, types), has_header=names is None
            )
        else:
            batches = _open_reader(stream, delimiter, types, names)
        # Dictionary pages only pay for strings; on a column of a million distinct floats
        # building one, then falling back, doubles the write.
        with parquet_writer(out, schema, use_dictionary=strings) as writer:
            for batch in batches:
                writer.add(batch)
                figures.add_batch(batch)
    pa.default_memory_pool().release_unused()
    return figures.schema()


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
    figures = TableFigures(parquet.schema_arrow)
    figures.rows = parquet.metadata.num_rows
    for column in figures.columns:
        # Row group by row group: reading a whole column concatenates it, twice its size.
        for group in range(parquet.num_row_groups):
            part = parquet.read_row_group(group, columns=[column.name], use_threads=False)
            for chunk in part.column(0).chunks:
                column.add(chunk)
        # Hand the column's pages back to the OS now: the allocator would keep them, and a
        # server's memory would grow by the widest column of the largest upload.
        pa.default_memory_pool().release_unused()
    return _checked(figures.schema())


def _checked(schema: dict[str, Any]) -> dict[str, Any]:
    if schema["rows"] == 0:
        raise DatasetRejected("the table has a header but no rows: add data rows")
    return schema


def preview_rows(path: Path, rows: int = PREVIEW_ROWS) -> list[dict[str, Any]]:
    if not path.exists():  # its folder removed by hand: the row still answers
        return []
    batch = next(pq.ParquetFile(path).iter_batches(batch_size=rows), None)
    if batch is None:
        return []
    return [{k: json_value(v) for k, v in row.items()} for row in batch.to_pylist()]
