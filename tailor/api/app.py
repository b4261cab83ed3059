"""The HTTP server: ``create_app(settings)`` builds the FastAPI app that ``tailor serve`` runs.

It opens the store (migrating it), starts the job runner and the deployment activation loop, and
registers three families of routes: the Bedrock control plane, bedrock-runtime, and the
OpenAI-compatible API. The inference engine runs in its own process, started on first use
(``tailor.serve.client``).

Every request first passes the edge (``tailor.api.edge``): a body limit enforced while reading,
before anything else runs. Then it is authenticated against Tailor's access keys: AWS SigV4 signed
for this server (its hosts, region and service), or the key as a bearer token (OpenAI clients;
Bedrock API keys). Every authentication failure gets the same message, so a caller cannot tell an
unknown key from a wrong secret; the reason goes to the server log. With ``insecure_local`` any
signature or token is accepted and the caller is named by the access key id it claims (so
principals still see only their own resources) — for a single-user machine: bound to loopback, and
only for requests addressed to a loopback name that no other web site sent.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI, Request

from tailor.api import console, docs, fallback, metrics, tailor_routes
from tailor.api.bedrock import control, runtime
from tailor.api.edge import LOOPBACK_NAMES, BodyLimit, LoopbackOnly, file_body_limit
from tailor.api.openai import batches
from tailor.api.openai import routes as openai_routes
from tailor.api.sigv4 import SigningScope, verify_request
from tailor.errors import AccessDenied, InvalidInput, Unauthenticated
from tailor.jobs.runner import Runner
from tailor.serve.vllm_backend import make_client
from tailor.services import activation, files
from tailor.services.invocation_logging import InvocationLogWriter
from tailor.services.keys import bearer_principal, principal_of, secret_lookup
from tailor.settings import Settings
from tailor.store.db import check_integrity, open_store

log = logging.getLogger(__name__)
LOCAL_PRINCIPAL = "local"
AUTHENTICATION_FAILED = (
    "The request could not be authenticated. Sign it with AWS SigV4 using an access key from `tailor keys "
    "create`, or send that key as 'Authorization: Bearer ID.SECRET'; check the secret, the region, the "
    "endpoint and the clock.")
EVERY_INTERFACE = ("0.0.0.0", "::", "")


def _claimed_access_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    marker = "Credential="
    if marker not in header:
        return None
    return header.split(marker, 1)[1].split("/", 1)[0] or None


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else None


def allowed_hosts(settings: Settings, listen: tuple[str, int] | None) -> tuple[str, ...]:
    """The Host headers SigV4 requests may be signed for: ``public_hosts`` when the operator set
    them, else the loopback names and the address the server listens on (any port, when unknown)."""
    if settings.public_hosts:
        return tuple(settings.public_hosts)
    if listen is None:
        return LOOPBACK_NAMES
    host, port = listen
    if host in EVERY_INTERFACE:
        raise InvalidInput(f"Listening on every interface ({host or 'all'}) needs TAILOR_PUBLIC_HOSTS: the names "
                           "clients use to reach this server (e.g. '[\"tailor.example.com:8080\"]'), so that "
                           "requests signed for another host are refused.")
    names = dict.fromkeys([*LOOPBACK_NAMES, host])
    return tuple(f"[{name}]:{port}" if ":" in name else f"{name}:{port}" for name in names)


def create_app(settings: Settings, *, insecure_local: bool = False, run_jobs: bool = True,
               listen: tuple[str, int] | None = None) -> FastAPI:
    store = open_store(settings)
    damage = check_integrity(store)
    if damage:  # a damaged database would answer some calls and fail others: refuse to start instead
        raise InvalidInput(f"The database is damaged ({'; '.join(damage[:3])}). Stop here: restore it from a "
                           "backup; `tailor doctor` reports what is wrong.")
    secret_for = secret_lookup(store, settings)
    signing_scope = SigningScope(region=settings.region, hosts=allowed_hosts(settings, listen))

    def one_message(check):
        """Run an authentication check; any failure becomes the one message callers see."""
        try:
            return check()
        except AccessDenied as error:
            log.warning("authentication failed: %s", error.message)
            raise Unauthenticated(AUTHENTICATION_FAILED) from None

    def authenticate_bearer(request: Request) -> str:
        token = _bearer_token(request)
        if insecure_local:
            return (token or "").partition(".")[0] or LOCAL_PRINCIPAL
        if not token:
            log.warning("authentication failed: no bearer token")
            raise Unauthenticated(AUTHENTICATION_FAILED)
        return one_message(lambda: bearer_principal(store, secret_for, token))

    def authenticate(request: Request, body: bytes) -> str:
        if _bearer_token(request) is not None:
            return authenticate_bearer(request)
        if insecure_local:
            return _claimed_access_key(request) or LOCAL_PRINCIPAL

        def signed_principal() -> str:
            credential = verify_request(
                method=request.method,
                raw_path=request.scope.get("raw_path", b"").decode("latin-1") or request.url.path,
                query_string=request.scope.get("query_string", b"").decode("latin-1"),
                headers={k.lower(): v for k, v in request.headers.items()}, body=body, secret_for=secret_for,
                scope=signing_scope)
            principal = principal_of(store, credential.access_key_id)
            if principal is None:  # deleted between the signature check and now
                raise AccessDenied(f"Unknown access key id {credential.access_key_id!r}.")
            return principal

        return one_message(signed_principal)

    runner = Runner(store, settings)
    engine = make_client(settings)  # Tailor's engine, or vLLM servers (serving_backend)
    invocation_logs = InvocationLogWriter(store, settings)  # model invocation logging, off the request path

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if run_jobs:
            runner.start()
        invocation_logs.start()
        activating = asyncio.create_task(activation.run(store, settings, engine))
        yield
        activating.cancel()
        with suppress(asyncio.CancelledError):
            await activating
        engine.close()
        runner.close()
        invocation_logs.close()  # writes what is still queued

    app = FastAPI(title="Tailor", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json" if settings.api_docs else None)
    metrics.install(app, settings)  # GET /metrics and the request metrics (inside the body limit)
    # Added last, so it runs first: nothing — not even authentication — reads past the limit.
    if insecure_local:
        app.add_middleware(LoopbackOnly)
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes,
                       limit_for=lambda path: file_body_limit(path, settings.max_file_bytes, files.MAX_PART_BYTES))
    app.state.store, app.state.settings, app.state.authenticate = store, settings, authenticate
    app.state.authenticate_bearer = authenticate_bearer
    app.state.secret_for, app.state.insecure_local = secret_for, insecure_local
    app.state.runner, app.state.engine, app.state.slots = runner, engine, {}
    app.state.invocation_logs = invocation_logs
    control.add_routes(app)
    runtime.add_routes(app)
    openai_routes.add_routes(app)
    batches.add_routes(app)
    console.add_routes(app)
    tailor_routes.add_routes(app)
    if settings.api_docs:
        docs.add_routes(app)
    fallback.add_handlers(app)  # unknown paths, wrong methods, crashes: in the path's dialect

    @app.get("/ping", include_in_schema=False)
    def ping() -> dict:
        return {"status": "ok"}

    return app
