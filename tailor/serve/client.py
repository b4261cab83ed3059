"""The API server's side of the engine: start its process, talk to it, restart it if it dies.

``EngineClient`` is asyncio-native and light (no torch): the engine process is started on first
use (importing the model stack costs seconds and half a gigabyte, which an API server that only
manages jobs should not pay), and started again on the next request if it crashed. A request
that was running when the engine died fails with ``ModelFailed`` — never hangs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from tailor.errors import InvalidInput, ModelFailed, ModelTimeout
from tailor.serve.protocol import (
    ChatRequest,
    Completion,
    Target,
    TextDelta,
    check_prompt_size,
    completion_from_json,
    to_json,
)
from tailor.settings import Settings

log = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 180.0
ERRORS = {"ValidationException": InvalidInput, "ModelTimeoutException": ModelTimeout}


def _socket_path() -> Path:
    """A new private folder on this machine for one server's engine socket. Not under TAILOR_HOME:
    several API servers may share that folder (each runs its own engine), it may be network storage,
    where a Unix socket cannot be shared, and its path may be longer than a socket's ~108 bytes."""
    return Path(tempfile.mkdtemp(prefix="tailor-engine-")) / "engine.sock"


class EngineClient:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.socket = _socket_path()
        self._process: subprocess.Popen | None = None
        self._starting = asyncio.Lock()

    # ------------------------------------------------------------------ the process

    async def ensure_started(self) -> None:
        async with self._starting:
            if self._process is not None and self._process.poll() is None:
                return
            if self._process is not None:
                log.warning("inference engine exited with %s; starting it again", self._process.returncode)
            self._process = await asyncio.to_thread(self._spawn)
            await self._wait_ready()

    def _spawn(self) -> subprocess.Popen:
        self.socket.parent.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        log_path = self.settings.home / "logs" / "engine.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "TAILOR_HOME": str(self.settings.home)}
        with open(log_path, "ab") as log_file:
            return subprocess.Popen([sys.executable, "-m", "tailor.serve.engine_server", "--socket", str(self.socket)],
                                    stdout=log_file, stderr=subprocess.STDOUT, env=env)

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ModelFailed(f"The inference engine exited while starting (code {self._process.returncode}); "
                                  f"see {self.settings.home / 'logs' / 'engine.log'}.")
            try:
                _, writer = await asyncio.open_unix_connection(str(self.socket))
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.1)
        raise ModelFailed("The inference engine did not start in time.")

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
        shutil.rmtree(self.socket.parent, ignore_errors=True)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process and self._process.poll() is None else None

    # ------------------------------------------------------------------ requests

    async def _exchange(self, message: dict) -> AsyncIterator[dict]:
        """Send ``message`` and yield the engine's replies until the final one."""
        await self.ensure_started()
        try:
            reader, writer = await asyncio.open_unix_connection(str(self.socket), limit=64 * 1024 * 1024)
        except OSError as error:
            raise ModelFailed(f"The inference engine is not reachable: {error}") from None
        try:
            writer.write(json.dumps(message).encode() + b"\n")
            await writer.drain()
            while True:
                line = await reader.readline()
                if not line:
                    raise ModelFailed("The inference engine stopped while answering; it restarts on the next "
                                      "request. Retry.")
                reply = json.loads(line)
                if reply["event"] == "error":
                    raise ERRORS.get(reply["code"], ModelFailed)(reply["message"])
                yield reply
                if reply["event"] != "delta":
                    return
        except ConnectionError:
            raise ModelFailed("The inference engine closed the connection; retry.") from None
        finally:
            writer.close()

    async def stream(self, target: Target, request: ChatRequest,
                     timeout_s: float | None = None) -> AsyncIterator[TextDelta | Completion]:
        """The answer as it is generated: ``TextDelta`` events, then the ``Completion``."""
        message = {"op": "generate", "target": to_json(target), "request": to_json(request), "timeout_s": timeout_s}
        async for reply in self._exchange(message):
            if reply["event"] == "delta":
                yield TextDelta(reply["text"])
            else:
                yield completion_from_json(reply["completion"])

    async def complete(self, target: Target, request: ChatRequest, timeout_s: float | None = None) -> Completion:
        async for event in self.stream(target, request, timeout_s):
            if isinstance(event, Completion):
                return event
        raise ModelFailed("The inference engine ended without an answer.")

    async def count_tokens(self, target: Target, request: ChatRequest) -> int:
        # CountTokens does not pass through tailor.api.serving: refuse an oversized prompt here,
        # before it is sent to the engine (which would refuse it too, after reading it whole).
        check_prompt_size(request, self.settings.max_prompt_characters)
        async for reply in self._exchange({"op": "count_tokens", "target": to_json(target),
                                           "request": to_json(request)}):
            return reply["input_tokens"]
        raise ModelFailed("The inference engine gave no count.")

    async def load(self, target: Target) -> None:
        async for _ in self._exchange({"op": "load", "target": to_json(target)}):
            return

    async def render(self, model: str, kind: str, records: list[dict]) -> list[dict]:
        """The training view of each record (``tailor.data.preview``), rendered in the engine
        process with ``model``'s tokenizer (a base: catalog reference or weights folder)."""
        async for reply in self._exchange({"op": "render", "model": model, "kind": kind, "records": records}):
            return reply["records"]
        raise ModelFailed("The inference engine rendered nothing.")

    async def stats(self) -> dict:
        async for reply in self._exchange({"op": "stats"}):
            return reply
        return {}
