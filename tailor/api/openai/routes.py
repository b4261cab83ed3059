"""OpenAI-compatible routes: ``POST /v1/chat/completions`` (JSON or SSE stream), ``GET /v1/models``,
a customization job's live events (``GET /v1/fine_tuning/jobs/{id}/events``: status changes and
per-step metrics, RFT rewards included; ``tailor.services.job_events``), and pausing and resuming
one (``POST .../pause``, ``.../resume``: it checkpoints, ends its worker, and continues later).

Authentication is a bearer API key (``tailor keys create`` prints one; it is the access key id and
its secret joined by a dot), so the official ``openai`` client works with ``api_key=`` and
``base_url=http://HOST:PORT/v1``. ``model`` takes every id bedrock-runtime takes: foundation ids,
deployment and provisioned-throughput ARNs or names.
"""

from __future__ import annotations

import json
import re
import time
import uuid

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tailor.api import chat_body, serving
from tailor.api.openai import files, fine_tuning
from tailor.api.openai.errors import error_body
from tailor.api.request_json import parse_json
from tailor.errors import InvalidInput, show_value
from tailor.serve.protocol import TextDelta
from tailor.services import customization, inference, job_events

DEFAULT_MAX_TOKENS = 512
_LIMIT = re.compile(r"[0-9]{1,9}")


def add_routes(app: FastAPI) -> None:
    files.add_routes(app)
    app.add_api_route("/v1/chat/completions", chat_completions, methods=["POST"], name="openai.chat_completions")
    app.add_api_route("/v1/models", list_models, methods=["GET"], name="openai.models")
    app.add_api_route("/v1/fine_tuning/jobs/{job_id:path}/events", list_job_events, methods=["GET"],
                      name="openai.fine_tuning.jobs.events")
    app.add_api_route("/v1/fine_tuning/jobs/{job_id:path}/pause", pause_job, methods=["POST"],
                      name="openai.fine_tuning.jobs.pause")
    app.add_api_route("/v1/fine_tuning/jobs/{job_id:path}/resume", resume_job, methods=["POST"],
                      name="openai.fine_tuning.jobs.resume")


def _error(error: Exception) -> JSONResponse:
    status, body = error_body(error)
    return JSONResponse(body, status_code=status)


async def _principal(request: Request) -> str:
    return await run_in_threadpool(request.app.state.authenticate_bearer, request)


async def chat_completions(request: Request) -> Response:
    try:
        principal = await _principal(request)
        body = chat_body.read(parse_json(await request.body()))
        chat = chat_body.chat_request(body, default_max_tokens=DEFAULT_MAX_TOKENS)
        model = body.model or ""  # read() requires it
        invocable = await serving.resolve(request.app, principal, model)
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if not body.stream:
            completion = await serving.answer(request.app, invocable, chat)
            return JSONResponse(chat_body.chat_completion(completion, model=model, completion_id=completion_id,
                                                          created=created))
        events = await serving.answer_stream(request.app, invocable, chat)
    except Exception as error:
        return _error(error)
    chunks = chat_body.ChatChunks(model=model, completion_id=completion_id, created=created,
                                  include_usage=body.include_usage)
    return StreamingResponse(_sse(events, chunks), media_type="text/event-stream")


async def _sse(events, chunks: chat_body.ChatChunks):
    def line(payload: dict) -> bytes:
        return f"data: {json.dumps(payload)}\n\n".encode()

    for chunk in chunks.start():
        yield line(chunk)
    try:
        async for event in events:
            for chunk in (chunks.delta(event.text) if isinstance(event, TextDelta) else chunks.finish(event)):
                yield line(chunk)
    except Exception as error:  # after the first byte the status is sent: report in-band, as OpenAI does
        yield line(error_body(error)[1])
    yield b"data: [DONE]\n\n"


async def list_models(request: Request) -> Response:
    try:
        principal = await _principal(request)
        ids = await run_in_threadpool(inference.list_invocable, request.app.state.store, request.app.state.settings,
                                      principal)
        return JSONResponse({"object": "list", "data": [
            {"id": model_id, "object": "model", "created": 0, "owned_by": "tailor"} for model_id in ids]})
    except Exception as error:
        return _error(error)


async def list_job_events(request: Request, job_id: str) -> Response:
    """A customization job's events, newest first: ``client.fine_tuning.jobs.list_events(job)``,
    where ``job`` is the job's id (the last part of its ARN), name or ARN."""
    try:
        principal = await _principal(request)
        limit = request.query_params.get("limit", "20")
        # ASCII digits only (str.isdigit also takes "²", which int() refuses), and few enough of
        # them for int() -- the service checks the range.
        if not _LIMIT.fullmatch(limit):
            raise InvalidInput(f"limit: must be a whole number; got {show_value(limit)}.")
        page = await run_in_threadpool(job_events.list_events, request.app.state.store, principal, job_id,
                                       after=request.query_params.get("after"), limit=int(limit))
        return JSONResponse(page)
    except Exception as error:
        return _error(error)


async def pause_job(request: Request, job_id: str) -> Response:
    """``client.fine_tuning.jobs.pause(job)``: the job checkpoints at its next step and is paused."""
    return await _change_job(request, customization.pause_job, job_id)


async def resume_job(request: Request, job_id: str) -> Response:
    """``client.fine_tuning.jobs.resume(job)``: a paused job is queued again and continues."""
    return await _change_job(request, customization.resume_job, job_id)


async def _change_job(request: Request, change, job_id: str) -> Response:
    try:
        principal = await _principal(request)
        view = await run_in_threadpool(change, request.app.state.store, principal, job_id)
        return JSONResponse(fine_tuning.job_object(view))
    except Exception as error:
        return _error(error)
