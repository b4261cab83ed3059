"""OpenAI's Evals routes: ``client.evals.create|retrieve|update|list|delete``, ``.runs.create|retrieve|
list|cancel|delete`` and ``.runs.output_items.list|retrieve`` (``evals.py`` converts), and the page
a run's ``report_url`` opens.

The paths are the SDK's: ``POST /v1/evals/{id}`` updates an eval, ``POST
/v1/evals/{id}/runs/{run}/cancel`` cancels a run (and ``POST /v1/evals/{id}/runs/{run}``, where
earlier SDKs sent it). A retried run create makes no second run, as a retried
fine-tuning job create makes no second job (``jobs.py``).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response

from tailor.api.openai import evals
from tailor.api.openai.common import (
    RETRY_WINDOW,
    caller,
    create_token,
    error_response,
    list_object,
    number,
)
from tailor.errors import InvalidFields, InvalidInput, show_value
from tailor.graders.openai import InvalidGrader
from tailor.services import eval_report
from tailor.services import evals as service
from tailor.store.evals import EvalRun
from tailor.wire.request_json import parse_json

MAX_LIMIT = 100


def add_routes(app: FastAPI) -> None:
    route = app.add_api_route
    one, runs = "/v1/evals/{eval_id}", "/v1/evals/{eval_id}/runs"
    run, items = runs + "/{run_id}", runs + "/{run_id}/output_items"
    route("/v1/evals", create_eval, methods=["POST"], name="openai.evals.create")
    route("/v1/evals", list_evals, methods=["GET"], name="openai.evals.list")
    route(one, retrieve_eval, methods=["GET"], name="openai.evals.retrieve")
    route(one, update_eval, methods=["POST"], name="openai.evals.update")
    route(one, delete_eval, methods=["DELETE"], name="openai.evals.delete")
    route(runs, create_run, methods=["POST"], name="openai.evals.runs.create")
    route(runs, list_runs, methods=["GET"], name="openai.evals.runs.list")
    route(run, retrieve_run, methods=["GET"], name="openai.evals.runs.retrieve")
    route(run + "/cancel", cancel_run, methods=["POST"], name="openai.evals.runs.cancel")
    route(run, cancel_run, methods=["POST"], name="openai.evals.runs.cancel.legacy")  # SDKs before 2.x
    route(run, delete_run, methods=["DELETE"], name="openai.evals.runs.delete")
    route(run + "/report", report, methods=["GET"], name="openai.evals.runs.report")
    route(items, list_output_items, methods=["GET"], name="openai.evals.runs.output_items.list")
    route(items + "/{item_id}", retrieve_output_item, methods=["GET"], name="openai.evals.runs.output_items.retrieve")


def _order(request: Request) -> bool:
    """Whether the list goes newest first (``order=desc``); OpenAI's default is ``asc``."""
    order = request.query_params.get("order", "asc")
    if order not in ("asc", "desc"):
        raise InvalidInput(f"order: must be \"asc\" or \"desc\"; got {show_value(order)}.", param="order")
    return order == "desc"


