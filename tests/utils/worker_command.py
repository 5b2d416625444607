"""A real ``torchkiln worker`` process, as on another host."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.utils.live_server import REPO_ROOT, settings_env
from torchkiln.service.store.settings import Settings


class WorkerCommand:
    """Starts the worker command against ``settings``' database; stops it with a signal."""

    def __init__(self, settings: Settings, log_path: Path, workers: int = 1) -> None:
        self.settings, self.log_path, self.workers = settings, log_path, workers
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            sys.executable,
            "-m",
            "torchkiln.service.cli",
            "worker",
            "--workers",
            str(self.workers),
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=settings_env(self.settings),
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def stop(self, sig: int, timeout_s: float = 60.0) -> int:
        """Send ``sig`` and wait for the exit; returns the exit code."""
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(timeout=timeout_s)

    def kill_group(self) -> None:
        """SIGKILL the command and its worker processes (cleanup after a failed test)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
