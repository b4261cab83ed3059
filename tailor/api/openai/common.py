"""What every OpenAI route shares: who is calling, an error in OpenAI's envelope, a whole-number
query parameter, and OpenAI's list object."""

from __future__ import annotations

import re

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from tailor.api.openai.errors import error_body
from tailor.errors import InvalidInput, show_value

_NUMBER = re.compile(r"[0-9]{1,10}")


def error_response(error: Exception) -> JSONResponse:
    status, body = error_body(error)
    return JSONResponse(body, status_code=status)


async def principal_of(request: Request) -> str:
    """The caller, from its bearer key (``AccessDenied``/``Unauthenticated`` when it has none)."""
    return await run_in_threadpool(request.app.state.authenticate_bearer, request)


async def caller(request: Request):
    """(store, settings, principal) of an authenticated request."""
    principal = await principal_of(request)
    return request.app.state.store, request.app.state.settings, principal


def number(request: Request, name: str, default: int) -> int:
    """A whole-number query parameter (ASCII digits only: ``int()`` takes "²" and "1_0")."""
    value = request.query_params.get(name)
    if value is None:
        return default
    if not _NUMBER.fullmatch(value):
        raise InvalidInput(f"{name}: must be a whole number; got {show_value(value)}.", param=name)
    return int(value)


def list_object(data: list[dict], has_more: bool) -> dict:
    """OpenAI's cursor page: ``after`` the last id to go on."""
    return {"object": "list", "data": data, "has_more": has_more,
            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}
