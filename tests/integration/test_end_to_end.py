"""Submit → train → predict over real HTTP, with real worker processes and SQLite."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.utils.http_jobs import predict, submit
from tests.utils.live_server import wait_for_job


def history(http: httpx.Client, job_id: int, name: str = "train_loss") -> list[dict]:
    return http.get(f"/jobs/{job_id}/metrics", params={"name": name}).json()["points"]


def test_every_small_model_trains_and_answers(http: httpx.Client) -> None:
    ids = {
        "linear": submit(http, "linear", epochs=1000),
        "logistic_hours": submit(http, "logistic_hours", epochs=1000, optimizer="sgd", lr=0.05),
        "quadratic": submit(http, "quadratic"),
        "linear_noisy": submit(http, "linear_noisy"),
        "clusters2d": submit(http, "clusters2d"),
    }
    jobs = {model: wait_for_job(http, job_id) for model, job_id in ids.items()}
    for model, job in jobs.items():
        assert job["status"] == "succeeded", job
        assert job["epoch"] == job["epochs"] and job["device"] == "cpu"
        assert job["torch_version"] and job["worker"]["pid"] > 0 and job["attempts"] == 1
        assert job["started_at"] and job["finished_at"] and job["duration_s"] >= 0
        epochs = [p["epoch"] for p in history(http, ids[model])]
        assert epochs == list(range(1, job["epochs"] + 1)), model

    linear = predict(http, "linear", {"x": [4.0]})
    assert linear["job_id"] == ids["linear"]
    assert linear["y"][0] == pytest.approx(8.0, abs=0.05)
    hours = predict(http, "logistic_hours", {"hours": [1.0, 2.5, 4.0]})
    p1, _, p4 = hours["probabilities"]
    assert p1 < 0.5 < p4 and hours["job_id"] == ids["logistic_hours"]
    assert predict(http, "quadratic", {"x": [4.0]})["y"][0] == pytest.approx(9.0, abs=0.1)
    assert predict(http, "linear_noisy", {"x": [4.0]})["y"][0] == pytest.approx(11.0, abs=1.0)
    clusters = predict(http, "clusters2d", {"points": [[2.7, 2.7], [-0.7, -0.7]]})
    assert clusters["labels"] == [1, 0]
    accuracy = history(http, ids["clusters2d"], "train_accuracy")[-1]["value"]
    assert accuracy > 0.9


def test_a_new_version_serves_only_once_promoted(http: httpx.Client) -> None:
    doubled = submit(http, "linear", epochs=1000)
    wait_for_job(http, doubled)
    serving = predict(http, "linear", {"x": [4.0]})
    assert serving["alias"] == "production"
    http.put("/models/linear/aliases/production", json={"job_id": doubled}).raise_for_status()
    assert predict(http, "linear", {"x": [4.0]})["job_id"] == doubled
    tripled = submit(http, "linear", epochs=1000, data={"x": [1, 2, 3], "y": [3, 6, 9]})
    wait_for_job(http, tripled)
    still = predict(http, "linear", {"x": [4.0]})
    assert still["job_id"] == doubled and still["y"][0] == pytest.approx(8.0, abs=0.05)
    picked = predict(http, "linear", {"x": [4.0]}, job_id=tripled)
    assert picked["job_id"] == tripled and picked["alias"] is None
    assert picked["y"][0] == pytest.approx(12.0, abs=0.05)
    http.put("/models/linear/aliases/production", json={"job_id": tripled}).raise_for_status()
    moved = predict(http, "linear", {"x": [4.0]})
    assert moved["job_id"] == tripled and moved["alias"] == "production"
    # A job of another model is no version of this one.
    wrong_model = http.post("/predict/quadratic", json={"x": [1.0]}, params={"job_id": doubled})
    assert wrong_model.status_code == 404, wrong_model.text
    assert "trained 'linear'" in wrong_model.json()["detail"]
    # job_id and alias together: a precondition that the alias names that job.
    both = {"job_id": tripled, "alias": "production"}
    assert predict(http, "linear", {"x": [4.0]}, **both)["alias"] == "production"
    stale = http.post("/predict/linear", json={"x": [4.0]}, params={**both, "job_id": doubled})
    assert stale.status_code == 409, stale.text
    assert stale.json()["detail"] == f"alias 'production' names job {tripled}, not job {doubled}"


def test_a_promote_rule_moves_production_when_the_job_is_better(http: httpx.Client) -> None:
    good = submit(http, "linear", epochs=1000)
    wait_for_job(http, good)
    http.put("/models/linear/aliases/production", json={"job_id": good}).raise_for_status()
    assert predict(http, "linear", {"x": [4.0]})["job_id"] == good  # cached by the API now
    rule = {"alias": "production", "if_better": "train_loss"}
    worse = http.post(
        "/jobs", json={"model": "linear", "params": {"epochs": 2}, "promote": rule}
    ).json()
    assert worse["promote"] == {**rule, "mode": "min"}
    assert wait_for_job(http, worse["id"])["status"] == "succeeded"
    assert predict(http, "linear", {"x": [4.0]})["job_id"] == good
    always = http.post(
        "/jobs",
        json={"model": "linear", "params": {"epochs": 2}, "promote": {"alias": "production"}},
    ).json()
    assert wait_for_job(http, always["id"])["status"] == "succeeded"
    # The worker moved the alias and touched the marker: the API process looks again.
    assert predict(http, "linear", {"x": [4.0]}) == {
        **predict(http, "linear", {"x": [4.0]}, job_id=always["id"]),
        "alias": "production",
    }


def test_same_spec_twice_gives_identical_histories(http: httpx.Client) -> None:
    spec = {"epochs": 300, "seed": 11, "optimizer": "adam", "lr": 0.02}
    first, second = submit(http, "clusters2d", **spec), submit(http, "clusters2d", **spec)
    for job_id in (first, second):
        job = wait_for_job(http, job_id)
        assert job["status"] == "succeeded" and job["seed"] == 11

    def values(job_id: int) -> list:
        return [(p["epoch"], p["name"], p["value"]) for p in history(http, job_id, "train_loss")]

    assert values(first) == values(second)


def test_cancel_a_running_job_keeps_its_last_checkpoint(http: httpx.Client) -> None:
    job_id = submit(http, "linear_noisy", epochs=100_000, checkpoint_every=200)
    assert wait_for_job(http, job_id, {"running"})["status"] == "running"
    for _ in range(200):
        if http.get(f"/jobs/{job_id}").json()["epoch"] >= 400:
            break
        time.sleep(0.05)
    cancel = http.post(f"/jobs/{job_id}/cancel")
    assert cancel.status_code == 200 and cancel.json()["is_cancel_requested"]
    job = wait_for_job(http, job_id, timeout_s=30)
    assert job["status"] == "cancelled" and job["epoch"] < 100_000
    answer = predict(http, "linear_noisy", {"x": [1.0]}, job_id=job_id)
    assert answer["job_id"] == job_id
    assert http.post(f"/jobs/{job_id}/cancel").status_code == 409


def test_a_diverging_job_fails_and_its_nan_reads_as_null(http: httpx.Client) -> None:
    job_id = submit(http, "linear", lr=10.0, epochs=1000)
    job = wait_for_job(http, job_id)
    assert job["status"] == "failed"
    assert job["error"].startswith("loss diverged at epoch ")
    last_epoch = int(job["error"].rsplit(" ", 1)[1])
    points = history(http, job_id)
    assert points[-1]["epoch"] == last_epoch and points[-1]["value"] is None
