"""Sweeps without workers: trials from a space, the leaderboard's order, halving, compare."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from tests.utils.store_jobs import claim
from torchkiln.service.store import jobs, progress, sweeps
from torchkiln.service.store.db import read_session
from torchkiln.service.store.sweep_specs import SweepCreate
from torchkiln.service.store.tables import Job

GRID = {"lr": [0.01, 0.03, 0.1], "batch_size": [16, 32]}


def engine_of(client: TestClient) -> Engine:
    return client.app.state.engine  # type: ignore[attr-defined]


def run_next(
    engine: Engine, history: list[float], metric: str = "val_loss", stop_reason: str | None = None
) -> int:
    """Claim the next queued job and finish it with this history, as a worker would."""
    job = claim(engine)
    assert job is not None and job.id is not None
    lease = jobs.Lease(job.id, job.attempts)
    epochs = [(e, {metric: v, "train_loss": v + 1}) for e, v in enumerate(history, start=1)]
    assert progress.record_epochs(engine, lease, epochs)
    assert jobs.finish_job(engine, lease, stop_reason=stop_reason)
    return job.id


def test_a_grid_queues_one_low_priority_child_per_point(client: TestClient) -> None:
    body = {"model": "diabetes", "params": {"epochs": 8}, "space": GRID}
    created = client.post("/sweeps", json=body)
    assert created.status_code == 201, created.text
    sweep = created.json()
    assert sweep["trials"] == 6 and sweep["mode"] == "min" and sweep["status"] == "running"
    with read_session(engine_of(client)) as session:
        children = session.exec(select(Job).where(Job.sweep_id == sweep["id"])).all()
    assert sorted((c.params["lr"], c.params["batch_size"]) for c in children) == sorted(
        (lr, bs) for lr in GRID["lr"] for bs in GRID["batch_size"]
    )
    assert {c.priority for c in children} == {-10} and {c.epochs for c in children} == {8}
    assert client.get("/sweeps").json()["count"] == 1


def test_random_search_draws_within_ranges_reproducibly() -> None:
    space = {"lr": {"low": 1e-4, "high": 1e-1, "scale": "log"}, "batch_size": {"values": [8, 64]}}
    body = SweepCreate(model="diabetes", space={**space, "seed": [1, 2]}, trials=5, seed=4)
    drawn = sweeps.trial_assignments(body)
    assert len(drawn) == 10 and drawn == sweeps.trial_assignments(body)
    assert all(1e-4 <= d["lr"] <= 1e-1 and d["batch_size"] in (8, 64) for d in drawn)
    ints = SweepCreate(model="diabetes", space={"epochs": {"low": 2, "high": 9}}, trials=20)
    assert all(
        isinstance(d["epochs"], int) and 2 <= d["epochs"] <= 9
        for d in sweeps.trial_assignments(ints)
    )


def test_bad_trials_and_huge_grids_are_refused(client: TestClient) -> None:
    bad = client.post("/sweeps", json={"model": "diabetes", "space": {"lr": [0.1, 100]}})
    assert bad.status_code == 422 and "trial 1" in bad.text
    huge = {"model": "diabetes", "space": {"lr": list(range(1, 20)), "seed": list(range(20))}}
    assert client.post("/sweeps", json=huge).status_code == 422
    assert client.post("/sweeps", json={"model": "nope", "space": {"lr": [1]}}).status_code == 422
    assert client.get("/sweeps/999").status_code == 404


def test_the_leaderboard_is_ordered_by_the_metric_and_names_a_winner(client: TestClient) -> None:
    body = {"model": "diabetes", "space": {"seed": [1, 2, 3, 4]}, "metric": "val_accuracy"}
    sweep_id = client.post("/sweeps", json=body).json()["id"]
    engine = engine_of(client)
    ids = [
        run_next(engine, [0.5, 0.7, 0.6], "val_accuracy"),
        run_next(engine, [0.6, 0.9], "val_accuracy", stop_reason="pruned by successive halving"),
        run_next(engine, [0.8, 0.75], "val_accuracy"),
    ]
    running = client.get(f"/sweeps/{sweep_id}").json()
    assert running["status"] == "running" and running["finished"] == 3
    assert [t["job_id"] for t in running["leaderboard"]][:3] == [ids[1], ids[2], ids[0]]
    assert running["leaderboard"][3]["best_value"] is None  # queued: last
    assert running["leaderboard"][0]["status"] == "pruned"
    assert [t["stop_kind"] for t in running["leaderboard"][:2]] == ["pruned", None]
    assert client.get(f"/jobs/{ids[1]}").json()["stop_kind"] == "pruned"
    assert running["leaderboard"][1]["best_epoch"] == 1
    assert running["leaderboard"][0]["params"] == {"seed": 2}
    run_next(engine, [0.1], "val_accuracy")
    finished = client.get(f"/sweeps/{sweep_id}").json()
    assert finished["status"] == "finished" and finished["winner_job_id"] == ids[2]


def test_halving_stops_trials_outside_the_top_third_at_a_rung(client: TestClient) -> None:
    body = {
        "model": "diabetes",
        "params": {"epochs": 10},
        "space": {"seed": [1, 2, 3, 4, 5]},
        "halving": {"min_epochs": 2, "eta": 3},
    }
    sweep = client.post("/sweeps", json=body).json()
    assert sweep["rungs"] == [2, 6]
    engine = engine_of(client)
    with read_session(engine) as session:
        first = session.exec(select(Job).where(Job.sweep_id == sweep["id"])).first()
    assert first is not None
    rule = sweeps.halving_for(engine, first)
    assert rule is not None and rule.rungs == {2, 6} and rule.metric == "val_loss"
    # Values at epoch 2, recorded in the order the trials reach it: 0.5 first, then 0.4 …
    decisions = []
    for value in (0.5, 0.4, 0.6, 0.3, 0.45):
        job_id = run_next(engine, [1.0, value])
        decisions.append(rule.decide(job_id, 2, value))
    assert decisions[0] is None and decisions[1] is None and decisions[3] is None
    assert decisions[2] is not None and decisions[2].startswith("pruned by successive halving")
    assert "top 1/3 of 3 trials" in decisions[2]
    assert decisions[4] is not None  # 0.45 is worse than a third of [0.5, 0.4, 0.6, 0.3, 0.45]
    assert rule.decide(99, 6, float("nan")) is not None


def test_compare_aligns_histories_by_epoch(client: TestClient) -> None:
    engine = engine_of(client)
    ids = []
    for epochs in (3, 5):
        client.post("/jobs", json={"model": "linear", "params": {"epochs": epochs}})
        ids.append(run_next(engine, [1.0 / e for e in range(1, epochs + 1)]))
    answer = client.get("/jobs/compare", params={"ids": f"{ids[0]},{ids[1]}", "names": "val_loss"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["names"] == ["val_loss"] and [d["job_id"] for d in body["data"]] == ids
    short, long = (d["series"]["val_loss"] for d in body["data"])
    assert [e for e, _ in short] == [1, 2, 3] and [e for e, _ in long] == [1, 2, 3, 4, 5]
    assert short == long[:3]
    both = client.get("/jobs/compare", params=[("ids", str(ids[0])), ("ids", str(ids[1]))])
    assert set(both.json()["names"]) == {"train_loss", "val_loss"}
    sampled = client.get("/jobs/compare", params={"ids": str(ids[1]), "max_points": 4}).json()
    assert len(sampled["data"][0]["series"]["val_loss"]) <= 5
    assert client.get("/jobs/compare", params={"ids": "1,x"}).status_code == 422
    assert client.get("/jobs/compare", params={"ids": "9999"}).status_code == 404


def test_cancelling_a_sweep_stops_its_trials_and_keeps_what_finished(client: TestClient) -> None:
    body = {"model": "diabetes", "space": {"seed": [1, 2, 3, 4]}, "metric": "val_accuracy"}
    sweep_id = client.post("/sweeps", json=body).json()["id"]
    engine = engine_of(client)
    done = run_next(engine, [0.5, 0.7], "val_accuracy")
    running = claim(engine)
    assert running is not None and running.id is not None

    cancelling = client.post(f"/sweeps/{sweep_id}/cancel")
    assert cancelling.status_code == 200, cancelling.text
    assert cancelling.json()["status"] == "cancelling"
    with read_session(engine) as session:
        children = {j.id: j for j in session.exec(select(Job).where(Job.sweep_id == sweep_id))}
    assert children[done].status == "succeeded"
    assert children[running.id].status == "running" and children[running.id].is_cancel_requested
    assert sorted(str(j.status) for i, j in children.items() if i not in (done, running.id)) == [
        "cancelled",
        "cancelled",
    ]
    # Cancelling again while a trial is still stopping changes nothing.
    assert client.post(f"/sweeps/{sweep_id}/cancel").json()["status"] == "cancelling"

    assert jobs.mark_cancelled(engine, jobs.Lease(running.id, running.attempts))
    ended = client.get(f"/sweeps/{sweep_id}").json()
    assert ended["status"] == "cancelled" and ended["winner_job_id"] == done
    assert ended["finished"] == 4
    again = client.post(f"/sweeps/{sweep_id}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
    promoted = client.post(f"/sweeps/{sweep_id}/promote", json={"alias": "champion"})
    assert promoted.status_code == 200 and promoted.json()["winner_job_id"] == done
    assert client.post("/sweeps/999/cancel").status_code == 404
