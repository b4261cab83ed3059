"""OpenAI chat completions <-> Tailor's protocol: pure conversions, no HTTP and no model.

``chat_request`` turns a ``POST /v1/chat/completions`` body into a ``ChatRequest``;
``chat_completion`` and ``ChatChunks`` turn the engine's answer into the ``chat.completion`` object
and the ``chat.completion.chunk`` stream that the official ``openai`` client parses; ``error_body``
is OpenAI's error envelope for a Tailor error. Bedrock's InvokeModel reuses ``chat_request`` for
models whose native body is OpenAI-shaped (imported Qwen / GPT-OSS style models).

Decisions, so that nobody has to rediscover them:

* **Temperature** is passed through unchanged. OpenAI's 0-2 is the same softmax temperature the
  engine applies (logits / T), so no rescaling is needed; 0 means greedy. A request without one is
  answered greedily (``DEFAULT_TEMPERATURE``), not with OpenAI's default of 1: Tailor's users compare
  a fine-tuned model with its base, and a comparison needs answers that do not change run to run.
* **Roles**: ``developer`` is a ``system`` message. System messages must come before the
  conversation (chat templates render a system prompt only there); several leading ones are joined
  with a blank line. A final ``assistant`` message is kept last: the engine continues it (prefill),
  as Bedrock's Anthropic and Converse bodies define, and the answer holds only the continuation.
* **Content** is text: a string or ``{"type": "text", "text"}`` parts, joined with ``"\\n"``.
  Images, audio, files and tool calls are refused with the field that holds them.
* Accepted and ignored (they change nothing a client can observe): ``user``, ``metadata``,
  ``store``, ``service_tier``, ``parallel_tool_calls``, ``safety_identifier``,
  ``prompt_cache_key``. Unsupported features are refused rather than silently dropped:
  ``n`` > 1, non-zero penalties, ``logit_bias``, ``logprobs``, tools, JSON response formats.
  Any other key is an error naming it, as OpenAI's "Unrecognized request argument".
* **Bodies are read strictly** (``parse_body``): UTF-8, finite numbers, no lone surrogates, bounded
  nesting. ``max_tokens`` stops at 2147483647 and ``seed`` is an int64, so that nothing a client
  sends fails in the engine instead of here.
"""

from __future__ import annotations

import logging
from typing import Any

from tailor.api.bedrock.errors import writable
from tailor.api.bedrock.shapes import INTEGER_LIMITS, json_problems
from tailor.errors import (
    AccessDenied,
    Conflict,
    InvalidInput,
    ModelFailed,
    ModelNotReady,
    ModelTimeout,
    ModelUnavailable,
    NotFound,
    show_value,
)
from tailor.serve.protocol import ChatRequest, Completion, Message, Sampling, StopReason

logger = logging.getLogger(__name__)

DEFAULT_TEMPERATURE = 0.0
PART_SEPARATOR = "\n"
MAX_STOP_SEQUENCES = 4
# Integer bounds: a token count is a 32-bit int at most (as Bedrock's bodies take them); a seed is
# OpenAI's int64, which the engine's random generator takes whole.
MAX_TOKENS_LIMIT = INTEGER_LIMITS["integer"][1]
SEED_RANGE = INTEGER_LIMITS["long"]

FINISH_REASONS: dict[StopReason, str] = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}

_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
_MESSAGE_KEYS = {"role", "content", "name"}
_IGNORED = {"user", "metadata", "store", "service_tier", "parallel_tool_calls", "safety_identifier",
            "prompt_cache_key"}
_SAMPLING_KEYS = {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p",
                  "stop", "n", "seed", "stream", "stream_options", "presence_penalty", "frequency_penalty",
                  "logit_bias", "logprobs", "top_logprobs", "response_format", "modalities"}
_TOOL_KEYS = ("tools", "tool_choice", "functions", "function_call")
_NO_TOOLS = "tools are not supported: Tailor's models answer with text only"
_SYSTEM_FIRST = "a system or developer message must come before the user and assistant messages"
_UNSUPPORTED = {"audio": "audio output", "prediction": "predicted outputs",
                "web_search_options": "web search", "reasoning_effort": "reasoning effort (not a reasoning model)",
                "verbosity": "verbosity"}


