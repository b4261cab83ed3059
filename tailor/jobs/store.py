"""Tailor's state in SQL: customization and evaluation jobs, custom models, deployments, graders,
tags, access keys, and who owns which bucket.

SQLite under TAILOR_HOME by default; any SQLAlchemy URL (e.g. ``postgresql+psycopg://...``) via
``TAILOR_DATABASE_URL``. The schema is created and upgraded by Alembic migrations
(``tailor/jobs/migrations``), never by ``create_all``. A test compares these models with the
migrated schema so they cannot drift apart.

A job's status only moves along the edges in ``JOB_TRANSITIONS``; ``transition`` is the one place
that changes it. Servers and job worker processes all write here, so the database, not any
process's memory, is the truth a restarted server starts from.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    Integer,
    String,
    Text,
    TypeDecorator,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from tailor.errors import Conflict, InvalidInput


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out (SQLite keeps no time zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use UTC-aware datetimes")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    pass


class JobLifecycle:
    """The columns the job runner drives, the same for customization and evaluation jobs: where a
    job is (status, phase), its worker process, a requested stop, its folder and its times."""

    id: Mapped[str] = mapped_column(String(12), primary_key=True)
    arn: Mapped[str] = mapped_column(String(1011), unique=True)
    name: Mapped[str] = mapped_column(String(63), index=True)
    principal: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), index=True)
    # Where an InProgress job is: queued -> starting -> running; "done" once terminal.
    phase: Mapped[str] = mapped_column(String(16), index=True)
    role_arn: Mapped[str] = mapped_column(String(2048))
    client_request_token: Mapped[str | None] = mapped_column(String(256))
    failure_message: Mapped[str | None] = mapped_column(Text)
    pid: Mapped[int | None] = mapped_column(Integer)
    pid_started: Mapped[str | None] = mapped_column(String(32))  # /proc start time: pid reuse guard
    stop_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    work_dir: Mapped[str] = mapped_column(String(4096))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_modified_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Job(JobLifecycle, Base):
    __tablename__ = "jobs"

    customization_type: Mapped[str] = mapped_column(String(32))
    base_model_id: Mapped[str] = mapped_column(String(256))
    base_model_arn: Mapped[str] = mapped_column(String(1011))  # always the foundation model's (botocore's shape)
    # Iterative customization: the custom model training starts from (its base is base_model_arn).
    source_model_arn: Mapped[str | None] = mapped_column(String(1011))
    output_model_name: Mapped[str] = mapped_column(String(63))
    output_model_arn: Mapped[str | None] = mapped_column(String(1011))
    request: Mapped[dict] = mapped_column(JSON)  # the validated CreateModelCustomizationJob request
    status_details: Mapped[dict] = mapped_column(JSON, default=dict)
    progress: Mapped[dict] = mapped_column(JSON, default=dict)
    training_loss: Mapped[float | None] = mapped_column(Float)
    validation_losses: Mapped[list] = mapped_column(JSON, default=list)


class EvaluationJob(JobLifecycle, Base):
    """A model evaluation job (CreateEvaluationJob): one runner starts both kinds of job."""

    __tablename__ = "evaluation_jobs"

    application_type: Mapped[str] = mapped_column(String(32))
    request: Mapped[dict] = mapped_column(JSON)  # the validated CreateEvaluationJob request


class CustomModel(Base):
    __tablename__ = "custom_models"

    id: Mapped[str] = mapped_column(String(12), primary_key=True)
    arn: Mapped[str] = mapped_column(String(1011), unique=True)
    name: Mapped[str] = mapped_column(String(63), index=True)
    principal: Mapped[str] = mapped_column(String(256))
    job_id: Mapped[str | None] = mapped_column(String(12))
    base_model_id: Mapped[str] = mapped_column(String(256))
    base_model_arn: Mapped[str] = mapped_column(String(1011))
    source_model_arn: Mapped[str | None] = mapped_column(String(1011))  # the custom model it was trained from
    customization_type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # Creating | Active | Failed
    failure_message: Mapped[str | None] = mapped_column(Text)
    artifacts_dir: Mapped[str] = mapped_column(String(4096))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Deployment(Base):
    """A provisioned throughput (kind "provisioned") or an on-demand custom model deployment
    (kind "on_demand"): one table, since both serve one model under one ARN.

    ``model_arn`` is what it serves now and ``desired_model_arn`` what it should serve; they differ
    while a model is being loaded. ``tailor.services.deployments`` documents the statuses.
    """

    __tablename__ = "deployments"

    id: Mapped[str] = mapped_column(String(12), primary_key=True)
    arn: Mapped[str] = mapped_column(String(1011), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # provisioned | on_demand
    name: Mapped[str] = mapped_column(String(63))
    principal: Mapped[str] = mapped_column(String(256))
    model_arn: Mapped[str] = mapped_column(String(1011))
    desired_model_arn: Mapped[str] = mapped_column(String(1011))
    foundation_model_arn: Mapped[str] = mapped_column(String(1011))
    model_units: Mapped[int | None] = mapped_column(Integer)  # provisioned only
    desired_model_units: Mapped[int | None] = mapped_column(Integer)
    commitment_duration: Mapped[str | None] = mapped_column(String(16))  # OneMonth | SixMonths
    commitment_expiration: Mapped[datetime | None] = mapped_column(UTCDateTime)
    description: Mapped[str | None] = mapped_column(String(2048))
    # provisioned: Creating | InService | Updating | Failed; on_demand: Creating | Active | Failed
    status: Mapped[str] = mapped_column(String(16), index=True)
    # on_demand only, after a model change: Updating | UpdateCompleted | UpdateFailed
    update_status: Mapped[str | None] = mapped_column(String(16))
    failure_message: Mapped[str | None] = mapped_column(Text)
    client_request_token: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_modified_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Tag(Base):
    __tablename__ = "tags"

    resource_arn: Mapped[str] = mapped_column(String(1011), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class AccessKey(Base):
    __tablename__ = "access_keys"

    access_key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    encrypted_secret: Mapped[str] = mapped_column(Text)
    principal: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Bucket(Base):
    """A bucket and the principal it belongs to (``tailor.services.buckets``): its owner reads and
    writes it; others only what the operator granted them in ``bucket_grants``."""

    __tablename__ = "buckets"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    owner: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BucketGrant(Base):
    """Access to another principal's bucket, granted by the operator: ``read`` or ``write``
    (which includes read)."""

    __tablename__ = "bucket_grants"

    bucket: Mapped[str] = mapped_column(String(63), primary_key=True)
    principal: Mapped[str] = mapped_column(String(256), primary_key=True)
    access: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Grader(Base):
    """A registered RFT grader (``tailor.graders.registry``): a Python file's source, run like an AWS
    Lambda function, or an HTTP endpoint. Installation-wide, like Lambda functions in one account."""

    __tablename__ = "graders"

    id: Mapped[str] = mapped_column(String(12), primary_key=True)
    arn: Mapped[str] = mapped_column(String(256), unique=True)  # arn:aws:lambda:{region}:{account}:function:{name}
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # python | http
    code: Mapped[str | None] = mapped_column(Text)  # python: the file's source
    url: Mapped[str | None] = mapped_column(String(2048))  # http: where batches are POSTed
    environment: Mapped[dict] = mapped_column(JSON, default=dict)  # python: extra environment variables
    timeout_seconds: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


# Legal status changes. Stopping always ends in Stopped or Failed (a stop request wins over a
# result that arrives while stopping), and terminal states never change.
JOB_TRANSITIONS: dict[str, set[str]] = {
    "InProgress": {"Completed", "Failed", "Stopping", "Stopped"},
    "Stopping": {"Stopped", "Failed"},
    "Completed": set(),
    "Failed": set(),
    "Stopped": set(),
}
TERMINAL = {"Completed", "Failed", "Stopped"}


def transition(job: JobLifecycle, status: str, **changes) -> None:
    """Move ``job`` to ``status`` (raising Conflict on an illegal edge) and apply ``changes``."""
    if status != job.status and status not in JOB_TRANSITIONS[job.status]:
        raise Conflict(f"Job {job.name} is {job.status}; it cannot become {status}.")
    now = utcnow()
    job.status = status
    job.last_modified_at = now
    if status in TERMINAL:
        job.end_time = now
        job.phase = "done"
    for name, value in changes.items():
        setattr(job, name, value)


# ---------------------------------------------------------------------------------------------
# Engine, migrations, sessions


def database_url(home: Path, configured: str | None) -> str:
    return configured or f"sqlite:///{home / 'tailor.db'}"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection, _record):  # WAL: readers never wait for the one writer
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent; safe for concurrent starts)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


class Store:
    """A migrated database and a session factory; one per process.

    A database that cannot be read (not a database at all, or one a migration cannot run on)
    is refused with ``InvalidInput`` saying so, never a driver traceback.
    """

    def __init__(self, url: str):
        self.url = url
        if url.startswith("sqlite:///"):
            _private_file(Path(url.removeprefix("sqlite:///")))
        self.engine = make_engine(url)
        try:
            migrate(self.engine)
        except DatabaseError as error:
            raise InvalidInput(f"The database {_shown(url)} cannot be used: {_reason(error)}. Restore it from a "
                               "backup, or move it aside to start afresh; `tailor doctor` checks it.") from None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back on any exception."""
        with self._sessions.begin() as session:
            yield session


