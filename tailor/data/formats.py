"""Typed records for the training-data formats (docs/data.md), one pydantic model per format.

Files arrive as JSON Lines; ``tailor.data.validate`` checks every line against these models and
hands the rest of Tailor typed records, never raw dicts. The models are strict (a number is not a
string) and forbid unknown keys, so a record that constructs is a record every later stage can
trust. Rules that span fields (roles alternate, the last turn is the assistant's) live in
``validate.py``, which can then report all of them with line numbers instead of stopping at the
first.

The RFT prompt model is the one exception to "no unknown keys": its extra top-level keys
are kept, because the grader reads them (``rft_fields``).

``ChatRecord`` is the messages format as OpenAI's chat fine-tuning files write it (tools, tool
calls and tool messages, content as text parts, per-message ``weight``), taken by the ``tailor``
family for FINE_TUNING: it is the same format (``DataFormat.MESSAGES``), a superset of
``MessagesRecord``. Validation hands training a ``MessagesRecord`` whenever a record uses none of
the extras, so plain records stay exactly what they were; ``chat_messages`` and ``chat_tools``
give either kind to the chat template.

Formats still to come, each as one more model here and one more ``DataFormat`` member:
  * bedrock-conversation-2024 (Converse-style content blocks: Llama 3.2, Nova, distillation prompts)
  * model invocation logs as training data (distillation and RFT can read them instead of a file)
"""

from __future__ import annotations

import json
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


# ---------------------------------------------------------------------------------------------
# OpenAI's chat fine-tuning lines (docs/data.md, "OpenAI chat files").

ChatRole = Literal["user", "assistant", "tool"]  # system and developer: the first message, lifted


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class FunctionCall(_Strict):
    name: str
    arguments: str  # JSON text, as OpenAI writes it; validation checks that it holds an object


class ToolCall(_Strict):
    id: str
    type: Literal["function"]
    function: FunctionCall


class ChatMessage(_Strict):
    role: ChatRole
    # null: an assistant message that only calls tools; a list: text parts, joined by a newline
    content: str | list[TextPart] | None = None
    weight: Literal[0, 1] = 1  # assistant messages only; 0: context the model is not trained on
    tool_calls: list[ToolCall] | None = None  # assistant messages only
    tool_call_id: str | None = None  # tool messages: the call this message answers
    name: str | None = None


class FunctionDefinition(_Strict):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None  # a JSON schema
    strict: bool | None = None


class Tool(_Strict):
    type: Literal["function"]
    function: FunctionDefinition


class ChatRecord(_Strict):
    """OpenAI's chat fine-tuning line: the messages format with tools and per-turn weights. The
    system (or developer) prompt, when the file gives it as the first message, is kept in
    ``system`` as ``MessagesRecord`` keeps it."""

    system: str | None = None
    messages: list[ChatMessage]
    tools: list[Tool] | None = None
    parallel_tool_calls: bool | None = None


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


Record = MessagesRecord | PromptCompletionRecord | TextRecord | RftRecord | PreferenceRecord | ChatRecord


class ModelResponse(_Strict):
    """An answer given beforehand, in an evaluation record: ``modelIdentifier`` names the job's
    precomputed inference source it comes from."""

    response: str
    modelIdentifier: str  # noqa: N815 — the wire name


class EvaluationRecord(_Strict):
    """One question of a model-evaluation dataset (docs/evaluation.md): ``referenceResponse`` is what a good
    answer says; ``category`` groups questions in the summary; ``modelResponses`` carries the answers of
    a job's precomputed inference sources (one entry per source), which then are not asked."""

    prompt: str
    referenceResponse: str | None = None  # noqa: N815 — the wire name
    category: str | None = None
    modelResponses: list[ModelResponse] | None = None  # noqa: N815 — the wire name

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


def plain_messages(record: ChatRecord) -> MessagesRecord | None:
    """The record as a ``MessagesRecord`` when it uses none of OpenAI's extras (text content,
    user and assistant turns, no key besides role and content, no tools); None otherwise."""
    if record.model_fields_set - {"system", "messages"}:
        return None
    if any(message.model_fields_set - {"role", "content"} or message.role == "tool"
           or not isinstance(message.content, str) for message in record.messages):
        return None
    return MessagesRecord(system=record.system, messages=[
        Message(role=message.role, content=message.content) for message in record.messages])  # type: ignore[arg-type]


def text_of(content: str | list[TextPart] | None) -> str:
    """A message's content as the text a chat template takes: text parts joined by a newline,
    no content (a message that only calls tools) as the empty string."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part.text for part in content)


def _chat_turn(message: ChatMessage) -> dict[str, Any]:
    """One message as transformers' chat templates take it: tool-call arguments as an object
    (templates write ``arguments | tojson``), ``weight`` only when it is 0 (``render`` reads it and
    never hands it to the template)."""
    turn: dict[str, Any] = {"role": message.role, "content": text_of(message.content)}
    if message.name is not None:
        turn["name"] = message.name
    if message.tool_calls:
        turn["tool_calls"] = [
            {"id": call.id, "type": "function",
             "function": {"name": call.function.name, "arguments": json.loads(call.function.arguments)}}
            for call in message.tool_calls]
    if message.tool_call_id is not None:
        turn["tool_call_id"] = message.tool_call_id
    if message.role == "assistant" and message.weight == 0:
        turn["weight"] = 0
    return turn


def chat_tools(record: Record) -> list[dict[str, Any]] | None:
    """The tools a chat record offers, as ``apply_chat_template(..., tools=...)`` takes them
    (OpenAI's ``{"type": "function", "function": {...}}``); None when it offers none."""
    if not isinstance(record, ChatRecord) or not record.tools:
        return None
    return [tool.model_dump(exclude_unset=True) for tool in record.tools]  # parameters as written


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


def chat_messages(record: MessagesRecord | PromptCompletionRecord | ChatRecord) -> list[dict[str, Any]]:
    """The list a chat template takes: the system prompt first (when there is one), then turns.
    A ``ChatRecord``'s turns carry their tool calls, tool-call ids and names, and ``"weight": 0``
    on an assistant turn not to learn (``tailor.data.render.chat_example`` reads and removes it);
    its tools come from ``chat_tools``."""
    if isinstance(record, ChatRecord):
        turns = [_chat_turn(message) for message in record.messages]
        if record.system:
            turns.insert(0, {"role": "system", "content": record.system})
        return turns
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
