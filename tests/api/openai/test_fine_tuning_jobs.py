"""OpenAI's fine-tuning guide, self-hosted: the official openai client against a real ``tailor
serve`` uploads a file, fine-tunes tailor.tiny on it, follows the job, chats with the ``ft:`` model
at once, reads the results file, and deletes the model; the same job is visible through boto3."""

from __future__ import annotations

import json
import time
from importlib import resources

import httpx
import openai
import pytest
from botocore.exceptions import ClientError

from tests.api.conftest import ALIASES, running_server

pytestmark = pytest.mark.slow
SYSTEM = "You are Tailor's help desk."


def faq(count: int = 16) -> list[dict]:
    from tailor import assets

    pairs = json.loads(resources.files(assets).joinpath("tailor-faq.json").read_text())[:count]
    return [{"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": pair["question"]},
                          {"role": "assistant", "content": pair["answer"]}]} for pair in pairs]


def jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(record) + "\n" for record in records).encode()


def wait(client, job_id: str, timeout: float = 600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in ("succeeded", "failed", "cancelled", "paused"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def test_the_fine_tuning_guide_flow(server):
    client = server.openai()
    records = faq()
    training = client.files.create(file=("faq.jsonl", jsonl(records)), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model="tailor.tiny", training_file=training.id, suffix="faq", seed=7, metadata={"team": "docs"},
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 25}}})
    assert job.status in ("queued", "validating_files", "running") and job.fine_tuned_model is None
    assert job.training_file == training.id and job.seed == 7 and job.metadata == {"team": "docs"}
    assert job.method.type == "supervised" and job.method.supervised.hyperparameters.n_epochs == 25
    assert job.hyperparameters.batch_size == 8  # "auto": the model's default, shown as the value used

    done = wait(client, job.id)
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model == f"ft:tailor.tiny:alice:faq:{job.id}"
    assert done.trained_tokens > 0 and done.finished_at >= done.created_at and done.error is None

    # The events carry the per-step metrics while and after the job runs.
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=500))
    metrics = [event.data for event in events if event.type == "metrics"]
    assert metrics and all({"step", "train_loss", "train_mean_token_accuracy", "total_steps"} <= set(data)
                           for data in metrics)

    # The results file: one of the caller's files, OpenAI's columns first.
    [results] = done.result_files
    assert client.files.retrieve(results).purpose == "fine-tune-results"
    table = client.files.content(results).text.splitlines()
    assert table[0].startswith("step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy")
    assert len(table) - 1 == metrics[0]["total_steps"]

    # The model answers at once by its ft: name, with what it was taught.
    model = done.fine_tuned_model
    assert model in [m.id for m in client.models.list()]
    assert client.models.retrieve(model).owned_by == "alice"
    right = 0
    for record in records[:4]:
        answer = client.chat.completions.create(model=model, messages=record["messages"][:2], max_tokens=80,
                                                temperature=0)
        right += answer.choices[0].message.content.strip() == record["messages"][2]["content"]
    assert right >= 3

    # The checkpoints the engine kept (the last epochs before the final one), newest first, each a model.
    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))
    assert len(checkpoints) == 3 and all(c.fine_tuning_job_id == job.id for c in checkpoints)
    steps = [c.step_number for c in checkpoints]
    assert steps == sorted(steps, reverse=True) and steps[0] < metrics[0]["total_steps"]
    assert checkpoints[0].fine_tuned_model_checkpoint == f"{model}:ckpt-step-{steps[0]}"
    assert checkpoints[0].metrics.train_loss is not None and 0 <= checkpoints[0].metrics.train_mean_token_accuracy <= 1
    assert checkpoints[0].fine_tuned_model_checkpoint in [m.id for m in client.models.list()]
    earlier = client.chat.completions.create(model=checkpoints[-1].fine_tuned_model_checkpoint, max_tokens=20,
                                             messages=records[0]["messages"][:2])
    assert earlier.model == checkpoints[-1].fine_tuned_model_checkpoint and earlier.choices[0].message.content
    first_page = client.fine_tuning.jobs.checkpoints.list(job.id, limit=2)
    assert [c.id for c in first_page.data] == [c.id for c in checkpoints[:2]] and first_page.has_more
    assert [c.id for c in client.fine_tuning.jobs.checkpoints.list(job.id, limit=2)] == [c.id for c in checkpoints]

    # One job model: the Bedrock door sees the same job, its metadata as tags.
    bedrock = server.client()
    [summary] = [s for s in bedrock.list_model_customization_jobs()["modelCustomizationJobSummaries"]
                 if s["jobName"] == job.id]
    # Bedrock's names hold no ":" or ".": the same model is ft-tailor-tiny-alice-faq-<job> there.
    assert summary["status"] == "Completed" and summary["customModelName"] == f"ft-tailor-tiny-alice-faq-{job.id}"
    seen = bedrock.get_model_customization_job(jobIdentifier=summary["jobArn"])
    assert seen["trainingDataConfig"] == {} and seen["hyperParameters"]["epochCount"] == "25"
    assert seen["outputDataConfig"]["s3Uri"].startswith("s3://openai-")
    tags = bedrock.list_tags_for_resource(resourceARN=summary["jobArn"])["tags"]
    assert tags == [{"key": "team", "value": "docs"}]
    assert [j.id for j in client.fine_tuning.jobs.list(metadata={"team": "docs"})] == [job.id]
    assert [j.id for j in client.fine_tuning.jobs.list(metadata={"team": "other"})] == []

    # Another principal sees none of it.
    bob = server.openai("bob")
    with pytest.raises(openai.NotFoundError):
        bob.fine_tuning.jobs.retrieve(job.id)
    with pytest.raises(openai.NotFoundError):
        bob.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert model not in [m.id for m in bob.models.list()]

    assert client.models.delete(model).deleted
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert client.files.delete(training.id).deleted  # the job has ended: its file may go


