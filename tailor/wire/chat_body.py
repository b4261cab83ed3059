"""The OpenAI chat-completions body and its answers: ``ChatBody`` <-> Tailor's protocol, pure.

Two doors take this shape: ``POST /v1/chat/completions`` (``tailor.api.openai``) and Bedrock's
InvokeModel for the model families whose native body is OpenAI-shaped (Tailor's own family;
imported Qwen / GPT-OSS style models), where the model is in the URL instead of the body.
``read(data)`` validates a body into a ``ChatBody``; ``chat_request(body)`` is its ``ChatRequest``;
``chat_completion`` and ``ChatChunks`` turn the engine's answer into the ``chat.completion``
object and the ``chat.completion.chunk`` stream the official ``openai`` client parses.

Decisions, so that nobody has to rediscover them:

* **Temperature** is passed through unchanged: OpenAI's 0-2 is the softmax temperature the
  engine applies (logits / T), so no rescaling is needed; 0 means greedy; none means greedy too
  (``tailor.wire.conversation``).
* **Roles**: ``developer`` is a ``system`` message. System messages must come before the
  conversation (chat templates render a system prompt only there); several leading ones are joined
  with a blank line. A final ``assistant`` message is kept last: the engine continues it (prefill).
* **Content** is text: a string or ``{"type": "text", "text"}`` parts, joined with ``"\\n"``.
  Images, audio, files and tool calls are refused with the field that holds them.
* **Accepted and ignored** (they change nothing a client can observe): ``user``, ``metadata``,
  ``store``, ``service_tier``, ``parallel_tool_calls``, ``safety_identifier``,
  ``prompt_cache_key``, a message's ``name`` and ``refusal``. Unsupported features are refused
  rather than silently dropped: ``n`` > 1, non-zero penalties, ``logit_bias``, ``logprobs``,
  tools, JSON response formats. Any other key is an unknown field, named.
* **Integers** stop where the engine's do: ``max_tokens`` at 2147483647 (as Bedrock's bodies take
  them), ``seed`` at OpenAI's int64, which the engine's random generator takes whole.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tailor.errors import show_value
from tailor.serve.protocol import ChatRequest, Completion, Message, Sampling, StopReason
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
from tailor.wire.conversation import DEFAULT_TEMPERATURE
from tailor.wire.request_json import INT32_MAX, INTEGER_LIMITS

PART_SEPARATOR = "\n"
SYSTEM_SEPARATOR = "\n\n"
MAX_STOP_SEQUENCES = 4
SEED_LOW, SEED_HIGH = INTEGER_LIMITS["long"]
FINISH_REASONS: dict[StopReason, str] = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}

_NO_TOOL_CHOICE = (None, [], "none")


# ---------------------------------------------------------------- the body


def _content_as_parts(content: Any) -> Any:
    """A string is one text part; anything else but a list is refused in words."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if content is None:
        raise fail("required: a string or a list of text parts")
    if not isinstance(content, list):
        raise fail(f"must be a string or a list of text parts, got {show_value(content)}")
    return content


def _text_parts_only(part: Any) -> Any:
    kind = part.get("type") if isinstance(part, dict) else None
    if isinstance(kind, str) and kind != "text":
        raise fail(f"{kind!r} parts are not supported: Tailor's models take text only", at="type")
    return part


def _no_tool_roles(role: Any) -> Any:
    if role in ("tool", "function"):
        raise fail(f"{role!r} messages are not supported: Tailor's models do not call tools")
    return role


class TextPart(BodyModel):
    type: Literal["text"]
    text: str


class ChatMessage(BodyModel):
    role: Annotated[Literal["system", "developer", "user", "assistant"], BeforeValidator(_no_tool_roles)]
    content: Annotated[list[Annotated[TextPart, BeforeValidator(_text_parts_only)]],
                       BeforeValidator(_content_as_parts)]
    name: str | None = None
    refusal: Any = None  # an earlier answer's refusal, sent back as history: nothing to act on
    audio: refused(TEXT_ONLY) = None
    tool_calls: refused(NO_TOOLS, allowed=(None, [])) = None
    function_call: refused(NO_TOOLS) = None

    @property
    def text(self) -> str:
        return PART_SEPARATOR.join(part.text for part in self.content)

    @property
    def is_system(self) -> bool:
        return self.role in ("system", "developer")


