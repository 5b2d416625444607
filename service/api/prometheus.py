"""Prometheus metrics: job counts and epoch durations from the database, prediction latency
and model-cache counts from this HTTP process.

The database-backed families are computed at scrape time, so every HTTP process answers the
same. The in-process ones (latency, cache) are exact with one HTTP process; with several,
``torchkiln serve`` turns on prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``)
and a scrape of any process sums them all.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from torchkiln.service.api.serving.predictions import ModelCache
from torchkiln.service.store.db import read_session
from torchkiln.service.store.states import JobState
from torchkiln.service.store.tables import Job, MetricPoint

# Tiny models take a millisecond an epoch, CIFAR on a CPU minutes.
EPOCH_BUCKETS_S = (0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def is_multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


@dataclass
class EpochHistogram:
    """Every ``epoch_seconds`` point ever written, bucketed per model.

    Each scrape folds in only the points after the last one seen (one aggregate query over
    the primary key), so the first scrape reads the history once and later ones stay cheap.
    Every process folds in the same rows, so all answer the same cumulative counts. Points
    dropped when a job rewinds to a checkpoint stay counted: that epoch did run.
    """

    cursor: int = 0
    counts: dict[str, list[int]] = field(default_factory=dict)
    sums: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def update(self, engine: Engine) -> None:
        point, job = MetricPoint.__table__.c, Job.__table__.c
        buckets = [
            sa.func.sum(sa.case((point.value <= bound, 1), else_=0)) for bound in EPOCH_BUCKETS_S
        ]
        query = (
            sa.select(job.model, sa.func.max(point.id), sa.func.count(), sa.func.sum(point.value))
            .add_columns(*buckets)
            .select_from(sa.join(MetricPoint.__table__, Job.__table__, point.job_id == job.id))
            .where(point.id > self.cursor, point.name == "epoch_seconds")
            .where(point.value.is_not(None))
            .group_by(job.model)
        )
        with read_session(engine) as session:
            rows = session.execute(query).all()
        for model, last_id, count, total, *in_buckets in rows:
            counts = self.counts.setdefault(model, [0] * (len(EPOCH_BUCKETS_S) + 1))
            for index, number in enumerate([*in_buckets, count]):
                counts[index] += int(number)
            self.sums[model] = self.sums.get(model, 0.0) + float(total)
            self.cursor = max(self.cursor, last_id)

    def family(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(
            "torchkiln_epoch_duration_seconds",
            "Training epoch durations, from the epoch_seconds metric of every job.",
            labels=["model"],
        )
        bounds = [str(b) for b in EPOCH_BUCKETS_S] + ["+Inf"]
        for model, counts in sorted(self.counts.items()):
            family.add_metric([model], list(zip(bounds, counts, strict=True)), self.sums[model])
        return family


class DatabaseCollector(Collector):
    """Jobs by state, queue depth and epoch durations, read from the database per scrape."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.epochs = EpochHistogram()

    def collect(self) -> Iterator[Metric]:
        with read_session(self.engine) as session:
            rows = session.execute(
                sa.select(Job.__table__.c.status, sa.func.count()).group_by(Job.__table__.c.status)
            ).all()
        by_state = {JobState(status): count for status, count in rows}
        jobs = GaugeMetricFamily("torchkiln_jobs", "Jobs in each state.", labels=["state"])
        for state in JobState:
            jobs.add_metric([state.value], by_state.get(state, 0))
        yield jobs
        yield GaugeMetricFamily(
            "torchkiln_queue_depth",
            "Jobs waiting for a worker.",
            value=by_state.get(JobState.QUEUED, 0),
        )
        yield from distributed_families(running_worlds(self.engine))
        with self.epochs.lock:
            self.epochs.update(self.engine)
            yield self.epochs.family()


def running_worlds(engine: Engine) -> list[tuple[int, dict[str, Any]]]:
    """(job id, world) of each running distributed job."""
    table = Job.__table__.c
    with read_session(engine) as session:
        rows = session.execute(
            sa.select(table.id, table.distributed).where(
                table.status == JobState.RUNNING.value, table.distributed.is_not(None)
            )
        ).all()
    return [(job_id, world) for job_id, world in rows if world]


