"""OpenAI's Files and Uploads APIs: ``client.files.create|retrieve|list|delete|content`` and
``client.uploads.create``, ``.parts.create``, ``.complete``, ``.cancel`` (and the SDK's
``upload_file_chunked``, built on them). The work is ``tailor.services.files``'; here are the wire
shapes (``types/file_object.py``, ``types/upload.py``, ``types/uploads/upload_part.py``).

A multipart body is streamed to a temporary file by Starlette as it arrives (the edge has already
refused one larger than the file limit), then copied into the caller's file; nothing is kept if
the file is refused.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.datastructures import UploadFile

from tailor.api.openai.common import caller, error_response, list_object, number
from tailor.errors import InvalidInput, show_value
from tailor.services import files
from tailor.store.files import File, Upload
from tailor.wire.request_json import parse_json


def add_routes(app: FastAPI) -> None:
    route = app.add_api_route
    route("/v1/files", create_file, methods=["POST"], name="openai.files.create")
    route("/v1/files", list_files, methods=["GET"], name="openai.files.list")
    route("/v1/files/{file_id}", retrieve_file, methods=["GET"], name="openai.files.retrieve")
    route("/v1/files/{file_id}", delete_file, methods=["DELETE"], name="openai.files.delete")
    route("/v1/files/{file_id}/content", file_content, methods=["GET"], name="openai.files.content")
    route("/v1/uploads", create_upload, methods=["POST"], name="openai.uploads.create")
    route("/v1/uploads/{upload_id}/parts", add_part, methods=["POST"], name="openai.uploads.parts.create")
    route("/v1/uploads/{upload_id}/complete", complete_upload, methods=["POST"], name="openai.uploads.complete")
    route("/v1/uploads/{upload_id}/cancel", cancel_upload, methods=["POST"], name="openai.uploads.cancel")


# ---------------------------------------------------------------------------------------------
# Wire shapes


def file_object(row: File) -> dict:
    return {"id": row.id, "object": "file", "bytes": row.bytes, "created_at": _time(row.created_at),
            "expires_at": _time(row.expires_at), "filename": row.filename, "purpose": row.purpose,
            "status": "processed", "status_details": None}


def upload_object(row: Upload, file: File | None) -> dict:
    return {"id": row.id, "object": "upload", "bytes": row.bytes, "created_at": _time(row.created_at),
            "expires_at": _time(row.expires_at), "filename": row.filename, "purpose": row.purpose,
            "status": row.status, "file": file_object(file) if file is not None else None}


def _time(moment) -> int | None:
    return int(moment.timestamp()) if moment is not None else None


# ---------------------------------------------------------------------------------------------
# Routes


async def _form(request: Request, fields: tuple[str, ...], file_field: str):
    """The multipart form's text fields and its one file; refused unless it is exactly that."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidInput("The body must be multipart/form-data (as the openai client sends it).")
    try:
        form = await request.form(max_files=1, max_fields=len(fields) + 2)
    except Exception as error:  # malformed multipart: Starlette raises its own HTTP or parse errors
        raise InvalidInput(f"The multipart body could not be read: {getattr(error, 'detail', error)}") from None
    upload = form.get(file_field)
    if not isinstance(upload, UploadFile):
        raise InvalidInput(f"{file_field}: a file is required.", param=file_field)
    values = {}
    for name in fields:
        value = form.get(name)
        if isinstance(value, UploadFile):
            raise InvalidInput(f"{name}: must be text, not a file.", param=name)
        values[name] = value
    return values, upload


def _expires_after(values: dict, prefix: str = "expires_after") -> int | None:
    """``expires_after[anchor]=created_at`` and ``expires_after[seconds]=N`` (the SDK's form encoding)."""
    anchor, seconds = values.get(f"{prefix}[anchor]"), values.get(f"{prefix}[seconds]")
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at":
        raise InvalidInput(f"expires_after.anchor: must be created_at; got {show_value(anchor)}.", param="expires_after")
    if seconds is None or not seconds.isascii() or not seconds.isdigit() or len(seconds) > 10:
        raise InvalidInput(f"expires_after.seconds: must be a whole number; got {show_value(seconds)}.",
                           param="expires_after")
    return int(seconds)


