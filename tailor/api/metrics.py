"""``GET /metrics``: the server in Prometheus' text format (docs/metrics.md lists every metric).

Three sources, read at different times:

- this server's requests, recorded as they end by ``RequestMetrics`` (an ASGI middleware): by
  route template (never the raw path, so an unknown or hostile path cannot mint series), and for
  inference calls by operation, model and outcome, with latency histograms. Per server: Prometheus
  sums the servers of a deployment.
- the database, read at scrape time (``StoreCollector``): jobs by kind and status, the queue,
  training throughput of running jobs, and the shared ``counters`` (grader calls and failures,
  tokens trained) that job workers — which no scrape reaches — add to. The same on every server.
- this server's inference engine, asked for its statistics at scrape time when it is running
  (a scrape never starts it): decode steps and rows decoded, whose ratio is the batch occupancy.

Access: the metrics say how busy every tenant is, so no label names a principal or a custom
model, and the route is not open to API callers. With ``metrics_token`` set, a scrape must send
it as ``Authorization: Bearer TOKEN`` (else 401); unset, only loopback clients may scrape, and
not through a proxy that says it forwarded the request (else 403).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import re
import time

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import (
    CollectorRegistry,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import Counter as RequestCounter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from tailor.api.edge import error_response_for
from tailor.catalog import FOUNDATION_MODELS, strip_foundation_arn
from tailor.errors import AccessDenied, TailorError, Unauthenticated
from tailor.services.job_figures import job_figures
from tailor.settings import Settings
from tailor.store import counters

log = logging.getLogger(__name__)

# Route names (``add_api_route(name=...)``) of the calls that run a model, and their operation label.
INFERENCE_OPERATIONS = {
    "InvokeModel": "InvokeModel", "InvokeModelWithResponseStream": "InvokeModelWithResponseStream",
    "Converse": "Converse", "ConverseStream": "ConverseStream", "CountTokens": "CountTokens",
    "openai.chat_completions": "ChatCompletions",
}
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
OPENAI_CHAT_PATH = "/v1/chat/completions"  # the one inference route whose model is in the body
# Seconds: from a cached token count (milliseconds) to a long generation on a CPU (minutes).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
ENGINE_STATS_TIMEOUT_SECONDS = 2.0
_ARN_RESOURCE_TYPE = re.compile(r"^arn:aws[\w-]*:bedrock:[\w-]*:\d*:(?P<type>[a-z-]{1,40})/")


def model_label(identifier: str, settings: Settings) -> str:
    """A model's label, from a bounded set that names no tenant: a catalog id or operator alias as
    itself; a caller's model by its kind (``custom-model``, ``provisioned-model``, ... from the
    ARN; ``fine-tuned`` for OpenAI's ``ft:`` ids); anything else ``other``."""
    model_id = strip_foundation_arn(identifier.strip())
    if model_id in FOUNDATION_MODELS or model_id in settings.model_aliases:
        return model_id
    if model_id.startswith("ft:"):
        return "fine-tuned"
    match = _ARN_RESOURCE_TYPE.match(model_id)
    return match.group("type") if match else "other"


def outcome_of(status: int) -> str:
    if status < 400:
        return "success"
    if status == 429:
        return "throttled"
    return "client_error" if status < 500 else "server_error"


class RequestSeries:
    """The request metrics of one app, in its own registry (several apps may live in one process)."""

    def __init__(self):
        self.registry = registry = CollectorRegistry()
        self.requests = RequestCounter("tailor_http_requests", "HTTP requests answered, by route template, method "
                                       "and status code.", ["route", "method", "status"], registry=registry)
        self.request_seconds = Histogram("tailor_http_request_duration_seconds", "Time to answer an HTTP request "
                                         "(to its last byte), by route template and method.", ["route", "method"],
                                         buckets=LATENCY_BUCKETS, registry=registry)
        self.inference = RequestCounter("tailor_inference_requests", "Inference calls, by operation, model "
                                        "(docs/metrics.md: catalog ids or a kind, never a tenant's name) and "
                                        "outcome.", ["operation", "model", "outcome"], registry=registry)
        self.inference_seconds = Histogram("tailor_inference_request_duration_seconds", "Time to answer an "
                                           "inference call (a stream: to its end), by operation and model.",
                                           ["operation", "model"], buckets=LATENCY_BUCKETS, registry=registry)


