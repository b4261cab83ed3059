"""Typed records for the training-data formats (docs/data.md), one pydantic model per format.

Files arrive as JSON Lines; ``tailor.data.validate`` checks every line against these models and
hands the rest of Tailor typed records, never raw dicts. The models are strict (a number is not a
string) and forbid unknown keys, so a record that constructs is a record every later stage can
trust. Rules that span fields (roles alternate, the last turn is the assistant's) live in
``validate.py``, which can then report all of them with line numbers instead of stopping at the
first.

The RFT prompt model is the one exception to "no unknown keys": its extra top-level keys
are kept, because the grader reads them (``rft_fields``).

Formats still to come, each as one more model here and one more ``DataFormat`` member:
  * bedrock-conversation-2024 (Converse-style content blocks: Llama 3.2, Nova, distillation prompts)
  * model invocation logs as training data (distillation and RFT can read them instead of a file)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from tailor.catalog import DataFormat

Role = Literal["user", "assistant"]


class _Strict(BaseModel):
    # strict: JSON types are taken as written; frozen: records are values passed between stages.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Message(_Strict):
    role: Role
    content: str


class MessagesRecord(_Strict):
    """Claude 3 Haiku style: optional system prompt, then alternating user/assistant turns."""

    system: str | None = None
    messages: list[Message]


class PromptCompletionRecord(_Strict):
    """One non-conversational input and the target the model should learn to produce."""

    prompt: str
    completion: str


class TextRecord(_Strict):
    """Unlabeled text for continued pre-training."""

    input: str


RftRole = Literal["system", "user", "assistant"]


class RftMessage(_Strict):
    role: RftRole
    content: str


class RftRecord(BaseModel):
    """One reinforcement fine-tuning prompt, OpenAI chat-completions style: the conversation so
    far (ending with the user's turn; the model writes the next one) and what the grader needs.

    Keys besides ``messages`` belong to the grader and are kept as written (``rft_fields``). The
    reference answer may sit at the top level or under ``metadata`` (both layouts are in AWS's
    samples); ``rft_reference`` finds it. That exactly one is present and not null is checked by
    ``tailor.data.validate``, which reports it by line.
    """

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    messages: list[RftMessage]
    reference_answer: Any = None  # any JSON value: a string, a number, an object ...
    metadata: dict[str, Any] | None = None


class PreferenceTurn(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str


class PreferenceInput(_Strict):
    messages: list[PreferenceTurn]
    tools: list[dict[str, Any]] | None = None
    parallel_tool_calls: bool | None = None


class PreferenceAnswer(_Strict):
    role: Literal["assistant"]
    content: str


class PreferenceRecord(_Strict):
    """One DPO example, OpenAI's preference format: a conversation ending with the user's turn,
    the answer to prefer and the answer not to (each one assistant message)."""

    input: PreferenceInput
    preferred_output: list[PreferenceAnswer]
    non_preferred_output: list[PreferenceAnswer]


Record = MessagesRecord | PromptCompletionRecord | TextRecord | RftRecord | PreferenceRecord


class EvaluationRecord(_Strict):
    """One question of a model-evaluation dataset (docs/evaluation.md): ``referenceResponse`` is what a good
    answer says; ``category`` groups questions in the summary."""

    prompt: str
    referenceResponse: str | None = None  # noqa: N815 — the wire name
    category: str | None = None

RECORD_MODELS: dict[DataFormat, type[Record]] = {
    DataFormat.MESSAGES: MessagesRecord,
    DataFormat.PROMPT_COMPLETION: PromptCompletionRecord,
    DataFormat.TEXT: TextRecord,
    DataFormat.RFT_CHAT: RftRecord,
    DataFormat.PREFERENCE: PreferenceRecord,
}

# The keys that give a record's format away, used to pick the format of a file when a family
# accepts more than one, and to name the mix-up when a record has the other shape. Both chat
# formats have "messages"; a reference answer is what makes a chat record an RFT prompt.
MARKER_KEYS: dict[DataFormat, frozenset[str]] = {
    DataFormat.MESSAGES: frozenset({"messages"}),
    DataFormat.PROMPT_COMPLETION: frozenset({"prompt", "completion"}),
    DataFormat.TEXT: frozenset({"input"}),
    DataFormat.RFT_CHAT: frozenset({"messages", "reference_answer"}),
    DataFormat.PREFERENCE: frozenset({"preferred_output", "non_preferred_output"}),
}


def format_of(keys: set[str] | frozenset[str] | list[str]) -> DataFormat | None:
    """The one format whose marker keys appear among ``keys``; None when none or several do.
    ``messages`` alone is the messages format; with ``reference_answer`` it is an RFT prompt."""
    keys = set(keys)
    present = {name for name, markers in MARKER_KEYS.items() if markers & keys}
    if present == {DataFormat.MESSAGES, DataFormat.RFT_CHAT}:
        return DataFormat.RFT_CHAT if "reference_answer" in keys else DataFormat.MESSAGES
    return present.pop() if len(present) == 1 else None


def to_messages(record: MessagesRecord | PromptCompletionRecord) -> MessagesRecord:
    """A conversation for the record: prompt/completion becomes one user and one assistant turn."""
    if isinstance(record, MessagesRecord):
        return record
    if isinstance(record, PromptCompletionRecord):
        return MessagesRecord(messages=[
            Message(role="user", content=record.prompt),
            Message(role="assistant", content=record.completion),
        ])
    raise TypeError(f"{type(record).__name__} has no conversation form")


def chat_messages(record: MessagesRecord | PromptCompletionRecord) -> list[dict[str, str]]:
    """The list a chat template takes: the system prompt first (when there is one), then turns."""
    conversation = to_messages(record)
    turns = [{"role": message.role, "content": message.content} for message in conversation.messages]
    if conversation.system:
        turns.insert(0, {"role": "system", "content": conversation.system})
    return turns


def rft_prompt(record: RftRecord) -> list[dict[str, str]]:
    """The prompt as a chat template takes it; rendered with a generation prompt, the model
    writes the assistant turn that follows."""
    return [{"role": message.role, "content": message.content} for message in record.messages]


def rft_reference(record: RftRecord) -> Any:
    """The reference answer, from the top level or from ``metadata`` (None when neither has one;
    a validated record always has one)."""
    if record.reference_answer is not None:
        return record.reference_answer
    return (record.metadata or {}).get("reference_answer")


def rft_fields(record: RftRecord) -> dict[str, Any]:
    """Every key of the record except ``messages``, as written: what the grader receives."""
    return record.model_dump(exclude={"messages"}, exclude_unset=True)


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages written for people editing JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
