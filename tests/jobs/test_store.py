"""The job store: migrations match the models, legal transitions only, keyset pagination — on SQLite
and on a real PostgreSQL server (tests/backing/postgres.py), each migrated from an empty database."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from tailor.errors import Conflict, InvalidInput
from tailor.store import db
from tailor.store.db import Base, Store, page, utcnow
from tailor.store.jobs import Job, transition


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """An empty database (no schema yet) of either kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tailor.db'}"
    server = request.getfixturevalue("postgres_server")
    name = f"store_{tmp_path.name}".lower()
    request.addfinalizer(lambda: server.drop_database(name))
    return server.new_database(name)


@pytest.fixture
def store(database_url):
    store = Store(database_url)
    yield store
    store.engine.dispose()


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


def test_migrating_twice_is_harmless(database_url):
    """Every server start migrates: on a database already at the newest revision that changes
    nothing, and loses no row."""
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    url = database_url
    first = Store(url)
    with first.session() as session:
        session.add(new_job(1))
    again = Store(url)
    with again.session() as session:
        assert [job.id for job in session.scalars(select(Job))] == ["job000000001"]
    head = ScriptDirectory(str(Path(db.__file__).parent / "migrations")).get_current_head()
    with again.engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == head
    first.engine.dispose()
    again.engine.dispose()


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


def test_servers_starting_at_once_migrate_one_database_once(postgres_server, tmp_path):
    """Several servers started together on one empty PostgreSQL database: one migrates while the
    others wait on its lock, then all find the newest schema (none fails on a table another made)."""
    import subprocess
    import sys

    name = f"concurrent_{tmp_path.name}".lower()
    url = postgres_server.new_database(name)
    migrate = "import sys; from tailor.store.db import Store; Store(sys.argv[1])"
    starting = [subprocess.Popen([sys.executable, "-c", migrate, url], stderr=subprocess.PIPE, text=True)
                for _ in range(3)]
    errors = [process.communicate(timeout=120)[1] for process in starting]
    failures = [error for process, error in zip(starting, errors) if process.returncode != 0]
    assert failures == []
    store = Store(url)
    with store.session() as session:
        assert session.scalars(select(Job)).all() == []
    store.engine.dispose()
    postgres_server.drop_database(name)
