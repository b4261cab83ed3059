"""The one vocabulary between the API dialects and the inference engine.

Every dialect (Bedrock InvokeModel bodies, Converse, OpenAI chat completions) converts its request
into a ``ChatRequest`` with pure functions, the engine answers with ``TextDelta`` events and one
final ``Completion``, and the dialect converts those back. Nothing here imports torch: the API
process uses these types without loading a model.

``Target`` names *which weights* answer: a base model (anything ``tailor.catalog.resolve_model``
understands, or a folder of full fine-tuned weights) plus, optionally, a LoRA adapter folder that
the engine applies on top of that shared base.

``check_prompt_size`` is the one rule on a prompt's length in characters: the API applies it
before a request reaches the engine, and the engine again for callers that bypass the API.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from tailor.errors import InvalidInput

StopReason = Literal["end_turn", "max_tokens", "stop_sequence"]
Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Sampling:
    """How to pick tokens. ``temperature == 0`` is greedy; ``top_k == 0`` and ``top_p == 1`` are off."""

    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class ChatRequest:
    """A conversation to continue with one assistant turn. A system prompt, if any, is the first message."""

    messages: tuple[Message, ...]
    sampling: Sampling

    def turns(self) -> list[dict]:
        """The messages as chat-template dicts, the form training rendered too."""
        return [{"role": m.role, "content": m.content} for m in self.messages]

    def characters(self) -> int:
        """The request's text in characters: what its tokenizing costs, known without tokenizing."""
        return sum(len(m.content) for m in self.messages) + sum(len(s) for s in self.sampling.stop)


@dataclass(frozen=True)
class Target:
    """The weights that answer: ``base`` (a catalog reference or a full-weights folder), plus
    optionally a LoRA ``adapter`` folder applied on top of it."""

    base: str
    adapter: str | None = None


@dataclass(frozen=True)
class TextDelta:
    """A piece of the answer, safe to show: never a partial stop sequence or a split character."""

    text: str


@dataclass(frozen=True)
class Completion:
    """The finished answer; token counts come from the model's own tokenizer."""

    text: str
    stop_reason: StopReason
    input_tokens: int
    output_tokens: int
    stop_sequence: str | None = None
    latency_ms: int = 0
    first_token_ms: int = 0


def check_prompt_size(chat: ChatRequest, limit: int) -> None:
    """Refuse a prompt longer than ``limit`` characters (``max_prompt_characters``), before anyone
    tokenizes it: tokenizing takes about a second per million characters, and a prompt that long
    would not fit any served model's context window anyway."""
    size = chat.characters()
    if size > limit:
        raise InvalidInput(f"The prompt is {size:,} characters (messages and stop sequences together), over "
                           f"this server's limit of {limit:,} characters per request "
                           f"(TAILOR_MAX_PROMPT_CHARACTERS). Shorten the prompt.")


def to_json(value) -> dict:
    """A protocol object as a JSON-ready dict (tuples become lists)."""
    return asdict(value)


def chat_request_from_json(data: dict) -> ChatRequest:
    sampling = dict(data["sampling"])
    sampling["stop"] = tuple(sampling.get("stop") or ())
    return ChatRequest(tuple(Message(m["role"], m["content"]) for m in data["messages"]), Sampling(**sampling))


def completion_from_json(data: dict) -> Completion:
    return Completion(**data)
