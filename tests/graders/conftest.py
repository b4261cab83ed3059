"""Fixtures for the grader tests: an isolated home and store, a real HTTP server on 127.0.0.1
whose answers a test scripts, and a port nothing listens on."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tailor.settings import Settings
from tailor.store.db import Store, open_store


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture
def store(settings) -> Store:
    return open_store(settings)


class Scripted:
    """What the server answers: ``respond(path, body) -> (status, body bytes)``; requests are kept."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, object]] = []
        self.respond: Callable[[str, object], tuple[int, bytes]] = lambda path, body: (200, b"[]")
        self.url = ""


@pytest.fixture
def http_server() -> Iterator[Scripted]:
    scripted = Scripted()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            scripted.requests.append((self.path, body))
            status, payload = scripted.respond(self.path, body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    scripted.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield scripted
    server.shutdown()
    server.server_close()


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that refuses connections at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def math_record(question: str, answer) -> dict:
    return {"messages": [{"role": "system", "content": "Solve it."}, {"role": "user", "content": question}],
            "reference_answer": answer, "task_id": question}