class RequestMetrics:
    """ASGI middleware: every request counted and timed by route template, method and status;
    inference calls also by operation, model and outcome. A streamed answer is timed to its end."""

    def __init__(self, app, settings: Settings, series: RequestSeries):
        self.app, self.settings, self.series = app, settings, series

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception that escapes is answered 500 further out
        body = bytearray() if scope.get("path") == OPENAI_CHAT_PATH else None

        async def receiving() -> dict:
            message = await receive()
            if body is not None and message.get("type") == "http.request":
                body.extend(message.get("body", b""))  # BodyLimit (outside) bounds it
            return message

        async def sending(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receiving, sending)
        finally:
            try:
                self._record(scope, status, time.perf_counter() - started, body)
            except Exception:  # counting never fails the request it counts
                log.exception("recording request metrics failed")

    def _record(self, scope, status: int, seconds: float, body: bytearray | None) -> None:
        route = scope.get("route")  # FastAPI's router puts the matched route here
        template = getattr(route, "path", None) or "unmatched"
        method = scope.get("method", "")
        method = method if method in METHODS else "other"  # a client's invented method mints no series
        self.series.requests.labels(template, method, str(status)).inc()
        self.series.request_seconds.labels(template, method).observe(seconds)
        operation = INFERENCE_OPERATIONS.get(getattr(route, "name", None) or "")
        if operation is None:
            return
        if body is not None:
            try:
                identifier = json.loads(bytes(body)).get("model")
            except (ValueError, AttributeError):
                identifier = None
        else:
            identifier = (scope.get("path_params") or {}).get("modelId")
        model = model_label(identifier, self.settings) if isinstance(identifier, str) else "other"
        self.series.inference.labels(operation, model, outcome_of(status)).inc()
        self.series.inference_seconds.labels(operation, model).observe(seconds)


class StoreCollector:
    """Metrics read from the database at scrape time (``services/job_figures.py``): the same on
    every server of a deployment."""

    def __init__(self, store):
        self.store = store

    def collect(self):
        figures = job_figures(self.store)
        jobs = GaugeMetricFamily("tailor_jobs", "Jobs in the database, by kind and status.", labels=["kind", "status"])
        for (kind, status), number in figures.by_status.items():
            jobs.add_metric([kind, status], number)
        queued = GaugeMetricFamily("tailor_jobs_queued", "Jobs waiting for a worker (the queue), by kind.",
                                   labels=["kind"])
        for kind, number in figures.queued.items():
            queued.add_metric([kind], number)
        running = GaugeMetricFamily("tailor_jobs_running", "Jobs with a worker starting or running, by kind.",
                                    labels=["kind"])
        for kind, number in figures.running.items():
            running.add_metric([kind], number)
        yield jobs
        yield queued
        yield running
        yield GaugeMetricFamily("tailor_training_tokens_per_second", "Training throughput of the running "
                                "customization jobs together, as their workers last reported it.",
                                value=figures.training_tokens_per_second)
        yield from _counter_families(figures.counters)


def _counter_families(rows) -> list[Metric]:
    families = {name: Metric(f"tailor_{name}", help_text, "counter") for name, help_text in counters.COUNTERS.items()}
    for name, labels, value in rows:
        if name in families:  # a counter a newer Tailor added: shown once this server knows it
            families[name].add_sample(f"tailor_{name}_total", labels, value)
    return list(families.values())


