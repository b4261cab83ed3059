"""CountTokens: the conversation it counts, for a native InvokeModel body or a Converse input."""

from __future__ import annotations

import json

import pytest

from tailor.api.bedrock.count_tokens import count_tokens_request
from tailor.errors import InvalidFields
from tailor.serve.protocol import Message

MODEL_ID = "anthropic.claude-3-haiku-20240307-v1:0:200k"


def anthropic_body() -> dict:
    return {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 200,
            "messages": [{"role": "user", "content": "What is the capital of France?"}]}


def test_count_tokens_for_an_invoke_model_body(shape_errors):
    params = {"modelId": MODEL_ID, "input": {"invokeModel": {"body": json.dumps(anthropic_body()).encode()}}}
    assert shape_errors("CountTokensRequest", params) == ""
    request = count_tokens_request(params, kind="anthropic")
    assert request.messages == (Message("user", "What is the capital of France?"),)


def test_count_tokens_for_a_converse_request(shape_errors):
    params = {"modelId": MODEL_ID, "input": {"converse": {
        "messages": [{"role": "user", "content": [{"text": "Hi"}]}], "system": [{"text": "Be brief."}]}}}
    assert shape_errors("CountTokensRequest", params) == ""
    request = count_tokens_request(params, kind="titan")
    assert request.messages == (Message("system", "Be brief."), Message("user", "Hi"))


def test_count_tokens_uses_the_default_length_of_the_real_request():
    params = {"input": {"invokeModel": {"body": json.dumps(
        {"messages": [{"role": "user", "content": "Hi"}]}).encode()}}}
    assert count_tokens_request(params, kind="openai", default_max_tokens=64).sampling.max_tokens == 64


def test_count_tokens_problems_name_the_input_path():
    no_max_tokens = json.dumps({"anthropic_version": "bedrock-2023-05-31",
                                "messages": [{"role": "user", "content": "x"}]}).encode()
    with pytest.raises(InvalidFields, match=r"\n  input\.invokeModel\.body\.max_tokens: required"):
        count_tokens_request({"input": {"invokeModel": {"body": no_max_tokens}}}, kind="anthropic")
    with pytest.raises(InvalidFields, match=r"input.converse.messages\[0\].content\[0\].image: not supported"):
        count_tokens_request({"input": {"converse": {"messages": [
            {"role": "user", "content": [{"image": {"format": "png", "source": {"bytes": b"x"}}}]}]}}}, kind="titan")
    with pytest.raises(InvalidFields, match="input: must set exactly one of invokeModel, converse"):
        count_tokens_request({"input": {}}, kind="titan")
