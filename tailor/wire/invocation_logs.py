"""Bedrock model-invocation log records: their shape, and reading them back as training data. Pure.

One module holds the format both ways so that what Tailor writes and what it reads agree:

* ``invocation_record(...)`` is one log record as Bedrock's model invocation logging writes it
  (``schemaType`` "ModelInvocationLog", ``schemaVersion`` "1.0", ``timestamp``, ``accountId``,
  ``identity.arn``, ``region``, ``requestId``, ``operation``, ``modelId``, ``input``
  {``inputContentType``, ``inputBodyJson``, ``inputTokenCount``}, ``output`` {...``outputBodyJson``,
  ``outputTokenCount``}, ``requestMetadata``); ``log_object_key`` is where a file of them lands:
  ``{prefix}/AWSLogs/{account}/BedrockModelInvocationLogs/{region}/{yyyy}/{mm}/{dd}/{hh}/{name}.json.gz``.
* ``training_file(paths, out, ...)`` reads log files (gzipped JSON lines ``.json.gz``, or plain
  ``.json`` / ``.jsonl``), keeps the records whose ``requestMetadata`` passes
  ``requestMetadataFilters`` (``matches``), and writes one ``bedrock-conversation-2024`` record per
  call: the system prompt, the conversation, and -- with ``usePromptResponse`` -- the logged answer
  as the last, assistant, turn.

Each record's input is read with the parser of the door that took it: Converse and ConverseStream
with ``tailor.wire.converse``, an OpenAI chat completion with ``tailor.wire.chat_body``, and an
InvokeModel body with its dialect's module, the dialect sniffed from the body's shape (the log
names the model, not its body dialect; Anthropic's ``anthropic_version``, Titan's ``inputText``,
a ``messages`` list (OpenAI, else Converse-shaped), a ``prompt`` (Llama, else Cohere)). So a log
record trains exactly the conversation the model was asked, in Tailor's rendering of it. The
answer is read from the output body in every shape those doors answer in, and also from a list of
stream chunks (how the original logs streamed answers; Tailor logs the assembled answer instead).

Nothing in a log stops the conversion: a line that is not JSON, a failed call, a record without
text (``textDataDeliveryEnabled`` off), a body no parser takes is counted in
``LogSelection.skipped`` by reason, and the rest is written. A prefill (a final assistant message
in the request) is joined with its continuation when the answer is used, and left out of a
prompt-only record, whose conversation must end with the user's turn.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tailor.errors import InvalidInput
from tailor.serve.protocol import ChatRequest
from tailor.wire import chat_body, invoke
from tailor.wire.converse import converse_request

CONVERSATION_SCHEMA = "bedrock-conversation-2024"
LOG_SCHEMA_TYPE = "ModelInvocationLog"
LOG_SCHEMA_VERSION = "1.0"
LOG_SUFFIXES = (".json.gz", ".jsonl.gz", ".json", ".jsonl")

# The operation names a record carries. Bedrock's own, plus the OpenAI door's (OpenAI's
# operationId for POST /v1/chat/completions), which Bedrock has no name for.
CONVERSE_OPERATIONS = ("Converse", "ConverseStream")
INVOKE_OPERATIONS = ("InvokeModel", "InvokeModelWithResponseStream")
OPENAI_CHAT_OPERATION = "CreateChatCompletion"

# Why a record gave no training record (the keys of ``LogSelection.skipped``).
UNREADABLE_FILE = "unreadable file"
UNREADABLE_LINE = "unreadable line"
NOT_AN_INVOCATION = "not a model invocation record"
FAILED_CALL = "failed call"
NO_TEXT = "no text (text data delivery off)"
INPUT_NOT_UNDERSTOOD = "input body not understood"
NO_ANSWER = "no answer in the output body"
DUPLICATE = "duplicate requestId"

_PARSE_MAX_TOKENS = 512  # the parsers need a length; a training record has none


@dataclass(frozen=True)
class LogSelection:
    """What one conversion read and wrote. ``records`` counts every non-blank line read;
    ``matched`` those the filters kept; ``written`` the training records; ``skipped`` why the
    others (unreadable lines, and matched records that gave nothing) were left out."""

    files: int
    records: int
    matched: int
    written: int
    skipped: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------- writing records


def invocation_record(*, request_id: str, timestamp: datetime, account_id: str, identity_arn: str, region: str,
                      operation: str, model_id: str, input_body: Any, output_body: Any, input_tokens: int,
                      output_tokens: int, request_metadata: Mapping[str, str] | None = None,
                      text: bool = True) -> dict:
    """One log record in Bedrock's ``ModelInvocationLog`` 1.0 shape.

    ``text`` false (``textDataDeliveryEnabled`` off) leaves the bodies out: only the metadata and
    the token counts are logged. ``requestMetadata`` is present only when the call carried some.
    """
    record: dict[str, Any] = {
        "schemaType": LOG_SCHEMA_TYPE,
        "schemaVersion": LOG_SCHEMA_VERSION,
        "timestamp": timestamp.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "accountId": account_id,
        "identity": {"arn": identity_arn},
        "region": region,
        "requestId": request_id,
        "operation": operation,
        "modelId": model_id,
        "input": {"inputContentType": "application/json", "inputTokenCount": input_tokens},
        "output": {"outputContentType": "application/json", "outputTokenCount": output_tokens},
    }
    if text:
        record["input"]["inputBodyJson"] = input_body
        record["output"]["outputBodyJson"] = output_body
    if request_metadata:
        record["requestMetadata"] = dict(request_metadata)
    return record


def log_object_key(key_prefix: str, account_id: str, region: str, when: datetime, name: str) -> str:
    """The object key of a log file, in Bedrock's layout under the configured ``keyPrefix``."""
    when = when.astimezone(timezone.utc)
    folder = f"AWSLogs/{account_id}/BedrockModelInvocationLogs/{region}/{when:%Y/%m/%d/%H}"
    prefix = key_prefix.strip("/")
    return f"{prefix}/{folder}/{name}" if prefix else f"{folder}/{name}"


