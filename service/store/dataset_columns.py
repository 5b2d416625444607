"""A table's per-column figures (type, missing, distinct, examples, categories), gathered
batch by batch as the rows stream past, so the schema costs no second read of the table.

Distinct values are counted exactly up to ``DISTINCT_CAP`` and then no further: past it a
string column is free text and a number is no class label, so an exact count of a million
distinct floats (a sort or a hash table the size of the column) would buy nothing. Such a
column's ``distinct`` is ``DISTINCT_CAP + 1``, a lower bound ("at least"), and its
``distinct_capped`` is true; any other column has no ``distinct_capped`` and an exact count.
"""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

# Strings with more distinct values than this are free text, which models cannot use.
MAX_CATEGORIES = 1000
DISTINCT_CAP = MAX_CATEGORIES
EXAMPLES = 5


class ColumnFigures:
    """One column's running figures; ``add`` each chunk in row order, then ``entry``."""

    def __init__(self, name: str, dtype: pa.DataType) -> None:
        self.name, self.dtype = name, dtype
        self.missing = 0
        self.examples: list[Any] = []
        self.uniques: pa.Array | None = None  # while counting: the distinct values so far
        self.distinct = 0
        self.capped = False
        self.hashable = True

    def add(self, chunk: pa.Array) -> None:
        if pa.types.is_dictionary(chunk.type):
            chunk = chunk.dictionary_decode()
        self.missing += chunk.null_count
        values = chunk.drop_null() if chunk.null_count else chunk
        if pa.types.is_floating(values.type):
            is_nan = pc.is_nan(values)
            nans = pc.sum(is_nan).as_py() or 0
            if nans:
                self.missing += nans
                values = values.filter(pc.invert(is_nan))
        if len(values) == 0 or not self.hashable or self.capped:
            return
        try:
            batch_uniques = pc.unique(values)
        except pa.ArrowNotImplementedError:  # nested columns (lists, structs): text anyway
            self.hashable = False
            self.examples = [str(v) for v in values.slice(0, EXAMPLES).to_pylist()]
            return
        if len(self.examples) < EXAMPLES:
            self._add_examples(batch_uniques)
        merged = (
            batch_uniques
            if self.uniques is None
            else pc.unique(pa.concat_arrays([self.uniques, batch_uniques]))
        )
        self.distinct = len(merged)
        if self.distinct > DISTINCT_CAP:
            self.capped, self.uniques = True, None
        else:
            self.uniques = merged

    def _add_examples(self, uniques: pa.Array) -> None:
        # In order of first appearance, as pc.unique keeps it. Of the first EXAMPLES values
        # at most len(self.examples) are examples already: enough new ones to fill up.
        for value in uniques.slice(0, EXAMPLES).to_pylist():
            if len(self.examples) == EXAMPLES:
                return
            if value not in self.examples:
                self.examples.append(value)

    def entry(self) -> dict[str, Any]:
        kind = column_kind(self.dtype)
        if kind == "categorical" and self.capped:
            kind = "text"
        entry: dict[str, Any] = {
            "name": self.name,
            "type": kind,
            "missing": self.missing,
            # Capped: where counting stopped depends on the blocks; the bound does not.
            "distinct": DISTINCT_CAP + 1 if self.capped else self.distinct,
            "examples": [json_value(v) for v in self.examples],
        }
        if self.capped:
            entry["distinct_capped"] = True
        if kind in ("categorical", "boolean") and self.uniques is not None:
            entry["categories"] = sorted(_category(v) for v in self.uniques.to_pylist())
        return entry


class TableFigures:
    """Every column's figures, fed record batches (or one column's chunks) in row order."""

    def __init__(self, schema: pa.Schema) -> None:
        self.columns = [ColumnFigures(field.name, field.type) for field in schema]
        self.rows = 0

    def add_batch(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        for figures, column in zip(self.columns, batch.columns, strict=True):
            figures.add(column)

    def schema(self) -> dict[str, Any]:
        return {
            "kind": "table",
            "rows": self.rows,
            "columns": [figures.entry() for figures in self.columns],
        }


def column_kind(dtype: pa.DataType) -> str:
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if pa.types.is_boolean(dtype):
        return "boolean"
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "numeric"
    return "categorical" if is_string(dtype) else "text"


def is_string(dtype: pa.DataType) -> bool:
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
