"""How fast GET /jobs/{id}/metrics answers a 10,000-point history over real HTTP.

Starts ``torchkiln serve`` (no workers) on a temporary SQLite file, writes a job with
10,000 metric points through the store, then times, side by side in this one run:
  floor       GET /healthz (HTTP + framework overhead, no database)
  full        GET /jobs/{id}/metrics                all 10,000 points
  downsampled GET /jobs/{id}/metrics?max_points=500 first/last/min/max per bucket
  polling     GET /jobs/{id}/metrics?since=<last>   the incremental poll a page makes
Prints medians over repeats and the ratios to the floor. Target: full ≤ 50 ms median.

    .venv/bin/python bench/metrics_history.py [--points 10000] [--repeats 50]
"""

from __future__ import annotations

import argparse
import logging
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.utils.live_server import LiveServer  # noqa: E402
from torchkiln.service.store import jobs, progress  # noqa: E402
from torchkiln.service.store.db import make_engine, write_session  # noqa: E402
from torchkiln.service.store.settings import Settings  # noqa: E402

logger = logging.getLogger("bench.metrics_history")


def seed_history(settings: Settings, points: int) -> int:
    engine = make_engine(settings)
    with write_session(engine) as session:
        job = jobs.enqueue_job(
            session=session,
            model="linear",
            params={"epochs": points // 2, "seed": 0},
            device="auto",
            priority=0,
            max_attempts=3,
        )
    claimed = jobs.claim_next_job(
        engine, worker=jobs.WorkerIdentity("bench", 0), devices=["auto"], lease_s=3600
    )
    assert claimed is not None and claimed.id == job.id
    lease = jobs.Lease(job.id, claimed.attempts)  # type: ignore[arg-type]
    epochs = [(e, {"train_loss": 1 / e, "w": math.sin(e)}) for e in range(1, points // 2 + 1)]
    progress.record_epochs(engine, lease, epochs)
    engine.dispose()
    return job.id  # type: ignore[return-value]


def median_ms(client: httpx.Client, path: str, params: dict, repeats: int) -> tuple[float, int]:
    client.get(path, params=params).raise_for_status()  # warm up
    times, count = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.get(path, params=params)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        count = len(response.json().get("points", []))
    return statistics.median(times), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings(database_url=f"sqlite:///{root / 'kiln.db'}", artifacts_dir=root)
        server = LiveServer(settings, root / "server.log", workers=0)
        server.start()
        try:
            job_id = seed_history(settings, args.points)
            path = f"/jobs/{job_id}/metrics"
            with server.client() as client:
                rows = [
                    ("floor (healthz)", "/healthz", {}),
                    ("full history", path, {}),
                    ("max_points=500", path, {"max_points": 500}),
                    ("poll since last", path, {"since": args.points}),
                ]
                results = [(label, *median_ms(client, p, q, args.repeats)) for label, p, q in rows]
        finally:
            server.stop()
    floor = results[0][1]
    logger.info("%d points, median of %d requests over loopback HTTP", args.points, args.repeats)
    for label, ms, count in results:
        logger.info("%-18s %8.2f ms  %6d points  %5.1fx floor", label, ms, count, ms / floor)
    full_ms = results[1][1]
    verdict = "meets" if full_ms <= 50 else "MISSES"
    logger.info("full history %.1f ms %s the 50 ms target", full_ms, verdict)


if __name__ == "__main__":
    main()
