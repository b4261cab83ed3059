"""InvokeModel's native bodies, one module per model family's dialect.

InvokeModel carries the model's *native* body, whose shape depends on the model family; the
catalog gives each family one dialect (``Family.invoke_body``) and ``tailor.wire.invoke``
holds the one table from dialect to module. Every module here defines the same three things:

* ``request(data, *, default_max_tokens)``: a decoded JSON body -> ``ChatRequest``, through the
  module's pydantic model of the body (its fields, types and limits), or one ``InvalidFields``;
* ``response(completion, invocation)``: the native InvokeModel response body;
* ``Stream(invocation)``: the native stream events, ``start(input_tokens)`` / ``delta(text)`` /
  ``finish(completion)``, each a list of JSON objects (one ``chunk`` event each).

All are pure: no I/O, no services. Decisions shared by the prompt-style bodies (cohere, titan,
llama): the prompt becomes one user message holding it verbatim -- Tailor trains a
prompt/completion record as exactly that user turn followed by an assistant turn, so a deployed
model sees the tokens it was trained on (a Llama prompt that already holds Llama's own
``<|start_header_id|>`` markup is still wrapped: the chat template renders it). Default answer
lengths follow the originals; temperatures default to greedy (``tailor.wire.conversation``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Invocation:
    """What an answer echoes of its request: the model id as the caller named it, the request id,
    the raw request body (Cohere echoes its prompt) and the time (epoch seconds; None: now)."""

    model_id: str
    request_id: str
    request_body: bytes | str | None = None
    created: int | None = None
