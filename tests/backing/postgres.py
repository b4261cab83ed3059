"""A real PostgreSQL server for the tests, from Debian's package (``make sandbox`` installs it).

One server per test session (``postgres_server``), in a private folder under /tmp, on a free
loopback port, with fsync off (a test database need not survive a power cut). Each test that asks
for ``postgres_url`` gets a fresh database copied from a template that is already migrated, which
takes milliseconds where migrating takes a second. The server is stopped and its folder removed
at the end of the session.

PostgreSQL refuses to run as root, and CI runs as root: then initdb and the server run as the
``postgres`` user the package creates (``runuser``), in a folder that user owns — pytest's own
temporary folders are private to root, so the data cannot live there.

Missing binaries skip the tests that need them on a developer's machine and fail them in CI
(``CI`` set), where ``make sandbox`` must have installed them.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["postgres_server", "postgres_url"]

TEMPLATE = "tailor_template"


def postgres_bin() -> Path | None:
    """The folder of the newest installed PostgreSQL's server binaries (Debian keeps them off PATH,
    under /usr/lib/postgresql/VERSION/bin), or None when there is none."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).resolve().parent if on_path else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PostgresServer:
    port: int
    root: Path  # data/, the socket and the log

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def execute(self, *statements: str) -> None:
        """Run statements outside a transaction (CREATE/DROP DATABASE cannot run in one)."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as connection:
            for statement in statements:
                connection.execute(statement)

    def new_database(self, name: str, *, template: str | None = None) -> str:
        self.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # ends what still holds it open


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL will not run as root: run ``command`` as the package's ``postgres`` user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def running_postgres(bin_dir: Path, *, durable: bool = False) -> Iterator[PostgresServer]:
    """initdb a fresh cluster in a private folder, start it on a free loopback port, yield it;
    stop it (immediately: nothing in it is kept) and remove the folder afterwards. Tests need no
    durability (fsync off); ``durable`` keeps PostgreSQL's defaults, for a benchmark that compares
    it fairly with SQLite, which syncs every commit."""
    root = Path(tempfile.mkdtemp(prefix="tailor-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    # Each command runs from ``root``, a folder that user can enter (a clone under /root is not one):
    # initdb and pg_ctl fail when they cannot resolve their working directory.
    made = subprocess.run(_as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--locale=C",
                                        "-E", "UTF8", "-A", "trust", "--no-sync"]),
                          capture_output=True, text=True, timeout=120, cwd=root)
    if made.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {made.stderr[-3000:]}")
    port = _free_port()
    options = f"-h 127.0.0.1 -p {port} -k {root} -c max_connections=300"
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    started = subprocess.run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"),
                                           "-o", options, "-w", "-t", "60", "start"]),
                             capture_output=True, text=True, timeout=90, cwd=root)
    try:
        if started.returncode != 0:
            log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {started.stderr}\n{log[-3000:]}")
        yield PostgresServer(port, root)
    finally:
        subprocess.run(_as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                       capture_output=True, timeout=60, cwd=root)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session, with ``tailor_template``: an empty database that Tailor's
    migrations have brought to the newest revision."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        reason = "PostgreSQL's server binaries are not installed (`make sandbox` installs Debian's postgresql)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from tailor.store.db import Store

    with running_postgres(bin_dir) as server:
        store = Store(server.new_database(TEMPLATE))
        store.engine.dispose()  # a template cannot be copied while anyone is connected to it
        yield server


_numbers = itertools.count()


@pytest.fixture
def postgres_url(postgres_server) -> Iterator[str]:
    """A fresh, migrated, empty database of its own for one test; dropped afterwards."""
    name = f"test_{os.getpid()}_{next(_numbers)}"
    url = postgres_server.new_database(name, template=TEMPLATE)
    yield url
    postgres_server.drop_database(name)
