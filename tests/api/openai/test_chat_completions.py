"""OpenAI chat-completions bodies to ChatRequest and back, and OpenAI's error envelope, checked with the
official openai client's types."""

from __future__ import annotations

import json
import logging

import httpx
import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tailor.api.errors import HTTP_ERRORS
from tailor.api.openai.errors import error_body
from tailor.errors import (
    AccessDenied,
    Conflict,
    InvalidFields,
    InvalidHyperparameters,
    InvalidInput,
    ModelUnavailable,
    NotFound,
    Unauthenticated,
)
from tailor.serve.protocol import ChatRequest, Completion, Message, Sampling
from tailor.wire import chat_body
from tailor.wire.request_json import parse_json


def body(**changes) -> dict:
    request = {"model": "tailor.tiny", "messages": [{"role": "user", "content": "What is 2 + 2?"}]}
    request.update(changes)
    return request


def parse(request: dict, default_max_tokens: int = 128) -> ChatRequest:
    return chat_body.chat_request(chat_body.read(request), default_max_tokens=default_max_tokens)


def problem(request) -> InvalidFields:
    with pytest.raises(InvalidFields) as raised:
        parse(request)
    return raised.value


def stream_settings(request: dict) -> tuple[bool, bool]:
    body = chat_body.read(request)
    return bool(body.stream), body.include_usage


def completion(stop_reason="end_turn") -> Completion:
    return Completion(text="4", stop_reason=stop_reason, input_tokens=9, output_tokens=2, latency_ms=30)


# ------------------------------------------------------------ requests


def test_a_plain_request():
    request = parse(body())
    assert request == ChatRequest((Message("user", "What is 2 + 2?"),), Sampling(max_tokens=128))


def test_sampling_fields_map_one_to_one():
    request = parse(body(max_completion_tokens=20, temperature=1.5, top_p=0.9, stop="\n", seed=7, n=1,
                         presence_penalty=0, frequency_penalty=0.0, user="u-1", stream=False))
    assert request.sampling == Sampling(max_tokens=20, temperature=1.5, top_p=0.9, stop=("\n",), seed=7)
    assert parse(body(max_tokens=33)).sampling.max_tokens == 33
    assert parse(body(max_tokens=33, max_completion_tokens=33)).sampling.max_tokens == 33
    assert parse(body(stop=["a", "b"])).sampling.stop == ("a", "b")


