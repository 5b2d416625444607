"""Sweeps and early stopping over real HTTP, with real worker processes."""

from __future__ import annotations

from typing import Any

import httpx

from tests.utils.live_server import wait_for_job
from tests.utils.live_server import wait_for_sweep as wait_for_live_sweep

SWEEP_TIMEOUT_S = 300


def wait_for_sweep(http: httpx.Client, sweep_id: int) -> dict[str, Any]:
    return wait_for_live_sweep(http, sweep_id, SWEEP_TIMEOUT_S)


def start_sweep(http: httpx.Client, body: dict[str, Any]) -> int:
    response = http.post("/sweeps", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_a_six_trial_diabetes_sweep_runs_and_ranks_its_trials(http: httpx.Client) -> None:
    space = {"lr": [0.01, 0.03, 0.1], "batch_size": [16, 32]}
    body = {"model": "diabetes", "params": {"epochs": 10}, "space": space}
    board = wait_for_sweep(http, start_sweep(http, body))

    trials = board["leaderboard"]
    assert len(trials) == 6 and board["finished"] == 6
    assert {t["status"] for t in trials} == {"succeeded"}
    assert all(t["epoch"] == t["epochs"] == 10 for t in trials)
    values = [t["best_value"] for t in trials]
    assert None not in values and values == sorted(values)
    assert [t["rank"] for t in trials] == list(range(1, 7))
    assert sorted((t["params"]["lr"], t["params"]["batch_size"]) for t in trials) == sorted(
        (lr, bs) for lr in space["lr"] for bs in space["batch_size"]
    )
    best = trials[0]
    history = http.get(f"/jobs/{best['job_id']}/metrics", params={"name": "val_loss"}).json()
    assert min(p["value"] for p in history["points"]) == best["best_value"]
    assert board["winner_job_id"] == best["job_id"]

    promoted = http.post(f"/sweeps/{board['id']}/promote", json={"alias": "champion"})
    assert promoted.status_code == 200, promoted.text
    answer = http.post(
        "/predict/diabetes", params={"alias": "champion"}, json={"features": [[0.0] * 8]}
    )
    assert answer.status_code == 200 and answer.json()["job_id"] == best["job_id"]
    listed = http.get("/sweeps").json()
    assert board["id"] in [s["id"] for s in listed["data"]]


def test_halving_prunes_the_worst_trials_at_the_rung(http: httpx.Client) -> None:
    # Claimed in this order: the small learning rates reach the rung last, and worst.
    body = {
        "model": "diabetes",
        "params": {"epochs": 6, "momentum": 0.9},
        "space": {"lr": [0.3, 0.1, 0.003, 0.001]},
        "halving": {"rungs": [2], "eta": 3},
    }
    board = wait_for_sweep(http, start_sweep(http, body))
    by_lr = {t["params"]["lr"]: t for t in board["leaderboard"]}
    slowest = by_lr[0.001]
    assert slowest["status"] == "pruned" and slowest["epoch"] == 2, slowest
    assert slowest["stop_reason"].startswith("pruned by successive halving at epoch 2")
    assert any(t["epoch"] == 6 for t in board["leaderboard"])
    assert board["winner_job_id"] in {t["job_id"] for t in board["leaderboard"] if t["epoch"] == 6}


def test_early_stopping_ends_a_job_as_succeeded_with_its_reason(http: httpx.Client) -> None:
    rule = {"metric": "val_loss", "patience": 3, "min_delta": 0.001}
    params = {"epochs": 400, "lr": 0.5, "early_stopping": rule, "scheduler": {"kind": "cosine"}}
    response = http.post("/jobs", json={"model": "diabetes", "params": params})
    assert response.status_code == 201, response.text
    job = wait_for_job(http, response.json()["id"], timeout_s=SWEEP_TIMEOUT_S)
    assert job["status"] == "succeeded" and job["epoch"] < 400, job
    assert job["stop_reason"].startswith("early stopping: val_loss did not improve by 0.001")
    rates = http.get(f"/jobs/{job['id']}/metrics", params={"name": "lr"}).json()["points"]
    assert len(rates) == job["epoch"] and rates[0]["value"] == 0.5 > rates[-1]["value"]
