"""bedrock-runtime bodies <-> Tailor's protocol: pure conversions, no HTTP and no model.

InvokeModel carries the model's *native* body, whose shape depends on the model family; the lead
maps each catalog family to one of ``BODY_KINDS``. ``parse_invoke_body`` turns such a body into a
``ChatRequest``; ``invoke_response`` and ``NativeStream`` turn the engine's answer back into the
native response body and the native stream events (each sent as one ``chunk`` by
``tailor.api.bedrock.eventstream``). Converse and ConverseStream have one model-independent shape:
``converse_request``, ``converse_response`` and ``ConverseStream``. ``count_tokens_request`` gives
the conversation whose prompt CountTokens counts.

Every bad request raises one ``InvalidInput`` listing all its problems, one ``field.path: problem``
per line, named as the wire JSON names them (``messages[1].role``,
``textGenerationConfig.maxTokenCount``).

Decisions, so that nobody has to rediscover them:

* **Prompt-style bodies** (cohere, titan, llama) become one user message holding the prompt
  verbatim. Tailor trains a prompt/completion record as exactly that user turn followed by an
  assistant turn, so a deployed model sees the tokens it was trained on. (A Llama body that already
  holds Llama's own ``<|start_header_id|>`` markup is still wrapped: the chat template renders it.)
* **Prefill**: Anthropic and Converse let the conversation end with an assistant message, which
  the model continues. The ``ChatRequest`` keeps it as its last message; the engine continues that
  message instead of opening a new turn, and the answer holds only the continuation, as in the
  original. Its text may not end in whitespace (the original's rule); an empty final assistant
  message is dropped, since continuing nothing is an ordinary request.
* **Several text blocks** in one message are joined with ``BLOCK_SEPARATOR`` (a newline).
* **Sampling defaults**: a request that does not set a temperature is answered greedily
  (``DEFAULT_TEMPERATURE`` = 0), not with each original's default (1.0 Anthropic, 0.7 Titan, 0.9
  Cohere, 0.5 Llama): Tailor's users compare a fine-tuned model with its base, and a comparison
  needs answers that stay the same run to run. Explicit values pass through unchanged (all these
  temperatures are the softmax temperature the engine applies); the top-p/top-k defaults follow
  the temperature's lead and are off. Cohere's ``p`` of 0 means "off", as in the original.
* **Default answer lengths** follow the originals: Cohere ``max_tokens`` 20, Titan
  ``maxTokenCount`` 512, Llama ``max_gen_len`` 512; Converse and OpenAI bodies without one get the
  caller's ``default_max_tokens``. Anthropic requires ``max_tokens``.
* **Accepted and ignored**: Anthropic ``anthropic_beta`` and block ``cache_control``; Cohere
  ``return_likelihoods`` (no likelihoods are returned), ``logit_bias``, ``truncate`` (prompts are
  never truncated; a prompt too long for the model is the engine's error) and ``stream`` (the
  operation decides whether to stream); Converse ``cachePoint`` blocks, ``requestMetadata``,
  ``performanceConfig``, ``serviceTier`` and ``additionalModelResponseFieldPaths`` (no additional
  fields are returned).
* **Bodies are read strictly** (``shapes.parse_json``): UTF-8, finite numbers, no lone surrogates,
  bounded nesting; an integer field without a limit of its own (``max_tokens``, ``top_k``) stops at
  2147483647, a Java int, as the original parses it. Such input is refused by field here, never
  passed to the engine to fail there.
* **Refused** with the field named: images, documents, audio and video (Tailor's models take text
  only), tools, guardrails, prompt variables, structured output, extended thinking, Cohere
  ``num_generations`` > 1, and any key the native body does not define.
"""

from __future__ import annotations

import difflib
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from tailor.api.bedrock.shapes import INTEGER_LIMITS, parse_json, problems_message
from tailor.api.openai import convert as openai_convert
from tailor.errors import InvalidInput, show_value
from tailor.serve.protocol import ChatRequest, Completion, Message, Sampling, StopReason

BODY_KINDS = ("anthropic", "cohere", "titan", "llama", "openai")
ANTHROPIC_VERSION = "bedrock-2023-05-31"
BLOCK_SEPARATOR = "\n"
DEFAULT_TEMPERATURE = openai_convert.DEFAULT_TEMPERATURE
METRICS_KEY = "amazon-bedrock-invocationMetrics"

