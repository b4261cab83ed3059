"""The job store: migrations match the models, legal transitions only, keyset pagination."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tailor.errors import Conflict, InvalidInput
from tailor.store import db
from tailor.store.db import Base, Store, page, utcnow
from tailor.store.jobs import Job, transition


@pytest.fixture
def store(tmp_path):
    return Store(f"sqlite:///{tmp_path / 'tailor.db'}")


def new_job(index: int, principal: str = "alice", created=None) -> Job:
    now = created or utcnow()
    return Job(id=f"job{index:09d}", arn=f"arn:job/{index}", name=f"job-{index}", principal=principal,
               status="InProgress", phase="queued", customization_type="FINE_TUNING",
               base_model_id="tailor.tiny", base_model_arn="arn:fm/tailor.tiny", output_model_name=f"m{index}",
               role_arn="arn:aws:iam::000000000000:role/r", spec={}, status_details={}, progress={},
               validation_losses=[], stop_requested=False, work_dir="/tmp", created_at=now,
               last_modified_at=now)


def test_migrated_schema_matches_the_models(store):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    # Indexes are declared in the migration only; compare tables and columns.
    assert [d for d in differences if d[0] not in ("add_index", "remove_index")] == []


def test_migrating_twice_is_harmless(tmp_path):
    """Every server start migrates: on a database already at the newest revision that changes
    nothing, and loses no row."""
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    with Store(url).session() as session:
        session.add(new_job(1))
    again = Store(url)
    with again.session() as session:
        assert [job.id for job in session.scalars(select(Job))] == ["job000000001"]
    head = ScriptDirectory(str(Path(db.__file__).parent / "migrations")).get_current_head()
    with again.engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == head


def test_transitions_follow_the_legal_edges(store):
    with store.session() as session:
        job = new_job(1)
        session.add(job)
        transition(job, "Stopping", stop_requested=True)
        with pytest.raises(Conflict, match="Stopping; it cannot become Completed"):
            transition(job, "Completed")
        transition(job, "Stopped")
        assert job.end_time is not None and job.phase == "done"
        with pytest.raises(Conflict):
            transition(job, "InProgress")
    with store.session() as session:
        assert session.scalar(select(Job)).status == "Stopped"


def test_keyset_pages_cover_every_row_once_in_order(store):
    start = utcnow()
    with store.session() as session:
        for i in range(25):  # several rows share a timestamp: the id breaks ties
            session.add(new_job(i, created=start + timedelta(seconds=i // 3)))
        session.add(new_job(99, principal="bob"))
    for descending in (True, False):
        seen, token = [], None
        with store.session() as session:
            while True:
                rows, token = page(session, Job, [Job.principal == "alice"], descending=descending,
                                   limit=7, token=token)
                seen += [row.id for row in rows]
                if token is None:
                    break
        expected = sorted((f"job{i:09d}" for i in range(25)), key=lambda i: (int(i[3:]) // 3, i),
                          reverse=descending)
        assert seen == expected
    with pytest.raises(InvalidInput, match="nextToken"):
        with store.session() as session:
            page(session, Job, [], descending=True, limit=5, token="not-a-token")
