"""evaluate/report.py: the JSON, CSV and HTML written for a hand-built comparison of two models.

The comparison is small enough to check by hand: three questions in two categories, four metrics,
one judge score missing (it must show as "—" and stay out of the mean) and one answer that contains
markup (it must reach the page as text).
"""

from __future__ import annotations

import csv
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tailor.evaluate import report, results
from tailor.evaluate.results import Answer, Comparison, Question, Row, Score

BASE, TUNED = "base-model", "tuned-model"
METRICS = ("ExactMatch", "RougeL", "BERTScore.F1", "Builtin.Correctness")
JUDGE = "judge-model"
SCRIPT = "<script>alert('owned')</script>"
AGENTS_PROMPT = "What are Agents for Amazon Bedrock?"


def judged(rating: int | None, explanation: str) -> Score:
    value = None if rating is None else (rating - 1) / 9
    return Score("Builtin.Correctness", value, rating, explanation)


def answer(model: str, response: str, exact: float, rouge: float, bert: float, judge: Score) -> Answer:
    return Answer(model, response, (Score("ExactMatch", exact), Score("RougeL", rouge),
                                    Score("BERTScore.F1", bert), judge))


def make_comparison(coverage: dict | None = None) -> Comparison:
    rows = (
        Row(Question(1, AGENTS_PROMPT, "Agents run multi-step tasks.", "Agents"), (
            answer(BASE, "A kind of spy.", 0.0, 0.1, 0.60, judged(2, "Wrong: confuses agents with spies.")),
            answer(TUNED, "Agents run multi-step tasks.", 1.0, 1.0, 0.95, judged(10, "Matches the reference.")))),
        Row(Question(2, "How do agents call APIs?", "Through action groups.", "Agents"), (
            answer(BASE, "They just do.", 0.0, 0.2, 0.70, judged(4, "Vague.")),
            answer(TUNED, f"Through action groups {SCRIPT}", 0.0, 0.6, 0.85, judged(8, "Right, extra noise.")))),
        Row(Question(3, "How is provisioned throughput priced — per hour?", "Per model unit per hour.",
                     "Pricing & billing"), (
            answer(BASE, "Per token.", 0.0, 0.3, 0.65, judged(None, "The judge gave no parsable rating.")),
            answer(TUNED, "Per model unit per hour.", 1.0, 1.0, 0.99, judged(9, "Correct.")))),
    )
    return Comparison(models=(BASE, TUNED), metrics=METRICS, rows=rows, judge=JUDGE, coverage=coverage)


def make_coverage() -> dict:
    def entry(index: int, prompt: str, category: str, count: int, under: bool, missing: list[str]) -> dict:
        return {"index": index, "line": index + 1, "prompt": prompt, "category": category,
                "key_terms": ["agents", "bedrock"], "missing_terms": missing, "covering_records": count,
                "under_covered": under,
                "top_matches": [{"line": 7, "score": 3.25, "matched_terms": ["agents"],
                                 "text": "Agents for Amazon Bedrock <b>orchestrate</b> tasks."}]}
    questions = [entry(0, AGENTS_PROMPT, "Agents", 1, True, ["bedrock"]),
                 entry(1, "How do agents call APIs?", "Agents", 6, False, []),
                 entry(2, "How is provisioned throughput priced — per hour?", "Pricing & billing", 4, False, [])]
    return {"threshold": 2, "training_records": 85, "training_file": "train.jsonl",
            "evaluation_file": "eval.jsonl", "method": "bm25", "questions": questions, "under_covered": 1}


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, Path]:
    return report.write_report(make_comparison(make_coverage()), tmp_path_factory.mktemp("report") / "out")


