"""bedrock-runtime bodies to ChatRequest and back, checked against botocore's runtime model and parser."""

from __future__ import annotations

import json
from typing import get_args, get_type_hints

import pytest
from botocore.awsrequest import HeadersDict
from botocore.model import ServiceModel
from botocore.parsers import create_parser
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tailor.api.bedrock import eventstream
from tailor.catalog import FAMILIES, Family
from tailor.errors import InvalidFields
from tailor.serve.protocol import ChatRequest, Completion, Message, Sampling
from tailor.wire import invoke
from tailor.wire.bodies import cohere

MODEL_ID = "anthropic.claude-3-haiku-20240307-v1:0:200k"
REQUEST_ID = "2f1c8a8e-6b3e-4f55-9d2a-0c1e2b3a4d5f"


def parse(kind: str, body, default_max_tokens: int = 256) -> ChatRequest:
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return invoke.parse_invoke_body(kind, raw, default_max_tokens=default_max_tokens)


def raised_by(kind: str, body) -> InvalidFields:
    with pytest.raises(InvalidFields) as raised:
        parse(kind, body)
    return raised.value


def problems_of(kind: str, body) -> str:
    """The problems found in ``body``, one ``path: problem`` per line."""
    return "\n".join(f"{path}: {problem}" for path, problem in raised_by(kind, body).problems)


def completion(text="Paris.", stop_reason="end_turn", stop_sequence=None) -> Completion:
    return Completion(text=text, stop_reason=stop_reason, input_tokens=12, output_tokens=3,
                      stop_sequence=stop_sequence, latency_ms=250, first_token_ms=40)


def anthropic_body(**changes) -> dict:
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 200,
            "messages": [{"role": "user", "content": "What is the capital of France?"}]}
    body.update(changes)
    return body


def test_every_body_a_catalog_family_can_name_has_its_module():
    # The table and the catalog's list of dialects are kept in step here.
    assert set(get_args(get_type_hints(Family)["invoke_body"])) == set(invoke.BODIES)
    assert {family.invoke_body for family in FAMILIES.values()} <= set(invoke.BODIES)
    for kind, module in invoke.BODIES.items():
        assert callable(module.request) and callable(module.response) and callable(module.Stream), kind


# ------------------------------------------------------------ anthropic bodies


def test_an_anthropic_body_with_every_sampling_setting():
    request = parse("anthropic", anthropic_body(system="You answer in one word.", temperature=0.5, top_p=0.9,
                                                top_k=40, stop_sequences=["\n\nHuman:"]))
    assert request.messages == (Message("system", "You answer in one word."),
                                Message("user", "What is the capital of France?"))
    assert request.sampling == Sampling(max_tokens=200, temperature=0.5, top_p=0.9, top_k=40,
                                        stop=("\n\nHuman:",))


