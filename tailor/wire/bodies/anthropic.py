"""Anthropic's Messages body on Bedrock (Claude): ``anthropic_version``, ``max_tokens``, ``messages``.

Accepted and ignored: ``anthropic_beta``, and a text block's ``cache_control`` and ``citations``.
Refused, with the field named: image, document, tool and thinking blocks, ``tools``,
``tool_choice`` and ``thinking``. A final assistant message is the prefill
(``tailor.wire.conversation``). ``max_tokens`` is required, as in the original.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field

from tailor.errors import show_value
from tailor.serve.protocol import ChatRequest, Completion, Sampling
from tailor.wire.bodies import Invocation
from tailor.wire.body_models import (
    NO_TOOLS,
    TEXT_ONLY,
    BodyModel,
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

ANTHROPIC_VERSION = "bedrock-2023-05-31"
_THINKING = "thinking blocks are not supported"
REFUSED_BLOCKS = {"image": TEXT_ONLY, "document": TEXT_ONLY, "tool_use": NO_TOOLS, "tool_result": NO_TOOLS,
                  "thinking": _THINKING, "redacted_thinking": _THINKING}


def _as_blocks(content: Any) -> Any:
    """A string is one text block, as the original reads it."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if content is None:
        raise fail("required")
    if not isinstance(content, list):
        raise fail(f"must be a string or a list of content blocks, got {show_value(content)}")
    return content


def _text_blocks_only(block: Any) -> Any:
    kind = block.get("type") if isinstance(block, dict) else None
    if isinstance(kind, str) and kind in REFUSED_BLOCKS:
        raise fail(f"{kind!r} blocks are {REFUSED_BLOCKS[kind]}", at="type")
    if kind is not None and kind != "text":
        raise fail(f"unknown block type {show_value(kind)}; Tailor takes 'text'", at="type")
    return block


class TextBlock(BodyModel):
    type: Literal["text"]
    text: str
    cache_control: Any = None  # Tailor keeps no prompt cache
    citations: Any = None


Blocks = Annotated[list[Annotated[TextBlock, BeforeValidator(_text_blocks_only)]], BeforeValidator(_as_blocks)]


def _text(blocks: list[TextBlock]) -> str:
    return BLOCK_SEPARATOR.join(block.text for block in blocks)


class AnthropicMessage(BodyModel):
    role: Literal["user", "assistant"]
    content: Blocks


def _turns(conversation: list[AnthropicMessage]) -> list[AnthropicMessage]:
    if problems := turn_problems([m.role for m in conversation], [_text(m.content) for m in conversation]):
        raise fail_all(problems)
    return conversation


Probability = Annotated[float, Field(ge=0, le=1)]


class AnthropicBody(BodyModel):
    anthropic_version: Literal["bedrock-2023-05-31"]
    anthropic_beta: list[str] | None = None
    max_tokens: Annotated[int, Field(ge=1, le=INT32_MAX)]
    messages: Annotated[list[AnthropicMessage], Field(min_length=1), AfterValidator(_turns)]
    system: Blocks | None = None
    temperature: Probability | None = None
    top_p: Probability | None = None
    top_k: Annotated[int, Field(ge=0, le=INT32_MAX)] | None = None
    stop_sequences: list[NonEmpty] | None = None
    # Refused whatever their value, as the original refuses what it cannot do.
    tools: refused(NO_TOOLS, allowed=()) = None
    tool_choice: refused(NO_TOOLS, allowed=()) = None
    thinking: refused("extended thinking is not supported", allowed=()) = None


def request(data: Any, *, default_max_tokens: int) -> ChatRequest:
    """The ``ChatRequest`` of an Anthropic body (which always sets its own ``max_tokens``)."""
    body = validate(AnthropicBody, data)
    sampling = Sampling(
        max_tokens=body.max_tokens,
        temperature=DEFAULT_TEMPERATURE if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        top_k=body.top_k or 0,
        stop=tuple(body.stop_sequences or ()),
    )
    system = _text(body.system or [])
    conversation = messages(system, [m.role for m in body.messages], [_text(m.content) for m in body.messages])
    return ChatRequest(conversation, sampling)


def message_id(request_id: str) -> str:
    return "msg_bdrk_" + request_id.replace("-", "")


def _stop_sequence(completion: Completion) -> str | None:
    return completion.stop_sequence if completion.stop_reason == "stop_sequence" else None


def response(completion: Completion, invocation: Invocation) -> dict:
    return {
        "id": message_id(invocation.request_id), "type": "message", "role": "assistant",
        "model": invocation.model_id,
        "content": [{"type": "text", "text": completion.text}],
        "stop_reason": completion.stop_reason,
        "stop_sequence": _stop_sequence(completion),
        "usage": {"input_tokens": completion.input_tokens, "output_tokens": completion.output_tokens},
    }


class Stream:
    """message_start, content_block_start, content_block_delta (text_delta) ..., content_block_stop,
    message_delta (stop_reason, usage.output_tokens), message_stop."""

    def __init__(self, invocation: Invocation):
        self.invocation = invocation

    def start(self, input_tokens: int) -> list[dict]:
        message = {"id": message_id(self.invocation.request_id), "type": "message", "role": "assistant",
                   "model": self.invocation.model_id, "content": [], "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": input_tokens, "output_tokens": 0}}
        return [{"type": "message_start", "message": message},
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}]

    def delta(self, text: str) -> list[dict]:
        return [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}]

    def finish(self, completion: Completion) -> list[dict]:
        return [{"type": "content_block_stop", "index": 0},
                {"type": "message_delta",
                 "delta": {"stop_reason": completion.stop_reason, "stop_sequence": _stop_sequence(completion)},
                 "usage": {"output_tokens": completion.output_tokens}},
                {"type": "message_stop"}]