COHERE_DEFAULT_MAX_TOKENS = 20
TITAN_DEFAULT_MAX_TOKENS = 512
LLAMA_DEFAULT_MAX_TOKENS = 512

# Native stop reasons per body kind, from Tailor's three. Titan's real responses say "FINISH"
# (the user guide's "FINISHED" is not what the service sends); Cohere reports a stop sequence as
# COMPLETE and Llama as "stop", having no separate value for it.
COHERE_FINISH: dict[StopReason, str] = {"end_turn": "COMPLETE", "stop_sequence": "COMPLETE", "max_tokens": "MAX_TOKENS"}
TITAN_COMPLETION: dict[StopReason, str] = {"end_turn": "FINISH", "stop_sequence": "STOP_CRITERIA_MET",
                                           "max_tokens": "LENGTH"}
LLAMA_STOP: dict[StopReason, str] = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}

_TEXT_ONLY = "not supported: Tailor's models take text only"
_NO_TOOLS = "tools are not supported: Tailor's models answer with text only"


def _check_kind(kind: str) -> None:
    if kind not in BODY_KINDS:
        raise ValueError(f"unknown body kind {kind!r}; expected one of {', '.join(BODY_KINDS)}")


def _fail(problems: list[str]) -> None:
    if problems:
        raise InvalidInput(problems_message(problems))


# ---------------------------------------------------------------- field checks
# Each appends "path: problem" lines to ``problems`` and returns a usable value (the default when
# the field is wrong), so that one pass finds every problem of a body.


def _path(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _unknown_keys(obj: dict, allowed: set[str], prefix: str, problems: list[str],
                  refused: dict[str, str] | None = None) -> None:
    """Name every key of ``obj`` outside ``allowed``; ``refused`` keys get their own reason."""
    refused = refused or {}
    for key in obj:
        if key in refused:
            problems.append(f"{_path(prefix, str(key))}: {refused[key]}")
        elif key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(sorted(allowed))}"
            problems.append(f"{_path(prefix, str(key))}: unknown field ({hint})")


def _number(obj: dict, key: str, prefix: str, problems: list[str], *, low: float, high: float,
            default: float) -> float:
    value = obj.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        problems.append(f"{_path(prefix, key)}: must be a number between {low:g} and {high:g}, got {show_value(value)}")
        return default
    return float(value)


# The largest integer a body field without a limit of its own takes: a Java int, as the original
# service parses these fields. A token count or top_k past it is a mistake, not a request.
MAX_INTEGER = INTEGER_LIMITS["integer"][1]


def _integer(obj: dict, key: str, prefix: str, problems: list[str], *, low: int, high: int | None = None,
             default: int) -> int:
    value = obj.get(key)
    if value is None:
        return default
    in_range = isinstance(value, int) and low <= value <= (MAX_INTEGER if high is None else high)
    if isinstance(value, bool) or not in_range:
        bounds = (f"between {low} and {high}" if high is not None
                  else f"of at most {MAX_INTEGER}" if isinstance(value, int) and value > MAX_INTEGER
                  else f"of at least {low}")
        problems.append(f"{_path(prefix, key)}: must be an integer {bounds}, got {show_value(value)}")
        return default
    return value


def _strings(obj: dict, key: str, prefix: str, problems: list[str], *, max_items: int | None = None) -> tuple[str, ...]:
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        problems.append(f"{_path(prefix, key)}: must be a list of non-empty strings, got {show_value(value)}")
        return ()
    if max_items is not None and len(value) > max_items:
        problems.append(f"{_path(prefix, key)}: at most {max_items} items, got {len(value)}")
    return tuple(value)


def _text(obj: dict, key: str, prefix: str, problems: list[str]) -> str:
    """A required string with something in it."""
    value = obj.get(key)
    if value is None:
        problems.append(f"{_path(prefix, key)}: required")
    elif not isinstance(value, str):
        problems.append(f"{_path(prefix, key)}: must be a string, got {show_value(value)}")
    elif not value.strip():
        problems.append(f"{_path(prefix, key)}: must not be blank")
    else:
        return value
    return ""


def _choice(obj: dict, key: str, prefix: str, problems: list[str], choices: tuple[str, ...]) -> None:
    value = obj.get(key)
    if value is not None and value not in choices:
        problems.append(f"{_path(prefix, key)}: must be one of {', '.join(choices)}, got {show_value(value)}")


