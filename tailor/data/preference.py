"""Preference data for DPO: read and check OpenAI's preference JSONL and report every problem.

A line is one comparison (``tailor.data.formats.PreferenceRecord``)::

    {"input": {"messages": [{"role": "user", "content": "..."}], "tools": [...], "parallel_tool_calls": true},
     "preferred_output": [{"role": "assistant", "content": "..."}],
     "non_preferred_output": [{"role": "assistant", "content": "..."}]}

``validate_preference`` reads one file and returns a ``tailor.data.validate.Report`` naming each
problem by line and field, all of them at once, with the same line reading (``json_lines``), the
same wording of schema errors (``describe_error``) and the same bounds (the family's
``limits_for(DPO)``) as every other format. The rules beyond the schema:

- the input is a conversation the model answers next: an optional system (or ``developer``)
  message first, then user and assistant turns alternating, the last one the user's;
- each output is exactly one assistant message, not empty;
- the two answers differ (a pair of equal answers teaches nothing and only adds noise);
- the prompt with its longer answer fits the family's per-record bound and the model's context,
  counted with the model's tokenizer through its chat template (``preference_turns``: the prompt
  as the chat template takes it, ``developer`` read as ``system``, the role OpenAI renamed).

``tools`` are passed to the chat template with the prompt; ``parallel_tool_calls`` is accepted
and changes nothing (Tailor's training does not call tools).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from tailor import storage
from tailor.catalog import CustomizationType, DataFormat, ResolvedModel
from tailor.data.formats import (
    PreferenceAnswer,
    PreferenceInput,
    PreferenceRecord,
    PreferenceTurn,
    format_of,
)
from tailor.data.validate import (
    SANE_MODEL_MAX_LENGTH,
    Problem,
    Purpose,
    Report,
    accepted_formats,
    describe_error,
    json_lines,
)
from tailor.errors import InvalidInput
from tailor.settings import Settings

if TYPE_CHECKING:  # transformers stays out of the control plane (DESIGN rule 5)
    from transformers import PreTrainedTokenizerBase

DPO = CustomizationType.DPO
SYSTEM_ROLES = ("system", "developer")
OUTPUTS = ("preferred_output", "non_preferred_output")


def preference_turns(record: PreferenceRecord) -> tuple[list[dict], dict, dict]:
    """The prompt as a chat template takes it (``developer`` as ``system``), and the preferred and
    non-preferred answers as assistant turns."""
    prompt = [{"role": "system" if turn.role == "developer" else turn.role, "content": turn.content}
              for turn in record.input.messages]
    chosen, rejected = record.preferred_output[0], record.non_preferred_output[0]
    return (prompt, {"role": "assistant", "content": chosen.content},
            {"role": "assistant", "content": rejected.content})


def validate_preference(
    uri: str,
    model: ResolvedModel,
    *,
    purpose: Purpose = "training",
    tokenizer: PreTrainedTokenizerBase | None = None,
    settings: Settings | None = None,
) -> Report:
    """Check one preference file; ``InvalidInput`` when the model's family has no DPO (a mistake in
    the request, not in the data) and ``NotFound`` when the file is missing."""
    report, _ = _check_file(uri, model, purpose, tokenizer, settings, keep_records=False)
    return report


def load_preference_records(
    uri: str,
    model: ResolvedModel,
    *,
    purpose: Purpose = "training",
    tokenizer: PreTrainedTokenizerBase | None = None,
    settings: Settings | None = None,
) -> list[PreferenceRecord]:
    """The file's records, or ``InvalidInput`` with the rendered report when it is invalid."""
    report, records = _check_file(uri, model, purpose, tokenizer, settings, keep_records=True)
    if not report.ok:
        raise InvalidInput(report.render())
    return records


def validate_preference_dataset(
    training_uri: str,
    validation_uris: list[str] | tuple[str, ...],
    model: ResolvedModel,
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    settings: Settings | None = None,
) -> list[Report]:
    """Reports for the training file, then each validation file; the family's bound on training
    plus validation records is reported on the training file's report."""
    training = validate_preference(training_uri, model, purpose="training", tokenizer=tokenizer, settings=settings)
    validations = [validate_preference(uri, model, purpose="validation", tokenizer=tokenizer, settings=settings)
                   for uri in validation_uris]
    total_max = model.family.limits_for(DPO).total_records_max
    validation_count = sum(report.record_count for report in validations)
    total = training.record_count + validation_count
    if validations and total_max is not None and total > total_max:
        message = (f"training and validation data together have {total:,} records "
                   f"({training.record_count:,} + {validation_count:,}); family {model.family.name} "
                   f"allows at most {total_max:,}")
        training = replace(training, problems=[Problem(training_uri, None, None, message), *training.problems])
    return [training, *validations]