class InvalidParameter(InvalidInput):
    """An invalid OpenAI request; ``param`` names the first offending field for the envelope."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = list(problems)
        self.param: str | None = problems[0][0] if problems else None
        lines = [f"{field}: {problem}" for field, problem in problems]
        if len(lines) == 1:
            super().__init__(lines[0])
        else:
            super().__init__(f"{len(lines)} problems in the request:\n  " + "\n  ".join(lines))


# ---------------------------------------------------------------- requests


def parse_body(raw: bytes) -> Any:
    """The JSON of a request body, or ``InvalidParameter`` naming where it is wrong: not UTF-8 or
    not JSON, nested too deep, a non-finite number, text with a lone surrogate (the strict reader
    the Bedrock routes use, ``tailor.api.bedrock.shapes.json_problems``)."""
    value, problems = json_problems(raw)
    if problems:
        raise InvalidParameter(problems)
    return value


def chat_request(body: dict, *, default_max_tokens: int, require_model: bool = True) -> ChatRequest:
    """The ``ChatRequest`` of a chat-completions body; one ``InvalidParameter`` lists every problem.

    ``require_model`` is false for Bedrock InvokeModel bodies, whose model is in the URL.
    """
    if not isinstance(body, dict):
        raise InvalidParameter([("body", f"must be a JSON object, got {show_value(body)}")])
    problems: list[tuple[str, str]] = []
    _check_keys(body, problems)
    if require_model and not (isinstance(body.get("model"), str) and body["model"]):
        problems.append(("model", "required: the model to answer" if "model" not in body
                         else f"must be a non-empty string, got {show_value(body['model'])}"))
    messages = _messages(body.get("messages"), problems)
    sampling = _sampling(body, default_max_tokens, problems)
    stream_settings(body, problems)
    if problems:
        raise InvalidParameter(problems)
    return ChatRequest(messages, sampling)


def stream_settings(body: dict, problems: list[tuple[str, str]] | None = None) -> tuple[bool, bool]:
    """``(stream, include_usage)`` of a body; problems are appended to ``problems`` (or raised)."""
    found: list[tuple[str, str]] = []
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        found.append(("stream", f"must be true or false, got {show_value(stream)}"))
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict):
            found.append(("stream_options", f"must be an object, got {show_value(options)}"))
        else:
            if stream is not True:
                found.append(("stream_options", "only allowed when stream is true"))
            for key in options:
                if key not in ("include_usage", "include_obfuscation"):
                    found.append((f"stream_options.{key}", "unknown option"))
            usage = options.get("include_usage")
            if usage is not None and not isinstance(usage, bool):
                found.append(("stream_options.include_usage", f"must be true or false, got {show_value(usage)}"))
            include_usage = usage is True
    if problems is not None:
        problems.extend(found)
    elif found:
        raise InvalidParameter(found)
    return stream is True, include_usage


def _check_keys(body: dict, problems: list[tuple[str, str]]) -> None:
    for key, value in body.items():
        if key in _TOOL_KEYS:
            if value not in (None, [], "none"):
                problems.append((key, _NO_TOOLS))
        elif key in _UNSUPPORTED:
            if value is not None:
                problems.append((key, f"not supported: {_UNSUPPORTED[key]}"))
        elif key not in _SAMPLING_KEYS and key not in _IGNORED:
            problems.append((key, "unrecognized request argument"))


def _messages(value: Any, problems: list[tuple[str, str]]) -> tuple[Message, ...]:
    if not isinstance(value, list) or not value:
        problems.append(("messages", "required: a non-empty list of messages" if value is None
                         else f"must be a non-empty list, got {show_value(value)}"))
        return ()
    system_parts: list[str] = []
    turns: list[Message] = []
    for index, item in enumerate(value):
        path = f"messages[{index}]"
        if not isinstance(item, dict):
            problems.append((path, f"must be an object, got {show_value(item)}"))
            continue
        role = _role(item, path, problems)
        content = _content(item, path, problems)
        if role is None or content is None:
            continue
        if role == "system":
            if turns:
                problems.append((f"{path}.role", _SYSTEM_FIRST))
            system_parts.append(content)
        else:
            turns.append(Message(role, content))
    if not turns and not any(p[0].startswith("messages") for p in problems):
        problems.append(("messages", "needs at least one user message"))
    system = [Message("system", "\n\n".join(system_parts))] if system_parts else []
    return tuple(system + turns)


def _role(item: dict, path: str, problems: list[tuple[str, str]]) -> str | None:
    for key, value in item.items():
        if key in ("tool_calls", "function_call"):
            if value:
                problems.append((f"{path}.{key}", _NO_TOOLS))
        elif key not in _MESSAGE_KEYS and key not in ("refusal", "audio"):
            problems.append((f"{path}.{key}", "unknown message field"))
    role = item.get("role")
    if not isinstance(role, str) and role is not None:
        problems.append((f"{path}.role", f"must be system, developer, user or assistant, got {show_value(role)}"))
        return None
    if role in ("tool", "function"):
        problems.append((f"{path}.role", f"{role!r} messages are not supported: Tailor's models do not call tools"))
        return None
    if role not in _ROLES:
        problems.append((f"{path}.role", "required" if role is None
                         else f"must be system, developer, user or assistant, got {show_value(role)}"))
        return None
    if item.get("audio") is not None:
        problems.append((f"{path}.audio", "not supported: Tailor's models take text only"))
    return _ROLES[role]


def _content(item: dict, path: str, problems: list[tuple[str, str]]) -> str | None:
    content = item.get("content")
    if isinstance(content, str):
        return content
    if content is None:
        problems.append((f"{path}.content", "required: a string or a list of text parts"))
        return None
    if not isinstance(content, list):
        problems.append((f"{path}.content", f"must be a string or a list of text parts, got {show_value(content)}"))
        return None
    texts = []
    for index, part in enumerate(content):
        part_path = f"{path}.content[{index}]"
        if not isinstance(part, dict):
            problems.append((part_path, f"must be an object, got {show_value(part)}"))
        elif part.get("type") != "text":
            kind = part.get("type")
            problems.append((f"{part_path}.type", f"{kind!r} parts are not supported: Tailor's models take text only"
                             if isinstance(kind, str) else "required: 'text'"))
        elif not isinstance(part.get("text"), str):
            problems.append((f"{part_path}.text", f"must be a string, got {show_value(part.get('text'))}"))
        else:
            texts.append(part["text"])
    return PART_SEPARATOR.join(texts)


def _sampling(body: dict, default_max_tokens: int, problems: list[tuple[str, str]]) -> Sampling:
    max_tokens = _max_tokens(body, default_max_tokens, problems)
    temperature = _number(body, "temperature", 0, 2, DEFAULT_TEMPERATURE, problems)
    top_p = _number(body, "top_p", 0, 1, 1.0, problems)
    for penalty in ("presence_penalty", "frequency_penalty"):
        value = _number(body, penalty, -2, 2, 0.0, problems)
        if value != 0:
            problems.append((penalty, f"not supported: only 0 is, got {value}"))
    n = body.get("n")
    if n is not None and (isinstance(n, bool) or n != 1):
        problems.append(("n", f"only 1 choice per request is supported, got {show_value(n)}"))
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        problems.append(("seed", f"must be an integer, got {show_value(seed)}"))
        seed = None
    elif seed is not None and not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        problems.append(("seed", f"must be between {SEED_RANGE[0]} and {SEED_RANGE[1]}, got {show_value(seed)}"))
        seed = None
    _unsupported_outputs(body, problems)
    return Sampling(max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                    stop=_stop(body.get("stop"), problems), seed=seed)


def _max_tokens(body: dict, default: int, problems: list[tuple[str, str]]) -> int:
    values = {}
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append((key, f"must be an integer of at least 1, got {show_value(value)}"))
        elif value > MAX_TOKENS_LIMIT:
            problems.append((key, f"must be an integer of at most {MAX_TOKENS_LIMIT}, got {show_value(value)}"))
        else:
            values[key] = value
    if len(set(values.values())) > 1:
        problems.append(("max_tokens", "differs from max_completion_tokens: give one of them"))
    return next(iter(values.values()), default)


def _number(body: dict, key: str, low: float, high: float, default: float,
            problems: list[tuple[str, str]]) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        problems.append((key, f"must be a number between {low} and {high}, got {show_value(value)}"))
        return default
    return float(value)


def _stop(value: Any, problems: list[tuple[str, str]]) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) and item for item in items):
        problems.append(("stop", f"must be a non-empty string or a list of them, got {show_value(value)}"))
        return ()
    if len(items) > MAX_STOP_SEQUENCES:
        problems.append(("stop", f"at most {MAX_STOP_SEQUENCES} sequences, got {len(items)}"))
    return tuple(items)


def _unsupported_outputs(body: dict, problems: list[tuple[str, str]]) -> None:
    if body.get("logit_bias"):
        problems.append(("logit_bias", "not supported"))
    if body.get("logprobs"):
        problems.append(("logprobs", "not supported"))
    if body.get("top_logprobs") is not None:
        problems.append(("top_logprobs", "not supported"))
    response_format = body.get("response_format")
    if response_format is not None and response_format != {"type": "text"}:
        kind = response_format.get("type") if isinstance(response_format, dict) else response_format
        problems.append(("response_format", f"only {{'type': 'text'}} is supported, got {show_value(kind)}"))
    modalities = body.get("modalities")
    if modalities is not None and modalities != ["text"]:
        problems.append(("modalities", f"only ['text'] is supported, got {show_value(modalities)}"))


# ---------------------------------------------------------------- responses


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


# ---------------------------------------------------------------- errors

# Conflict and ModelUnavailable answer 400, not 409/503: the openai client retries 409 and 5xx,
# and neither condition goes away by retrying the same request.
_ERRORS: dict[type[Exception], tuple[int, str, str | None]] = {
    InvalidInput: (400, "invalid_request_error", "invalid_value"),
    NotFound: (404, "invalid_request_error", "not_found"),
    AccessDenied: (401, "invalid_request_error", "invalid_api_key"),
    Conflict: (400, "invalid_request_error", "conflict"),
    ModelUnavailable: (400, "invalid_request_error", "model_unavailable"),
    # These pass with time, so they carry statuses the openai client retries.
    ModelNotReady: (503, "server_error", "model_not_ready"),
    ModelTimeout: (408, "server_error", "timeout"),
    ModelFailed: (502, "server_error", "model_error"),
}
INTERNAL_MESSAGE = "Tailor hit an internal error; the server log has the details."


def error_body(error: Exception) -> tuple[int, dict]:
    """``(HTTP status, {"error": {"message", "type", "param", "code"}})`` for ``error``.

    An exception that is not a known Tailor error is a bug: the client gets a generic 500
    ``server_error`` and the traceback goes to the log.
    """
    for cls in type(error).__mro__:
        if cls in _ERRORS:
            status, kind, code = _ERRORS[cls]
            message = getattr(error, "message", None) or str(error)
            return status, envelope(message, kind, code, getattr(error, "param", None))
    logger.error("internal error answered as server_error", exc_info=error)
    return 500, envelope(INTERNAL_MESSAGE, "server_error", None)


def envelope(message: str, kind: str, code: str | None, param: str | None = None) -> dict:
    """``{"error": {"message", "type", "param", "code"}}``, its text made writable: a message echoing
    client text may hold a lone surrogate, which no UTF-8 encoder accepts; it becomes an escape."""
    return {"error": {"message": writable(message), "type": kind,
                      "param": writable(param) if isinstance(param, str) else param, "code": code}}