def distributed_families(worlds: list[tuple[int, dict[str, Any]]]) -> Iterator[Metric]:
    """World size and per-rank training throughput of the running distributed jobs."""
    size = GaugeMetricFamily(
        "torchkiln_job_world_size", "Processes training a running job.", labels=["job_id"]
    )
    speed = GaugeMetricFamily(
        "torchkiln_rank_samples_per_second",
        "Training samples a second of each rank of a running job, last epoch.",
        labels=["job_id", "rank", "host", "device"],
    )
    for job_id, world in worlds:
        size.add_metric([str(job_id)], world.get("world_size", 0))
        for rank in world.get("ranks", []):
            if rank.get("samples_per_s") is not None:
                labels = [str(job_id), str(rank["rank"]), rank["host"], rank["device"]]
                speed.add_metric(labels, rank["samples_per_s"])
    yield size
    yield speed


class PredictMetrics:
    """Prediction latency, forward-pass sizes and model-cache counts of this process."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.latency = Histogram(
            "torchkiln_predict_latency_seconds",
            "Time to answer POST /predict/..., body read to response sent.",
            ["route", "status"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        # ModelCache counts in plain ints; copied into counters after each prediction so
        # that multiprocess mode can add them up across HTTP processes.
        self.cache_hits = Counter(
            "torchkiln_model_cache_hits",
            "Predictions served by an already loaded network.",
            registry=registry,
        )
        self.cache_misses = Counter(
            "torchkiln_model_cache_misses",
            "Predictions that loaded a checkpoint.",
            registry=registry,
        )
        self.batch_size = Histogram(
            "torchkiln_predict_batch_size",
            "Samples in each forward pass of a prediction: several requests' where the model "
            "batches them (TORCHKILN_BATCHING), else one request's.",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.seen_hits = 0
        self.seen_misses = 0
        # labels() costs more than observe(): keep each (route, status) child, each model's.
        self.children: dict[tuple[str, int], Any] = {}
        self.batch_children: dict[str, Any] = {}

    def observe_batch(self, model: str, samples: int) -> None:
        child = self.batch_children.get(model)
        if child is None:
            child = self.batch_children[model] = self.batch_size.labels(model)
        child.observe(samples)

    def observe(self, route: str, status: int, seconds: float, cache: ModelCache) -> None:
        child = self.children.get((route, status))
        if child is None:
            child = self.children[route, status] = self.latency.labels(route, str(status))
        child.observe(seconds)
        hits, misses = cache.hits, cache.misses
        if hits != self.seen_hits:
            self.cache_hits.inc(hits - self.seen_hits)
            self.seen_hits = hits
        if misses != self.seen_misses:
            self.cache_misses.inc(misses - self.seen_misses)
            self.seen_misses = misses


@dataclass(frozen=True)
class Telemetry:
    """What ``GET /metrics`` renders, and what the prediction middleware records into."""

    registry: CollectorRegistry
    predict: PredictMetrics


def make_telemetry(engine: Engine) -> Telemetry:
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(engine))
    if is_multiprocess():
        # Per-process values live in files under PROMETHEUS_MULTIPROC_DIR; registering the
        # live metrics here too would count this process twice.
        MultiProcessCollector(registry)
        return Telemetry(registry, PredictMetrics(registry=None))
    return Telemetry(registry, PredictMetrics(registry=registry))


class PredictTimer:
    """ASGI middleware timing ``POST /predict/...``; every other request passes straight on."""

    def __init__(self, app: Any, telemetry: Telemetry, cache: ModelCache, routes: set[str]):
        self.app, self.metrics, self.cache, self.routes = app, telemetry.predict, cache, routes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith("/predict/"):
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # Unknown paths share one label: a label per client-chosen path would be unbounded.
            route = path if path in self.routes else "/predict/{other}"
            self.metrics.observe(route, status, time.perf_counter() - started, self.cache)