# ---------------------------------------------------------------------------------------------


def _check_file(uri, model: ResolvedModel, purpose: Purpose, tokenizer, settings, *, keep_records: bool):
    if purpose not in ("training", "validation"):
        raise InvalidInput(f"purpose must be 'training' or 'validation', got {purpose!r}.")
    family, limits = model.family, model.family.limits_for(DPO)
    accepted_formats(family, DPO)  # refuses a family without DPO, naming what it supports
    problems: list[Problem] = []

    def add(line: int | None, field_name: str | None, message: str) -> None:
        problems.append(Problem(uri, line, field_name, message))

    size = storage.size(uri, settings)
    bytes_max = limits.train_bytes_max if purpose == "training" else limits.validation_bytes_max
    if bytes_max is not None and size > bytes_max:
        add(None, None, f"file is {size:,} bytes; {purpose} data for family {family.name} may be at most "
                        f"{bytes_max:,} bytes")
        return Report(uri, purpose, DataFormat.PREFERENCE, 0, problems), []

    token_limit = _token_limit(family.name, limits.record_tokens_max, tokenizer)
    records: list[PreferenceRecord] = []
    count = 0
    for number, value in json_lines(storage.local_path(uri, settings), add):
        count += 1
        if value is None:
            continue
        record, record_problems = check_record(value)
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
    counted = f"{count:,} record" + ("" if count == 1 else "s")
    if count < low:
        add(None, None, f"file has {counted}; {purpose} data for family {family.name} needs at least {low:,} "
                        f"for {DPO.value}")
    if high is not None and count > high:
        add(None, None, f"file has {counted}; {purpose} data for family {family.name} allows at most {high:,} "
                        f"for {DPO.value}")
    ordered = sorted(problems, key=lambda problem: problem.line or 0)
    return Report(uri, purpose, DataFormat.PREFERENCE, count, ordered), records


def check_record(value: dict[str, Any]) -> tuple[PreferenceRecord | None, list[tuple[str | None, str]]]:
    """One parsed line: the typed record when it has no problem, and every problem by field."""
    if {"chosen", "rejected"} <= value.keys():  # the Hugging Face / TRL way of writing a pair
        return None, [(None, "record has keys 'chosen' and 'rejected' (TRL's preference format); DPO takes "
                             "OpenAI's: input.messages, preferred_output, non_preferred_output")]
    shape = format_of(value.keys())
    if shape is not None and shape is not DataFormat.PREFERENCE:
        keys = ", ".join(repr(key) for key in value)
        return None, [(None, f"record has keys {keys}, the {shape.value} format, but {DPO.value} takes "
                             "preference records: input, preferred_output, non_preferred_output")]
    problems: list[tuple[str | None, str]] = []
    record = None
    try:
        record = PreferenceRecord.model_validate(value)
    except ValidationError as error:
        problems = [_describe(detail) for detail in error.errors()]
    # The content rules read the raw value, so they still report when another field is broken.
    problems += _input_problems(value.get("input"))
    answers = []
    for key in OUTPUTS:
        answer, answer_problems = _output_problems(key, value.get(key))
        answers.append(answer)
        problems += answer_problems
    if all(isinstance(answer, str) for answer in answers) and answers[0] == answers[1]:
        problems.append(("non_preferred_output[0].content",
                         "is the same as preferred_output[0].content; a preference needs two different answers"))
    return (record if not problems else None), _unique(problems)


def _describe(detail: dict) -> tuple[str | None, str]:
    """``describe_error``, with the allowed keys of the object the unexpected key is in."""
    if detail["type"] != "extra_forbidden":
        return describe_error(detail, PreferenceRecord)
    location = detail["loc"]
    owner = {0: PreferenceRecord}.get(len(location) - 1)
    if owner is None:
        owner = (PreferenceInput if location[:1] == ("input",) and len(location) == 2
                 else PreferenceTurn if location[:1] == ("input",) else PreferenceAnswer)
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location).lstrip(".")
    return path, f"unexpected key (allowed: {', '.join(owner.model_fields)})"


