"""OpenAI's Evals API through the real ``openai`` client on a live server: evals with testing
criteria, runs over rows that bring their samples (``jsonl``) and over a model's answers
(``completions``), output items, cancel, the report, and errors in the SDK's shape."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from tailor.graders.openai import similarity
from tests.api.conftest import ALIASES, running_server
from tests.conftest import HELP_DESK_SYSTEM, JUDGE_ALIAS, factual_grader

ITEM_SCHEMA = {"type": "object", "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
               "required": ["question", "answer"]}
EXACT = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}", "reference": "{{item.answer}}",
         "operation": "eq"}
ROUGE = {"type": "text_similarity", "name": "rouge", "input": "{{sample.output_text}}",
         "reference": "{{item.answer}}", "evaluation_metric": "rouge_l", "pass_threshold": 0.5}
BOTH = {"type": "multi", "name": "both", "calculate_output": "0.5 * exact + 0.5 * rouge", "pass_threshold": 0.75,
        "graders": {"exact": {**EXACT}, "rouge": {k: v for k, v in ROUGE.items() if k != "pass_threshold"}}}
ROWS = [({"question": "Capital of France?", "answer": "Paris"}, "Paris"),
        ({"question": "Two plus two?", "answer": "four"}, "It is four"),
        ({"question": "Colour of the sky?", "answer": "blue on a clear day"}, "green"),
        ({"question": "Largest ocean?", "answer": "the Pacific Ocean"}, "the Pacific Ocean")]


def register_fine_tuned(home, folder) -> str:
    """The session's fine-tuned tailor.tiny (trained by ``tests/conftest.py``'s ``trained``) as
    alice's ``ft:`` model, the row a fine-tuning job through the API would have written."""
    from tailor.arns import custom_model_arn, foundation_model_arn, new_resource_id
    from tailor.settings import Settings
    from tailor.store.db import open_store, utcnow
    from tailor.store.jobs import CustomModel

    model_id = new_resource_id()
    name = f"ft:tailor.tiny:alice:faq:ftjob-{model_id}"
    with open_store(Settings(home=home)).session() as session:
        session.add(CustomModel(id=model_id, arn=custom_model_arn("us-east-1", "000000000000", "tailor.tiny", model_id),
                                name=f"faq-{model_id}", principal="alice", openai_name=name, job_id=None,
                                base_model_id="tailor.tiny", base_model_arn=foundation_model_arn("us-east-1", "tailor.tiny"),
                                customization_type="FINE_TUNING", status="Active", artifacts_dir=str(folder),
                                created_at=utcnow()))
    return name


