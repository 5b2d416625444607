"""``GET /metrics`` for Prometheus; behind the API key like every route but the probes."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["observability"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "Prometheus's text exposition format.",
        }
    },
    name="read_prometheus_metrics",  # the operation id; read_metrics is a job's history
)
def read_metrics(request: Request) -> Response:
    """Jobs by state, queue depth, epoch durations, prediction latency, model-cache counts."""
    # Sync on purpose: the job counts are database queries, run in the thread pool.
    body = generate_latest(request.app.state.telemetry.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