def _input_problems(given: Any) -> list[tuple[str | None, str]]:
    """A conversation the model can answer next: optional system first, then user and assistant
    turns alternating, ending with the user's."""
    messages = given.get("messages") if isinstance(given, dict) else None
    if not isinstance(messages, list):
        return []  # the schema check has said so
    if not messages:
        return [("input.messages", "needs at least 1 message (the user's turn), got 0")]
    problems: list[tuple[str | None, str]] = []
    roles = [message.get("role") if isinstance(message, dict) else None for message in messages]
    for index, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str) and not content.strip():
            problems.append((f"input.messages[{index}].content", "must not be empty or only whitespace"))
        if roles[index] in SYSTEM_ROLES and index > 0:
            problems.append((f"input.messages[{index}].role",
                             f"a {roles[index]} message may only be the first message"))
    turns = [(index, role) for index, role in enumerate(roles) if role in ("user", "assistant")]
    if turns and turns[0][1] != "user":
        problems.append((f"input.messages[{turns[0][0]}].role",
                         f"the first turn must be 'user', got {turns[0][1]!r}"))
    for (_, previous), (index, current) in zip(turns, turns[1:]):
        if current == previous:
            expected = "assistant" if previous == "user" else "user"
            problems.append((f"input.messages[{index}].role",
                             f"expected {expected!r} after {previous!r}, got {current!r}"))
    if roles[-1] != "user" and roles[-1] in (*SYSTEM_ROLES, "assistant"):
        problems.append((f"input.messages[{len(roles) - 1}].role",
                         f"the last message must be 'user' (the answers are the turn after it), got {roles[-1]!r}"))
    return problems


def _output_problems(key: str, given: Any) -> tuple[str | None, list[tuple[str | None, str]]]:
    """Exactly one assistant message with text: (its text, problems)."""
    if not isinstance(given, list):
        return None, []  # the schema check has said so
    if len(given) != 1:
        return None, [(key, f"must hold exactly 1 assistant message, got {len(given)}")]
    content = given[0].get("content") if isinstance(given[0], dict) else None
    if isinstance(content, str) and not content.strip():
        return content, [(f"{key}[0].content", "must not be empty or only whitespace")]
    return content if isinstance(content, str) else None, []


def _unique(problems: list[tuple[str | None, str]]) -> list[tuple[str | None, str]]:
    return list(dict.fromkeys(problems))


# ---------------------------------------------------------------------------------------------
# Tokens.


def _token_limit(family_name: str, record_tokens_max: int | None, tokenizer) -> tuple[int, str] | None:
    """The tightest of the family's per-record bound and the tokenizer's context, with its source."""
    candidates: list[tuple[int, str]] = []
    if record_tokens_max is not None:
        candidates.append((record_tokens_max, f"family {family_name}"))
    context = getattr(tokenizer, "model_max_length", None) if tokenizer is not None else None
    if isinstance(context, int) and 0 < context < SANE_MODEL_MAX_LENGTH:
        candidates.append((context, "the tokenizer's model_max_length"))
    return min(candidates) if candidates else None


def count_tokens(record: PreferenceRecord, tokenizer) -> int:
    """The tokens of the longer of the record's two training sequences (prompt and one answer,
    through the chat template). Without a tokenizer, characters / 3, the estimate of validate.py."""
    prompt, chosen, rejected = preference_turns(record)
    if tokenizer is None:
        prompt_chars = sum(len(turn["content"]) for turn in prompt)
        return (prompt_chars + max(len(chosen["content"]), len(rejected["content"]))) // 3
    tools = record.input.tools

    def length(answer: dict) -> int:
        encoded = tokenizer.apply_chat_template(prompt + [answer], tools=tools, tokenize=True)
        return len(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)

    return max(length(chosen), length(rejected))


def _token_problem(record: PreferenceRecord, tokenizer, limit: tuple[int, str]) -> str | None:
    maximum, source = limit
    count = count_tokens(record, tokenizer)
    if count <= maximum:
        return None
    how = "with the model's tokenizer" if tokenizer is not None else "estimated (characters / 3, no tokenizer)"
    return (f"record is {count:,} tokens {how} (the prompt with its longer answer); the limit is "
            f"{maximum:,} ({source})")


def tools_json(record: PreferenceRecord) -> str | None:
    """The record's tools as one JSON string (or None): how a table of records with tools of
    different shapes carries them to the chat template."""
    return json.dumps(record.input.tools) if record.input.tools is not None else None
