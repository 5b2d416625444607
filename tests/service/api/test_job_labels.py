"""Job names, tags and notes (PATCH /jobs/{id}, GET /jobs filters and sort), and why a
queued job waits."""

from __future__ import annotations

from fastapi.testclient import TestClient

from torchkiln.service.store.db import make_engine
from torchkiln.service.store.jobs import WorkerIdentity
from torchkiln.service.store.settings import Settings
from torchkiln.service.store.worker_processes import register_worker


def submit(client: TestClient, **body: object) -> dict:
    response = client.post("/jobs", json={"model": "linear", **body})
    assert response.status_code == 201, response.text
    return response.json()


def ids(client: TestClient, **query: object) -> list[int]:
    response = client.get("/jobs", params=query)
    assert response.status_code == 200, response.text
    return [job["id"] for job in response.json()["data"]]


def test_labels_are_set_at_submit_and_by_patch(client: TestClient) -> None:
    job = submit(client, name="baseline", tags=["a", "lr-sweep"], note="first try")
    assert (job["name"], job["tags"], job["note"]) == ("baseline", ["a", "lr-sweep"], "first try")
    plain = submit(client)
    assert plain["name"] is None and plain["tags"] == [] and plain["note"] is None
    patched = client.patch(f"/jobs/{job['id']}", json={"tags": ["b"], "note": None})
    assert patched.status_code == 200, patched.text
    # Only the fields given change; null clears.
    assert patched.json()["name"] == "baseline" and patched.json()["tags"] == ["b"]
    assert patched.json()["note"] is None
    assert client.get(f"/jobs/{job['id']}").json()["tags"] == ["b"]
    # Any state: a cancelled job can still be labelled.
    client.post(f"/jobs/{plain['id']}/cancel")
    assert client.patch(f"/jobs/{plain['id']}", json={"name": "x"}).json()["name"] == "x"


def test_bad_labels_are_422_naming_the_field(client: TestClient) -> None:
    job = submit(client)
    for body, loc in [
        ({"tags": ['a"b']}, ["body", "tags", 0]),
        ({"name": ""}, ["body", "name"]),
        ({"status": "succeeded"}, ["body", "status"]),
        ({"tags": [f"t{i}" for i in range(17)]}, ["body", "tags"]),
    ]:
        response = client.patch(f"/jobs/{job['id']}", json=body)
        assert response.status_code == 422, (body, response.text)
        assert loc in [e["loc"] for e in response.json()["detail"]], response.text
    assert client.patch("/jobs/999999", json={"name": "x"}).status_code == 404


def test_filter_by_tag_and_text_and_sort(client: TestClient) -> None:
    first = submit(client, name="Alpha run", tags=["keep", "a_b"])["id"]
    second = submit(client, name="beta", tags=["keeper"], note="uses 100% of the ALPHA data")["id"]
    third = submit(client, model="quadratic", tags=["axb"])["id"]
    assert ids(client, tag="keep") == [first]  # whole tags only, not "keeper"
    assert ids(client, tag="a_b") == [first]  # "_" is no wildcard
    assert ids(client, q="alpha") == [second, first]  # name or note, any case
    assert ids(client, q="100%") == [second]
    assert ids(client, q="quadr") == [third]  # the model's name too
    assert ids(client, sort="id") == [first, second, third]
    assert ids(client, sort="-name") == [second, first, third]  # no name: last
    assert client.get("/jobs", params={"sort": "params"}).status_code == 422


def test_waiting_reason_names_a_device_no_live_worker_has(
    client: TestClient, settings: Settings
) -> None:
    job = submit(client, device="cuda")
    assert "no live worker" in job["waiting_reason"]
    engine = make_engine(settings)
    register_worker(engine, WorkerIdentity(host="h", pid=1), "cpu")
    engine.dispose()
    cuda = client.get(f"/jobs/{job['id']}").json()
    assert cuda["waiting_reason"] == "no live worker can run device 'cuda'; live workers have: cpu"
    assert submit(client)["waiting_reason"] is None  # auto: a cpu worker takes it
    listed = {j["id"]: j["waiting_reason"] for j in client.get("/jobs").json()["data"]}
    assert listed[job["id"]] == cuda["waiting_reason"]
    client.post(f"/jobs/{job['id']}/cancel")
    assert client.get(f"/jobs/{job['id']}").json()["waiting_reason"] is None
