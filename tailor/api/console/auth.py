"""Signing in to the console, and the two dependencies every console route takes.

- ``signed_in``: the visitor's ``ConsoleSession`` (read from the session cookie and checked
  against the key store on every request); under ``--insecure-local`` a visitor connecting from
  this machine with no session gets one for the principal ``local`` on the spot. Anyone else is
  sent to the sign-in form.
- ``checked``: the same, for a request that changes something: it must also carry the session's
  CSRF token (form field ``csrf_token`` or header ``X-CSRF-Token``) and must not come from another
  site (``Origin``, ``Sec-Fetch-Site``).

The cookie is HttpOnly (no script reads it), SameSite=Strict (no other site's request carries it),
scoped to ``/console``, and Secure when the request came over https. The sign-in form has its own
double-submit token, so no other site can sign a browser in as someone else.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from tailor.api.console.pages import ConsoleRoute, SignInRequired, render
from tailor.api.edge import LOOPBACK_NAMES
from tailor.errors import AccessDenied
from tailor.services.console_sessions import ConsoleSession, Sessions

log = logging.getLogger(__name__)

COOKIE = "tailor_console"
PRE_SIGN_IN_COOKIE = "tailor_console_pre"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SIGN_IN_FAILED = "Sign-in failed: check the access key id and the secret (`tailor keys create` prints them)."
FAILED_SIGN_IN_DELAY = 0.5  # seconds: slows guessing without holding a thread

router = APIRouter(route_class=ConsoleRoute)


def sessions(request: Request) -> Sessions:
    return request.app.state.console_sessions


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/console", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")


def _loopback_client(request: Request) -> bool:
    return bool(request.client) and request.client.host in LOOPBACK_NAMES


def signed_in(request: Request) -> ConsoleSession:
    """The visitor's session (a sync dependency: the key lookup runs in FastAPI's thread pool)."""
    keeper = sessions(request)
    insecure_local = request.app.state.insecure_local
    token = request.cookies.get(COOKIE)
    session = keeper.session_of(token, allow_local=insecure_local) if token else None
    if session is None and insecure_local and _loopback_client(request):
        token = keeper.local()
        session = keeper.session_of(token, allow_local=True)
        request.state.new_session_cookie = lambda response: _set_cookie(request, response, COOKIE, token,
                                                                         keeper.ttl)
    if session is None:
        raise SignInRequired()
    request.state.session = session
    return session


def _same_site(request: Request) -> None:
    origin, fetch_site = request.headers.get("origin"), (request.headers.get("sec-fetch-site") or "").lower()
    if fetch_site == "cross-site" or (origin and origin != "null"
                                      and urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()):
        raise AccessDenied("Refused: the request came from another site.")
    if origin == "null":
        raise AccessDenied("Refused: the request came from an opaque origin.")


async def checked(request: Request, session: ConsoleSession = Depends(signed_in)) -> ConsoleSession:
    """The session of a state-changing request, after its CSRF token and origin are checked."""
    _same_site(request)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    sessions(request).check_csrf(session, sent)
    return session


@router.get("/console/sign-in", include_in_schema=False)
def sign_in_form(request: Request, failed: bool = False) -> Response:
    pre = secrets.token_urlsafe(16)
    response = render(request, "sign_in.html", {"pre": pre, "failed": failed}, page="")
    _set_cookie(request, response, PRE_SIGN_IN_COOKIE, pre, 600)
    return response


@router.post("/console/sign-in", include_in_schema=False)
async def sign_in(request: Request) -> Response:
    _same_site(request)
    form = await request.form()
    pre_cookie, pre_field = request.cookies.get(PRE_SIGN_IN_COOKIE, ""), str(form.get("pre", ""))
    if not pre_cookie or not hmac.compare_digest(pre_cookie.encode(), pre_field.encode()):
        raise AccessDenied("The sign-in form has expired or did not come from the console: reload it and try again.")
    keeper = sessions(request)
    try:
        token = await run_in_threadpool(keeper.sign_in, request.app.state.secret_for,
                                        str(form.get("access_key_id", "")).strip(), str(form.get("secret", "")).strip())
    except AccessDenied as error:
        log.warning("console sign-in failed: %s", error.message)
        await asyncio.sleep(FAILED_SIGN_IN_DELAY)
        return RedirectResponse("/console/sign-in?failed=1", status_code=303)
    response = RedirectResponse("/console/jobs", status_code=303)
    _set_cookie(request, response, COOKIE, token, keeper.ttl)
    response.delete_cookie(PRE_SIGN_IN_COOKIE, path="/console")
    return response


@router.post("/console/sign-out", include_in_schema=False)
async def sign_out(request: Request, session: ConsoleSession = Depends(checked)) -> Response:
    response = RedirectResponse("/console/sign-in", status_code=303)
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")
    return response
