"""Where an evaluation's answers (and a judge's ratings) come from.

A *model spec* names one of these kinds of model; the models under evaluation and the judge take
the same specs:

- ``MODEL`` — a model Tailor runs itself: a foundation model id or alias, a custom model (ARN or
  name; it need not be deployed), a deployment (ARN or name), or (the CLI only) a training output
  folder. It is loaded into an engine inside the evaluating process (continuous batching, shared
  LoRA bases), so an evaluation never competes with live traffic on the server's engine.
- ``NAME`` of an entry in the operator's ``remote_models`` setting: a model on another service,
  with the address and credentials the operator configured there.
- On the command line only (``Opener(allow_urls=True)``), addresses chosen by the user who runs
  it: ``openai:MODEL@URL`` — any OpenAI-compatible chat-completions API, e.g.
  ``openai:gpt-4o@https://api.openai.com/v1``, the key from ``OPENAI_API_KEY``; and
  ``bedrock:MODEL`` or ``bedrock:MODEL@ENDPOINT_URL`` — Amazon Bedrock's Converse API through
  boto3 with the standard AWS credential chain (an endpoint URL points it elsewhere, e.g. at
  another Tailor server). A server never opens these for an API caller: it would send the
  caller's prompts, with the operator's credentials, wherever the caller said.

A precomputed inference source (``Recorded``) replays the answers the dataset carries.

Every backend answers a batch of conversations with one reply each: the text, or a ``Failure``
saying why there is none. A failed request never raises: one bad question must not sink the rest.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from tailor import http_client
from tailor.errors import InvalidInput
from tailor.serve.protocol import Target
from tailor.settings import RemoteModel

HTTP_CONCURRENCY = 4  # requests in flight to a remote API


@dataclass(frozen=True)
class Failure:
    message: str


Reply = str | Failure
OnReply = Callable[[], None]  # called once per finished request (for progress)


@dataclass(frozen=True)
class Generation:
    """How models answer: greedy by default, so an evaluation is repeatable."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    system: str | None = None  # a system prompt put before every question


class Backend(Protocol):
    label: str  # how reports name the model

    def chat(self, conversations: list[list[dict]], generation: Generation,
             on_reply: OnReply | None = None) -> list[Reply]: ...


@dataclass(frozen=True)
class Recorded:
    """A precomputed inference source: its answers were given with the dataset (``modelResponses``),
    so ``chat`` replays them, one per conversation in order, and asks nothing."""

    label: str
    answers: tuple[str, ...]

    def chat(self, conversations: list[list[dict]], generation: Generation,
             on_reply: OnReply | None = None) -> list[Reply]:
        if len(conversations) != len(self.answers):
            raise ValueError(f"{self.label}: {len(self.answers)} recorded answers for {len(conversations)} prompts")
        for _ in conversations:
            if on_reply:
                on_reply()
        return list(self.answers)


def with_system(conversation: list[dict], generation: Generation) -> list[dict]:
    if generation.system and not (conversation and conversation[0]["role"] == "system"):
        return [{"role": "system", "content": generation.system}, *conversation]
    return conversation


# ---------------------------------------------------------------------------------------------
# Specs


@dataclass(frozen=True)
class Spec:
    kind: str  # tailor | openai | bedrock
    model: str
    url: str | None = None


def parse_spec(text: str) -> Spec:
    kind, colon, rest = text.partition(":")
    if colon and kind in ("openai", "bedrock"):
        model, _, url = rest.partition("@")
        if not model:
            raise InvalidInput(f"Model spec {text!r}: the model name is missing ({kind}:MODEL[@URL]).")
        if kind == "openai" and not url:
            raise InvalidInput(f"Model spec {text!r}: an OpenAI-compatible model needs its URL (openai:MODEL@URL).")
        return Spec(kind, model, url or None)
    return Spec("tailor", text)


# ---------------------------------------------------------------------------------------------
# Tailor's own engine, in this process


