"""Row ids from query strings and headers: plain ASCII digits within the id range only."""

from __future__ import annotations

from torchkiln.service.store.tables import MAX_ROW_ID

# str.isdigit() also takes "²" and other digits int() refuses, and int() refuses over 4,300
# digits; checking the length first keeps both from raising.
_MAX_DIGITS = len(str(MAX_ROW_ID))


def parse_row_id(text: str, *, minimum: int = 1) -> int | None:
    """``text`` as an id from ``minimum`` to MAX_ROW_ID, else None."""
    if not (text.isascii() and text.isdigit() and len(text) <= _MAX_DIGITS):
        return None
    value = int(text)
    return value if minimum <= value <= MAX_ROW_ID else None