def test_anthropic_content_blocks_and_system_blocks_are_joined_text():
    request = parse("anthropic", anthropic_body(
        system=[{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
        messages=[{"role": "user", "content": [
                      {"type": "text", "text": "Hello"},
                      {"type": "text", "text": "there", "cache_control": {"type": "ephemeral"}}]},
                  {"role": "assistant", "content": "Hi."},
                  {"role": "user", "content": "Bye"}]))
    assert request.turns() == [{"role": "system", "content": "Be brief.\nBe kind."},
                               {"role": "user", "content": "Hello\nthere"},
                               {"role": "assistant", "content": "Hi."},
                               {"role": "user", "content": "Bye"}]


def test_anthropic_defaults_are_greedy():
    assert parse("anthropic", anthropic_body()).sampling == Sampling(max_tokens=200)


def test_a_final_assistant_message_is_kept_last_as_the_prefill():
    request = parse("anthropic", anthropic_body(messages=[
        {"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "The colour is"}]))
    assert request.messages[-1] == Message("assistant", "The colour is")


def test_an_empty_prefill_is_dropped():
    request = parse("anthropic", anthropic_body(messages=[
        {"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": ""}]))
    assert request.messages == (Message("user", "Name a colour."),)


def test_a_prefill_may_not_end_with_whitespace():
    message = problems_of("anthropic", anthropic_body(messages=[
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Well, "}]))
    assert "messages[1].content: a final assistant message (prefill) cannot end with whitespace" in message


def test_anthropic_version_is_required_and_exact():
    body = anthropic_body()
    del body["anthropic_version"]
    assert "anthropic_version: required (use 'bedrock-2023-05-31')" in problems_of("anthropic", body)
    assert "anthropic_version: must be 'bedrock-2023-05-31', got '2023-06-01'" in problems_of(
        "anthropic", anthropic_body(anthropic_version="2023-06-01"))


def test_anthropic_max_tokens_is_required():
    body = anthropic_body()
    del body["max_tokens"]
    assert "max_tokens: required" in problems_of("anthropic", body)


def test_every_problem_of_a_body_is_listed_with_its_field():
    error = raised_by("anthropic", {
        "anthropic_version": "bedrock-2023-05-31", "max_tokens": 0, "temperature": 1.5, "top_k": -1,
        "stop_sequences": "STOP", "tools": [{"name": "x"}], "top_kk": 3,
        "messages": [{"role": "user", "content": "Hi"}, {"role": "bot", "content": "Hello"},
                     {"role": "user", "content": [{"type": "image", "source": {"type": "base64"}}]}],
    })
    lines = error.message.splitlines()
    assert lines[0] == "8 validation errors detected:"  # AWS's words, one line per problem below
    assert {line.strip() for line in lines[1:]} == {
        "tools: tools are not supported: Tailor's models answer with text only",
        "top_kk: unknown field (did you mean 'top_k'?)",
        "max_tokens: must be an integer of at least 1, got 0",
        "temperature: must be a number between 0 and 1, got 1.5",
        "top_k: must be an integer of at least 0, got -1",
        "stop_sequences: must be a list, got 'STOP'",
        "messages[1].role: must be 'user' or 'assistant', got 'bot'",
        # neither "messages[2] breaks alternation" (messages[1]'s role is unknown) nor
        # "messages[2].content is empty" (its one block was already refused)
        "messages[2].content[0].type: 'image' blocks are not supported: Tailor's models take text only",
    }


@pytest.mark.parametrize(("messages", "expected"), [
    ([{"role": "assistant", "content": "Hi"}],
     "messages[0].role: the first message must be a user message, got 'assistant'"),
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
     "messages[1].role: roles must alternate between user and assistant, but the message before is also 'user'"),
    ([{"role": "user", "content": "   "}], "messages[0].content: must not be empty"),
    ([{"role": "user"}], "messages[0].content: required"),
    ([{"role": "user", "content": 3}], "messages[0].content: must be a string or a list of content blocks, got 3"),
    ([{"role": "user", "content": "a", "name": "x"}], "messages[0].name: unknown field"),
    ([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]}],
     "messages[0].content[0].type: 'tool_result' blocks are tools are not supported"),
    ([{"role": "user", "content": [{"type": "document", "source": {}}]}],
     "messages[0].content[0].type: 'document' blocks are not supported: Tailor's models take text only"),
    ([{"role": "user", "content": [{"type": "text"}]}], "messages[0].content[0].text: required"),
    ([{"role": "user", "content": [{"type": "video"}]}], "messages[0].content[0].type: unknown block type 'video'"),
    ([], "messages: must not be empty"),
    ("hello", "messages: must be a list, got 'hello'"),
    (["hello"], "messages[0]: must be an object, got 'hello'"),
])
def test_anthropic_message_problems_name_the_message(messages, expected):
    assert expected in problems_of("anthropic", anthropic_body(messages=messages))


def test_an_unknown_role_is_not_also_blamed_for_alternation():
    message = problems_of("anthropic", anthropic_body(messages=[
        {"role": "user", "content": "Hi"}, {"role": "bot", "content": "Hello"}, {"role": "user", "content": "Bye"}]))
    assert message == "messages[1].role: must be 'user' or 'assistant', got 'bot'"


def test_a_refused_block_is_not_also_called_empty():
    message = problems_of("anthropic", anthropic_body(messages=[
        {"role": "user", "content": [{"type": "image", "source": {}}]}]))
    assert message == "messages[0].content[0].type: 'image' blocks are not supported: Tailor's models take text only"


def test_thinking_is_refused():
    assert "thinking: extended thinking is not supported" in problems_of(
        "anthropic", anthropic_body(thinking={"type": "enabled", "budget_tokens": 1024}))


# ------------------------------------------------------------ bodies that are not right JSON


@pytest.mark.parametrize(("raw", "expected"), [
    ('{"prompt": "hi",\n "max_tokens": }', "body: not valid JSON: Expecting value at line 2, column 16"),
    ("", "body: not valid JSON: Expecting value at line 1, column 1"),
    (b"\xff{}", "body: must be UTF-8 JSON; byte 0 is not UTF-8"),
    ("[1, 2]", "body: must be a JSON object, got a list"),
    ('"text"', "body: must be a JSON object, got 'text'"),
])
@pytest.mark.parametrize("kind", ["anthropic", "cohere", "openai"])
def test_a_body_that_is_not_a_json_object_says_where(raw, expected, kind):
    assert problems_of(kind, raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    ('{"prompt": "hi\\ud800"}', "prompt: not valid Unicode: a lone surrogate at character 2"),
    (b'{"prompt": "hi\xed\xa0\x80"}', "body: must be UTF-8 JSON; byte 14 is not UTF-8"),
    ('{"prompt": "hi", "temperature": NaN}', "temperature: must be a finite number"),
    ('{"prompt": "hi", "max_tokens": 1e999}', "max_tokens: must be a finite number"),
    ('{"prompt": ' + "[" * 5000 + "]" * 5000 + "}", "body: nested more than 100 levels deep"),
    ('{"prompt": "hi", "max_tokens": ' + "9" * 5000 + "}", "body: not valid JSON: a number has more than"),
])
@pytest.mark.parametrize("kind", ["cohere", "llama"])
def test_bodies_the_engine_could_not_take_are_refused_by_field(raw, expected, kind):
    # A lone surrogate in a prompt used to reach the engine, whose tokenizer failed: a 424.
    assert problems_of(kind, raw).startswith(expected)


@pytest.mark.parametrize(("kind", "body", "expected"), [
    ("anthropic", anthropic_body(max_tokens=10**20), "max_tokens: must be an integer between 1 and 2147483647"),
    ("anthropic", anthropic_body(top_k=2**63), "top_k: must be an integer between 0 and 2147483647"),
    ("anthropic", anthropic_body(messages=[{"role": "user", "content": [{"type": ["text"], "text": "hi"}]}]),
     "messages[0].content[0].type: unknown block type a list"),
    ("openai", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10**20},
     "max_tokens: must be an integer between 1 and 2147483647"),
])
def test_numbers_and_types_no_request_needs_are_refused_not_crashed_on(kind, body, expected):
    assert expected in problems_of(kind, body)


def test_unknown_kinds_are_a_programming_error():
    with pytest.raises(ValueError, match="unknown body kind 'mistral'"):
        parse("mistral", {})


# ------------------------------------------------------------ prompt-style bodies


def test_a_cohere_body_is_a_single_user_turn_holding_the_prompt():
    prompt = "Summarize the following conversation.\n\n#Person1#: Hi.\n#Person2#: Hello."
    request = parse("cohere", {"prompt": prompt, "temperature": 0.9, "p": 0.75, "max_tokens": 100})
    assert request.messages == (Message("user", prompt),)
    assert request.sampling == Sampling(max_tokens=100, temperature=0.9, top_p=0.75)


def test_cohere_defaults_and_p_zero_is_off():
    assert parse("cohere", {"prompt": "Hi"}).sampling == Sampling(max_tokens=20)
    assert parse("cohere", {"prompt": "Hi", "p": 0}).sampling.top_p == 1.0


def test_cohere_ignored_fields_are_accepted():
    request = parse("cohere", {"prompt": "Hi", "k": 5, "stop_sequences": ["\n"], "return_likelihoods": "ALL",
                               "stream": True, "num_generations": 1, "logit_bias": {"42": -5}, "truncate": "END"})
    assert request.sampling == Sampling(max_tokens=20, top_k=5, stop=("\n",))


def test_cohere_problems():
    message = problems_of("cohere", {"temperature": 6, "p": 2, "k": 501, "max_tokens": 5000, "num_generations": 3,
                                     "stop_sequences": ["a", "b", "c", "d", "e"], "return_likelihoods": "SOME",
                                     "truncate": "MIDDLE", "stream": "yes", "logit_bias": [1], "promt": "x"})
    for expected in ["prompt: required", "promt: unknown field (did you mean 'prompt'?)",
                     "temperature: must be a number between 0 and 5, got 6",
                     "p: must be a number between 0 and 1, got 2", "k: must be an integer between 0 and 500, got 501",
                     "max_tokens: must be an integer between 1 and 4096, got 5000",
                     "num_generations: only 1 generation per request is supported, got 3",
                     "stop_sequences: at most 4 items, got 5",
                     "return_likelihoods: must be 'GENERATION', 'ALL' or 'NONE', got 'SOME'",
                     "truncate: must be 'NONE', 'START' or 'END', got 'MIDDLE'",
                     "stream: must be true or false, got 'yes'",
                     "logit_bias: must be an object, got a list"]:
        assert expected in message


def test_titan_body():
    request = parse("titan", {"inputText": "User: Hi\nBot:", "textGenerationConfig": {
        "temperature": 0.7, "topP": 0.9, "maxTokenCount": 100, "stopSequences": ["|"]}})
    assert request.messages == (Message("user", "User: Hi\nBot:"),)
    assert request.sampling == Sampling(max_tokens=100, temperature=0.7, top_p=0.9, stop=("|",))
    assert parse("titan", {"inputText": "Hi"}).sampling == Sampling(max_tokens=512)


def test_titan_problems():
    message = problems_of("titan", {"inputText": "", "textGenerationConfig": {"maxTokenCount": 0, "topp": 0.5}})
    assert "inputText: must not be blank" in message
    assert "textGenerationConfig.maxTokenCount: must be an integer between 1 and 8192, got 0" in message
    assert "textGenerationConfig.topp: unknown field (did you mean 'topP'?)" in message
    assert "textGenerationConfig: must be an object, got 'fast'" in problems_of(
        "titan", {"inputText": "Hi", "textGenerationConfig": "fast"})


def test_llama_body():
    request = parse("llama", {"prompt": "Hi", "temperature": 0.5, "top_p": 0.9, "max_gen_len": 64})
    assert request.messages == (Message("user", "Hi"),)
    assert request.sampling == Sampling(max_tokens=64, temperature=0.5, top_p=0.9)
    assert parse("llama", {"prompt": "Hi"}).sampling == Sampling(max_tokens=512)


def test_llama_problems():
    message = problems_of("llama", {"prompt": 5, "images": ["aGk="], "max_gen_len": 4096})
    assert "prompt: must be a string, got 5" in message
    assert "images: images are not supported: Tailor's models take text only" in message
    assert "max_gen_len: must be an integer between 1 and 2048, got 4096" in message


def test_openai_bodies_delegate_and_need_no_model():
    request = parse("openai", {"messages": [{"role": "system", "content": "Be brief."},
                                            {"role": "user", "content": "Hi"}], "max_tokens": 30})
    assert request.messages == (Message("system", "Be brief."), Message("user", "Hi"))
    assert request.sampling.max_tokens == 30
    assert parse("openai", {"messages": [{"role": "user", "content": "Hi"}]}, 99).sampling.max_tokens == 99
    assert "n: only 1 choice" in problems_of("openai", {"messages": [{"role": "user", "content": "Hi"}], "n": 2})


# ------------------------------------------------------------ native responses


def test_anthropic_response():
    body = invoke.invoke_response("anthropic", completion(), model_id=MODEL_ID, request_id=REQUEST_ID)
    assert body == {
        "id": "msg_bdrk_2f1c8a8e6b3e4f559d2a0c1e2b3a4d5f", "type": "message", "role": "assistant",
        "model": MODEL_ID, "content": [{"type": "text", "text": "Paris."}], "stop_reason": "end_turn",
        "stop_sequence": None, "usage": {"input_tokens": 12, "output_tokens": 3},
    }
    stopped = invoke.invoke_response("anthropic", completion(stop_reason="stop_sequence", stop_sequence="\n\n"),
                                      model_id=MODEL_ID, request_id=REQUEST_ID)
    assert (stopped["stop_reason"], stopped["stop_sequence"]) == ("stop_sequence", "\n\n")
    assert invoke.invoke_response("anthropic", completion(stop_reason="max_tokens"), model_id=MODEL_ID,
                                   request_id=REQUEST_ID)["stop_reason"] == "max_tokens"


@pytest.mark.parametrize(("stop_reason", "cohere", "titan", "llama"), [
    ("end_turn", "COMPLETE", "FINISH", "stop"),
    ("stop_sequence", "COMPLETE", "STOP_CRITERIA_MET", "stop"),
    ("max_tokens", "MAX_TOKENS", "LENGTH", "length"),
])
def test_prompt_style_responses(stop_reason, cohere, titan, llama):
    done = completion(stop_reason=stop_reason)
    cohere_body = invoke.invoke_response("cohere", done, model_id=MODEL_ID, request_id=REQUEST_ID,
                                          request_body=b'{"prompt": "Q?", "max_tokens": 5}')
    assert cohere_body["id"] == REQUEST_ID and cohere_body["prompt"] == "Q?"
    [generation] = cohere_body["generations"]
    assert generation["text"] == "Paris." and generation["finish_reason"] == cohere
    assert len(generation["id"]) == 36  # a UUID, as the original's
    assert invoke.invoke_response("titan", done, model_id=MODEL_ID, request_id=REQUEST_ID) == {
        "inputTextTokenCount": 12, "results": [{"tokenCount": 3, "outputText": "Paris.", "completionReason": titan}]}
    assert invoke.invoke_response("llama", done, model_id=MODEL_ID, request_id=REQUEST_ID) == {
        "generation": "Paris.", "prompt_token_count": 12, "generation_token_count": 3, "stop_reason": llama}


def test_cohere_echoes_the_prompt_only_when_it_can_read_it():
    assert cohere.echoed_prompt(b'{"prompt": "Q?"}') == "Q?"
    for body in (None, b"not json", b"[1]", b'{"prompt": 3}'):
        assert cohere.echoed_prompt(body) == ""
    no_prompt = invoke.invoke_response("cohere", completion(), model_id=MODEL_ID, request_id=REQUEST_ID)
    assert no_prompt["prompt"] == ""


def test_openai_response_is_a_chat_completion():
    body = invoke.invoke_response("openai", completion(stop_reason="max_tokens"), model_id=MODEL_ID,
                                   request_id=REQUEST_ID, created=1_700_000_000)
    parsed = ChatCompletion.model_validate(body)
    assert parsed.choices[0].message.content == "Paris."
    assert parsed.choices[0].finish_reason == "length"
    assert parsed.usage.total_tokens == 15 and parsed.model == MODEL_ID and parsed.created == 1_700_000_000


# ------------------------------------------------------------ native streams, as boto3 reads them


def stream_bytes(kind: str, pieces: list[str], done: Completion) -> tuple[list[dict], bytes]:
    stream = invoke.NativeStream(kind, model_id=MODEL_ID, request_id=REQUEST_ID, created=1,
                                  request_body=json.dumps({"prompt": "Q?"}))
    natives = stream.start(input_tokens=12)
    for piece in pieces:
        natives += stream.delta(piece)
    natives += stream.finish(done)
    return natives, b"".join(eventstream.chunk(native) for native in natives)


def read_chunks(runtime_model: ServiceModel, data: bytes) -> list[dict]:
    """The chunks as a boto3 user reads them: json.loads(event["chunk"]["bytes"])."""
    operation = runtime_model.operation_model("InvokeModelWithResponseStream")

    class Raw:
        def stream(self):
            for i in range(0, len(data), 9):
                yield data[i:i + 9]

    response = {"status_code": 200, "headers": HeadersDict({"x-amzn-bedrock-content-type": "application/json"}),
                "body": Raw(), "context": {"operation_name": operation.name}}
    parsed = create_parser("rest-json").parse(response, operation.output_shape)
    return [json.loads(event["chunk"]["bytes"]) for event in parsed["body"]]


METRICS = {"inputTokenCount": 12, "outputTokenCount": 3, "invocationLatency": 250, "firstByteLatency": 40}


def test_anthropic_stream(runtime_model):
    natives, data = stream_bytes("anthropic", ["Par", "", "is."], completion(text="Paris."))
    chunks = read_chunks(runtime_model, data)
    assert chunks == natives
    assert [c["type"] for c in chunks] == ["message_start", "content_block_start", "content_block_delta",
                                           "content_block_delta", "content_block_stop", "message_delta",
                                           "message_stop"]
    assert chunks[0]["message"]["usage"] == {"input_tokens": 12, "output_tokens": 0}
    assert chunks[0]["message"]["id"].startswith("msg_bdrk_") and chunks[0]["message"]["model"] == MODEL_ID
    assert "".join(c["delta"]["text"] for c in chunks if c["type"] == "content_block_delta") == "Paris."
    assert chunks[5] == {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                         "usage": {"output_tokens": 3}}
    assert chunks[-1] == {"type": "message_stop", "amazon-bedrock-invocationMetrics": METRICS}
    assert all(invoke.METRICS_KEY not in c for c in chunks[:-1])


def test_titan_stream(runtime_model):
    _, data = stream_bytes("titan", ["Par", "is."], completion(stop_reason="max_tokens"))
    chunks = read_chunks(runtime_model, data)
    assert "".join(c["outputText"] for c in chunks) == "Paris."
    assert chunks[0] == {"outputText": "Par", "index": 0, "totalOutputTextTokenCount": None,
                         "completionReason": None, "inputTextTokenCount": 12}
    assert chunks[1]["inputTextTokenCount"] is None
    assert chunks[-1] == {"outputText": "", "index": 0, "totalOutputTextTokenCount": 3, "completionReason": "LENGTH",
                          "inputTextTokenCount": None, "amazon-bedrock-invocationMetrics": METRICS}


def test_llama_stream(runtime_model):
    _, data = stream_bytes("llama", ["Par", "is."], completion())
    chunks = read_chunks(runtime_model, data)
    assert "".join(c["generation"] for c in chunks) == "Paris."
    assert [c["prompt_token_count"] for c in chunks] == [12, None, None]
    assert [c["stop_reason"] for c in chunks] == [None, None, "stop"]
    assert chunks[-1]["generation_token_count"] == 3 and chunks[-1][invoke.METRICS_KEY] == METRICS


def test_cohere_stream_gives_the_text_once_to_either_kind_of_reader(runtime_model):
    _, data = stream_bytes("cohere", ["Par", "is."], completion())
    chunks = read_chunks(runtime_model, data)
    # LangChain's reader: text pieces until is_finished
    text = ""
    for chunk in chunks:
        if chunk["is_finished"]:
            break
        text += chunk["text"]
    assert text == "Paris."
    # AWS's example reader: generations[0].text wherever present
    assert "".join(c["generations"][0]["text"] for c in chunks if "generations" in c) == "Paris."
    assert chunks[-1]["finish_reason"] == "COMPLETE" and chunks[-1]["prompt"] == "Q?"
    assert chunks[-1][invoke.METRICS_KEY] == METRICS


def test_openai_stream_chunks_parse_as_openai_chunks(runtime_model):
    _, data = stream_bytes("openai", ["Par", "is."], completion())
    chunks = read_chunks(runtime_model, data)
    parsed = [ChatCompletionChunk.model_validate(c) for c in chunks]
    assert parsed[0].choices[0].delta.role == "assistant"
    assert "".join(p.choices[0].delta.content or "" for p in parsed) == "Paris."
    assert parsed[-1].choices[0].finish_reason == "stop"
    assert chunks[-1][invoke.METRICS_KEY] == METRICS


def test_a_stream_with_no_text_still_reports_the_prompt_count(runtime_model):
    for kind, key in (("titan", "inputTextTokenCount"), ("llama", "prompt_token_count")):
        natives, _ = stream_bytes(kind, [], completion(text=""))
        assert len(natives) == 1 and natives[0][key] == 12