def wait_for_run(client, eval_id: str, run_id: str, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.evals.runs.retrieve(run_id, eval_id=eval_id)
        if run.status in ("completed", "failed", "canceled"):
            return run
        time.sleep(0.5)
    raise AssertionError(f"run still {run.status}")


def test_a_jsonl_run_grades_the_samples_its_rows_bring(server):
    client = server.openai()
    created = client.evals.create(name="answers", data_source_config={"type": "custom", "item_schema": ITEM_SCHEMA,
                                                                       "include_sample_schema": True},
                                  testing_criteria=[EXACT, ROUGE, BOTH], metadata={"team": "qa"})
    assert created.object == "eval" and created.id.startswith("eval_")
    assert created.data_source_config.schema_["properties"]["item"] == ITEM_SCHEMA
    assert [c.name for c in created.testing_criteria] == ["exact", "rouge", "both"]
    assert client.evals.retrieve(created.id).metadata == {"team": "qa"}

    content = [{"item": item, "sample": {"output_text": output}} for item, output in ROWS]
    run = client.evals.runs.create(created.id, name="prewritten",
                                   data_source={"type": "jsonl", "source": {"type": "file_content", "content": content}})
    assert run.status in ("queued", "in_progress") and run.id.startswith("evalrun_")
    done = wait_for_run(client, created.id, run.id)
    assert done.status == "completed", done.error

    rouge = [similarity("rouge_l", output, item["answer"]) for item, output in ROWS]
    passes = [(output == item["answer"], score >= 0.5) for (item, output), score in zip(ROWS, rouge)]
    assert done.result_counts.total == 4 and done.result_counts.errored == 0
    both = [0.5 * exact + 0.5 * score >= 0.75 for (exact, _), score in zip(passes, rouge)]
    assert done.result_counts.passed == sum(all(p) and b for p, b in zip(passes, both))
    by_name = {r.testing_criteria: r for r in done.per_testing_criteria_results}
    assert by_name["exact"].passed == sum(p[0] for p in passes)
    assert by_name["rouge"].passed == sum(p[1] for p in passes)

    items = list(client.evals.runs.output_items.list(run.id, eval_id=created.id))
    assert [i.datasource_item_id for i in items] == [0, 1, 2, 3]
    for item, score, (exact, _) in zip(items, rouge, passes):
        result = {r.name: r for r in item.results}
        assert result["rouge"].score == pytest.approx(score)  # the grader layer's number, exactly
        assert result["both"].score == pytest.approx(0.5 * exact + 0.5 * score)
        assert result["both"].passed == (0.5 * exact + 0.5 * score >= 0.75)
    failing = client.evals.runs.output_items.list(run.id, eval_id=created.id, status="fail")
    assert [i.datasource_item_id for i in failing] == [i for i, p in enumerate(passes) if not all(p)]
    one = client.evals.runs.output_items.retrieve(items[0].id, eval_id=created.id, run_id=run.id)
    assert one.datasource_item == ROWS[0][0] and one.status == "pass"

    # The report opens without the API key (its link is signed); a forged link does not.
    page = httpx.get(done.report_url, timeout=30)
    assert page.status_code == 200 and "prewritten" in page.text and "exact" in page.text
    forged = httpx.get(done.report_url.split("?")[0] + "?signature=" + "0" * 32, timeout=30)
    assert forged.status_code == 404

    # The same rows from a file.
    uploaded = client.files.create(file=("rows.jsonl", "".join(json.dumps(c) + "\n" for c in content).encode()),
                                   purpose="evals")
    again = client.evals.runs.create(created.id, data_source={"type": "jsonl",
                                                              "source": {"type": "file_id", "id": uploaded.id}})
    assert wait_for_run(client, created.id, again.id).result_counts.passed == done.result_counts.passed
    assert [r.id for r in client.evals.runs.list(created.id)] == [run.id, again.id]
    assert [r.id for r in client.evals.runs.list(created.id, order="desc", status="completed")] == [again.id, run.id]

    # Rename; list; delete a run, then the eval.
    assert client.evals.update(created.id, name="renamed").name == "renamed"
    assert [e.id for e in client.evals.list()] == [created.id]
    assert client.evals.runs.delete(again.id, eval_id=created.id).deleted
    assert client.evals.delete(created.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.evals.retrieve(created.id)


FAQ_SCHEMA = {"type": "object", "properties": {"prompt": {"type": "string"}, "referenceResponse": {"type": "string"}},
              "required": ["prompt", "referenceResponse"]}


@pytest.mark.slow
def test_the_evals_guide_flow_a_fine_tuned_model_passes_more_than_its_base(home, evaluation, factual_judge):
    """OpenAI's evals guide: a string_check and a score_model criterion (a judge the server serves:
    ``tests/conftest.py``'s test judge), a completions run on the fine-tuned model and one on its
    base, their output items, and the report that puts them side by side."""
    with running_server(home, {**ALIASES, JUDGE_ALIAS: str(factual_judge / "model")}) as server:
        tuned = register_fine_tuned(home, evaluation.full)
        client = server.openai()
        exact = {**EXACT, "reference": "{{item.referenceResponse}}"}
        judge = {**factual_grader(), "pass_threshold": 0.5}
        faq_eval = client.evals.create(
            name="help desk", testing_criteria=[exact, judge],
            data_source_config={"type": "custom", "item_schema": FAQ_SCHEMA, "include_sample_schema": True})
        rows = [{"item": {"prompt": q.prompt, "referenceResponse": q.reference}} for q in evaluation.questions]
        runs = {}
        for model in (tuned, "tailor.tiny"):
            runs[model] = client.evals.runs.create(faq_eval.id, name=model, data_source={
                "type": "completions", "model": model, "source": {"type": "file_content", "content": rows},
                "input_messages": {"type": "template", "template": [
                    {"role": "developer", "content": HELP_DESK_SYSTEM}, {"role": "user", "content": "{{item.prompt}}"}]},
                "sampling_params": {"max_completion_tokens": 96, "temperature": 0, "seed": 0}})
        done = {model: wait_for_run(client, faq_eval.id, run.id, timeout=400) for model, run in runs.items()}
        assert all(run.status == "completed" for run in done.values()), [r.error for r in done.values()]
        tuned_run, base_run = done[tuned], done["tailor.tiny"]
        print("pass rates: fine-tuned", tuned_run.result_counts, "base", base_run.result_counts)
        assert tuned_run.result_counts.passed >= 3 and base_run.result_counts.passed == 0
        assert tuned_run.result_counts.errored == 0 and base_run.result_counts.errored == 0
        judged = {r.testing_criteria: r for r in tuned_run.per_testing_criteria_results}["Factual"]
        assert judged.passed >= 3
        [usage] = tuned_run.per_model_usage
        assert usage.model_name == tuned and usage.invocation_count == 4 and usage.completion_tokens > 0
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

        items = list(client.evals.runs.output_items.list(tuned_run.id, eval_id=faq_eval.id))
        first = items[0]
        assert first.sample.model == tuned and first.sample.input[0].content == HELP_DESK_SYSTEM
        assert first.sample.output[0].content == evaluation.questions[0].reference
        assert first.sample.usage.prompt_tokens > 0
        verdict = {r.name: r for r in first.results}["Factual"]
        assert verdict.score == 1.0 and verdict.passed and "Score: 1" in verdict.sample["output"][0]["content"]

        # The report: the fine-tuned run beside its base, per question, with the judge's reasons.
        page = httpx.get(tuned_run.report_url, timeout=30).text
        assert tuned in page and "tailor.tiny" in page and "The answer states the reference." in page
        assert evaluation.questions[0].prompt in page


def test_a_run_outlives_a_killed_server_and_cancel_ends_it_truthfully(server):
    import signal

    client = server.openai()
    ev = client.evals.create(data_source_config={"type": "custom", "item_schema": ITEM_SCHEMA},
                             testing_criteria=[EXACT])
    # Far more rows than the test lets it answer (30 batches): the cancel always finds it running.
    rows = [{"item": {"question": f"Say the number {i}.", "answer": str(i)}} for i in range(480)]
    run = client.evals.runs.create(ev.id, data_source={
        "type": "completions", "model": "tailor.tiny", "source": {"type": "file_content", "content": rows},
        "input_messages": {"type": "template", "template": [{"role": "user", "content": "{{item.question}}"}]},
        "sampling_params": {"max_completion_tokens": 48}})
    deadline = time.monotonic() + 120
    while client.evals.runs.retrieve(run.id, eval_id=ev.id).result_counts.failed == 0:
        assert time.monotonic() < deadline, "no batch was graded"
        time.sleep(0.3)

    # The server dies; its run's worker does not, and a new server sees the run go on.
    server.kill(signal.SIGKILL)
    server.start()
    client = server.openai()
    going = client.evals.runs.retrieve(run.id, eval_id=ev.id)
    assert going.status == "in_progress", going
    canceled = client.evals.runs.cancel(run.id, eval_id=ev.id)
    assert canceled.status in ("canceling", "canceled")
    ended = wait_for_run(client, ev.id, run.id, timeout=60)
    assert ended.status == "canceled" and ended.error is None
    items = list(client.evals.runs.output_items.list(run.id, eval_id=ev.id, limit=100))
    counts = ended.result_counts
    assert counts.total == 480 and 0 < len(items) < 480  # stopped between batches
    assert counts.passed + counts.failed + counts.errored == len(items)
    with pytest.raises(openai.BadRequestError, match="was canceled; there is nothing to cancel"):
        client.evals.runs.cancel(run.id, eval_id=ev.id)


def test_errors_come_in_the_sdks_shape_and_name_the_field(server):
    client, bob = server.openai(), server.openai("bob")
    custom = {"type": "custom", "item_schema": ITEM_SCHEMA}

    def refused(call, param: str, words: str, error=openai.BadRequestError):
        with pytest.raises(error) as caught:
            call()
        assert caught.value.body["param"] == param, caught.value.body
        assert words in caught.value.body["message"], caught.value.body
        return caught.value

    no_threshold = {k: v for k, v in ROUGE.items() if k != "pass_threshold"}
    refused(lambda: client.evals.create(data_source_config=custom, testing_criteria=[no_threshold]),
            "testing_criteria[0].pass_threshold", "required")
    refused(lambda: client.evals.create(data_source_config=custom,
                                        testing_criteria=[{**EXACT, "operation": "equals"}]),
            "testing_criteria[0].operation", "eq")
    refused(lambda: client.evals.create(data_source_config=custom, testing_criteria=[EXACT, EXACT]),
            "testing_criteria[1].name", "names another criterion")
    refused(lambda: client.evals.create(data_source_config=custom, testing_criteria=[
        {**factual_grader(), "model": "http://evil.example/v1"}]), "testing_criteria[0].model", "a model this server runs")
    refused(lambda: client.evals.create(data_source_config={"type": "logs"}, testing_criteria=[EXACT]),
            "data_source_config.type", "stores none")
    refused(lambda: client.evals.create(data_source_config={"type": "custom", "item_schema": {"type": "nope"}},
                                        testing_criteria=[EXACT]), "data_source_config.item_schema", "JSON Schema")
    backtracking = {"type": "object", "properties": {"answer": {"type": "string", "pattern": "^(a+)+$"}}}
    refused(lambda: client.evals.create(data_source_config={"type": "custom", "item_schema": backtracking},
                                        testing_criteria=[EXACT]), "data_source_config.item_schema",
            "item_schema.properties.answer.pattern: regular expressions are not accepted")

    ev = client.evals.create(data_source_config=custom, testing_criteria=[EXACT])
    good = {"item": {"question": "q", "answer": "a"}, "sample": {"output_text": "a"}}
    jsonl = {"type": "jsonl", "source": {"type": "file_content", "content": [good, {"item": {"question": "q"}}]}}
    refused(lambda: client.evals.runs.create(ev.id, data_source=jsonl), "data_source.source",
            "content[1].item: 'answer' is a required property")
    unsampled = {"type": "jsonl", "source": {"type": "file_content", "content": [{"item": good["item"]}]}}
    refused(lambda: client.evals.runs.create(ev.id, data_source=unsampled), "data_source.source", "sample")
    completions = {"type": "completions", "model": "tailor.tiny", "source": {"type": "file_content", "content": [good]},
                   "input_messages": {"type": "template", "template": [{"role": "user", "content": "{{item.question}}"}]}}
    refused(lambda: client.evals.runs.create(ev.id, data_source={**completions, "model": "gpt-9"}),
            "data_source.model", "never an address")
    refused(lambda: client.evals.runs.create(ev.id, data_source={**completions, "sampling_params": {
        "tools": [{"type": "function", "function": {"name": "f"}}]}}), "data_source.sampling_params.tools", "tools")
    refused(lambda: client.evals.runs.create(ev.id, data_source={**completions, "type": "responses"}),
            "data_source.type", "Responses API")
    refused(lambda: client.evals.runs.create(ev.id, data_source={"type": "jsonl", "source": {
        "type": "file_id", "id": "file-missing"}}), "data_source.source.id", "not found")
    refused(lambda: client.evals.list(order="sideways"), "order", "asc")

    # Another principal's eval is not there at all, nor its runs.
    run = client.evals.runs.create(ev.id, data_source={"type": "jsonl", "source": {"type": "file_content",
                                                                                   "content": [good]}})
    refused(lambda: bob.evals.retrieve(ev.id), "eval_id", "not found", openai.NotFoundError)
    refused(lambda: bob.evals.runs.retrieve(run.id, eval_id=ev.id), "run_id", "not found", openai.NotFoundError)
    refused(lambda: bob.evals.runs.create(ev.id, data_source=jsonl), "eval_id", "not found", openai.NotFoundError)
    assert list(bob.evals.list()) == []
    wait_for_run(client, ev.id, run.id)

    # An item_reference: each row's own conversation is what the model is sent.
    conversation = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "q"}]
    schema_free = client.evals.create(data_source_config={"type": "custom", "item_schema": {"type": "object"}},
                                      testing_criteria=[{**EXACT, "reference": "a"}])
    referenced = client.evals.runs.create(schema_free.id, data_source={
        "type": "completions", "model": "tailor.tiny", "sampling_params": {"max_completion_tokens": 4},
        "source": {"type": "file_content", "content": [{"item": {"chat": conversation}}, {"item": {"chat": 7}}]},
        "input_messages": {"type": "item_reference", "item_reference": "item.chat"}})
    assert wait_for_run(client, schema_free.id, referenced.id).result_counts.errored == 1
    first, second = client.evals.runs.output_items.list(referenced.id, eval_id=schema_free.id)
    assert [m.content for m in first.sample.input] == ["Answer briefly.", "q"] and first.status == "fail"
    assert second.status == "error" and "item.chat" in second.sample.error.message


