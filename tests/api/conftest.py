"""A real Tailor server for API tests: ``tailor serve`` in a child process on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0:200k"
COMMAND = "cohere.command-text-v14:7:4k"
TITAN = "amazon.titan-text-express-v1:0:8k"
ALIASES = {HAIKU: "tailor.tiny", COMMAND: "tailor.tiny", TITAN: "tailor.tiny"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    home: Path
    endpoint: str
    keys: dict[str, tuple[str, str]]  # principal -> (access key id, secret)
    process: subprocess.Popen | None = None
    env: dict | None = None
    args: tuple[str, ...] = ()  # extra ``tailor serve`` options, e.g. ("--no-runner",)

    @property
    def database_url(self) -> str:
        """The database the server runs on: its TAILOR_DATABASE_URL, else the SQLite file in its home."""
        return (self.env or {}).get("TAILOR_DATABASE_URL") or f"sqlite:///{self.home / 'tailor.db'}"

    def client(self, service: str = "bedrock", principal: str = "alice", secret: str | None = None):
        import boto3
        from botocore.config import Config

        access_key_id, real_secret = self.keys[principal]
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=access_key_id, aws_secret_access_key=secret or real_secret,
                            config=Config(retries={"max_attempts": 1}))

    def openai(self, principal: str = "alice", **options):
        """The official ``openai`` client for ``principal`` (bearer key: access key id.secret)."""
        from openai import OpenAI

        access_key_id, secret = self.keys[principal]
        return OpenAI(**{"base_url": self.endpoint + "/v1", "api_key": f"{access_key_id}.{secret}",
                         "max_retries": 0, "timeout": 120, **options})

    def put(self, uri: str, lines: list[dict], principal: str = "alice") -> str:
        """Write JSONL at ``uri`` for ``principal``, as ``tailor data upload --principal`` does: a new
        bucket becomes theirs. The file goes where the server reads it: a local bucket
        ($TAILOR_HOME/buckets/BUCKET/KEY), or, when the server was started with an S3 endpoint
        (``TAILOR_S3_*`` in ``env``), an object on that service, through boto3."""
        import tempfile

        from tailor import storage
        from tailor.services.buckets import prepare_upload
        from tailor.settings import Settings
        from tailor.store.db import open_store

        names = ("database_url", "s3_endpoint_url", "s3_region", "s3_access_key_id", "s3_secret_access_key")
        server_env = {name: (self.env or {}).get(f"TAILOR_{name.upper()}") for name in names}
        settings = Settings(home=self.home, **{name: value for name, value in server_env.items() if value})
        store = open_store(settings)
        try:
            prepare_upload(store, settings, principal, uri)
        finally:
            store.engine.dispose()
        with tempfile.TemporaryDirectory() as folder:
            source = Path(folder) / "data.jsonl"
            source.write_text("".join(json.dumps(line) + "\n" for line in lines))
            storage.upload_file(source, uri, settings)
        return uri

    def tailor(self, *args: str) -> subprocess.CompletedProcess:
        """Run ``tailor ARGS`` on the server's machine, as its operator (same TAILOR_HOME)."""
        return subprocess.run([sys.executable, "-m", "tailor", *args], env=self.env, capture_output=True,
                              text=True, timeout=120)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tailor", "serve", "--host", "127.0.0.1", "--port", self.endpoint.rsplit(":", 1)[1],
             *self.args],
            env=self.env, stdout=open(self.home / "server.log", "ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.endpoint + "/ping", timeout=1)
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("server did not start:\n" + (self.home / "server.log").read_text()[-3000:])

    def kill(self, signum: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signum)
            self.process.wait(timeout=30)

    def wait_for(self, job_arn: str, statuses: set[str], timeout: float = 240, principal: str = "alice") -> dict:
        client = self.client(principal=principal)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = client.get_model_customization_job(jobIdentifier=job_arn)
            if job["status"] in statuses:
                return job
            time.sleep(0.5)
        raise AssertionError(f"job still {job['status']} after {timeout}s: {job}\n"
                             + (self.home / "server.log").read_text()[-2000:])


def kill_workers(home: Path, database_url: str | None = None) -> None:
    """Job workers run in their own sessions (they outlive a server); end them with the test.
    ``database_url``: the server's TAILOR_DATABASE_URL when it is not the SQLite file in ``home``."""
    from sqlalchemy import create_engine, text

    if database_url is None:
        if not (home / "tailor.db").exists():
            return
        database_url = f"sqlite:///{home / 'tailor.db'}"
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            pids = [row[0] for table in ("jobs", "evaluation_jobs", "eval_runs", "invocation_jobs", "import_jobs",
                                         "export_jobs")
                    for row in connection.execute(text(f"SELECT pid FROM {table} WHERE pid IS NOT NULL"))]
    finally:
        engine.dispose()
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


@contextmanager
def insecure_local_server(home: Path) -> Iterator[tuple[int, subprocess.Popen]]:
    """``tailor serve --insecure-local`` on a free loopback port: ``(port, process)``; it writes its
    output to ``home / "server.log"``."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen([sys.executable, "-m", "tailor", "serve", "--insecure-local", "--port", str(port)],
                               stdout=open(home / "server.log", "ab"), stderr=subprocess.STDOUT,
                               env={**os.environ, "TAILOR_HOME": str(home)})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        yield port, process
    finally:
        process.terminate()
        process.wait(timeout=30)
        kill_workers(home)


@contextmanager
def running_server(home: Path, aliases: dict[str, str], args: tuple[str, ...] = (),
                   env: dict[str, str] | None = None) -> Iterator[Server]:
    """``tailor serve`` on a free port with access keys for alice and bob; stopped afterwards.

    ``args`` are extra ``tailor serve`` options (``("--no-runner",)``: the API without the job runner);
    ``env`` extra environment (``TAILOR_DATABASE_URL``, ``TAILOR_EXECUTOR``, ...), which the keys are
    made with too.
    """
    from tailor.services.keys import create_key
    from tailor.settings import Settings
    from tailor.store.db import open_store

    extra = env or {}
    settings = Settings(home=home, database_url=extra.get("TAILOR_DATABASE_URL"))
    store = open_store(settings)
    keys = {name: create_key(store, settings, name) for name in ("alice", "bob")}
    store.engine.dispose()
    env = {**os.environ, "TAILOR_HOME": str(home), "TAILOR_MODEL_ALIASES": json.dumps(aliases),
           "TAILOR_STRICT_OUTPUT": "1", **extra}
    running = Server(home, f"http://127.0.0.1:{free_port()}", keys, env=env, args=tuple(args))
    running.start()
    try:
        yield running
    finally:
        running.kill()
        kill_workers(home, extra.get("TAILOR_DATABASE_URL"))


@pytest.fixture
def server(home):
    with running_server(home, ALIASES) as running:
        yield running
