"""One evaluation job's work: answer and score every dataset with every model, write the results.

``run`` takes the resolved spec (``tailor.evaluate.spec``) and writes into a staging folder; the
job worker publishes that folder to the output location only when it is complete, so a failed or
stopped job leaves nothing half-written there. The models answer in an engine inside this
process. The staging folder holds, as the original service lays its results out:

- ``models/{model}/taskTypes/{task}/datasets/{dataset}/{uuid}_output.jsonl`` — one line per
  answered prompt: ``automatedEvaluationResult.scores``, ``inputRecord``, ``modelResponses``;
- ``reports/{dataset}/`` — comparison.json, comparison.csv and report.html (all models side by side);
- ``summary.json`` — per dataset: averages per model, metric and category, and data coverage.

When a model under evaluation is a custom model trained here, its training data is known
(``spec.training_uri``), so the report says which questions that data barely covers.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path

from tailor.evaluate.backends import Opener
from tailor.evaluate.dataset import load_questions
from tailor.evaluate.results import Comparison, summarize
from tailor.evaluate.run import StopRequested, compare, needs_reference, with_coverage
from tailor.evaluate.spec import EvaluationSpec, ModelToRun


def run(spec: EvaluationSpec, staging: Path, settings, should_stop: Callable[[], bool] = lambda: False) -> None:
    """Evaluate into ``staging``; ``StopRequested`` when ``should_stop`` says so."""
    staging.mkdir(parents=True, exist_ok=True)
    with Opener(settings, max_models=len(spec.models) + 1) as opener:
        models = [opener.open_model(model) for model in spec.models]
        judge = opener.open_model(spec.judge) if spec.judge else None
        generations = [model.generation for model in spec.models]
        summary = {}
        for dataset in spec.datasets:
            questions = load_questions(dataset.uri, settings, reference_required=needs_reference(list(dataset.metrics)))
            comparison = compare(questions, models, list(dataset.metrics), judge=judge, task_type=dataset.task_type,
                                 generation=generations, settings=settings, should_stop=should_stop)
            if spec.training_uri:
                comparison = with_coverage(comparison, spec.training_uri, dataset.uri, settings)
            _write_outputs(staging, comparison, spec.models, dataset.task_type, dataset.name)
            summary[dataset.name] = {"taskType": dataset.task_type, "summary": summarize(comparison),
                                     "coverage": comparison.coverage}
    (staging / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    if should_stop():
        raise StopRequested("The evaluation was stopped.")


def path_name(identifier: str) -> str:
    """A model identifier as one path segment: an ARN's resource id, other characters made safe."""
    if identifier.startswith("arn:"):
        identifier = identifier.rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9._:-]+", "-", identifier).strip("-") or "model"


def _write_outputs(staging: Path, comparison: Comparison, models: tuple[ModelToRun, ...], task: str,
                   dataset: str) -> None:
    from tailor.evaluate.report import write_report

    for position, model in enumerate(models):
        folder = staging / "models" / path_name(model.identifier) / "taskTypes" / task / "datasets" / dataset
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for row in comparison.rows:
            answer = row.answers[position]
            if answer.response is None:
                continue  # as in the original: only prompts that produced a response count
            scores = [{"metricName": s.metric, "result": s.value,
                       **({"evaluatorDetails": [{"explanation": s.explanation}]} if s.explanation else {})}
                      for s in answer.scores]
            lines.append(json.dumps({
                "automatedEvaluationResult": {"scores": scores}, "inputRecord": row.question.record,
                "modelResponses": [{"response": answer.response, "modelIdentifier": model.identifier}],
            }, ensure_ascii=False))
        (folder / f"{uuid.uuid4()}_output.jsonl").write_text("".join(line + "\n" for line in lines))
    write_report(comparison, staging / "reports" / dataset)
