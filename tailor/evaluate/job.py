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

A precomputed inference source is never loaded: its answers come from the dataset's
``modelResponses`` (``backends.Recorded``) and are scored, written and reported like a model's.
Custom metrics are scored by ``custom_scorers(judge)``, which the job worker (``tailor.jobs.evaluation``)
builds over Tailor's grader layer; this package only opens their judge, ``spec.custom_judge``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from tailor.errors import TailorError
from tailor.evaluate.backends import Backend, Opener, Recorded
from tailor.evaluate.dataset import load_questions
from tailor.evaluate.judge import custom_uses_reference
from tailor.evaluate.results import Comparison, summarize
from tailor.evaluate.run import (
    CustomScorer,
    StopRequested,
    compare,
    needs_reference,
    with_coverage,
)
from tailor.evaluate.spec import CustomMetric, EvaluationSpec, ModelToRun

CustomScorers = Callable[[Backend], Mapping[str, CustomScorer]]  # the custom metrics' judge -> a scorer per metric


def reference_required(metrics: tuple[str, ...] | list[str], custom_metrics: tuple[CustomMetric, ...] = ()) -> bool:
    """Whether every line of a dataset scored on ``metrics`` needs a ``referenceResponse``: an
    automatic metric compares with it; a custom metric whose instructions use ``{{ground_truth}}``
    shows it to the judge."""
    by_name = {metric.name: metric for metric in custom_metrics}
    return (needs_reference(list(metrics), custom=by_name)
            or any(custom_uses_reference(by_name[name]) for name in metrics if name in by_name))


def run(spec: EvaluationSpec, staging: Path, settings, should_stop: Callable[[], bool] = lambda: False,
        custom_scorers: CustomScorers | None = None) -> None:
    """Evaluate into ``staging``; ``StopRequested`` when ``should_stop`` says so. ``custom_scorers``
    scores the spec's custom metrics (required when it has any)."""
    if spec.custom_metrics and (custom_scorers is None or spec.custom_judge is None):
        raise TailorError("This evaluation has custom metrics but nothing to score them with.")
    staging.mkdir(parents=True, exist_ok=True)
    answering = [model for model in spec.models if not model.precomputed]
    with Opener(settings, max_models=len(answering) + 2) as opener:
        opened = [None if model.precomputed else opener.open_model(model) for model in spec.models]
        judge = opener.open_model(spec.judge) if spec.judge else None
        custom = {}
        if spec.custom_metrics:
            same = spec.judge is not None and spec.custom_judge == spec.judge
            custom = dict(custom_scorers(judge if same else opener.open_model(spec.custom_judge)))
        sources = tuple(model.identifier for model in spec.models if model.precomputed)
        generations = [model.generation for model in spec.models]
        summary = {}
        for dataset in spec.datasets:
            reference = reference_required(dataset.metrics, spec.custom_metrics)
            questions = load_questions(dataset.uri, settings, reference_required=reference, precomputed=sources)
            models = [Recorded(model.identifier, tuple(q.responses[model.identifier] for q in questions))
                      if model.precomputed else backend for model, backend in zip(spec.models, opened)]
            comparison = compare(questions, models, list(dataset.metrics), judge=judge, task_type=dataset.task_type,
                                 generation=generations, settings=settings, should_stop=should_stop,
                                 custom_scores={name: custom[name] for name in dataset.metrics if name in custom})
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
