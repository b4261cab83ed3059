"""The HTTP server: ``create_app(settings)`` builds the FastAPI app that ``tailor serve`` runs.

It opens the store (migrating it), starts the job runner and the deployment activation loop, and
registers three families of routes: the Bedrock control plane, bedrock-runtime, and the
OpenAI-compatible API. The inference engine runs in its own process, started on first use
(``tailor.serve.client``).

Every request is authenticated against Tailor's access keys: AWS SigV4, or the key as a bearer
token (OpenAI clients; Bedrock API keys). With ``insecure_local`` any signature or token is
accepted and the caller is named by the access key id it claims (so principals still see only
their own resources) — for a single-user machine, bound to loopback only.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI, Request

from tailor.api import fallback
from tailor.api.bedrock import control, runtime
from tailor.api.openai import routes as openai_routes
from tailor.api.sigv4 import verify_request
from tailor.errors import AccessDenied
from tailor.jobs.runner import Runner
from tailor.jobs.store import open_store
from tailor.serve import activation
from tailor.serve.client import EngineClient
from tailor.services.keys import bearer_principal, principal_of, secret_lookup
from tailor.settings import Settings

log = logging.getLogger(__name__)
LOCAL_PRINCIPAL = "local"


def _claimed_access_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    marker = "Credential="
    if marker not in header:
        return None
    return header.split(marker, 1)[1].split("/", 1)[0] or None


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else None


def create_app(settings: Settings, *, insecure_local: bool = False, run_jobs: bool = True) -> FastAPI:
    store = open_store(settings)
    secret_for = secret_lookup(store, settings)

    def authenticate_bearer(request: Request) -> str:
        token = _bearer_token(request)
        if insecure_local:
            return (token or "").partition(".")[0] or LOCAL_PRINCIPAL
        if not token:
            raise AccessDenied("Missing API key: send it as 'Authorization: Bearer KEY'.")
        return bearer_principal(store, secret_for, token)

    def authenticate(request: Request, body: bytes) -> str:
        if _bearer_token(request) is not None:
            return authenticate_bearer(request)
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
    engine = EngineClient(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if run_jobs:
            runner.start()
        activating = asyncio.create_task(activation.run(store, settings, engine))
        yield
        activating.cancel()
        with suppress(asyncio.CancelledError):
            await activating
        engine.close()
        runner.close()

    app = FastAPI(title="Tailor", lifespan=lifespan, docs_url="/docs", openapi_url="/openapi.json")
    app.state.store, app.state.settings, app.state.authenticate = store, settings, authenticate
    app.state.authenticate_bearer = authenticate_bearer
    app.state.runner, app.state.engine, app.state.slots = runner, engine, {}
    control.add_routes(app)
    runtime.add_routes(app)
    openai_routes.add_routes(app)
    fallback.add_handlers(app)  # unknown paths, wrong methods, crashes: in the path's dialect

    @app.get("/ping", include_in_schema=False)
    def ping() -> dict:
        return {"status": "ok"}

    return app
