"""Cohere Command's body on Bedrock: ``prompt`` plus sampling settings.

Accepted and ignored: ``return_likelihoods`` (no likelihoods are returned), ``logit_bias``,
``truncate`` (prompts are never truncated; a prompt too long for the model is the engine's error)
and ``stream`` (the operation decides whether to stream). ``num_generations`` above 1 is refused.
``p`` of 0 means "off", as in the original; ``max_tokens`` defaults to the original's 20.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from tailor.serve.protocol import ChatRequest, Completion, Message, Sampling, StopReason
from tailor.wire.bodies import Invocation
from tailor.wire.body_models import BodyModel, NonBlank, NonEmpty, fail, validate
from tailor.wire.conversation import DEFAULT_TEMPERATURE

DEFAULT_MAX_TOKENS = 20
# Cohere reports a stop sequence as COMPLETE, having no separate value for it.
FINISH: dict[StopReason, str] = {"end_turn": "COMPLETE", "stop_sequence": "COMPLETE", "max_tokens": "MAX_TOKENS"}


def _one_generation(count: int) -> int:
    if count != 1:
        raise fail(f"only 1 generation per request is supported, got {count}")
    return count


class CohereBody(BodyModel):
    prompt: NonBlank
    temperature: Annotated[float, Field(ge=0, le=5)] | None = None
    p: Annotated[float, Field(ge=0, le=1)] | None = None
    k: Annotated[int, Field(ge=0, le=500)] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=4096)] | None = None
    stop_sequences: Annotated[list[NonEmpty], Field(max_length=4)] | None = None
    num_generations: Annotated[int, Field(ge=1, le=5), AfterValidator(_one_generation)] | None = None
    return_likelihoods: Literal["GENERATION", "ALL", "NONE"] | None = None
    truncate: Literal["NONE", "START", "END"] | None = None
    stream: bool | None = None
    logit_bias: dict[str, float] | None = None  # token id -> bias


def request(data: Any, *, default_max_tokens: int) -> ChatRequest:
    """The ``ChatRequest`` of a Cohere body; Cohere's own default length, not the caller's."""
    body = validate(CohereBody, data)
    sampling = Sampling(
        max_tokens=body.max_tokens or DEFAULT_MAX_TOKENS,
        temperature=DEFAULT_TEMPERATURE if body.temperature is None else body.temperature,
        top_p=body.p or 1.0,  # p = 0 switches nucleus sampling off
        top_k=body.k or 0,
        stop=tuple(body.stop_sequences or ()),
    )
    return ChatRequest((Message("user", body.prompt),), sampling)


def echoed_prompt(request_body: bytes | str | None) -> str:
    """The ``prompt`` of a (valid) Cohere request body, which Cohere's responses echo; "" if none."""
    if request_body is None:
        return ""
    try:
        prompt = json.loads(request_body).get("prompt")
    except (ValueError, AttributeError):
        return ""
    return prompt if isinstance(prompt, str) else ""


def generation_id(request_id: str) -> str:
    # Cohere's generation ids are UUIDs; derived from the request id so a response is reproducible.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"tailor:generation:{request_id}"))


def response(completion: Completion, invocation: Invocation) -> dict:
    return {"id": invocation.request_id, "prompt": echoed_prompt(invocation.request_body), "generations": [
        {"id": generation_id(invocation.request_id), "text": completion.text,
         "finish_reason": FINISH[completion.stop_reason]}]}


class Stream:
    """``{"text", "is_finished": false}`` per piece, then ``{"is_finished": true, "finish_reason",
    "id", "prompt", "generations": [the whole answer]}``. Readers of the original stream disagree on
    its shape (LangChain reads ``text``/``is_finished``, AWS's own example prints
    ``generations[0].text`` where present); this one gives both exactly the whole text once."""

    def __init__(self, invocation: Invocation):
        self.invocation = invocation

    def start(self, input_tokens: int) -> list[dict]:
        return []

    def delta(self, text: str) -> list[dict]:
        return [{"text": text, "is_finished": False}]

    def finish(self, completion: Completion) -> list[dict]:
        finish_reason = FINISH[completion.stop_reason]
        request_id = self.invocation.request_id
        return [{"is_finished": True, "finish_reason": finish_reason, "id": request_id,
                 "prompt": echoed_prompt(self.invocation.request_body), "generations": [
                     {"id": generation_id(request_id), "text": completion.text, "finish_reason": finish_reason}]}]