async def create_file(request: Request) -> Response:
    try:
        store, settings, principal = await caller(request)
        values, upload = await _form(request, ("purpose", "expires_after[anchor]", "expires_after[seconds]"), "file")
        try:
            row = await run_in_threadpool(
                files.create_file, store, settings, principal, filename=upload.filename or "",
                purpose=values.get("purpose") or "", source=upload.file, expires_after=_expires_after(values))
        finally:
            await upload.close()
        return JSONResponse(file_object(row))
    except Exception as error:
        return error_response(error)


async def list_files(request: Request) -> Response:
    try:
        store, settings, principal = await caller(request)
        query = request.query_params
        page = await run_in_threadpool(files.list_files, store, settings, principal, purpose=query.get("purpose"),
                                       order=query.get("order", "desc"), after=query.get("after"),
                                       limit=number(request, "limit", files.MAX_LIST))
        return JSONResponse(list_object([file_object(row) for row in page.rows], page.has_more))
    except Exception as error:
        return error_response(error)


async def retrieve_file(request: Request, file_id: str) -> Response:
    try:
        store, _, principal = await caller(request)
        return JSONResponse(file_object(await run_in_threadpool(files.get_file, store, principal, file_id)))
    except Exception as error:
        return error_response(error)


async def delete_file(request: Request, file_id: str) -> Response:
    try:
        store, settings, principal = await caller(request)
        deleted = await run_in_threadpool(files.delete_file, store, settings, principal, file_id)
        return JSONResponse({"id": deleted, "object": "file", "deleted": True})
    except Exception as error:
        return error_response(error)


async def file_content(request: Request, file_id: str) -> Response:
    try:
        store, settings, principal = await caller(request)
        row, path = await run_in_threadpool(files.content_of, store, settings, principal, file_id)
        # The stored name is the caller's; the header carries it quoted and escaped by Starlette.
        return FileResponse(path, media_type="application/octet-stream", filename=row.filename)
    except Exception as error:
        return error_response(error)


async def create_upload(request: Request) -> Response:
    try:
        store, settings, principal = await caller(request)
        body = parse_json(await request.body())
        if not isinstance(body, dict):
            raise InvalidInput("The body must be a JSON object.")
        size = body.get("bytes")
        if not isinstance(size, int) or isinstance(size, bool):
            raise InvalidInput(f"bytes: a whole number is required; got {show_value(size)}.", param="bytes")
        expires = body.get("expires_after")
        if expires is not None and not isinstance(expires, dict):
            raise InvalidInput("expires_after: must be an object {anchor, seconds}.", param="expires_after")
        seconds = _expires_after({f"expires_after[{key}]": str(value) for key, value in (expires or {}).items()})
        for name in ("filename", "purpose", "mime_type"):
            if not isinstance(body.get(name), str):
                raise InvalidInput(f"{name}: a string is required.", param=name)
        row = await run_in_threadpool(files.create_upload, store, settings, principal, filename=body["filename"],
                                      purpose=body["purpose"], size=size, mime_type=body["mime_type"],
                                      expires_after=seconds)
        return JSONResponse(upload_object(row, None))
    except Exception as error:
        return error_response(error)


async def add_part(request: Request, upload_id: str) -> Response:
    try:
        store, settings, principal = await caller(request)
        _, upload = await _form(request, (), "data")
        try:
            part = await run_in_threadpool(files.add_part, store, settings, principal, upload_id, upload.file)
        finally:
            await upload.close()
        return JSONResponse({"id": part.id, "object": "upload.part", "created_at": _time(part.created_at),
                             "upload_id": upload_id})
    except Exception as error:
        return error_response(error)


async def complete_upload(request: Request, upload_id: str) -> Response:
    try:
        store, settings, principal = await caller(request)
        body = parse_json(await request.body())
        part_ids = body.get("part_ids") if isinstance(body, dict) else None
        if not isinstance(part_ids, list) or not all(isinstance(part, str) for part in part_ids):
            raise InvalidInput("part_ids: a list of part ids is required.", param="part_ids")
        md5 = body.get("md5")
        if md5 is not None and not isinstance(md5, str):
            raise InvalidInput("md5: must be a string.", param="md5")
        upload, file = await run_in_threadpool(files.complete_upload, store, settings, principal, upload_id,
                                               part_ids, md5)
        return JSONResponse(upload_object(upload, file))
    except Exception as error:
        return error_response(error)


async def cancel_upload(request: Request, upload_id: str) -> Response:
    try:
        store, settings, principal = await caller(request)
        upload = await run_in_threadpool(files.cancel_upload, store, settings, principal, upload_id)
        return JSONResponse(upload_object(upload, None))
    except Exception as error:
        return error_response(error)
