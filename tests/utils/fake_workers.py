"""Worker-process stand-ins for pool tests: real processes that misbehave on purpose.

Each has ``run_worker``'s signature, so ``WorkerPool(target=...)`` spawns it like the real one.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from sqlalchemy.engine import Engine

from torchkiln.service.store.db import make_engine
from torchkiln.service.store.jobs import Lease, WorkerIdentity, claim_next_job, heartbeat
from torchkiln.service.store.settings import Settings
from torchkiln.service.store.tables import Job


def _claim(engine: Engine, settings: Settings, stop: Any) -> Job | None:
    identity = WorkerIdentity.current(os.getpid())
    while not stop.is_set():
        job = claim_next_job(
            engine, worker=identity, devices=["auto", "cpu"], lease_s=settings.lease_s
        )
        if job is not None:
            return job
        time.sleep(0.05)
    return None


def stubborn_worker(settings: Settings, device: str, threads: int, stop: Any) -> None:
    """Claims a job and keeps its lease alive forever: deaf to SIGTERM, stop and cancel."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    engine = make_engine(settings)
    job = _claim(engine, settings, stop)
    while job is not None:
        assert job.id is not None
        heartbeat(engine, Lease(job.id, job.attempts), lease_s=settings.lease_s)
        time.sleep(0.2)


def doomed_worker(settings: Settings, device: str, threads: int, stop: Any) -> None:
    """Claims a job and dies by SIGKILL at once, as under the kernel's OOM killer."""
    if _claim(make_engine(settings), settings, stop) is not None:
        os.kill(os.getpid(), signal.SIGKILL)


def reporting_worker(settings: Settings, device: str, threads: int, stop: Any) -> None:
    """Writes what MKL looks like from inside a worker process, then waits to be stopped."""
    import ctypes
    import json
    from pathlib import Path

    import torch

    torch.set_num_threads(threads)
    library = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(64, 784, generator=generator)
    b = torch.randn(784, 512, generator=generator)
    exact = a.double() @ b.double()
    matrix = torch.randn(64, 64, generator=generator) + 64 * torch.eye(64)
    rhs = torch.randn(64, 3, generator=generator)
    solution = torch.linalg.solve(matrix, rhs)
    report = {
        "ld_preload": os.environ.get("LD_PRELOAD", ""),
        # MKL's own CPU-type code: which kernel family it dispatches to (internal symbol).
        "mkl_cpu_type": int(library.mkl_serv_cpu_detect()),
        "gemm_relative_error": float(((a @ b).double() - exact).abs().max() / exact.abs().max()),
        "solve_residual": float((matrix @ solution - rhs).abs().max()),
    }
    path = Path(settings.artifacts_dir) / f"mkl-{os.getpid()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".tmp").write_text(json.dumps(report))
    path.with_suffix(".tmp").replace(path)
    stop.wait()
