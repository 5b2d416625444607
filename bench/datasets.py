"""Uploading a large CSV: the server's memory while it ingests, and schema inference's speed.

Generates a ``--rows`` x 20-column CSV (1,000,000 rows: about 200 MB; 10 float, 5 integer,
3 categorical, 1 boolean and 1 free-text column) in a temporary folder, starts
``torchkiln serve`` (one HTTP process, no training workers), warms it up with a tiny upload
(the imports are not the upload's memory), then streams the CSV to ``POST /datasets`` while
sampling the server's VmRSS every 20 ms. Prints the RSS growth (peak during the upload minus
before it; the target is under 150 MB) and the upload's wall time.

Then, in this process, times schema inference (sniffing, reading the CSV and gathering the
per-column figures: what the schema costs, without writing ``table.parquet``) and the whole
ingest (the same with the Parquet file written, as ``dataset_ingest.ingest`` runs it) against
``pandas.read_csv`` of the same file: medians of ``--repeats`` rounds, the three taken in
turns in each; the target is a schema inference ratio of at most 2. Wall and CPU seconds
both: on a shared machine the wall clock mostly measures waits.

    .venv/bin/python bench/datasets.py [--rows 1000000] [--repeats 3] [--keep DIR]
                                       [--tabular]

Hook for more parts: ``--tabular`` imports ``bench/tabular_epoch.py`` and calls its
``run(csv_path, server, client, dataset) -> dict[str, float]`` with the generated CSV, the
running server (``tests.utils.live_server.LiveServer``), an ``httpx.Client`` on it and the
uploaded dataset's JSON, and logs the figures it returns.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.conftest import make_settings  # noqa: E402
from tests.utils.live_server import LiveServer  # noqa: E402
from torchkiln.service.store import dataset_tables  # noqa: E402

logger = logging.getLogger("bench.datasets")
CHUNK_ROWS = 100_000
CITIES = np.array(["Oslo", "Rome", "Lima", "Pune", "Kyiv", "Doha", "Baku", "Riga"])
GRADES = np.array(["low", "mid", "high"])
RSS_TARGET_MB = 150
RATIO_TARGET = 2.0


def generate_csv(path: Path, rows: int, seed: int = 0) -> Path:
    """A 20-column CSV of ``rows`` rows, written in chunks (never whole in memory)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    for start in range(0, rows, CHUNK_ROWS):
        n = min(CHUNK_ROWS, rows - start)
        columns: dict[str, Any] = {f"f{i}": rng.normal(size=n).round(9) for i in range(10)}
        columns.update({f"i{i}": rng.integers(0, 10 ** (i + 2), size=n) for i in range(5)})
        columns["city"] = CITIES[rng.integers(0, len(CITIES), size=n)]
        columns["grade"] = GRADES[rng.integers(0, len(GRADES), size=n)]
        columns["code"] = np.char.add("c", rng.integers(0, 500, size=n).astype(str))
        columns["flag"] = rng.integers(0, 2, size=n).astype(bool)
        columns["note"] = np.char.add("row-number-", np.arange(start, start + n).astype(str))
        frame = pd.DataFrame(columns)
        frame.to_csv(path, mode="a", header=start == 0, index=False)
    return path


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class RssSampler:
    """The largest VmRSS of ``pid`` seen while running, sampled every ``interval_s``."""

    def __init__(self, pid: int, interval_s: float = 0.02) -> None:
        self.pid, self.interval_s, self.peak_kb = pid, interval_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, rss_kb(self.pid))
            time.sleep(self.interval_s)


def upload(client: httpx.Client, path: Path) -> dict[str, Any]:
    with path.open("rb") as data:
        response = client.post("/datasets", files={"file": (path.name, data)}, timeout=None)
    response.raise_for_status()
    return response.json()


def measure_upload(server: LiveServer, csv_path: Path, warm_path: Path) -> dict[str, Any]:
    assert server.process is not None
    pid = server.process.pid
    with server.client() as client:
        upload(client, warm_path)
        before = rss_kb(pid)
        started = time.perf_counter()
        with RssSampler(pid) as sampler:
            dataset = upload(client, csv_path)
        seconds = time.perf_counter() - started
    return {
        "dataset": dataset,
        "rss_before_mb": before / 1024,
        "rss_peak_mb": sampler.peak_kb / 1024,
        "rss_growth_mb": (sampler.peak_kb - before) / 1024,
        "upload_s": seconds,
    }


