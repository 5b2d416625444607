"""/predict/mnist under load, side by side with the machine's ceiling and with TorchServe.

Sets up a temporary torchkiln (SQLite) whose production mnist_mlp job holds a real checkpoint
of the seed MLP (784-512-256-128-64-10, torch.manual_seed(0) weights, as the anchor uses),
starts ``torchkiln serve`` with no training workers, and drives ``POST /predict/mnist`` with
wrk: the same 28x28 PNG each time as a multipart ``file`` field, at each connection count for
``--duration`` seconds, after a 2-second warm-up at 8 connections that is not counted.
Prints req/s, p50 and p99, medians of ``--repeats`` rounds. ``--processes 1 2`` starts one
server per count (``torchkiln serve --processes N``) and drives them in turns.

``--ceiling`` also starts ``../shared/anchors/ceiling``'s ``minimal`` app (uvicorn, one
process, no access log) and drives it with the same script in turns with ours, printing
ours (one process)/minimal; then it starts ours twice more, one process each,
``TORCHKILN_BATCHING=on`` and ``off``, and compares them at ``--batching-connections``.
``--torchserve`` runs ``../shared/anchors/torchserve/run.sh`` (TorchServe 0.12, 2 workers,
same network, same kind of PNG) after each of our rounds, while ours idle, and prints
ours/theirs.

    .venv/bin/python bench/predict.py [--connections 1 8] [--duration 10] [--repeats 1]
                                      [--processes 1 [2 ...]] [--ceiling]
                                      [--batching-connections 64]
                                      [--torchserve]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.utils.live_server import LiveServer, free_port  # noqa: E402
from tests.utils.prometheus_text import sample  # noqa: E402
from tests.utils.seeded_jobs import seed_mlp_job  # noqa: E402
from torchkiln.service.store.settings import Settings  # noqa: E402

ANCHORS = REPO_ROOT.parent / "shared" / "anchors"
ANCHOR = ANCHORS / "torchserve" / "run.sh"
CEILING = ANCHORS / "ceiling"
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


def run_torchserve(connections: list[int]) -> dict[int, list[Load]]:
    """Run the anchor script once and read its wrk figures (one block per count, in order)."""
    output = subprocess.run(
        ["bash", str(ANCHOR), *map(str, connections)], capture_output=True, text=True, check=True
    ).stdout
    blocks = re.split(r"== torchserve, (\d+) connections", output)
    loads: dict[int, list[Load]] = {}
    for count, body in zip(blocks[1::2], blocks[2::2], strict=True):
        loads.setdefault(int(count), []).append(parse_wrk(int(count), body))
    return loads


def median_load(loads: list[Load]) -> Load:
    """Each figure's median over the repeats (not one repeat's figures)."""
    return Load(
        connections=loads[0].connections,
        requests_per_s=statistics.median(load.requests_per_s for load in loads),
        p50_ms=statistics.median(load.p50_ms for load in loads),
        p99_ms=statistics.median(load.p99_ms for load in loads),
        errors=sum(load.errors for load in loads),
    )


class CeilingServer:
    """The anchor's ``minimal`` app: uvicorn, one process, no access log."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{free_port()}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, png: bytes, timeout_s: float = 60.0) -> None:
        port = self.url.rsplit(":", 1)[1]
        command = [sys.executable, "-m", "uvicorn", "app:minimal", "--app-dir", str(CEILING)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, "--port", port, "--no-access-log"], stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if post_digit(self.url, png).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise TimeoutError(f"the ceiling app did not start: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)


def post_digit(url: str, png: bytes) -> httpx.Response:
    files = {"file": ("digit.png", png, "image/png")}
    return httpx.post(f"{url}/predict/mnist", files=files, timeout=30)


def start_ours(settings: Settings, log_path: Path, processes: int, job_id: int) -> LiveServer:
    server = LiveServer(settings, log_path, workers=0, processes=processes)
    server.start()
    check = post_digit(server.url, digit_png())
    logger.info("check (batching %s): %s", settings.batching, check.text[:120])
    assert check.status_code == 200 and check.json()["job_id"] == job_id
    return server


def measure(
    urls: dict[str, str],
    script: Path,
    connections: list[int],
    args: argparse.Namespace,
    after_round: Callable[[], None] | None = None,
) -> dict[str, dict[int, Load]]:
    """Every server at every count, ``--repeats`` rounds taking turns, ``after_round()``
    after each; medians."""
    samples: dict[str, dict[int, list[Load]]] = {name: {} for name in urls}
    for url in urls.values():
        # Warm each HTTP process first: its first prediction pays one-time set-up
        # (~0.1-0.2 s), and wrk's latency correction turns that one slow reply into
        # synthetic samples across the whole tail (p99 of 45-160 ms at 1 connection when
        # only the first reply was slow). TorchServe's workers are likewise loaded first.
        run_wrk(f"{url}/predict/mnist", script, 8, 2)
    for _ in range(args.repeats):
        for count in connections:
            for name, url in urls.items():
                load = run_wrk(f"{url}/predict/mnist", script, count, args.duration)
                samples[name].setdefault(count, []).append(load)
        if after_round is not None:
            after_round()
    return {
        name: {count: median_load(loads) for count, loads in by_count.items()}
        for name, by_count in samples.items()
    }


def ours_name(processes: int) -> str:
    return f"torchkiln ({processes} proc)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1, help="rounds; medians are printed")
    parser.add_argument(
        "--processes", type=int, nargs="+", default=[1], help="our HTTP processes, each count"
    )
    parser.add_argument("--torchserve", action="store_true", help="also run the anchor")
    parser.add_argument(
        "--ceiling", action="store_true", help="also the minimal ceiling app, and batching on/off"
    )
    parser.add_argument(
        "--batching-connections", type=int, default=64, help="with --ceiling; 0 skips it"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings(database_url=f"sqlite:///{root / 'kiln.db'}", artifacts_dir=root / "a")
        job_id = seed_mlp_job(settings)
        png = root / "digit.png"
        png.write_bytes(digit_png())
        script = root / "post.lua"
        multipart_lua(png, script)
        with contextlib.ExitStack() as stack:
            urls = {}
            for processes in args.processes:
                log_path = root / f"server-{processes}.log"
                ours = start_ours(settings, log_path, processes, job_id)
                stack.callback(ours.stop)
                urls[ours_name(processes)] = ours.url
            if args.ceiling:
                ceiling = CeilingServer(root / "ceiling.log")
                stack.callback(ceiling.stop)
                ceiling.start(png.read_bytes())
                urls["minimal"] = ceiling.url
            # TorchServe between our rounds, so both see the machine as it is then.
            torchserve: dict[int, list[Load]] = {}

            def torchserve_round() -> None:
                for count, runs in run_torchserve(args.connections).items():
                    torchserve.setdefault(count, []).extend(runs)

            after_round = torchserve_round if args.torchserve else None
            loads = measure(urls, script, args.connections, args, after_round)
            log_batch_sizes(urls)
            if torchserve:
                loads["torchserve (2 workers)"] = {
                    count: median_load(runs) for count, runs in torchserve.items()
                }
            batching: dict[str, dict[int, Load]] = {}
            if args.ceiling and args.batching_connections:
                stack.close()  # only the two servers compared run now
                batch_urls = {}
                for mode in ("on", "off"):
                    server = start_ours(
                        settings.model_copy(update={"batching": mode}),
                        root / f"batching-{mode}.log",
                        1,
                        job_id,
                    )
                    stack.callback(server.stop)
                    batch_urls[f"batching {mode} (1 proc)"] = server.url
                batching = measure(batch_urls, script, [args.batching_connections], args)
                log_batch_sizes(batch_urls)
    report(loads, batching, args)


def log_batch_sizes(urls: dict[str, str]) -> None:
    """Each torchkiln server's mean samples per forward pass over the whole run."""
    for name, url in urls.items():
        if name.startswith("torchkiln") or name.startswith("batching"):
            text = httpx.get(f"{url}/metrics", timeout=30).text
            passes = sample(text, "torchkiln_predict_batch_size_count", model="mnist_mlp")
            samples = sample(text, "torchkiln_predict_batch_size_sum", model="mnist_mlp")
            if passes and samples:
                logger.info("%s: %.1f samples per forward pass", name, samples / passes)


def report(
    loads: dict[str, dict[int, Load]],
    batching: dict[str, dict[int, Load]],
    args: argparse.Namespace,
) -> None:
    logger.info("medians of %d run(s) of %d s each", args.repeats, args.duration)
    header = ("server", "conns", "req/s", "p50 ms", "p99 ms", "non-2xx")
    logger.info("%-26s %6s %10s %9s %9s %8s", *header)
    for table in (loads, batching):
        for name, by_count in table.items():
            for count, load in sorted(by_count.items()):
                logger.info(
                    "%-26s %6d %10.0f %9.2f %9.2f %8d",
                    name,
                    count,
                    load.requests_per_s,
                    load.p50_ms,
                    load.p99_ms,
                    load.errors,
                )
    logger.info("%-26s %6s %10s %9s %9s", "ratio", "conns", "req/s", "p50", "p99")
    if "minimal" in loads and 1 in args.processes:
        # The ceiling is one process: so is the torchkiln it is compared with.
        ratios(f"{ours_name(1)}/minimal", loads[ours_name(1)], loads["minimal"])
    for name, theirs in loads.items():
        if name.startswith("torchserve"):
            for processes in args.processes:
                ratios(f"{ours_name(processes)}/torchserve", loads[ours_name(processes)], theirs)
    if batching:
        on, off = batching.values()
        ratios("batching on/off", on, off)


def ratios(label: str, ours: dict[int, Load], theirs: dict[int, Load]) -> None:
    """req/s, p50 and p99 of ``ours`` over ``theirs`` at each count both have."""
    for count in sorted(ours.keys() & theirs.keys()):
        mine, other = ours[count], theirs[count]
        logger.info(
            "%-26s %6d %9.2fx %8.2fx %8.2fx",
            label,
            count,
            mine.requests_per_s / other.requests_per_s,
            mine.p50_ms / other.p50_ms,
            mine.p99_ms / other.p99_ms,
        )


if __name__ == "__main__":
    main()
