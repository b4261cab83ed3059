"""What an evaluation produced: for each question, every model's answer and its scores, and the
averages per metric and per category.

These plain records are what the evaluation job, ``tailor eval compare`` and the report writers
share. A score is 0–1 (judge ratings 1–10 are normalized as ``(rating - 1) / 9``; only embedding
cosine can go below 0, for answers opposite to the reference, and a custom metric with a rating scale
of numbers is on that scale); ``None`` means
*missing* — a judge that never gave a parsable rating — and is left out of every average rather
than counted as zero or guessed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Score:
    metric: str  # e.g. "RougeL", "BERTScore.F1", "Builtin.Correctness"
    value: float | None  # 0–1 (a custom metric: its scale's value); None when missing
    rating: int | None = None  # a judge's raw 1–10 rating
    explanation: str | None = None  # a judge's reasoning, or why the score is missing


@dataclass(frozen=True)
class Answer:
    model: str
    response: str | None  # None when the model gave no answer (``error`` says why)
    scores: tuple[Score, ...] = ()
    error: str | None = None

    def score(self, metric: str) -> Score | None:
        return next((s for s in self.scores if s.metric == metric), None)


@dataclass(frozen=True)
class Question:
    line: int  # 1-based line of the dataset file
    prompt: str
    reference: str | None = None
    category: str | None = None
    record: dict = field(default_factory=dict)  # the input line as given (less its modelResponses)
    # The answers of the job's precomputed inference sources, by source identifier (the line's
    # modelResponses); None when the line has none.
    responses: dict[str, str] | None = None


@dataclass(frozen=True)
class Row:
    question: Question
    answers: tuple[Answer, ...]  # one per model, in the order of ``Comparison.models``


@dataclass(frozen=True)
class Comparison:
    models: tuple[str, ...]
    metrics: tuple[str, ...]
    rows: tuple[Row, ...]
    judge: str | None = None
    coverage: dict | None = None  # ``tailor.evaluate.coverage`` report as JSON, when training data was given


def _present(value: float | None) -> bool:
    return value is not None and math.isfinite(value)  # a NaN from a metric is as good as missing


def mean(values: list[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def summarize(comparison: Comparison) -> dict:
    """Averages per model: ``{model: {"metrics": {metric: {"mean", "count", "missing"}},
    "categories": {category: {metric: mean}}, "answered": n, "failed": n}}``.

    Only answered questions count (as in the original service); a missing judge score counts in
    ``missing``, not in the mean.
    """
    summary = {}
    for position, model in enumerate(comparison.models):
        answers = [(row.question, row.answers[position]) for row in comparison.rows]
        answered = [(q, a) for q, a in answers if a.response is not None]
        metrics = {}
        for metric in comparison.metrics:
            scores = [a.score(metric) for _, a in answered]
            values = [s.value for s in scores if s is not None and _present(s.value)]
            metrics[metric] = {"mean": mean(values), "count": len(values), "missing": len(scores) - len(values)}
        categories: dict[str, dict] = {}
        for category in sorted({q.category for q, _ in answered if q.category}):
            in_category = [a for q, a in answered if q.category == category]
            categories[category] = {
                metric: mean([s.value for a in in_category if (s := a.score(metric)) and _present(s.value)])
                for metric in comparison.metrics}
        summary[model] = {"metrics": metrics, "categories": categories, "answered": len(answered),
                          "failed": len(answers) - len(answered)}
    return summary


def to_json(comparison: Comparison) -> dict:
    """The whole comparison as JSON: models, metrics, judge, summary, per-question rows, coverage."""
    return {
        "models": list(comparison.models), "metrics": list(comparison.metrics), "judge": comparison.judge,
        "summary": summarize(comparison),
        "rows": [{"question": asdict(row.question), "answers": [asdict(a) for a in row.answers]}
                 for row in comparison.rows],
        "coverage": comparison.coverage,
    }
