"""/predict/mnist under load, side by side with TorchServe serving the same MLP.

Sets up a temporary torchkiln (SQLite) whose newest mnist_mlp job holds a real checkpoint of
the seed MLP (784-512-256-128-64-10, torch.manual_seed(0) weights, as the anchor uses), starts
``torchkiln serve`` with no training workers, and drives ``POST /predict/mnist`` with wrk: the
same 28x28 PNG each time as a multipart ``file`` field, at each connection count for
``--duration`` seconds, after a 2-second warm-up at 8 connections that is not counted.
Prints req/s, p50 and p99. With ``--torchserve`` it then runs
``../shared/anchors/torchserve/run.sh`` (TorchServe 0.12, same network, same kind of PNG) in
this same invocation and prints the ratios ours/theirs.

    .venv/bin/python bench/predict.py [--connections 1 8] [--duration 10] [--processes 2]
                                      [--torchserve]
"""

from __future__ import annotations

import argparse
import io
import logging
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.utils.live_server import LiveServer  # noqa: E402
from torchkiln.models import REGISTRY  # noqa: E402
from torchkiln.service.store import jobs, progress  # noqa: E402
from torchkiln.service.store.cache_markers import announce_success  # noqa: E402
from torchkiln.service.store.checkpoint_files import save_checkpoint  # noqa: E402
from torchkiln.service.store.db import make_engine, upgrade_database, write_session  # noqa: E402
from torchkiln.service.store.settings import Settings  # noqa: E402
from torchkiln.workers.checkpoint_payload import checkpoint_payload  # noqa: E402
from torchkiln.workers.training import new_state  # noqa: E402

ANCHOR = REPO_ROOT.parent / "shared" / "anchors" / "torchserve" / "run.sh"
BOUNDARY = "torchkilnbenchboundary"
logger = logging.getLogger("bench.predict")


@dataclass(frozen=True)
class Load:
    connections: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def digit_png() -> bytes:
    """The anchor's digit: a plain vertical "1" on black."""
    pixels = np.zeros((28, 28), np.uint8)
    pixels[6:22, 12:16] = 255
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def seed_mlp_job(settings: Settings) -> int:
    """A succeeded mnist_mlp job whose checkpoint is the seed MLP's initial weights."""
    engine = make_engine(settings)
    upgrade_database(engine)
    spec = REGISTRY["mnist_mlp"]
    params = spec.options(epochs=1).model_dump(mode="json")
    with write_session(engine) as session:
        jobs.enqueue_job(
            session=session,
            model="mnist_mlp",
            params=params,
            device="cpu",
            priority=0,
            max_attempts=1,
        )
    worker = jobs.WorkerIdentity("bench", 0)
    claimed = jobs.claim_next_job(engine, worker=worker, devices=["cpu"], lease_s=3600)
    assert claimed is not None and claimed.id is not None
    lease = jobs.Lease(claimed.id, claimed.attempts)
    state = new_state(spec, spec.parse_options(params), torch.device("cpu"))
    relative = Path("jobs") / str(claimed.id) / "epoch-000001.pt"
    saved = save_checkpoint(
        checkpoint_payload(state, "mnist_mlp"), settings.artifacts_dir / relative
    )
    record = progress.CheckpointFile(
        epoch=1,
        path=relative.as_posix(),
        sha256=saved.sha256,
        size_bytes=saved.size_bytes,
        is_final=True,
    )
    progress.record_checkpoint(engine, lease, record, keep=1)
    announce_success(settings.artifacts_dir, "mnist_mlp", claimed.id)
    jobs.finish_job(engine, lease)
    engine.dispose()
    return claimed.id


def multipart_lua(png: Path, script: Path) -> None:
    """A wrk script posting ``png`` as multipart field ``file``, body built once."""
    script.write_text(
        f'local f = io.open("{png}", "rb"); local img = f:read("*a"); f:close()\n'
        'wrk.method = "POST"\n'
        f'wrk.headers["Content-Type"] = "multipart/form-data; boundary={BOUNDARY}"\n'
        f'wrk.body = "--{BOUNDARY}\\r\\nContent-Disposition: form-data; name=\\"file\\"; '
        'filename=\\"digit.png\\"\\r\\nContent-Type: image/png\\r\\n\\r\\n" .. img .. '
        f'"\\r\\n--{BOUNDARY}--\\r\\n"\n'
    )