def is_log_file(name: str) -> bool:
    """Whether an object's name is one of the log file kinds ``training_file`` reads."""
    return name.endswith(LOG_SUFFIXES)


# ---------------------------------------------------------------- filters


def matches(metadata: Mapping[str, str] | None, filters: Mapping | None) -> bool:
    """Whether a record's ``requestMetadata`` passes ``requestMetadataFilters``.

    ``equals`` / ``notEquals``: each key has (has not) that value -- a record without the key does
    not equal it; ``andAll`` / ``orAll``: every / any of the listed base filters passes. No filters
    keep every record. The contract makes the filters a union; were several members given, all
    must pass.
    """
    if not filters:
        return True
    metadata = metadata or {}
    checks: list[bool] = []
    if (equals := filters.get("equals")) is not None:
        checks.append(all(metadata.get(key) == value for key, value in equals.items()))
    if (not_equals := filters.get("notEquals")) is not None:
        checks.append(all(metadata.get(key) != value for key, value in not_equals.items()))
    if (every := filters.get("andAll")) is not None:
        checks.append(all(matches(metadata, base) for base in every))
    if (some := filters.get("orAll")) is not None:
        checks.append(any(matches(metadata, base) for base in some))
    return all(checks)


# ---------------------------------------------------------------- reading records


class SkippedRecord(Exception):
    """A log record that gives no training record, and why (one of the reasons above)."""

    def __init__(self, reason: str):
        self.reason = reason


def _lines(path: Path) -> Iterator[str]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        yield from handle


def _body(value: Any) -> Any:
    """A logged body: JSON as written, or JSON text (a body that was a string)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _invoke_candidates(body: Any) -> list[Callable[[Any], ChatRequest]]:
    """The parsers an InvokeModel body's shape points at, most likely first."""
    def native(kind: str) -> Callable[[Any], ChatRequest]:
        return lambda data: invoke.BODIES[kind].request(data, default_max_tokens=_PARSE_MAX_TOKENS)

    if not isinstance(body, dict):
        return []
    if "anthropic_version" in body:
        return [native("anthropic")]
    if "inputText" in body:
        return [native("titan")]
    if "messages" in body:
        return [native("openai"), lambda data: converse_request(data, default_max_tokens=_PARSE_MAX_TOKENS)]
    if "prompt" in body:
        return [native("llama"), native("cohere")]
    return []


def _chat_request(operation: str, body: Any) -> ChatRequest:
    if operation in CONVERSE_OPERATIONS:
        candidates = [lambda data: converse_request(data, default_max_tokens=_PARSE_MAX_TOKENS)]
    elif operation == OPENAI_CHAT_OPERATION:
        candidates = [lambda data: chat_body.chat_request(chat_body.read(data, require_model=False),
                                                          default_max_tokens=_PARSE_MAX_TOKENS)]
    else:
        candidates = _invoke_candidates(body)
    for parse in candidates:
        try:
            return parse(body)
        except (InvalidInput, TypeError, ValueError, AttributeError):
            continue
    raise SkippedRecord(INPUT_NOT_UNDERSTOOD)


def _text_blocks(blocks: Any) -> str | None:
    if not isinstance(blocks, list):
        return None
    texts = [block.get("text") for block in blocks if isinstance(block, dict)]
    texts = [text for text in texts if isinstance(text, str)]
    return "".join(texts) if texts else None


def _first(items: Any) -> dict:
    return items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else {}


def _answer_of(body: dict) -> str | None:
    """The answer in a whole (non-stream) response body of any door's shape."""
    if isinstance(body.get("output"), dict):  # Converse
        return _text_blocks((body["output"].get("message") or {}).get("content"))
    if isinstance(body.get("content"), list):  # Anthropic
        return _text_blocks(body["content"])
    if "results" in body:  # Titan
        return _first(body["results"]).get("outputText")
    if "generations" in body:  # Cohere
        return _first(body["generations"]).get("text")
    if "generation" in body and "prompt_token_count" in body and not isinstance(body.get("generation"), dict):
        return body["generation"]  # Llama
    if "choices" in body:  # OpenAI chat.completion
        message = _first(body["choices"]).get("message")
        return message.get("content") if isinstance(message, dict) else None
    return None


