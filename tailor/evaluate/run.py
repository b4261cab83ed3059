"""Run an evaluation: every model answers every question, then every metric scores every answer.

Used by ``tailor eval compare`` and by evaluation jobs (``tailor.evaluate.job``). Answers come
from backends (``tailor.evaluate.backends``); automatic metrics from ``metrics``; judge ratings
from ``judge``; a job's custom metrics from the scorers its caller injects (``custom_scores``: this
layer cannot import ``tailor.graders``, which grades them). Metric names are checked before any
model is loaded. A precomputed inference source is a backend that replays the dataset's answers
(``backends.Recorded``), so its answers are scored exactly as a model's.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

from tailor.errors import InvalidInput, TailorError
from tailor.evaluate.backends import Backend, Failure, Generation
from tailor.evaluate.judge import JUDGE_METRICS, rate
from tailor.evaluate.metrics import AUTOMATIC_METRICS, score_automatic
from tailor.evaluate.results import Answer, Comparison, Question, Row, Score
from tailor.progress import progress_bar
from tailor.settings import Settings

# The original service's Builtin.Accuracy is a different measure per task type: F1 for question
# answering, BERTScore for summarization and generation, exact match (binary accuracy) for
# classification.
ACCURACY_BY_TASK = {"QuestionAndAnswer": "TokenF1", "Summarization": "BERTScore.F1",
                    "Classification": "ExactMatch", "Generation": "BERTScore.F1", "Custom": "BERTScore.F1"}
NOT_AVAILABLE = {
    "Builtin.Robustness": "it perturbs prompts and needs the original's perturbation suite",
    "Builtin.Toxicity": "it needs the detoxify classifier, which is not bundled",
    "Builtin.Harmfulness": "responsible-AI judge prompts are not built in",
    "Builtin.Stereotyping": "responsible-AI judge prompts are not built in",
    "Builtin.Refusal": "responsible-AI judge prompts are not built in",
}
METRICS = (*AUTOMATIC_METRICS, "Builtin.Accuracy", *JUDGE_METRICS)
DEFAULT_METRICS = ("ExactMatch", "Rouge1", "Rouge2", "RougeL", "BERTScore.Precision", "BERTScore.Recall",
                   "BERTScore.F1")


# A custom metric's scorer: (prompt, response, reference) items -> one Score each, in order.
CustomScorer = Callable[[list[tuple[str, str, str | None]]], list[Score]]


class StopRequested(TailorError):
    """The evaluation was asked to stop."""


def check_metrics(names: list[str] | tuple[str, ...], *, has_judge: bool, field: str = "metricNames",
                  custom: Collection[str] = ()) -> None:
    """Every problem with the chosen metric names, at once; ``custom`` are the names of the job's
    custom metrics (named in ``metricNames`` too, as in the original)."""
    problems = []
    for name in names:
        if name in custom:
            continue
        if name in NOT_AVAILABLE:
            problems.append(f"{name} is not available in Tailor: {NOT_AVAILABLE[name]}")
        elif name not in METRICS:
            problems.append(f"{name} is not a metric Tailor knows")
        elif name in JUDGE_METRICS and not has_judge:
            problems.append(f"{name} is rated by a judge model; name one (evaluatorModelConfig, or --judge)")
    if len(set(names)) != len(names):
        problems.append("a metric is named twice")
    if problems:
        available = ", ".join([*METRICS, *custom])
        raise InvalidInput(f"{field}: " + "; ".join(problems) + f". Available: {available}.")


def needs_reference(names, custom: Collection[str] = ()) -> bool:
    """Automatic metrics compare with the reference, so every question needs one (a custom metric
    needs one when its instructions use ``{{ground_truth}}``: the caller says so)."""
    return any(name not in JUDGE_METRICS and name not in custom for name in names)


def compare(questions: list[Question], models: list[Backend], metrics: list[str] | tuple[str, ...], *,
            judge: Backend | None = None, task_type: str = "QuestionAndAnswer",
            generation: Generation | list[Generation] = Generation(),
            settings: Settings, progress: bool = True, judge_retries: int = 1,
            should_stop: Callable[[], bool] = lambda: False,
            custom_scores: Mapping[str, CustomScorer] | None = None) -> Comparison:
    """Every model answers every question; then each answer is scored on every metric.

    ``generation`` is how the models answer: one for all, or one per model. ``custom_scores``: a
    scorer per custom metric named in ``metrics``.
    """
    custom_scores = custom_scores or {}
    check_metrics(metrics, has_judge=judge is not None, custom=custom_scores)
    generations = generation if isinstance(generation, list) else [generation] * len(models)
    conversations = [[{"role": "user", "content": q.prompt}] for q in questions]
    replies_by_model = []
    for model, model_generation in zip(models, generations):
        with progress_bar(f"answers from {model.label}", len(questions), progress) as bar:
            replies_by_model.append(model.chat(conversations, model_generation, on_reply=bar.advance))
        _check(should_stop)

    automatic = [m for m in metrics if m not in JUDGE_METRICS and m not in custom_scores]
    rated = [m for m in metrics if m in JUDGE_METRICS]
    custom = [m for m in metrics if m in custom_scores]
    scores_by_model: list[list[list[Score]]] = []  # model -> question -> scores, in metric order
    for model, replies in zip(models, replies_by_model):
        answered = [i for i, reply in enumerate(replies) if isinstance(reply, str)]
        per_question: list[dict[str, Score]] = [{} for _ in questions]
        if automatic and answered:
            wanted = sorted({ACCURACY_BY_TASK[task_type] if m == "Builtin.Accuracy" else m for m in automatic})
            values = score_automatic(wanted, [replies[i] for i in answered],
                                     [questions[i].reference or "" for i in answered],
                                     encoder=settings.evaluation_encoder, layers=settings.evaluation_encoder_layers)
            for metric in automatic:
                source = ACCURACY_BY_TASK[task_type] if metric == "Builtin.Accuracy" else metric
                for position, i in enumerate(answered):
                    per_question[i][metric] = Score(metric, float(values[source][position]))
        _check(should_stop)
        for metric in rated:
            items = [(questions[i].prompt, replies[i], questions[i].reference) for i in answered]
            with progress_bar(f"{metric} of {model.label} by {judge.label}", len(items), progress) as bar:
                for i, score in zip(answered, rate(judge, metric, items, retries=judge_retries,
                                                   on_reply=bar.advance)):
                    per_question[i][metric] = score
            _check(should_stop)
        for metric in custom:
            items = [(questions[i].prompt, replies[i], questions[i].reference) for i in answered]
            with progress_bar(f"{metric} of {model.label}", len(items), progress):
                scores = custom_scores[metric](items) if items else []
            for i, score in zip(answered, scores, strict=True):
                per_question[i][metric] = score
            _check(should_stop)
        scores_by_model.append([[scores[m] for m in metrics if m in scores] for scores in per_question])

    rows = []
    for i, question in enumerate(questions):
        answers = []
        for model, replies, scores in zip(models, replies_by_model, scores_by_model):
            reply = replies[i]
            if isinstance(reply, Failure):
                answers.append(Answer(model.label, None, (), reply.message))
            else:
                answers.append(Answer(model.label, reply, tuple(scores[i])))
        rows.append(Row(question, tuple(answers)))
    return Comparison(tuple(m.label for m in models), tuple(metrics), tuple(rows),
                      judge=judge.label if judge else None)


def with_coverage(comparison: Comparison, training_uri: str, evaluation_uri: str, settings: Settings) -> Comparison:
    """The comparison with a data-coverage report of its questions against ``training_uri``."""
    from dataclasses import replace

    from tailor import storage
    from tailor.evaluate.coverage import coverage_report

    report = coverage_report(storage.local_path(training_uri, settings), storage.local_path(evaluation_uri, settings))
    report.update(training_file=training_uri, evaluation_file=evaluation_uri)
    return replace(comparison, coverage=report)


def _check(should_stop: Callable[[], bool]) -> None:
    if should_stop():
        raise StopRequested("The evaluation was stopped.")
