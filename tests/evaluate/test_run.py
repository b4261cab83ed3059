"""Evaluations on real models: the session's fine-tuned tiny model against its base, scored by
the automatic metrics and by a real served judge model; and a judge whose output never parses."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from tailor.evaluate.backends import EngineModel, Generation
from tailor.evaluate.judge import rate
from tailor.evaluate.results import summarize
from tailor.evaluate.run import compare
from tailor.serve.protocol import Target
from tailor.services.inference import target_for_artifacts
from tests.conftest import HELP_DESK_SYSTEM as SYSTEM

pytestmark = pytest.mark.slow

GENERATION = Generation(max_tokens=96, system=SYSTEM)


@pytest.fixture
def engine(evaluation):
    from tailor.serve.engine import Engine

    running = Engine(evaluation.settings)
    yield running
    running.close()


def test_a_fine_tuned_model_beats_its_base_and_the_judge_says_why(evaluation, engine):
    fine_tuned = EngineModel("fine-tuned", target_for_artifacts(evaluation.full)[0], engine)
    base = EngineModel("base", Target("tailor.tiny"), engine)
    judge = EngineModel("judge", target_for_artifacts(evaluation.judge)[0], engine)
    metrics = ["ExactMatch", "RougeL", "BERTScore.F1", "Builtin.Correctness"]

    comparison = compare(evaluation.questions, [fine_tuned, base], metrics, judge=judge, generation=GENERATION,
                         settings=evaluation.settings, progress=False)

    summary = summarize(comparison)
    tuned, untuned = summary["fine-tuned"]["metrics"], summary["base"]["metrics"]
    for metric in ("ExactMatch", "RougeL", "BERTScore.F1"):
        assert tuned[metric]["mean"] > untuned[metric]["mean"], (metric, tuned, untuned)
    # 16 taught records: the tiny model learns most answers word for word, the base none.
    assert tuned["ExactMatch"]["mean"] >= 0.75 and untuned["ExactMatch"]["mean"] == 0.0
    assert tuned["RougeL"]["mean"] > 0.7 and untuned["RougeL"]["mean"] < 0.3
    assert [row.answers[1].response for row in comparison.rows] == evaluation.base_answers

    # Each rating is the judge's own parsed output, with its reasoning kept. (The judge was taught
    # the exact prompts for a reference-perfect answer and for the base's answer.)
    exact = [row for row in comparison.rows if row.answers[0].score("ExactMatch").value == 1.0]
    for row in exact:
        good = row.answers[0].score("Builtin.Correctness")
        assert (good.rating, good.value, good.explanation) == (9, 8 / 9, "The response states the facts of the "
                                                                          "reference answer.")
    for row in comparison.rows:
        bad = row.answers[1].score("Builtin.Correctness")
        assert (bad.rating, bad.explanation) == (2, "The response does not answer the question.")
    assert tuned["Builtin.Correctness"]["mean"] > untuned["Builtin.Correctness"]["mean"]
    assert set(summary["base"]["categories"]) == {"product", "api"}


def test_a_served_judge_whose_output_does_not_parse_is_asked_twice_then_missing(evaluation, engine):
    asked = []

    class Counting(EngineModel):  # the real engine, with the number of requests written down
        def chat(self, conversations, generation, on_reply=None):
            asked.append(len(conversations))
            return super().chat(conversations, generation, on_reply)

    untrained_judge = Counting("tailor.tiny", Target("tailor.tiny"), engine)
    items = [(q.prompt, q.reference, q.reference) for q in evaluation.questions[:2]]
    scores = rate(untrained_judge, "Builtin.Correctness", items)

    assert asked == [2, 2]  # every reply failed to parse, so each was asked once more
    for score in scores:
        assert score.value is None and score.rating is None
        assert score.explanation.startswith("No parsable rating after 2 attempts; the judge's last reply: ")


def test_tailor_eval_compare_writes_the_seed_002_comparison(evaluation, tmp_path):
    out = tmp_path / "report"
    train = tmp_path / "train.jsonl"  # what the fine-tuned model learned, plus one record on a new topic
    faq = [json.loads(line) for line in evaluation.data.read_text().splitlines()]
    records = [{"prompt": q["prompt"], "completion": q["referenceResponse"]} for q in faq] * 3
    records.append({"prompt": "What are Quokka dashboards?", "completion": "Quokka dashboards chart job metrics."})
    train.write_text("".join(json.dumps(r) + "\n" for r in records))
    questions = evaluation.data.read_text() + json.dumps({"prompt": "How do Quokka dashboards refresh?",
                                                          "referenceResponse": "Quokka dashboards refresh live.",
                                                          "category": "product"}) + "\n"
    data = tmp_path / "eval.jsonl"
    data.write_text(questions)

    result = subprocess.run(
        [sys.executable, "-m", "tailor", "eval", "compare", "--models", f"{evaluation.full},tailor.tiny",
         "--data", str(data), "--judge", str(evaluation.judge), "--train", str(train), "--system", SYSTEM,
         "--max-tokens", "96", "--out", str(out)],
        capture_output=True, text=True, env={**os.environ, "TAILOR_HOME": str(evaluation.settings.home)},
        timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    report = json.loads((out / "comparison.json").read_text())
    tuned, base = (report["summary"][label]["metrics"] for label in report["models"])
    assert tuned["BERTScore.F1"]["mean"] > base["BERTScore.F1"]["mean"]
    assert tuned["Builtin.Correctness"]["count"] >= 3  # at least the answers the judge knows were rated
    flagged = [q["prompt"] for q in report["coverage"]["questions"] if q["under_covered"]]
    assert flagged == ["How do Quokka dashboards refresh?"]
    html = (out / "report.html").read_text()
    assert "<svg" in html and "How do Quokka dashboards refresh?" in html
    with open(out / "comparison.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 2 * 5 and {row["model"] for row in rows} == set(report["models"])
    assert "Coverage warning" in result.stderr and "Report:" in result.stderr
    assert "BERTScore.F1" in result.stdout  # the summary table
