"""OpenAI's score_model and label_model graders: an operator-configured remote judge (a real HTTP
server on 127.0.0.1 whose replies a test scripts) and Tailor's own tailor.tiny in an engine."""

from __future__ import annotations

import json

import pytest

from tailor.graders.contract import sample
from tailor.graders.openai import (
    close_judges,
    grader_info,
    parse_label,
    parse_score,
    run,
)
from tailor.graders.registry import grade
from tailor.settings import Settings
from tests.graders.conftest import math_record


@pytest.fixture
def judged(tmp_path, http_server):
    """Settings whose remote model ``house-judge`` is the scripted server; ``replies`` are its answers
    in order (a string is a chat completion, an int an HTTP error status)."""
    replies: list[str | int] = []

    def respond(path: str, body: object) -> tuple[int, bytes]:
        reply = replies.pop(0) if replies else "no more scripted replies"
        if isinstance(reply, int):
            return reply, json.dumps({"error": {"message": "refused"}}).encode()
        return 200, json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()

    http_server.respond = respond
    settings = Settings(home=tmp_path / "home", remote_models={
        "house-judge": {"api": "openai", "model": "judge-v1", "url": f"{http_server.url}/v1"}})
    return settings, replies, http_server


def score_model(**extra) -> dict:
    return {"type": "score_model", "name": "judge", "model": "house-judge",
            "input": [{"role": "developer", "content": "You grade answers to {{ item.question }}."},
                      {"role": "user", "content": "Answer: {{ sample.output_text }}\nReference: {{ item.answer }}"}],
            **extra}


def label_model(**extra) -> dict:
    return {"type": "label_model", "name": "labeler", "model": "house-judge",
            "input": [{"role": "user", "content": "Is '{{ sample.output_text }}' polite?"}],
            "labels": ["polite", "neutral", "rude"], "passing_labels": ["polite", "neutral"], **extra}


def flagged(response: dict) -> dict:
    return {key: value for key, value in response["metadata"]["errors"].items() if value}


def test_the_judge_gets_the_rendered_messages_and_the_reply_form(judged):
    settings, replies, server = judged
    replies.append('{"steps": [], "result": 0.7}')
    response = run(score_model(sampling_params={"max_completions_tokens": 40, "temperature": 0.5}),
                   sample_text="42", item={"question": "6 x 7", "answer": "42"}, settings=settings)
    assert (response["reward"], flagged(response)) == (0.7, {})
    [(path, body)] = server.requests
    assert path == "/v1/chat/completions" and body["model"] == "judge-v1"
    assert body["max_tokens"] == 40 and body["temperature"] == 0.5
    system, user = body["messages"]
    assert system == {"role": "system", "content": "You grade answers to 6 x 7."}
    assert user["role"] == "user" and user["content"].startswith("Answer: 42\nReference: 42\n\n")
    assert "Score: N" in user["content"] and "from 0 to 1" in user["content"]


@pytest.mark.parametrize(("reply", "bounds", "expected"), [
    ("Looks right.\nScore: 0.9", (0, 1), 0.9), ("**Score:** 4", (0, 5), 4.0), ("3", (1, 10), 3.0),
    ('```json\n{"result": 0.25}\n```', (0, 1), 0.25), ("Score: 7", (0, 5), None), ("Score: high", (0, 1), None),
    ("I refuse.", (0, 1), None), ('{"result": true}', (0, 1), None), ("Score: nan", (0, 1), None),
])
def test_parse_score(reply, bounds, expected):
    assert parse_score(reply, bounds) == expected


@pytest.mark.parametrize(("reply", "expected"), [
    ("It is kind.\nLabel: polite", "polite"), ("RUDE", "rude"), ('{"result": "neutral"}', "neutral"),
    ('"Polite."', "polite"), ("Label: friendly", None), ("polite or rude", None),
])
def test_parse_label(reply, expected):
    assert parse_label(reply, ["polite", "neutral", "rude"]) == expected


def test_a_reply_out_of_range_is_asked_again_once_then_is_a_parse_error(judged):
    settings, replies, server = judged
    replies.extend(["Score: 7", "Score: 8"])
    response = run(score_model(), sample_text="x", item={"question": "q", "answer": "a"}, settings=settings)
    assert response["reward"] == 0.0
    assert flagged(response) == {"model_grader_parse_error": True, "details": response["metadata"]["errors"]["details"]}
    assert "Score: 8" in response["metadata"]["errors"]["details"]
    assert len(server.requests) == 2
    retry = server.requests[1][1]["messages"]
    assert retry[-2] == {"role": "assistant", "content": "Score: 7"} and retry[-1]["role"] == "user"