Turn = tuple[str, str | None, str | None]  # (path of the message, role, text); None: already reported


def _check_turns(turns: list[Turn], problems: list[str]) -> tuple[Message, ...]:
    """Turns -> messages: roles alternate starting with user; only a final assistant turn may be empty.

    ``path`` names the message (``messages[2]``) in the problems found here. A role or text that
    is None was wrong and already reported; the checks that depend on it are skipped, so one
    mistake is reported once.
    """
    for index, (path, role, text) in enumerate(turns):
        previous_path, previous_role, _ = turns[index - 1] if index else (None, None, None)
        if index == 0 and role not in ("user", None):
            problems.append(f"{path}.role: the first message must be a user message, got {role!r}")
        elif index > 0 and role is not None and role == previous_role:
            problems.append(f"{path}.role: roles must alternate between user and assistant, "
                            f"but {previous_path} is also {role!r}")
        if text is None:
            continue
        if index == len(turns) - 1 and role == "assistant":
            if text != text.rstrip():
                problems.append(f"{path}.content: a final assistant message (prefill) cannot end with whitespace")
        elif not text.strip():
            problems.append(f"{path}.content: must not be empty (only a final assistant message may be)")
    if turns and turns[-1][1] == "assistant" and not turns[-1][2]:
        turns = turns[:-1]  # an empty prefill continues nothing: an ordinary request
    return tuple(Message(role or "user", text or "") for _, role, text in turns)  # type: ignore[arg-type]


def _reported(problems: list[str], before: int, text: str) -> str | None:
    """``text``, or None when checking it added problems (so it is not also called empty)."""
    return None if len(problems) > before else text


def _with_system(system: str, messages: tuple[Message, ...]) -> tuple[Message, ...]:
    return ((Message("system", system),) if system.strip() else ()) + messages


# ---------------------------------------------------------------- InvokeModel requests


def parse_invoke_body(kind: str, body: bytes | str, *, default_max_tokens: int) -> ChatRequest:
    """The ``ChatRequest`` of a raw InvokeModel body of the given kind (see the module docstring).

    Raises ``InvalidInput`` naming every problem: not JSON (with line and column), not an object,
    a missing or wrong field, an unknown key, a feature Tailor does not have.
    """
    _check_kind(kind)
    data = _json_object(body)
    if kind == "openai":
        return openai_convert.chat_request(data, default_max_tokens=default_max_tokens, require_model=False)
    problems: list[str] = []
    request = _BODY_PARSERS[kind](data, problems)
    _fail(problems)
    return request


def _json_object(body: bytes | str) -> dict:
    data = parse_json(body)  # UTF-8, finite numbers, no lone surrogates, bounded nesting
    if not isinstance(data, dict):
        raise InvalidInput(f"body: must be a JSON object, got {show_value(data)}")
    return data


def _anthropic(body: dict, problems: list[str]) -> ChatRequest:
    allowed = {"anthropic_version", "anthropic_beta", "max_tokens", "messages", "system", "temperature",
               "top_p", "top_k", "stop_sequences"}
    _unknown_keys(body, allowed, "", problems, refused={
        "tools": _NO_TOOLS, "tool_choice": _NO_TOOLS, "thinking": "extended thinking is not supported"})
    version = body.get("anthropic_version")
    if version is None:
        problems.append(f"anthropic_version: required (use {ANTHROPIC_VERSION!r})")
    elif version != ANTHROPIC_VERSION:
        problems.append(f"anthropic_version: must be {ANTHROPIC_VERSION!r}, got {show_value(version)}")
    beta = body.get("anthropic_beta")
    if beta is not None and not (isinstance(beta, list) and all(isinstance(item, str) for item in beta)):
        problems.append(f"anthropic_beta: must be a list of strings, got {show_value(beta)}")
    if body.get("max_tokens") is None:
        problems.append("max_tokens: required")
    sampling = Sampling(
        max_tokens=_integer(body, "max_tokens", "", problems, low=1, default=1),
        temperature=_number(body, "temperature", "", problems, low=0, high=1, default=DEFAULT_TEMPERATURE),
        top_p=_number(body, "top_p", "", problems, low=0, high=1, default=1.0),
        top_k=_integer(body, "top_k", "", problems, low=0, default=0),
        stop=_strings(body, "stop_sequences", "", problems),
    )
    system = _anthropic_system(body.get("system"), problems)
    messages = _anthropic_messages(body.get("messages"), problems)
    return ChatRequest(_with_system(system, messages), sampling)


