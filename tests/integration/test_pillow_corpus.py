"""Pillow's own odd and broken test images against a real server: each is answered or refused.

The corpus (tests/data/pillow_images, see its README) holds fuzzer finds, truncated files,
decompression bombs and every format Pillow reads. Every upload must get a 200 or a 4xx with
a ``detail``: never a 5xx, a dropped connection or a hang, and the server must outlive it.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.utils.live_server import LiveServer
from tests.utils.trained_server import start_image_models

logger = logging.getLogger(__name__)

CORPUS = Path(__file__).resolve().parents[1] / "data" / "pillow_images" / "images"
# Bounds no healthy run comes near (uploads take milliseconds), so they cannot flake; a hung
# decoder or a stalled event loop passes them by far.
REQUEST_BOUND_S = 10.0
HEALTHZ_BOUND_S = 5.0
HEALTHZ_EVERY_S = 0.2
BATCH_SIZE = 8
DROPPED = 0  # the status recorded when no answer came back
# Files whose answer is known: the hostile ones refused the right way, the odd valid ones read.
EXPECTED_STATUS = {
    "decompression_bomb.gif": 413,
    "bmp/b/reallybig.bmp": 413,
    "bmp/b/badwidth.bmp": 413,
    "truncated_jpeg.jpg": 422,
    "truncated_image.png": 422,
    "broken.png": 422,
    "fli_overrun.bin": 415,
    "decompression_bomb.ico": 415,
    "app13-multiple.jpg": 200,  # progressive
    "pil_sample_cmyk.jpg": 200,
    "hopper_orientation_6.jpg": 200,
    "chi.gif": 200,  # 31 frames
}


@dataclass(frozen=True)
class Outcome:
    status: int
    seconds: float
    body: object  # the JSON answer, else the text, else why the connection dropped


def corpus_files() -> list[Path]:
    files = [p for p in CORPUS.rglob("*") if p.is_file()]
    return sorted(files, key=lambda p: p.relative_to(CORPUS).as_posix())


def post(http: httpx.Client, path: str, **request: object) -> Outcome:
    started = time.monotonic()
    try:
        response = http.post(path, **request)  # type: ignore[arg-type]
    except httpx.TransportError as exc:
        return Outcome(DROPPED, time.monotonic() - started, repr(exc))
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return Outcome(response.status_code, time.monotonic() - started, body)


def is_well_formed(outcome: Outcome) -> bool:
    """A 200, or a 4xx whose JSON body explains itself in ``detail``."""
    if outcome.status == 200:
        return True
    body = outcome.body
    return 400 <= outcome.status < 500 and isinstance(body, dict) and bool(body.get("detail"))


class HealthzWatch:
    """Polls /healthz from a thread while the corpus is uploaded: a stalled loop shows here."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latencies_s: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> HealthzWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self._stop.wait(HEALTHZ_EVERY_S):
                started = time.monotonic()
                try:
                    status = http.get("/healthz").status_code
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                self.latencies_s.append(time.monotonic() - started)
                if status != 200:
                    self.failures.append(f"/healthz answered {status}")


def timing_summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "n": len(ordered),
        "median_s": round(statistics.median(ordered), 4),
        "p95_s": round(ordered[int(len(ordered) * 0.95)], 4),
        "max_s": round(ordered[-1], 4),
    }


@pytest.fixture(scope="module")
def corpus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with trained mnist and cifar10 models, so uploads get as far as the network."""
    live = start_image_models(tmp_path_factory.mktemp("corpus"), ("mnist_mlp", "cifar10_cnn"))
    yield live
    live.stop()


def single_uploads(data: bytes, name: str) -> dict[str, tuple[str, dict[str, object]]]:
    """The ways one file is sent: a raw body to each tag's route, and a multipart field."""
    # image/png whatever the file holds: the service reads the bytes, not the declared type.
    raw = {"content": data, "headers": {"content-type": "image/png"}}
    return {
        "mnist raw": ("/predict/mnist", raw),
        "mnist multipart": (
            "/predict/mnist",
            {"files": {"file": (name, data, "application/octet-stream")}},
        ),
        "cifar10 raw": ("/predict/cifar10", raw),
    }


