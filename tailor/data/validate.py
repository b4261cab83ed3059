"""Check a JSON Lines dataset against a model family's rules and report every problem at once.

``validate`` reads one file and returns a ``Report`` naming each problem by line and field (all of
them, not the first), so a user fixes a file in one pass. It streams: one line in memory at a time,
so a 10 GB continued-pre-training file is checked in bounded memory (``load_records``, which
returns every record, is for files that fit in memory; big text files go through
``tailor.data.token_cache``). ``validate_dataset`` adds the checks
that span the training and validation files, and ``load_records`` is the edge training code calls:
it returns typed records, or raises ``InvalidInput`` carrying the whole report.

The rules are those of docs/data.md: the original service's formats and limits per family, and
the checks of AWS's Claude 3 Haiku data validator, deliberately stricter where that tool is lax:
unknown keys are rejected (they are usually typos), validation files are held to validation
limits, and token counts use the model's own tokenizer when one is given. RFT prompts are the
exception to "unknown keys are rejected": their extra keys go to the grader. A file's format comes
from the customization type, never from keys alone: RFT prompts and messages records both have
``messages``.
Messages records written the OpenAI chat way, with the system prompt as the first message, are
read as this format writes them (the top-level ``system``), with one note in the report; families
without a system prompt refuse it and say where its text goes. The ``tailor`` family (models
Tailor loads from weights) takes OpenAI's chat fine-tuning lines whole (``ChatRecord``: developer
messages, text parts, per-message ``weight``, tools, tool calls and tool messages); tools are
refused, by line and field, when the model's chat template cannot render them. Families with the
original service's stricter rules keep them. An RFT file graded without a reference answer (an
OpenAI-style grader reads its own fields) is validated with ``reference_required=False``.
``Report.render`` shows a problem
found on many lines once, with its lines; ``Report.problems`` keeps one entry per line.
Counting: every non-blank line is a record for the row-count bounds, including lines that fail
to parse, because the user meant each of them as a record; blank lines are problems of their own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, ValidationError

from tailor import storage
from tailor.catalog import (
    CustomizationType,
    DataFormat,
    DataLimits,
    Family,
    ResolvedModel,
)
from tailor.data.formats import (
    MARKER_KEYS,
    RECORD_MODELS,
    ChatRecord,
    MessagesRecord,
    PromptCompletionRecord,
    Record,
    RftRecord,
    TextRecord,
    chat_messages,
    chat_tools,
    format_of,
    json_type,
    plain_messages,
    rft_prompt,
    text_of,
)
from tailor.data.render import renders_tool_calls, renders_tools, template_turns
from tailor.errors import InvalidInput
from tailor.settings import Settings

if TYPE_CHECKING:  # transformers stays out of the control plane (DESIGN rule 5)
    from transformers import PreTrainedTokenizerBase

Purpose = Literal["training", "validation", "evaluation"]

ROLES = ("user", "assistant")
# Families that take OpenAI's chat fine-tuning lines (tools, weights, ...) as messages records:
# Tailor's own, whose models are rendered by their own chat templates. (A flag on
# ``catalog.Family`` would say this better; the catalog has none yet.)
OPENAI_CHAT_FAMILIES = frozenset({"tailor"})
SYSTEM_ROLES = ("system", "developer")  # OpenAI's developer message is a system message
# Claude's own turn markers; inside a text they would end the turn early. Without the colon they
# are ordinary words and allowed.
RESERVED_STRINGS = ("\nHuman:", "\nAssistant:")
CHARACTERS_PER_ESTIMATED_TOKEN = 3  # the AWS validator's estimate
SANE_MODEL_MAX_LENGTH = 1_000_000_000  # tokenizers without a limit report a huge sentinel


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None  # None: the problem concerns the whole file
    field: str | None  # e.g. "messages[1].role"; None: the whole line
    message: str

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.field is not None:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "message": self.message}


@dataclass(frozen=True)
class ProblemGroup:
    """One problem found on several lines alike (same field, same message), as ``render`` shows it."""

    file: str
    lines: tuple[int, ...]
    field: str | None
    message: str

    def __str__(self) -> str:
        parts = [self.file, _lines_text(self.lines)]
        if self.field is not None:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)


@dataclass(frozen=True)
class Report:
    file: str  # the URI as given
    purpose: Purpose
    format: DataFormat | None  # None when the file holds no record to tell it by
    record_count: int
    problems: list[Problem] = field(default_factory=list)  # one per line and field: what programs read
    notes: tuple[str, ...] = ()  # what was accepted after a change worth knowing; never a problem

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "purpose": self.purpose,
            "format": self.format.value if self.format else None,
            "record_count": self.record_count,
            "ok": self.ok,
            "problems": [problem.to_dict() for problem in self.problems],
            "notes": list(self.notes),
        }

    def grouped(self) -> list[Problem | ProblemGroup]:
        """The problems for people: those of the whole file as they are, then each (field, message)
        once, with every line it was found on, in the order of its first line. A mistake made on
        every line (a system message in a format without one) is one entry, not 500."""
        whole_file = [problem for problem in self.problems if problem.line is None]
        lines_by_kind: dict[tuple[str | None, str], list[int]] = {}
        for problem in self.problems:
            if problem.line is not None:
                lines_by_kind.setdefault((problem.field, problem.message), []).append(problem.line)
        groups: list[Problem | ProblemGroup] = [
            Problem(self.file, lines[0], field_name, message) if len(lines) == 1
            else ProblemGroup(self.file, tuple(lines), field_name, message)
            for (field_name, message), lines in lines_by_kind.items()]
        return [*whole_file, *sorted(groups, key=lambda entry: _first_line(entry))]

    def render(self) -> str:
        """A summary line, any notes, then one line per problem in ``file: line N: field: message``
        form; a problem found on several lines is one line, ``file: lines 1, 2, 3 and 497 more: ...``."""
        shape = f"{self.purpose} data" + (f", {self.format.value} format" if self.format else "")
        counted = _plural(self.record_count, "record")
        notes = [f"  note: {note}" for note in self.notes]
        if self.ok:
            return "\n".join([f"{self.file}: OK, {counted} ({shape})", *notes])
        header = f"{self.file}: {_plural(len(self.problems), 'problem')} in {counted} ({shape})"
        return "\n".join([header, *notes, *(f"  {entry}" for entry in self.grouped())])


SHOWN_LINES = 3  # line numbers a grouped problem names before "and N more"


def _lines_text(lines: tuple[int, ...]) -> str:
    if len(lines) <= SHOWN_LINES + 1:
        return "lines " + ", ".join(map(str, lines[:-1])) + f" and {lines[-1]}"
    return "lines " + ", ".join(map(str, lines[:SHOWN_LINES])) + f" and {len(lines) - SHOWN_LINES:,} more"


def _first_line(entry: Problem | ProblemGroup) -> int:
    return entry.line if isinstance(entry, Problem) else entry.lines[0]


def validate(
    uri: str,
    customization_type: CustomizationType,
    model: ResolvedModel,
    *,
    purpose: Purpose = "training",
    tokenizer: PreTrainedTokenizerBase | None = None,
    settings: Settings | None = None,
    reference_required: bool = True,
) -> Report:
    """Check one file; raises ``InvalidInput`` when the family does not support the customization
    type (a mistake in the request, not in the data) and ``NotFound`` when the file is missing.
    ``reference_required=False``: RFT prompts need no ``reference_answer`` (the grader reads other
    fields, as OpenAI's graders do); it changes nothing for other customization types."""
    report, _ = _check_file(uri, customization_type, model, purpose, tokenizer, settings, keep_records=False,
                            reference_required=reference_required)
    return report


def load_records(
    uri: str,
    customization_type: CustomizationType,
    model: ResolvedModel,
    *,
    purpose: Purpose,
    tokenizer: PreTrainedTokenizerBase | None = None,
    settings: Settings | None = None,
    reference_required: bool = True,
) -> list[Record]:
    """The file's typed records, or ``InvalidInput`` with the rendered report when it is invalid."""
    report, records = _check_file(uri, customization_type, model, purpose, tokenizer, settings, keep_records=True,
                                  reference_required=reference_required)
    if not report.ok:
        raise InvalidInput(report.render())
    return records


def validate_dataset(
    training_uri: str,
    validation_uris: list[str],
    customization_type: CustomizationType,
    model: ResolvedModel,
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    settings: Settings | None = None,
    reference_required: bool = True,
) -> list[Report]:
    """Reports for the training file, then each validation file. The family's bound on training
    plus validation records is reported on the training file's report. ``reference_required``:
    as ``validate`` takes it (False for RFT graded without a reference answer)."""
    options = {"tokenizer": tokenizer, "settings": settings, "reference_required": reference_required}
    training = validate(training_uri, customization_type, model, purpose="training", **options)
    validations = [
        validate(uri, customization_type, model, purpose="validation", **options)
        for uri in validation_uris
    ]
    total_max = model.family.limits_for(customization_type).total_records_max
    validation_count = sum(report.record_count for report in validations)
    total = training.record_count + validation_count
    if validations and total_max is not None and total > total_max:
        message = (
            f"training and validation data together have {total:,} records "
            f"({training.record_count:,} + {validation_count:,}); family {model.family.name} "
            f"allows at most {total_max:,}"
        )
        problems = [*training.problems, Problem(training_uri, None, None, message)]
        training = replace(training, problems=_sorted(problems))
    return [training, *validations]


def accepted_formats(family: Family, customization_type: CustomizationType) -> tuple[DataFormat, ...]:
    formats = family.formats.get(customization_type)
    if not formats:
        supported = ", ".join(family.formats) or "none"
        raise InvalidInput(
            f"Family {family.name} does not support {customization_type.value} "
            f"(supported: {supported})."
        )
    return formats


# ---------------------------------------------------------------------------------------------
# The file: bytes, lines, JSON, format, bounds.


def _check_file(
    uri: str,
    customization_type: CustomizationType,
    model: ResolvedModel,
    purpose: Purpose,
    tokenizer: PreTrainedTokenizerBase | None,
    settings: Settings | None,
    *,
    keep_records: bool,
    reference_required: bool = True,
) -> tuple[Report, list[Record]]:
    """The report, and the typed records when ``keep_records``. The file is read one line at a
    time and, without ``keep_records``, nothing of a record outlives its line: validating a
    multi-GB continued-pre-training file takes memory for one record (and the problems found),
    not for the file (tailor/data/token_cache.py then tokenizes it the same way, line by line)."""
    if purpose not in ("training", "validation"):
        raise InvalidInput(f"purpose must be 'training' or 'validation', got {purpose!r}.")
    family, limits = model.family, model.family.limits_for(customization_type)
    accepted = accepted_formats(family, customization_type)
    # With one accepted format the file's format is known; with several, the first record whose
    # keys name an accepted format decides it, and format_line remembers which line that was.
    file_format: DataFormat | None = accepted[0] if len(accepted) == 1 else None
    format_line: int | None = None
    problems: list[Problem] = []

    def add(line: int | None, field_name: str | None, message: str) -> None:
        problems.append(Problem(uri, line, field_name, message))

    # A file over the size bound is not read at all: it may not even fit in memory.
    file_size = storage.size(uri, settings)
    bytes_max = limits.train_bytes_max if purpose == "training" else limits.validation_bytes_max
    if bytes_max is not None and file_size > bytes_max:
        add(None, None, f"file is {_size(file_size)}; {purpose} data for family {family.name} "
                        f"may be at most {_size(bytes_max)}")
        return Report(uri, purpose, file_format, 0, problems), []

    # Continued pre-training cuts each text into windows of the model's context, so only the
    # family's per-record bound applies there; a chat record must fit the context whole.
    windowed = customization_type == CustomizationType.CONTINUED_PRE_TRAINING
    token_limit = _token_limit(family.name, limits, None if windowed else tokenizer)
    records: list[Record] = []
    record_count = 0
    lifted_lines = 0  # records whose first message was a system message, taken as "system"
    openai_chat = family.name in OPENAI_CHAT_FAMILIES
    # What the chat template can render, when there is a tokenizer to ask (None: unknown, and
    # the lines that use tools are counted for a note; training validates with the tokenizer).
    template = None if tokenizer is None else _TemplateSupport(renders_tools(tokenizer), renders_tool_calls(tokenizer))
    unchecked_tool_lines = 0
    for number, value in json_lines(storage.local_path(uri, settings), add):
        record_count += 1
        if value is None:
            continue
        shape = format_of(value.keys())
        if file_format is None and shape in accepted:
            file_format, format_line = shape, number
        expected = file_format or accepted[0]
        mixup = _other_shape(value, shape, expected, format_line, accepted, family, customization_type)
        if mixup:
            add(number, None, mixup)
            continue
        system_problems, system_first = [], False
        chat = openai_chat and expected is DataFormat.MESSAGES
        if expected is DataFormat.MESSAGES:
            value, system_problems, system_first = _lift_system_message(value, family, openai_chat=chat)
        if chat and template is None and _uses_tools(value):
            unchecked_tool_lines += 1
        record, record_problems = _check_record(value, expected, family.name, limits, system_first=system_first,
                                                openai_chat=chat, template=template,
                                                reference_required=reference_required)
        if system_first:  # the checks saw the messages after the system one: name the file's own
            record_problems = [(_file_field(name), message) for name, message in record_problems]
            if family.system_prompt:
                lifted_lines += 1
        if system_problems:
            record, record_problems = None, system_problems + record_problems
        for field_name, message in record_problems:
            add(number, field_name, message)
        if record is None:
            continue  # a record with problems is not measured in tokens: fix it first
        if token_limit is not None:
            message = _token_problem(record, tokenizer, token_limit)
            if message:
                add(number, None, message)
        if keep_records:
            records.append(record)

    low, high = limits.train_records if purpose == "training" else limits.validation_records
    if record_count < low:
        add(None, None, f"file has {_plural(record_count, 'record')}; {purpose} data for family "
                        f"{family.name} needs at least {low:,}")
    if high is not None and record_count > high:
        add(None, None, f"file has {_plural(record_count, 'record')}; {purpose} data for family "
                        f"{family.name} allows at most {high:,}")
    notes = (_lifted_note(lifted_lines),) if lifted_lines else ()
    if unchecked_tool_lines:
        verb = "uses" if unchecked_tool_lines == 1 else "use"
        notes += (f"{_plural(unchecked_tool_lines, 'line')} {verb} tools or tool calls; without the model's "
                  "tokenizer, whether its chat template can render them was not checked (training checks it)",)
    return Report(uri, purpose, file_format, record_count, _sorted(problems), notes), records


def json_lines(path: Path, add) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """(line number, object) for every non-blank line of a JSON Lines file: every such line is a
    record, good or bad. A line that holds no JSON object (bad UTF-8, bad JSON, another JSON
    type) comes as None, reported through ``add(line, field, message)``, as are blank lines."""
    with path.open("rb") as stream:
        for number, raw in enumerate(stream, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                add(number, None, f"not valid UTF-8: byte 0x{raw[error.start]:02x} at column "
                                  f"{error.start + 1}")
                yield number, None
                continue
            if not text.strip():
                add(number, None, "blank line; every line must hold one JSON record")
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as error:
                add(number, None, f"invalid JSON: {error.msg} (column {error.colno})")
                yield number, None
                continue
            if not isinstance(value, dict):
                add(number, None, f"expected a JSON object, got {json_type(value)}")
                yield number, None
                continue
            yield number, value


def _other_shape(
    value: dict[str, Any],
    shape: DataFormat | None,
    expected: DataFormat,
    format_line: int | None,
    accepted: tuple[DataFormat, ...],
    family: Family,
    customization_type: CustomizationType,
) -> str | None:
    """One clear message for a record written in another format, instead of a missing key and an
    unexpected key per field. A record whose markers all belong to the expected format too (a
    chat record without a reference answer in an RFT file) is checked as the expected format,
    so that the problem named is the missing key."""
    if shape is None or shape == expected or MARKER_KEYS[shape] <= MARKER_KEYS[expected]:
        return None
    keys = ", ".join(repr(key) for key in value)
    if format_line is not None and shape in accepted:
        why = f"this file is in the {expected.value} format (decided by line {format_line})"
    else:
        names = " or ".join(name.value for name in accepted)
        why = f"family {family.name} takes {names} records for {customization_type.value}"
    if not family.system_prompt and _has_system_prompt(value):
        why += "; they have no system prompt, so put its instructions at the start of each prompt"
    return f"record has keys {keys}, the {shape.value} format, but {why}"


def _has_system_prompt(value: dict[str, Any]) -> bool:
    messages = value.get("messages")
    return value.get("system") is not None or (
        isinstance(messages, list) and any(isinstance(m, dict) and m.get("role") == "system" for m in messages))


def _sorted(problems: list[Problem]) -> list[Problem]:
    # File-level problems first, then by line; within a line, in the order the checks found them.
    return sorted(problems, key=lambda problem: problem.line or 0)


# ---------------------------------------------------------------------------------------------
# One record: schema (from the pydantic models), then the rules that span fields.


@dataclass(frozen=True)
class _TemplateSupport:
    """What the model's chat template can render (``tailor.data.render``)."""

    tools: bool
    tool_calls: bool


def _check_record(
    value: dict[str, Any], file_format: DataFormat, family_name: str, limits: DataLimits,
    *, system_first: bool = False, openai_chat: bool = False, template: _TemplateSupport | None = None,
    reference_required: bool = True,
) -> tuple[Record | None, list[tuple[str | None, str]]]:
    # A record without messages is not recognisably a chat line of either kind: it is checked,
    # and its keys named, as the plain messages format the docs show first.
    if openai_chat and file_format is DataFormat.MESSAGES and "messages" in value:
        return _check_chat_record(value, system_first=system_first, template=template)
    model = RECORD_MODELS[file_format]
    record: Record | None = None
    problems: list[tuple[str | None, str]] = []
    try:
        # An RFT prompt's developer message is its system message (OpenAI's name for it).
        record = model.model_validate(_developer_as_system(value) if file_format is DataFormat.RFT_CHAT else value)
    except ValidationError as error:
        problems = [describe_error(detail, model) for detail in error.errors()]
    # The content rules read the raw value, so they still report when another field is broken.
    if file_format is DataFormat.MESSAGES:
        problems += _conversation_problems(value, system_first=system_first)
    elif file_format is DataFormat.RFT_CHAT:
        problems += _prompt_problems(value, family_name, limits, reference_required=reference_required)
    else:
        text_keys = RECORD_MODELS[file_format].model_fields  # prompt, completion / input
        for key in text_keys:
            if isinstance(value.get(key), str) and not value[key].strip():
                problems.append((key, "must not be empty or only whitespace"))
    return (record if not problems else None), problems


def describe_error(detail: Any, model: type) -> tuple[str | None, str]:
    """A pydantic error as a field path and a message in JSON terms."""
    location = detail["loc"]
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location)
    field_name = path.lstrip(".") or None
    kind, given = detail["type"], detail.get("input")
    if kind == "missing":
        return field_name, "required key is missing"
    if kind == "extra_forbidden":
        owner = _owner(model, location)
        return field_name, f"unexpected key (allowed: {', '.join(owner.model_fields)})"
    if kind == "string_type":
        return field_name, f"must be a string, got {json_type(given)}"
    if kind == "list_type":
        return field_name, f"must be an array, got {json_type(given)}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return field_name, f"must be an object, got {json_type(given)}"
    if kind == "literal_error":
        return field_name, f"must be {detail['ctx']['expected']}, got {_show(given)}"
    return field_name, detail["msg"]


def _owner(model: type[BaseModel], location: tuple) -> type[BaseModel]:
    """The model of the object that holds the last key of ``location`` (for "allowed: ...")."""
    owner = model
    for part in location[:-1]:
        if isinstance(part, int):
            continue
        field_info = owner.model_fields.get(part)
        inner = _model_in(field_info.annotation) if field_info is not None else None
        if inner is None:
            return owner
        owner = inner
    return owner


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside a field's type (``list[Message]``, ``Tool | None``, ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def _conversation_problems(value: dict[str, Any], *, system_first: bool = False) -> list[tuple[str | None, str]]:
    """The rules of a conversation beyond its schema. ``system_first``: the file's first message was
    a system message, already lifted out of ``messages``, so the count says it was not counted."""
    problems: list[tuple[str | None, str]] = []
    if isinstance(value.get("system"), str):
        problems += _reserved("system", value["system"])
    messages = value.get("messages")
    if not isinstance(messages, list):
        return problems  # the schema check has said so
    if len(messages) < 2:
        besides = " besides the system message" if system_first else ""
        problems.append(("messages", "needs at least 2 messages (a user turn, then an assistant "
                                     f"turn), got {len(messages)}{besides}"))
    roles = [message.get("role") if isinstance(message, dict) else None for message in messages]
    for index, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            if not content.strip():
                problems.append((f"messages[{index}].content", "must not be empty or only whitespace"))
            problems += _reserved(f"messages[{index}].content", content)
    if roles and roles[0] == "assistant":
        problems.append(("messages[0].role", "the first message must be 'user', got 'assistant'"))
    for index in range(1, len(roles)):
        previous, current = roles[index - 1], roles[index]
        if current in ROLES and current == previous:
            expected = "assistant" if previous == "user" else "user"
            problems.append((f"messages[{index}].role",
                             f"expected {expected!r} after {previous!r}, got {current!r}"))
    # [..., assistant, user]: the last turn is a question nobody answers. ([user, user] already
    # has its alternation problem on that field, and a single message its count problem.)
    if len(roles) >= 2 and roles[-1] == "user" and roles[-2] != "user":
        problems.append((f"messages[{len(roles) - 1}].role",
                         "the last message must be 'assistant', got 'user'"))
    return problems


# ---------------------------------------------------------------------------------------------
# OpenAI's chat fine-tuning lines (the ``tailor`` family): ChatRecord.

# Checked by hand below, with messages that say what is allowed, rather than by the schema's union
# and literal errors (pydantic takes true for 1 in a literal, and names union branches).
_HAND_CHECKED = ("content", "weight")
CHAT_ROLES = "'system', 'developer', 'user', 'assistant' or 'tool'"
NO_TOOL_TEMPLATE = ("the model's chat template cannot render {what} (it never mentions {word}); "
                    "train a model whose chat template supports tools, or leave them out")


def _check_chat_record(
    value: dict[str, Any], *, system_first: bool, template: _TemplateSupport | None
) -> tuple[Record | None, list[tuple[str | None, str]]]:
    """A messages record of a family that takes OpenAI's chat lines: the ``ChatRecord`` schema,
    then the conversation's rules. A record that uses none of the extras comes back as the
    ``MessagesRecord`` it also is."""
    record: ChatRecord | None = None
    problems: list[tuple[str | None, str]] = []
    try:
        record = ChatRecord.model_validate(value)
    except ValidationError as error:
        problems = [_describe_chat_error(detail) for detail in error.errors()
                    if not (len(detail["loc"]) >= 3 and detail["loc"][0] == "messages"
                            and detail["loc"][2] in _HAND_CHECKED)]
    problems += _chat_problems(value, system_first=system_first, template=template)
    if problems or record is None:
        return None, problems
    return plain_messages(record) or record, []


def _describe_chat_error(detail: Any) -> tuple[str | None, str]:
    location = detail["loc"]
    given = detail.get("input")
    if detail["type"] == "literal_error" and len(location) == 3 and location[2] == "role":
        field_name = f"messages[{location[1]}].role"
        if given in SYSTEM_ROLES:  # the first one was lifted into "system"; this is a later one
            return field_name, f"a {given} message may only be the first message"
        return field_name, f"must be {CHAT_ROLES}, got {_show(given)}"
    return describe_error(detail, ChatRecord)


def _uses_tools(value: dict[str, Any]) -> bool:
    messages = value.get("messages")
    return bool(value.get("tools")) or (isinstance(messages, list) and any(
        isinstance(message, dict) and (message.get("tool_calls") or message.get("role") == "tool")
        for message in messages))


def _text_parts_problems(field_name: str, parts: list[Any]) -> list[tuple[str | None, str]]:
    """Content as OpenAI's text parts, ``[{"type": "text", "text": ...}]``."""
    if not parts:
        return [(field_name, "must not be an empty array (give at least one text part)")]
    problems: list[tuple[str | None, str]] = []
    for index, part in enumerate(parts):
        where = f"{field_name}[{index}]"
        if not isinstance(part, dict):
            problems.append((where, f'must be a text part {{"type": "text", "text": ...}}, got {json_type(part)}'))
            continue
        problems += [(f"{where}.{key}", "unexpected key (allowed: type, text)") for key in part
                     if key not in ("type", "text")]
        if part.get("type") != "text":
            problems.append((f"{where}.type", "required key is missing" if "type" not in part else
                             f"must be 'text' (only text parts can be trained on), got {_show(part['type'])}"))
        if "text" not in part:
            problems.append((f"{where}.text", "required key is missing"))
        elif not isinstance(part["text"], str):
            problems.append((f"{where}.text", f"must be a string, got {json_type(part['text'])}"))
    return problems


def _chat_content_problems(field_name: str, message: dict[str, Any]) -> list[tuple[str | None, str]]:
    """A message's content: a string, text parts, or (only an assistant message that calls tools)
    null or absent. The text must not be empty, except beside tool calls."""
    calls_tools = message.get("role") == "assistant" and bool(message.get("tool_calls"))
    where = f"{field_name}.content"
    content = message.get("content")
    if content is None:
        if calls_tools:
            return []
        if "content" not in message:
            return [(where, "required key is missing")]
        return [(where, "must not be null (only an assistant message with tool_calls may have no content)")]
    if isinstance(content, list):
        problems = _text_parts_problems(where, content)
        if problems:
            return problems
        text = "\n".join(part["text"] for part in content)
    elif isinstance(content, str):
        text = content
    else:
        return [(where, f"must be a string, null or an array of text parts, got {json_type(content)}")]
    problems = [] if text.strip() or calls_tools else [(where, "must not be empty or only whitespace")]
    return problems + _reserved(where, text)


def _tool_calls_problems(
    field_name: str, calls: Any, template: _TemplateSupport | None
) -> list[tuple[str | None, str]]:
    """An assistant message's tool calls: unique ids, arguments as JSON text holding an object
    (as OpenAI writes them), and a chat template that can render them. Types: the schema's."""
    if not isinstance(calls, list):
        return []
    if not calls:
        return [(f"{field_name}.tool_calls", "must not be an empty array (leave the key out)")]
    problems: list[tuple[str | None, str]] = []
    if template is not None and not template.tool_calls:
        problems.append((f"{field_name}.tool_calls", NO_TOOL_TEMPLATE.format(what="tool calls", word="tool_calls")))
    seen: set[str] = set()
    for index, call in enumerate(calls):
        if not isinstance(call, dict):
            continue
        call_id = call.get("id")
        if isinstance(call_id, str):
            if call_id in seen:
                problems.append((f"{field_name}.tool_calls[{index}].id",
                                 f"{_show(call_id)} is the id of an earlier call of this message; ids must differ"))
            seen.add(call_id)
        function = call.get("function")
        arguments = function.get("arguments") if isinstance(function, dict) else None
        if not isinstance(arguments, str):
            continue
        where = f"{field_name}.tool_calls[{index}].function.arguments"
        try:
            parsed = json.loads(arguments)
        except json.JSONDecodeError as error:
            problems.append((where, f"must be valid JSON text (the arguments as a JSON object in a string): "
                                    f"{error.msg} (column {error.colno})"))
            continue
        if not isinstance(parsed, dict):
            problems.append((where, f"must be a JSON object written as text, got a JSON {json_type(parsed)}"))
    return problems


def _chat_problems(
    value: dict[str, Any], *, system_first: bool, template: _TemplateSupport | None
) -> list[tuple[str | None, str]]:
    """The rules of an OpenAI chat line beyond its schema: those of a messages record (at least a
    user and an assistant turn, user and assistant alternate, the last turn is the assistant's)
    and those of OpenAI's extras (weights, tool calls and the tool messages that answer them, a
    template that can render tools), and at least one assistant turn to learn."""
    problems: list[tuple[str | None, str]] = []
    if isinstance(value.get("system"), str):
        problems += _reserved("system", value["system"])
    tools = value.get("tools")
    if isinstance(tools, list) and tools and template is not None and not template.tools:
        problems.append(("tools", NO_TOOL_TEMPLATE.format(what="tools", word="tools")))
    messages = value.get("messages")
    if not isinstance(messages, list):
        return problems  # the schema check has said so
    if len(messages) < 2:
        besides = " besides the system message" if system_first else ""
        problems.append(("messages", "needs at least 2 messages (a user turn, then an assistant "
                                     f"turn), got {len(messages)}{besides}"))
    roles = [message.get("role") if isinstance(message, dict) else None for message in messages]
    answered: set[str] | None = None  # ids of the calls the tool messages that follow may answer
    learned = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            answered = None
            continue
        field_name, role = f"messages[{index}]", message.get("role")
        problems += _chat_content_problems(field_name, message)
        if "weight" in message:
            weight = message["weight"]
            if role != "assistant":
                problems.append((f"{field_name}.weight", "only assistant messages have a weight "
                                                         "(1: learn the turn, 0: context only)"))
            elif isinstance(weight, bool) or weight not in (0, 1):
                problems.append((f"{field_name}.weight", f"must be 0 or 1, got {_show(weight)}"))
        if role == "assistant":
            learned.append(message.get("weight", 1) != 0)
        if "tool_calls" in message:
            if role != "assistant":
                problems.append((f"{field_name}.tool_calls", "only assistant messages make tool calls"))
            else:
                problems += _tool_calls_problems(field_name, message["tool_calls"], template)
        if "tool_call_id" in message and role != "tool":
            problems.append((f"{field_name}.tool_call_id", "only tool messages answer a tool call"))
        if role == "tool":
            problems += _tool_message_problems(field_name, message, answered, template)
        elif role == "assistant" and isinstance(message.get("tool_calls"), list):
            answered = {call.get("id") for call in message["tool_calls"] if isinstance(call, dict)}
        else:
            answered = None
    if roles and roles[0] == "assistant":
        problems.append(("messages[0].role", "the first message must be 'user', got 'assistant'"))
    for index in range(1, len(roles)):
        previous, current = roles[index - 1], roles[index]
        if current in ROLES and current == previous:
            expected = "assistant" if previous == "user" else "user"
            problems.append((f"messages[{index}].role",
                             f"expected {expected!r} after {previous!r}, got {current!r}"))
    last = len(roles) - 1
    if len(roles) >= 2 and ((roles[-1] == "user" and roles[-2] != "user") or roles[-1] == "tool"):
        problems.append((f"messages[{last}].role", f"the last message must be 'assistant', got {roles[-1]!r}"))
    if learned and not any(learned):
        problems.append(("messages", "every assistant message has weight 0, so there is nothing to learn; "
                                     "give the turns to learn weight 1 (the default)"))
    return problems


def _tool_message_problems(
    field_name: str, message: dict[str, Any], answered: set[str] | None, template: _TemplateSupport | None
) -> list[tuple[str | None, str]]:
    """A tool message answers a call of the assistant message just before it (or before the
    tool messages in between), by its id."""
    problems: list[tuple[str | None, str]] = []
    if template is not None and not template.tool_calls:
        problems.append((f"{field_name}.role", NO_TOOL_TEMPLATE.format(what="tool messages", word="tool_calls")))
    if answered is None:
        problems.append((f"{field_name}.role", "a tool message must follow an assistant message with tool_calls "
                                               "(or another tool message)"))
    call_id = message.get("tool_call_id")
    if "tool_call_id" not in message:
        problems.append((f"{field_name}.tool_call_id", "required key is missing (the id of the tool call this "
                                                       "message answers)"))
    elif isinstance(call_id, str) and answered is not None and call_id not in answered:
        problems.append((f"{field_name}.tool_call_id",
                         f"{_show(call_id)} is not the id of a tool call of the assistant message before it"))
    return problems


def _lift_system_message(
    value: dict[str, Any], family: Family, *, openai_chat: bool = False
) -> tuple[dict[str, Any], list[tuple[str | None, str]], bool]:
    """A messages record written the OpenAI chat way, with the system prompt as its first message
    ``{"role": "system", "content": ...}``, as this format writes it: in the top-level ``system``
    field. Returns the record to check, the problems of its system prompt (by the file's own field
    names), and whether the first message was lifted out.

    A lifted record is checked without its first message, so ``_file_field`` renames the fields of
    its problems back. Only the first message may be a system message; a later one is refused by
    the schema (roles are user and assistant). A family whose records have no system prompt
    (``Family.system_prompt``) refuses one in either place, saying where its text can go instead.
    ``openai_chat`` (OpenAI's chat lines, ``ChatRecord``): a developer message is lifted too, and
    its content may be text parts and it may have a name."""
    messages = value.get("messages")
    first = messages[0] if isinstance(messages, list) and messages else None
    lifted_roles = SYSTEM_ROLES if openai_chat else ("system",)
    if not (isinstance(first, dict) and first.get("role") in lifted_roles):
        if value.get("system") is not None and not family.system_prompt:
            return value, [("system", _no_system_prompt(family))], False
        return value, [], False
    lifted = {key: item for key, item in value.items() if key not in ("messages", "system")}
    lifted["messages"] = messages[1:]
    if not family.system_prompt:
        return lifted, [("messages[0].role", _no_system_prompt(family))], True
    allowed = ("role", "content", "name") if openai_chat else ("role", "content")
    problems: list[tuple[str | None, str]] = [(f"messages[0].{key}", f"unexpected key (allowed: {', '.join(allowed)})")
                                              for key in first if key not in allowed]
    if value.get("system") is not None:
        problems.append(("system", "the system prompt is given twice, here and as the first message; keep one"))
    content = first.get("content")
    if "content" not in first:
        problems.append(("messages[0].content", "required key is missing"))
    elif openai_chat and not isinstance(content, str):
        if not isinstance(content, list):
            problems.append(("messages[0].content", f"must be a string or an array of text parts, got {json_type(content)}"))
        else:
            part_problems = _text_parts_problems("messages[0].content", content)
            problems += part_problems
            if not part_problems:
                lifted["system"] = "\n".join(part["text"] for part in content)
    elif content is None:
        problems.append(("messages[0].content", "must be a string, got null"))
    else:
        lifted["system"] = content  # a wrong type is reported by the schema, as messages[0].content
    return lifted, problems, True


def _no_system_prompt(family: Family) -> str:
    return (f"family {family.name} takes no system prompt; put its instructions at the start of the first "
            "user message")


_LIFTED_MESSAGE = re.compile(r"^messages\[(\d+)\]")


def _file_field(field_name: str | None) -> str | None:
    """A field of a lifted record (``_lift_system_message``) by its name in the file."""
    if field_name == "system":
        return "messages[0].content"
    match = _LIFTED_MESSAGE.match(field_name or "")
    if match is None:
        return field_name
    return f"messages[{int(match.group(1)) + 1}]{field_name[match.end():]}"


def _lifted_note(count: int) -> str:
    return (f"{_plural(count, 'line')} gave the system prompt as the first message ({{\"role\": \"system\", ...}}, "
            f"as OpenAI chat files do); {'it was' if count == 1 else 'each was'} read as the record's "
            '"system" field, where this format keeps it, and training uses it as the system prompt')


def _developer_as_system(value: dict[str, Any]) -> dict[str, Any]:
    """An RFT prompt with its developer messages (OpenAI's name) as the system messages they are."""
    messages = value.get("messages")
    if not isinstance(messages, list) or not any(
            isinstance(message, dict) and message.get("role") == "developer" for message in messages):
        return value
    return {**value, "messages": [
        {**message, "role": "system"} if isinstance(message, dict) and message.get("role") == "developer" else message
        for message in messages]}


def _prompt_problems(
    value: dict[str, Any], family_name: str, limits: DataLimits, *, reference_required: bool = True
) -> list[tuple[str | None, str]]:
    """The rules of an RFT prompt beyond its schema: a conversation the model can answer next,
    and a reference answer for the grader (unless the grader needs none: ``reference_required``)."""
    problems: list[tuple[str | None, str]] = []
    messages = value.get("messages")
    if isinstance(messages, list):  # otherwise the schema check has said so
        problems += _prompt_turn_problems(messages, family_name, limits)
    if "system" in value:
        problems.append(("system", 'put the system prompt in messages, as the first message '
                                   '{"role": "system", "content": ...}; keys besides messages go '
                                   "to the grader, not to the model"))
    return problems + (_reference_problems(value) if reference_required else [])


def _prompt_turn_problems(
    messages: list[Any], family_name: str, limits: DataLimits
) -> list[tuple[str | None, str]]:
    if not messages:
        return [("messages", "needs at least 1 message (the user's turn), got 0")]
    problems: list[tuple[str | None, str]] = []
    roles = [message.get("role") if isinstance(message, dict) else None for message in messages]
    for index, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str) and not content.strip():
            problems.append((f"messages[{index}].content", "must not be empty or only whitespace"))
        if roles[index] in SYSTEM_ROLES and index > 0:
            problems.append((f"messages[{index}].role", f"a {roles[index]} message may only be the first message"))
    if roles[-1] in (*SYSTEM_ROLES, "assistant"):
        problems.append((f"messages[{len(roles) - 1}].role",
                         f"the last message must be 'user' (the model writes the turn after it), "
                         f"got {roles[-1]!r}"))
    turns = [role for role in roles if role not in SYSTEM_ROLES]
    if limits.single_turn and len(turns) > 1:
        problems.append(("messages", f"family {family_name} takes single-turn prompts: an optional "
                                     f"system message, then one user message; got {len(turns)} turns"))
    return problems


