"""Distillation (DISTILLATION): a student learns to answer as a teacher does.

Two phases, one run:

1. **The teacher answers.** Every prompt of the training file (``bedrock-conversation-2024``
   records, as Bedrock's distillation takes them, or Tailor's messages records) is sent to the
   teacher the job resolved at create time (``TrainSpec.teacher``: weights Tailor runs in an
   engine inside this process, or an operator-configured remote model), greedily, at most
   ``teacher_max_tokens`` tokens each. The prompts go in concurrently, a chunk at a time, so the
   engine batches them; between chunks a stop or pause request is honoured. The answers are
   written, with their prompts, as a messages JSONL dataset (``teacher_responses_path``) — the
   training format of the student's fine-tuning. A record that already holds an assistant turn
   is answered by the teacher too (Bedrock treats that turn as an example of the answer wanted,
   not as the training target); the given turn is left out.
2. **The student learns.** The dataset trains the student with the supervised recipe
   (``train/sft.py``: the same loop, checkpoints, pause and early stopping as FINE_TUNING).

A resumed run (after a pause, or a lost worker) finds the dataset written and skips phase 1.
Without a teacher (invocation logs read with ``usePromptResponse``: the logged answers are the
teacher's already, and Bedrock uses them as they are) phase 1 is skipped and the file's answers train
the student.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from tailor import storage
from tailor.catalog import CustomizationType
from tailor.errors import InvalidInput
from tailor.settings import Settings, get_settings
from tailor.train.contract import Hooks, PauseRequested, StopRequested, TrainOutcome
from tailor.train.spec import TrainSpec

CONVERSATION_SCHEMA = "bedrock-conversation-2024"
DATA_FOLDER = "distillation-data"
RESPONSES_FILE = "teacher-responses.jsonl"
# Prompts in flight to the teacher at once: enough to fill the engine's batch, few enough that a
# stop or pause is honoured within one chunk.
CHUNK = 64
MAX_PROBLEMS = 20

OnTeacher = Callable[[int, int], None]  # (answered so far, prompts)


@dataclass(frozen=True)
class Prompt:
    """One record's question: its system prompt and its turns up to the last user turn."""

    system: str | None
    turns: tuple[tuple[str, str], ...]  # (role, text)

    def conversation(self) -> list[dict]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return system + [{"role": role, "content": text} for role, text in self.turns]

    def record(self, answer: str) -> dict:
        """The messages training record of this prompt answered by ``answer``."""
        messages = [{"role": role, "content": text} for role, text in self.turns]
        record = {"system": self.system} if self.system else {}
        return {**record, "messages": [*messages, {"role": "assistant", "content": answer}]}


# ---------------------------------------------------------------------------------------------
# Reading records (pure)


def _text(content, where: str) -> str:
    """A turn's text: a string (messages records) or Converse content blocks of text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content and all(isinstance(b, dict) and isinstance(b.get("text"), str)
                                                     for b in content):
        return "".join(block["text"] for block in content)
    raise ValueError(f"{where}: must be text, or a list of {{\"text\": ...}} content blocks")


def conversation_of(record) -> tuple[str | None, list[tuple[str, str]]]:
    """(system prompt, turns) of one record, either format; ``ValueError`` says what is wrong."""
    if not isinstance(record, dict):
        raise ValueError("a record must be a JSON object")
    if "schemaVersion" in record and record["schemaVersion"] != CONVERSATION_SCHEMA:
        raise ValueError(f"schemaVersion: must be {CONVERSATION_SCHEMA}")
    system = record.get("system")
    if system is not None:
        system = _text(system, "system")
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages: required, a non-empty list")
    turns = []
    for position, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise ValueError(f"messages[{position}].role: must be user or assistant")
        turns.append((message["role"], _text(message.get("content"), f"messages[{position}].content")))
    if turns[0][0] != "user":
        raise ValueError("messages[0].role: the conversation must start with the user's turn")
    return system or None, turns


def read_prompts(path: Path) -> list[Prompt]:
    """Every record's prompt (a trailing assistant turn left out); every problem, by line, at once."""
    prompts, problems = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            system, turns = conversation_of(json.loads(line))
        except ValueError as error:  # json.JSONDecodeError is one
            problems.append(f"line {number}: {error}")
            continue
        while turns and turns[-1][0] == "assistant":
            turns.pop()
        prompts.append(Prompt(system, tuple(turns)))
    if problems:
        shown = "; ".join(problems[:MAX_PROBLEMS])
        more = f" (and {len(problems) - MAX_PROBLEMS} more)" if len(problems) > MAX_PROBLEMS else ""
        raise InvalidInput(f"The distillation prompts are not valid: {shown}{more}.")
    if not prompts:
        raise InvalidInput("The distillation prompts file holds no records.")
    return prompts


