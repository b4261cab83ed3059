"""Turn common dataset shapes into messages JSONL, the format every fine-tuning family here takes.

Pure functions (``qa_to_messages``, ``split_records``) do the work on lists; the file wrappers
read a JSON array or JSON Lines, check every item first and write nothing unless all of them
convert, then write each output atomically, so a failed run never leaves a half-written file.
Inputs are read leniently (blank JSONL lines are skipped, extra keys ignored); outputs are strict
JSONL, one record per line, UTF-8 without escaping.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from tailor import storage
from tailor.data.formats import Message, MessagesRecord, json_type
from tailor.errors import InvalidInput, NotFound

# Key pairs that name a question and its answer, tried in this order when none are given.
QA_KEY_PAIRS: tuple[tuple[str, str], ...] = (
    ("question", "answer"),
    ("sentence1", "sentence2"),
    ("prompt", "completion"),
    ("input", "output"),
)

Notify = Callable[[str], None]
T = TypeVar("T")


def detect_qa_keys(items: list[Any]) -> tuple[str, str]:
    """The pair of ``QA_KEY_PAIRS`` that most items hold both keys of (the earlier pair on a tie),
    so one broken item does not hide the pair; the broken items are then reported by name."""
    objects = [item for item in items if isinstance(item, dict)]
    holding = [sum(question in item and answer in item for item in objects)
               for question, answer in QA_KEY_PAIRS]
    if max(holding, default=0) > 0:
        return QA_KEY_PAIRS[holding.index(max(holding))]
    seen = ", ".join(repr(key) for key in objects[0]) if objects else "none"
    pairs = ", ".join(f"{question}/{answer}" for question, answer in QA_KEY_PAIRS)
    raise InvalidInput(
        f"Cannot tell which keys hold the question and the answer: no item has one of the pairs "
        f"{pairs} (the first item has keys {seen}). Name them with --question-key and --answer-key."
    )


def qa_to_messages(
    items: list[Any], *, question_key: str, answer_key: str, system: str | None
) -> list[MessagesRecord]:
    """One single-turn conversation per item; ``InvalidInput`` lists every item that cannot be
    converted (by index, counted from 0 as in the list) and converts none."""
    labels = [f"item {index}" for index in range(len(items))]
    return _to_messages(items, labels, question_key, answer_key, system, source=None)


def split_records(
    records: list[T], validation_fraction: float, seed: int
) -> tuple[list[T], list[T]]:
    """Hold out a seeded random ``validation_fraction`` of the records (at least one, never all).
    Both parts keep the original order."""
    if not 0 < validation_fraction < 1:
        raise InvalidInput(f"The validation fraction must be between 0 and 1, got {validation_fraction}.")
    if len(records) < 2:
        raise InvalidInput(f"Cannot hold out validation data from {len(records)} record(s).")
    held_out_count = min(max(round(len(records) * validation_fraction), 1), len(records) - 1)
    held_out = set(random.Random(seed).sample(range(len(records)), held_out_count))
    kept = [record for index, record in enumerate(records) if index not in held_out]
    return kept, [record for index, record in enumerate(records) if index in held_out]


def write_jsonl(destination: str | Path, records: list[BaseModel]) -> None:
    """Write records one per line, atomically: readers see the old file or the whole new one."""
    lines = (
        json.dumps(record.model_dump(mode="json", exclude_none=True), ensure_ascii=False) + "\n"
        for record in records
    )
    storage.write_text_atomic(Path(destination), "".join(lines))


def convert_qa_file(
    source: str | Path,
    destination: str | Path,
    *,
    question_key: str | None = None,
    answer_key: str | None = None,
    system: str | None = None,
    validation_fraction: float | None = None,
    validation_destination: str | Path | None = None,
    seed: int = 0,
    notify: Notify | None = None,
) -> int:
    """Convert a JSON array or JSON Lines file of question/answer objects to messages JSONL.

    Without keys, the pair is detected (see ``QA_KEY_PAIRS``) and ``notify`` is told which.
    With ``validation_fraction``, that share is written to ``validation_destination`` instead.
    Returns the number of records converted (both files together).
    """
    say = notify or (lambda _: None)
    if (question_key is None) != (answer_key is None):
        raise InvalidInput("Give both the question key and the answer key, or neither.")
    items, labels = read_items(source)
    if question_key is None or answer_key is None:
        question_key, answer_key = detect_qa_keys(items)
        say(f"Using {question_key!r} as the question and {answer_key!r} as the answer "
            f"(detected in {source}).")
    records = _to_messages(items, labels, question_key, answer_key, system, source=str(source))
    _write(records, destination, validation_fraction, validation_destination, seed, say)
    return len(records)


def prompt_completion_to_messages_file(
    source: str | Path,
    destination: str | Path,
    *,
    system: str | None = None,
    validation_fraction: float | None = None,
    validation_destination: str | Path | None = None,
    seed: int = 0,
    notify: Notify | None = None,
) -> int:
    """Convert prompt/completion records to messages JSONL (user = prompt, assistant =
    completion), optionally adding a system prompt. Returns the number of records converted."""
    items, labels = read_items(source)
    records = _to_messages(items, labels, "prompt", "completion", system, source=str(source))
    _write(records, destination, validation_fraction, validation_destination, seed,
           notify or (lambda _: None))
    return len(records)


def read_items(source: str | Path) -> tuple[list[Any], list[str]]:
    """The items of a JSON array (or a single JSON object) or of a JSON Lines file, with a label
    naming where each came from: ``item 3`` or ``line 5 (item 3)``."""
    path = Path(source).expanduser()
    if not path.is_file():
        raise NotFound(f"No file at {source}.")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidInput(f"{source} is not UTF-8 text: byte 0x{data[error.start]:02x} at "
                           f"offset {error.start}.") from None
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None  # not one JSON document: JSON Lines, read below
    one_line = "\n" not in text.strip()
    if isinstance(whole, list):
        return whole, [f"item {index}" for index in range(len(whole))]
    if isinstance(whole, dict) and not one_line:  # one pretty-printed object
        return [whole], ["item 0"]
    if whole is not None and not isinstance(whole, dict):
        raise InvalidInput(f"{source} holds a JSON {json_type(whole)}; expected an array "
                           "of objects or JSON Lines.")

    items: list[Any] = []
    labels: list[str] = []
    problems: list[str] = []
    # Split on "\n" only: str.splitlines would also break at U+2028 inside unescaped strings.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as error:
            problems.append(f"{source}: line {number}: invalid JSON: {error.msg} (column {error.colno})")
            continue
        labels.append(f"line {number} (item {len(items) - 1})")
    if problems:
        raise InvalidInput(_nothing_written(problems))
    return items, labels


def _to_messages(
    items: list[Any],
    labels: list[str],
    question_key: str,
    answer_key: str,
    system: str | None,
    source: str | None,
) -> list[MessagesRecord]:
    if not items:
        raise InvalidInput(f"{source or 'The input'} holds no items to convert.")
    problems: list[str] = []
    records: list[MessagesRecord] = []
    prefix = f"{source}: " if source else ""
    for item, label in zip(items, labels, strict=True):
        item_problems = _item_problems(item, question_key, answer_key)
        problems += [f"{prefix}{label}: {problem}" for problem in item_problems]
        if not item_problems:
            records.append(MessagesRecord(system=system or None, messages=[
                Message(role="user", content=item[question_key]),
                Message(role="assistant", content=item[answer_key]),
            ]))
    if problems:
        raise InvalidInput(_nothing_written(problems))
    return records


def _item_problems(item: Any, question_key: str, answer_key: str) -> list[str]:
    if not isinstance(item, dict):
        return [f"expected an object, got {json_type(item)}"]
    problems = []
    for key in (question_key, answer_key):
        if key not in item:
            problems.append(f"key {key!r} is missing (item keys: {', '.join(map(repr, item))})")
        elif not isinstance(item[key], str):
            problems.append(f"{key!r} must be a string, got {json_type(item[key])}")
        elif not item[key].strip():
            problems.append(f"{key!r} is empty")
    return problems


def _write(
    records: list[MessagesRecord],
    destination: str | Path,
    validation_fraction: float | None,
    validation_destination: str | Path | None,
    seed: int,
    say: Notify,
) -> None:
    if validation_fraction is None and validation_destination is None:
        write_jsonl(destination, records)
        say(f"Wrote {len(records)} records to {destination}.")
        return
    if validation_fraction is None or validation_destination is None:
        raise InvalidInput("A validation split needs both a fraction and a file to write it to.")
    training, validation = split_records(records, validation_fraction, seed)
    write_jsonl(destination, training)
    write_jsonl(validation_destination, validation)
    say(f"Wrote {len(training)} records to {destination} and {len(validation)} held-out "
        f"records to {validation_destination} (seed {seed}).")


def _nothing_written(problems: list[str]) -> str:
    count = f"{len(problems)} problem" + ("" if len(problems) == 1 else "s")
    return f"Nothing written: {count}.\n  " + "\n  ".join(problems)