def _reference_problems(value: dict[str, Any]) -> list[tuple[str | None, str]]:
    """A reference answer at the top level or under ``metadata``: exactly one, and not null."""
    metadata = value.get("metadata")
    nested = isinstance(metadata, dict) and "reference_answer" in metadata
    if "reference_answer" in value and nested:
        return [("reference_answer", "given twice, here and under metadata; keep one")]
    if not ("reference_answer" in value or nested):
        return [("reference_answer", "required key is missing (at the top level or under metadata); "
                                     "it is what the grader compares the model's answer with")]
    field_name = "reference_answer" if "reference_answer" in value else "metadata.reference_answer"
    answer = value["reference_answer"] if "reference_answer" in value else metadata["reference_answer"]
    if answer is None:
        return [(field_name, "must not be null")]
    if isinstance(answer, str) and not answer.strip():
        return [(field_name, "must not be empty or only whitespace")]
    return []


def _reserved(field_name: str, text: str) -> list[tuple[str | None, str]]:
    return [
        (field_name, f"contains the reserved string {reserved!r}; rephrase it or drop the colon")
        for reserved in RESERVED_STRINGS
        if reserved in text
    ]


# ---------------------------------------------------------------------------------------------
# Tokens.


def _token_limit(
    family_name: str, limits: DataLimits, tokenizer: PreTrainedTokenizerBase | None
) -> tuple[int, str] | None:
    """The tightest of the family's per-record bound and the tokenizer's context, with its source.
    (An RFT prompt is also bounded by the job's maxPromptLength, which training checks.)"""
    candidates: list[tuple[int, str]] = []
    if limits.record_tokens_max is not None:
        candidates.append((limits.record_tokens_max, f"family {family_name}"))
    context = getattr(tokenizer, "model_max_length", None) if tokenizer is not None else None
    if isinstance(context, int) and 0 < context < SANE_MODEL_MAX_LENGTH:
        candidates.append((context, "the tokenizer's model_max_length"))
    return min(candidates) if candidates else None


