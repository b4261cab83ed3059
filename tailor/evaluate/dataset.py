"""Evaluation datasets: JSON Lines of ``{"prompt", "referenceResponse", "category", "modelResponses"}``
(docs/evaluation.md).

Checked like every dataset before any model is loaded: every problem is reported at once, with
its line and field, and a dataset with problems is refused whole (no half-run evaluation).

``modelResponses`` (``[{"response", "modelIdentifier"}]``) holds the answers of a job's precomputed
inference sources: exactly one entry per source of the job on every line (the original takes one
source, so one entry; Tailor takes two sources to compare them side by side), each naming its
source. A line of a job without precomputed sources may not carry them: answers that would be
silently ignored are refused instead.
"""

from __future__ import annotations

from functools import partial

from pydantic import ValidationError

from tailor import storage
from tailor.data.formats import EvaluationRecord
from tailor.data.validate import Problem, Report, describe_error, json_lines
from tailor.errors import InvalidInput
from tailor.evaluate.results import Question
from tailor.settings import Settings

MAX_PROMPTS = 1000  # the original service's limit per job


def load_questions(uri: str, settings: Settings | None = None, *, reference_required: bool = False,
                   needed_for: str = "", precomputed: tuple[str, ...] = ()) -> list[Question]:
    """The dataset's questions, or ``InvalidInput`` listing every problem.

    ``reference_required``: every record needs a ``referenceResponse`` (``needed_for`` names the
    metrics that need it, for the message). ``precomputed``: the identifiers of the job's
    precomputed inference sources, whose answers every record must carry in ``modelResponses``.
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
        responses = _responses(record, precomputed, partial(add, number))
        if responses is False:
            continue
        questions.append(Question(line=number, prompt=record.prompt, reference=record.referenceResponse,
                                  category=record.category,
                                  record={key: item for key, item in value.items() if key != "modelResponses"},
                                  responses=responses))
    if count == 0:
        add(None, None, "file has no records; an evaluation needs at least 1 prompt")
    if count > MAX_PROMPTS:
        add(None, None, f"file has {count:,} records; an evaluation takes at most {MAX_PROMPTS:,} prompts")
    if problems:
        report = Report(uri, "evaluation", None, count, sorted(problems, key=lambda p: p.line or 0))
        raise InvalidInput(report.render())
    return questions


def _responses(record: EvaluationRecord, sources: tuple[str, ...], add) -> dict[str, str] | None | bool:
    """The record's answers by source (None when the job has no precomputed source), or False
    after reporting its problems through ``add(field, message)``."""
    given = record.modelResponses
    if not sources:
        if given is not None:
            add("modelResponses", "this job has no precomputedInferenceSource: its models answer the prompts "
                "themselves, so answers given here would be ignored; remove them, or name their source in "
                "inferenceConfig.models[].precomputedInferenceSource")
            return False
        return None
    expected = ", ".join(sources)
    if not given:
        add("modelResponses", f"required: one {{\"response\", \"modelIdentifier\"}} per precomputed inference "
            f"source of the job ({expected})")
        return False
    answers: dict[str, str] = {}
    ok = True
    for position, entry in enumerate(given):
        field = f"modelResponses[{position}].modelIdentifier"
        if entry.modelIdentifier not in sources:
            add(field, f"{entry.modelIdentifier!r} names no precomputed inference source of this job ({expected})")
            ok = False
        elif entry.modelIdentifier in answers:
            add(field, f"a second response from {entry.modelIdentifier!r}; give one per source")
            ok = False
        else:
            answers[entry.modelIdentifier] = entry.response
    missing = [source for source in sources if source not in answers]
    if ok and missing:
        add("modelResponses", f"no response from {', '.join(missing)}; give one per precomputed inference "
            f"source of the job ({expected})")
        ok = False
    return answers if ok else False
