"""OpenAI's fine-tuning job routes: ``client.fine_tuning.jobs.create|retrieve|list|cancel|pause|resume|
list_events`` and ``.checkpoints.list``. The same jobs the Bedrock API and the CLI see: a create
goes through ``services.customization.create_job`` like theirs (``fine_tuning.py`` converts).

A retried create makes no second job. The openai client retries a create that timed out or got a
5xx, 409 or 429, without an idempotency key; it says so in ``x-stainless-retry-count``. So a
create remembers its body's hash, and a retry with the same body within ``RETRY_WINDOW`` answers
the job the first try made. An ``Idempotency-Key`` header, where a client sends one, is the job's
token outright.
"""

from __future__ import annotations

import re

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from tailor.api.openai import fine_tuning
from tailor.api.openai.common import (
    RETRY_WINDOW,
    caller,
    create_token,
    error_response,
    list_object,
    number,
)
from tailor.errors import InvalidFields, InvalidHyperparameters
from tailor.jobs.spec import JobView
from tailor.services import customization, inference, job_events
from tailor.store.db import utcnow
from tailor.wire.request_json import parse_json

_METADATA_KEY = re.compile(r"metadata\[(.+)\]")


def add_routes(app: FastAPI) -> None:
    # A job may be named by its ARN, which holds "/": the actions on it are matched first.
    route = app.add_api_route
    jobs = "/v1/fine_tuning/jobs"
    route(jobs, create_job, methods=["POST"], name="openai.fine_tuning.jobs.create")
    route(jobs, list_jobs, methods=["GET"], name="openai.fine_tuning.jobs.list")
    route(jobs + "/{job_id:path}/cancel", cancel_job, methods=["POST"], name="openai.fine_tuning.jobs.cancel")
    route(jobs + "/{job_id:path}/pause", pause_job, methods=["POST"], name="openai.fine_tuning.jobs.pause")
    route(jobs + "/{job_id:path}/resume", resume_job, methods=["POST"], name="openai.fine_tuning.jobs.resume")
    route(jobs + "/{job_id:path}/events", list_job_events, methods=["GET"], name="openai.fine_tuning.jobs.events")
    route(jobs + "/{job_id:path}/checkpoints", list_checkpoints, methods=["GET"],
          name="openai.fine_tuning.jobs.checkpoints")
    route(jobs + "/{job_id:path}", retrieve_job, methods=["GET"], name="openai.fine_tuning.jobs.retrieve")


def job_object(store, view: JobView) -> dict:
    """The SDK's job object: the view, its metadata (tags), its ``ft:`` model once trained."""
    model_name = (view.spec.openai or {}).get("fine_tuned_model") if view.row.output_model_arn else None
    return fine_tuning.job_object(view, customization.tags_of(store, view.row.arn), model_name, utcnow())


async def create_job(request: Request) -> Response:
    try:
        store, settings, principal = await caller(request)
        raw = await request.body()
        body = fine_tuning.read_create(parse_json(raw))
        token, retried = create_token(request, raw)
        if retried:
            earlier = await run_in_threadpool(customization.find_retried, store, principal, retried, RETRY_WINDOW)
            if earlier is not None:
                return JSONResponse(await run_in_threadpool(job_object, store, earlier))
        job_request = fine_tuning.customization_request(body, token)
        try:
            arn = await run_in_threadpool(customization.create_job, store, settings, principal, job_request)
        except InvalidHyperparameters as error:  # named as the caller wrote them
            raise InvalidFields([(fine_tuning.hyperparameter_path(body, name), problem)
                                 for name, problem in error.problems.items()]) from None
        view = await run_in_threadpool(customization.get_job, store, principal, arn)
        return JSONResponse(await run_in_threadpool(job_object, store, view))
    except Exception as error:
        return error_response(error)


async def list_jobs(request: Request) -> Response:
    try:
        store, _, principal = await caller(request)
        metadata = {match.group(1): value for name, value in request.query_params.multi_items()
                    if (match := _METADATA_KEY.fullmatch(name))}
        page = await run_in_threadpool(customization.list_jobs_after, store, principal,
                                       after=request.query_params.get("after"), limit=number(request, "limit", 20),
                                       metadata=metadata)

        def objects() -> list[dict]:
            return [job_object(store, view) for view in page.rows]

        return JSONResponse(list_object(await run_in_threadpool(objects), page.has_more))
    except Exception as error:
        return error_response(error)


async def retrieve_job(request: Request, job_id: str) -> Response:
    return await _job(request, customization.get_job, job_id)


async def cancel_job(request: Request, job_id: str) -> Response:
    """``client.fine_tuning.jobs.cancel(job)``: Bedrock's StopModelCustomizationJob."""
    def cancel(store, principal, identifier):
        customization.stop_job(store, principal, identifier)
        return customization.get_job(store, principal, identifier)

    return await _job(request, cancel, job_id)


async def pause_job(request: Request, job_id: str) -> Response:
    """``client.fine_tuning.jobs.pause(job)``: the job checkpoints at its next step and is paused."""
    return await _job(request, customization.pause_job, job_id)


async def resume_job(request: Request, job_id: str) -> Response:
    """``client.fine_tuning.jobs.resume(job)``: a paused job is queued again and continues."""
    return await _job(request, customization.resume_job, job_id)


async def _job(request: Request, action, job_id: str) -> Response:
    try:
        store, _, principal = await caller(request)
        view = await run_in_threadpool(action, store, principal, job_id)
        return JSONResponse(await run_in_threadpool(job_object, store, view))
    except Exception as error:
        return error_response(error)


async def list_job_events(request: Request, job_id: str) -> Response:
    """A job's events, newest first: ``client.fine_tuning.jobs.list_events(job)``, where ``job`` is
    the job's id (the last part of its ARN), name or ARN."""
    try:
        store, _, principal = await caller(request)
        page = await run_in_threadpool(job_events.list_events, store, principal, job_id,
                                       after=request.query_params.get("after"), limit=number(request, "limit", 20))
        return JSONResponse(page)
    except Exception as error:
        return error_response(error)


async def list_checkpoints(request: Request, job_id: str) -> Response:
    """``client.fine_tuning.jobs.checkpoints.list(job)``: the model at the end of each of the last
    epochs before the final one, newest first, each callable by its ``ft:…:ckpt-step-N`` name."""
    try:
        store, _, principal = await caller(request)
        view, kept = await run_in_threadpool(customization.job_checkpoints, store, principal, job_id)
        model_name = (view.spec.openai or {}).get("fine_tuned_model")
        objects = [fine_tuning.checkpoint_object(view.row.id, inference.checkpoint_name(model_name, c.step), c.step,
                                                 c.created_at, c.metrics)
                   for c in reversed(kept)] if model_name else []
        after, limit = request.query_params.get("after"), number(request, "limit", 10)
        if after is not None:
            ids = [item["id"] for item in objects]
            objects = objects[ids.index(after) + 1:] if after in ids else []
        return JSONResponse(list_object(objects[:limit], len(objects) > limit))
    except Exception as error:
        return error_response(error)