def _anthropic_system(value: Any, problems: list[str]) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, list):
        return _anthropic_blocks(value, "system", problems)
    problems.append(f"system: must be a string or a list of text blocks, got {show_value(value)}")
    return ""


def _anthropic_messages(value: Any, problems: list[str]) -> tuple[Message, ...]:
    if value is None:
        problems.append("messages: required")
        return ()
    if not isinstance(value, list) or not value:
        problems.append(f"messages: must be a non-empty list, got {show_value(value)}")
        return ()
    turns = []
    for index, item in enumerate(value):
        path = f"messages[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{path}: must be an object with role and content, got {show_value(item)}")
            continue
        _unknown_keys(item, {"role", "content"}, path, problems)
        role = item.get("role")
        if role not in ("user", "assistant"):
            problems.append(f"{path}.role: " + ("required" if role is None
                                                 else f"must be user or assistant, got {show_value(role)}"))
            role = None
        content = item.get("content")
        before = len(problems)
        text: str | None = None
        if isinstance(content, str):
            text = content
        elif isinstance(content, list):
            text = _reported(problems, before, _anthropic_blocks(content, f"{path}.content", problems))
        else:
            wrong = f"must be a string or a list of content blocks, got {show_value(content)}"
            problems.append(f"{path}.content: " + ("required" if content is None else wrong))
        turns.append((path, role, text))
    return _check_turns(turns, problems)


_ANTHROPIC_REFUSED_BLOCKS = {
    "image": _TEXT_ONLY, "document": _TEXT_ONLY, "tool_use": _NO_TOOLS, "tool_result": _NO_TOOLS,
    "thinking": "thinking blocks are not supported", "redacted_thinking": "thinking blocks are not supported",
}


def _anthropic_blocks(blocks: list, path: str, problems: list[str]) -> str:
    texts = []
    for index, block in enumerate(blocks):
        block_path = f"{path}[{index}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if not isinstance(block, dict):
            problems.append(f"{block_path}: must be a content block object, got {show_value(block)}")
        elif isinstance(kind, str) and kind in _ANTHROPIC_REFUSED_BLOCKS:
            problems.append(f"{block_path}.type: {kind!r} blocks are {_ANTHROPIC_REFUSED_BLOCKS[kind]}")
        elif kind != "text":
            problems.append(f"{block_path}.type: " + ("required: 'text'" if kind is None
                                                       else f"unknown block type {show_value(kind)}; Tailor takes 'text'"))
        else:
            _unknown_keys(block, {"type", "text", "cache_control", "citations"}, block_path, problems)
            if not isinstance(block.get("text"), str):
                problems.append(f"{block_path}.text: " + ("required" if block.get("text") is None
                                                           else f"must be a string, got {show_value(block.get('text'))}"))
            else:
                texts.append(block["text"])
    return BLOCK_SEPARATOR.join(texts)


def _prompt_request(prompt: str, sampling: Sampling) -> ChatRequest:
    return ChatRequest((Message("user", prompt),), sampling)


def _cohere(body: dict, problems: list[str]) -> ChatRequest:
    allowed = {"prompt", "temperature", "p", "k", "max_tokens", "stop_sequences", "return_likelihoods",
               "stream", "num_generations", "logit_bias", "truncate"}
    _unknown_keys(body, allowed, "", problems)
    prompt = _text(body, "prompt", "", problems)
    top_p = _number(body, "p", "", problems, low=0, high=1, default=1.0)
    sampling = Sampling(
        max_tokens=_integer(body, "max_tokens", "", problems, low=1, high=4096, default=COHERE_DEFAULT_MAX_TOKENS),
        temperature=_number(body, "temperature", "", problems, low=0, high=5, default=DEFAULT_TEMPERATURE),
        top_p=top_p or 1.0,  # Cohere: p = 0 switches nucleus sampling off
        top_k=_integer(body, "k", "", problems, low=0, high=500, default=0),
        stop=_strings(body, "stop_sequences", "", problems, max_items=4),
    )
    generations = _integer(body, "num_generations", "", problems, low=1, high=5, default=1)
    if generations != 1:
        problems.append(f"num_generations: only 1 generation per request is supported, got {generations}")
    _choice(body, "return_likelihoods", "", problems, ("GENERATION", "ALL", "NONE"))
    _choice(body, "truncate", "", problems, ("NONE", "START", "END"))
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        problems.append(f"stream: must be true or false, got {show_value(body['stream'])}")
    bias = body.get("logit_bias")
    if bias is not None and not (isinstance(bias, dict) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in bias.values())):
        problems.append(f"logit_bias: must be an object of token id -> number, got {show_value(bias)}")
    return _prompt_request(prompt, sampling)


