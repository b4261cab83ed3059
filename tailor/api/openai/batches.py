"""OpenAI's Batch API: ``client.batches.create|retrieve|list|cancel``, on the machinery of Bedrock's
model invocation jobs (``tailor.services.batch_inference``, one table, one worker).

The input is a file of the caller's (``purpose="batch"``) of ``{custom_id, method, url, body}``
lines for ``/v1/chat/completions``; the answers come back as files of the caller's too (purpose
``batch_output``): the output file (``response.status_code`` 200, a ``chat.completion`` body) and
the error file (requests the endpoint refused or the model could not answer), read with
``client.files.content``.

Statuses (the SDK's ``Batch.status``) from the job's lifecycle: queued ``validating``, running
``in_progress``, writing its files ``finalizing``, then ``completed``, ``failed``, ``expired``
(its 24 h window ran out: what was answered is in its files), ``cancelling`` and ``cancelled``.

A retried create makes no second batch: an ``Idempotency-Key`` header is the batch's token, and
a client's automatic retry of the same body (``x-stainless-retry-count``) within ``RETRY_WINDOW``
answers the batch the first try made, as the fine-tuning routes do.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from tailor.api.openai.common import (
    RETRY_WINDOW,
    caller,
    create_token,
    error_response,
    list_object,
    number,
)
from tailor.api.openai.routes import DEFAULT_MAX_TOKENS
from tailor.errors import InvalidInput
from tailor.services import batch_inference
from tailor.services.batch_inference import OpenAIBatchRequest
from tailor.store.data_in_out import InvocationJob
from tailor.wire.request_json import parse_json

CREATE_FIELDS = {"input_file_id", "endpoint", "completion_window", "metadata", "output_expires_after"}


def add_routes(app: FastAPI) -> None:
    route = app.add_api_route
    route("/v1/batches", create_batch, methods=["POST"], name="openai.batches.create")
    route("/v1/batches", list_batches, methods=["GET"], name="openai.batches.list")
    route("/v1/batches/{batch_id}", retrieve_batch, methods=["GET"], name="openai.batches.retrieve")
    route("/v1/batches/{batch_id}/cancel", cancel_batch, methods=["POST"], name="openai.batches.cancel")


# ---------------------------------------------------------------------------------------------
# Wire shapes (pure)


def read_create(body, *, token: str | None) -> OpenAIBatchRequest:
    """``batches.create``'s body as a request; unknown or mistyped fields are refused by name."""
    if not isinstance(body, dict):
        raise InvalidInput("The body must be a JSON object.")
    if unknown := sorted(set(body) - CREATE_FIELDS):
        raise InvalidInput(f"{unknown[0]}: unknown parameter.", param=unknown[0])
    for name in ("input_file_id", "endpoint", "completion_window"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise InvalidInput(f"{name}: required, a string.", param=name)
    if body.get("output_expires_after") is not None:
        raise InvalidInput("output_expires_after: not available; a batch's files stay until deleted.",
                           param="output_expires_after")
    return OpenAIBatchRequest(input_file_id=body["input_file_id"], endpoint=body["endpoint"],
                              completion_window=body["completion_window"], default_max_tokens=DEFAULT_MAX_TOKENS,
                              metadata=body.get("metadata"), token=token)


def batch_status(row: InvocationJob) -> str:
    progress = row.progress or {}
    if row.status == "InProgress":
        if row.phase in ("queued", "starting"):
            return "validating"
        return "finalizing" if progress.get("finalizing") else "in_progress"
    if row.status == "Completed":
        return "expired" if progress.get("expired") else "completed"
    return {"Failed": "failed", "Stopping": "cancelling", "Stopped": "cancelled"}.get(row.status, "failed")


def batch_object(row: InvocationJob) -> dict:
    """The SDK's ``Batch``."""
    fields, progress = row.openai or {}, row.progress or {}
    status = batch_status(row)
    created = _time(row.created_at)
    ended = _time(row.end_time)
    started = progress.get("startedAt")
    errors = None
    if row.status == "Failed" and row.failure_message:
        errors = {"object": "list", "data": [{"code": "batch_failed", "message": row.failure_message,
                                              "param": None, "line": None}]}
    input_tokens, output_tokens = progress.get("inputTokenCount", 0), progress.get("outputTokenCount", 0)
    return {
        "id": f"batch_{row.id}", "object": "batch", "endpoint": fields.get("endpoint"), "errors": errors,
        "input_file_id": fields.get("input_file_id"), "completion_window": fields.get("completion_window"),
        "status": status, "output_file_id": fields.get("output_file_id"), "error_file_id": fields.get("error_file_id"),
        "created_at": created, "in_progress_at": int(started) if started else None,
        "expires_at": created + (row.timeout_hours or 24) * 3600,
        "finalizing_at": ended if ended and status in ("completed", "expired") else None,
        "completed_at": ended if status == "completed" else None,
        "failed_at": ended if status == "failed" else None,
        "expired_at": ended if status == "expired" else None,
        "cancelling_at": fields.get("cancelling_at"),
        "cancelled_at": ended if status == "cancelled" else None,
        "request_counts": {"total": progress.get("totalRecordCount", 0),
                           "completed": progress.get("successRecordCount", 0),
                           "failed": progress.get("errorRecordCount", 0)},
        "metadata": fields.get("metadata"), "model": row.model_id,
        "usage": {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": input_tokens + output_tokens},
    }


def _time(moment) -> int | None:
    return int(moment.timestamp()) if moment is not None else None


# ---------------------------------------------------------------------------------------------
# Routes


async def create_batch(request: Request) -> Response:
    try:
        store, settings, principal = await caller(request)
        raw = await request.body()
        body = parse_json(raw)
        token, retried = create_token(request, raw)
        if retried:
            earlier = await run_in_threadpool(batch_inference.find_retried_batch, store, principal, retried,
                                              RETRY_WINDOW)
            if earlier is not None:
                return JSONResponse(batch_object(earlier))
        batch_request = read_create(body, token=token)
        row = await run_in_threadpool(batch_inference.create_openai_batch, store, settings, principal, batch_request)
        return JSONResponse(batch_object(row))
    except Exception as error:
        return error_response(error)


async def retrieve_batch(request: Request, batch_id: str) -> Response:
    try:
        store, _, principal = await caller(request)
        row = await run_in_threadpool(batch_inference.get_job, store, principal, batch_id, openai=True)
        return JSONResponse(batch_object(row))
    except Exception as error:
        return error_response(error)


async def cancel_batch(request: Request, batch_id: str) -> Response:
    try:
        store, _, principal = await caller(request)
        row = await run_in_threadpool(batch_inference.stop_job, store, principal, batch_id, openai=True)
        return JSONResponse(batch_object(row))
    except Exception as error:
        return error_response(error)


async def list_batches(request: Request) -> Response:
    try:
        store, _, principal = await caller(request)
        page = await run_in_threadpool(batch_inference.list_openai_batches, store, principal,
                                       after=request.query_params.get("after"), limit=number(request, "limit", 20))
        return JSONResponse(list_object([batch_object(row) for row in page.rows], page.has_more))
    except Exception as error:
        return error_response(error)