def parse_wrk(connections: int, text: str) -> Load:
    def ms(label: str) -> float:
        match = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)\b", text)
        if match is None:
            raise ValueError(f"no {label}% latency in wrk output:\n{text}")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    return Load(
        connections=connections,
        requests_per_s=float(rate.group(1)) if rate else 0.0,
        p50_ms=ms("50"),
        p99_ms=ms("99"),
        errors=int(errors.group(1)) if errors else 0,
    )


def run_wrk(url: str, script: Path, connections: int, duration_s: int) -> Load:
    threads = 1 if connections < 2 else 2
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--latency"]
    output = subprocess.run(
        [*command, "-s", str(script), url], capture_output=True, text=True, check=True
    ).stdout
    return parse_wrk(connections, output)


def run_torchserve(connections: list[int]) -> dict[int, Load]:
    """Run the anchor script and read its wrk figures (it prints one block per count)."""
    output = subprocess.run(
        ["bash", str(ANCHOR), *map(str, connections)], capture_output=True, text=True, check=True
    ).stdout
    blocks = re.split(r"== torchserve, (\d+) connections", output)
    return {
        int(count): parse_wrk(int(count), body)
        for count, body in zip(blocks[1::2], blocks[2::2], strict=True)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--processes", type=int, default=2, help="our HTTP processes")
    parser.add_argument("--torchserve", action="store_true", help="also run the anchor")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    ours: dict[int, Load] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings(database_url=f"sqlite:///{root / 'kiln.db'}", artifacts_dir=root / "a")
        job_id = seed_mlp_job(settings)
        png = root / "digit.png"
        png.write_bytes(digit_png())
        script = root / "post.lua"
        multipart_lua(png, script)
        server = LiveServer(settings, root / "server.log", workers=0, processes=args.processes)
        server.start()
        try:
            check = server.client().post(
                "/predict/mnist", files={"file": ("digit.png", png.read_bytes(), "image/png")}
            )
            logger.info("check: %s", check.text[:160])
            assert check.status_code == 200 and check.json()["job_id"] == job_id
            # Warm every HTTP process first: each one's first prediction pays one-time
            # set-up (~0.1-0.2 s), and wrk's latency correction turns that one slow reply
            # into synthetic samples across the whole tail (p99 of 45-160 ms at 1
            # connection when only the first reply was slow). TorchServe's workers are
            # likewise loaded before the anchor script measures.
            run_wrk(f"{server.url}/predict/mnist", script, 8, 2)
            for connections in args.connections:
                ours[connections] = run_wrk(
                    f"{server.url}/predict/mnist", script, connections, args.duration
                )
        finally:
            server.stop()
    theirs = run_torchserve(args.connections) if args.torchserve else {}
    report(ours, theirs, args.processes)


def report(ours: dict[int, Load], theirs: dict[int, Load], processes: int) -> None:
    logger.info(
        "%-26s %6s %10s %9s %9s %7s", "server", "conns", "req/s", "p50 ms", "p99 ms", "non-2xx"
    )
    for connections, load in ours.items():
        rows = [(f"torchkiln ({processes} proc)", load)]
        if connections in theirs:
            rows.append(("torchserve 0.12 (2 workers)", theirs[connections]))
        for name, row in rows:
            logger.info(
                "%-26s %6d %10.0f %9.2f %9.2f %7d",
                name,
                connections,
                row.requests_per_s,
                row.p50_ms,
                row.p99_ms,
                row.errors,
            )
        if connections in theirs:
            other = theirs[connections]
            logger.info(
                "%-26s %6d %9.2fx %8.2fx %8.2fx",
                "ratio ours/theirs",
                connections,
                load.requests_per_s / other.requests_per_s,
                load.p50_ms / other.p50_ms,
                load.p99_ms / other.p99_ms,
            )


if __name__ == "__main__":
    main()