def _titan(body: dict, problems: list[str]) -> ChatRequest:
    _unknown_keys(body, {"inputText", "textGenerationConfig"}, "", problems)
    prompt = _text(body, "inputText", "", problems)
    config = body.get("textGenerationConfig")
    if config is None:
        config = {}
    elif not isinstance(config, dict):
        problems.append(f"textGenerationConfig: must be an object, got {show_value(config)}")
        config = {}
    prefix = "textGenerationConfig"
    _unknown_keys(config, {"temperature", "topP", "maxTokenCount", "stopSequences"}, prefix, problems)
    sampling = Sampling(
        max_tokens=_integer(config, "maxTokenCount", prefix, problems, low=1, high=8192,
                            default=TITAN_DEFAULT_MAX_TOKENS),
        temperature=_number(config, "temperature", prefix, problems, low=0, high=1, default=DEFAULT_TEMPERATURE),
        top_p=_number(config, "topP", prefix, problems, low=0, high=1, default=1.0),
        stop=_strings(config, "stopSequences", prefix, problems),
    )
    return _prompt_request(prompt, sampling)


def _llama(body: dict, problems: list[str]) -> ChatRequest:
    _unknown_keys(body, {"prompt", "temperature", "top_p", "max_gen_len"}, "", problems,
                  refused={"images": f"images are {_TEXT_ONLY}"})
    prompt = _text(body, "prompt", "", problems)
    sampling = Sampling(
        max_tokens=_integer(body, "max_gen_len", "", problems, low=1, high=2048, default=LLAMA_DEFAULT_MAX_TOKENS),
        temperature=_number(body, "temperature", "", problems, low=0, high=1, default=DEFAULT_TEMPERATURE),
        top_p=_number(body, "top_p", "", problems, low=0, high=1, default=1.0),
    )
    return _prompt_request(prompt, sampling)


_BODY_PARSERS: dict[str, Callable[[dict, list[str]], ChatRequest]] = {
    "anthropic": _anthropic, "cohere": _cohere, "titan": _titan, "llama": _llama,
}


# ---------------------------------------------------------------- InvokeModel responses


def invocation_metrics(completion: Completion) -> dict[str, int]:
    """The ``amazon-bedrock-invocationMetrics`` object the last native stream chunk carries."""
    return {"inputTokenCount": completion.input_tokens, "outputTokenCount": completion.output_tokens,
            "invocationLatency": completion.latency_ms, "firstByteLatency": completion.first_token_ms}


def _message_id(request_id: str) -> str:
    return "msg_bdrk_" + request_id.replace("-", "")


def _generation_id(request_id: str) -> str:
    # Cohere's generation ids are UUIDs; derived from the request id so a response is reproducible.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"tailor:generation:{request_id}"))


def echoed_prompt(request_body: bytes | str | None) -> str:
    """The ``prompt`` of a (valid) Cohere request body, which Cohere's responses echo; "" if none."""
    if request_body is None:
        return ""
    try:
        prompt = json.loads(request_body).get("prompt")
    except (ValueError, AttributeError):
        return ""
    return prompt if isinstance(prompt, str) else ""