def _conversation(messages: list[ChatMessage]) -> list[ChatMessage]:
    problems = []
    seen_turn = False
    for index, message in enumerate(messages):
        if message.is_system and seen_turn:
            problems.append((f"[{index}].role",
                             "a system or developer message must come before the user and assistant messages"))
        seen_turn = seen_turn or not message.is_system
    if not seen_turn:
        problems.append(("", "needs at least one user message"))
    if problems:
        raise fail_all(problems)
    return messages


def _stop_as_list(stop: Any) -> Any:
    return [stop] if isinstance(stop, str) else stop


def _only(allowed: Any, show: Any = None):
    """A validator that takes ``allowed`` (or null) only, saying so otherwise."""
    def check(value: Any) -> Any:
        if value is not None and value != allowed:
            shown = show(value) if show else show_value(value)
            raise fail(f"only {allowed!r} is supported, got {shown}")
        return value
    return check


def _only_zero(value: float) -> float:
    if value != 0:
        raise fail(f"not supported: only 0 is, got {value}")
    return value


def _only_one_choice(value: int) -> int:
    if value != 1:
        raise fail(f"only 1 choice per request is supported, got {value}")
    return value


def _format_type(value: Any) -> str:
    return show_value(value.get("type") if isinstance(value, dict) else value)


TokenCount = Annotated[int, Field(ge=1, le=INT32_MAX)]
Penalty = Annotated[float, Field(ge=-2, le=2), AfterValidator(_only_zero)]


class StreamOptions(BodyModel):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class ChatBody(BodyModel):
    """A chat-completions request body. Fields are declared in the order problems are listed."""

    model: str | None = Field(None, validate_default=True)
    messages: Annotated[list[ChatMessage], Field(min_length=1), AfterValidator(_conversation)]
    max_tokens: TokenCount | None = None
    max_completion_tokens: TokenCount | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    stop: Annotated[list[NonEmpty], Field(max_length=MAX_STOP_SEQUENCES), BeforeValidator(_stop_as_list)] | None = None
    n: Annotated[int, AfterValidator(_only_one_choice)] | None = None
    seed: Annotated[int, Field(ge=SEED_LOW, le=SEED_HIGH)] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    logit_bias: refused("not supported", allowed=(None, {})) = None
    logprobs: refused("not supported", allowed=(None, False)) = None
    top_logprobs: refused("not supported") = None
    response_format: Annotated[Any, AfterValidator(_only({"type": "text"}, _format_type))] = None
    modalities: Annotated[Any, AfterValidator(_only(["text"]))] = None
    tools: refused(NO_TOOLS, allowed=_NO_TOOL_CHOICE) = None
    tool_choice: refused(NO_TOOLS, allowed=_NO_TOOL_CHOICE) = None
    functions: refused(NO_TOOLS, allowed=_NO_TOOL_CHOICE) = None
    function_call: refused(NO_TOOLS, allowed=_NO_TOOL_CHOICE) = None
    audio: refused("not supported: audio output") = None
    prediction: refused("not supported: predicted outputs") = None
    web_search_options: refused("not supported: web search") = None
    reasoning_effort: refused("not supported: reasoning effort (not a reasoning model)") = None
    verbosity: refused("not supported: verbosity") = None
    # Accepted and ignored: they change nothing a client can observe.
    user: Any = None
    metadata: Any = None
    store: Any = None
    service_tier: Any = None
    parallel_tool_calls: Any = None
    safety_identifier: Any = None
    prompt_cache_key: Any = None

    @field_validator("model")
    @classmethod
    def _model_named(cls, model: str | None, info: ValidationInfo) -> str | None:
        # Bedrock's InvokeModel names the model in the URL; the OpenAI route needs it here.
        if model is None and (info.context or {}).get("require_model", True):
            raise fail("required: the model to answer")
        if model is not None and not model:
            raise fail(f"must be a non-empty string, got {show_value(model)}")
        return model

    @model_validator(mode="after")
    def _settings_agree(self) -> ChatBody:
        problems = []
        both = (self.max_tokens, self.max_completion_tokens)
        if None not in both and both[0] != both[1]:
            problems.append(("max_tokens", "differs from max_completion_tokens: give one of them"))
        if self.stream_options is not None and self.stream is not True:
            problems.append(("stream_options", "only allowed when stream is true"))
        if problems:
            raise fail_all(problems)
        return self

    @property
    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)


