"""Invocation log records read back as training data: every door's bodies, the filters, what is skipped.

The records are built as the server builds them: the request body a client sends, and the answer
body from the dialect's own response function, wrapped by ``invocation_record``.
"""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tailor.serve.protocol import Completion
from tailor.wire import chat_body, invoke
from tailor.wire.converse import converse_response
from tailor.wire.invocation_logs import (
    FAILED_CALL,
    INPUT_NOT_UNDERSTOOD,
    NO_TEXT,
    UNREADABLE_FILE,
    UNREADABLE_LINE,
    LogSelection,
    invocation_record,
    is_log_file,
    log_object_key,
    matches,
    training_file,
)

WHEN = datetime(2026, 12, 2, 13, 5, 9, tzinfo=timezone.utc)
ANSWER = "Returns are accepted within 30 days."
QUESTION = "How long do I have to return an item?"
SYSTEM = "You are the shop's assistant."


def _completion(text: str = ANSWER) -> Completion:
    return Completion(text=text, stop_reason="end_turn", input_tokens=11, output_tokens=7)


def _record(operation: str, body: dict, answer: dict | list, *, request_id: str, metadata: dict | None = None,
            text: bool = True) -> dict:
    return invocation_record(request_id=request_id, timestamp=WHEN, account_id="000000000000",
                             identity_arn="arn:aws:iam::000000000000:user/alice", region="us-east-1",
                             operation=operation, model_id="tailor.tiny", input_body=body, output_body=answer,
                             input_tokens=11, output_tokens=7, request_metadata=metadata, text=text)


def _native(kind: str, body: dict, request_id: str, metadata: dict | None = None) -> dict:
    answer = invoke.invoke_response(kind, _completion(), model_id="m", request_id=request_id,
                                    request_body=json.dumps(body), created=1)
    return _record("InvokeModel", body, answer, request_id=request_id, metadata=metadata)


def _converse(request_id: str, metadata: dict | None = None, question: str = QUESTION) -> dict:
    body = {"messages": [{"role": "user", "content": [{"text": question}]}], "system": [{"text": SYSTEM}],
            "inferenceConfig": {"maxTokens": 50}}
    return _record("Converse", body, converse_response(_completion()), request_id=request_id, metadata=metadata)


# One InvokeModel body per native dialect Tailor speaks, each asking QUESTION.
DIALECT_BODIES = {
    "anthropic": {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 40, "system": SYSTEM,
                  "messages": [{"role": "user", "content": [{"type": "text", "text": QUESTION}]}]},
    "titan": {"inputText": QUESTION, "textGenerationConfig": {"maxTokenCount": 40}},
    "llama": {"prompt": QUESTION, "max_gen_len": 40},
    "cohere": {"prompt": QUESTION, "max_tokens": 40, "p": 0.5},
    "openai": {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]},
}


def _write(path: Path, lines: list, *, gz: bool = True) -> Path:
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _conversation(system: str | None, answer: str | None = ANSWER) -> dict:
    record: dict = {"schemaVersion": "bedrock-conversation-2024"}
    if system:
        record["system"] = [{"text": system}]
    record["messages"] = [{"role": "user", "content": [{"text": QUESTION}]}]
    if answer is not None:
        record["messages"].append({"role": "assistant", "content": [{"text": answer}]})
    return record


@pytest.mark.parametrize("kind", sorted(DIALECT_BODIES))
def test_every_invoke_dialect_reads_back(tmp_path, kind):
    logs = _write(tmp_path / "a.json.gz", [_native(kind, DIALECT_BODIES[kind], f"r-{kind}")])
    selection = training_file([logs], tmp_path / "out.jsonl", use_prompt_response=True, filters=None)
    assert selection == LogSelection(files=1, records=1, matched=1, written=1, skipped={})
    has_system = kind in ("anthropic", "openai")
    assert _read(tmp_path / "out.jsonl") == [_conversation(SYSTEM if has_system else None)]


def test_converse_and_openai_chat_and_streamed_answers(tmp_path):
    chat = {"model": "tailor.tiny", "messages": [{"role": "developer", "content": SYSTEM},
                                                 {"role": "user", "content": [{"type": "text", "text": QUESTION}]}],
            "stream": True, "metadata": {"team": "shop"}}
    completion = chat_body.chat_completion(_completion(), model="tailor.tiny", completion_id="c", created=1)
    # How the original logs a stream: its chunks, in order (Tailor logs the assembled answer).
    anthropic = invoke.NativeStream("anthropic", model_id="m", request_id="s")
    chunks = anthropic.start(3) + anthropic.delta("Returns are ") + anthropic.delta("accepted within 30 days.")
    chunks += anthropic.finish(_completion())
    converse_chunks = [{"messageStart": {"role": "assistant"}},
                       {"contentBlockDelta": {"delta": {"text": "Returns are accepted "}, "contentBlockIndex": 0}},
                       {"contentBlockDelta": {"delta": {"text": "within 30 days."}, "contentBlockIndex": 0}},
                       {"messageStop": {"stopReason": "end_turn"}}]
    converse_stream_body = {"messages": [{"role": "user", "content": [{"text": QUESTION}]}]}
    logs = _write(tmp_path / "b.jsonl", [
        _converse("c1"),
        _record("CreateChatCompletion", chat, completion, request_id="o1"),
        _record("InvokeModelWithResponseStream", DIALECT_BODIES["anthropic"], chunks, request_id="s1"),
        _record("ConverseStream", converse_stream_body, converse_chunks, request_id="s2"),
    ], gz=False)
    selection = training_file([logs], tmp_path / "out.jsonl", use_prompt_response=True, filters=None)
    assert (selection.records, selection.written, selection.skipped) == (4, 4, {})
    assert _read(tmp_path / "out.jsonl") == [_conversation(SYSTEM)] * 3 + [_conversation(None)]