def invoke_response(kind: str, completion: Completion, *, model_id: str, request_id: str,
                    request_body: bytes | str | None = None, created: int | None = None) -> dict:
    """The native InvokeModel response body for ``completion``.

    ``request_body`` is the raw request body, whose prompt Cohere responses echo; ``created``
    (epoch seconds, default now) stamps OpenAI ones.
    """
    _check_kind(kind)
    reason = completion.stop_reason
    if kind == "anthropic":
        return {
            "id": _message_id(request_id), "type": "message", "role": "assistant", "model": model_id,
            "content": [{"type": "text", "text": completion.text}],
            "stop_reason": reason,
            "stop_sequence": completion.stop_sequence if reason == "stop_sequence" else None,
            "usage": {"input_tokens": completion.input_tokens, "output_tokens": completion.output_tokens},
        }
    if kind == "cohere":
        return {"id": request_id, "prompt": echoed_prompt(request_body), "generations": [
            {"id": _generation_id(request_id), "text": completion.text, "finish_reason": COHERE_FINISH[reason]}]}
    if kind == "titan":
        return {"inputTextTokenCount": completion.input_tokens, "results": [
            {"tokenCount": completion.output_tokens, "outputText": completion.text,
             "completionReason": TITAN_COMPLETION[reason]}]}
    if kind == "llama":
        return {"generation": completion.text, "prompt_token_count": completion.input_tokens,
                "generation_token_count": completion.output_tokens, "stop_reason": LLAMA_STOP[reason]}
    return openai_convert.chat_completion(completion, model=model_id, completion_id=f"chatcmpl-{request_id}",
                                          created=int(time.time()) if created is None else created)


class NativeStream:
    """The native stream events of one InvokeModelWithResponseStream answer, in order.

    ``start()`` before the first text, ``delta(text)`` for each piece, ``finish(completion)`` at the
    end; each returns the JSON objects to send, one ``chunk`` event each. The last object always
    carries ``amazon-bedrock-invocationMetrics``. Shapes per kind:

    * anthropic: message_start, content_block_start, content_block_delta (text_delta) ...,
      content_block_stop, message_delta (stop_reason, usage.output_tokens), message_stop.
    * titan: ``{"outputText", "index": 0, "totalOutputTextTokenCount", "completionReason",
      "inputTextTokenCount"}`` per piece (counts only where known: the prompt count on the first),
      then a last one with empty text, the output count and the completion reason.
    * llama: ``{"generation", "prompt_token_count", "generation_token_count", "stop_reason"}`` per
      piece (pieces counted, not tokens, until the last), then a last one with the stop reason.
    * cohere: ``{"text", "is_finished": false}`` per piece, then ``{"is_finished": true,
      "finish_reason", "id", "prompt", "generations": [the whole answer]}``. Readers of the original
      stream disagree on its shape (LangChain reads ``text``/``is_finished``, AWS's own example
      prints ``generations[0].text`` where present); this one gives both exactly the whole text once.
    * openai: ``chat.completion.chunk`` objects (role, content deltas, finish reason).
    """

    def __init__(self, kind: str, *, model_id: str, request_id: str, request_body: bytes | str | None = None,
                 created: int | None = None):
        _check_kind(kind)
        self.kind = kind
        self.model_id = model_id
        self.request_id = request_id
        self.prompt = echoed_prompt(request_body) if kind == "cohere" else ""
        self.input_tokens = 0
        self.pieces = 0
        self._openai = openai_convert.ChatChunks(
            model=model_id, completion_id=f"chatcmpl-{request_id}",
            created=int(time.time()) if created is None else created)

    def start(self, input_tokens: int = 0) -> list[dict]:
        """The events before any text; ``input_tokens`` is the prompt's length if already known."""
        self.input_tokens = input_tokens
        if self.kind == "anthropic":
            message = {"id": _message_id(self.request_id), "type": "message", "role": "assistant",
                       "model": self.model_id, "content": [], "stop_reason": None, "stop_sequence": None,
                       "usage": {"input_tokens": input_tokens, "output_tokens": 0}}
            return [{"type": "message_start", "message": message},
                    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}]
        if self.kind == "openai":
            return self._openai.start()
        return []

    def delta(self, text: str) -> list[dict]:
        if not text:
            return []
        self.pieces += 1
        first = self.pieces == 1
        if self.kind == "anthropic":
            return [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}]
        if self.kind == "titan":
            return [{"outputText": text, "index": 0, "totalOutputTextTokenCount": None, "completionReason": None,
                     "inputTextTokenCount": self.input_tokens if first else None}]
        if self.kind == "llama":
            return [{"generation": text, "prompt_token_count": self.input_tokens if first else None,
                     "generation_token_count": self.pieces, "stop_reason": None}]
        if self.kind == "cohere":
            return [{"text": text, "is_finished": False}]
        return self._openai.delta(text)

    def finish(self, completion: Completion) -> list[dict]:
        events = self._final_events(completion)
        events[-1][METRICS_KEY] = invocation_metrics(completion)
        return events

    def _final_events(self, completion: Completion) -> list[dict]:
        reason = completion.stop_reason
        no_text_sent = self.pieces == 0
        if self.kind == "anthropic":
            stop_sequence = completion.stop_sequence if reason == "stop_sequence" else None
            return [{"type": "content_block_stop", "index": 0},
                    {"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": stop_sequence},
                     "usage": {"output_tokens": completion.output_tokens}},
                    {"type": "message_stop"}]
        if self.kind == "titan":
            return [{"outputText": "", "index": 0, "totalOutputTextTokenCount": completion.output_tokens,
                     "completionReason": TITAN_COMPLETION[reason],
                     "inputTextTokenCount": completion.input_tokens if no_text_sent else None}]
        if self.kind == "llama":
            return [{"generation": "", "prompt_token_count": completion.input_tokens if no_text_sent else None,
                     "generation_token_count": completion.output_tokens, "stop_reason": LLAMA_STOP[reason]}]
        if self.kind == "cohere":
            finish_reason = COHERE_FINISH[reason]
            return [{"is_finished": True, "finish_reason": finish_reason, "id": self.request_id,
                     "prompt": self.prompt, "generations": [
                         {"id": _generation_id(self.request_id), "text": completion.text,
                          "finish_reason": finish_reason}]}]
        return self._openai.finish(completion)