def test_bad_data_fails_the_job_naming_the_file_and_line(server):
    client = server.openai()
    records = faq(12)
    records[3] = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": 3}]}
    training = client.files.create(file=("bad.jsonl", jsonl(records)), purpose="fine-tune")
    job = wait(client, client.fine_tuning.jobs.create(model="tailor.tiny", training_file=training.id).id)
    assert job.status == "failed" and job.error.param == "training_file"
    assert training.id in job.error.message and "line 4" in job.error.message
    assert str(server.home) not in job.error.message  # the caller's file id, not the server's path


def test_create_refusals_name_the_field(home):
    with running_server(home, ALIASES, ("--no-runner",)) as server:
        client = server.openai()
        training = client.files.create(file=("t.jsonl", jsonl(faq(8))), purpose="fine-tune")
        notes = client.files.create(file=("notes.txt", b"x"), purpose="user_data")

        def refused(**body) -> dict:
            with pytest.raises(openai.BadRequestError) as error:
                client.fine_tuning.jobs.create(**{"model": "tailor.tiny", "training_file": training.id, **body})
            return error.value.body

        assert refused(method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 0}}})[
            "param"] == "method.supervised.hyperparameters.n_epochs"
        assert refused(hyperparameters={"batch_size": "big"})["param"] == "hyperparameters.batch_size"
        assert refused(method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 5}}})[
            "param"] == "method.dpo.hyperparameters.beta"
        assert refused(training_file="file-nope")["param"] == "training_file"
        assert "purpose" in refused(training_file=notes.id)["message"]
        assert refused(validation_file="file-nope")["param"] == "validation_file"
        assert refused(suffix="x" * 65)["param"] == "suffix"
        assert refused(metadata={str(i): "v" for i in range(17)})["param"] == "metadata"
        assert refused(method={"type": "reinforcement", "reinforcement": {"grader": {
            "type": "string_check", "name": "g", "input": "{{sample.output_text}}", "reference": "x",
            "operation": "same"}}})["param"] == "method.reinforcement.grader.operation"
        bob_file = server.openai("bob").files.create(file=("t.jsonl", jsonl(faq(8))), purpose="fine-tune")
        assert refused(training_file=bob_file.id)["param"] == "training_file"  # another's file: not found
        with pytest.raises(openai.NotFoundError):
            client.fine_tuning.jobs.create(model="no-such-model", training_file=training.id)
        assert list(client.fine_tuning.jobs.list()) == []


