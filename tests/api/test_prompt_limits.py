"""One tenant's huge prompt costs the others nothing: it is refused by its length in characters,
at once, in each dialect's own error shape, while another principal's request is answered.

Against a real ``tailor serve``; the real numbers are in bench/tenant_isolation.py, so the time
bounds here are generous (before the limit, a 10 MB prompt took ~10 s to refuse and held every
other request for as long).
"""

from __future__ import annotations

import threading
import time

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.slow

HUGE = 10 * 1024 * 1024  # characters; the default max_prompt_characters is 1,000,000
SENTENCE = "Tailor fine-tunes open models on your own machines and serves them. "
QUESTION = [{"role": "user", "content": "What is Tailor?"}]


def openai_client(server, principal: str):
    from openai import OpenAI

    access_key_id, secret = server.keys[principal]
    return OpenAI(base_url=server.endpoint + "/v1", api_key=f"{access_key_id}.{secret}", max_retries=0, timeout=120)


def test_a_10_mb_prompt_is_refused_at_once_while_another_tenant_is_answered(server):
    from openai import BadRequestError

    alice, bob = openai_client(server, "alice"), openai_client(server, "bob")
    bob.chat.completions.create(model="tailor.tiny", max_tokens=8, messages=QUESTION)  # engine up, model loaded
    huge = (SENTENCE * (HUGE // len(SENTENCE) + 1))[:HUGE]

    # Bob asks, one request after another, for as long as alice's attack lasts.
    attacking, bob_latencies, bob_failures = threading.Event(), [], []

    def ask_as_bob():
        while attacking.is_set() or not bob_latencies:
            began = time.perf_counter()
            try:
                reply = bob.chat.completions.create(model="tailor.tiny", max_tokens=8, messages=QUESTION)
                assert reply.choices[0].message.content
            except Exception as error:  # reported by the main thread
                bob_failures.append(error)
                return
            bob_latencies.append(time.perf_counter() - began)

    attacking.set()
    bob_thread = threading.Thread(target=ask_as_bob)
    bob_thread.start()
    try:
        began = time.perf_counter()
        with pytest.raises(BadRequestError) as caught:
            alice.chat.completions.create(model="tailor.tiny", max_tokens=8,
                                          messages=[{"role": "user", "content": huge}])
        openai_seconds = time.perf_counter() - began
        with pytest.raises(BadRequestError) as streamed:
            alice.chat.completions.create(model="tailor.tiny", max_tokens=8, stream=True,
                                          messages=[{"role": "user", "content": huge}])

        runtime = server.client("bedrock-runtime")
        conversation = {"modelId": "tailor.tiny", "messages": [{"role": "user", "content": [{"text": huge}]}],
                        "inferenceConfig": {"maxTokens": 8}}
        began = time.perf_counter()
        with pytest.raises(ClientError) as refused:
            runtime.converse(**conversation)
        converse_seconds = time.perf_counter() - began
        with pytest.raises(ClientError) as counted:
            runtime.count_tokens(modelId="tailor.tiny", input={"converse": {"messages": conversation["messages"]}})
    finally:
        attacking.clear()
        bob_thread.join(timeout=120)

    # The OpenAI error shape, naming the limit.
    error = caught.value.response.json()["error"]
    assert caught.value.status_code == 400 and error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_value" and set(error) == {"message", "type", "param", "code"}
    assert "10,485,760 characters" in error["message"] and "limit of 1,000,000 characters" in error["message"]
    assert streamed.value.status_code == 400
    # bedrock-runtime's: a ValidationException, the same message.
    for failure in (refused.value, counted.value):
        assert failure.response["Error"]["Code"] == "ValidationException"
        assert failure.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert "limit of 1,000,000 characters" in failure.response["Error"]["Message"]
    # At once (measured: well under 0.1 s each), not after tokenizing 10 MB (~10 s).
    assert openai_seconds < 3 and converse_seconds < 3, (openai_seconds, converse_seconds)
    # And bob was answered all along, never held for the seconds a 10 MB tokenization takes.
    assert not bob_failures, bob_failures
    assert bob_latencies and max(bob_latencies) < 3, bob_latencies

    # A long prompt under the limit (1,360 characters, ~500 tokens: inside the 1024-token window)
    # still reaches the model.
    reply = alice.chat.completions.create(model="tailor.tiny", max_tokens=8,
                                          messages=[{"role": "user", "content": SENTENCE * 20}])
    assert reply.usage.prompt_tokens > 300 and reply.choices[0].finish_reason in ("stop", "length")