# ---------------------------------------------------------------- Converse


def converse_request(params: dict, *, default_max_tokens: int) -> ChatRequest:
    """The ``ChatRequest`` of a Converse / ConverseStream request already checked against its shape.

    Blobs are bytes by now; ``modelId`` and the ignored members (module docstring) play no part.
    """
    problems: list[str] = []
    request = _converse(params, "", default_max_tokens, problems)
    _fail(problems)
    return request


_CONVERSE_REFUSED = {
    "toolConfig": _NO_TOOLS,
    "guardrailConfig": "guardrails are not supported by Tailor",
    "promptVariables": "prompt variables need a prompt resource, which Tailor does not have",
    "outputConfig": "structured output is not supported",
}


def _converse(params: dict, prefix: str, default_max_tokens: int, problems: list[str]) -> ChatRequest:
    for key, reason in _CONVERSE_REFUSED.items():
        if params.get(key):
            problems.append(f"{_path(prefix, key)}: {reason}")
    system = _converse_system(params.get("system"), _path(prefix, "system"), problems)
    messages = _converse_messages(params.get("messages"), _path(prefix, "messages"), problems)
    inference = params.get("inferenceConfig") or {}
    config = _path(prefix, "inferenceConfig")
    extra = _additional_fields(params.get("additionalModelRequestFields"),
                               _path(prefix, "additionalModelRequestFields"), problems)
    sampling = Sampling(
        max_tokens=_integer(inference, "maxTokens", config, problems, low=1, default=default_max_tokens),
        temperature=_number(inference, "temperature", config, problems, low=0, high=1, default=DEFAULT_TEMPERATURE),
        top_p=_number(inference, "topP", config, problems, low=0, high=1, default=1.0),
        top_k=_integer(extra, "top_k", _path(prefix, "additionalModelRequestFields"), problems, low=0, default=0),
        stop=_strings(inference, "stopSequences", config, problems, max_items=2500),
    )
    return ChatRequest(_with_system(system, messages), sampling)


def _additional_fields(value: Any, path: str, problems: list[str]) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{path}: must be an object, got {show_value(value)}")
        return {}
    for key in value:
        if key != "top_k":
            problems.append(f"{path}.{key}: not supported (Tailor's models take top_k here)")
    return value


# Converse content block members that Tailor refuses, with the reason.
_CONVERSE_REFUSED_BLOCKS = {
    "image": _TEXT_ONLY, "document": _TEXT_ONLY, "video": _TEXT_ONLY, "audio": _TEXT_ONLY,
    "toolUse": _NO_TOOLS, "toolResult": _NO_TOOLS, "toolAddition": _NO_TOOLS, "toolRemoval": _NO_TOOLS,
    "guardContent": "guardrails are not supported by Tailor",
    "reasoningContent": "reasoning content is not supported",
    "citationsContent": "citations are not supported", "searchResult": "search results are not supported",
}