def test_unfinished_runs_are_bounded_per_caller_and_a_retried_create_makes_one_run(home, monkeypatch):
    monkeypatch.setenv("TAILOR_MAX_ACTIVE_JOBS", "2")
    with running_server(home, ALIASES, ("--no-runner",)) as server:  # runs stay queued
        client = server.openai()
        ev = client.evals.create(data_source_config={"type": "custom", "item_schema": ITEM_SCHEMA},
                                 testing_criteria=[EXACT])
        source = {"type": "jsonl", "source": {"type": "file_content", "content": [
            {"item": {"question": "q", "answer": "a"}, "sample": {"output_text": "a"}}]}}
        first = client.evals.runs.create(ev.id, data_source=source)
        retried = client.evals.runs.create(ev.id, data_source=source, extra_headers={"x-stainless-retry-count": "1"})
        assert retried.id == first.id and retried.status == "queued"
        client.evals.runs.create(ev.id, data_source=source, name="second")
        with pytest.raises(openai.RateLimitError) as limited:
            client.evals.runs.create(ev.id, data_source=source)
        assert limited.value.body["code"] == "quota_exceeded" and "max_active_jobs" in limited.value.body["message"]
        assert client.evals.runs.cancel(first.id, eval_id=ev.id).status == "canceled"  # queued: at once
        assert client.evals.runs.create(ev.id, data_source=source).status == "queued"
        with pytest.raises(openai.BadRequestError, match="still going"):
            client.evals.delete(ev.id)
