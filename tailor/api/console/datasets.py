"""The console's Datasets page: upload a JSONL file to a bucket, list the caller's datasets,
validate one (every problem by file, line and field) and show its training view (the rendered
chat template with the loss-carrying tokens marked).

A thin layer over ``tailor.services.datasets``. The page is server-rendered; ``datasets.js``
calls the JSON routes under ``/console/api/datasets/`` and draws their answers. The upload is
streamed by Starlette, then copied into a private temporary file under ``$TAILOR_HOME/tmp`` (the
edge already refused a body over the file limit); only ``services.datasets.upload`` decides where
it goes.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.datastructures import UploadFile

from tailor.api.console.auth import CSRF_HEADER, checked, signed_in
from tailor.api.console.pages import ConsoleRoute, render, template_filter
from tailor.data.validate import Report
from tailor.errors import InvalidInput
from tailor.services import datasets
from tailor.services.console_sessions import ConsoleSession
from tailor.wire.request_json import json_object, text_field

router = APIRouter(route_class=ConsoleRoute)

DEFAULT_PREVIEW = 10


@template_filter
def dataset_size(count: int) -> str:
    """Bytes for people: 812 B, 4.2 KB, 1.3 MB."""
    size = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"


def _state(request: Request):
    return request.app.state.store, request.app.state.settings


@router.get("/console/datasets", include_in_schema=False)
def index(request: Request, session: ConsoleSession = Depends(signed_in)) -> Response:
    store, settings = _state(request)
    return render(request, "datasets/index.html", {
        "buckets": datasets.list_datasets(store, settings, session.principal),
        "models": datasets.model_choices(store, settings, session.principal),
        "kinds": [kind.value for kind in datasets.KINDS], "preview_default": DEFAULT_PREVIEW,
        "preview_max": datasets.PREVIEW_MAX, "uploaded": request.query_params.get("uploaded")})


@router.get("/console/datasets/list", include_in_schema=False)
def bucket_list(request: Request, session: ConsoleSession = Depends(signed_in)) -> Response:
    """The list alone (the page swaps it in after an upload)."""
    store, settings = _state(request)
    return render(request, "datasets/_list.html", {"buckets": datasets.list_datasets(store, settings,
                                                                                      session.principal)})


@router.get("/console/api/datasets", include_in_schema=False)
def list_json(request: Request, session: ConsoleSession = Depends(signed_in)) -> Response:
    store, settings = _state(request)
    return JSONResponse({"buckets": datasets.list_datasets(store, settings, session.principal)})


@router.post("/console/api/datasets/upload", include_in_schema=False)
async def upload(request: Request, session: ConsoleSession = Depends(checked)) -> Response:
    store, settings = _state(request)
    try:
        form = await request.form(max_files=1, max_fields=3)
    except Exception as error:  # malformed multipart: Starlette raises its own errors
        raise InvalidInput(f"The upload could not be read: {getattr(error, 'detail', error)}") from None
    uri, upload_file = form.get("uri"), form.get("file")
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidInput("uri: name where the file goes, as s3://BUCKET/KEY.jsonl.", param="uri")
    if not isinstance(upload_file, UploadFile):
        raise InvalidInput("file: choose a file to upload.", param="file")
    try:
        answer = await run_in_threadpool(_upload, store, settings, session.principal, uri.strip(), upload_file)
    finally:
        await upload_file.close()
    if request.headers.get(CSRF_HEADER) is None:  # a plain form post (no script): back to the page
        return RedirectResponse(f"/console/datasets?uploaded={answer['uri']}", status_code=303)
    return JSONResponse(answer)


def _upload(store, settings, principal: str, uri: str, upload_file: UploadFile) -> dict[str, Any]:
    upload_file.file.seek(0)
    return datasets.upload_stream(store, settings, principal, uri, upload_file.file, field="file")


def preview_count(body: dict) -> int:
    """How many records a training view shows: ``first`` (1 to ``PREVIEW_MAX``), default 10."""
    first = body.get("first", DEFAULT_PREVIEW)
    if isinstance(first, str) and first.strip().isdigit():
        first = int(first)
    if not isinstance(first, int) or isinstance(first, bool) or not 1 <= first <= datasets.PREVIEW_MAX:
        raise InvalidInput(f"first: a whole number from 1 to {datasets.PREVIEW_MAX}.", param="first")
    return first


def report_json(report: Report) -> dict[str, Any]:
    """A report as the page shows it: its summary, and every problem with its file."""
    answer = report.to_dict()
    answer["summary"] = report.render().splitlines()[0]
    answer["problems"] = [{"file": problem.file, **problem.to_dict()} for problem in report.problems]
    return answer


@router.post("/console/api/datasets/validate", include_in_schema=False)
async def validate(request: Request, session: ConsoleSession = Depends(checked)) -> Response:
    store, settings = _state(request)
    body = json_object(await request.body())
    reports = await run_in_threadpool(
        datasets.validate, store, settings, session.principal, text_field(body, "uri"), text_field(body, "kind"),
        text_field(body, "base_model"), text_field(body, "validation_uri", required=False))
    return JSONResponse({"ok": all(report.ok for report in reports),
                         "reports": [report_json(report) for report in reports]})


@router.post("/console/api/datasets/preview", include_in_schema=False)
async def preview(request: Request, session: ConsoleSession = Depends(checked)) -> Response:
    store, settings = _state(request)
    body = json_object(await request.body())
    first = preview_count(body)
    records = await datasets.training_view(store, settings, session.principal, text_field(body, "uri"),
                                           text_field(body, "kind"), text_field(body, "base_model"),
                                           request.app.state.engine, first=first)
    return JSONResponse({"records": records})