@dataclass
class EngineModel:
    label: str
    target: Target
    engine: object  # tailor.serve.engine.Engine (imported lazily: it pulls in torch)
    timeout_s: float | None = None

    def chat(self, conversations, generation, on_reply=None, *, completions: list | None = None, seed: int = 0):
        """The replies; ``completions``, when given, receives each finished ``serve.protocol.Completion``
        (token counts, stop reason) at its conversation's position, for callers that report usage."""
        from tailor.serve.engine import EngineError
        from tailor.serve.protocol import ChatRequest, Completion, Message, Sampling

        sampling = Sampling(max_tokens=generation.max_tokens, temperature=generation.temperature,
                            top_p=generation.top_p, stop=generation.stop, seed=seed)
        if completions is not None:
            completions[:] = [None] * len(conversations)
        replies: list[Reply | None] = [None] * len(conversations)
        remaining = threading.Semaphore(0)

        def collector(index: int):
            def emit(event) -> None:
                if isinstance(event, Completion):
                    replies[index] = event.text
                    if completions is not None:
                        completions[index] = event
                elif isinstance(event, EngineError):
                    replies[index] = Failure(f"{event.code}: {event.message}")
                else:
                    return
                if on_reply:
                    on_reply()
                remaining.release()
            return emit

        for index, conversation in enumerate(conversations):
            messages = tuple(Message(m["role"], m["content"]) for m in with_system(conversation, generation))
            self.engine.submit(self.target, ChatRequest(messages, sampling), collector(index),
                               timeout_s=self.timeout_s)
        for _ in conversations:
            remaining.acquire()
        return replies


# ---------------------------------------------------------------------------------------------
# Remote APIs


