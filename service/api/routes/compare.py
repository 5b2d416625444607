"""Comparing runs: several jobs' metric histories side by side, keyed by epoch.

Its own router, included before the jobs router: ``/jobs/{job_id}`` would otherwise take
``/jobs/compare`` and answer 422 for the id "compare".
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from torchkiln.service.api.deps import ReadSessionDep
from torchkiln.service.api.row_ids import parse_row_id
from torchkiln.service.api.schemas import ComparisonPublic
from torchkiln.service.store import jobs, metric_history
from torchkiln.service.store.errors import InvalidInput

router = APIRouter(prefix="/jobs", tags=["jobs"])

MAX_JOBS = 20
# Per-epoch timings differ by machine load, not by run: noise in a comparison.
HIDDEN_BY_DEFAULT = {"epoch_seconds"}
# 100,000 epochs (the most a job may ask for) of ten metrics.
MAX_ROWS_PER_JOB = 1_000_000


def split_list(values: list[str] | None) -> list[str]:
    """``?a=1,2&a=3`` → ["1", "2", "3"]: both spellings work."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def parse_ids(values: list[str]) -> list[int]:
    ids: list[int] = []
    for part in split_list(values):
        job_id = parse_row_id(part)
        if job_id is None:
            raise InvalidInput(f"ids: {part[:20]!r} is not a job id")
        if job_id not in ids:
            ids.append(job_id)
    if not 0 < len(ids) <= MAX_JOBS:
        raise InvalidInput(f"ids: give 1 to {MAX_JOBS} job ids, comma-separated")
    return ids


def series_by_name(points: list[metric_history.Point]) -> dict[str, list[list[Any]]]:
    """[[epoch, value], ...] per name, ascending by epoch, one value per epoch (the newest)."""
    by_name: dict[str, dict[int, float | None]] = {}
    for _, epoch, name, value in points:
        by_name.setdefault(name, {})[epoch] = value
    return {
        name: [[epoch, values[epoch]] for epoch in sorted(values)]
        for name, values in sorted(by_name.items())
    }


# Documented, not validated: the body is encoded by orjson (histories can be long).
@router.get("/compare", responses={200: {"model": ComparisonPublic}})
def compare_jobs(
    session: ReadSessionDep,
    ids: Annotated[list[str], Query(description="Job ids, comma-separated: ids=3,5,8.")],
    names: Annotated[
        list[str] | None, Query(description="Metrics, comma-separated; default: all.")
    ] = None,
    max_points: Annotated[
        int | None, Query(ge=4, le=100_000, description="Downsample each series to about this.")
    ] = None,
) -> Response:
    """Aligned histories of several jobs: per job, ``series[name] = [[epoch, value], ...]``."""
    job_ids, wanted = parse_ids(ids), split_list(names) or None
    data = []
    for job_id in job_ids:
        job = jobs.get_job(session, job_id)
        points = metric_history.read_points(
            session, job_id, names=wanted, since=None, limit=MAX_ROWS_PER_JOB
        )
        if wanted is None:
            points = [p for p in points if p[2] not in HIDDEN_BY_DEFAULT]
        if max_points is not None:
            points = metric_history.downsample(points, max_points)
        data.append(
            {
                "job_id": job_id,
                "model": job.model,
                "status": job.status,
                "params": job.params,
                "sweep_id": job.sweep_id,
                "series": series_by_name(points),
            }
        )
    found = sorted({name for item in data for name in item["series"]})
    body = {"names": wanted or found, "data": data}
    return Response(orjson.dumps(body), media_type="application/json")


@router.api_route("/compare", methods=["POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
def compare_other_methods() -> JSONResponse:
    """405, not the 422 that ``DELETE /jobs/{job_id}`` would answer for the id "compare"."""
    return JSONResponse({"detail": "Method Not Allowed"}, status_code=405, headers={"Allow": "GET"})
