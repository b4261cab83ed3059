"""The one vocabulary between the API dialects and the inference engine.

Every dialect (Bedrock InvokeModel bodies, Converse, OpenAI chat completions) converts its request
into a ``ChatRequest`` with pure functions, the engine answers with ``TextDelta`` events and one
final ``Completion``, and the dialect converts those back. Nothing here imports torch: the API
process uses these types without loading a model.

``Target`` names *which weights* answer: a base model (anything ``tailor.catalog.resolve_model``
understands, or a folder of full fine-tuned weights) plus, optionally, a LoRA adapter folder that
the engine applies on top of that shared base.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

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


def to_json(value) -> dict:
    """A protocol object as a JSON-ready dict (tuples become lists)."""
    return asdict(value)


def chat_request_from_json(data: dict) -> ChatRequest:
    sampling = dict(data["sampling"])
    sampling["stop"] = tuple(sampling.get("stop") or ())
    return ChatRequest(tuple(Message(m["role"], m["content"]) for m in data["messages"]), Sampling(**sampling))


def completion_from_json(data: dict) -> Completion:
    return Completion(**data)