def as_messages_file(source: Path, out: Path) -> int:
    """Write ``source``'s conversations (either format, each ending with the assistant's answer) as
    messages records — the FINE_TUNING format of the ``tailor`` family; how many."""
    count = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as sink:
        for line in source.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            system, turns = conversation_of(json.loads(line))
            record = {"system": system} if system else {}
            sink.write(json.dumps({**record, "messages": [{"role": r, "content": t} for r, t in turns]},
                                  ensure_ascii=False) + "\n")
            count += 1
    return count


def teacher_responses_path(spec: TrainSpec) -> Path:
    """Where phase 1 writes the teacher's answers: beside the run's output folder (a job's folder)."""
    return Path(spec.output_dir).parent / DATA_FOLDER / RESPONSES_FILE


# ---------------------------------------------------------------------------------------------
# Phase 1: the teacher answers


@dataclass(frozen=True)
class TeacherAnswers:
    prompts: int
    written: int
    failed: int
    empty: int
    first_failure: str | None = None

    def describe(self) -> str:
        text = f"The teacher's answers: {self.written} of {self.prompts} prompts answered"
        if self.failed:
            text += f"; {self.failed} failed (first: {self.first_failure})"
        if self.empty:
            text += f"; {self.empty} empty answers left out"
        return text + "."


def ask_teacher(spec: TrainSpec, settings: Settings, prompts: list[Prompt], out: Path, hooks: Hooks,
                on_teacher: OnTeacher | None = None) -> TeacherAnswers:
    """Every prompt answered by the spec's teacher, written to ``out`` (whole, or not at all)."""
    from tailor.evaluate.backends import Failure, Generation, Opener

    generation = Generation(max_tokens=spec.teacher_max_tokens or spec.teacher.generation.max_tokens,
                            temperature=0.0)
    records, failed, empty, first_failure = [], 0, 0, None
    done = 0
    if on_teacher:
        on_teacher(0, len(prompts))
    with Opener(settings) as opener:
        teacher = opener.open_model(spec.teacher)
        for start in range(0, len(prompts), CHUNK):
            if hooks.should_stop():
                raise StopRequested()
            if hooks.should_pause():
                raise PauseRequested(0)
            chunk = prompts[start:start + CHUNK]
            replies = teacher.chat([prompt.conversation() for prompt in chunk], generation)
            for prompt, reply in zip(chunk, replies):
                if isinstance(reply, Failure):
                    failed += 1
                    first_failure = first_failure or reply.message
                elif not reply.strip():
                    empty += 1
                else:
                    records.append(prompt.record(reply.strip()))
            done += len(chunk)
            if on_teacher:
                on_teacher(done, len(prompts))
    answers = TeacherAnswers(len(prompts), len(records), failed, empty, first_failure)
    if not records:
        raise InvalidInput(f"The teacher gave no usable answer: {answers.describe()}")
    storage.write_text_atomic(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return answers


# ---------------------------------------------------------------------------------------------
# The recipe


def run(spec: TrainSpec, settings: Settings | None = None, hooks: Hooks | None = None,
        on_teacher: OnTeacher | None = None,
        on_answers: Callable[[TeacherAnswers | None, Path], None] | None = None) -> TrainOutcome:
    """Distil: the teacher answers (unless a resumed run wrote its answers already), the student
    fine-tunes on them. ``on_answers`` hears of the dataset once written (None: reused)."""
    from tailor.train import sft

    settings = settings or get_settings()
    hooks = hooks or Hooks()
    data = teacher_responses_path(spec)
    if spec.teacher is None:  # the training file's answers are the teacher's (invocation logs)
        as_messages_file(storage.local_path(spec.training_uri, settings), data)
        answers = None
    elif data.is_file():
        answers = None
    else:
        prompts = read_prompts(storage.local_path(spec.training_uri, settings))
        answers = ask_teacher(spec, settings, prompts, data, hooks, on_teacher)
    if on_answers:
        on_answers(answers, data)
    student = replace(spec, customization_type=CustomizationType.FINE_TUNING, training_uri=str(data),
                      teacher=None)
    return sft.run(student, settings, hooks)


if __name__ == "__main__":
    from tailor.train.process import main

    raise SystemExit(main(run))