def open_store(settings) -> Store:
    return Store(database_url(settings.home, settings.database_url))


def check_integrity(store: Store, *, thorough: bool = False) -> list[str]:
    """What is wrong inside the database's pages (SQLite's own check); empty when nothing is.

    ``quick_check`` reads every page but skips comparing indexes with their tables, so a server can
    afford it at every start; ``thorough`` (``tailor doctor``) runs the full ``integrity_check``.
    Other databases check themselves; for them this reports nothing.
    """
    if store.engine.dialect.name != "sqlite":
        return []
    try:
        with store.engine.connect() as connection:
            rows = connection.exec_driver_sql("PRAGMA integrity_check" if thorough else "PRAGMA quick_check")
            problems = [str(row[0]) for row in rows]
    except DatabaseError as error:
        return [_reason(error)]
    return [] if problems == ["ok"] else problems


def _private_file(path: Path) -> None:
    """Create the SQLite file with mode 0600 (its -wal and -shm files take the same mode), or make
    an existing one private: it holds every principal's jobs and encrypted keys."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _reason(error: DatabaseError) -> str:
    return str(getattr(error, "orig", None) or error).splitlines()[0]


# ---------------------------------------------------------------------------------------------
# Pagination: an opaque token holding the last row's sort key (keyset pagination, so listing
# stays fast with many rows: no OFFSET scans).


def encode_token(created_at: datetime, row_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> tuple[datetime, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        created, row_id = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(created), str(row_id)
    except (ValueError, TypeError) as error:
        raise InvalidInput("nextToken is not a token this server issued.") from error


def page(session: Session, model, conditions: list, *, descending: bool, limit: int,
         token: str | None) -> tuple[list, str | None]:
    """One page of ``model`` rows matching ``conditions``, ordered by (created_at, id)."""
    order = (model.created_at.desc(), model.id.desc()) if descending else (model.created_at, model.id)
    query = select(model).where(*conditions)
    if token:
        created, row_id = decode_token(token)
        if descending:
            query = query.where((model.created_at < created) |
                                ((model.created_at == created) & (model.id < row_id)))
        else:
            query = query.where((model.created_at > created) |
                                ((model.created_at == created) & (model.id > row_id)))
    rows = list(session.scalars(query.order_by(*order).limit(limit + 1)))
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_token(rows[-1].created_at, rows[-1].id)
    return rows, None