def _converse_blocks(blocks: Any, path: str, problems: list[str]) -> str | None:
    """The text of a list of content blocks; cache points are skipped."""
    if not isinstance(blocks, list):
        wrong = f"must be a list of content blocks, got {show_value(blocks)}"
        problems.append(f"{path}: " + ("required" if blocks is None else wrong))
        return None
    texts = []
    for index, block in enumerate(blocks):
        block_path = f"{path}[{index}]"
        if not isinstance(block, dict):
            problems.append(f"{block_path}: must be a content block, got {show_value(block)}")
            continue
        for member, value in block.items():
            if value is None:
                continue
            if member == "text":
                if not isinstance(value, str) or not value.strip():
                    problems.append(f"{block_path}.text: must not be blank")
                else:
                    texts.append(value)
            elif member in _CONVERSE_REFUSED_BLOCKS:
                problems.append(f"{block_path}.{member}: {_CONVERSE_REFUSED_BLOCKS[member]}")
            elif member != "cachePoint":
                problems.append(f"{block_path}.{member}: unknown content block member")
    return BLOCK_SEPARATOR.join(texts)


def _converse_system(value: Any, path: str, problems: list[str]) -> str:
    if value is None:
        return ""
    return _converse_blocks(value, path, problems) or ""


def _converse_messages(value: Any, path: str, problems: list[str]) -> tuple[Message, ...]:
    if not isinstance(value, list) or not value:
        problems.append(f"{path}: " + ("required: at least one user message" if value is None
                                        else f"must be a non-empty list, got {show_value(value)}"))
        return ()
    turns = []
    for index, item in enumerate(value):
        item_path = f"{path}[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{item_path}: must be a message, got {show_value(item)}")
            continue
        role = item.get("role")
        if role not in ("user", "assistant"):
            reason = ("put the system prompt in the system field" if role == "system"
                      else "required" if role is None else f"must be user or assistant, got {show_value(role)}")
            problems.append(f"{item_path}.role: {reason}")
            role = None
        before = len(problems)
        text = _converse_blocks(item.get("content"), f"{item_path}.content", problems)
        turns.append((item_path, role, None if text is None else _reported(problems, before, text)))
    return _check_turns(turns, problems)


def converse_response(completion: Completion, *, latency_ms: int | None = None) -> dict:
    """The Converse response body (ConverseResponse) for ``completion``.

    ``metrics.latencyMs`` is ``latency_ms`` when given (the route's own measure, queueing
    included), else the engine's ``completion.latency_ms``.
    """
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": completion.text}]}},
        "stopReason": completion.stop_reason,
        "usage": _token_usage(completion),
        "metrics": {"latencyMs": completion.latency_ms if latency_ms is None else latency_ms},
    }


def _token_usage(completion: Completion) -> dict[str, int]:
    return {"inputTokens": completion.input_tokens, "outputTokens": completion.output_tokens,
            "totalTokens": completion.input_tokens + completion.output_tokens}


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
            ("metadata", {"usage": _token_usage(completion), "metrics": {"latencyMs": completion.latency_ms}}),
        ]


# ---------------------------------------------------------------- CountTokens


def count_tokens_request(params: dict, *, kind: str, default_max_tokens: int = 1) -> ChatRequest:
    """The conversation whose prompt CountTokens counts, from ``params["input"]`` (a CountTokensInput).

    ``input.invokeModel.body`` is a native body of ``kind``; ``input.converse`` holds Converse's
    ``messages`` and ``system``. The sampling settings (``default_max_tokens`` fills in a missing
    length) play no part in the count; they are checked as the real request's would be.
    """
    _check_kind(kind)
    chosen = params.get("input")
    if not isinstance(chosen, dict) or len([key for key in chosen if chosen[key] is not None]) != 1:
        raise InvalidInput("input: must set exactly one of invokeModel, converse")
    if chosen.get("invokeModel") is not None:
        body = chosen["invokeModel"].get("body") if isinstance(chosen["invokeModel"], dict) else None
        if body is None:
            raise InvalidInput("input.invokeModel.body: required")
        try:
            return parse_invoke_body(kind, body, default_max_tokens=default_max_tokens)
        except InvalidInput as error:
            raise InvalidInput(f"input.invokeModel.body: {error.message}") from None
    converse = chosen.get("converse")
    if not isinstance(converse, dict):
        raise InvalidInput(f"input.converse: must be an object, got {show_value(converse)}")
    problems: list[str] = []
    request = _converse(converse, "input.converse", default_max_tokens, problems)
    _fail(problems)
    return request
