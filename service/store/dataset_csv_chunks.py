"""CSV text parsed on two cores: cut into chunks of whole rows, each chunk parsed by pyarrow
on a pool thread, the tables handed back in order. pyarrow's streaming reader parses one
block after another on one core; its whole-file reader uses every core but holds the whole
table. At most ``WORKERS + 1`` chunks are in memory here.

A chunk ends at a newline outside quotes: with pyarrow's defaults (quote ``"``, doubled to
escape it, no escape character) that is a newline with an even number of quotes before it
in the chunk, as every chunk starts outside quotes."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv

CHUNK_BYTES = 4 << 20
WORKERS = 2
QUOTE, NEWLINE = b'"', b"\n"


def row_chunks(stream: Any) -> Iterator[bytes]:
    """The stream's bytes in pieces of about ``CHUNK_BYTES`` that end at a row's end."""
    carry = b""
    while data := stream.read(CHUNK_BYTES):
        text = carry + data
        cut = _last_row_end(text)
        carry = text[cut:]
        if cut:
            yield text[:cut]
    if carry:
        yield carry


def _last_row_end(text: bytes) -> int:
    """Just past the last newline outside quotes; 0 if none."""
    quotes = text.count(QUOTE)
    end = len(text)
    while (at := text.rfind(NEWLINE, 0, end)) >= 0:
        quotes -= text.count(QUOTE, at, end)
        if quotes % 2 == 0:
            return at + 1
        end = at
    return 0


def parsed_batches(
    stream: Any,
    header: list[str],
    parse_options: pa_csv.ParseOptions,
    convert_options: pa_csv.ConvertOptions,
    *,
    has_header: bool = True,
) -> Iterator[pa.RecordBatch]:
    """The text's rows (its header row skipped, if it has one) as record batches, in order.
    Give every column's type in ``convert_options``: chunks inferring alone could disagree."""

    def parse(chunk: bytes, skip_rows: int) -> pa.Table:
        read_options = pa_csv.ReadOptions(
            use_threads=False, column_names=header, skip_rows=skip_rows
        )
        return pa_csv.read_csv(
            pa.py_buffer(chunk),
            read_options=read_options,
            parse_options=parse_options,
            convert_options=convert_options,
        )

    with ThreadPoolExecutor(WORKERS, thread_name_prefix="csv-chunk") as pool:
        waiting: deque[Future[pa.Table]] = deque()
        try:
            for index, chunk in enumerate(row_chunks(stream)):
                waiting.append(pool.submit(parse, chunk, 1 if index == 0 and has_header else 0))
                if len(waiting) >= WORKERS:
                    yield from waiting.popleft().result().to_batches()
            while waiting:
                yield from waiting.popleft().result().to_batches()
        finally:
            for future in waiting:  # an error or a consumer gone: no more parsing
                future.cancel()
