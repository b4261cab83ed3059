"""What every OpenAI route shares: who is calling, an error in OpenAI's envelope, a whole-number
query parameter, OpenAI's list object, and the idempotency token of a create."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import timedelta

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from tailor.api.openai.errors import error_body
from tailor.errors import InvalidInput, show_value

_NUMBER = re.compile(r"[0-9]{1,10}")
RETRY_WINDOW = timedelta(minutes=10)  # how long a retried create's body answers with the first one's result


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


def create_token(request: Request, raw: bytes) -> tuple[str, str | None]:
    """The token a create is stored under, in the shape Bedrock's clientRequestToken has (letters,
    digits, hyphens), and for an SDK retry without an ``Idempotency-Key`` the token prefix its first
    attempt was stored under (the caller answers with that one when found within ``RETRY_WINDOW``).
    An ``Idempotency-Key`` is the token itself; otherwise the body's hash, made unique."""
    if key := request.headers.get("idempotency-key"):
        return f"openai-key-{hashlib.sha256(key.encode()).hexdigest()}", None
    prefix = f"openai-body-{hashlib.sha256(raw).hexdigest()}-"
    retried = request.headers.get("x-stainless-retry-count", "0") not in ("", "0")
    return prefix + uuid.uuid4().hex, prefix if retried else None
