"""What the server answers when no route does: unknown paths, wrong methods, unexpected failures.

FastAPI's own answers (``{"detail": "Not Found"}``, a plain-text 500) are in no client's dialect:
botocore finds no error code in them and the openai client no message. ``add_handlers(app)``
replaces them with the dialect of the path: OpenAI's envelope under ``/v1``, the AWS rest-json
envelope everywhere else -- including the few Bedrock operations whose own paths start with ``/v1``
(data retention storage), which a boto3 client calls:

* an unknown path: 404 ``UnknownOperationException`` (the code AWS services give an operation they
  do not have; here, mostly a Bedrock operation Tailor does not implement) / OpenAI's "Invalid URL";
* a known path with a method no route takes there: 405 with ``Allow``, in the same shapes;
* a request FastAPI itself refuses before a route runs: 400 ``ValidationException``;
* any other exception that escapes a route: the dialect's 500, its traceback in the log.

Under ``/console`` the same answers are a small HTML page (the console's own routes render their
errors themselves: ``tailor.api.console.pages``).

Trailing-slash redirects are turned off: AWS and OpenAI clients never add a slash, and a redirect
would send a signed request to a path it was not signed for.
"""

from __future__ import annotations

import functools
import html
import re

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException

from tailor.api.bedrock.errors import envelope
from tailor.api.bedrock.shapes import RUNTIME_SERVICE, SERVICE_NAME, service_model
from tailor.api.errors import INTERNAL_MESSAGE
from tailor.api.openai.errors import envelope as openai_envelope

UNKNOWN_OPERATION = "UnknownOperationException"
_CONSOLE_PAGE = ('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{status} · Tailor console</title>'
                 '</head><body><h1>{status}</h1><p id="error-message">{message}</p>'
                 '<p><a href="/console">Console home</a></p></body></html>')


def add_handlers(app: FastAPI) -> None:
    app.router.redirect_slashes = False
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _internal_error)


def is_console(path: str) -> bool:
    return path == "/console" or path.startswith("/console/")


def is_openai(path: str) -> bool:
    return (path == "/v1" or path.startswith("/v1/")) and not _bedrock_path().fullmatch(path)


@functools.cache
def _bedrock_path() -> re.Pattern[str]:
    """Every request URI of both Bedrock models, as one pattern (``{name}`` one segment, ``{name+}`` more)."""
    templates = {op["http"]["requestUri"].split("?")[0] for service in (SERVICE_NAME, RUNTIME_SERVICE)
                 for op in service_model(service)["operations"].values()}
    alternatives = []
    for template in sorted(templates):
        pieces = re.split(r"(\{[^}]+\})", template)
        alternatives.append("".join(("[^/]*" if not piece.endswith("+}") else ".*") if piece.startswith("{")
                                    else re.escape(piece) for piece in pieces))
    return re.compile("|".join(alternatives))


def _raw_path(request: Request) -> str:
    # The path as sent, still percent-encoded: an encoded "/" inside an ARN stays inside its segment,
    # and a message quoting it shows nothing a client could not have typed (nothing unencodable).
    return (request.scope.get("raw_path") or request.url.path.encode()).decode("latin-1")


def _where(request: Request) -> str:
    return f"{request.method} {_raw_path(request)[:200]}"


def _answer(request: Request, status: int, aws_code: str, openai_kind: str, openai_code: str | None,
            message: str, headers: dict[str, str] | None = None) -> Response:
    if is_console(_raw_path(request)):  # a person reads it: a page, not an envelope
        return HTMLResponse(_CONSOLE_PAGE.format(status=status, message=html.escape(message)), status_code=status,
                            headers=headers)
    if is_openai(_raw_path(request)):
        return JSONResponse(openai_envelope(message, openai_kind, openai_code), status_code=status, headers=headers)
    _, aws_headers, body = envelope(aws_code, status, message)
    return JSONResponse(body, status_code=status, headers={**aws_headers, **(headers or {})})


async def _http_error(request: Request, error: HTTPException) -> Response:
    where = _where(request)
    if error.status_code == 404:
        message = (f"Invalid URL ({where})" if is_openai(_raw_path(request)) else
                   f"There is no console page at {_raw_path(request)[:200]}." if is_console(_raw_path(request)) else
                   f"No operation answers {where}: Tailor does not implement it (docs/api.md lists what it does).")
        return _answer(request, 404, UNKNOWN_OPERATION, "invalid_request_error", None, message)
    if error.status_code == 405:
        allowed = (error.headers or {}).get("Allow", "")
        message = f"Method {request.method} is not allowed for {where.split(' ', 1)[1]}; allowed: {allowed}."
        return _answer(request, 405, UNKNOWN_OPERATION, "invalid_request_error", None, message,
                       headers={"Allow": allowed} if allowed else None)
    # Any other HTTPException a route or Starlette raised keeps its status, in the dialect's shape.
    code = "ValidationException" if error.status_code < 500 else "InternalServerException"
    kind = "invalid_request_error" if error.status_code < 500 else "server_error"
    return _answer(request, error.status_code, code, kind, None, str(error.detail), headers=error.headers)


async def _invalid_request(request: Request, error: RequestValidationError) -> Response:
    problems = [f"{'.'.join(str(part) for part in problem.get('loc', ()))}: {problem.get('msg', 'invalid')}"
                for problem in error.errors()]
    message = "Invalid request: " + "; ".join(problems) if problems else "Invalid request."
    return _answer(request, 400, "ValidationException", "invalid_request_error", "invalid_value", message)


async def _internal_error(request: Request, error: Exception) -> Response:
    # Starlette sends this answer, then re-raises, so the server logs the traceback; the client
    # sees no detail.
    return _answer(request, 500, "InternalServerException", "server_error", None, INTERNAL_MESSAGE)