class Cells(HTMLParser):
    """The text of each score cell of the per-question table, by (line, model, metric)."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[tuple[int, str, str], str] = {}
        self.row: tuple[int, str] | None = None
        self.key: tuple[int, str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag == "tr" and "data-line" in attributes:
            self.row = (int(attributes["data-line"]), attributes["data-model"])
        elif tag == "td" and self.row and "data-metric" in attributes:
            self.key = (*self.row, attributes["data-metric"])
            self.cells[self.key] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self.key = None
        elif tag == "tr":
            self.row = None

    def handle_data(self, data: str) -> None:
        if self.key:
            self.cells[self.key] += data


def score_cells(page: str) -> dict[tuple[int, str, str], str]:
    parser = Cells()
    parser.feed(page)
    return parser.cells


def test_writes_the_three_files_and_nothing_else(written):
    assert set(written) == {"json", "csv", "html"}
    assert {path.name for path in written.values()} == {"comparison.json", "comparison.csv", "report.html"}
    # Written through temporary files that were renamed: none is left behind.
    assert sorted(path.name for path in written["html"].parent.iterdir()) == [
        "comparison.csv", "comparison.json", "report.html"]


def test_json_round_trips_with_the_hand_computed_means(written):
    comparison = make_comparison(make_coverage())
    text = written["json"].read_text(encoding="utf-8")
    assert "Pricing & billing" in text and "priced — per hour" in text  # UTF-8 as is, not \u escapes
    loaded = json.loads(text)
    assert loaded == json.loads(json.dumps(results.to_json(comparison)))

    base, tuned = loaded["summary"][BASE]["metrics"], loaded["summary"][TUNED]["metrics"]
    assert base["ExactMatch"] == {"mean": 0.0, "count": 3, "missing": 0}
    assert tuned["ExactMatch"]["mean"] == pytest.approx(2 / 3)
    assert base["RougeL"]["mean"] == pytest.approx(0.2)
    assert tuned["BERTScore.F1"]["mean"] == pytest.approx((0.95 + 0.85 + 0.99) / 3)
    # The missing judge score is left out of the mean, not counted as 0.
    assert base["Builtin.Correctness"] == {"mean": pytest.approx((1 / 9 + 3 / 9) / 2), "count": 2, "missing": 1}
    assert tuned["Builtin.Correctness"]["mean"] == pytest.approx((9 / 9 + 7 / 9 + 8 / 9) / 3)
    assert loaded["summary"][TUNED]["categories"]["Agents"]["RougeL"] == pytest.approx(0.8)
    assert loaded["rows"][1]["answers"][1]["response"] == f"Through action groups {SCRIPT}"
    assert loaded["coverage"]["questions"][0]["under_covered"] is True


def test_csv_has_one_row_per_question_and_model(written):
    with written["csv"].open(encoding="utf-8", newline="") as file:
        table = list(csv.reader(file))
    assert table[0] == ["line", "category", "prompt", "reference", "model", "response", "error",
                        "ExactMatch", "RougeL", "BERTScore.F1", "Builtin.Correctness",
                        "Builtin.Correctness.rating", "Builtin.Correctness.explanation"]
    rows = [dict(zip(table[0], line)) for line in table[1:]]
    assert [(row["line"], row["model"]) for row in rows] == [
        ("1", BASE), ("1", TUNED), ("2", BASE), ("2", TUNED), ("3", BASE), ("3", TUNED)]
    first = rows[0]
    assert first["prompt"] == AGENTS_PROMPT and first["category"] == "Agents" and first["error"] == ""
    assert float(first["Builtin.Correctness"]) == pytest.approx(1 / 9)
    assert first["Builtin.Correctness.rating"] == "2"
    assert first["Builtin.Correctness.explanation"] == "Wrong: confuses agents with spies."
    assert float(rows[3]["RougeL"]) == 0.6 and rows[3]["response"] == f"Through action groups {SCRIPT}"
    missing = rows[4]
    assert missing["Builtin.Correctness"] == "" and missing["Builtin.Correctness.rating"] == ""
    assert missing["Builtin.Correctness.explanation"] == "The judge gave no parsable rating."


class Texts(HTMLParser):
    """Every element's tag and every text node of a page, as a browser's parser reads them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.texts.append(data)


def test_html_escapes_user_text(written):
    page = written["html"].read_text(encoding="utf-8")
    assert "Through action groups &lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;" in page
    assert "<script" not in page.lower()
    assert "Pricing &amp; billing" in page and "Pricing & billing" not in page
    assert "&lt;b&gt;orchestrate&lt;/b&gt;" in page  # coverage text is escaped too
    # Read back as a browser would: the answer is one text node, word for word, and no script or
    # <b> element exists on the page.
    parsed = Texts()
    parsed.feed(page)
    assert f"Through action groups {SCRIPT}" in parsed.texts
    assert "Agents for Amazon Bedrock <b>orchestrate</b> tasks." in parsed.texts
    assert "script" not in parsed.tags and "b" not in parsed.tags


def test_markup_in_names_and_explanations_stays_text(tmp_path):
    """Model names, categories, metrics' explanations and the judge's name all reach the page as
    text too, in attributes as well as in elements, and in the chart (whose SVG is not escaped
    again: matplotlib draws names as paths and escapes its comments)."""
    evil = '--> "><script>alert(1)</script>'
    rows = (Row(Question(1, f"Q {evil}", f"R {evil}", f"cat {evil}"), (
        Answer(f"model {evil}", None, error=f"failed {evil}"),
        Answer(TUNED, "fine", (judged(None, f"why {evil}"),)))),)
    comparison = Comparison(models=(f"model {evil}", TUNED), metrics=("Builtin.Correctness",), rows=rows,
                            judge=f"judge {evil}")
    page = report.write_report(comparison, tmp_path)["html"].read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    parsed = Texts()
    parsed.feed(page)
    assert "script" not in parsed.tags
    assert f"No answer: failed {evil}" in parsed.texts and f"why {evil}" in parsed.texts


