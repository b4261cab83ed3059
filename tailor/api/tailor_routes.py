"""Tailor's own routes, under ``/tailor/v1/``: the JSON twins of console functions that neither
Bedrock's nor OpenAI's API has (the console is a client of the services as the APIs are, so
nothing it does is out of an API's reach).

- ``GET  /tailor/v1/datasets``: the caller's buckets and their ``.jsonl`` datasets
  (``datasets.list_datasets``); ``PUT /tailor/v1/datasets?uri=s3://BUCKET/KEY.jsonl`` uploads the
  body there (``datasets.upload_stream``; a new local bucket becomes the caller's).
- ``POST /tailor/v1/datasets/validate``: every problem of a dataset by file, line and field
  (``datasets.validate``; the console's report JSON, ``console.datasets.report_json``).
- ``POST /tailor/v1/datasets/preview``: the first records as training renders them
  (``datasets.training_view``, through the app's engine).
- ``GET  /tailor/v1/hyperparameters``: what a job of a base model and kind accepts, with ranges and
  defaults (``customization.hyperparameter_table``).
- ``POST /tailor/v1/customization-jobs/estimate``: a CreateModelCustomizationJob request checked as
  the Bedrock door checks it (its input shape, ``bedrock.jobs.customization_request``), and its
  pre-flight estimate (``customization.estimate_job``); nothing is created.
- ``GET  /tailor/v1/provisioned-throughput/estimate``: the operator's price for model units
  (``deployments.estimated_cost``).
- ``POST /tailor/v1/custom-models/exports`` ``{modelIdentifier, format: hf|gguf}``: queue an export of
  the caller's custom model (``model_export.create_export``); ``GET /tailor/v1/custom-models/exports``
  and ``.../exports/{id}``: its status, stage, files and checks, and once Completed a signed download
  link that expires (``export_link_seconds``); ``GET .../exports/{id}/download?expires=&signature=``
  streams the file to whoever holds the link (no key: a browser follows it); ``DELETE .../exports/{id}``
  stops a running export, or removes a finished one's file; docs/export.md.

Each route authenticates as the Bedrock routes do (SigV4 or a bearer key; the caller sees only its
own resources) and answers errors in the AWS rest-json envelope, field names in the messages.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response

from tailor.api.bedrock import jobs
from tailor.api.bedrock.errors import error_json
from tailor.api.bedrock.shapes import validate_input
from tailor.api.console.datasets import preview_count, report_json
from tailor.api.console.jobs import estimate_json
from tailor.catalog import CustomizationType
from tailor.errors import InvalidInput
from tailor.services import customization, datasets, deployments, model_export
from tailor.wire.request_json import json_object, text_field

PREFIX = "/tailor/v1"
# CreateModelCustomizationJob requires a role; an estimate assumes none, so one may leave it out.
ESTIMATE_ROLE = "arn:aws:iam::{account}:role/tailor-estimate"

Handler = Callable[[Request, str, bytes], Awaitable[Any]]


def _route(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """``handler(request, principal, body)`` behind authentication; its result as JSON, any failure
    in the AWS error envelope (as ``bedrock.control``'s routes)."""
    async def handle(request: Request) -> Response:
        body = await request.body()
        try:
            principal = await run_in_threadpool(request.app.state.authenticate, request, body)
            return JSONResponse(await handler(request, principal, body))
        except Exception as error:  # every failure leaves in the AWS error envelope
            return error_json(error)

    handle.__name__ = handler.__name__
    return handle


def _body(body: bytes) -> dict:
    return json_object(body) if body.strip() else {}


def _state(request: Request):
    return request.app.state.store, request.app.state.settings


# ---------------------------------------------------------------------------------------------
# Datasets


async def list_datasets(request: Request, principal: str, body: bytes) -> dict:
    store, settings = _state(request)
    return {"buckets": await run_in_threadpool(datasets.list_datasets, store, settings, principal)}


async def upload_dataset(request: Request, principal: str, body: bytes) -> dict:
    """The body is the file (at most the request limit, TAILOR_MAX_REQUEST_BYTES; the console and
    ``tailor data upload`` take larger ones); ``?uri=s3://BUCKET/KEY.jsonl`` says where it goes."""
    store, settings = _state(request)
    uri = text_field(request.query_params, "uri")
    return await run_in_threadpool(datasets.upload_stream, store, settings, principal, uri, io.BytesIO(body))


async def validate_dataset(request: Request, principal: str, body: bytes) -> dict:
    store, settings = _state(request)
    values = _body(body)
    reports = await run_in_threadpool(
        datasets.validate, store, settings, principal, text_field(values, "uri"), text_field(values, "kind"),
        text_field(values, "base_model"), text_field(values, "validation_uri", required=False))
    return {"ok": all(report.ok for report in reports), "reports": [report_json(report) for report in reports]}


async def preview_dataset(request: Request, principal: str, body: bytes) -> dict:
    store, settings = _state(request)
    values = _body(body)
    first = preview_count(values)
    records = await datasets.training_view(store, settings, principal, text_field(values, "uri"), text_field(values, "kind"),
                                           text_field(values, "base_model"), request.app.state.engine, first=first)
    return {"records": records}


# ---------------------------------------------------------------------------------------------
# Customization jobs


def _hyperparameters(request: Request, principal: str) -> dict:
    store, settings = _state(request)
    query = request.query_params
    table = customization.hyperparameter_table(
        store, settings, principal, text_field(query, "base_model"), text_field(query, "kind", required=False)
        or CustomizationType.FINE_TUNING.value, text_field(query, "tuning_method", required=False))
    return {"hyperparameters": [{
        "name": name, "kind": hp.kind.__name__, "minimum": hp.minimum, "maximum": hp.maximum, "default": hp.default,
        "choices": list(hp.choices), "description": hp.description} for name, hp in table.items()]}


async def hyperparameters(request: Request, principal: str, body: bytes) -> dict:
    return await run_in_threadpool(_hyperparameters, request, principal)


def _estimate(request: Request, principal: str, body: bytes) -> dict:
    store, settings = _state(request)
    params = _body(body)
    params.setdefault("roleArn", ESTIMATE_ROLE.format(account=settings.account_id))
    job = jobs.customization_request(validate_input("CreateModelCustomizationJob", params))
    return estimate_json(customization.estimate_job(store, settings, principal, job))


async def estimate_job(request: Request, principal: str, body: bytes) -> dict:
    return await run_in_threadpool(_estimate, request, principal, body)


# ---------------------------------------------------------------------------------------------
# Provisioned throughput


async def throughput_estimate(request: Request, principal: str, body: bytes) -> dict:
    query = request.query_params
    units = text_field(query, "modelUnits", required=False) or "1"
    try:
        model_units = int(units)
    except ValueError:
        raise InvalidInput(f"modelUnits: must be a whole number of at least 1, got {units!r}.",
                           param="modelUnits") from None
    estimate = deployments.estimated_cost(request.app.state.settings, model_units,
                                          text_field(query, "commitmentDuration", required=False))
    return {"estimate": None if estimate is None else {
        "amount": estimate.amount, "currency": estimate.currency, "hours": estimate.hours, "hourly": estimate.hourly}}


# ---------------------------------------------------------------------------------------------
# Model exports (docs/export.md)


async def create_export(request: Request, principal: str, body: bytes) -> dict:
    store, settings = _state(request)
    values = _body(body)
    row = await run_in_threadpool(model_export.create_export, store, settings, principal,
                                  text_field(values, "modelIdentifier"), text_field(values, "format"))
    return model_export.export_json(row, settings, str(request.base_url))


async def get_export(request: Request, principal: str, body: bytes) -> dict:
    store, settings = _state(request)
    row = await run_in_threadpool(model_export.get_export, store, principal, request.path_params["export_id"])
    return model_export.export_json(row, settings, str(request.base_url))


async def delete_export(request: Request, principal: str, body: bytes) -> dict:
    store, settings = _state(request)
    row = await run_in_threadpool(model_export.delete_export, store, principal, request.path_params["export_id"])
    return {**model_export.export_json(row, settings, str(request.base_url)),
            "deleted": row.status in ("Completed", "Failed", "Stopped")}


async def list_exports(request: Request, principal: str, body: bytes) -> dict:
    store, settings = _state(request)
    rows = await run_in_threadpool(model_export.list_exports, store, principal)
    return {"exports": [model_export.export_json(row, settings, str(request.base_url)) for row in rows]}


async def download_export(request: Request) -> Response:
    """The export's file for whoever holds its link: no API key (a browser follows the link), the
    link's signature and expiry are the right to read it (``model_export.download_file``)."""
    store, settings = _state(request)
    query = request.query_params
    try:
        path, name = await run_in_threadpool(model_export.download_file, store, settings,
                                             request.path_params["export_id"], query.get("expires", ""),
                                             query.get("signature", ""))
    except Exception as error:  # every failure leaves in the AWS error envelope  # noqa: BLE001
        return error_json(error)
    return FileResponse(path, filename=name, media_type="application/octet-stream")


ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "/datasets", list_datasets),
    ("PUT", "/datasets", upload_dataset),
    ("POST", "/datasets/validate", validate_dataset),
    ("POST", "/datasets/preview", preview_dataset),
    ("GET", "/hyperparameters", hyperparameters),
    ("POST", "/customization-jobs/estimate", estimate_job),
    ("GET", "/provisioned-throughput/estimate", throughput_estimate),
    ("POST", "/custom-models/exports", create_export),
    ("GET", "/custom-models/exports", list_exports),
    ("GET", "/custom-models/exports/{export_id}", get_export),
    ("DELETE", "/custom-models/exports/{export_id}", delete_export),
)


def add_routes(app: FastAPI) -> None:
    """Register Tailor's own routes. ``app.state`` holds the store, the settings, the engine and
    ``authenticate(request, body) -> principal``."""
    for method, path, handler in ROUTES:
        app.add_api_route(PREFIX + path, _route(handler), methods=[method], name=handler.__name__,
                          include_in_schema=True)
    app.add_api_route(PREFIX + "/custom-models/exports/{export_id}/download", download_export, methods=["GET"],
                      name="download_export", include_in_schema=True)
