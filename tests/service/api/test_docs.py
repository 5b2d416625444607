"""/docs and /redoc load every asset from the app itself, and operation ids are short."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_need_no_internet(client: TestClient, page: str) -> None:
    html = client.get(page)
    assert html.status_code == 200
    assert "https://" not in html.text and "http://" not in html.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
    scripts = [a for a in assets if a.endswith(".js")]
    assert scripts, html.text
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
    assert all(len(client.get(s).content) > 100_000 for s in scripts)


def test_operation_ids_are_the_route_names(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    ids = [op["operationId"] for methods in paths.values() for op in methods.values()]
    assert len(ids) == len(set(ids))
    assert paths["/jobs/{job_id}/metrics"]["get"]["operationId"] == "read_metrics"
    assert paths["/v2/models/{name}/infer"]["post"]["operationId"] == "v2_infer"
    assert paths["/predict/linear"]["post"]["operationId"] == "predict_linear"
