"""One contract for every serving backend: the same assertions against Tailor's engine
(``EngineClient``), against ``VllmClient`` talking to a protocol fixture that speaks vLLM's HTTP
subset (tests/serve/vllm_standin.py: runs everywhere, answers from the real tiny model), and
against ``VllmClient`` driving a real vLLM server it starts itself from ``.venv-vllm`` (skipped,
saying why, where that environment is absent — CI installs no vLLM).

Answers are compared with what Tailor's engine answers in this process (greedy decoding, so the
same weights give the same text), adapters with each other (two adapters taught different codes).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import httpx
import pytest

from tailor.errors import InvalidInput, ModelFailed, ModelTimeout
from tailor.serve.engine import Engine
from tailor.serve.protocol import (
    ChatRequest,
    Completion,
    Message,
    Sampling,
    Target,
    TextDelta,
)
from tailor.serve.vllm_backend import (
    PROJECT_VENV,
    VllmClient,
    adapter_name,
    error_for,
    stop_reason,
)
from tailor.settings import Settings
from tests.serve.vllm_standin import StandIn

pytestmark = pytest.mark.slow  # the session's trained adapters (tests/conftest.py)

QUESTION = "What is a list?"
BASE = "tailor.tiny"


def chat(question: str, **sampling) -> ChatRequest:
    return ChatRequest((Message("user", question),), Sampling(**{"max_tokens": 48, **sampling}))


def engine_answer(engine: Engine, target: Target, request: ChatRequest) -> Completion:
    done = asyncio.Queue()
    loop = asyncio.new_event_loop()
    try:
        engine.submit(target, request, lambda event: None if isinstance(event, TextDelta)
                      else loop.call_soon_threadsafe(done.put_nowait, event))
        return loop.run_until_complete(asyncio.wait_for(done.get(), 120))
    finally:
        loop.close()


@pytest.fixture(scope="module")
def engine(trained):
    running = Engine(Settings(home=trained.home))
    yield running
    running.close()


@pytest.fixture(scope="module")
def reference(engine, trained):
    """What Tailor's engine answers, in this process: the contract's expected texts."""
    adapters = {name: str(getattr(trained, name) / "model") for name in ("lora_a", "lora_b")}
    return {
        "base": engine_answer(engine, Target(BASE), chat(QUESTION)),
        **{name: engine_answer(engine, Target(BASE, path), chat("Code 3?", max_tokens=12)).text
           for name, path in adapters.items()},
        "adapters": adapters,
    }


@pytest.fixture(scope="module", params=["engine", "vllm-standin", "vllm"])
def client(request, trained, engine):
    """A serving client: Tailor's engine, or VllmClient on the stand-in or on real vLLM."""
    settings = Settings(home=trained.home, vllm_max_adapters=1,
                        vllm_extra_args=["--dtype", "float32", "--max-model-len", "1024"])
    if request.param == "engine":
        from tailor.serve.client import EngineClient

        made = EngineClient(settings)
        yield made
        made.close()
    elif request.param == "vllm-standin":
        with StandIn(engine, BASE) as standin:
            made = VllmClient(settings, servers={BASE: standin.url})
            yield made
            made.close()
    else:
        if not PROJECT_VENV.exists():
            pytest.skip(f"no vLLM environment at {PROJECT_VENV} (see docs/serving.md, 'vLLM backend')")
        made = VllmClient(settings)
        yield made
        made.close()


def run(coroutine):
    return asyncio.run(coroutine)


async def streamed(client, target: Target, request: ChatRequest, **options) -> tuple[list[str], Completion]:
    deltas, final = [], None
    async for event in client.stream(target, request, **options):
        if isinstance(event, TextDelta):
            deltas.append(event.text)
        else:
            final = event
    return deltas, final


