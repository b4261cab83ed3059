"""bedrock-runtime routes: InvokeModel, InvokeModelWithResponseStream, Converse, ConverseStream, CountTokens.

Thin, like the control plane: requests are checked against botocore's bedrock-runtime model
(``shapes``), converted to one ``ChatRequest`` by pure functions (``tailor.wire.invoke`` for
InvokeModel's native bodies, ``tailor.wire.converse``, ``count_tokens``), answered by the engine through
``tailor.api.serving``, and converted back. Streams use the AWS event-stream
framing (``eventstream``) that botocore decodes; an error after the stream has started is sent
as an exception event, as the original does. Each answered call is handed to the invocation log
writer (``_log``; ``tailor.services.invocation_logging``), which queues it only for a principal
with logging on and never fails or holds up the call; a stream is logged once it has ended, with
its answer assembled in the operation's non-stream shape.
"""

from __future__ import annotations

import logging
import time
import uuid

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tailor.api import serving
from tailor.api.bedrock import eventstream
from tailor.api.bedrock.count_tokens import count_tokens_request
from tailor.api.bedrock.errors import error_code, error_json
from tailor.api.bedrock.shapes import (
    http_binding,
    input_locations,
    shape_output,
    validate_input,
)
from tailor.errors import InvalidInput
from tailor.serve.protocol import Completion, TextDelta
from tailor.services.invocation_logging import Call
from tailor.wire import invoke
from tailor.wire.converse import (
    ConverseStream,
    converse_request,
    converse_response,
)
from tailor.wire.request_json import json_object

log = logging.getLogger(__name__)
DEFAULT_MAX_TOKENS = 512  # Converse and chat bodies that do not say; each native body has its own default
EVENT_STREAM = "application/vnd.amazon.eventstream"

# Stream exception event names (ResponseStream / ConverseStreamOutput members) per error code.
STREAM_EXCEPTIONS = {
    "ValidationException": "validationException",
    "ModelTimeoutException": "modelTimeoutException",
    "ServiceUnavailableException": "serviceUnavailableException",
    "ThrottlingException": "throttlingException",
    "InternalServerException": "internalServerException",
}


def add_routes(app: FastAPI) -> None:
    for operation, handler in OPERATIONS.items():
        method, uri, _ = http_binding(operation)
        # The model id is an ARN with "/" in it once decoded: the parameter takes it whole.
        app.add_api_route(uri.replace("{modelId}", "{modelId:path}"), handler, methods=[method], name=operation)


async def _begin(request: Request, operation: str, params: dict) -> tuple[str, dict, serving.Invocable]:
    """Authenticate, validate against the contract, find the model: ``(principal, params, invocable)``."""
    body = await request.body()
    principal = await run_in_threadpool(request.app.state.authenticate, request, body)
    model_id = request.path_params["modelId"]
    # The model first: a custom model's ARN (with its base's ":0:200k" version) breaks the
    # contract's modelId pattern, and "deploy it first" is the answer its caller needs.
    invocable = await serving.resolve(request.app, principal, model_id)
    validated = validate_input(operation, {**params, "modelId": model_id})
    return principal, validated, invocable


def _headers_params(request: Request, operation: str) -> dict:
    """The request's headers that the operation's input binds (every one the model names, so each
    is checked against its shape), keyed by wire name."""
    return {wire: request.headers[wire] for location, wire in input_locations(operation).values()
            if location == "header" and wire in request.headers}


async def _invoke_parts(request: Request, operation: str):
    raw = await request.body()
    params = {**_headers_params(request, operation), "body": raw}
    principal, validated, invocable = await _begin(request, operation, params)
    content_type = validated.get("contentType") or "application/json"
    if not content_type.startswith("application/json"):
        raise InvalidInput(f"contentType: must be application/json, got {content_type!r}.")
    if validated.get("guardrailIdentifier"):
        raise InvalidInput("guardrailIdentifier: guardrails are not available in Tailor.")
    chat = invoke.parse_invoke_body(invocable.body, raw, default_max_tokens=DEFAULT_MAX_TOKENS)
    return principal, invocable, chat, raw


def _log(request: Request, principal: str, operation: str, input_body, output_body, completion: Completion,
         request_id: str, metadata: dict | None = None) -> None:
    """Hand one answered call to the invocation log writer (``input_body`` may be the raw JSON bytes:
    the writer decodes them off the request path)."""
    writer = getattr(request.app.state, "invocation_logs", None)
    if writer is None:
        return
    try:
        writer.log(Call(principal=principal, operation=operation, model_id=request.path_params["modelId"],
                        input_body=input_body, output_body=output_body, input_tokens=completion.input_tokens,
                        output_tokens=completion.output_tokens, request_metadata=metadata, request_id=request_id))
    except Exception:  # logging never fails the call it logs
        log.exception("invocation logging failed")


def _metrics_headers(completion: Completion) -> dict[str, str]:
    return {"X-Amzn-Bedrock-Input-Token-Count": str(completion.input_tokens),
            "X-Amzn-Bedrock-Output-Token-Count": str(completion.output_tokens),
            "X-Amzn-Bedrock-Invocation-Latency": str(completion.latency_ms)}