@dataclass
class CorpusRun:
    """Each corpus file sent each way (``{way: {file: outcome}}``), and /healthz meanwhile."""

    outcomes: dict[str, dict[str, Outcome]]
    healthz: HealthzWatch


@pytest.fixture(scope="module")
def corpus_run(corpus_server: LiveServer) -> CorpusRun:
    outcomes: dict[str, dict[str, Outcome]] = {}
    with HealthzWatch(corpus_server.url) as healthz, corpus_server.client() as http:
        for path in corpus_files():
            name = path.relative_to(CORPUS).as_posix()
            for way, (route, request) in single_uploads(path.read_bytes(), path.name).items():
                outcomes.setdefault(way, {})[name] = post(http, route, **request)
    return CorpusRun(outcomes, healthz)


def test_every_corpus_file_is_answered_or_refused(
    corpus_run: CorpusRun, record_property: pytest.RecordProperty
) -> None:
    assert len(corpus_files()) >= 300, "the corpus is missing; see tests/data/pillow_images"
    counts = {
        way: dict(sorted(Counter(o.status for o in by_file.values()).items()))
        for way, by_file in corpus_run.outcomes.items()
    }
    seconds = [o.seconds for by_file in corpus_run.outcomes.values() for o in by_file.values()]
    record_property("status_counts", counts)
    record_property("request_seconds", timing_summary(seconds))
    logger.info("status counts %s; request timings %s", counts, timing_summary(seconds))
    for way, by_file in corpus_run.outcomes.items():
        bad = {name: o for name, o in by_file.items() if not is_well_formed(o)}
        slow = {name: o.seconds for name, o in by_file.items() if o.seconds > REQUEST_BOUND_S}
        assert not bad, f"{way}: {bad}"
        assert not slow, f"{way}: {slow}"


def test_known_files_get_their_known_answers(corpus_run: CorpusRun) -> None:
    raw = corpus_run.outcomes["mnist raw"]
    assert {name: raw[name].status for name in EXPECTED_STATUS} == EXPECTED_STATUS
    eps = {name: o.status for name, o in raw.items() if name.endswith(".eps")}
    assert eps and set(eps.values()) == {415}, eps  # never handed to Ghostscript


def test_healthz_answers_throughout_the_corpus(
    corpus_run: CorpusRun, record_property: pytest.RecordProperty
) -> None:
    latencies = corpus_run.healthz.latencies_s
    record_property("healthz_seconds", timing_summary(latencies))
    logger.info("healthz timings %s", timing_summary(latencies))
    assert latencies and not corpus_run.healthz.failures
    assert max(latencies) < HEALTHZ_BOUND_S, timing_summary(latencies)


def test_a_batch_answers_only_when_each_of_its_files_does(
    corpus_server: LiveServer, corpus_run: CorpusRun, record_property: pytest.RecordProperty
) -> None:
    singles = corpus_run.outcomes["mnist multipart"]
    names = sorted(singles)
    answered = [name for name in names if singles[name].status == 200]
    batches = [names[i : i + BATCH_SIZE] for i in range(0, len(names), BATCH_SIZE)]
    batches.append(answered[: BATCH_SIZE * 4])  # one batch every file of which is answered
    statuses: Counter[int] = Counter()
    with corpus_server.client() as http:
        for batch in batches:
            files = [("file", (n, (CORPUS / n).read_bytes(), "image/png")) for n in batch]
            outcome = post(http, "/predict/mnist", files=files)
            statuses[outcome.status] += 1
            assert is_well_formed(outcome), (batch, outcome)
            assert outcome.seconds < REQUEST_BOUND_S, (batch, outcome.seconds)
            is_all_answered = all(singles[n].status == 200 for n in batch)
            assert (outcome.status == 200) == is_all_answered, (batch, outcome)
            if outcome.status == 200:
                assert len(outcome.body["predictions"]) == len(batch)  # type: ignore[index]
    record_property("batch_status_counts", dict(statuses))
    logger.info("batch status counts %s", dict(statuses))


def test_the_server_outlives_the_corpus(corpus_server: LiveServer, corpus_run: CorpusRun) -> None:
    assert corpus_server.process is not None and corpus_server.process.poll() is None
    with corpus_server.client() as http:
        assert http.get("/healthz").status_code == 200
    assert "Traceback" not in corpus_server.log_path.read_text(errors="replace")
