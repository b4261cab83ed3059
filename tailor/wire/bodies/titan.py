"""Amazon Titan Text's body on Bedrock: ``inputText`` plus ``textGenerationConfig``.

``maxTokenCount`` defaults to the original's 512. Titan's real responses say ``FINISH`` for a
natural end (the user guide's ``FINISHED`` is not what the service sends).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from tailor.serve.protocol import ChatRequest, Completion, Message, Sampling, StopReason
from tailor.wire.bodies import Invocation
from tailor.wire.body_models import BodyModel, NonBlank, NonEmpty, validate
from tailor.wire.conversation import DEFAULT_TEMPERATURE

DEFAULT_MAX_TOKENS = 512
COMPLETION_REASONS: dict[StopReason, str] = {"end_turn": "FINISH", "stop_sequence": "STOP_CRITERIA_MET",
                                             "max_tokens": "LENGTH"}

Probability = Annotated[float, Field(ge=0, le=1)]


class TextGenerationConfig(BodyModel):
    temperature: Probability | None = None
    topP: Probability | None = None
    maxTokenCount: Annotated[int, Field(ge=1, le=8192)] | None = None
    stopSequences: list[NonEmpty] | None = None


class TitanBody(BodyModel):
    inputText: NonBlank
    textGenerationConfig: TextGenerationConfig | None = None


def request(data: Any, *, default_max_tokens: int) -> ChatRequest:
    """The ``ChatRequest`` of a Titan body; Titan's own default length, not the caller's."""
    body = validate(TitanBody, data)
    config = body.textGenerationConfig or TextGenerationConfig()
    sampling = Sampling(
        max_tokens=config.maxTokenCount or DEFAULT_MAX_TOKENS,
        temperature=DEFAULT_TEMPERATURE if config.temperature is None else config.temperature,
        top_p=1.0 if config.topP is None else config.topP,
        stop=tuple(config.stopSequences or ()),
    )
    return ChatRequest((Message("user", body.inputText),), sampling)


def response(completion: Completion, invocation: Invocation) -> dict:
    return {"inputTextTokenCount": completion.input_tokens, "results": [
        {"tokenCount": completion.output_tokens, "outputText": completion.text,
         "completionReason": COMPLETION_REASONS[completion.stop_reason]}]}


class Stream:
    """``{"outputText", "index": 0, "totalOutputTextTokenCount", "completionReason",
    "inputTextTokenCount"}`` per piece (counts only where known: the prompt's on the first), then a
    last one with empty text, the output count and the completion reason."""

    def __init__(self, invocation: Invocation):
        self.input_tokens = 0
        self.pieces = 0

    def start(self, input_tokens: int) -> list[dict]:
        self.input_tokens = input_tokens
        return []

    def delta(self, text: str) -> list[dict]:
        self.pieces += 1
        return [{"outputText": text, "index": 0, "totalOutputTextTokenCount": None, "completionReason": None,
                 "inputTextTokenCount": self.input_tokens if self.pieces == 1 else None}]

    def finish(self, completion: Completion) -> list[dict]:
        return [{"outputText": "", "index": 0, "totalOutputTextTokenCount": completion.output_tokens,
                 "completionReason": COMPLETION_REASONS[completion.stop_reason],
                 "inputTextTokenCount": completion.input_tokens if self.pieces == 0 else None}]
