"""InvokeModel bodies <-> Tailor's protocol: the one table from body dialect to its module.

A model's family names the InvokeModel body it takes (``Family.invoke_body``); ``BODIES`` maps
that name to the module of ``tailor.wire.bodies`` that reads and writes it.
``parse_invoke_body`` turns a raw body into a ``ChatRequest``; ``invoke_response`` and
``NativeStream`` turn the engine's answer back into the native response body and the native
stream events (each sent as one ``chunk`` by ``tailor.api.bedrock.eventstream``), the last of
which always carries ``amazon-bedrock-invocationMetrics``. Pure: no I/O, no services.

Bodies are read strictly (``tailor.wire.request_json``: UTF-8, finite numbers, no lone
surrogates, bounded nesting), then validated by the dialect's model; every problem is one line
of one ``InvalidFields``, named as the wire JSON names it (``messages[1].role``,
``textGenerationConfig.maxTokenCount``), so that nothing a client sends fails in the engine
instead of here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from tailor.serve.protocol import ChatRequest, Completion
from tailor.wire.bodies import (
    Invocation,
    anthropic,
    cohere,
    llama,
    openai_chat,
    titan,
)
from tailor.wire.request_json import json_object

METRICS_KEY = "amazon-bedrock-invocationMetrics"


class NativeEvents(Protocol):
    def start(self, input_tokens: int) -> list[dict]: ...
    def delta(self, text: str) -> list[dict]: ...
    def finish(self, completion: Completion) -> list[dict]: ...


class BodyDialect(Protocol):
    """What each module of ``tailor.wire.bodies`` defines."""

    def request(self, data: Any, *, default_max_tokens: int) -> ChatRequest: ...
    def response(self, completion: Completion, invocation: Invocation) -> dict: ...
    @property
    def Stream(self) -> Callable[[Invocation], NativeEvents]: ...  # the module's class


BODIES: dict[str, BodyDialect] = {
    "anthropic": anthropic,
    "cohere": cohere,
    "titan": titan,
    "llama": llama,
    "openai": openai_chat,
}


def _dialect(kind: str) -> BodyDialect:
    try:
        return BODIES[kind]
    except KeyError:
        raise ValueError(f"unknown body kind {kind!r}; expected one of {', '.join(BODIES)}") from None


def parse_invoke_body(kind: str, body: bytes | str, *, default_max_tokens: int) -> ChatRequest:
    """The ``ChatRequest`` of a raw InvokeModel body of the given kind.

    Raises ``InvalidFields`` naming every problem: not JSON (with line and column), not an object,
    a missing or wrong field, an unknown key, a feature Tailor does not have. ``default_max_tokens``
    is the length of an answer whose body sets none and whose dialect has no default of its own.
    """
    dialect = _dialect(kind)
    return dialect.request(json_object(body), default_max_tokens=default_max_tokens)


def invocation_metrics(completion: Completion) -> dict[str, int]:
    """The ``amazon-bedrock-invocationMetrics`` object the last native stream chunk carries."""
    return {"inputTokenCount": completion.input_tokens, "outputTokenCount": completion.output_tokens,
            "invocationLatency": completion.latency_ms, "firstByteLatency": completion.first_token_ms}


def invoke_response(kind: str, completion: Completion, *, model_id: str, request_id: str,
                    request_body: bytes | str | None = None, created: int | None = None) -> dict:
    """The native InvokeModel response body for ``completion``.

    ``request_body`` is the raw request body, whose prompt Cohere responses echo; ``created``
    (epoch seconds, default now) stamps OpenAI ones.
    """
    return _dialect(kind).response(completion, Invocation(model_id, request_id, request_body, created))


class NativeStream:
    """The native stream events of one InvokeModelWithResponseStream answer, in order.

    ``start()`` before the first text, ``delta(text)`` for each piece, ``finish(completion)`` at the
    end; each returns the JSON objects to send, one ``chunk`` event each (the dialect's module says
    which). Empty pieces send nothing; the last object carries ``amazon-bedrock-invocationMetrics``.
    """

    def __init__(self, kind: str, *, model_id: str, request_id: str, request_body: bytes | str | None = None,
                 created: int | None = None):
        self.events = _dialect(kind).Stream(Invocation(model_id, request_id, request_body, created))

    def start(self, input_tokens: int = 0) -> list[dict]:
        """The events before any text; ``input_tokens`` is the prompt's length if already known."""
        return self.events.start(input_tokens)

    def delta(self, text: str) -> list[dict]:
        return self.events.delta(text) if text else []

    def finish(self, completion: Completion) -> list[dict]:
        events = self.events.finish(completion)
        events[-1][METRICS_KEY] = invocation_metrics(completion)
        return events
