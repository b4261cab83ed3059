"""The Graders page's routes on a real server: the page (registered graders, templates,
starters), validating and running a grader object exactly as the OpenAI API's graders routes do,
and the console's guards (CSRF, sign-in)."""

from __future__ import annotations

import shutil

import httpx
import pytest

EXACT = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}", "reference": "{{item.answer}}",
         "operation": "eq"}


def test_the_page_lists_registered_graders_and_the_templates_to_copy(server, alice, tmp_path):
    from tailor.graders.template_files import template_names, template_path

    source = tmp_path / "generic.py"
    shutil.copyfile(template_path("generic"), source)
    assert server.tailor("graders", "create", "house-grader", "--file", str(source)).returncode == 0
    page = alice.get("/console/graders")
    assert page.status_code == 200, page.text
    assert "house-grader" in page.text and "arn:aws:lambda:" in page.text
    for name in template_names():
        assert name in page.text
    assert "tailor graders templates --copy generic generic.py\ntailor graders create generic --file generic.py" in page.text
    assert 'id="grader-starters"' in page.text and '"score_model"' in page.text
    assert 'data-drafts-key="tailor.grader-drafts"' in page.text
    assert "<script>" not in page.text  # the CSP allows no inline script


def test_validate_answers_the_normalized_grader_or_every_problem_by_path(alice):
    good = alice.post_json("/console/api/graders/validate", {"grader": EXACT})
    assert good.status_code == 200, good.text
    assert good.json()["grader"]["type"] == "string_check" and good.json()["grader"]["operation"] == "eq"

    bad = alice.post_json("/console/api/graders/validate", {"grader": {**EXACT, "operation": "equals"}})
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert "grader.operation" in error["fields"], error
    assert error["field"] == "grader.operation"

    multi = {"type": "multi", "name": "both", "calculate_output": "a + b",
             "graders": {"a": EXACT, "b": {"type": "text_similarity", "name": "b", "input": "x", "reference": "y",
                                           "evaluation_metric": "nope"}}}
    problems = alice.post_json("/console/api/graders/validate", {"grader": multi}).json()["error"]["fields"]
    assert any(path.startswith("grader.graders.b.evaluation_metric") for path in problems), problems

    missing = alice.post_json("/console/api/graders/validate", {"not": "a grader"})
    assert missing.status_code == 400 and missing.json()["error"]["field"] == "grader"


def test_run_grades_one_sample_against_its_item(alice):
    item = {"question": "What is Tailor?", "answer": "Tailor is self-hosted."}
    right = alice.post_json("/console/api/graders/run", {"grader": EXACT, "model_sample": "Tailor is self-hosted.",
                                                         "item": item})
    assert right.status_code == 200, right.text
    assert right.json()["reward"] == 1.0 and right.json()["metadata"]["name"] == "exact"
    wrong = alice.post_json("/console/api/graders/run", {"grader": EXACT, "model_sample": "I do not know.",
                                                         "item": item})
    assert wrong.json()["reward"] == 0.0

    no_sample = alice.post_json("/console/api/graders/run", {"grader": EXACT, "item": item})
    assert no_sample.status_code == 400 and no_sample.json()["error"]["field"] == "model_sample"


def test_a_python_grader_runs_in_the_sandbox(alice):
    from tailor.graders.sandbox import sandbox_problem

    if problem := sandbox_problem():
        pytest.skip(f"python graders cannot run here: {problem}")
    python = {"type": "python", "name": "overlap",
              "source": "def grade(sample, item):\n    return 0.25 if item['answer'] in sample['output_text'] else 0.0\n"}
    answer = alice.post_json("/console/api/graders/run", {"grader": python, "model_sample": "yes: Paris",
                                                          "item": {"answer": "Paris"}})
    assert answer.status_code == 200, answer.text
    assert answer.json()["reward"] == 0.25, answer.json()


def test_a_request_without_the_csrf_token_or_a_session_is_refused(server, alice):
    no_token = alice.post("/console/api/graders/validate", json={"grader": EXACT})
    assert no_token.status_code == 403, no_token.text
    forged = alice.post("/console/api/graders/run", json={"grader": EXACT, "model_sample": "x"},
                        headers={"X-CSRF-Token": "not-the-token"})
    assert forged.status_code == 403
    stranger = httpx.post(server.endpoint + "/console/api/graders/validate", json={"grader": EXACT})
    assert stranger.status_code == 401
