"""Metric history: appending points, cursor paging and min/max-preserving downsampling."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import sqlalchemy as sa
from sqlmodel import Session, col

from torchkiln.service.store.tables import MAX_ROW_ID, MetricPoint


class Point(NamedTuple):
    """A stored metric value. Rows come back from the driver as plain tuples of this shape:
    a long history is 10,000+ of them, so they are never converted one by one."""

    id: int
    epoch: int
    name: str
    value: float | None


def finite_or_none(value: float) -> float | None:
    """NaN and inf are stored as NULL: JSON has no spelling for them."""
    return value if math.isfinite(value) else None


def add_points(session: Session, job_id: int, epoch: int, metrics: dict[str, float]) -> None:
    session.execute(
        sa.insert(MetricPoint),
        [
            {"job_id": job_id, "epoch": epoch, "name": name, "value": finite_or_none(value)}
            for name, value in metrics.items()
        ],
    )


def delete_points_after(session: Session, job_id: int, epoch: int) -> None:
    """Drop points past a checkpoint, so a resumed job records each epoch exactly once."""
    session.execute(
        sa.delete(MetricPoint).where(MetricPoint.job_id == job_id, MetricPoint.epoch > epoch)
    )


def read_points(
    session: Session,
    job_id: int,
    *,
    names: Sequence[str] | None,
    since: int | None,
    limit: int,
) -> list[Point]:
    """Points in insertion order after cursor ``since`` (a point id), at most ``limit``."""
    if since is not None and since >= MAX_ROW_ID:
        return []
    table = MetricPoint.__table__
    query = sa.select(table.c.id, table.c.epoch, table.c.name, table.c.value).where(
        table.c.job_id == job_id
    )
    if names:
        query = query.where(table.c.name.in_(names))
    if since is not None:
        query = query.where(table.c.id > since)
    return session.execute(query.order_by(col(MetricPoint.id)).limit(limit)).all()  # type: ignore[return-value]


def downsample(points: Iterable[Point], max_points: int) -> list[Point]:
    """At most ``max_points`` per metric name: each bucket keeps its first, last, min and max."""
    by_name: dict[str, list[Point]] = {}
    for point in points:
        by_name.setdefault(point[2], []).append(point)
    kept: list[Point] = []
    for series in by_name.values():
        kept.extend(_downsample_series(series, max_points))
    kept.sort(key=lambda p: p[0])
    return kept


def _downsample_series(series: list[Point], max_points: int) -> list[Point]:
    if len(series) <= max_points:
        return series
    buckets = max(1, max_points // 4)
    size = math.ceil(len(series) / buckets)
    kept: list[Point] = []
    for start in range(0, len(series), size):
        bucket = series[start : start + size]
        finite = [p for p in bucket if p[3] is not None]
        chosen = {bucket[0][0]: bucket[0], bucket[-1][0]: bucket[-1]}
        if finite:
            low = min(finite, key=_value)
            high = max(finite, key=_value)
            chosen[low[0]], chosen[high[0]] = low, high
        # Non-finite points (stored NULL) are the ones a user most needs to see.
        chosen.update({p[0]: p for p in bucket if p[3] is None})
        kept.extend(sorted(chosen.values(), key=lambda p: p[0]))
    return kept


def _value(point: Point) -> float:
    return point[3]  # type: ignore[return-value]


def points_json(points: Sequence[Point]) -> list[dict[str, object]]:
    """Points as the API spells them."""
    return [{"id": p[0], "epoch": p[1], "name": p[2], "value": p[3]} for p in points]
