"""The Evaluations page's routes on a real server: the page and its polled listing, the create
form's errors named by the API's fields, cancel, and the reports — an evaluation job's report to
its owner only."""

from __future__ import annotations

import time

from tests.services.test_evaluation_report_file import REPORT, plant_completed_job

EXACT = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}", "reference": "{{item.answer}}",
         "operation": "eq"}
ROWS = '{"question": "Capital of France?", "answer": "Paris"}\n{"question": "Two plus two?", "answer": "four"}\n'


def test_an_evaluation_jobs_report_opens_for_its_owner_only(server, alice, bob):
    plant_completed_job(server.home, "alice", name="faq-eval", dataset="faq")
    page = alice.get("/console/evaluations")
    assert page.status_code == 200 and 'href="/console/evaluations/jobs/faq-eval/reports/faq"' in page.text

    report = alice.get("/console/evaluations/jobs/faq-eval/reports/faq")
    assert report.status_code == 200 and report.text == REPORT
    assert "sandbox" in report.headers["content-security-policy"]  # the report runs nothing

    assert bob.get("/console/evaluations/jobs/faq-eval/reports/faq").status_code == 404
    assert "faq-eval" not in bob.get("/console/evaluations").text
    assert alice.get("/console/evaluations/jobs/faq-eval/reports/other").status_code == 404
    assert bob.post_json("/console/api/evaluations/jobs/faq-eval/stop").status_code == 404


def test_create_names_each_problem_by_the_apis_field(alice, bob):

    def refused(body: dict) -> dict:
        answer = alice.post_json("/console/api/evaluations", {"name": "x", "testing_criteria": [EXACT], "rows": ROWS,
                                                              "models": ["tailor.tiny"], **body})
        assert answer.status_code == 400, answer.text
        return answer.json()["error"]

    bad_criterion = refused({"testing_criteria": [{**EXACT, "operation": "equals"}]})
    assert bad_criterion["field"] == "testing_criteria"
    assert "testing_criteria[0].operation" in bad_criterion["fields"]["testing_criteria"]
    assert refused({"rows": ROWS + "not json\n"})["message"].startswith("rows, line 3: not JSON")
    assert refused({"models": []})["field"] == "models"
    unknown = refused({"models": ["no-such-model"]})
    assert unknown["field"] == "models" and "data_source.model" in unknown["message"]
    assert refused({"max_completion_tokens": 100_000})["field"] == "max_completion_tokens"
    assert alice.get("/console/api/evaluations").json()["evals"] == []  # nothing half-made was left

    assert alice.post("/console/api/evaluations", json={"rows": ROWS}).status_code == 403  # no CSRF token


def test_create_makes_an_eval_and_a_run_per_model_that_the_page_watches_and_cancels(alice, bob):
    made = alice.post_json("/console/api/evaluations", {
        "name": "capitals", "testing_criteria": [EXACT], "rows": ROWS, "models": ["tailor.tiny"],
        "labels": {"tailor.tiny": "base"}, "system": "Answer in one word.", "max_completion_tokens": 8})
    assert made.status_code == 201, made.text
    eval_id, [run_id] = made.json()["eval_id"], made.json()["runs"]

    listing = alice.get("/console/api/evaluations").json()
    [shown] = [e for e in listing["evals"] if e["id"] == eval_id]
    assert shown["name"] == "capitals" and shown["criteria"] == ["exact"]
    [run] = shown["runs"]
    assert run["id"] == run_id and run["name"] == "base" and run["model"] == "tailor.tiny" and run["total"] == 2
    page = alice.get(f"/console/evaluations?created={eval_id}").text
    assert f'data-run="{run_id}"' in page and 'class="panel eval created"' in page

    assert bob.post_json(f"/console/api/evaluations/{eval_id}/runs/{run_id}/cancel").status_code == 404
    assert bob.get("/console/api/evaluations").json()["evals"] == []
    canceled = alice.post_json(f"/console/api/evaluations/{eval_id}/runs/{run_id}/cancel")
    assert canceled.status_code == 200 and canceled.json()["status"] in ("canceling", "canceled")


def test_an_eval_runs_report_link_is_the_signed_one(server, alice, bob):
    from tailor.services.eval_report import report_signature
    from tailor.settings import Settings

    client = server.openai()
    created = client.evals.create(name="prewritten", data_source_config={
        "type": "custom", "item_schema": {"type": "object"}, "include_sample_schema": True}, testing_criteria=[EXACT])
    run = client.evals.runs.create(created.id, data_source={"type": "jsonl", "source": {"type": "file_content", "content": [
        {"item": {"answer": "Paris"}, "sample": {"output_text": "Paris"}}]}})
    deadline = time.monotonic() + 120
    while (view := _run(alice, created.id, run.id))["status"] != "completed":
        assert time.monotonic() < deadline and view["status"] in ("queued", "in_progress"), view
        time.sleep(0.3)
    signature = report_signature(Settings(home=server.home), run.id.removeprefix("evalrun_"))
    assert view["report"] == f"/v1/evals/{created.id}/runs/{run.id}/report?signature={signature}"
    assert view["passed"] == 1 and view["criteria"] == [{"name": "exact", "passed": 1, "failed": 0}]
    assert alice.get(view["report"]).status_code == 200


def _run(client, eval_id: str, run_id: str) -> dict:
    [evaluation] = [e for e in client.get("/console/api/evaluations").json()["evals"] if e["id"] == eval_id]
    return next(run for run in evaluation["runs"] if run["id"] == run_id)