def test_prompts_only_and_prefill(tmp_path):
    prefilled = {"messages": [{"role": "user", "content": [{"text": QUESTION}]},
                              {"role": "assistant", "content": [{"text": "Returns are"}]}]}
    logs = _write(tmp_path / "c.json.gz", [
        _converse("c1"),
        _record("Converse", prefilled, converse_response(_completion(" accepted within 30 days.")), request_id="p1"),
    ])
    prompts = training_file([logs], tmp_path / "prompts.jsonl", use_prompt_response=False, filters=None)
    assert prompts.written == 2
    assert _read(tmp_path / "prompts.jsonl") == [_conversation(SYSTEM, None), _conversation(None, None)]
    pairs = training_file([logs], tmp_path / "pairs.jsonl", use_prompt_response=True, filters=None)
    assert pairs.written == 2
    assert _read(tmp_path / "pairs.jsonl")[1] == _conversation(None, "Returns are accepted within 30 days.")


def test_unreadable_lines_and_files_are_counted_not_fatal(tmp_path):
    failed = _converse("f1")
    failed["errorCode"] = "ThrottlingException"
    no_text = _record("Converse", {}, {}, request_id="n1", text=False)
    embedding = _record("InvokeModel", {"inputText": 5}, {"embedding": [0.1]}, request_id="e1")
    good = _write(tmp_path / "good.json.gz", [
        "{not json", "[1, 2]", "", _converse("c1"), failed, no_text, embedding, _converse("c1")])
    broken = tmp_path / "broken.json.gz"
    broken.write_bytes(b"this is not gzip")
    selection = training_file([good, broken], tmp_path / "out.jsonl", use_prompt_response=True, filters=None)
    assert selection.files == 2
    assert selection.records == 7 and selection.matched == 5 and selection.written == 1
    assert selection.skipped == {UNREADABLE_LINE: 2, FAILED_CALL: 1, NO_TEXT: 1, INPUT_NOT_UNDERSTOOD: 1,
                                 "duplicate requestId": 1, UNREADABLE_FILE: 1}
    # Prompts only: a failed call's prompt is still a prompt.
    prompts = training_file([good], tmp_path / "prompts.jsonl", use_prompt_response=False, filters=None)
    assert prompts.written == 2 and prompts.skipped.get(FAILED_CALL) is None


def test_no_text_delivery_leaves_bodies_out():
    record = _record("Converse", {"messages": []}, {"output": {}}, request_id="x", text=False,
                     metadata={"team": "a"})
    assert "inputBodyJson" not in record["input"] and "outputBodyJson" not in record["output"]
    assert record["input"]["inputTokenCount"] == 11 and record["output"]["outputTokenCount"] == 7
    assert record["requestMetadata"] == {"team": "a"}
    assert record["schemaType"] == "ModelInvocationLog" and record["timestamp"] == "2026-12-02T13:05:09Z"


def test_object_key_layout():
    key = log_object_key("/logs/", "000000000000", "us-east-1", WHEN, "x.json.gz")
    assert key == "logs/AWSLogs/000000000000/BedrockModelInvocationLogs/us-east-1/2026/12/02/13/x.json.gz"
    assert log_object_key("", "1", "r", WHEN, "y.json.gz").startswith("AWSLogs/1/")
    assert is_log_file(key) and is_log_file("a.jsonl") and not is_log_file("amazon-bedrock-logs-permission-check")


SHOP = {"team": "shop", "stage": "prod"}
BANK = {"team": "bank", "stage": "prod"}
TEST = {"team": "shop", "stage": "test"}


@pytest.mark.parametrize(("filters", "kept"), [
    (None, ["shop", "bank", "test", "none"]),
    ({"equals": {"team": "shop"}}, ["shop", "test"]),
    ({"notEquals": {"team": "shop"}}, ["bank", "none"]),
    ({"andAll": [{"equals": {"team": "shop"}}, {"notEquals": {"stage": "test"}}]}, ["shop"]),
    ({"orAll": [{"equals": {"team": "bank"}}, {"equals": {"stage": "test"}}]}, ["bank", "test"]),
    ({"equals": {"team": "nobody"}}, []),
])
def test_filters(tmp_path, filters, kept):
    named = {"shop": SHOP, "bank": BANK, "test": TEST, "none": None}
    assert [name for name, metadata in named.items() if matches(metadata or {}, filters)] == kept
    logs = _write(tmp_path / "f.json.gz", [_converse(name, metadata) for name, metadata in named.items()])
    selection = training_file([logs], tmp_path / "out.jsonl", use_prompt_response=True, filters=filters)
    assert (selection.records, selection.matched, selection.written) == (4, len(kept), len(kept))
    assert len(_read(tmp_path / "out.jsonl")) == len(kept)
