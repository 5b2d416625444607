"""Job labels in the store on both databases: the tag filter reads the JSON list's text."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from tests.utils.store_jobs import enqueue
from torchkiln.service.store import jobs
from torchkiln.service.store.db import read_session, write_session


def listed(engine: Engine, **query: object) -> list[int]:
    with read_session(engine) as session:
        page, count = jobs.list_jobs(session, status=None, model=None, limit=50, offset=0, **query)
    assert count == len(page)
    return [job.id for job in page]  # type: ignore[misc]


def test_tags_text_search_and_sort(any_engine: Engine) -> None:
    first, second, third = enqueue(any_engine), enqueue(any_engine), enqueue(any_engine)
    with write_session(any_engine) as session:
        jobs.update_job(session=session, job_id=first, changes={"tags": ["keep"], "name": "B"})
        jobs.update_job(session=session, job_id=second, changes={"tags": ["keeper", "x"]})
        jobs.update_job(session=session, job_id=third, changes={"note": "Keep this one"})
    assert listed(any_engine, tag="keep") == [first]
    assert listed(any_engine, tag="x") == [second]
    assert listed(any_engine, q="keep") == [third]
    assert listed(any_engine, q="b") == [first]
    assert listed(any_engine, sort="name") == [first, third, second]
    assert listed(any_engine, sort="id") == [first, second, third]
    with read_session(any_engine) as session:
        assert jobs.get_job(session, second).tags == ["keeper", "x"]
