"""``GET /metrics`` of a real server, parsed with prometheus-client's own parser: the values move
with what the server does (an inference call, a created job, a grader run), the labels stay
bounded and name no tenant, and only the operator's scraper may read them. The shared counters
that job workers add to are atomic, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import ALIASES, HAIKU, running_server
from tests.conftest import tiny_home

ROLE = "arn:aws:iam::000000000000:role/tailor"
STRING_CHECK = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
                "reference": "{{item.answer}}", "operation": "eq"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_models_dir):
    # No job runner: a created job stays queued, so the queue is seen without training anything.
    home = tiny_home(tmp_path_factory.mktemp("metrics") / "home", tiny_models_dir)
    with running_server(home, ALIASES, args=("--no-runner",)) as running:
        yield running


def scrape(server, headers: dict | None = None) -> dict[tuple[str, frozenset], float]:
    """Every sample of a scrape: ``{(sample name, labels): value}``."""
    request = urllib.request.Request(server.endpoint + "/metrics", headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def status_of(server, headers: dict) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(server.endpoint + "/metrics", headers=headers),
                                    timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_metrics_move_with_inference_jobs_and_graders(server):
    before = scrape(server)
    assert value(before, "tailor_engine_up") == 0  # the scrape did not start the engine

    # An inference call: counted by operation, model (the catalog id it names) and outcome, and timed.
    runtime = server.client("bedrock-runtime")
    answer = runtime.converse(modelId=HAIKU, messages=[{"role": "user", "content": [{"text": "Hello"}]}],
                              inferenceConfig={"maxTokens": 8})
    assert answer["stopReason"] in ("end_turn", "max_tokens")
    # A caller's own model name never becomes a label: an unknown fine-tuned model is "fine-tuned".
    with pytest.raises(Exception, match="(?i)not found|does not exist|404"):
        server.openai().chat.completions.create(model="ft:tailor.tiny:alice:secret-project:abc123",
                                                messages=[{"role": "user", "content": "hi"}])

    # A job: with no runner it waits in the queue.
    train = server.put("s3://alice-metrics/train.jsonl", [{"prompt": "Q?", "completion": "A."}] * 8)
    server.client().create_model_customization_job(
        jobName="metrics-job", customModelName="metrics-model", roleArn=ROLE, baseModelIdentifier="tailor.tiny",
        trainingDataConfig={"s3Uri": train}, outputDataConfig={"s3Uri": "s3://alice-metrics/out"})

    # Grader runs: one graded, one that cannot be (the item has no "answer"): a call and a failure each.
    graders = server.openai().fine_tuning.alpha.graders
    assert graders.run(grader=STRING_CHECK, model_sample="Paris", item={"answer": "Paris"}).reward == 1.0
    assert graders.run(grader=STRING_CHECK, model_sample="Paris", item={}).reward == 0.0

    after = scrape(server)
    converse = {"operation": "Converse", "model": HAIKU}
    assert value(after, "tailor_inference_requests_total", **converse, outcome="success") == \
        value(before, "tailor_inference_requests_total", **converse, outcome="success") + 1
    assert value(after, "tailor_inference_request_duration_seconds_count", **converse) == 1
    seconds = value(after, "tailor_inference_request_duration_seconds_sum", **converse)
    assert 0 < seconds < 120
    assert value(after, "tailor_inference_request_duration_seconds_bucket", **converse, le="+Inf") == 1
    assert value(after, "tailor_inference_requests_total", operation="ChatCompletions", model="fine-tuned",
                 outcome="client_error") == 1
    assert not any("secret-project" in str(labels) for _, labels in after)
    assert value(after, "tailor_http_requests_total", route="/model/{modelId:path}/converse", method="POST",
                 status="200") == 1

    # The engine ran: its decode steps and the mean batch occupancy (one request: 1 row of max_batch).
    assert value(after, "tailor_engine_up") == 1
    steps = value(after, "tailor_engine_decode_steps_total")
    assert steps >= 1 and value(after, "tailor_engine_rows_decoded_total") >= steps
    max_batch = value(after, "tailor_engine_max_batch")
    assert value(after, "tailor_engine_batch_occupancy_ratio") == pytest.approx(
        value(after, "tailor_engine_rows_decoded_total") / steps / max_batch)

    assert value(after, "tailor_jobs", kind="customization", status="InProgress") == \
        value(before, "tailor_jobs", kind="customization", status="InProgress") + 1
    assert value(after, "tailor_jobs_queued", kind="customization") == 1
    assert value(after, "tailor_jobs_running", kind="customization") == 0

    assert value(after, "tailor_grader_calls_total", kind="string_check") == 2
    assert value(after, "tailor_grader_samples_total", kind="string_check") == 2
    assert value(after, "tailor_grader_failures_total", kind="string_check") == 1


def test_a_hostile_path_mints_no_series_and_a_forwarded_scrape_is_refused(server):
    for method, path in (("POST", "/no/such/path/1"), ("POST", "/no/such/path/2"),
                         ("POST", "/model/x%2Fy%2Fz/invoke"), ("BREW", "/ping")):
        try:
            urllib.request.urlopen(urllib.request.Request(server.endpoint + path, method=method, data=b"{}"),
                                   timeout=30)
        except urllib.error.HTTPError:
            pass
    samples = scrape(server)
    requests = [dict(labels) for name, labels in samples if name == "tailor_http_requests_total"]
    routes = {labels["route"] for labels in requests}
    assert "unmatched" in routes and not any("no/such" in route for route in routes)
    assert not any("x/y/z" in str(labels) for _, labels in samples)
    assert {labels["method"] for labels in requests if labels["route"] == "/ping"} >= {"other"}
    assert not any(labels["method"] == "BREW" for labels in requests)

    # No token configured: loopback only, and not through a proxy that says it forwarded the scrape.
    assert status_of(server, {"X-Forwarded-For": "203.0.113.9"}) == 403
    assert status_of(server, {"Forwarded": "for=203.0.113.9"}) == 403


def test_with_a_token_the_scrape_must_bring_it(tmp_path):
    """``metrics_token``: any client with the token, loopback or not (the app in process: its test
    client's address is not loopback); without it or with another, 401."""
    from fastapi.testclient import TestClient

    from tailor.api.app import create_app
    from tailor.settings import Settings

    app = create_app(Settings(home=tmp_path, metrics_token="s3cret-scrape"), run_jobs=False)
    client = TestClient(app)
    refused = client.get("/metrics")
    assert refused.status_code == 401 and "TAILOR_METRICS_TOKEN" in refused.json()["message"]
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Basic czNjcmV0LXNjcmFwZQ=="}).status_code == 401
    answered = client.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape"})
    assert answered.status_code == 200 and "tailor_jobs_queued" in answered.text



@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_counters_are_atomic_across_connections(database, tmp_path, request):
    """Writers adding at once, each on a connection of its own, to counters that do not exist yet,
    lose no addition. (Whether the connections belong to one process or several is all the same to
    the database, whose statement makes the addition atomic; threads save each writer's imports.)"""
    from tailor.store import counters
    from tailor.store.db import Store, make_engine

    url = f"sqlite:///{tmp_path / 'tailor.db'}" if database == "sqlite" else request.getfixturevalue("postgres_url")
    store = Store(url)
    writers, each = 4, 50
    start = threading.Barrier(writers)

    def write() -> None:
        engine = make_engine(url)
        try:
            with engine.connect():
                pass  # connected before the race starts, so the first additions really meet
            start.wait()
            for _ in range(each):
                counters.add(engine, {"grader_calls": 1, "grader_samples": 2}, kind="race")
        finally:
            engine.dispose()

    with ThreadPoolExecutor(writers) as pool:
        for done in [pool.submit(write) for _ in range(writers)]:
            done.result()
    totals = {name: number for name, labels, number in counters.read(store.engine) if labels == {"kind": "race"}}
    assert totals == {"grader_calls": writers * each, "grader_samples": 2 * writers * each}
    with pytest.raises(ValueError, match="unknown counter"):
        counters.add(store.engine, {"grader_cals": 1})
    with pytest.raises(ValueError, match="label"):
        counters.add(store.engine, {"grader_calls": 1}, kind='a",b="c')
    store.engine.dispose()