def _stream_piece(chunk: dict) -> str:
    """The text one stream chunk (of any door's stream) adds."""
    if isinstance(chunk.get("contentBlockDelta"), dict):  # ConverseStream, as its events are logged
        return (chunk["contentBlockDelta"].get("delta") or {}).get("text") or ""
    if chunk.get("type") == "content_block_delta":  # Anthropic
        return (chunk.get("delta") or {}).get("text") or ""
    if "outputText" in chunk:  # Titan
        return chunk.get("outputText") or ""
    if "generation" in chunk:  # Llama
        return chunk.get("generation") or ""
    if "choices" in chunk:  # OpenAI chunk
        delta = _first(chunk["choices"]).get("delta")
        return (delta.get("content") or "") if isinstance(delta, dict) else ""
    if chunk.get("is_finished") is False:  # Cohere
        return chunk.get("text") or ""
    return ""


def _answer(output_body: Any) -> str | None:
    if isinstance(output_body, dict):
        return _answer_of(output_body)
    if isinstance(output_body, list):
        chunks = [chunk for chunk in output_body if isinstance(chunk, dict)]
        for chunk in chunks:  # a stream whose last chunk repeats the whole answer (Cohere)
            if chunk.get("is_finished") is True and "generations" in chunk:
                return _first(chunk["generations"]).get("text")
        return "".join(_stream_piece(chunk) for chunk in chunks) or None
    return None


def training_record(record: Mapping, *, use_prompt_response: bool) -> dict:
    """The ``bedrock-conversation-2024`` record of one log record; ``SkippedRecord`` says why there is
    none."""
    if record.get("schemaType", LOG_SCHEMA_TYPE) != LOG_SCHEMA_TYPE or not isinstance(record.get("input"), dict):
        raise SkippedRecord(NOT_AN_INVOCATION)
    output = record.get("output") if isinstance(record.get("output"), dict) else {}
    if use_prompt_response and record.get("errorCode"):
        raise SkippedRecord(FAILED_CALL)
    if "inputBodyJson" not in record["input"]:
        raise SkippedRecord(NO_TEXT)
    chat = _chat_request(str(record.get("operation") or ""), _body(record["input"]["inputBodyJson"]))
    system = [m.content for m in chat.messages if m.role == "system"]
    turns = [m for m in chat.messages if m.role != "system"]
    prefill = turns.pop().content if turns and turns[-1].role == "assistant" else ""
    messages = [{"role": m.role, "content": [{"text": m.content}]} for m in turns]
    if use_prompt_response:
        if "outputBodyJson" not in output:
            raise SkippedRecord(NO_TEXT)
        answer = _answer(_body(output["outputBodyJson"]))
        if not isinstance(answer, str) or not (prefill + answer).strip():
            raise SkippedRecord(NO_ANSWER)
        messages.append({"role": "assistant", "content": [{"text": prefill + answer}]})
    result: dict[str, Any] = {"schemaVersion": CONVERSATION_SCHEMA}
    if system:
        result["system"] = [{"text": text} for text in system]
    result["messages"] = messages
    return result


def training_file(paths: Iterable[Path], out: Path, *, use_prompt_response: bool,
                  filters: Mapping | None) -> LogSelection:
    """Write ``out`` (JSON lines, ``bedrock-conversation-2024``) from the log files at ``paths``.

    Records whose ``requestMetadata`` fails ``filters`` are left out; so is a second record of one
    ``requestId``. ``use_prompt_response`` adds each call's logged answer as the assistant's turn;
    without it the records are prompts only (for a teacher, or RFT, to answer).
    """
    files = records = matched = written = 0
    skipped: Counter[str] = Counter()
    seen: set[str] = set()
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as sink:
        for path in paths:
            files += 1
            try:
                for line in _lines(Path(path)):
                    if not line.strip():
                        continue
                    records += 1
                    try:
                        record = json.loads(line)
                    except ValueError:
                        skipped[UNREADABLE_LINE] += 1
                        continue
                    if not isinstance(record, dict):
                        skipped[UNREADABLE_LINE] += 1
                        continue
                    metadata = record.get("requestMetadata")
                    if not matches(metadata if isinstance(metadata, dict) else {}, filters):
                        continue
                    matched += 1
                    request_id = record.get("requestId")
                    if isinstance(request_id, str) and request_id in seen:
                        skipped[DUPLICATE] += 1
                        continue
                    try:
                        converted = training_record(record, use_prompt_response=use_prompt_response)
                    except SkippedRecord as skip:
                        skipped[skip.reason] += 1
                        continue
                    if isinstance(request_id, str):
                        seen.add(request_id)
                    sink.write(json.dumps(converted, ensure_ascii=False) + "\n")
                    written += 1
            except (OSError, EOFError, UnicodeDecodeError):  # not gzip, truncated, not UTF-8
                skipped[UNREADABLE_FILE] += 1
    return LogSelection(files=files, records=records, matched=matched, written=written, skipped=dict(skipped))