def test_html_is_self_contained_with_an_inline_chart(written):
    page = written["html"].read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 1 and "</svg>" in page
    assert "<link" not in page and "@import" not in page and "<img" not in page
    assert " src=" not in page and 'href="http' not in page and "url(http" not in page


def test_html_names_models_and_judge_and_shows_scores(written):
    page = written["html"].read_text(encoding="utf-8")
    assert BASE in page and TUNED in page and JUDGE in page
    cells = score_cells(page)
    assert len(cells) == 3 * 2 * len(METRICS)
    assert cells[(3, BASE, "Builtin.Correctness")].startswith("—")  # missing, not 0
    assert "why missing" in cells[(3, BASE, "Builtin.Correctness")]
    judged_well = cells[(1, TUNED, "Builtin.Correctness")]
    assert judged_well.startswith("1.000") and "10/10" in judged_well
    assert "Matches the reference." in judged_well  # the judge's reasoning
    assert cells[(2, BASE, "RougeL")] == "0.200"
    assert "<details><summary>reasoning</summary>" in page
    assert '<td class="num best" data-metric="RougeL">0.600</td>' in page  # the better answer is marked
    assert "2 scored, 1 missing" in page  # the summary says a judge score is missing


def test_html_warns_about_under_covered_questions(written):
    page = written["html"].read_text(encoding="utf-8")
    assert '<h2 id="coverage">Data coverage</h2>' in page
    assert f'Only 1 training record covers: <a href="#question-1">{AGENTS_PROMPT}</a>' in page
    assert "1 of 3 questions are under-covered" in page
    question_one = page[page.index('<tbody id="question-1">'):page.index('<tbody id="question-2">')]
    assert "under-covered" in question_one
    question_two = page[page.index('<tbody id="question-2">'):page.index('<tbody id="question-3">')]
    assert "under-covered" not in question_two


def test_no_coverage_section_without_coverage(tmp_path):
    page = report.write_report(make_comparison(), tmp_path)["html"].read_text(encoding="utf-8")
    assert "Data coverage" not in page and "under-covered" not in page
    assert "By category" in page and "<svg" in page


def test_a_failed_render_leaves_the_previous_report(tmp_path, monkeypatch):
    paths = report.write_report(make_comparison(), tmp_path)
    before = {kind: path.read_bytes() for kind, path in paths.items()}

    def broken(comparison):
        raise RuntimeError("rendering failed")

    monkeypatch.setattr(report, "render_html", broken)
    with pytest.raises(RuntimeError, match="rendering failed"):
        report.write_report(make_comparison(make_coverage()), tmp_path)
    assert {kind: path.read_bytes() for kind, path in paths.items()} == before
    assert len(list(tmp_path.iterdir())) == 3


def test_summary_text_is_a_table_of_means():
    text = report.summary_text(make_comparison())
    lines = text.splitlines()
    assert lines[0].split() == ["model", "answered", *METRICS]
    base_mean = (1 / 9 + 3 / 9) / 2
    assert lines[1].split() == [BASE, "3/3", "0.000", "0.200", "0.650", f"{base_mean:.3f}",
                                f"({1 + 9 * base_mean:.1f}/10)"]
    assert lines[2].split()[:3] == [TUNED, "3/3", "0.667"]
    assert lines[3] == f"Missing scores, left out of the means: {BASE} Builtin.Correctness: 1 of 3."


def test_a_model_without_answers_shows_dashes_not_zeros(tmp_path):
    rows = tuple(Row(row.question, (row.answers[0], Answer("broken-model", None, error="timed out")))
                 for row in make_comparison().rows)
    comparison = Comparison(models=(BASE, "broken-model"), metrics=METRICS, rows=rows)
    broken = report.summary_text(comparison).splitlines()[2].split()
    assert broken == ["broken-model", "0/3", "—", "—", "—", "—"]
    page = report.render_html(comparison)
    assert "No answer: timed out" in page and "3 failed" in page
    assert score_cells(page)[(1, "broken-model", "RougeL")] == "—"
    assert "<svg" in report.chart_svg(comparison)
    assert report.chart_svg(Comparison(models=(), metrics=(), rows=())) == ""
