"""What every request passes before it reaches a route, authentication included.

- **A body limit, enforced while reading.** A declared ``Content-Length`` over the limit is refused
  before a byte of the body is read; a body sent without one (chunked) is counted as it arrives
  and refused the moment it passes the limit. Either way the answer is 413 in the caller's
  dialect, and no route — not even authentication — has run, so an unsigned client cannot make
  the server hold more than the limit per connection.
- **Under ``--insecure-local``, loopback and same-origin only.** That mode accepts any
  credentials, so it must not be reachable from a web page the user happens to visit: a request
  whose ``Host`` is not a loopback name (DNS rebinding) or that a browser marks as coming from
  another site (``Origin``, ``Sec-Fetch-Site``) is refused with 403.

Both are plain ASGI middleware (no Starlette ``BaseHTTPMiddleware``, which would buffer streamed
responses). Errors are written by the dialects' own error functions, so their shape has one home.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse

from tailor.api.bedrock.errors import error_response
from tailor.api.fallback import is_openai
from tailor.api.openai.errors import error_body
from tailor.api.sigv4 import host_name
from tailor.errors import AccessDenied, InvalidInput, TailorError

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def error_response_for(path: str, error: TailorError, status: int | None = None) -> JSONResponse:
    """The error in the dialect the path belongs to (OpenAI's under ``/v1``, else AWS's); the
    connection closes after it, as the request body may not have been read."""
    if is_openai(path):
        code, body = error_body(error)
        headers = {}
    else:
        code, headers, body = error_response(error)
    return JSONResponse(body, status_code=status or code, headers={**headers, "connection": "close"})


async def send_error(scope: Scope, receive: Receive, send: Send, error: TailorError,
                     status: int | None = None) -> None:
    await error_response_for(scope.get("path", ""), error, status)(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value.decode("latin-1")
    return None


# Multipart framing around a file: boundaries, part headers, the purpose field.
MULTIPART_OVERHEAD = 64 * 1024
CONSOLE_UPLOAD = "/console/api/datasets/upload"


def file_body_limit(path: str, max_file_bytes: int, max_part_bytes: int) -> int | None:
    """The larger body limit of the routes that take a file (``POST /v1/files`` and the console's
    dataset upload: one file; ``/v1/uploads/{id}/parts``: one part), else None. Only those stream
    their body to disk."""
    if path in ("/v1/files", CONSOLE_UPLOAD):
        return max_file_bytes + MULTIPART_OVERHEAD
    if path.startswith("/v1/uploads/") and path.endswith("/parts"):
        return max_part_bytes + MULTIPART_OVERHEAD
    return None


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` (``limit_for(path)`` where it says otherwise) with
    413, before any route or authentication runs."""

    def __init__(self, app: ASGIApp, max_bytes: int, limit_for: Callable[[str], int | None] = lambda path: None):
        self.app, self.default_bytes, self.limit_for = app, max_bytes, limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        larger = self.limit_for(scope.get("path", ""))
        max_bytes = larger or self.default_bytes
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                return await send_error(scope, receive, send, InvalidInput("Content-Length must be a whole number."))
            if int(declared) > max_bytes:
                return await send_error(scope, receive, send, _too_large(max_bytes), 413)
            # The HTTP server delivers exactly the declared length, no more.
            return await self.app(scope, receive, send)

        if larger is not None and scope.get("method") not in ("GET", "HEAD", "DELETE"):
            # Buffering a chunked file here could hold hundreds of MB per connection: a file's
            # body must say its length (the openai client always does).
            return await send_error(scope, receive, send, InvalidInput(
                "A file upload must declare its Content-Length; chunked bodies are refused here."), 411)
        # No declared length (a chunked body): read it here, counting, and stop at the limit.
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_bytes:
                return await send_error(scope, receive, send, _too_large(max_bytes), 413)
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        pending = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay() -> dict:
            return pending.pop() if pending else await receive()

        await self.app(scope, replay, send)


def _too_large(max_bytes: int) -> InvalidInput:
    return InvalidInput(f"The request body is larger than this server accepts ({max_bytes:,} bytes; the "
                        "operator sets max_request_bytes, and max_file_bytes for files).")


class LoopbackOnly:
    """``--insecure-local``: only requests addressed to a loopback name and not sent by another site."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        reason = cross_site_reason(_header(scope, b"host"), _header(scope, b"origin"),
                                   _header(scope, b"sec-fetch-site"))
        if reason:
            return await send_error(scope, receive, send, AccessDenied(
                f"Refused under --insecure-local: {reason}. That mode serves this machine's own clients only."), 403)
        await self.app(scope, receive, send)


def cross_site_reason(host: str | None, origin: str | None, fetch_site: str | None) -> str | None:
    """Why a request may come from somewhere other than this machine's own clients, or None."""
    if host_name(host or "") not in LOOPBACK_NAMES:
        return "the Host header does not name a loopback address"
    if origin is not None and origin != "null" and host_name(urlsplit(origin).netloc) not in LOOPBACK_NAMES:
        return "the request comes from a web page of another site (Origin)"
    if origin == "null" or (fetch_site or "").lower() == "cross-site":
        return "the browser marks the request as cross-site"
    return None
