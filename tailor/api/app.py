"""The HTTP server: ``create_app(settings)`` builds the FastAPI app that ``tailor serve`` runs.

It opens the store (migrating it), starts the job runner, and registers the Bedrock control-plane
routes. Every request is authenticated with AWS SigV4 against Tailor's access keys; with
``insecure_local`` any signature is accepted and the caller is named by the access key id it
claims (so principals still see only their own jobs) — for a single-user machine, bound to
loopback only.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from tailor.api.bedrock import control
from tailor.api.sigv4 import verify_request
from tailor.errors import AccessDenied
from tailor.jobs.runner import Runner
from tailor.jobs.store import open_store
from tailor.services.keys import principal_of, secret_lookup
from tailor.settings import Settings

log = logging.getLogger(__name__)
LOCAL_PRINCIPAL = "local"


def _claimed_access_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    marker = "Credential="
    if marker not in header:
        return None
    return header.split(marker, 1)[1].split("/", 1)[0] or None


def create_app(settings: Settings, *, insecure_local: bool = False, run_jobs: bool = True) -> FastAPI:
    store = open_store(settings)
    secret_for = secret_lookup(store, settings)

    def authenticate(request: Request, body: bytes) -> str:
        if insecure_local:
            return _claimed_access_key(request) or LOCAL_PRINCIPAL
        credential = verify_request(
            method=request.method, raw_path=request.scope.get("raw_path", b"").decode("latin-1") or request.url.path,
            query_string=request.scope.get("query_string", b"").decode("latin-1"),
            headers={k.lower(): v for k, v in request.headers.items()}, body=body, secret_for=secret_for)
        principal = principal_of(store, credential.access_key_id)
        if principal is None:  # deleted between the signature check and now
            raise AccessDenied(f"Unknown access key id {credential.access_key_id!r}.")
        return principal

    runner = Runner(store, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if run_jobs:
            runner.start()
        yield
        runner.close()

    app = FastAPI(title="Tailor", lifespan=lifespan, docs_url="/docs", openapi_url="/openapi.json")
    app.state.store, app.state.settings, app.state.authenticate = store, settings, authenticate
    app.state.runner = runner
    control.add_routes(app)

    @app.get("/ping", include_in_schema=False)
    def ping() -> dict:
        return {"status": "ok"}

    return app
