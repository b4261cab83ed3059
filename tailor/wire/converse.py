"""Converse and ConverseStream <-> Tailor's protocol: one model-independent shape, pure.

A Converse request has already been checked against the operation's shape in botocore's
bedrock-runtime model (``shapes.validate_input``: members, types, unions; blobs are bytes by
then). ``ConverseRequest`` is the part of that shape Tailor answers: text blocks in alternating
turns, a final assistant message as the prefill (``tailor.wire.conversation``), the four inference
settings and ``additionalModelRequestFields.top_k``. ``converse_request`` gives its
``ChatRequest``; ``converse_response`` and ``ConverseStream`` shape the answer.

* **Accepted and ignored**: ``cachePoint`` blocks (Tailor keeps no prompt cache),
  ``performanceConfig``, ``serviceTier``, ``projectIdentifier`` and
  ``additionalModelResponseFieldPaths`` (no additional fields are returned).
  ``requestMetadata`` changes no answer; it is written to invocation logs
  (docs/invocation-logging.md), where training jobs filter on it.
* **Refused** with the member named: images, documents, audio and video (Tailor's models take
  text only), tools, guardrails, prompt variables, structured output, reasoning, citations and
  search results.
* A request without ``maxTokens`` gets the caller's ``default_max_tokens``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field

from tailor.serve.protocol import ChatRequest, Completion, Sampling
from tailor.wire.body_models import (
    NO_TOOLS,
    TEXT_ONLY,
    BodyModel,
    NonBlank,
    NonEmpty,
    fail,
    fail_all,
    refused,
    validate,
)
from tailor.wire.conversation import (
    BLOCK_SEPARATOR,
    DEFAULT_TEMPERATURE,
    messages,
    turn_problems,
)
from tailor.wire.request_json import INT32_MAX

_GUARDRAILS = "guardrails are not supported by Tailor"
_NOT_EMPTY = (None, {}, [])  # values that ask for nothing


class ContentBlock(BodyModel):
    """One member of the ContentBlock (or SystemContentBlock) union; the contract allows one."""

    text: NonBlank | None = None
    cachePoint: Any = None
    image: refused(TEXT_ONLY) = None
    document: refused(TEXT_ONLY) = None
    video: refused(TEXT_ONLY) = None
    audio: refused(TEXT_ONLY) = None
    toolUse: refused(NO_TOOLS) = None
    toolResult: refused(NO_TOOLS) = None
    toolAddition: refused(NO_TOOLS) = None
    toolRemoval: refused(NO_TOOLS) = None
    guardContent: refused(_GUARDRAILS) = None
    reasoningContent: refused("reasoning content is not supported") = None
    citationsContent: refused("citations are not supported") = None
    searchResult: refused("search results are not supported") = None


def _text(blocks: list[ContentBlock]) -> str:
    return BLOCK_SEPARATOR.join(block.text for block in blocks if block.text is not None)


def _no_system_role(role: Any) -> Any:
    if role == "system":
        raise fail("put the system prompt in the system field")
    return role


class ConverseMessage(BodyModel):
    role: Annotated[Literal["user", "assistant"], BeforeValidator(_no_system_role)]
    content: list[ContentBlock]


def _turns(conversation: list[ConverseMessage]) -> list[ConverseMessage]:
    if problems := turn_problems([m.role for m in conversation], [_text(m.content) for m in conversation]):
        raise fail_all(problems)
    return conversation


Probability = Annotated[float, Field(ge=0, le=1)]


class InferenceConfig(BodyModel):
    maxTokens: Annotated[int, Field(ge=1, le=INT32_MAX)] | None = None
    temperature: Probability | None = None
    topP: Probability | None = None
    stopSequences: Annotated[list[NonEmpty], Field(max_length=2500)] | None = None


class AdditionalFields(BodyModel):
    """``additionalModelRequestFields``: the model-specific settings Tailor's models take."""

    top_k: Annotated[int, Field(ge=0, le=INT32_MAX)] | None = None


class ConverseRequest(BodyModel):
    # The contract has refused unknown members already; the ones it has and this model does not
    # name (modelId, requestMetadata, performanceConfig, serviceTier, projectIdentifier,
    # additionalModelResponseFieldPaths) change nothing Tailor answers.
    model_config = ConfigDict(extra="ignore")

    messages: Annotated[list[ConverseMessage], Field(min_length=1), AfterValidator(_turns)]
    system: list[ContentBlock] | None = None
    inferenceConfig: InferenceConfig | None = None
    additionalModelRequestFields: AdditionalFields | None = None
    toolConfig: refused(NO_TOOLS, allowed=_NOT_EMPTY) = None
    guardrailConfig: refused(_GUARDRAILS, allowed=_NOT_EMPTY) = None
    promptVariables: refused("prompt variables need a prompt resource, which Tailor does not have",
                             allowed=_NOT_EMPTY) = None
    outputConfig: refused("structured output is not supported", allowed=_NOT_EMPTY) = None


def converse_request(params: dict, *, default_max_tokens: int) -> ChatRequest:
    """The ``ChatRequest`` of a Converse / ConverseStream request already checked against its shape
    (or of CountTokens' ``input.converse``); one ``InvalidFields`` names every problem."""
    request = validate(ConverseRequest, params)
    config = request.inferenceConfig or InferenceConfig()
    extra = request.additionalModelRequestFields or AdditionalFields()
    sampling = Sampling(
        max_tokens=config.maxTokens or default_max_tokens,
        temperature=DEFAULT_TEMPERATURE if config.temperature is None else config.temperature,
        top_p=1.0 if config.topP is None else config.topP,
        top_k=extra.top_k or 0,
        stop=tuple(config.stopSequences or ()),
    )
    conversation = messages(_text(request.system or []), [m.role for m in request.messages],
                            [_text(m.content) for m in request.messages])
    return ChatRequest(conversation, sampling)


def token_usage(completion: Completion) -> dict[str, int]:
    return {"inputTokens": completion.input_tokens, "outputTokens": completion.output_tokens,
            "totalTokens": completion.input_tokens + completion.output_tokens}


def converse_response(completion: Completion, *, latency_ms: int | None = None) -> dict:
    """The Converse response body (ConverseResponse) for ``completion``.

    ``metrics.latencyMs`` is ``latency_ms`` when given (the route's own measure, queueing
    included), else the engine's ``completion.latency_ms``.
    """
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": completion.text}]}},
        "stopReason": completion.stop_reason,
        "usage": token_usage(completion),
        "metrics": {"latencyMs": completion.latency_ms if latency_ms is None else latency_ms},
    }


class ConverseStream:
    """The ``(event type, payload)`` pairs of one ConverseStream answer, each one event-stream event.

    messageStart, contentBlockDelta (text) per piece, contentBlockStop, messageStop, metadata with
    usage and latency. A text answer has no contentBlockStart, as in the original, where that event
    only opens tool-use blocks.
    """

    def start(self) -> list[tuple[str, dict]]:
        return [("messageStart", {"role": "assistant"})]

    def delta(self, text: str) -> list[tuple[str, dict]]:
        return [("contentBlockDelta", {"delta": {"text": text}, "contentBlockIndex": 0})] if text else []

    def finish(self, completion: Completion) -> list[tuple[str, dict]]:
        return [
            ("contentBlockStop", {"contentBlockIndex": 0}),
            ("messageStop", {"stopReason": completion.stop_reason}),
            ("metadata", {"usage": token_usage(completion), "metrics": {"latencyMs": completion.latency_ms}}),
        ]
