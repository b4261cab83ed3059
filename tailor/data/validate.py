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
without a system prompt refuse it and say where its text goes. ``Report.render`` shows a problem
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
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

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
    Message,
    MessagesRecord,
    PromptCompletionRecord,
    Record,
    RftMessage,
    RftRecord,
    TextRecord,
    chat_messages,
    format_of,
    json_type,
    rft_prompt,
)
from tailor.errors import InvalidInput
from tailor.settings import Settings

if TYPE_CHECKING:  # transformers stays out of the control plane (DESIGN rule 5)
    from transformers import PreTrainedTokenizerBase

Purpose = Literal["training", "validation", "evaluation"]

ROLES = ("user", "assistant")
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
) -> Report:
    """Check one file; raises ``InvalidInput`` when the family does not support the customization
    type (a mistake in the request, not in the data) and ``NotFound`` when the file is missing."""
    report, _ = _check_file(uri, customization_type, model, purpose, tokenizer, settings, keep_records=False)
    return report


def load_records(
    uri: str,
    customization_type: CustomizationType,
    model: ResolvedModel,
    *,
    purpose: Purpose,
    tokenizer: PreTrainedTokenizerBase | None = None,
    settings: Settings | None = None,
) -> list[Record]:
    """The file's typed records, or ``InvalidInput`` with the rendered report when it is invalid."""
    report, records = _check_file(uri, customization_type, model, purpose, tokenizer, settings, keep_records=True)
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
) -> list[Report]:
    """Reports for the training file, then each validation file. The family's bound on training
    plus validation records is reported on the training file's report."""
    options = {"tokenizer": tokenizer, "settings": settings}
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
        if expected is DataFormat.MESSAGES:
            value, system_problems, system_first = _lift_system_message(value, family)
        record, record_problems = _check_record(value, expected, family.name, limits, system_first=system_first)
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


def _check_record(
    value: dict[str, Any], file_format: DataFormat, family_name: str, limits: DataLimits,
    *, system_first: bool = False,
) -> tuple[Record | None, list[tuple[str | None, str]]]:
    model = RECORD_MODELS[file_format]
    record: Record | None = None
    problems: list[tuple[str | None, str]] = []
    try:
        record = model.model_validate(value)
    except ValidationError as error:
        problems = [describe_error(detail, model) for detail in error.errors()]
    # The content rules read the raw value, so they still report when another field is broken.
    if file_format is DataFormat.MESSAGES:
        problems += _conversation_problems(value, system_first=system_first)
    elif file_format is DataFormat.RFT_CHAT:
        problems += _prompt_problems(value, family_name, limits)
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
        owner = (RftMessage if model is RftRecord else Message) if len(location) > 1 else model
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


def _lift_system_message(
    value: dict[str, Any], family: Family
) -> tuple[dict[str, Any], list[tuple[str | None, str]], bool]:
    """A messages record written the OpenAI chat way, with the system prompt as its first message
    ``{"role": "system", "content": ...}``, as this format writes it: in the top-level ``system``
    field. Returns the record to check, the problems of its system prompt (by the file's own field
    names), and whether the first message was lifted out.

    A lifted record is checked without its first message, so ``_file_field`` renames the fields of
    its problems back. Only the first message may be a system message; a later one is refused by
    the schema (roles are user and assistant). A family whose records have no system prompt
    (``Family.system_prompt``) refuses one in either place, saying where its text can go instead."""
    messages = value.get("messages")
    first = messages[0] if isinstance(messages, list) and messages else None
    if not (isinstance(first, dict) and first.get("role") == "system"):
        if value.get("system") is not None and not family.system_prompt:
            return value, [("system", _no_system_prompt(family))], False
        return value, [], False
    lifted = {key: item for key, item in value.items() if key not in ("messages", "system")}
    lifted["messages"] = messages[1:]
    if not family.system_prompt:
        return lifted, [("messages[0].role", _no_system_prompt(family))], True
    problems: list[tuple[str | None, str]] = [(f"messages[0].{key}", "unexpected key (allowed: role, content)")
                                              for key in first if key not in ("role", "content")]
    if value.get("system") is not None:
        problems.append(("system", "the system prompt is given twice, here and as the first message; keep one"))
    if "content" not in first:
        problems.append(("messages[0].content", "required key is missing"))
    elif first["content"] is None:
        problems.append(("messages[0].content", "must be a string, got null"))
    else:
        lifted["system"] = first["content"]  # a wrong type is reported by the schema, as messages[0].content
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


def _prompt_problems(
    value: dict[str, Any], family_name: str, limits: DataLimits
) -> list[tuple[str | None, str]]:
    """The rules of an RFT prompt beyond its schema: a conversation the model can answer next,
    and a reference answer for the grader."""
    problems: list[tuple[str | None, str]] = []
    messages = value.get("messages")
    if isinstance(messages, list):  # otherwise the schema check has said so
        problems += _prompt_turn_problems(messages, family_name, limits)
    if "system" in value:
        problems.append(("system", 'put the system prompt in messages, as the first message '
                                   '{"role": "system", "content": ...}; keys besides messages go '
                                   "to the grader, not to the model"))
    return problems + _reference_problems(value)


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
        if roles[index] == "system" and index > 0:
            problems.append((f"messages[{index}].role", "a system message may only be the first message"))
    if roles[-1] in ("system", "assistant"):
        problems.append((f"messages[{len(roles) - 1}].role",
                         f"the last message must be 'user' (the model writes the turn after it), "
                         f"got {roles[-1]!r}"))
    turns = [role for role in roles if role != "system"]
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
        encoded = tokenizer.apply_chat_template(chat_messages(record), tokenize=True)
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
