"""``serve`` starts quietly: a busy port is refused before any start-up work, log lines
carry a job tag only inside a job, and no per-request chatter from httpx or alembic."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.utils.live_server import REPO_ROOT
from torchkiln.service.cli.main import PORT_BUSY
from torchkiln.service.cli.port_check import port_in_use
from torchkiln.service.store.log_records import current_job_id, logging_config


def test_a_busy_port_is_refused_before_migrations_or_workers(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        assert port_in_use("127.0.0.1", port) is not None
        database = tmp_path / "kiln.db"
        served = subprocess.run(
            [sys.executable, "-m", "torchkiln.service.cli", "serve", "--port", str(port)],
            cwd=REPO_ROOT,
            env={"PATH": "/usr/bin:/bin", "TORCHKILN_DATABASE_URL": f"sqlite:///{database}"},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert served.returncode == PORT_BUSY, served.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in served.stderr and "--port" in served.stderr
    assert not database.exists()  # nothing migrated, no worker started
    assert port_in_use("127.0.0.1", port) is None


def test_log_lines_name_the_job_only_inside_one(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logging.config.dictConfig(logging_config("text"))
    try:
        logging.getLogger("torchkiln.test").info("outside")
        token = current_job_id.set(7)
        logging.getLogger("torchkiln.test").info("inside")
        current_job_id.reset(token)
        logging.getLogger("httpx").info("HTTP Request: GET http://warm-up/ 404")
        logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
        lines = capsys.readouterr().err.splitlines()
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name in ("httpx", "alembic.runtime.migration"):
            logging.getLogger(name).setLevel(logging.NOTSET)
    assert [line.split(" ", 5)[-1] for line in lines] == ["outside", "[job 7] inside"]
    assert "[job None]" not in "\n".join(lines)
