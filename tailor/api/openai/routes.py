"""OpenAI-compatible routes: ``POST /v1/chat/completions`` (JSON or SSE stream) and ``/v1/models``
(list, retrieve, delete a fine-tuned model) here; files and uploads in ``files.py``; fine-tuning
jobs, their events and checkpoints in ``jobs.py``.

Authentication is a bearer API key (``tailor keys create`` prints one; it is the access key id and
its secret joined by a dot), so the official ``openai`` client works with ``api_key=`` and
``base_url=http://HOST:PORT/v1``. ``model`` takes every id bedrock-runtime takes: foundation ids,
deployment and provisioned-throughput ARNs or names, and the caller's ``ft:…`` models. Each answered
chat completion, streamed or not, is handed to the invocation log writer
(``tailor.services.invocation_logging``; its ``metadata`` becomes the record's requestMetadata).
"""

from __future__ import annotations

import json
import logging
import time
import uuid

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tailor.api import serving
from tailor.api.openai import eval_routes, files, graders, jobs
from tailor.api.openai.common import error_response, principal_of
from tailor.api.openai.errors import error_body
from tailor.errors import NotFound
from tailor.serve.protocol import Completion, TextDelta
from tailor.services import inference, models
from tailor.services.invocation_logging import Call, string_metadata
from tailor.wire import chat_body
from tailor.wire.invocation_logs import OPENAI_CHAT_OPERATION
from tailor.wire.request_json import parse_json

log = logging.getLogger(__name__)
DEFAULT_MAX_TOKENS = 512


def add_routes(app: FastAPI) -> None:
    files.add_routes(app)
    jobs.add_routes(app)
    graders.add_routes(app)
    eval_routes.add_routes(app)
    app.add_api_route("/v1/chat/completions", chat_completions, methods=["POST"], name="openai.chat_completions")
    app.add_api_route("/v1/models", list_models, methods=["GET"], name="openai.models")
    app.add_api_route("/v1/models/{model:path}", retrieve_model, methods=["GET"], name="openai.models.retrieve")
    app.add_api_route("/v1/models/{model:path}", delete_model, methods=["DELETE"], name="openai.models.delete")


async def chat_completions(request: Request) -> Response:
    try:
        principal = await principal_of(request)
        raw = await request.body()
        body = chat_body.read(parse_json(raw))
        chat = chat_body.chat_request(body, default_max_tokens=DEFAULT_MAX_TOKENS)
        model = body.model or ""  # read() requires it
        invocable = await serving.resolve(request.app, principal, model)
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if not body.stream:
            completion = await serving.answer(request.app, invocable, chat)
            answer = chat_body.chat_completion(completion, model=model, completion_id=completion_id, created=created)
            log_chat_completion(request, principal, model, raw, answer, completion, body.metadata)
            return JSONResponse(answer)
        events = await serving.answer_stream(request.app, invocable, chat)
    except Exception as error:
        return error_response(error)
    chunks = chat_body.ChatChunks(model=model, completion_id=completion_id, created=created,
                                  include_usage=body.include_usage)

    def finished(completion: Completion) -> None:
        answer = chat_body.chat_completion(completion, model=model, completion_id=completion_id, created=created)
        log_chat_completion(request, principal, model, raw, answer, completion, body.metadata)

    return StreamingResponse(sse(events, chunks, finished), media_type="text/event-stream")


def log_chat_completion(request: Request, principal: str, model: str, raw: bytes, answer: dict,
                        completion: Completion, metadata) -> None:
    """Hand one answered chat completion (``answer``: the ``chat.completion`` object) to the invocation
    log writer (``tailor.services.invocation_logging``); ``metadata`` is the record's requestMetadata."""
    writer = getattr(request.app.state, "invocation_logs", None)
    if writer is None:
        return
    try:
        writer.log(Call(principal=principal, operation=OPENAI_CHAT_OPERATION, model_id=model, input_body=raw,
                        output_body=answer, input_tokens=completion.input_tokens,
                        output_tokens=completion.output_tokens, request_metadata=string_metadata(metadata),
                        request_id=answer["id"]))
    except Exception:  # logging never fails the call it logs
        log.exception("invocation logging failed")


async def sse(events, chunks: chat_body.ChatChunks, finished=None):
    """``events`` as OpenAI's server-sent ``chat.completion.chunk`` stream (the console's
    playground streams the same way); ``finished(completion)`` runs once the answer is complete."""
    def line(payload: dict) -> bytes:
        return f"data: {json.dumps(payload)}\n\n".encode()

    for chunk in chunks.start():
        yield line(chunk)
    try:
        async for event in events:
            if finished is not None and isinstance(event, Completion):
                finished(event)  # before the last chunks: a client may leave once it has them
            for chunk in (chunks.delta(event.text) if isinstance(event, TextDelta) else chunks.finish(event)):
                yield line(chunk)
    except Exception as error:  # after the first byte the status is sent: report in-band, as OpenAI does
        yield line(error_body(error)[1])
    yield b"data: [DONE]\n\n"


def _model_object(model_id: str, principal: str) -> dict:
    """The SDK's ``Model``: a fine-tuned model is its owner's; the others are the server's."""
    owner = principal if model_id.startswith(inference.FINE_TUNED_PREFIX) else "tailor"
    return {"id": model_id, "object": "model", "created": 0, "owned_by": owner}


async def list_models(request: Request) -> Response:
    try:
        principal = await principal_of(request)
        ids = await run_in_threadpool(inference.list_invocable, request.app.state.store, request.app.state.settings,
                                      principal)
        return JSONResponse({"object": "list", "data": [_model_object(model_id, principal) for model_id in ids]})
    except Exception as error:
        return error_response(error)


async def retrieve_model(request: Request, model: str) -> Response:
    """``client.models.retrieve(id)``: any id ``models.list`` shows the caller."""
    try:
        principal = await principal_of(request)
        ids = await run_in_threadpool(inference.list_invocable, request.app.state.store, request.app.state.settings,
                                      principal)
        if model not in ids:
            raise NotFound(f"The model {model} does not exist or you do not have access to it.", param="model")
        return JSONResponse(_model_object(model, principal))
    except Exception as error:
        return error_response(error)


async def delete_model(request: Request, model: str) -> Response:
    """``client.models.delete(id)``: the caller's fine-tuned ``ft:`` model (refused while deployed)."""
    try:
        principal = await principal_of(request)
        if not model.startswith(inference.FINE_TUNED_PREFIX):
            raise NotFound(f"The model {model} is not one of your fine-tuned models; only those can be deleted.",
                           param="model")
        found = await run_in_threadpool(inference.fine_tuned_model, request.app.state.store, principal, model)
        await run_in_threadpool(models.delete_custom_model, request.app.state.store, principal, found.arn)
        return JSONResponse({"id": model, "object": "model", "deleted": True})
    except Exception as error:
        return error_response(error)
