"""A fresh HTTP process builds its routes and loads trained networks before it answers."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.conftest import make_settings
from tests.utils.live_server import LiveServer, wait_for_job
from tests.utils.prometheus_text import sample
from torchkiln.service.api.serving.predictions import ModelCache
from torchkiln.service.store.db import make_engine
from torchkiln.service.store.settings import Settings


def trained(tmp_path: Path, *models: str) -> Settings:
    """Settings of a stopped server that trained one job of each of ``models``, in order."""
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'kiln.db'}")
    live = LiveServer(settings, tmp_path / "training.log", workers=1)
    live.start()
    try:
        with live.client() as http:
            for model in models:
                job = http.post("/jobs", json={"model": model, "params": {"epochs": 20}}).json()
                assert wait_for_job(http, job["id"])["status"] == "succeeded"
    finally:
        live.stop()
    return settings


def test_a_restarted_server_answers_its_first_prediction_from_a_preloaded_network(
    tmp_path: Path,
) -> None:
    settings = trained(tmp_path, "linear")
    serving = LiveServer(settings, tmp_path / "serving.log", workers=0)
    serving.start()
    try:
        with serving.client() as http:
            answer = http.post("/predict/linear", json={"x": [4.0]})
            assert answer.status_code == 200, answer.text
            text = http.get("/metrics").text
    finally:
        serving.stop()
    # The first prediction found its network already loaded: a hit, and no load.
    assert sample(text, "torchkiln_model_cache_hits_total") == 1
    assert sample(text, "torchkiln_model_cache_misses_total") == 0


def test_an_unreadable_checkpoint_is_skipped_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = trained(tmp_path, "linear", "quadratic")
    for checkpoint in (settings.artifacts_dir / "jobs" / "1").glob("*.pt"):
        checkpoint.write_bytes(b"not a checkpoint")
    cache = ModelCache(make_engine(settings), settings.artifact_store())
    with caplog.at_level(logging.WARNING):
        assert cache.warm(["linear", "quadratic", "mnist_mlp"]) == [2]
    assert "could not preload linear" in caplog.text
