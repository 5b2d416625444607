"""Jobs of the uploaded-dataset models trained by a worker, then served by the real app:
JSON rows, CSV files (JSON or CSV back) and image uploads, each with ?job_id."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.models.test_image_classifier import shapes
from tests.models.test_tabular import small_table
from tests.utils.job_runs import perform_next_job
from tests.utils.uploaded_datasets import lookup_in, png, write_images, write_table
from torchkiln.models import REGISTRY
from torchkiln.service.api.app import create_app
from torchkiln.service.store import jobs
from torchkiln.service.store.db import make_engine, read_session, upgrade_database, write_session
from torchkiln.service.store.settings import Settings
from torchkiln.service.store.tables import Job


def trained(settings: Settings, engine: Engine, model: str, params: dict[str, Any]) -> int:
    """Queue a job (params with lineage, as POST /jobs stores them) and run it here."""
    context = {"dataset_lookup": lookup_in(settings.datasets_dir)}
    options = REGISTRY[model].parse_options(params, context=context)
    with write_session(engine) as session:
        job_id = jobs.enqueue_job(
            session=session,
            model=model,
            params=options.model_dump(mode="json"),
            device="cpu",
            priority=0,
            max_attempts=1,
        ).id
    perform_next_job(settings, engine)
    with read_session(engine) as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == "succeeded", job and job.error
    return job_id  # type: ignore[return-value]


def test_tabular_and_image_jobs_answer_through_the_app(tmp_path: Path, settings: Settings) -> None:
    settings = settings.model_copy(update={"datasets_dir": tmp_path / "datasets"})
    table = small_table()
    write_table(settings.datasets_dir, 1, table)
    write_images(settings.datasets_dir, 2, {"": shapes(20, 0)})
    engine = make_engine(settings)
    upgrade_database(engine)
    tabular = trained(settings, engine, "tabular", {"dataset": 1, "target": "colour", "epochs": 2})
    images = trained(
        settings, engine, "image_classifier", {"dataset": 2, "image_size": 8, "epochs": 1}
    )
    engine.dispose()
    row = {k: table[k][0] for k in table if k != "colour"}
    with TestClient(create_app(settings)) as client:
        url = f"/predict/tabular?job_id={tabular}"
        answer = client.post(url, json={"rows": [row, {**row, "colour": "red"}]})
        assert answer.status_code == 200, answer.text
        first = answer.json()["predictions"][0]
        assert first["label"] in {"red", "green", "blue"} and len(first["probabilities"]) == 3
        missing = client.post(url, json={"rows": [{"a": 1.0}]})
        assert missing.status_code == 422 and "'b'" in missing.json()["detail"]
        lines = ["a,b,ok,y,name", "50.0,1,true,100.0,x", "40.0,2,false,80.0,y"]
        text = "\n".join(lines).encode()
        upload = client.post(url, files={"file": ("rows.csv", text, "text/csv")})
        assert upload.status_code == 200 and len(upload.json()["predictions"]) == 2
        as_csv = client.post(
            url, content=text, headers={"content-type": "text/csv", "accept": "text/csv"}
        )
        assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
        scored = list(csv.DictReader(io.StringIO(as_csv.text)))
        assert len(scored) == 2 and {"label", "probability", "probabilities_red"} <= set(scored[0])
        picture = png(np.asarray(shapes(1, 5)["a"][0]))
        image = client.post(
            f"/predict/image_classifier?job_id={images}", files={"file": ("a.png", picture)}
        )
        assert image.status_code == 200, image.text
        assert image.json()["predictions"][0]["label"] in {"a", "b"}
        # ONNX of both networks (slow to export): tests/service/api/test_graph_export.py.
        for job_id, format in (
            (tabular, "onnx"),
            (tabular, "safetensors"),
            (images, "safetensors"),
        ):
            exported = client.get(f"/jobs/{job_id}/export", params={"format": format})
            assert exported.status_code == 200, (format, exported.text)
