"""Training never imports FastAPI: workers run where the web stack is not installed."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_worker_pool_does_not_import_fastapi() -> None:
    code = (
        "import sys, torchkiln.workers.pool, torchkiln.workers.worker; "
        "assert 'fastapi' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)