def engine_families(stats: dict | None, settings: Settings) -> list[Metric]:
    """The inference engine's statistics (``EngineClient.stats()``), or only ``tailor_engine_up 0``
    when it is not running (it starts on the first inference call)."""
    families: list[Metric] = [GaugeMetricFamily("tailor_engine_up", "Whether this server's inference engine "
                                                "process is running (it starts on first use).",
                                                value=1 if stats is not None else 0),
                              GaugeMetricFamily("tailor_engine_max_batch", "Sequences the engine decodes together "
                                                "per base model (engine_max_batch).", value=settings.engine_max_batch)]
    if stats is None:
        return families
    for key, name, help_text in (
            ("steps", "tailor_engine_decode_steps", "Decode steps the engine ran (one token for every row of a batch)."),
            ("rows_decoded", "tailor_engine_rows_decoded", ("Rows (sequences) decoded, summed over decode steps: "
                                                            "rows_decoded / decode_steps is the mean batch size.")),
            ("adapter_loads", "tailor_engine_adapter_loads", "LoRA adapters loaded into the engine."),
            ("base_loads", "tailor_engine_base_loads", "Base models loaded into the engine.")):
        if isinstance(stats.get(key), int | float):
            families.append(CounterMetricFamily(name, help_text, value=stats[key]))
    steps, rows = stats.get("steps"), stats.get("rows_decoded")
    if isinstance(steps, int | float) and isinstance(rows, int | float):
        occupancy = rows / steps / settings.engine_max_batch if steps else 0.0
        families.append(GaugeMetricFamily("tailor_engine_batch_occupancy_ratio", "Mean rows per decode step over "
                                          "engine_max_batch, since the engine started (rate(rows_decoded) / "
                                          "rate(decode_steps) gives it over a window).", value=occupancy))
    models = stats.get("models")
    if isinstance(models, dict):
        families.append(GaugeMetricFamily("tailor_engine_models_loaded", "Base models in the engine's memory.",
                                          value=len(models)))
        families.append(GaugeMetricFamily("tailor_engine_adapters_loaded", "LoRA adapters in the engine's memory.",
                                          value=sum(len(adapters) for adapters in models.values())))
    return families


class _Scrape:
    """What one scrape shows: the parts above, in one ``collect`` for ``generate_latest``."""

    def __init__(self, *parts):
        self.parts = parts

    def collect(self):
        for part in self.parts:
            yield from part.collect() if hasattr(part, "collect") else part


def _is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def refusal(request: Request, settings: Settings) -> Response | None:
    """Why this scrape may not see the metrics (the response to send), or None when it may."""
    token = settings.metrics_token
    if token is not None:
        header = request.headers.get("authorization", "")
        given = header[7:].strip() if header[:7].lower() == "bearer " else ""
        if given and hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
            return None
        response = error_response_for("/metrics", Unauthenticated(
            "The metrics need the operator's token: send 'Authorization: Bearer TOKEN' (TAILOR_METRICS_TOKEN)."), 401)
        response.headers["www-authenticate"] = 'Bearer realm="tailor-metrics"'
        return response
    client = request.client.host if request.client else ""
    forwarded = any(name in request.headers for name in ("forwarded", "x-forwarded-for", "x-real-ip"))
    if _is_loopback(client) and not forwarded:
        return None
    return error_response_for("/metrics", AccessDenied(
        "The metrics are served to this machine's own clients only; for a scraper elsewhere (or behind a proxy) "
        "the operator sets TAILOR_METRICS_TOKEN and the scraper sends it as a bearer token."), 403)


async def _engine_stats(engine) -> dict | None:
    """The engine's statistics when its process is running; None otherwise (never starts it)."""
    if engine is None or getattr(engine, "pid", None) is None:
        return None
    try:
        return await asyncio.wait_for(engine.stats(), ENGINE_STATS_TIMEOUT_SECONDS)
    except (TailorError, TimeoutError, OSError) as error:  # busy or just died: the scrape goes on without it
        log.warning("engine statistics unavailable: %s", error)
        return None


def install(app: FastAPI, settings: Settings) -> None:
    """The request middleware and ``GET /metrics``. Reads ``app.state.store`` and ``app.state.engine``
    at scrape time."""
    disable_created_metrics()  # no *_created series: they double every series and no dashboard reads them
    series = RequestSeries()
    app.add_middleware(RequestMetrics, settings=settings, series=series)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        refused = refusal(request, settings)
        if refused is not None:
            return refused
        stats = await _engine_stats(getattr(request.app.state, "engine", None))
        scrape = _Scrape(series.registry, StoreCollector(request.app.state.store), engine_families(stats, settings))
        text = await asyncio.to_thread(generate_latest, scrape)  # the database reads stay off the event loop
        # The classic text format (0.0.4), which every Prometheus version reads; Tailor's names need
        # nothing newer.
        return Response(text, headers={"content-type": CONTENT_TYPE_PLAIN_0_0_4})
