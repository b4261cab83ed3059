"""The Playground without a browser: the model list is the caller's, a chat turn is checked as
``/v1/chat/completions`` checks its body (a field error names the field), needs the CSRF token,
and streams ``chat.completion.chunk`` events ending with the token counts and ``[DONE]``.
Compare mode (several streams at once) is the browser flow's (tests/console/test_models_playground.py).
"""

from __future__ import annotations

import json

import pytest

from tests.api.conftest import HAIKU
from tests.api.console.test_models import add_custom_model, add_deployment

CHAT = "/console/api/playground/chat"


@pytest.fixture(scope="module")
def deployment_arn(server):
    return add_deployment(server.home, "alice", "alices-helper", add_custom_model(server.home, "alice", "alices-model"))


def chat(model: str, **fields) -> dict:
    return {"model": model, "messages": [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": "Say hello."}], **fields}


def test_each_principal_picks_from_its_own_models(alice, bob, deployment_arn):
    page = alice.get("/console/playground", params={"model": deployment_arn})
    assert page.status_code == 200
    assert f'<option value="{deployment_arn}" selected>alices-helper (on-demand deployment)</option>' in page.text
    assert f'<option value="{HAIKU}"' in page.text and "→ tailor.tiny" in page.text  # an alias says what runs
    groups = {group["group"]: [m["id"] for m in group["models"]]
              for group in alice.get("/console/api/playground/models").json()["groups"]}
    assert groups["Deployments"] == [deployment_arn] and "tailor.tiny" in groups["Foundation models"]

    assert deployment_arn not in bob.get("/console/playground").text
    answer = bob.post_json(CHAT, chat(deployment_arn))
    assert answer.status_code == 404 and answer.json()["error"]["message"].startswith("No provisioned throughput")


def test_a_chat_needs_the_csrf_token(alice):
    assert alice.post(CHAT, json=chat("tailor.tiny")).status_code == 403
    assert alice.post(CHAT, json=chat("tailor.tiny"), headers={"X-CSRF-Token": "0" * 32}).status_code == 403


@pytest.mark.parametrize(("fields", "field"), [
    ({"temperature": 7}, "temperature"),
    ({"temperature": "hot"}, "temperature"),
    ({"top_p": 1.5}, "top_p"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "messages"),
])
def test_a_bad_parameter_is_a_field_error(alice, fields, field):
    answer = alice.post_json(CHAT, chat("tailor.tiny", **fields))
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["field"] == field and field in error["message"]


def test_an_unknown_model_is_not_found(alice):
    answer = alice.post_json(CHAT, chat("no-such-model"))
    assert answer.status_code == 404


def test_an_answer_streams_as_chat_completion_chunks_with_its_token_count(alice):
    with alice.stream("POST", CHAT, json=chat("tailor.tiny", max_tokens=8, temperature=0),
                      headers={"X-CSRF-Token": alice.csrf}) as answer:
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
        payloads = [line.removeprefix("data: ") for line in answer.iter_lines() if line.startswith("data: ")]
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(payload) for payload in payloads[:-1]]
    assert not any("error" in chunk for chunk in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks if chunk["choices"])
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == [] and 1 <= usage["completion_tokens"] <= 8 and usage["prompt_tokens"] > 0
    assert text  # greedy decoding of the tiny model says something
