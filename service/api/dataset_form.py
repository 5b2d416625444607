"""POST /datasets' multipart body, parsed as it streams: the ``file`` part's bytes go straight
to an upload sink (never whole in memory, nor spooled outside the datasets directory), the
``name`` and ``columns`` fields are kept, other parts are skipped."""

from __future__ import annotations

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from torchkiln.service.store.dataset_upload import UploadSink
from torchkiln.service.store.errors import InvalidInput, TorchkilnError, UnsupportedBody

MAX_NAME_BYTES = 1024
MAX_COLUMNS_BYTES = 64 * 1024


class BrokenForm(TorchkilnError):
    """A multipart body that does not parse (answered 400)."""


def form_boundary(content_type: str) -> bytes:
    mime, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if mime != b"multipart/form-data" or not boundary:
        raise UnsupportedBody(
            "send the dataset as multipart/form-data with a file field named 'file'"
        )
    return boundary


class DatasetForm:
    """Feed it the body chunk by chunk with ``write``; ``finish`` checks it was complete."""

    def __init__(self, boundary: bytes, sink: UploadSink) -> None:
        self.sink = sink
        self.filename: str | None = None
        self.name = bytearray()
        self.columns = bytearray()
        self._field, self._value = bytearray(), bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._target: str | None = None
        self._is_ended = False
        self._parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": self._part_begin,
                "on_header_field": lambda d, s, e: self._field.extend(d[s:e]),
                "on_header_value": lambda d, s, e: self._value.extend(d[s:e]),
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_end": self._end,
            },
        )

    def write(self, data: bytes) -> None:
        try:
            self._parser.write(data)
        except MultipartParseError as error:
            raise BrokenForm(f"the multipart body is broken: {error}") from None

    def finish(self) -> tuple[str | None, str | None]:
        """The file's name and the ``name`` field (None when absent)."""
        if not self._is_ended:
            raise BrokenForm("the multipart body ended early: send it whole")
        if self.filename is None:
            raise InvalidInput("send the dataset as a multipart file field named 'file'")
        name = bytes(self.name).decode("utf-8", "replace").strip() or None
        return self.filename, name

    def column_names(self) -> list[str] | None:
        """The ``columns`` field's comma-separated names (a header-less table's), if sent."""
        text = bytes(self.columns).decode("utf-8", "replace").strip()
        return [name.strip() for name in text.split(",")] if text else None

    def _part_begin(self) -> None:
        self._headers, self._target = {}, None

    def _header_end(self) -> None:
        self._headers[bytes(self._field).lower()] = bytes(self._value)
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        kind, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        field = options.get(b"name")
        if kind != b"form-data":
            return
        if field == b"file" and b"filename" in options and self.filename is None:
            self.filename = options[b"filename"].decode("utf-8", "replace")
            self._target = "file"
        elif field in (b"name", b"columns"):
            self._target = field.decode()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._target == "file":
            self.sink.write(data[start:end])
        elif self._target == "name" and len(self.name) < MAX_NAME_BYTES:
            self.name.extend(data[start:end])
        elif self._target == "columns":
            if len(self.columns) + end - start > MAX_COLUMNS_BYTES:
                raise InvalidInput(f"columns is longer than {MAX_COLUMNS_BYTES} bytes")
            self.columns.extend(data[start:end])

    def _end(self) -> None:
        self._is_ended = True
