"""The README's curl walk-through, run as written against a fresh server, so it cannot drift."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.utils.live_server import REPO_ROOT, LiveServer

SECTION = "## A walk through with curl"
# Every curl fails on an HTTP error (exit 22), so a step answering 404 or 409 fails the test.
PRELUDE = 'set -euo pipefail\ncurl() { command curl --fail-with-body "$@"; }\n'


def section(readme: str) -> str:
    start = readme.index(SECTION)
    return readme[start : readme.index("\n## ", start + len(SECTION))]


def walkthrough_script(readme: str, address: str) -> str:
    """The bash blocks of the walk-through section, pointed at ``address``."""
    blocks = re.findall(r"```bash\n(.*?)```", section(readme), flags=re.S)
    assert blocks, "the walk-through has no bash block"
    return PRELUDE + "\n".join(blocks).replace("localhost:8000", address)


def test_the_walkthrough_runs_as_written(server: LiveServer) -> None:
    missing = [tool for tool in ("curl", "jq") if shutil.which(tool) is None]
    if missing:
        # As with the browser: a laptop without them skips, CI (which installs them) fails.
        message = f"the walk-through needs {' and '.join(missing)} (apt-get install -y jq curl)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    readme = (REPO_ROOT / "README.md").read_text()
    script = walkthrough_script(readme, server.url.removeprefix("http://"))
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=240, check=False
    )
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    out = result.stdout
    assert '"linear"' in out and '"mnist_cnn"' in out  # the model names, through jq
    assert '{"id":1,"model":"logistic_hours","status":"queued"' in out
    assert "event: end" in out
    # The answers the walk-through shows, in order: the job, the alias, two decimals.
    for model, key in [("logistic_hours", "probabilities"), ("linear", "y")]:
        assert answered(out, model, key) == shown(section(readme), model, key), out[-2000:]
    # The cancel's answer (after the submit's): cancelled, or asked to stop if it started.
    states = re.findall(
        r'\{"id":5,"model":"quadratic","status":"(\w+)".*?"is_cancel_requested":(\w+)', out
    )
    assert len(states) == 2 and states[1] in {("cancelled", "false"), ("running", "true")}, states


Answer = tuple[int, str, list[float]]


def shown(readme: str, model: str, key: str) -> list[Answer]:
    """What the ``# -> {"job_id": …, "alias": …, "model": …, key: [...]`` lines show."""
    pattern = (
        rf'# -> \{{"job_id": (\d+), "alias": ([^,]+), "model": "{model}", "{key}": \[([^\]]*)\]'
    )
    found = re.findall(pattern, readme)
    assert found, f"the walk-through shows no {model} {key}"
    return [(int(j), alias, [float(v) for v in values.split(",")]) for j, alias, values in found]


def answered(out: str, model: str, key: str) -> list[Answer]:
    """What the server answered, rounded as the README rounds it."""
    pattern = rf'\{{"job_id":(\d+),"alias":([^,]+),"model":"{model}","{key}":\[([^\]]*)\]'
    found = re.findall(pattern, out)
    assert found, f"no {model} prediction in the output"
    return [
        (int(j), alias, [round(float(v), 2) for v in values.split(",")])
        for j, alias, values in found
    ]
