"""Tailor's state in SQL: the engine, migrations, sessions and pagination every table shares.

SQLite under TAILOR_HOME by default; any SQLAlchemy URL (e.g. ``postgresql+psycopg://...``) via
``TAILOR_DATABASE_URL``. The schema is created and upgraded by Alembic migrations
(``tailor/store/migrations``), never by ``create_all``. A test compares the table classes (one
module per kind of record in this package) with the migrated schema so they cannot drift apart.

Servers and job worker processes all write here, so the database, not any process's memory, is
the truth a restarted server starts from.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import DateTime, TypeDecorator, create_engine, event, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from tailor.errors import InvalidInput


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


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``, the newest by default (idempotent; safe for concurrent starts)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as connection:
        # Several servers may start at once on one PostgreSQL database: the first migrates, the
        # others wait here and then find the schema at ``revision``. (SQLite's write lock does the same.)
        hold_lock(connection, MIGRATION_LOCK)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


# Keys of PostgreSQL advisory locks (any 64-bit numbers, the same in every Tailor process).
MIGRATION_LOCK = 0x7A11_0001
CLAIM_LOCK = 0x7A11_0002


def hold_lock(connection_or_session, key: int) -> None:
    """Hold a database-wide lock until the current transaction ends, so that what several servers
    do in such a transaction happens one server at a time. PostgreSQL: an advisory transaction
    lock; SQLite needs none, as its transactions that write already run one at a time."""
    bind = connection_or_session.get_bind() if isinstance(connection_or_session, Session) else connection_or_session
    if bind.dialect.name == "postgresql":
        connection_or_session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


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
