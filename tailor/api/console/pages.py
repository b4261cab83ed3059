"""Rendering for the console: the Jinja2 templates, the route class every console route uses, and
the error pages.

``ConsoleRoute`` wraps each console route: a domain error (``NotFound``, ``InvalidInput``, ...)
becomes an HTML page with the status the APIs give it — or, under ``/console/api/``, the JSON
``{"error": {"message", "field", "fields"}}`` the page scripts read — and every answer gets the
console's security headers. Templates are autoescaped; no page has inline script (the
Content-Security-Policy forbids it), so data a script needs travels in ``data-`` attributes or a
``<script type="application/json">`` block.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import jinja2
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.routing import APIRoute

from tailor.api.errors import INTERNAL_MESSAGE, http_error
from tailor.errors import TailorError

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
NAV = (("datasets", "Datasets"), ("jobs", "Jobs"), ("models", "Models"), ("playground", "Playground"),
       ("evaluations", "Evaluations"), ("graders", "Graders"))

_templates = jinja2.Environment(loader=jinja2.PackageLoader("tailor.api.console", "templates"),
                                autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                                lstrip_blocks=True)


class SignInRequired(Exception):
    """No live session: pages redirect to the sign-in form, the JSON API answers 401."""


def template_filter(function: Callable) -> Callable:
    """Make ``function`` a Jinja2 filter of the console's templates, under its own name."""
    _templates.filters[function.__name__] = function
    return function


def render(request: Request, template: str, context: dict[str, Any] | None = None, *, status: int = 200,
           page: str | None = None) -> HTMLResponse:
    """``template`` rendered for the signed-in visitor (``request.state.session``); ``page`` is the
    navigation entry to mark as current (default: the template's folder)."""
    session = getattr(request.state, "session", None)
    settings = request.app.state.settings
    html = _templates.get_template(template).render(
        request=request, session=session, csrf=session.csrf if session else "", nav=NAV,
        page=page or template.split("/", 1)[0], api_docs=settings.api_docs,
        insecure_local=request.app.state.insecure_local, **(context or {}))
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def is_json(request: Request) -> bool:
    return request.url.path.startswith("/console/api/")


def error_response(request: Request, error: Exception) -> Response:
    """A domain error as the console shows it (HTML page, or JSON under ``/console/api/``)."""
    if isinstance(error, TailorError):
        status, message = http_error(error).openai_status, error.message
    elif isinstance(error, RequestValidationError):
        status = 400
        message = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}"
                            for e in error.errors()) or "Invalid request."
    else:
        log.exception("console: %s %s failed", request.method, request.url.path, exc_info=error)
        status, message = 500, INTERNAL_MESSAGE
    field = getattr(error, "param", None)
    fields = _fields(error)
    if is_json(request):
        return JSONResponse({"error": {"message": message, "field": field, "fields": fields}}, status_code=status)
    return render(request, "error.html", {"status": status, "message": message}, status=status, page="")


def _fields(error: Exception) -> dict[str, str]:
    """Field → problem, for errors that know them one by one (hyperparameters, request bodies, graders)."""
    problems = getattr(error, "problems", None)
    if isinstance(problems, dict):
        return {str(field): str(problem) for field, problem in problems.items()}
    if isinstance(problems, list) and all(isinstance(p, tuple) and len(p) == 2 for p in problems):
        return {str(field): str(problem) for field, problem in problems}
    return {}


class ConsoleRoute(APIRoute):
    """An APIRoute that answers domain errors in the console's shape and adds its security headers."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInRequired:
                if is_json(request) or request.method != "GET":
                    response = JSONResponse({"error": {"message": "Sign in to the console first.", "field": None,
                                                       "fields": {}}}, status_code=401)
                else:
                    response = RedirectResponse("/console/sign-in", status_code=303)
            except Exception as error:  # noqa: BLE001 — every failure gets the console's shape
                response = error_response(request, error)
            fresh = getattr(request.state, "new_session_cookie", None)
            if fresh is not None:
                fresh(response)
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return route