def _choice(request: Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.query_params.get(name)
    if value is not None and value not in allowed:
        raise InvalidInput(f"{name}: must be one of {', '.join(allowed)}; got {show_value(value)}.", param=name)
    return value


def _limit(request: Request) -> int:
    limit = number(request, "limit", 20)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit: must be from 1 to {MAX_LIMIT}; got {limit}.", param="limit")
    return limit


def _run_object(request: Request, settings, row: EvalRun) -> dict:
    signature = eval_report.report_signature(settings, row.id)
    url = f"{str(request.base_url).rstrip('/')}/v1/evals/{row.eval_id}/runs/evalrun_{row.id}/report?signature={signature}"
    return evals.run_object(row, url)


async def _answer(request: Request, work) -> Response:
    """``work(store, settings, principal)`` in a thread, as JSON; any error in OpenAI's envelope."""
    try:
        store, settings, principal = await caller(request)
        return JSONResponse(await run_in_threadpool(work, store, settings, principal))
    except InvalidGrader as error:  # paths as the caller wrote them (testing_criteria[0].input)
        return error_response(InvalidFields(error.problems))
    except Exception as error:
        return error_response(error)


# ---------------------------------------------------------------------------------------------
# Evals


async def create_eval(request: Request) -> Response:
    body = await request.body()
    return await _answer(request, lambda store, settings, principal: evals.eval_object(
        service.create_eval(store, settings, principal, evals.eval_request(parse_json(body)))))


async def list_evals(request: Request) -> Response:
    def work(store, settings, principal):
        page = service.list_evals(store, principal, after=request.query_params.get("after"), limit=_limit(request),
                                  descending=_order(request),
                                  order_by=_choice(request, "order_by", ("created_at", "updated_at")) or "created_at")
        return list_object([evals.eval_object(row) for row in page.rows], page.has_more)

    return await _answer(request, work)


async def retrieve_eval(request: Request, eval_id: str) -> Response:
    return await _answer(request, lambda store, settings, principal: evals.eval_object(
        service.get_eval(store, principal, eval_id)))


async def update_eval(request: Request, eval_id: str) -> Response:
    body = await request.body()

    def work(store, settings, principal):
        name, metadata, metadata_given = evals.eval_update(parse_json(body) if body else {})
        return evals.eval_object(service.update_eval(store, principal, eval_id, name=name, metadata=metadata,
                                                     metadata_given=metadata_given))

    return await _answer(request, work)


async def delete_eval(request: Request, eval_id: str) -> Response:
    def work(store, settings, principal):
        service.delete_eval(store, principal, eval_id)
        return {"object": "eval.deleted", "deleted": True, "eval_id": eval_id}

    return await _answer(request, work)


# ---------------------------------------------------------------------------------------------
# Runs


async def create_run(request: Request, eval_id: str) -> Response:
    raw = await request.body()
    # The eval's id joins the body in the hash: the same body sent to two evals is two runs.
    token, retried = create_token(request, raw + eval_id.encode())

    def work(store, settings, principal):
        if retried and (earlier := service.find_retried_run(store, principal, retried, RETRY_WINDOW)) is not None:
            return _run_object(request, settings, earlier)
        run = service.create_run(store, settings, principal, evals.run_request(eval_id, parse_json(raw), token))
        return _run_object(request, settings, run)

    return await _answer(request, work)


async def list_runs(request: Request, eval_id: str) -> Response:
    def work(store, settings, principal):
        page = service.list_runs(store, principal, eval_id, after=request.query_params.get("after"),
                                 limit=_limit(request), descending=_order(request),
                                 status=_choice(request, "status", tuple(service.STATUS_FILTERS)))
        return list_object([_run_object(request, settings, row) for row in page.rows], page.has_more)

    return await _answer(request, work)


async def retrieve_run(request: Request, eval_id: str, run_id: str) -> Response:
    return await _answer(request, lambda store, settings, principal: _run_object(
        request, settings, service.get_run(store, principal, eval_id, run_id)))


async def cancel_run(request: Request, eval_id: str, run_id: str) -> Response:
    return await _answer(request, lambda store, settings, principal: _run_object(
        request, settings, service.cancel_run(store, principal, eval_id, run_id)))


async def delete_run(request: Request, eval_id: str, run_id: str) -> Response:
    def work(store, settings, principal):
        deleted = service.delete_run(store, principal, eval_id, run_id)
        return {"object": "eval.run.deleted", "deleted": True, "run_id": deleted}

    return await _answer(request, work)


async def report(request: Request, eval_id: str, run_id: str) -> Response:
    """The run's report page. No API key: the link's signature, made with the server's key, is the
    right to read it (a browser cannot send the bearer key)."""
    from tailor.evaluate.report import render_html

    store, settings = request.app.state.store, request.app.state.settings
    signature = request.query_params.get("signature", "")
    try:
        comparison = await run_in_threadpool(eval_report.report_comparison, store, settings, eval_id, run_id, signature)
    except Exception as error:
        return error_response(error)
    return HTMLResponse(await run_in_threadpool(render_html, comparison))


# ---------------------------------------------------------------------------------------------
# Output items


async def list_output_items(request: Request, eval_id: str, run_id: str) -> Response:
    def work(store, settings, principal):
        page = service.list_output_items(store, principal, eval_id, run_id, after=request.query_params.get("after"),
                                         limit=_limit(request), descending=_order(request),
                                         status=_choice(request, "status", ("pass", "fail", "error")))
        return list_object([evals.output_item_object(row, eval_id) for row in page.rows], page.has_more)

    return await _answer(request, work)


async def retrieve_output_item(request: Request, eval_id: str, run_id: str, item_id: str) -> Response:
    return await _answer(request, lambda store, settings, principal: evals.output_item_object(
        service.get_output_item(store, principal, eval_id, run_id, item_id), eval_id))
