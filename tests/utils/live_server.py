"""A real ``torchkiln serve`` process on a free port, with its worker pool, for HTTP tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from torchkiln.service.store.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
TERMINAL = {"succeeded", "failed", "cancelled"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment a child process needs to build the very same ``Settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORCHKILN_")}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"TORCHKILN_{name.upper()}"] = str(value)
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


class LiveServer:
    """Starts and stops ``torchkiln serve`` as a process; restartable on the same database."""

    def __init__(
        self, settings: Settings, log_path: Path, workers: int = 1, processes: int = 1
    ) -> None:
        self.settings, self.log_path = settings, log_path
        self.workers, self.processes = workers, processes
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> None:
        command = [
            sys.executable,
            "-m",
            "torchkiln.service.cli",
            "serve",
            "--port",
            str(self.port),
        ]
        command += ["--workers", str(self.workers), "--processes", str(self.processes)]
        with self.log_path.open("ab") as log:
            # Its own process group, so a test can SIGKILL the server and its workers at once.
            self.process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=settings_env(self.settings),
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"server did not start: {self.log_path.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill_group(self) -> None:
        """SIGKILL the server and every worker it started, as a lost host would."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)


def wait_for_job(
    client: httpx.Client, job_id: int, states: set[str] | None = None, timeout_s: float = 60.0
) -> dict[str, Any]:
    """Poll until the job reaches one of ``states`` (default: any terminal one)."""
    wanted = states or TERMINAL
    deadline = time.monotonic() + timeout_s
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").raise_for_status().json()
        if job["status"] in wanted:
            return job
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} still {job.get('status')} after {timeout_s}s: {job}")


def wait_for_sweep(client: httpx.Client, sweep_id: int, timeout_s: float) -> dict[str, Any]:
    """Poll a sweep's board until it has finished."""
    deadline = time.monotonic() + timeout_s
    board: dict[str, Any] = {}
    while time.monotonic() < deadline:
        board = client.get(f"/sweeps/{sweep_id}").raise_for_status().json()
        if board["status"] == "finished":
            return board
        time.sleep(0.2)
    raise TimeoutError(f"sweep {sweep_id} unfinished after {timeout_s}s: {board}")


def run_sweep(client: httpx.Client, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Create a sweep and wait for its finished board."""
    sweep_id = client.post("/sweeps", json=body).raise_for_status().json()["id"]
    return wait_for_sweep(client, sweep_id, timeout_s)