async def invoke_model(request: Request) -> Response:
    try:
        principal, invocable, chat, raw = await _invoke_parts(request, "InvokeModel")
        completion = await serving.answer(request.app, invocable, chat)
        request_id = str(uuid.uuid4())
        body = invoke.invoke_response(invocable.body, completion, model_id=invocable.model_id,
                                       request_id=request_id, request_body=raw)
        _log(request, principal, "InvokeModel", raw, body, completion, request_id)
        return JSONResponse(body, headers=_metrics_headers(completion))
    except Exception as error:
        return error_json(error)


async def invoke_stream(request: Request) -> Response:
    try:
        principal, invocable, chat, raw = await _invoke_parts(request, "InvokeModelWithResponseStream")
        events = await serving.answer_stream(request.app, invocable, chat)
    except Exception as error:
        return error_json(error)
    request_id = str(uuid.uuid4())
    native = invoke.NativeStream(invocable.body, model_id=invocable.model_id, request_id=request_id,
                                  request_body=raw)

    def finished(completion: Completion) -> None:
        whole = invoke.invoke_response(invocable.body, completion, model_id=invocable.model_id,
                                       request_id=request_id, request_body=raw)
        _log(request, principal, "InvokeModelWithResponseStream", raw, whole, completion, request_id)

    async def frames():
        for chunk in native.start():
            yield eventstream.chunk(chunk)
        async for frame in _relay(events, native, eventstream.chunk, finished):
            yield frame

    return StreamingResponse(frames(), media_type=EVENT_STREAM,
                             headers={"X-Amzn-Bedrock-Content-Type": "application/json"})


async def _relay(events, translator, encode, finished=None):
    """Engine events -> encoded frames; an error mid-stream becomes the original's exception event.
    ``finished(completion)`` runs with the answer's end, before its last frames are sent (a client that
    leaves once it has them has still been answered)."""
    try:
        async for event in events:
            pieces = translator.delta(event.text) if isinstance(event, TextDelta) else translator.finish(event)
            if finished is not None and isinstance(event, Completion):
                finished(event)
            for piece in pieces:
                yield encode(piece)
    except Exception as error:
        code, _ = error_code(error)
        name = STREAM_EXCEPTIONS.get(code, "modelStreamErrorException")
        yield eventstream.exception(name, getattr(error, "message", None) or "The model failed mid-stream.")


def _converse_params(payload: dict) -> dict:
    return {key: value for key, value in payload.items() if key != "modelId"}


async def _json_body(request: Request) -> dict:
    raw = await request.body()
    return json_object(raw) if raw.strip() else {}


async def converse(request: Request) -> Response:
    started = time.monotonic()
    try:
        payload = _converse_params(await _json_body(request))
        principal, validated, invocable = await _begin(request, "Converse", payload)
        chat = converse_request(validated, default_max_tokens=DEFAULT_MAX_TOKENS)
        completion = await serving.answer(request.app, invocable, chat)
        result = converse_response(completion, latency_ms=round((time.monotonic() - started) * 1000))
        _log(request, principal, "Converse", payload, result, completion, str(uuid.uuid4()),
             validated.get("requestMetadata"))
        return JSONResponse(shape_output("Converse", result))
    except Exception as error:
        return error_json(error)


async def converse_stream(request: Request) -> Response:
    try:
        payload = _converse_params(await _json_body(request))
        principal, validated, invocable = await _begin(request, "ConverseStream", payload)
        chat = converse_request(validated, default_max_tokens=DEFAULT_MAX_TOKENS)
        events = await serving.answer_stream(request.app, invocable, chat)
    except Exception as error:
        return error_json(error)
    stream = ConverseStream()

    def finished(completion: Completion) -> None:
        _log(request, principal, "ConverseStream", payload, converse_response(completion), completion,
             str(uuid.uuid4()), validated.get("requestMetadata"))

    def encode(piece: tuple[str, dict]) -> bytes:
        return eventstream.event(*piece)

    async def frames():
        for piece in stream.start():
            yield encode(piece)
        async for frame in _relay(events, stream, encode, finished):
            yield frame

    return StreamingResponse(frames(), media_type=EVENT_STREAM)


async def count_tokens(request: Request) -> Response:
    try:
        _, validated, invocable = await _begin(request, "CountTokens", await _json_body(request))
        chat = count_tokens_request(validated, kind=invocable.body, default_max_tokens=DEFAULT_MAX_TOKENS)
        tokens = await request.app.state.engine.count_tokens(invocable.target, chat)
        return JSONResponse(shape_output("CountTokens", {"inputTokens": tokens}))
    except Exception as error:
        return error_json(error)


# The bedrock-runtime operations Tailor answers (tests/api/bedrock/test_operations.py keeps this and
# control.OPERATIONS in step with what the server answers).
OPERATIONS = {
    "InvokeModel": invoke_model,
    "InvokeModelWithResponseStream": invoke_stream,
    "Converse": converse,
    "ConverseStream": converse_stream,
    "CountTokens": count_tokens,
}
