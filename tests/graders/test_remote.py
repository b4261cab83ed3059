"""HTTP graders against a real server on 127.0.0.1."""

from __future__ import annotations

import json
import time

from tailor.graders.contract import sample
from tailor.graders.remote import post_batch
from tests.graders.conftest import math_record


def batch(*ids: str) -> list[dict]:
    return [sample(math_record("6 x 7?", "42"), "42", i) for i in ids]


def test_the_batch_is_posted_and_the_results_read(http_server):
    http_server.respond = lambda path, body: (200, json.dumps(
        [{"id": item["id"], "aggregate_reward_score": 0.5, "metrics_list": [{"name": "m", "value": 1}]}
         for item in body]).encode())
    results = post_batch(http_server.url + "/grade", batch("a", "b"), timeout_seconds=5)
    assert [(result.id, result.reward, result.metrics, result.error) for result in results] == [
        ("a", 0.5, {"m": 1.0}, None), ("b", 0.5, {"m": 1.0}, None)]
    path, body = http_server.requests[0]
    assert path == "/grade" and body == batch("a", "b")


def test_http_errors_and_garbage_score_0_with_the_reason(http_server, closed_port):
    http_server.respond = lambda path, body: (500, b"grader exploded")
    results = post_batch(http_server.url, batch("a", "b"), timeout_seconds=5)
    assert [result.reward for result in results] == [0.0, 0.0]
    assert all("answered HTTP 500: grader exploded" in result.error for result in results)

    http_server.respond = lambda path, body: (200, b"<html>hi</html>")
    [result] = post_batch(http_server.url, batch("a"), timeout_seconds=5)
    assert result.reward == 0.0 and "not JSON" in result.error

    http_server.respond = lambda path, body: (200, b'{"id": "a"}')
    [result] = post_batch(http_server.url, batch("a"), timeout_seconds=5)
    assert "not a list of results" in result.error

    [result] = post_batch(f"http://127.0.0.1:{closed_port}", batch("a"), timeout_seconds=5)
    assert result.reward == 0.0 and "could not be reached" in result.error


def test_a_slow_server_runs_into_the_timeout(http_server):
    def slow(path, body):
        time.sleep(1.5)
        return 200, b"[]"

    http_server.respond = slow
    started = time.monotonic()
    [result] = post_batch(http_server.url, batch("a"), timeout_seconds=0.5)
    assert time.monotonic() - started < 1.4
    assert result.reward == 0.0 and "did not answer within its timeout of 0.5 s" in result.error


def test_a_busy_grader_is_asked_again_and_a_failing_one_is_not(http_server):
    """503 (and 502, 504) says the request was not handled: it is sent again after a short wait.
    500 says the grader ran and failed: sending the batch again would grade it twice."""
    answers = [(503, b"warming up"), (200, json.dumps([{"id": "a", "aggregate_reward_score": 1.0}]).encode())]
    http_server.respond = lambda path, body: answers.pop(0)
    [result] = post_batch(http_server.url, batch("a"), timeout_seconds=5)
    assert (result.reward, result.error) == (1.0, None)
    assert len(http_server.requests) == 2 and http_server.requests[0] == http_server.requests[1]

    http_server.requests.clear()
    http_server.respond = lambda path, body: (500, b"grader exploded")
    [result] = post_batch(http_server.url, batch("a"), timeout_seconds=5)
    assert "answered HTTP 500" in result.error and len(http_server.requests) == 1


def test_retries_stay_within_the_timeout(http_server):
    http_server.respond = lambda path, body: (503, b"still busy")
    started = time.monotonic()
    [result] = post_batch(http_server.url, batch("a"), timeout_seconds=0.2)
    # The first wait (0.5 s) would pass the 0.2 s timeout: no second try.
    assert time.monotonic() - started < 0.5 and len(http_server.requests) == 1
    assert "answered HTTP 503: still busy" in result.error

    http_server.requests.clear()
    [result] = post_batch(http_server.url, batch("a"), timeout_seconds=5)
    assert len(http_server.requests) == 3 and "answered HTTP 503" in result.error  # three tries, then the answer
