"""The report an eval run's ``report_url`` opens: the evaluation report ``tailor eval compare``
writes (``tailor.evaluate.report``), built from the run's output items beside every other
completed run of the same eval over as many rows — run an eval on a fine-tuned model and on its
base, and the report shows them side by side: one column per run, one metric per testing
criterion whose mean is its pass rate, each question with every run's answer, score and judge's
reply.

The link carries a signature made with the server's key, so a browser opens it without the API
key; a forged or altered link is "not found".
"""

from __future__ import annotations

import hashlib
import hmac
import json

from sqlalchemy import select

from tailor.errors import NotFound
from tailor.evaluate.results import Answer, Comparison, Question, Row, Score
from tailor.jobs.spec import DEFAULT_PASS_THRESHOLD, EvalRunSpec
from tailor.secrets import load_or_create_server_key
from tailor.settings import Settings
from tailor.store.db import Store
from tailor.store.evals import Eval, EvalOutputItem, EvalRun


def report_signature(settings: Settings, run_id: str) -> str:
    key = load_or_create_server_key(settings.home)
    return hmac.new(key, f"eval-report:{run_id}".encode(), hashlib.sha256).hexdigest()[:32]


def report_comparison(store: Store, settings: Settings, eval_id: str, run_id: str, signature: str) -> Comparison:
    """The run beside every other finished run of its eval over as many rows: one column per run,
    one metric per criterion (1 pass, 0 fail: the means are pass rates), the score and the judge's
    reasoning as each cell's explanation. Refused (not found) unless ``signature`` is the run's."""
    run_id = run_id.removeprefix("evalrun_")
    if not hmac.compare_digest(signature, report_signature(settings, run_id)):
        raise NotFound(f"Report of run {run_id} not found.")
    with store.session() as session:
        run = session.get(EvalRun, run_id)
        if run is None or run.eval_id != eval_id:
            raise NotFound(f"Report of run {run_id} not found.")
        evaluation = session.get(Eval, eval_id)
        total = run.results["result_counts"]["total"]
        others = [other for other in session.scalars(
            select(EvalRun).where(EvalRun.eval_id == eval_id, EvalRun.id != run.id, EvalRun.status == "Completed")
            .order_by(EvalRun.created_at)) if other.results["result_counts"]["total"] == total]
        runs = [run, *others]
        items = {r.id: {item.datasource_item_id: item.body for item in session.scalars(
            select(EvalOutputItem).where(EvalOutputItem.run_id == r.id))} for r in runs}
        labels = _labels(runs)
        criteria = evaluation.testing_criteria
    rows = []
    for position in range(total):
        bodies = [items[r.id].get(position) for r in runs]
        first = next((body for body in bodies if body), None)
        if first is None:
            continue
        rows.append(Row(_question(position, first), tuple(_answer(label, body, criteria)
                                                          for label, body in zip(labels, bodies))))
    return Comparison(tuple(labels), tuple(c["name"] for c in criteria), tuple(rows))


def _labels(runs: list[EvalRun]) -> list[str]:
    labels = []
    for run in runs:
        model = EvalRunSpec.from_record(run.spec).model
        label = f"{run.name} ({model.identifier})" if model and run.name != model.identifier else run.name
        labels.append(label if label not in labels else f"{label} [evalrun_{run.id}]")
    return labels


def _question(position: int, body: dict) -> Question:
    sample_input = (body.get("sample") or {}).get("input") or []
    asked = next((m.get("content") for m in reversed(sample_input) if m.get("role") == "user"), None)
    item = body.get("datasource_item") or {}
    return Question(line=position + 1, prompt=asked or json.dumps(item, ensure_ascii=False), record=item)


def _answer(label: str, body: dict | None, criteria: list[dict]) -> Answer:
    if body is None:
        return Answer(label, None, (), "not graded in this run")
    output = (body.get("sample") or {}).get("output") or []
    text = output[0].get("content") if output else None
    error = ((body.get("sample") or {}).get("error") or {}).get("message")
    if text is None:
        return Answer(label, None, (), error or "no answer")
    results = {result["name"]: result for result in body.get("results", [])}
    scores = []
    for criterion in criteria:
        result = results.get(criterion["name"])
        if result is None:
            continue
        reply = ((result.get("sample") or {}).get("output") or [{}])[0].get("content")
        why = [result["error"]] if result.get("error") else []
        if criterion["type"] not in ("string_check", "label_model"):  # a score against a threshold
            why.append(f"score {result['score']:g}, passing from {criterion.get('pass_threshold', DEFAULT_PASS_THRESHOLD):g}")
        if reply:
            why.append(reply)
        scores.append(Score(criterion["name"], None if result.get("error") else float(bool(result["passed"])),
                            explanation="; ".join(why) or None))
    return Answer(label, text, tuple(scores))
