"""The README's curl walk-through, run as written against a fresh server, so it cannot drift."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.utils.live_server import REPO_ROOT, LiveServer

SECTION = "## A walk through with curl"
# Every curl fails on an HTTP error (exit 22), so a step answering 404 or 409 fails the test.
PRELUDE = 'set -euo pipefail\ncurl() { command curl --fail-with-body "$@"; }\n'


def walkthrough_script(readme: str, address: str) -> str:
    """The bash blocks of the walk-through section, pointed at ``address``."""
    start = readme.index(SECTION)
    end = readme.index("\n## ", start + len(SECTION))
    blocks = re.findall(r"```bash\n(.*?)```", readme[start:end], flags=re.S)
    assert blocks, "the walk-through has no bash block"
    return PRELUDE + "\n".join(blocks).replace("localhost:8000", address)


@pytest.mark.skipif(
    shutil.which("curl") is None or shutil.which("jq") is None, reason="needs curl and jq"
)
def test_the_walkthrough_runs_as_written(server: LiveServer) -> None:
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
    # The answers the walk-through shows, to their two decimals.
    for model, key in [("logistic_hours", "probabilities"), ("linear", "y")]:
        assert answered(out, model, key) == shown(readme, model, key), (model, out[-2000:])
    # The cancel's answer (after the submit's): cancelled, or asked to stop if it started.
    states = re.findall(
        r'\{"id":3,"model":"quadratic","status":"(\w+)".*?"is_cancel_requested":(\w+)', out
    )
    assert len(states) == 2 and states[1] in {("cancelled", "false"), ("running", "true")}, states


def shown(readme: str, model: str, key: str) -> list[float]:
    """The values a ``# -> {... "model": …, key: [...]`` line of the README shows."""
    found = re.search(rf'# -> \{{"job_id": \d+, "model": "{model}", "{key}": \[([^\]]*)\]', readme)
    assert found is not None, f"the walk-through shows no {model} {key}"
    return [float(v) for v in found[1].split(",")]


def answered(out: str, model: str, key: str) -> list[float]:
    """The values the server answered, rounded as the README rounds them."""
    found = re.search(rf'\{{"job_id":\d+,"model":"{model}","{key}":\[([^\]]*)\]', out)
    assert found is not None, f"no {model} prediction in the output"
    return [round(float(v), 2) for v in found[1].split(",")]
