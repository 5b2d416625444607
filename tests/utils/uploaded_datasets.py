"""Uploaded datasets written straight into the on-disk layout the models read, and the
lookup that POST /jobs would pass, so model tests need no upload route."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

MAX_CATEGORIES = 1000


def table_schema(table: pa.Table) -> dict[str, Any]:
    """The contract's schema.json of a table: each column's type, missing, distinct, examples."""
    columns = []
    for name in table.column_names:
        data = table.column(name)
        distinct = pc.unique(data.drop_null())
        column: dict[str, Any] = {
            "name": name,
            "missing": data.null_count,
            "distinct": len(distinct),
            "examples": data.drop_null().slice(0, 5).to_pylist(),
        }
        if pa.types.is_boolean(data.type):
            categories = sorted(str(v).lower() for v in distinct.to_pylist())
            column |= {"type": "boolean", "categories": categories}
        elif pa.types.is_integer(data.type) or pa.types.is_floating(data.type):
            column["type"] = "numeric"
        elif len(distinct) > MAX_CATEGORIES:
            column["type"] = "text"
        else:
            column |= {"type": "categorical", "categories": sorted(map(str, distinct.to_pylist()))}
        columns.append(column)
    return {"kind": "table", "rows": table.num_rows, "columns": columns}


def write_table(datasets: Path, dataset_id: int, columns: dict[str, list[Any]]) -> dict[str, Any]:
    """``<datasets>/<id>/table.parquet`` and ``schema.json``; returns the schema."""
    table = pa.table(columns)
    folder = datasets / str(dataset_id)
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / "table.parquet")
    schema = table_schema(table)
    (folder / "schema.json").write_text(json.dumps(schema))
    return schema


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def write_images(
    datasets: Path, dataset_id: int, images: dict[str, dict[str, list[np.ndarray]]]
) -> dict[str, Any]:
    """``images/<split>/<class>/<n>.png`` (split "" for no split folders) and the schema."""
    folder = datasets / str(dataset_id)
    counts: dict[str, int] = {}
    splits: dict[str, Any] = {}
    modes: set[str] = set()
    sizes: set[tuple[int, int]] = set()
    for split, classes in images.items():
        for name, arrays in classes.items():
            target = folder / "images" / split / name if split else folder / "images" / name
            target.mkdir(parents=True, exist_ok=True)
            for i, pixels in enumerate(arrays):
                (target / f"{i}.png").write_bytes(png(pixels))
                modes.add("L" if pixels.ndim == 2 else "RGB")
                sizes.add((pixels.shape[1], pixels.shape[0]))
            counts[name] = counts.get(name, 0) + len(arrays)
        if split:
            per_class = {name: len(arrays) for name, arrays in classes.items()}
            splits[split] = {"images": sum(per_class.values()), "classes": per_class}
    schema = {
        "kind": "images",
        "images": sum(counts.values()),
        "classes": [{"name": n, "count": counts[n]} for n in sorted(counts)],
        "splits": splits,
        "sizes": [list(s) for s in sorted(sizes)][:20],
        "modes": sorted(modes),
    }
    (folder / "schema.json").write_text(json.dumps(schema))
    return schema


def lookup_in(datasets: Path) -> Callable[[int], dict[str, Any]]:
    """``dataset_lookup`` over the folders written here, as the service's would answer."""

    def lookup(dataset_id: int) -> dict[str, Any]:
        path = datasets / str(dataset_id) / "schema.json"
        if not path.is_file():
            raise LookupError(dataset_id)
        schema = json.loads(path.read_text())
        return {
            "id": dataset_id,
            "name": f"dataset-{dataset_id}",
            "sha256": "0" * 64,
            "kind": schema["kind"],
            "schema": schema,
        }

    return lookup