def test_roles_and_text_parts():
    request = parse(body(messages=[
        {"role": "developer", "content": "Be brief."},
        {"role": "system", "content": [{"type": "text", "text": "Be exact."}]},
        {"role": "user", "content": [{"type": "text", "text": "What is"}, {"type": "text", "text": "2 + 2?"}],
         "name": "ann"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3 + 3?"},
    ]))
    assert request.turns() == [{"role": "system", "content": "Be brief.\n\nBe exact."},
                               {"role": "user", "content": "What is\n2 + 2?"},
                               {"role": "assistant", "content": "4"},
                               {"role": "user", "content": "And 3 + 3?"}]


def test_a_final_assistant_message_is_kept_as_the_prefill():
    request = parse(body(messages=[{"role": "user", "content": "Count:"}, {"role": "assistant", "content": "1, 2,"}]))
    assert request.messages[-1] == Message("assistant", "1, 2,")


def test_model_is_required_unless_bedrock_says_otherwise():
    request = body()
    del request["model"]
    assert problem(request).param == "model"
    bedrock_body = chat_body.read(request, require_model=False)
    assert chat_body.chat_request(bedrock_body, default_max_tokens=5).sampling.max_tokens == 5


@pytest.mark.parametrize(("changes", "param", "text"), [
    ({"messages": []}, "messages", "must not be empty"),
    ({"messages": [{"role": "bot", "content": "x"}]}, "messages[0].role",
     "must be 'system', 'developer', 'user' or 'assistant', got 'bot'"),
    ({"messages": [{"role": "tool", "content": "x", "tool_call_id": "1"}]}, "messages[0].role",
     "'tool' messages are not supported: Tailor's models do not call tools"),
    ({"messages": [{"role": "user", "content": "x", "tool_call_id": "1"}]}, "messages[0].tool_call_id",
     "unknown field"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x"}}]}]},
     "messages[0].content[0].type", "'image_url' parts are not supported: Tailor's models take text only"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
     "messages[0].content[0].type", "'input_audio' parts are not supported"),
    ({"messages": [{"role": "user", "content": None}]}, "messages[0].content", "required"),
    ({"messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]}]},
     "messages[0].tool_calls", "tools are not supported"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "system", "content": "late"}]},
     "messages[1].role", "must come before the user and assistant messages"),
    ({"messages": [{"role": "system", "content": "only"}]}, "messages", "needs at least one user message"),
    ({"temperature": 2.5}, "temperature", "must be a number between 0 and 2, got 2.5"),
    ({"temperature": "hot"}, "temperature", "must be a number between 0 and 2, got 'hot'"),
    ({"top_p": 1.5}, "top_p", "must be a number between 0 and 1"),
    ({"max_tokens": 0}, "max_tokens", "must be an integer of at least 1, got 0"),
    ({"max_completion_tokens": True}, "max_completion_tokens", "must be an integer of at least 1, got true"),
    ({"max_tokens": 10, "max_completion_tokens": 20}, "max_tokens", "differs from max_completion_tokens"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4 items, got 5"),
    ({"stop": [""]}, "stop[0]", "must not be empty"),
    ({"stop": 7}, "stop", "must be a list, got 7"),
    ({"n": 2}, "n", "only 1 choice per request is supported, got 2"),
    ({"seed": 1.5}, "seed", "must be an integer, got 1.5"),
    ({"presence_penalty": 0.5}, "presence_penalty", "not supported: only 0 is, got 0.5"),
    ({"frequency_penalty": -1}, "frequency_penalty", "not supported: only 0 is, got -1.0"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools", "tools are not supported"),
    ({"tool_choice": "required"}, "tool_choice", "tools are not supported"),
    ({"logprobs": True}, "logprobs", "not supported"),
    ({"logit_bias": {"50256": -100}}, "logit_bias", "not supported"),
    ({"response_format": {"type": "json_object"}}, "response_format",
     "only {'type': 'text'} is supported, got 'json_object'"),
    ({"reasoning_effort": "high"}, "reasoning_effort", "not supported"),
    ({"temprature": 0.5}, "temprature", "unknown field (did you mean 'temperature'?)"),
    ({"stream": "yes"}, "stream", "must be true or false, got 'yes'"),
    ({"stream_options": {"include_usage": True}}, "stream_options", "only allowed when stream is true"),
    ({"stream": True, "stream_options": {"include_usage": 1}}, "stream_options.include_usage",
     "must be true or false, got 1"),
])
def test_problems_name_the_field(changes, param, text):
    error = problem(body(**changes))
    assert isinstance(error, InvalidInput)
    assert any(field == param and text in message for field, message in error.problems), error.problems
    assert f"{param}: " in error.message


def test_every_problem_at_once_and_param_names_the_first():
    error = problem({"messages": [{"role": "user", "content": [{"type": "image_url"}]}], "n": 3, "top_p": 7})
    assert error.param == "model"
    assert [field for field, _ in error.problems] == ["model", "messages[0].content[0].type", "top_p", "n"]
    _, envelope = error_body(error)
    assert envelope["error"]["param"] == "model"
    assert envelope["error"]["message"].startswith("4 problems in the request:\n  model: required")


def test_ignored_and_empty_fields_are_accepted():
    request = parse(body(user="x", metadata={"a": "b"}, store=False, service_tier="auto", tools=[],
                         parallel_tool_calls=True, response_format={"type": "text"}, logprobs=False,
                         logit_bias={}, modalities=["text"], stream=True,
                         stream_options={"include_usage": True}))
    assert request.messages == (Message("user", "What is 2 + 2?"),)


def test_a_body_that_is_not_an_object():
    assert problem([1]).problems == [("body", "must be a JSON object, got a list")]


@pytest.mark.parametrize(("raw", "param", "text"), [
    (b'{"model": "m", "messages": [{"role": "user", "content": "hi\\ud800"}]}', "messages[0].content",
     "not valid Unicode: a lone surrogate at character 2"),
    (b'{"model": "m", "messages": [], "temperature": NaN}', "temperature", "must be a finite number"),
    (b'{"model": "m", "max_tokens": 1e999}', "max_tokens", "must be a finite number"),
    (b'{"model": "m\xff"}', "body", "must be UTF-8 JSON; byte 12 is not UTF-8"),
    (b"[" * 5000 + b"]" * 5000, "body", "nested more than 100 levels deep"),
])
def test_a_body_no_encoder_could_write_back_is_refused_with_its_param(raw, param, text):
    with pytest.raises(InvalidFields) as raised:
        parse_json(raw)
    assert raised.value.param == param and text in raised.value.message
    status, envelope = error_body(raised.value)
    json.dumps(envelope, ensure_ascii=False).encode("utf-8")  # the envelope is writable
    assert status == 400


@pytest.mark.parametrize(("changes", "param", "text"), [
    ({"messages": [{"role": [1], "content": "hi"}]}, "messages[0].role",
     "must be 'system', 'developer', 'user' or 'assistant', got a list"),
    ({"messages": [{"role": {"a": 1}, "content": "hi"}]}, "messages[0].role", "got an object"),
    ({"max_tokens": 10**20}, "max_tokens", "must be an integer between 1 and 2147483647"),
    ({"seed": 2**64}, "seed", "must be an integer of at most 9223372036854775807"),
    ({"seed": -2**64}, "seed", "must be an integer of at least -9223372036854775808"),
])
def test_values_that_would_crash_the_server_or_the_engine_are_refused(changes, param, text):
    error = problem(body(**changes))
    assert any(field == param and text in message for field, message in error.problems), error.problems


def test_an_error_echoing_a_lone_surrogate_is_escaped():
    _, envelope = error_body(InvalidInput("model: unknown 'x\ud800'"))
    assert envelope["error"]["message"] == "model: unknown 'x\\ud800'"
    json.dumps(envelope, ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/v1/fuzz", 404), ("GET", "/v1", 404), ("GET", "/v1/models/", 404), ("POST", "/v1/models", 405)])
def test_unknown_routes_and_wrong_methods_answer_in_openais_envelope(method, path, status):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from tailor.api import fallback

    app = FastAPI()
    app.add_api_route("/v1/models", lambda: {"object": "list", "data": []}, methods=["GET"])
    fallback.add_handlers(app)
    response = TestClient(app).request(method, path)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"] and {"param", "code"} <= set(error)


def test_stream_settings():
    assert stream_settings(body()) == (False, False)
    assert stream_settings(body(stream=True)) == (True, False)
    assert stream_settings(body(stream=True, stream_options={"include_usage": True})) == (True, True)
    with pytest.raises(InvalidFields, match="stream_options: only allowed when stream is true"):
        stream_settings(body(stream_options={"include_usage": True}))


# ------------------------------------------------------------ responses


@pytest.mark.parametrize(("stop_reason", "finish_reason"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length")])
def test_chat_completion_parses_as_the_client_does(stop_reason, finish_reason):
    data = chat_body.chat_completion(completion(stop_reason), model="tailor.tiny", completion_id="chatcmpl-1",
                                   created=1_700_000_000)
    parsed = ChatCompletion.model_validate(data)
    assert parsed.object == "chat.completion" and parsed.id == "chatcmpl-1" and parsed.model == "tailor.tiny"
    assert parsed.choices[0].message.role == "assistant" and parsed.choices[0].message.content == "4"
    assert parsed.choices[0].finish_reason == finish_reason
    assert (parsed.usage.prompt_tokens, parsed.usage.completion_tokens, parsed.usage.total_tokens) == (9, 2, 11)


def streamed(include_usage: bool, stop_reason: str = "max_tokens", pieces=("The answer", "", " is 4")) -> list[dict]:
    chunks = chat_body.ChatChunks(model="tailor.tiny", completion_id="chatcmpl-2", created=1_700_000_000,
                                include_usage=include_usage)
    out = chunks.start()
    for piece in pieces:
        out += chunks.delta(piece)
    return out + chunks.finish(completion(stop_reason))


@pytest.mark.parametrize("include_usage", [False, True])
def test_chunks_accumulate_in_the_clients_stream_state(include_usage):
    state = ChatCompletionStreamState()
    for data in streamed(include_usage, stop_reason="stop_sequence"):
        state.handle_chunk(ChatCompletionChunk.model_validate(data))
    final = state.get_final_completion()
    assert final.choices[0].message.content == "The answer is 4"
    assert final.choices[0].message.role == "assistant"
    assert final.choices[0].finish_reason == "stop"
    if include_usage:
        assert (final.usage.prompt_tokens, final.usage.completion_tokens, final.usage.total_tokens) == (9, 2, 11)
    else:
        assert final.usage is None


def test_chunk_sequence_shape():
    chunks = streamed(include_usage=True)
    assert [c["object"] for c in chunks] == ["chat.completion.chunk"] * 5
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"] for c in chunks[1:3]] == [{"content": "The answer"}, {"content": " is 4"}]
    assert chunks[3]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}
    assert [c["usage"] for c in chunks[:4]] == [None] * 4
    assert chunks[4]["choices"] == [] and chunks[4]["usage"] == {"prompt_tokens": 9, "completion_tokens": 2,
                                                                 "total_tokens": 11}
    assert all("usage" not in c for c in streamed(include_usage=False))


# ------------------------------------------------------------ errors


@pytest.mark.parametrize(("error", "status", "kind", "code"), [
    (InvalidInput("messages: required"), 400, "invalid_request_error", "invalid_value"),
    (NotFound("The model 'x' does not exist."), 404, "invalid_request_error", "not_found"),
    (Unauthenticated("Incorrect API key provided."), 401, "invalid_request_error", "invalid_api_key"),
    (AccessDenied("Requests from another site are refused."), 403, "invalid_request_error", "permission_denied"),
    (Conflict("The deployment is still Creating."), 400, "invalid_request_error", "conflict"),
    (ModelUnavailable("No weights for 'x' here."), 400, "invalid_request_error", "model_unavailable"),
])
def test_error_envelopes(error, status, kind, code):
    got_status, envelope = error_body(error)
    assert got_status == status
    assert envelope == {"error": {"message": error.message, "type": kind, "param": None, "code": code}}


@pytest.mark.parametrize("cls", list(HTTP_ERRORS))
def test_the_openai_envelope_reads_the_one_table(cls):
    error = cls({"x": "y"}) if cls is InvalidHyperparameters else cls("m")
    status, envelope = error_body(error)
    answer = HTTP_ERRORS[cls]
    assert (status, envelope["error"]["type"], envelope["error"]["code"]) == (
        answer.openai_status, answer.openai_type, answer.openai_code)


def test_an_invalid_parameter_names_its_param():
    status, envelope = error_body(problem(body(n=4)))
    assert status == 400
    assert envelope["error"]["param"] == "n"
    assert envelope["error"]["message"] == "n: only 1 choice per request is supported, got 4"


def test_unknown_errors_hide_their_details(caplog):
    with caplog.at_level(logging.ERROR):
        status, envelope = error_body(RuntimeError("secret path /home/x/.aws"))
    assert status == 500
    assert envelope["error"]["type"] == "server_error" and "secret" not in envelope["error"]["message"]
    assert "secret path" in caplog.text


# ------------------------------------------------------------ through the official client


def client_answering(handler) -> openai.OpenAI:
    """An ``openai.OpenAI`` client whose HTTP requests ``handler(request) -> httpx.Response`` answers."""
    return openai.OpenAI(api_key="k", base_url="http://tailor.test/v1", max_retries=0,
                         http_client=httpx.Client(transport=httpx.MockTransport(handler)))


def test_the_client_reads_a_chat_completion():
    def handler(request: httpx.Request) -> httpx.Response:
        chat = parse(json.loads(request.content))
        assert chat.sampling.max_tokens == 8
        return httpx.Response(200, json=chat_body.chat_completion(completion(), model="tailor.tiny",
                                                                  completion_id="chatcmpl-3", created=1))

    answer = client_answering(handler).chat.completions.create(
        model="tailor.tiny", messages=[{"role": "user", "content": "2 + 2?"}], max_completion_tokens=8)
    assert answer.choices[0].message.content == "4" and answer.usage.total_tokens == 11


def test_the_client_reads_the_chunk_stream():
    def handler(request: httpx.Request) -> httpx.Response:
        stream, include_usage = stream_settings(json.loads(request.content))
        assert stream and include_usage
        lines = [f"data: {json.dumps(chunk)}\n\n" for chunk in streamed(include_usage, stop_reason="end_turn")]
        return httpx.Response(200, content="".join(lines) + "data: [DONE]\n\n",
                              headers={"content-type": "text/event-stream"})

    chunks = list(client_answering(handler).chat.completions.create(
        model="tailor.tiny", messages=[{"role": "user", "content": "2 + 2?"}], stream=True,
        stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "The answer is 4"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 11


def test_the_client_raises_the_envelope_as_its_own_error():
    def handler(request: httpx.Request) -> httpx.Response:
        try:
            parse(json.loads(request.content))
        except InvalidInput as error:
            status, envelope = error_body(error)
            return httpx.Response(status, json=envelope)
        raise AssertionError("the request should have been refused")

    with pytest.raises(openai.BadRequestError) as raised:
        client_answering(handler).chat.completions.create(
            model="tailor.tiny", messages=[{"role": "user", "content": "2 + 2?"}], temperature=9)
    assert raised.value.status_code == 400
    assert raised.value.param == "temperature" and raised.value.code == "invalid_value"
    assert "temperature: must be a number between 0 and 2, got 9" in raised.value.message
