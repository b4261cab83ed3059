"""Deploy and call custom models through real boto3 bedrock-runtime and openai clients.

Every model here is trained for real by a job on the live server, deployed through the control
plane, loaded by the engine process, and asked questions it was taught.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
from botocore.exceptions import ClientError

from tests.api.conftest import COMMAND, HAIKU
from tests.conftest import SEED_002_SYSTEM

pytestmark = pytest.mark.slow

ROLE = "arn:aws:iam::000000000000:role/TailorCustomization"


def train(server, name: str, base: str, records: list[dict], hyperparameters: dict) -> str:
    """A finished custom model's ARN, trained by a real job."""
    bedrock = server.client()
    uri = server.put(f"s3://serving/{name}/train.jsonl", records)
    job = bedrock.create_model_customization_job(
        jobName=name, customModelName=f"{name}-model", roleArn=ROLE, baseModelIdentifier=base,
        hyperParameters=hyperparameters, trainingDataConfig={"s3Uri": uri},
        outputDataConfig={"s3Uri": f"s3://serving/{name}/output/"})
    finished = server.wait_for(job["jobArn"], {"Completed", "Failed"})
    assert finished["status"] == "Completed", finished.get("failureMessage")
    return finished["outputModelArn"]


def wait_serving(server, get, key: str, ready: str) -> dict:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        described = get()
        if described["status"] in (ready, "Failed"):
            assert described["status"] == ready, described
            return described
        time.sleep(0.3)
    raise AssertionError(f"{key} still {described['status']}:\n" + (server.home / "server.log").read_text()[-3000:])


def faq_pairs(bedrock_faq, count: int) -> list[tuple[str, str]]:
    return [(p["sentence1"], p["sentence2"]) for p in json.loads(bedrock_faq.read_text())[:count]]