def test_a_malformed_reply_that_is_fixed_on_the_reminder_counts(judged):
    settings, replies, _ = judged
    replies.extend(["I think it is good", "Score: 0.5"])
    response = run(score_model(), sample_text="x", item={"question": "q", "answer": "a"}, settings=settings)
    assert (response["reward"], flagged(response)) == (0.5, {})


def test_a_judge_that_cannot_be_asked_is_a_server_error(judged):
    settings, replies, _ = judged
    replies.append(400)
    response = run(score_model(), sample_text="x", item={"question": "q", "answer": "a"}, settings=settings)
    assert response["reward"] == 0.0
    assert response["metadata"]["errors"]["model_grader_server_error"] is True
    assert "400" in response["metadata"]["errors"]["model_grader_server_error_details"]


def test_a_score_range_other_than_zero_to_one_is_the_reward_as_given(judged):
    settings, replies, _ = judged
    replies.append("Score: 7.5")
    response = run(score_model(range=[0, 10]), sample_text="x", item={"question": "q", "answer": "a"},
                   settings=settings)
    assert response["reward"] == 7.5


def test_label_model_passes_on_passing_labels(judged):
    settings, replies, server = judged
    replies.extend(["Label: polite", "neutral", "Label: rude", "Label: sarcastic", "Label: unsure"])
    rewards = [run(label_model(), sample_text=text, item={}, settings=settings) for text in ("a", "b", "c", "d")]
    assert [response["reward"] for response in rewards[:3]] == [1.0, 1.0, 0.0]
    assert rewards[3]["metadata"]["errors"]["model_grader_parse_error"] is True
    assert "one of: polite, neutral, rude" in server.requests[0][1]["messages"][-1]["content"]


def test_model_graders_in_a_multi_grader_over_an_rft_batch(judged):
    settings, replies, server = judged
    replies.extend(["Score: 1", "Score: 0.5", "Label: rude", "Label: polite"])  # the scores batch, then the labels
    definition = {"type": "multi", "name": "m", "calculate_output": "score * label",
                  "graders": {"score": score_model(), "label": label_model()}}
    info = grader_info(definition, settings)
    batch = [sample({**math_record("6 x 7?", "42"), "question": "6 x 7?", "answer": "42"}, text, f"s{i}")
             for i, text in enumerate(["42", "forty-two"])]
    results = grade(info, batch, settings)
    assert sorted(result.metrics["score"] for result in results) == [0.5, 1.0]
    assert all(result.error is None for result in results)
    assert {result.reward for result in results} <= {0.0, 0.5, 1.0}
    assert len(server.requests) == 4


# --- tailor.tiny, in an engine of this process ---------------------------------------------------


@pytest.fixture
def tiny_settings(home):
    yield Settings(home=home)
    close_judges()


def test_score_model_with_tailor_tiny_gives_a_score_in_range_or_a_parse_error(tiny_settings):
    definition = {**score_model(sampling_params={"max_completions_tokens": 12}), "model": "tailor.tiny"}
    response = run(definition, sample_text="42", item={"question": "6 x 7", "answer": "42"}, settings=tiny_settings)
    errors = response["metadata"]["errors"]
    assert set(response) == {"reward", "metadata", "sub_rewards", "model_grader_token_usage_per_model"}
    assert response["metadata"]["type"] == "score_model" and response["metadata"]["execution_time"] > 0
    if errors["model_grader_parse_error"]:  # the tiny model rarely follows the form: an error, not a crash
        assert response["reward"] == 0.0 and "tailor.tiny gave no parsable score" in errors["details"]
    else:
        assert 0.0 <= response["reward"] <= 1.0
    assert errors["model_grader_server_error"] is False


def test_label_model_with_tailor_tiny_over_an_rft_batch(tiny_settings):
    definition = {**label_model(), "model": "tailor.tiny"}
    info = grader_info(definition, tiny_settings)
    batch = [sample(math_record("Say hi", "hi"), text, f"s{i}") for i, text in enumerate(["Hello!", "Go away."])]
    results = grade(info, batch, tiny_settings)
    assert [result.id for result in results] == ["s0", "s1"]
    for result in results:
        assert result.reward in (0.0, 1.0)
        assert result.error is None or "gave no parsable label" in result.error