def test_the_serving_contract(client, reference):
    expected: Completion = reference["base"]

    async def scenario():
        # Greedy answers are the engine's, streamed in pieces that add up to the final text, with
        # the prompt's tokens as count_tokens counts them.
        deltas, final = await streamed(client, Target(BASE), chat(QUESTION))
        assert final.text == expected.text and final.stop_reason == expected.stop_reason
        assert "".join(deltas) == final.text and len(deltas) > 1
        assert final.input_tokens == expected.input_tokens == await client.count_tokens(Target(BASE), chat(QUESTION))
        assert final.output_tokens == expected.output_tokens and final.latency_ms >= final.first_token_ms > 0

        # Two adapters, asked together, each answer as it does in the engine (and differently).
        a, b = (Target(BASE, reference["adapters"][name]) for name in ("lora_a", "lora_b"))
        answers = await asyncio.gather(*(client.complete(t, chat("Code 3?", max_tokens=12)) for t in (a, b, a)))
        assert [x.text for x in answers] == [reference["lora_a"], reference["lora_b"], reference["lora_a"]]
        assert reference["lora_a"] != reference["lora_b"]

        # A stop sequence ends the answer and is never streamed, even in part.
        stop = expected.text[10:14]
        deltas, final = await streamed(client, Target(BASE), chat(QUESTION, stop=("zzzz", stop)))
        assert final.stop_reason == "stop_sequence" and final.stop_sequence == stop
        assert final.text == expected.text[: expected.text.index(stop)] == "".join(deltas)

        final = await client.complete(Target(BASE), chat(QUESTION, max_tokens=3))
        assert final.stop_reason == "max_tokens" and final.output_tokens == 3

        # The caller's mistakes are InvalidInput naming the limit; a broken adapter and a request
        # past its time limit are the model's failures.
        with pytest.raises(InvalidInput, match="1024"):
            await client.complete(Target(BASE), chat("word " * 1200, max_tokens=10))
        with pytest.raises(InvalidInput, match="TAILOR_MAX_PROMPT_CHARACTERS"):
            await client.complete(Target(BASE), chat("x" * (client.settings.max_prompt_characters + 1)))
        with pytest.raises(ModelFailed):
            await client.complete(Target(BASE, "/nonexistent/adapter"), chat("Code 3?", max_tokens=4))
        with pytest.raises(ModelTimeout):
            await client.complete(Target(BASE), chat("Tell me a story.", max_tokens=1000, temperature=1.0,
                                                     seed=3), timeout_s=0.05)

        if isinstance(client, VllmClient):
            # Room for one adapter: a, b, a one after another register b and a again and unregister
            # each time; vLLM itself lists what stays registered (/v1/models).
            before = await client.stats()
            for target in (a, b, a):
                await client.complete(target, chat("Code 3?", max_tokens=4))
            after = await client.stats()
            assert after["adapter_loads"] - before["adapter_loads"] == 2
            assert after["adapter_unloads"] - before["adapter_unloads"] >= 2
            async with httpx.AsyncClient() as http:
                url = after["servers"][BASE]["url"]
                listed = [m["id"] for m in (await http.get(f"{url}/v1/models")).json()["data"]]
            assert listed == ["base", adapter_name(reference["adapters"]["lora_a"])]

    run(scenario())


def test_vllm_answers_map_to_tailor_terms():
    assert stop_reason("length", None, ("x",)) == ("max_tokens", None)
    assert stop_reason("stop", "x", ("x",)) == ("stop_sequence", "x")
    assert stop_reason("stop", 1, ("x",)) == ("end_turn", None)  # a stop token (the model's end of turn)
    error = error_for(400, b'{"error": {"message": "max context length is 1024", "code": 400}}')
    assert isinstance(error, InvalidInput) and error.message == "max context length is 1024"
    assert isinstance(error_for(500, b"<html>oops</html>"), ModelFailed)


def test_a_vllm_server_that_cannot_start_fails_with_its_reason(tmp_path, tiny_models_dir):
    # An interpreter without vLLM (this one): the server exits at once and the caller reads why.
    from tailor.tiny import tiny_model_dir

    settings = Settings(home=tmp_path, vllm_python=sys.executable, vllm_start_timeout_seconds=60)
    client = VllmClient(settings)
    started = time.monotonic()
    with pytest.raises(ModelFailed, match="exited while starting.*No module named 'vllm'"):
        run(client.load(Target(str(tiny_model_dir(tiny_models_dir)))))
    client.close()
    assert time.monotonic() - started < 30


def test_the_api_routes_answer_through_vllm(engine, reference, tmp_path, tiny_models_dir):
    # `tailor serve` with TAILOR_SERVING_BACKEND=vllm, attached to the stand-in (TAILOR_VLLM_SERVERS):
    # Bedrock Converse, ConverseStream, CountTokens and OpenAI streaming answer what the engine does.
    from tests.api.conftest import ALIASES, HAIKU, running_server
    from tests.conftest import tiny_home

    expected = reference["base"]
    messages = [{"role": "user", "content": [{"text": QUESTION}]}]
    with StandIn(engine, BASE) as standin:
        env = {"TAILOR_SERVING_BACKEND": "vllm", "TAILOR_VLLM_SERVERS": json.dumps({HAIKU: standin.url})}
        with running_server(tiny_home(tmp_path / "home", tiny_models_dir), ALIASES, env=env) as server:
            runtime = server.client("bedrock-runtime")
            answer = runtime.converse(modelId=HAIKU, messages=messages,
                                      inferenceConfig={"maxTokens": 48, "temperature": 0})
            assert answer["output"]["message"]["content"][0]["text"] == expected.text
            assert answer["usage"]["inputTokens"] == expected.input_tokens
            stream = runtime.converse_stream(modelId=HAIKU, messages=messages,
                                             inferenceConfig={"maxTokens": 48, "temperature": 0})
            pieces = [e["contentBlockDelta"]["delta"]["text"] for e in stream["stream"] if "contentBlockDelta" in e]
            assert "".join(pieces) == expected.text and len(pieces) > 1
            counted = runtime.count_tokens(modelId=HAIKU, input={"converse": {"messages": messages}})
            assert counted["inputTokens"] == expected.input_tokens
            chunks = server.openai().chat.completions.create(
                model=HAIKU, messages=[{"role": "user", "content": QUESTION}], max_tokens=48, temperature=0,
                stream=True)
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected.text
            with pytest.raises(runtime.exceptions.ValidationException, match="1024"):
                runtime.converse(modelId=HAIKU, messages=[{"role": "user", "content": [{"text": "word " * 1200}]}],
                                 inferenceConfig={"maxTokens": 10})
        # Answered by the vLLM protocol, not by an engine process of the server's own.
        assert [call for call in standin.app.state.calls if call[0] == "chat"] == [("chat", "base")] * 4