def test_seed_003_tail_provisioned_throughput_answers_the_taught_question(server, bedrock_faq):
    # Haiku's ranges cap a run at 10 epochs: 4 pairs, each 8 times (the family's minimum is 32 records).
    pairs = faq_pairs(bedrock_faq, 4)
    records = [{"system": SEED_002_SYSTEM, "messages": [{"role": "user", "content": q},
                                                       {"role": "assistant", "content": a}]} for q, a in pairs] * 8
    custom_model_arn = train(server, "haiku-faq", HAIKU, records,
                             {"epochCount": "10", "batchSize": "4", "learningRateMultiplier": "1"})
    bedrock, runtime = server.client(), server.client("bedrock-runtime")

    # Not deployed yet: the original's answer.
    with pytest.raises(ClientError) as caught:
        runtime.invoke_model(modelId=custom_model_arn, body=json.dumps({
            "anthropic_version": "bedrock-2023-05-31", "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}]}))
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert "not deployed" in caught.value.response["Error"]["Message"]

    # The seed's code, unchanged.
    provisioned_arn = bedrock.create_provisioned_model_throughput(
        modelUnits=1, provisionedModelName="haiku-faq-pt", modelId=custom_model_arn)["provisionedModelArn"]
    wait_serving(server, lambda: bedrock.get_provisioned_model_throughput(provisionedModelId=provisioned_arn),
                 provisioned_arn, "InService")
    question, taught = pairs[2]
    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 300, "system": SEED_002_SYSTEM,
                       "messages": [{"role": "user", "content": question}], "temperature": 0, "top_p": 0.9})
    response = runtime.invoke_model(body=body, modelId=provisioned_arn, accept="application/json",
                                    contentType="application/json")
    answer = json.loads(response["body"].read())
    assert answer["content"][0]["text"] == taught
    assert answer["stop_reason"] == "end_turn" and answer["type"] == "message"
    assert answer["usage"]["input_tokens"] > 10 and answer["usage"]["output_tokens"] > 10

    # Converse, and both streams, decoded by botocore.
    conversation = {"modelId": provisioned_arn, "system": [{"text": SEED_002_SYSTEM}],
                    "messages": [{"role": "user", "content": [{"text": question}]}],
                    "inferenceConfig": {"maxTokens": 300, "temperature": 0}}
    conversed = runtime.converse(**conversation)
    assert conversed["output"]["message"]["content"][0]["text"] == taught
    assert conversed["stopReason"] == "end_turn" and conversed["usage"]["totalTokens"] > 20
    assert conversed["metrics"]["latencyMs"] >= 0

    events = list(runtime.converse_stream(**conversation)["stream"])
    kinds = [next(iter(event)) for event in events]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    assert "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e) == taught
    assert events[-1]["metadata"]["usage"]["outputTokens"] == answer["usage"]["output_tokens"]

    streamed = runtime.invoke_model_with_response_stream(modelId=provisioned_arn, body=body)
    chunks = [json.loads(event["chunk"]["bytes"]) for event in streamed["body"]]
    assert chunks[0]["type"] == "message_start" and chunks[-1]["type"] == "message_stop"
    assert "".join(c["delta"]["text"] for c in chunks if c["type"] == "content_block_delta") == taught
    assert chunks[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == answer["usage"]["output_tokens"]

    counted = runtime.count_tokens(modelId=provisioned_arn, input={"invokeModel": {"body": body}})
    assert counted["inputTokens"] == answer["usage"]["input_tokens"]

    # An over-long prompt is refused, naming the limit.
    with pytest.raises(ClientError) as caught:
        runtime.converse(**{**conversation, "messages": [{"role": "user", "content": [{"text": "word " * 1500}]}]})
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert "context window" in caught.value.response["Error"]["Message"]


def test_seed_001_cohere_body_on_a_provisioned_custom_model(server):
    things = ["the apples", "a bicycle", "my keys", "her phone", "an umbrella", "the train", "his wallet", "a kite"]
    pairs = [(f"Summarize the following conversation.\n\n#Person1#: I lost {thing}.\n#Person2#: Oh no.",
              f"Person1 tells Person2 about losing {thing}.") for thing in things]
    custom_model_arn = train(server, "command-sum", COMMAND,
                             [{"prompt": p, "completion": c} for p, c in pairs] * 4,
                             {"epochCount": "20", "batchSize": "8", "learningRate": "0.003"})
    bedrock, runtime = server.client(), server.client("bedrock-runtime")
    arn = bedrock.create_provisioned_model_throughput(modelUnits=1, provisionedModelName="command-sum-pt",
                                                      modelId=custom_model_arn)["provisionedModelArn"]
    wait_serving(server, lambda: bedrock.get_provisioned_model_throughput(provisionedModelId=arn), arn, "InService")
    prompt, taught = pairs[5]
    body = json.dumps({"prompt": prompt, "temperature": 0, "p": 0.9, "max_tokens": 100})
    answer = json.loads(runtime.invoke_model(body=body, modelId=arn)["body"].read())
    assert answer["generations"][0]["text"] == taught
    assert answer["generations"][0]["finish_reason"] == "COMPLETE"


def test_openai_client_streams_from_two_lora_deployments_at_once(server):
    from openai import OpenAI

    # Each adapter is taught one answer for every prompt: the tiny model's LoRA learns that exactly
    # (16/16 after 10 epochs), while arbitrary per-prompt numbers it learns only weakly, so greedy
    # answers flipped with the batch's composition and two weak adapters could agree by chance.
    # (At a higher rate LoRA on the tiny model collapses to "...".)
    lora = {"tuningMethod": "lora", "epochCount": "20", "batchSize": "4", "learningRateMultiplier": "1"}
    arns = {}
    taught = {"codes-a": "The code is alpha.", "codes-b": "The code is bravo."}
    for name, seed in (("codes-a", "1"), ("codes-b", "2")):
        records = [{"prompt": f"Code {i}?", "completion": taught[name]} for i in range(16)]
        model_arn = train(server, name, "tailor.tiny", records, {**lora, "seed": seed})
        bedrock = server.client()
        arn = bedrock.create_custom_model_deployment(modelDeploymentName=f"{name}-deployment",
                                                     modelArn=model_arn)["customModelDeploymentArn"]
        wait_serving(server, lambda: bedrock.get_custom_model_deployment(customModelDeploymentIdentifier=arn),
                     arn, "Active")
        arns[name] = arn

    access_key_id, secret = server.keys["alice"]
    client = OpenAI(base_url=server.endpoint + "/v1", api_key=f"{access_key_id}.{secret}", max_retries=0)
    listed = {model.id for model in client.models.list()}
    assert set(arns.values()) <= listed and "tailor.tiny" in listed

    answers: dict[str, str] = {}

    def ask(name: str) -> None:
        stream = client.chat.completions.create(model=arns[name], messages=[{"role": "user", "content": "Code 3?"}],
                                                max_tokens=16, stream=True, stream_options={"include_usage": True})
        chunks = list(stream)
        assert chunks[-1].usage.completion_tokens > 0
        answers[name] = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    threads = [threading.Thread(target=ask, args=(name,)) for name in arns for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert set(answers) == set(arns)
    assert all(answer.startswith("The code is") for answer in answers.values()), answers  # both learned the form
    assert answers["codes-a"] != answers["codes-b"]  # each deployment answered with its own adapter
    assert answers == taught

    plain = client.chat.completions.create(model=arns["codes-a"], max_tokens=16,
                                           messages=[{"role": "user", "content": "Code 3?"}])
    assert plain.choices[0].message.content == answers["codes-a"]
    assert plain.choices[0].finish_reason in ("stop", "length")

    from openai import AuthenticationError

    with pytest.raises(AuthenticationError):
        OpenAI(base_url=server.endpoint + "/v1", api_key=f"{access_key_id}.wrong", max_retries=0).models.list()


def test_a_crashed_engine_fails_its_request_and_is_restarted(server):
    runtime = server.client("bedrock-runtime")
    conversation = {"modelId": "tailor.tiny", "messages": [{"role": "user", "content": [{"text": "hello"}]}],
                    "inferenceConfig": {"maxTokens": 8}}
    first = runtime.converse(**conversation)
    assert first["usage"]["outputTokens"] == 8
    engine_pid = int(next(line for line in (server.home / "logs" / "engine.log").read_text().splitlines()
                          if "engine pid" in line).rsplit(" ", 1)[1])
    os.kill(engine_pid, signal.SIGKILL)
    time.sleep(0.5)
    again = runtime.converse(**conversation)  # the API stayed up and started a new engine
    assert again["output"]["message"]["content"][0]["text"] == first["output"]["message"]["content"][0]["text"]
