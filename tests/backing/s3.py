"""A real S3-protocol server for the tests: moto's standalone server (``moto[server]``), in a process
of its own on a free loopback port.

boto3 (in the test, in ``tailor serve``, in a job's worker) reaches it over HTTP exactly as it
would reach MinIO or AWS S3: signed requests, multipart uploads, streamed GETs, XML errors. It runs
as a separate process, not a thread of pytest, so what a test measures in its own process (memory
while streaming a large object) is the client's alone. MinIO is not used: its server is a Go binary
from its own download site, which this machine cannot reach (only PyPI, Debian and npm).

``s3_server`` is started once per session and stopped at its end. ``s3`` resets the server first
(``POST /moto-api/reset``: every bucket and object gone, signature checks off again), so each test
starts from an empty service.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["s3_server", "s3"]


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:PORT
    access_key_id: str
    secret_access_key: str
    region: str = "us-east-1"

    @property
    def env(self) -> dict[str, str]:
        """What points Tailor (``tailor serve``, the CLI, ``Settings()``) at this server."""
        return {"TAILOR_S3_ENDPOINT_URL": self.endpoint, "TAILOR_S3_ACCESS_KEY_ID": self.access_key_id,
                "TAILOR_S3_SECRET_ACCESS_KEY": self.secret_access_key, "TAILOR_S3_REGION": self.region}

    def client(self, access_key_id: str | None = None, secret_access_key: str | None = None):
        """A plain boto3 client on the server, to look behind Tailor's back."""
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id=access_key_id or self.access_key_id,
                            aws_secret_access_key=secret_access_key or self.secret_access_key,
                            config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}))

    def post(self, path: str, body: bytes = b"") -> None:
        """A call to moto's own control API (``/moto-api/...``)."""
        # text/plain: with urllib's default form type, moto's Flask app would see no body
        request = urllib.request.Request(self.endpoint + path, data=body, method="POST",
                                         headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def reset(self) -> None:
        """Empty the service and turn signature checks off (moto's default: any key is accepted)."""
        self.post("/moto-api/reset-auth", b"inf")
        self.post("/moto-api/reset")

    def check_signatures(self) -> None:
        """From now on only keys the server knows (IAM users made on it) are accepted; others get 403."""
        self.post("/moto-api/reset-auth", b"0")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server for the session; stopped (and its log removed) at the end."""
    port = _free_port()
    log = Path(tempfile.mkstemp(prefix="tailor-moto-", suffix=".log")[1])
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=log.open("ab"), stderr=subprocess.STDOUT)
    server = S3Server(f"http://127.0.0.1:{port}", "tailor-test-key", "tailor-test-secret")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                server.post("/moto-api/reset")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto's S3 server did not start:\n" + log.read_text()[-3000:]) from None
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.unlink(missing_ok=True)


@pytest.fixture
def s3(s3_server) -> S3Server:
    """The session's S3 server, emptied for this test."""
    s3_server.reset()
    return s3_server
