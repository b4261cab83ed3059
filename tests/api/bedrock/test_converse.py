"""Converse and ConverseStream to ChatRequest and back, checked against botocore's runtime model and parser."""

from __future__ import annotations

import json

import pytest
from botocore.awsrequest import HeadersDict
from botocore.parsers import create_parser

from tailor.api.bedrock import eventstream
from tailor.errors import InvalidFields
from tailor.serve.protocol import ChatRequest, Completion, Message, Sampling
from tailor.wire import converse

MODEL_ID = "anthropic.claude-3-haiku-20240307-v1:0:200k"


def completion(text="Paris.", stop_reason="end_turn") -> Completion:
    return Completion(text=text, stop_reason=stop_reason, input_tokens=12, output_tokens=3, latency_ms=250,
                      first_token_ms=40)


def converse_params(**changes) -> dict:
    params = {
        "modelId": MODEL_ID,
        "messages": [{"role": "user", "content": [{"text": "What is the capital"}, {"text": "of France?"}]}],
        "system": [{"text": "Answer in one word."}, {"cachePoint": {"type": "default"}}],
        "inferenceConfig": {"maxTokens": 50, "temperature": 0.2, "topP": 0.8, "stopSequences": ["END"]},
        "additionalModelRequestFields": {"top_k": 20},
        "requestMetadata": {"team": "search"},
        "additionalModelResponseFieldPaths": ["/stop_sequence"],
    }
    params.update(changes)
    return params


def test_the_converse_test_requests_are_valid_for_botocore(shape_errors):
    assert shape_errors("ConverseRequest", converse_params()) == ""


def test_converse_request():
    request = converse.converse_request(converse_params(), default_max_tokens=256)
    assert request.messages == (Message("system", "Answer in one word."),
                                Message("user", "What is the capital\nof France?"))
    assert request.sampling == Sampling(max_tokens=50, temperature=0.2, top_p=0.8, top_k=20, stop=("END",))


def test_converse_defaults():
    params = {"modelId": MODEL_ID, "messages": [{"role": "user", "content": [{"text": "Hi"}]}]}
    request = converse.converse_request(params, default_max_tokens=77)
    assert request == ChatRequest((Message("user", "Hi"),), Sampling(max_tokens=77))


def test_converse_prefill():
    request = converse.converse_request(converse_params(messages=[
        {"role": "user", "content": [{"text": "Colour?"}]},
        {"role": "assistant", "content": [{"text": "The colour is"}]}]), default_max_tokens=10)
    assert request.messages[-1] == Message("assistant", "The colour is")


def converse_problems(**changes) -> str:
    with pytest.raises(InvalidFields) as raised:
        converse.converse_request(converse_params(**changes), default_max_tokens=10)
    return "\n".join(f"{path}: {problem}" for path, problem in raised.value.problems)


@pytest.mark.parametrize(("block", "expected"), [
    ({"image": {"format": "png", "source": {"bytes": b"\x89PNG"}}},
     "messages[0].content[1].image: not supported: Tailor's models take text only"),
    ({"document": {"format": "txt", "name": "notes", "source": {"bytes": b"hi"}}},
     "messages[0].content[1].document: not supported: Tailor's models take text only"),
    ({"toolResult": {"toolUseId": "t1", "content": [{"text": "42"}]}},
     "messages[0].content[1].toolResult: tools are not supported"),
    ({"guardContent": {"text": {"text": "x"}}}, "messages[0].content[1].guardContent: guardrails are not supported"),
    ({"text": "  "}, "messages[0].content[1].text: must not be blank"),
])
def test_converse_refused_blocks_are_named(block, expected, shape_errors):
    messages = [{"role": "user", "content": [{"text": "Look:"}, block]}]
    assert shape_errors("ConverseRequest", converse_params(messages=messages)) == ""
    assert expected in converse_problems(messages=messages)


