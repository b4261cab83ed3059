"""Meta Llama's body on Bedrock: ``prompt`` plus sampling settings.

``max_gen_len`` defaults to the original's 512; ``images`` are refused (text only). Llama reports a
stop sequence as ``stop``, having no separate value for it.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from tailor.serve.protocol import ChatRequest, Completion, Message, Sampling, StopReason
from tailor.wire.bodies import Invocation
from tailor.wire.body_models import TEXT_ONLY, BodyModel, NonBlank, refused, validate
from tailor.wire.conversation import DEFAULT_TEMPERATURE

DEFAULT_MAX_TOKENS = 512
STOP_REASONS: dict[StopReason, str] = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}

Probability = Annotated[float, Field(ge=0, le=1)]


class LlamaBody(BodyModel):
    prompt: NonBlank
    temperature: Probability | None = None
    top_p: Probability | None = None
    max_gen_len: Annotated[int, Field(ge=1, le=2048)] | None = None
    images: refused(f"images are {TEXT_ONLY}", allowed=()) = None


def request(data: Any, *, default_max_tokens: int) -> ChatRequest:
    """The ``ChatRequest`` of a Llama body; Llama's own default length, not the caller's."""
    body = validate(LlamaBody, data)
    sampling = Sampling(
        max_tokens=body.max_gen_len or DEFAULT_MAX_TOKENS,
        temperature=DEFAULT_TEMPERATURE if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
    )
    return ChatRequest((Message("user", body.prompt),), sampling)


def response(completion: Completion, invocation: Invocation) -> dict:
    return {"generation": completion.text, "prompt_token_count": completion.input_tokens,
            "generation_token_count": completion.output_tokens, "stop_reason": STOP_REASONS[completion.stop_reason]}


class Stream:
    """``{"generation", "prompt_token_count", "generation_token_count", "stop_reason"}`` per piece
    (pieces counted, not tokens, until the last), then a last one with the stop reason."""

    def __init__(self, invocation: Invocation):
        self.input_tokens = 0
        self.pieces = 0

    def start(self, input_tokens: int) -> list[dict]:
        self.input_tokens = input_tokens
        return []

    def delta(self, text: str) -> list[dict]:
        self.pieces += 1
        return [{"generation": text, "prompt_token_count": self.input_tokens if self.pieces == 1 else None,
                 "generation_token_count": self.pieces, "stop_reason": None}]

    def finish(self, completion: Completion) -> list[dict]:
        return [{"generation": "", "prompt_token_count": completion.input_tokens if self.pieces == 0 else None,
                 "generation_token_count": completion.output_tokens,
                 "stop_reason": STOP_REASONS[completion.stop_reason]}]