def count_tokens(record: Record, tokenizer: PreTrainedTokenizerBase | None) -> int:
    """Tokens the record takes in training: through the chat template for conversations (an RFT
    prompt with the generation prompt that follows it), plain for text. Without a tokenizer, the
    AWS validator's estimate (characters / 3 per text)."""
    if tokenizer is None:
        texts = _texts(record)
        return sum(len(text) // CHARACTERS_PER_ESTIMATED_TOKEN for text in texts)
    if isinstance(record, TextRecord):
        return len(tokenizer(record.input)["input_ids"])
    if isinstance(record, RftRecord):
        encoded = tokenizer.apply_chat_template(rft_prompt(record), tokenize=True, add_generation_prompt=True)
    else:
        turns = template_turns(chat_messages(record))  # type: ignore[arg-type]
        encoded = tokenizer.apply_chat_template(turns, tools=chat_tools(record), tokenize=True)
    # transformers 5 returns a BatchEncoding here, earlier versions a plain list of ids.
    ids = encoded["input_ids"] if hasattr(encoded, "keys") else encoded
    return len(ids)


def _texts(record: Record) -> list[str]:
    if isinstance(record, MessagesRecord):
        return [record.system or "", *(message.content for message in record.messages)]
    if isinstance(record, PromptCompletionRecord):
        return [record.prompt, record.completion]
    if isinstance(record, RftRecord):
        return [message.content for message in record.messages]
    if isinstance(record, ChatRecord):
        calls = [call.function.arguments for message in record.messages for call in message.tool_calls or ()]
        tools = [json.dumps(chat_tools(record))] if record.tools else []
        return [record.system or "", *(text_of(message.content) for message in record.messages), *calls, *tools]
    return [record.input]


def _token_problem(
    record: Record, tokenizer: PreTrainedTokenizerBase | None, limit: tuple[int, str]
) -> str | None:
    maximum, source = limit
    count = count_tokens(record, tokenizer)
    if count <= maximum:
        return None
    if tokenizer is None:
        return (f"record is an estimated {count:,} tokens (characters / "
                f"{CHARACTERS_PER_ESTIMATED_TOKEN}, no tokenizer given); the limit is "
                f"{maximum:,} ({source})")
    return f"record is {count:,} tokens with the model's tokenizer; the limit is {maximum:,} ({source})"


# ---------------------------------------------------------------------------------------------
# Wording.


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:40] + "…")
    return json.dumps(value)[:40]


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _size(count: int) -> str:
    # Exact bytes, so a file just over the bound shows why; a rounded unit for the eye.
    for unit, scale in (("GB", 1_000_000_000), ("MB", 1_000_000), ("kB", 1_000)):
        if count >= scale:
            return f"{count:,} bytes ({count / scale:,.1f} {unit})"
    return f"{count:,} bytes"
