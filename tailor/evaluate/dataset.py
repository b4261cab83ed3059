"""Evaluation datasets: JSON Lines of ``{"prompt", "referenceResponse", "category"}`` (docs/evaluation.md).

Checked like every dataset before any model is loaded: every problem is reported at once, with
its line and field, and a dataset with problems is refused whole (no half-run evaluation).
"""

from __future__ import annotations

from pydantic import ValidationError

from tailor import storage
from tailor.data.formats import EvaluationRecord
from tailor.data.validate import Problem, Report, describe_error, json_lines
from tailor.errors import InvalidInput
from tailor.evaluate.results import Question
from tailor.settings import Settings

MAX_PROMPTS = 1000  # the original service's limit per job


def load_questions(uri: str, settings: Settings | None = None, *, reference_required: bool = False,
                   needed_for: str = "") -> list[Question]:
    """The dataset's questions, or ``InvalidInput`` listing every problem.

    ``reference_required``: every record needs a ``referenceResponse`` (``needed_for`` names the
    metrics that need it, for the message).
    """
    problems: list[Problem] = []

    def add(line: int | None, field: str | None, message: str) -> None:
        problems.append(Problem(uri, line, field, message))

    questions: list[Question] = []
    count = 0
    for number, value in json_lines(storage.local_path(uri, settings), add):
        count += 1
        if value is None:
            continue
        try:
            record = EvaluationRecord.model_validate(value)
        except ValidationError as error:
            for detail in error.errors():
                add(number, *describe_error(detail, EvaluationRecord))
            continue
        if not record.prompt.strip():
            add(number, "prompt", "must not be empty or only whitespace")
            continue
        if reference_required and not (record.referenceResponse or "").strip():
            add(number, "referenceResponse", f"required by {needed_for or 'the chosen metrics'}")
            continue
        questions.append(Question(line=number, prompt=record.prompt, reference=record.referenceResponse,
                                  category=record.category, record=value))
    if count == 0:
        add(None, None, "file has no records; an evaluation needs at least 1 prompt")
    if count > MAX_PROMPTS:
        add(None, None, f"file has {count:,} records; an evaluation takes at most {MAX_PROMPTS:,} prompts")
    if problems:
        report = Report(uri, "evaluation", None, count, sorted(problems, key=lambda p: p.line or 0))
        raise InvalidInput(report.render())
    return questions