def test_converse_request_problems_all_at_once():
    message = converse_problems(
        messages=[{"role": "system", "content": [{"text": "Be nice"}]},
                  {"role": "assistant", "content": [{"text": "Hi"}]},
                  {"role": "assistant", "content": [{"cachePoint": {"type": "default"}}]}],
        toolConfig={"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {}}}}]},
        guardrailConfig={"guardrailIdentifier": "g", "guardrailVersion": "1"},
        additionalModelRequestFields={"top_k": 5, "reasoning_config": {}},
    )
    assert message.splitlines() == [
        "messages[0].role: put the system prompt in the system field",
        "additionalModelRequestFields.reasoning_config: unknown field (allowed: top_k)",
        "toolConfig: tools are not supported: Tailor's models answer with text only",
        "guardrailConfig: guardrails are not supported by Tailor",
    ]


def test_the_order_of_turns_is_checked_once_every_message_is_valid():
    # While messages[0] has no usable role, whose turn each message is cannot be told.
    message = converse_problems(messages=[{"role": "user", "content": [{"text": "Hi"}]},
                                          {"role": "assistant", "content": [{"text": "Hello"}]},
                                          {"role": "assistant", "content": [{"cachePoint": {"type": "default"}}]}])
    assert message.splitlines() == [
        "messages[2].role: roles must alternate between user and assistant, but the message before is also 'assistant'"]
    message = converse_problems(messages=[{"role": "assistant", "content": [{"text": "Hi"}]},
                                          {"role": "user", "content": [{"cachePoint": {"type": "default"}}]},
                                          {"role": "assistant", "content": [{"text": "So "}]}])
    assert message.splitlines() == [
        "messages[0].role: the first message must be a user message, got 'assistant'",
        "messages[1].content: must not be empty (only a final assistant message may be)",
        "messages[2].content: a final assistant message (prefill) cannot end with whitespace"]


def test_converse_without_messages():
    params = converse_params()
    del params["messages"]
    with pytest.raises(InvalidFields) as raised:
        converse.converse_request(params, default_max_tokens=10)
    assert raised.value.problems == [("messages", "required")]


def test_converse_response_keeps_the_contract(runtime_model, shape_errors):
    for reason in ("end_turn", "max_tokens", "stop_sequence"):
        body = converse.converse_response(completion(stop_reason=reason))
        assert shape_errors("ConverseResponse", body) == ""
        operation = runtime_model.operation_model("Converse")
        parsed = create_parser("rest-json").parse(
            {"status_code": 200, "headers": HeadersDict({}), "body": json.dumps(body).encode()},
            operation.output_shape)
        parsed.pop("ResponseMetadata")
        assert parsed == {"output": {"message": {"role": "assistant", "content": [{"text": "Paris."}]}},
                          "stopReason": reason, "usage": {"inputTokens": 12, "outputTokens": 3, "totalTokens": 15},
                          "metrics": {"latencyMs": 250}}


def test_converse_latency_may_be_the_routes_own_measure(shape_errors):
    body = converse.converse_response(completion(), latency_ms=321)
    assert body["metrics"] == {"latencyMs": 321}
    assert shape_errors("ConverseResponse", body) == ""


def test_converse_stream_events_keep_the_contract_and_parse(runtime_model, shape_errors):
    stream = converse.ConverseStream()
    events = stream.start() + stream.delta("Par") + stream.delta("") + stream.delta("is.") + stream.finish(completion())
    output_shape = runtime_model.shape_for("ConverseStreamOutput")
    for event_type, payload in events:
        assert shape_errors(output_shape.members[event_type].name, payload) == ""
    data = b"".join(eventstream.event(event_type, payload) for event_type, payload in events)

    operation = runtime_model.operation_model("ConverseStream")

    class Raw:
        def stream(self):
            yield data

    parsed = create_parser("rest-json").parse(
        {"status_code": 200, "headers": HeadersDict({}), "body": Raw(),
         "context": {"operation_name": "ConverseStream"}},
        operation.output_shape)
    received = list(parsed["stream"])
    assert [next(iter(e)) for e in received] == ["messageStart", "contentBlockDelta", "contentBlockDelta",
                                                 "contentBlockStop", "messageStop", "metadata"]
    assert "".join(e["contentBlockDelta"]["delta"]["text"] for e in received if "contentBlockDelta" in e) == "Paris."
    assert received[-2] == {"messageStop": {"stopReason": "end_turn"}}
    assert received[-1] == {"metadata": {"usage": {"inputTokens": 12, "outputTokens": 3, "totalTokens": 15},
                                         "metrics": {"latencyMs": 250}}}


