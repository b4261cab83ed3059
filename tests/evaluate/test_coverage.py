"""The data-coverage check on the real Bedrock FAQ (85 question/answer pairs): it must flag a
question on a topic one training record is about, or none, and leave well-covered topics alone."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tailor.errors import InvalidInput
from tailor.evaluate.coverage import coverage_from_records, coverage_report, render_text

# One record about a made-up feature, planted in a copy of the FAQ: the only one that names it.
PLANTED = {"sentence1": "What are Quokka dashboards in Amazon Bedrock?",
           "sentence2": "Quokka dashboards chart the token usage and latency of your Amazon Bedrock models "
                        "over time."}

REPORT_KEYS = {"threshold", "training_records", "training_file", "evaluation_file", "method", "questions",
               "under_covered"}
QUESTION_KEYS = {"index", "line", "prompt", "category", "key_terms", "missing_terms", "covering_records",
                 "under_covered", "top_matches"}


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def asking(faq: list[dict], pattern: str) -> list[int]:
    """The 1-based entries of the FAQ whose question matches ``pattern``."""
    return [number for number, pair in enumerate(faq, start=1) if re.search(pattern, pair["sentence1"], re.I)]


def test_flags_planted_and_absent_topics_but_not_well_covered_ones(bedrock_faq, tmp_path):
    faq = json.loads(bedrock_faq.read_text(encoding="utf-8"))
    assert len(faq) == 85
    # The well-covered topics below are what several FAQ questions are about.
    assert len(asking(faq, r"guardrails")) == 3
    assert len(asking(faq, r"knowledge bases")) == 6
    assert len(asking(faq, r"continued pre-training")) == 5
    training = tmp_path / "training.json"
    training.write_text(json.dumps(faq + [PLANTED]), encoding="utf-8")
    evaluation = write_jsonl(tmp_path / "evaluation.jsonl", [
        {"prompt": "What are Guardrails for Amazon Bedrock?", "category": "safety"},
        {"prompt": "Which vector databases can Knowledge Bases use?", "category": "rag"},
        {"prompt": "What are the benefits of continued pre-training?",
         "referenceResponse": "Continued pre-training on your own unlabeled data adapts the model to your domain."},
        {"prompt": "What do Quokka dashboards show?",
         "referenceResponse": "Quokka dashboards chart token usage and latency over time."},
        {"prompt": "Can Bedrock render Zorblax holograms?"},
    ])

    report = coverage_report(training, evaluation)

    assert set(report) == REPORT_KEYS
    assert json.loads(json.dumps(report)) == report
    assert (report["threshold"], report["training_records"]) == (1, 86)
    assert report["training_file"] == str(training) and report["evaluation_file"] == str(evaluation)
    guardrails, knowledge_bases, continued, quokka, zorblax = report["questions"]
    assert all(set(question) == QUESTION_KEYS for question in report["questions"])
    assert [question["line"] for question in report["questions"]] == [1, 2, 3, 4, 5]

    for question in (guardrails, knowledge_bases, continued):
        assert question["covering_records"] >= 3, question
        assert not question["under_covered"]
        assert question["missing_terms"] == []
    # "Amazon Bedrock" is in nearly every record: a generic word, never a topic term.
    assert guardrails["key_terms"] == ["guardrails"] and guardrails["category"] == "safety"
    assert {"knowledge", "bases"} <= set(knowledge_bases["key_terms"])
    assert "amazon" not in knowledge_bases["key_terms"] and "bedrock" not in knowledge_bases["key_terms"]

    assert quokka["covering_records"] == 1 and quokka["under_covered"]
    assert quokka["key_terms"] == ["dashboards", "quokka"]  # narrowed to what the reference restates
    best = quokka["top_matches"][0]
    assert best["line"] == 86 and best["text"].startswith("What are Quokka dashboards")
    assert best["matched_terms"] == ["dashboards", "quokka"] and best["score"] > 0

    assert zorblax["covering_records"] == 0 and zorblax["under_covered"]
    assert {"zorblax", "holograms"} <= set(zorblax["missing_terms"])
    assert zorblax["top_matches"] == []

    assert report["under_covered"] == 2
    text = render_text(report)
    assert text.splitlines()[-1].startswith("2 of 5 questions are covered by ≤1 training record: line 4")
    assert "line 5" in text.splitlines()[-1]
    assert "zorblax (missing)" in text


def test_the_agents_question_is_flagged_on_the_unmodified_faq(bedrock_faq, tmp_path):
    faq = json.loads(bedrock_faq.read_text(encoding="utf-8"))
    # Four pairs mention agents, but only pair 5 is about them; the other three name them in
    # passing in an answer ("creating and testing an agent", "as well as Agents for Amazon Bedrock",
    # "share ... agents"), which teaches a model nothing about what Agents are. So the measure,
    # which counts a record only when it is about the term, finds one covering record and flags it.
    mentioning = [number for number, pair in enumerate(faq, start=1)
                  if re.search(r"\bagents?\b", pair["sentence1"] + " " + pair["sentence2"], re.I)]
    assert mentioning == [2, 5, 31, 54]
    assert asking(faq, r"\bagents?\b") == [5]
    evaluation = write_jsonl(tmp_path / "evaluation.jsonl", [
        {"prompt": "What are Agents for Amazon Bedrock?"},
        {"prompt": "What are Agents for Amazon Bedrock, and how can they be used?",
         "referenceResponse": "Agents for Amazon Bedrock break down tasks, create an orchestration plan and "
                              "call company APIs to complete them."},
    ])

    report = coverage_report(bedrock_faq, evaluation, top=4)

    for question in report["questions"]:
        assert question["key_terms"] == ["agents"]
        assert question["covering_records"] == 1 and question["under_covered"]
        # BM25 ranks the pair about Agents first and still shows the passing mentions after it.
        assert [match["line"] for match in question["top_matches"]][0] == 5
        assert {match["line"] for match in question["top_matches"]} == set(mentioning)
    assert report["under_covered"] == 2
    # With a threshold of 0 only questions nothing covers would be flagged.
    assert coverage_report(bedrock_faq, evaluation, threshold=0)["under_covered"] == 0


def test_reads_every_training_and_evaluation_format(tmp_path):
    training = write_jsonl(tmp_path / "training.jsonl", [
        {"system": "You answer questions about animals.",
         "messages": [{"role": "user", "content": "How do I feed a wombat?"},
                      {"role": "assistant", "content": "Give it grass and roots."}]},
        {"prompt": "Where do wombats live?", "completion": "In burrows in Australia."},
        {"input": "Wombats dig burrows. A wombat sleeps through the day."},  # twice: about wombats
        {"input": "Koalas sleep in trees; a wombat once walked past."},  # once, in passing
        *({"input": f"Penguin colony {number} nests on the ice."} for number in range(12)),
    ])
    evaluation = write_jsonl(tmp_path / "evaluation.jsonl", [
        {"prompt": "Tell me about wombats.", "category": "animals"},
        {"messages": [{"role": "user", "content": "Tell me about wombats."},
                      {"role": "assistant", "content": "Wombats are burrowing marsupials."}]},
        {"question": "Tell me about kangaroos.", "answer": "Kangaroos hop."},
    ])

    report = coverage_report(training, evaluation, top=5)

    wombats, wombats_chat, kangaroos = report["questions"]
    assert report["training_records"] == 16
    assert wombats["covering_records"] == wombats_chat["covering_records"] == 3
    assert wombats["category"] == "animals" and wombats_chat["prompt"] == "Tell me about wombats."
    assert {match["line"] for match in wombats["top_matches"]} == {1, 2, 3, 4}
    assert not wombats["under_covered"]
    assert coverage_report(training, evaluation, threshold=3)["questions"][0]["under_covered"]
    assert kangaroos["missing_terms"] == ["kangaroos"] and kangaroos["covering_records"] == 0


def test_coverage_from_records_counts_a_plain_text_record_when_it_names_the_term_twice():
    report = coverage_from_records(
        ["Wombats dig burrows; wombats sleep by day.", "A wombat walked past.",
         {"prompt": "What do wombats eat?", "completion": "Grass."}, "Penguins swim.", "Penguins nest."],
        [{"prompt": "Tell me about wombats.", "line": 7}],
    )
    (question,) = report["questions"]
    assert (question["line"], question["covering_records"], question["under_covered"]) == (7, 2, False)
    assert report["training_file"] == "" and report["under_covered"] == 0
    with pytest.raises(InvalidInput, match="question 0"):
        coverage_from_records(["text"], [{"category": "no prompt"}])


def test_bad_input_names_the_file_and_the_line(bedrock_faq, tmp_path):
    good = write_jsonl(tmp_path / "good.jsonl", [{"prompt": "What are Guardrails?"}])

    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": "What are Guardrails?"}\n\n{"prompt": "unfinished\n', encoding="utf-8")
    with pytest.raises(InvalidInput, match=rf"{re.escape(str(broken))}: line 3: invalid JSON"):
        coverage_report(bedrock_faq, broken)

    no_prompt = write_jsonl(tmp_path / "no-prompt.jsonl", [{"prompt": "Fine"}, {"category": "x"}])
    with pytest.raises(InvalidInput, match=rf"{re.escape(str(no_prompt))}: line 2: no question"):
        coverage_report(bedrock_faq, no_prompt)

    array = tmp_path / "training.json"
    array.write_text(json.dumps([{"question": "Q", "answer": "A"}, "just a string"]), encoding="utf-8")
    with pytest.raises(InvalidInput, match=rf"{re.escape(str(array))}: item 2: expected a JSON object"):
        coverage_report(array, good)

    missing = tmp_path / "nowhere.jsonl"
    with pytest.raises(InvalidInput, match=re.escape(str(missing))):
        coverage_report(missing, good)

    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="holds no records"):
        coverage_report(bedrock_faq, empty)