def read(data: Any, *, require_model: bool = True) -> ChatBody:
    """``data`` (a decoded JSON body) as a ``ChatBody``; one ``InvalidFields`` lists every problem.

    ``require_model`` is false for Bedrock InvokeModel bodies, whose model is in the URL.
    """
    return validate(ChatBody, data, context={"require_model": require_model})


def chat_request(body: ChatBody, *, default_max_tokens: int) -> ChatRequest:
    """The ``ChatRequest`` of a valid body; ``default_max_tokens`` when it sets no length."""
    system = [message.text for message in body.messages if message.is_system]
    turns = [Message(message.role, message.text) for message in body.messages  # type: ignore[arg-type]
             if not message.is_system]
    head = [Message("system", SYSTEM_SEPARATOR.join(system))] if system else []
    sampling = Sampling(
        max_tokens=body.max_completion_tokens or body.max_tokens or default_max_tokens,
        temperature=DEFAULT_TEMPERATURE if body.temperature is None else body.temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        stop=tuple(body.stop or ()),
        seed=body.seed,
    )
    return ChatRequest(tuple(head + turns), sampling)


# ---------------------------------------------------------------- answers


def usage(completion: Completion) -> dict[str, int]:
    return {"prompt_tokens": completion.input_tokens, "completion_tokens": completion.output_tokens,
            "total_tokens": completion.input_tokens + completion.output_tokens}


def chat_completion(completion: Completion, *, model: str, completion_id: str, created: int) -> dict:
    """The ``chat.completion`` object for a finished answer."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": completion.text, "refusal": None},
            "finish_reason": FINISH_REASONS[completion.stop_reason],
            "logprobs": None,
        }],
        "usage": usage(completion),
        "system_fingerprint": None,
    }


class ChatChunks:
    """The ``chat.completion.chunk`` objects of one streamed answer, in order.

    ``start()`` gives the chunk announcing the assistant role, ``delta(text)`` one chunk per piece
    of text, ``finish(completion)`` the chunk with the finish reason and, when the client asked for
    ``stream_options.include_usage``, a last chunk with empty ``choices`` and the usage (every
    earlier chunk then carries ``"usage": null``, as OpenAI sends them).
    """

    def __init__(self, *, model: str, completion_id: str, created: int, include_usage: bool = False):
        self.model = model
        self.completion_id = completion_id
        self.created = created
        self.include_usage = include_usage

    def _chunk(self, choices: list[dict], usage_counts: dict | None = None) -> dict:
        chunk: dict[str, Any] = {"id": self.completion_id, "object": "chat.completion.chunk",
                                 "created": self.created, "model": self.model,
                                 "system_fingerprint": None, "choices": choices}
        if self.include_usage:
            chunk["usage"] = usage_counts
        return chunk

    def _choice(self, delta: dict, finish_reason: str | None = None) -> dict:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

    def start(self) -> list[dict]:
        return [self._chunk([self._choice({"role": "assistant", "content": ""})])]

    def delta(self, text: str) -> list[dict]:
        return [self._chunk([self._choice({"content": text})])] if text else []

    def finish(self, completion: Completion) -> list[dict]:
        chunks = [self._chunk([self._choice({}, FINISH_REASONS[completion.stop_reason])])]
        if self.include_usage:
            chunks.append(self._chunk([], usage(completion)))
        return chunks
