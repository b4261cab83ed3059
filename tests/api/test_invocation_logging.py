"""Model invocation logging against a real ``tailor serve``: the configuration through boto3, the
records of real calls (every door, streams included) in Bedrock's log files, nothing for a principal
without logging, a broken destination that costs no call, and the files read back as training data.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tailor.wire.invocation_logs import training_file
from tests.api.conftest import ALIASES, HAIKU, running_server
from tests.conftest import tiny_home
from tests.console.session import signed_in_client

FLUSH_SECONDS = 0.3
QUESTION = "What is Tailor?"
LOGS = "AWSLogs/000000000000/BedrockModelInvocationLogs/us-east-1"


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_models_dir):
    home = tiny_home(tmp_path_factory.mktemp("logging") / "home", tiny_models_dir)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TAILOR_INVOCATION_LOG_FLUSH_SECONDS", str(FLUSH_SECONDS))
        with running_server(home, ALIASES) as running:
            yield running


def _config(bucket: str, prefix: str, **extra) -> dict:
    return {"s3Config": {"bucketName": bucket, "keyPrefix": prefix}, "textDataDeliveryEnabled": True, **extra}


def _records(folder: Path) -> list[dict]:
    records = []
    for path in sorted(folder.rglob("*.json.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            records += [json.loads(line) for line in handle if line.strip()]
    return records


def _wait_for(folder: Path, count: int, timeout: float = 20.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = _records(folder)
        if len(records) >= count:
            return records
        time.sleep(0.1)
    raise AssertionError(f"{len(_records(folder))} records under {folder}, expected {count}")


def _error(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def test_configuration_round_trip_and_refusals(server):
    bedrock = server.client("bedrock", "alice")
    assert "loggingConfig" not in bedrock.get_model_invocation_logging_configuration()

    code, message = _error(lambda: bedrock.put_model_invocation_logging_configuration(loggingConfig={
        "cloudWatchConfig": {"logGroupName": "bedrock", "roleArn": "arn:aws:iam::000000000000:role/logs"},
        "textDataDeliveryEnabled": True}))
    assert code == "ValidationException" and "CloudWatch" in message and "s3Config" in message
    code, message = _error(lambda: bedrock.put_model_invocation_logging_configuration(loggingConfig={}))
    assert code == "ValidationException" and "s3Config" in message

    server.put("s3://bob-private/readme.jsonl", [{"x": 1}], principal="bob")
    code, message = _error(lambda: bedrock.put_model_invocation_logging_configuration(
        loggingConfig=_config("bob-private", "stolen")))
    assert code == "AccessDeniedException" and "bob-private" in message
    code, _ = _error(lambda: bedrock.put_model_invocation_logging_configuration(
        loggingConfig=_config("alice-logs", "../escape")))
    assert code == "ValidationException"

    config = _config("alice-logs", "round-trip", imageDataDeliveryEnabled=False)
    bedrock.put_model_invocation_logging_configuration(loggingConfig=config)
    assert bedrock.get_model_invocation_logging_configuration()["loggingConfig"] == config
    assert "loggingConfig" not in server.client("bedrock", "bob").get_model_invocation_logging_configuration()
    bedrock.delete_model_invocation_logging_configuration()
    assert "loggingConfig" not in bedrock.get_model_invocation_logging_configuration()


def test_every_door_is_logged_and_reads_back_as_training_data(server):
    server.client("bedrock", "alice").put_model_invocation_logging_configuration(
        loggingConfig=_config("alice-logs", "calls/"))
    runtime, bob_runtime = server.client("bedrock-runtime", "alice"), server.client("bedrock-runtime", "bob")
    conversation = {"messages": [{"role": "user", "content": [{"text": QUESTION}]}],
                    "inferenceConfig": {"maxTokens": 12}}

    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 12,
            "messages": [{"role": "user", "content": QUESTION}]}
    invoked = json.loads(runtime.invoke_model(modelId=HAIKU, body=json.dumps(body))["body"].read())
    conversed = runtime.converse(modelId="tailor.tiny", system=[{"text": "Be brief."}], **conversation,
                                 requestMetadata={"team": "shop", "stage": "prod"})
    events = list(runtime.converse_stream(modelId="tailor.tiny", **conversation,
                                          requestMetadata={"team": "bank"})["stream"])
    streamed = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    chunks = list(server.openai("alice").chat.completions.create(
        model="tailor.tiny", max_tokens=12, stream=True, metadata={"team": "shop"},
        messages=[{"role": "user", "content": QUESTION}]))
    chatted = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    bob_answer = bob_runtime.converse(modelId="tailor.tiny", **conversation)  # bob has logging off

    folder = server.home / "buckets" / "alice-logs" / "calls" / LOGS
    records = _wait_for(folder, 4)
    assert len(records) == 4
    by_operation = {record["operation"]: record for record in records}
    assert set(by_operation) == {"InvokeModel", "Converse", "ConverseStream", "CreateChatCompletion"}
    for record in records:
        assert record["schemaType"] == "ModelInvocationLog" and record["schemaVersion"] == "1.0"
        assert record["identity"]["arn"].endswith(":user/alice") and record["accountId"] == "000000000000"
        assert record["region"] == "us-east-1" and record["requestId"] and record["timestamp"].endswith("Z")
        assert record["input"]["inputTokenCount"] > 0 and record["output"]["outputTokenCount"] > 0
    # The paths follow Bedrock's layout: .../REGION/YYYY/MM/DD/HH/NAME.json.gz
    for path in folder.rglob("*.json.gz"):
        assert len(path.relative_to(folder).parts) == 5

    invoke = by_operation["InvokeModel"]
    assert invoke["modelId"] == HAIKU and invoke["input"]["inputBodyJson"] == body
    assert invoke["output"]["outputBodyJson"]["content"][0]["text"] == invoked["content"][0]["text"]
    assert invoke["output"]["outputTokenCount"] == invoked["usage"]["output_tokens"]
    converse = by_operation["Converse"]
    assert converse["modelId"] == "tailor.tiny" and converse["requestMetadata"] == {"team": "shop", "stage": "prod"}
    assert (converse["output"]["outputBodyJson"]["output"]["message"]["content"][0]["text"]
            == conversed["output"]["message"]["content"][0]["text"])
    assert converse["input"]["inputTokenCount"] == conversed["usage"]["inputTokens"]
    stream = by_operation["ConverseStream"]
    assert stream["requestMetadata"] == {"team": "bank"}
    assert stream["output"]["outputBodyJson"]["output"]["message"]["content"][0]["text"] == streamed
    chat = by_operation["CreateChatCompletion"]
    assert chat["requestMetadata"] == {"team": "shop"} and chat["input"]["inputBodyJson"]["stream"] is True
    assert chat["output"]["outputBodyJson"]["choices"][0]["message"]["content"] == chatted
    assert chat["requestId"] == chunks[0].id

    # Bob's call was answered and logged nowhere.
    assert bob_answer["output"]["message"]["content"][0]["text"]
    everything = _records(server.home / "buckets")
    assert not [record for record in everything if record["identity"]["arn"].endswith(":user/bob")]

    # Read back: the conversations and the real answers; the filters pick by requestMetadata.
    paths = sorted(folder.rglob("*.json.gz"))
    out = server.home / "training.jsonl"
    selection = training_file(paths, out, use_prompt_response=True, filters={"equals": {"team": "shop"}})
    assert (selection.records, selection.matched, selection.written, selection.skipped) == (4, 2, 2, {})
    trained = [json.loads(line) for line in out.read_text().splitlines()]
    answers = {conversed["output"]["message"]["content"][0]["text"], chatted}
    assert {record["messages"][-1]["content"][0]["text"] for record in trained} == answers
    for record in trained:
        assert record["schemaVersion"] == "bedrock-conversation-2024"
        assert record["messages"][0] == {"role": "user", "content": [{"text": QUESTION}]}
    [from_converse] = [record for record in trained if "system" in record]  # the chat request had none
    assert from_converse["system"] == [{"text": "Be brief."}]
    assert from_converse["messages"][-1]["content"][0]["text"] == conversed["output"]["message"]["content"][0]["text"]
    prompts = training_file(paths, out, use_prompt_response=False,
                            filters={"orAll": [{"equals": {"team": "bank"}}, {"notEquals": {"team": "shop"}}]})
    assert (prompts.matched, prompts.written) == (2, 2)  # the stream (bank) and InvokeModel (no metadata)
    assert all(len(json.loads(line)["messages"]) == 1 for line in out.read_text().splitlines())
    nothing = training_file(paths, out, use_prompt_response=True, filters={"equals": {"team": "nobody"}})
    assert (nothing.matched, nothing.written) == (0, 0) and out.read_text() == ""


def test_text_delivery_off_and_logging_off(server):
    bedrock, runtime = server.client("bedrock", "alice"), server.client("bedrock-runtime", "alice")
    conversation = {"modelId": "tailor.tiny", "messages": [{"role": "user", "content": [{"text": QUESTION}]}],
                    "inferenceConfig": {"maxTokens": 4}}
    bedrock.put_model_invocation_logging_configuration(
        loggingConfig=_config("alice-logs", "metadata-only", textDataDeliveryEnabled=False))
    runtime.converse(**conversation, requestMetadata={"team": "shop"})
    [record] = _wait_for(server.home / "buckets" / "alice-logs" / "metadata-only", 1)
    assert "inputBodyJson" not in record["input"] and "outputBodyJson" not in record["output"]
    assert record["output"]["outputTokenCount"] > 0 and record["requestMetadata"] == {"team": "shop"}

    bedrock.delete_model_invocation_logging_configuration()
    runtime.converse(**conversation)
    time.sleep(FLUSH_SECONDS * 4)
    assert len(_records(server.home / "buckets" / "alice-logs" / "metadata-only")) == 1


def test_a_broken_destination_never_fails_a_call(server):
    bedrock, runtime = server.client("bedrock", "alice"), server.client("bedrock-runtime", "alice")
    bedrock.put_model_invocation_logging_configuration(loggingConfig=_config("alice-logs", "broken"))
    # The folder the files would go to becomes a file: nothing can be written there any more.
    blocked = server.home / "buckets" / "alice-logs" / "broken" / "AWSLogs"
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_text("not a folder")
    conversation = {"modelId": "tailor.tiny", "messages": [{"role": "user", "content": [{"text": QUESTION}]}],
                    "inferenceConfig": {"maxTokens": 4}}
    for _ in range(3):
        assert runtime.converse(**conversation)["output"]["message"]["content"][0]["text"]
    deadline = time.monotonic() + 20
    log = server.home / "server.log"
    while "records not written" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "records not written to s3://alice-logs/broken/AWSLogs/" in log.read_text()
    assert runtime.converse(**conversation)["output"]["message"]["content"][0]["text"]  # still served
    bedrock.delete_model_invocation_logging_configuration()
    assert os.path.isfile(blocked)


def test_the_console_playground_is_logged_as_a_chat_completion(server):
    bedrock = server.client("bedrock", "alice")
    bedrock.put_model_invocation_logging_configuration(loggingConfig=_config("alice-logs", "playground"))
    console = signed_in_client(server.endpoint, *server.keys["alice"])
    try:
        body = {"model": "tailor.tiny", "max_tokens": 4, "metadata": {"page": "playground"},
                "messages": [{"role": "user", "content": QUESTION}]}
        with console.stream("POST", "/console/api/playground/chat", json=body,
                            headers={"X-CSRF-Token": console.csrf}) as answer:
            assert answer.status_code == 200
            chunks = [json.loads(line.removeprefix("data: ")) for line in answer.iter_lines()
                      if line.startswith("data: {")]
    finally:
        console.close()
        bedrock.delete_model_invocation_logging_configuration()
    [record] = _wait_for(server.home / "buckets" / "alice-logs" / "playground", 1)
    streamed = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks if chunk["choices"])
    assert record["operation"] == "CreateChatCompletion" and record["requestMetadata"] == {"page": "playground"}
    assert record["output"]["outputBodyJson"]["choices"][0]["message"]["content"] == streamed


# The writer on its own (no server): what shutdown writes, and what a full queue or a broken
# destination costs -- counted records, never an exception in the caller.


def _writer(tmp_path, **limits):
    from tailor.services import invocation_logging
    from tailor.services.buckets import create_bucket
    from tailor.settings import Settings
    from tailor.store.db import open_store

    settings = Settings(home=tmp_path, **limits)
    store = open_store(settings)
    create_bucket(store, settings, "unit-logs", "alice")
    invocation_logging.put_config(store, settings, "alice", _config("unit-logs", "unit"))
    return invocation_logging, invocation_logging.InvocationLogWriter(store, settings)


def _call(module, principal: str = "alice"):
    return module.Call(principal=principal, operation="InvokeModel", model_id="tailor.tiny",
                       input_body=b'{"prompt": "Hello"}', output_body={"generation": "Hi", "prompt_token_count": 1},
                       input_tokens=1, output_tokens=1)


def test_shutdown_writes_what_is_queued_and_a_full_queue_drops(tmp_path):
    module, writer = _writer(tmp_path, invocation_log_flush_seconds=3600, invocation_log_queue_records=3)
    for _ in range(5):
        writer.log(_call(module))
    writer.log(_call(module, "bob"))  # bob has logging off: not even queued
    assert writer.stats["queued"] == 3 and writer.stats["dropped_queue_full"] == 2
    writer.start()
    writer.close()  # the hour-long interval has not passed: shutdown writes them
    [record, *_] = records = _records(tmp_path / "buckets" / "unit-logs" / "unit")
    assert len(records) == 3 and writer.stats["written"] == 3
    assert record["input"]["inputBodyJson"] == {"prompt": "Hello"}


def test_a_destination_gone_is_counted(tmp_path):
    module, writer = _writer(tmp_path, invocation_log_flush_seconds=3600)
    (tmp_path / "buckets" / "unit-logs" / "unit").mkdir(parents=True, exist_ok=True)
    (tmp_path / "buckets" / "unit-logs" / "unit" / "AWSLogs").write_text("not a folder")
    writer.start()
    writer.log(_call(module))
    writer.close()
    assert writer.stats["written"] == 0 and writer.stats["dropped_write_failed"] == 1
