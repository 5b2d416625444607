"""Queue latency: how long a job submitted to an idle pool waits before a worker starts it.

A real ``torchkiln serve`` (one HTTP process) on SQLite and on this machine's PostgreSQL, with
wake-ups on (LISTEN/NOTIFY; a datagram per idle worker) and off (the 0.5 s poll alone).
Each pool first runs three jobs per worker, unmeasured: a worker's first job pays for lazy
imports (seconds on a busy machine), which is no part of the queue's latency. Then:
  latency     one worker; ``--jobs`` tiny ``linear`` jobs, each POSTed once the previous one
              has finished plus a random pause under the poll interval (so a poll-only pool
              is caught at every phase of its poll); submit → running is the job's own
              ``started_at - created_at``, both stamped by the server's clock
  throughput  two workers; ``--burst`` tiny jobs POSTed back to back, then the seconds from
              the first ``created_at`` to the last ``finished_at``

    .venv/bin/python bench/wakeup.py [--jobs 30] [--burst 100]
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402

from tests.utils.databases import postgres_database  # noqa: E402
from tests.utils.live_server import LiveServer, wait_for_job  # noqa: E402
from torchkiln.service.store.settings import Settings  # noqa: E402

TINY_JOB = {"model": "linear", "params": {"epochs": 1}}
POLL_S = 0.5
logger = logging.getLogger("bench.wakeup")


@contextmanager
def serving(database: str, *, is_wake_on: bool, workers: int) -> Iterator[httpx.Client]:
    """A live server on a fresh database of that kind; yields a client for it."""
    with (
        tempfile.TemporaryDirectory(prefix="torchkiln-wakeup-") as tmp,
        fresh_url(database, Path(tmp)) as url,
    ):
        settings = Settings(
            database_url=url,
            artifacts_dir=Path(tmp) / "artifacts",
            data_dir=Path(tmp) / "data",
            poll_interval_s=POLL_S,
            wake_workers=is_wake_on,
        )
        server = LiveServer(settings, Path(tmp) / "server.log", workers=workers)
        server.start()
        try:
            with server.client() as client:
                wait_for_workers(client, workers)
                warm_up(client, workers)
                yield client
        finally:
            server.stop()


@contextmanager
def fresh_url(database: str, tmp: Path) -> Iterator[str]:
    if database == "sqlite":
        yield f"sqlite:///{tmp / 'kiln.db'}"
        return
    with postgres_database() as url:
        yield url


def wait_for_workers(client: httpx.Client, count: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get("/workers").raise_for_status().json()["count"] >= count:
            return
        time.sleep(0.2)
    raise TimeoutError(f"{count} workers not up after {timeout_s}s")


def submit(client: httpx.Client, jobs: int) -> list[int]:
    """POST ``jobs`` tiny jobs back to back; their ids."""
    replies = [client.post("/jobs", json=TINY_JOB) for _ in range(jobs)]
    return [reply.raise_for_status().json()["id"] for reply in replies]


def warm_up(client: httpx.Client, workers: int) -> None:
    """A few jobs first: a worker's first job pays for its lazy imports (seconds here)."""
    for job_id in submit(client, 3 * workers):
        wait_for_job(client, job_id, timeout_s=120)


def seconds_between(start: str, end: str) -> float:
    """Between two of the server's ISO timestamps."""
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def latencies(client: httpx.Client, jobs: int, rng: random.Random) -> list[float]:
    """Submit → running of ``jobs`` jobs, one at a time, each to an idle pool."""
    waits = []
    for _ in range(jobs):
        time.sleep(rng.uniform(0.05, POLL_S + 0.05))
        job = wait_for_job(client, submit(client, 1)[0], timeout_s=60)
        waits.append(seconds_between(job["created_at"], job["started_at"]))
    return waits


@dataclass(frozen=True)
class Burst:
    total_s: float  # first created_at to last finished_at
    run_s: float  # mean started_at to finished_at: the job itself, claim to finish
    gap_s: float  # mean finished_at to the same worker's next started_at: the queue's share


def burst(client: httpx.Client, jobs: int) -> Burst:
    """``jobs`` submitted back to back, until the last has finished."""
    finished = [wait_for_job(client, job_id, timeout_s=300) for job_id in submit(client, jobs)]
    failed = [job["id"] for job in finished if job["status"] != "succeeded"]
    if failed:
        raise RuntimeError(f"jobs {failed} did not succeed")
    first = min(datetime.fromisoformat(job["created_at"]) for job in finished)
    last = max(datetime.fromisoformat(job["finished_at"]) for job in finished)
    by_worker: dict[int, list[dict[str, Any]]] = {}
    for job in sorted(finished, key=lambda job: job["started_at"]):
        by_worker.setdefault(job["worker"]["pid"], []).append(job)
    gaps = [
        seconds_between(earlier["finished_at"], later["started_at"])
        for runs in by_worker.values()
        for earlier, later in zip(runs, runs[1:], strict=False)
    ]
    return Burst(
        total_s=(last - first).total_seconds(),
        run_s=statistics.mean(seconds_between(j["started_at"], j["finished_at"]) for j in finished),
        gap_s=statistics.mean(gaps),
    )


def percentile(values: list[float], fraction: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


def row(side: str, waits: list[float], rush: Burst) -> str:
    return (
        f"{side:<32} p50 {1000 * statistics.median(waits):6.1f} ms  "
        f"p95 {1000 * percentile(waits, 0.95):6.1f} ms  max {1000 * max(waits):6.1f} ms   "
        f"burst {rush.total_s:5.2f} s (a job {1000 * rush.run_s:.0f} ms, "
        f"between jobs {1000 * rush.gap_s:.1f} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=30, help="latency jobs per side")
    parser.add_argument("--burst", type=int, default=100, help="throughput jobs per side")
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    rng = random.Random(0)
    rows = []
    for database in args.databases:
        for is_wake_on in (True, False):
            side = f"{database}, wake-ups {'on' if is_wake_on else 'off (poll)'}"
            with serving(database, is_wake_on=is_wake_on, workers=1) as client:
                waits = latencies(client, args.jobs, rng)
            with serving(database, is_wake_on=is_wake_on, workers=2) as client:
                rush = burst(client, args.burst)
            rows.append((side, waits, rush))
            logger.info("%s", row(side, waits, rush))
    logger.info(
        "\nsubmit → running, %d jobs each to an idle one-worker pool (poll %.1f s); "
        "%d tiny linear jobs (epochs=1) through 2 workers:",
        args.jobs,
        POLL_S,
        args.burst,
    )
    for side, waits, rush in rows:
        logger.info("  %s", row(side, waits, rush))


if __name__ == "__main__":
    main()
