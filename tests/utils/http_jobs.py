"""The integration tests' HTTP verbs: submit a job, ask for a prediction, asserting success."""

from __future__ import annotations

from typing import Any

import httpx


def submit(http: httpx.Client, model: str, **params: object) -> int:
    """POST /jobs and return the new job's id (201 or the test fails with the body)."""
    response = http.post("/jobs", json={"model": model, "params": params})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def predict(http: httpx.Client, model: str, body: dict, **query: object) -> dict[str, Any]:
    """POST /predict/<model> with a JSON body; 200 or the test fails with the body."""
    response = http.post(f"/predict/{model}", json=body, params=query)
    assert response.status_code == 200, response.text
    return response.json()