def time_inference(csv_path: Path, work: Path, repeats: int) -> dict[str, float]:
    """Median seconds (wall and CPU) over ``repeats`` rounds, each taking in turn: schema
    inference (sniffing, then reading the CSV and gathering the column figures, no Parquet:
    ``convert_text`` without a file), the whole ingest (the same with ``table.parquet``
    written, as ``dataset_ingest.ingest`` runs it) and ``pandas.read_csv``. CPU seconds as
    well: on a shared machine the wall clock mostly measures the wait for a core."""
    import pandas as pd

    times: dict[str, list[float]] = {}

    def timed(name: str, action: Callable[[], object]) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        times.setdefault(name, []).append(time.perf_counter() - wall)
        times.setdefault(name + "_cpu", []).append(time.process_time() - cpu)

    def ingest(table: Path | None) -> None:
        opener = dataset_tables.text_opener(csv_path, gzipped=False)
        delimiter, header = dataset_tables.sniff_text(dataset_tables.text_head(opener))
        dataset_tables.convert_text(opener, delimiter, header, table)

    table = work / "ingest.parquet"
    for _ in range(repeats):
        timed("inference", lambda: ingest(None))
        timed("pandas", lambda: pd.read_csv(csv_path))
        timed("ingest", lambda: ingest(table))
        table.unlink()
    median = {name: statistics.median(values) for name, values in times.items()}
    for clock in ("", "_cpu"):
        for part in ("inference", "ingest"):
            median[f"{part}_ratio{clock}"] = median[part + clock] / median["pandas" + clock]
    return median


def run_tabular(csv_path: Path, server: LiveServer, dataset: dict[str, Any]) -> None:
    try:
        part = importlib.import_module("tabular_epoch")
    except ModuleNotFoundError:
        logger.info("--tabular: bench/tabular_epoch.py is not there yet; skipped")
        return
    with server.client() as client:
        figures = part.run(csv_path, server, client, dataset)
    for name, value in figures.items():
        logger.info("tabular %-28s %10.3f", name, value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="Work in this folder and keep it.")
    parser.add_argument("--tabular", action="store_true", help="Run bench/tabular_epoch.py too.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    root = args.keep or Path(tempfile.mkdtemp(prefix="torchkiln-bench-datasets-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        csv_path = root / "big.csv"
        if not csv_path.exists():
            started = time.perf_counter()
            generate_csv(csv_path, args.rows)
            logger.info("generated %s in %.1f s", csv_path, time.perf_counter() - started)
        warm_path = root / "warm.csv"
        warm_path.write_text("a,b\n1,x\n2,y\n")
        size_mb = csv_path.stat().st_size / 2**20
        # A fresh server each run: a kept one already holds these bytes, and answers the
        # upload from its earlier ingest without ingesting.
        shutil.rmtree(root / "server", ignore_errors=True)
        (root / "server.db").unlink(missing_ok=True)
        settings = make_settings(root / "server", f"sqlite:///{root / 'server.db'}")
        (root / "server").mkdir()
        server = LiveServer(settings, root / "server.log", workers=0)
        server.start()
        try:
            figures = measure_upload(server, csv_path, warm_path)
            if args.tabular:
                run_tabular(csv_path, server, figures["dataset"])
        finally:
            server.stop()
        schema = figures["dataset"]["schema"]
        logger.info(
            "upload of %.0f MB (%d rows x %d columns): %.1f s, server RSS %.0f -> %.0f MB, "
            "growth %.0f MB (target < %d MB)",
            size_mb,
            schema["rows"],
            len(schema["columns"]),
            figures["upload_s"],
            figures["rss_before_mb"],
            figures["rss_peak_mb"],
            figures["rss_growth_mb"],
            RSS_TARGET_MB,
        )
        speed = time_inference(csv_path, root, args.repeats)
        logger.info(
            "medians of %d rounds: pandas.read_csv %.2f s wall, %.2f s CPU",
            args.repeats,
            speed["pandas"],
            speed["pandas_cpu"],
        )
        for part, label in (
            ("inference", "schema inference (read + column figures)"),
            ("ingest", "whole ingest (the same + table.parquet)"),
        ):
            logger.info(
                "%s %.2f s wall, %.2f s CPU; ratio to pandas %.2f wall, %.2f CPU (target <= %.1f)",
                label,
                speed[part],
                speed[part + "_cpu"],
                speed[part + "_ratio"],
                speed[part + "_ratio_cpu"],
                RATIO_TARGET,
            )
        logger.info("load average during the run: %s", Path("/proc/loadavg").read_text().strip())
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