@dataclass
class OpenAIModel:
    label: str
    model: str
    url: str
    api_key: str | None = field(default_factory=lambda: os.environ.get("OPENAI_API_KEY"))
    timeout_s: float = 120.0

    def chat(self, conversations, generation, on_reply=None):
        # One client for the batch: its threads share pooled connections to the one address.
        with http_client.client(self.timeout_s) as http:
            return _in_threads(lambda c: self._one(http, with_system(c, generation), generation), conversations,
                               on_reply)

    def _one(self, http: httpx.Client, messages: list[dict], generation: Generation) -> Reply:
        body = {"model": self.model, "messages": messages, "max_tokens": generation.max_tokens,
                "temperature": generation.temperature, "top_p": generation.top_p}
        if generation.stop:
            body["stop"] = list(generation.stop)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        endpoint = self.url.rstrip("/") + "/chat/completions"
        try:
            # Connection failures and 502/503/504 are tried again (tailor.http_client says when).
            response = http_client.post_json(http, endpoint, body, headers=headers)
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            return Failure(f"{endpoint}: {type(error).__name__}: {error}")
        if not response.is_success:
            return Failure(f"{endpoint} answered HTTP {response.status_code}: {response.text[:300]}")
        try:
            return response.json()["choices"][0]["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError) as error:
            return Failure(f"{endpoint}: {type(error).__name__}: {error}")


@dataclass
class BedrockModel:
    label: str
    model: str
    endpoint_url: str | None = None
    timeout_s: float = 120.0
    region: str | None = None
    credentials: dict[str, str] = field(default_factory=dict)  # aws_access_key_id, aws_secret_access_key
    _client: object = None

    def chat(self, conversations, generation, on_reply=None):
        import boto3
        from botocore.config import Config

        self._client = self._client or boto3.client(
            "bedrock-runtime", endpoint_url=self.endpoint_url, region_name=self.region, **self.credentials,
            config=Config(read_timeout=self.timeout_s, retries={"max_attempts": 3, "mode": "standard"}))
        return _in_threads(lambda c: self._one(with_system(c, generation), generation), conversations, on_reply)

    def _one(self, messages: list[dict], generation: Generation) -> Reply:
        from botocore.exceptions import BotoCoreError, ClientError

        system = [{"text": m["content"]} for m in messages if m["role"] == "system"]
        turns = [{"role": m["role"], "content": [{"text": m["content"]}]} for m in messages if m["role"] != "system"]
        config = {"maxTokens": generation.max_tokens, "temperature": generation.temperature,
                  "topP": generation.top_p}
        if generation.stop:
            config["stopSequences"] = list(generation.stop)
        try:
            answer = self._client.converse(modelId=self.model, messages=turns, inferenceConfig=config,
                                           **({"system": system} if system else {}))
            return "".join(block.get("text", "") for block in answer["output"]["message"]["content"])
        except ClientError as error:
            info = error.response.get("Error", {})
            return Failure(f"Bedrock {self.model}: {info.get('Code')}: {info.get('Message')}")
        except BotoCoreError as error:
            return Failure(f"Bedrock {self.model}: {error}")


def _in_threads(one: Callable[[list[dict]], Reply], conversations: list[list[dict]],
                on_reply: OnReply | None) -> list[Reply]:
    def run(conversation):
        reply = one(conversation)
        if on_reply:
            on_reply()
        return reply

    with ThreadPoolExecutor(HTTP_CONCURRENCY, thread_name_prefix="tailor-eval-http") as pool:
        return list(pool.map(run, conversations))


# ---------------------------------------------------------------------------------------------


def remote_backend(name: str, remote: RemoteModel, timeout_s: float) -> Backend:
    """A backend for an operator's ``remote_models`` entry, with the credentials configured there."""
    if remote.api == "openai":
        key = remote.api_key.get_secret_value() if remote.api_key else None
        return OpenAIModel(name, remote.model, remote.url, api_key=key, timeout_s=timeout_s)
    credentials = {}
    if remote.aws_access_key_id and remote.aws_secret_access_key:
        credentials = {"aws_access_key_id": remote.aws_access_key_id,
                       "aws_secret_access_key": remote.aws_secret_access_key.get_secret_value()}
    return BedrockModel(name, remote.model, remote.url, timeout_s=timeout_s, region=remote.region,
                        credentials=credentials)


class Opener:
    """Opens model specs as backends. Tailor's own models share one engine in this process, started
    when the first of them is opened (``max_models`` bases kept loaded); ``close`` stops it.

    ``allow_urls`` lets specs name an address (``openai:MODEL@URL``, ``bedrock:MODEL@URL``): for the
    command line, where the user chooses where their own prompts go; never for API callers.
    """

    def __init__(self, settings, resolve_target: Callable[[str], Target] | None = None, *, max_models: int = 2,
                 allow_urls: bool = False):
        self.settings, self.resolve_target, self.max_models = settings, resolve_target, max_models
        self.allow_urls = allow_urls
        self._engine = None

    def open(self, spec_text: str) -> Backend:
        timeout = self.settings.inference_timeout_seconds
        if spec_text in self.settings.remote_models:
            return remote_backend(spec_text, self.settings.remote_models[spec_text], timeout)
        spec = parse_spec(spec_text) if self.allow_urls else Spec("tailor", spec_text)
        if spec.kind == "openai":
            return OpenAIModel(spec_text, spec.model, spec.url, timeout_s=timeout)
        if spec.kind == "bedrock":
            return BedrockModel(spec_text, spec.model, spec.url, timeout_s=timeout)
        if self.resolve_target is None:  # only models resolved already (open_model) can be opened
            raise InvalidInput(f"Model {spec_text!r} cannot be looked up here.")
        return self._engine_model(spec_text, self.resolve_target(spec.model))

    def open_model(self, model) -> Backend:
        """Open a model an evaluation job resolved when it was created (``evaluate.spec.ModelToRun``):
        weights this process runs, or an operator-configured remote model by name."""
        if model.remote is not None:
            if model.remote not in self.settings.remote_models:
                raise InvalidInput(f"The remote model {model.remote} is no longer configured on this server "
                                   "(remote_models).")
            return remote_backend(model.identifier, self.settings.remote_models[model.remote],
                                  self.settings.inference_timeout_seconds)
        return self._engine_model(model.identifier, model.target)

    def _engine_model(self, label: str, target: Target) -> Backend:
        if self._engine is None:
            from tailor.serve.engine import Engine

            self._engine = Engine(self.settings, max_models=self.max_models)
        return EngineModel(label, target, self._engine)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def __enter__(self) -> Opener:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