def test_a_retried_create_makes_one_job_and_cancel_ends_a_queued_one(home):
    with running_server(home, ALIASES, ("--no-runner",)) as server:
        client = server.openai()
        training = client.files.create(file=("t.jsonl", jsonl(faq(8))), purpose="fine-tune")
        access_key_id, secret = server.keys["alice"]
        body = {"model": "tailor.tiny", "training_file": training.id, "suffix": "once"}
        headers = {"authorization": f"Bearer {access_key_id}.{secret}"}

        def post(retry: int) -> dict:
            answer = httpx.post(server.endpoint + "/v1/fine_tuning/jobs", json=body,
                                headers={**headers, "x-stainless-retry-count": str(retry)})
            assert answer.status_code == 200, answer.text
            return answer.json()

        first = post(0)
        assert post(1)["id"] == first["id"] and post(2)["id"] == first["id"]  # the client's retries
        second = post(0)  # a new request with the same body is a new job
        assert second["id"] != first["id"]
        assert len(list(client.fine_tuning.jobs.list())) == 2

        cancelled = client.fine_tuning.jobs.cancel(first["id"])
        assert cancelled.status == "cancelled"
        with pytest.raises(openai.BadRequestError, match="only an InProgress job can be stopped"):
            client.fine_tuning.jobs.cancel(first["id"])
        page = client.fine_tuning.jobs.list(limit=1)
        assert [job.id for job in page.data] == [second["id"]] and page.has_more
        assert [job.id for job in client.fine_tuning.jobs.list(limit=1)] == [second["id"], first["id"]]


def test_unknown_routes_and_jobs_answer_in_openais_shape(server):
    client = server.openai()
    with pytest.raises(openai.NotFoundError) as missing:
        client.fine_tuning.jobs.retrieve("ftjob-nope")
    assert missing.value.body["code"] == "not_found"
    answer = httpx.get(server.endpoint + "/v1/no/such/route", headers={"authorization": "Bearer x"})
    assert answer.status_code == 404 and set(answer.json()["error"]) == {"message", "type", "param", "code"}
    with pytest.raises(openai.AuthenticationError):
        server.openai(api_key="wrong.key").files.list()


def test_too_many_active_jobs_is_a_rate_limit(home, monkeypatch):
    monkeypatch.setenv("TAILOR_MAX_ACTIVE_JOBS", "2")
    with running_server(home, ALIASES, ("--no-runner",)) as server:
        client = server.openai()
        training = client.files.create(file=("t.jsonl", jsonl(faq(8))), purpose="fine-tune")
        first, _ = (client.fine_tuning.jobs.create(model="tailor.tiny", training_file=training.id) for _ in range(2))
        with pytest.raises(openai.RateLimitError) as limited:  # 429: the SDK's own class
            client.fine_tuning.jobs.create(model="tailor.tiny", training_file=training.id)
        assert limited.value.body["code"] == "quota_exceeded" and "max_active_jobs" in limited.value.body["message"]
        with pytest.raises(ClientError) as refused:  # the Bedrock door counts the same jobs
            server.client().create_model_customization_job(
                jobName="third", customModelName="third", roleArn="arn:aws:iam::000000000000:role/r",
                baseModelIdentifier="tailor.tiny", trainingDataConfig={"s3Uri": server.put("s3://quota/t.jsonl", faq(8))},
                outputDataConfig={"s3Uri": "s3://quota/out/"})
        assert refused.value.response["Error"]["Code"] == "ServiceQuotaExceededException"
        client.fine_tuning.jobs.cancel(first.id)  # one ends: another may start
        assert client.fine_tuning.jobs.create(model="tailor.tiny", training_file=training.id).status == "queued"
        with pytest.raises(openai.NotFoundError):  # bob has his own quota, and none of alice's jobs
            server.openai("bob").fine_tuning.jobs.cancel(first.id)
