"""Batch inference through both doors on one real server: Bedrock's model invocation jobs (boto3)
and OpenAI's batches (the openai client), answered by the tiny model in a job worker."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

from tests.api.conftest import ALIASES, HAIKU, running_server
from tests.conftest import tiny_home

ROLE = "arn:aws:iam::000000000000:role/batch"
OUT = "s3://alice-batch-out/runs/"


def _kill_batch_workers(home) -> None:
    """Batch workers run in their own sessions, like every job's; end ours with the module."""
    database = home / "tailor.db"
    if not database.exists():
        return
    with sqlite3.connect(database) as connection:
        pids = [row[0] for row in connection.execute("SELECT pid FROM invocation_jobs WHERE pid IS NOT NULL")]
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_models_dir):
    """One server whose runner starts this module's three jobs side by side (their workers' start-up,
    most of a small job's time, overlaps)."""
    home = tiny_home(tmp_path_factory.mktemp("batch") / "home", tiny_models_dir)
    before = os.environ.get("TAILOR_MAX_CONCURRENT_JOBS")
    os.environ["TAILOR_MAX_CONCURRENT_JOBS"] = "3"
    try:
        context = running_server(home, ALIASES)
        running = context.__enter__()
    finally:
        if before is None:
            os.environ.pop("TAILOR_MAX_CONCURRENT_JOBS")
        else:
            os.environ["TAILOR_MAX_CONCURRENT_JOBS"] = before
    try:
        yield running
    finally:
        context.__exit__(None, None, None)
        _kill_batch_workers(home)


GOOD = [{"recordId": f"REC{i:08d}", "modelInput": {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 12,
                                                    "messages": [{"role": "user", "content": f"question number {i}?"}]}}
        for i in range(12)]
QUESTIONS = ["what is tailor?", "how do I train?", "where are my files?"]


@pytest.fixture(scope="module")
def jobs(server):
    """The module's jobs, created together: one to stop, one to answer 16 records (12 good, 4 bad)
    from a folder of two files, and an OpenAI batch."""
    # A few short answers come first, so progress shows soon; the long ones keep the job running.
    server.put("s3://alice-batch-in/long.jsonl", [
        {"recordId": f"LONG{i:07d}", "modelInput": _body(f"tell me a long story {i}", 2 if i < 4 else 400)}
        for i in range(100)])
    server.put("s3://alice-batch-in/job1/good.jsonl", GOOD)
    server.put("s3://alice-batch-in/job1/mixed.jsonl",
               [{"modelInput": _body("no record id")},
                {"recordId": "BADBODY0001", "modelInput": {"messages": "not a list"}},
                {"recordId": "GOOD0000001", "modelInput": _body("one more")}])
    path = server.home / "buckets" / "alice-batch-in" / "job1" / "mixed.jsonl"
    path.write_text("this line is not JSON\n" + path.read_text())
    bedrock = server.client("bedrock")
    stop = _create(bedrock, "stop-me", "s3://alice-batch-in/long.jsonl")
    answers = _create(bedrock, "answers-all", "s3://alice-batch-in/job1/", clientRequestToken="tok-answers-all",
                      tags=[{"key": "team", "value": "a"}])

    client = server.openai()
    lines = [{"custom_id": f"q{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "tailor.tiny", "max_tokens": 10, "messages": [{"role": "user", "content": q}]}}
             for i, q in enumerate(QUESTIONS)]
    lines.append({"custom_id": "bad", "method": "POST", "url": "/v1/chat/completions",
                  "body": {"model": "tailor.tiny", "n": 3, "messages": [{"role": "user", "content": "x"}]}})
    uploaded = client.files.create(file=("requests.jsonl", "".join(json.dumps(line) + "\n" for line in lines).encode()),
                                   purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                  completion_window="24h", metadata={"purpose": "test"})
    # What InvokeModel answers for the good records, asked meanwhile (the server's engine starts too).
    runtime = server.client("bedrock-runtime")

    def invoke(record: dict) -> dict:
        return json.loads(runtime.invoke_model(modelId=HAIKU, body=json.dumps(record["modelInput"]))["body"].read())

    with ThreadPoolExecutor(len(GOOD)) as pool:  # answered together by the server's engine
        invoked = pool.map(invoke, GOOD)
        yield {"stop": stop, "answers": answers, "batch": batch, "file": uploaded,
               "invoked": lambda: dict(zip([record["recordId"] for record in GOOD], invoked))}


def _body(question: str, max_tokens: int = 12) -> dict:
    return {"anthropic_version": "bedrock-2023-05-31", "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": question}]}


def _create(client, name: str, input_uri: str, output_uri: str = OUT, **extra) -> str:
    return client.create_model_invocation_job(
        jobName=name, roleArn=ROLE, modelId=HAIKU,
        inputDataConfig={"s3InputDataConfig": {"s3Uri": input_uri, "s3InputFormat": "JSONL"}},
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": output_uri}}, **extra)["jobArn"]


def _wait(client, arn: str, done, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get_model_invocation_job(jobIdentifier=arn)
        if done(job):
            return job
        time.sleep(0.3)
    raise AssertionError(f"batch job did not get there: {job}")


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _output(server, output_uri: str, arn: str):
    bucket, key = output_uri.removeprefix("s3://").split("/", 1)
    return server.home / "buckets" / bucket / key / arn.rsplit("/", 1)[-1]


def test_bad_input_is_refused_by_field(server):
    bedrock = server.client("bedrock")
    server.put("s3://bob-batch/in.jsonl", [{"recordId": "R1", "modelInput": _body("hi")}], principal="bob")
    server.put("s3://alice-batch-in/ok.jsonl", [{"recordId": "R1", "modelInput": _body("hi")}])
    text = server.home / "buckets" / "alice-batch-in" / "prose.jsonl"
    text.write_text("Dear reader,\nthis is a letter, not JSON Lines.\n")
    cases = {
        "s3://bob-batch/in.jsonl": ("AccessDeniedException", "inputDataConfig.s3InputDataConfig.s3Uri"),
        "s3://alice-batch-in/missing.jsonl": ("ValidationException", "inputDataConfig.s3InputDataConfig.s3Uri"),
        "s3://alice-batch-in/prose.jsonl": ("ValidationException", "not JSON Lines"),
    }
    for uri, (code, says) in cases.items():
        with pytest.raises(ClientError) as error:
            _create(bedrock, "refused", uri)
        assert error.value.response["Error"]["Code"] == code, uri
        assert says in error.value.response["Error"]["Message"], uri
    with pytest.raises(ClientError) as error:  # writing into bob's bucket
        _create(bedrock, "refused", "s3://alice-batch-in/ok.jsonl", output_uri="s3://bob-batch/out/")
    assert "outputDataConfig.s3OutputDataConfig.s3Uri" in error.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as error:
        bedrock.create_model_invocation_job(
            jobName="refused", roleArn=ROLE, modelId="no.such-model",
            inputDataConfig={"s3InputDataConfig": {"s3Uri": "s3://alice-batch-in/ok.jsonl"}},
            outputDataConfig={"s3OutputDataConfig": {"s3Uri": OUT}})
    assert error.value.response["Error"]["Code"] == "ValidationException"
    assert error.value.response["Error"]["Message"].startswith("modelId:")
    assert bedrock.list_model_invocation_jobs(nameContains="refused")["invocationJobSummaries"] == []


def test_stop_ends_a_running_job_with_what_it_answered(server, jobs):
    bedrock, arn = server.client("bedrock"), jobs["stop"]
    running = _wait(bedrock, arn, lambda j: j["status"] == "InProgress" and j["processedRecordCount"] > 0)
    assert running["processedRecordCount"] < 100  # progress shows while it runs
    asked = time.monotonic()
    bedrock.stop_model_invocation_job(jobIdentifier=arn)
    stopped = _wait(bedrock, arn, lambda j: j["status"] not in ("InProgress", "Stopping"), timeout=60)
    assert time.monotonic() - asked < 20, "the stop was not prompt"
    assert stopped["status"] == "Stopped"
    processed = stopped["processedRecordCount"]
    assert 0 < processed < 100
    folder = _output(server, OUT, arn)
    lines = _lines(folder / "long.jsonl.out")
    assert len(lines) == processed and all("modelOutput" in line for line in lines)
    assert json.loads((folder / "manifest.json.out").read_text())["processedRecordCount"] == processed
    with pytest.raises(ClientError) as error:
        bedrock.stop_model_invocation_job(jobIdentifier=arn)
    assert error.value.response["Error"]["Code"] == "ConflictException"


def test_a_job_answers_every_record_as_invoke_model_does(server, jobs):
    """12 records answered as InvokeModel answers them (greedy), bad lines become error lines while
    the rest are answered, the manifest counts them, and a folder input gives one output per file."""
    bedrock, arn = server.client("bedrock"), jobs["answers"]
    # A retried create (same token) is the same job.
    assert _create(bedrock, "answers-all", "s3://alice-batch-in/job1/", clientRequestToken="tok-answers-all") == arn
    expected = jobs["invoked"]()
    job = _wait(bedrock, arn, lambda j: j["status"] not in ("Submitted", "InProgress"))
    assert job["status"] == "Completed", job
    assert (job["totalRecordCount"], job["processedRecordCount"], job["successRecordCount"],
            job["errorRecordCount"]) == (16, 16, 13, 3)
    folder = _output(server, OUT, arn)
    answered = _lines(folder / "good.jsonl.out")
    assert [line["recordId"] for line in answered] == [record["recordId"] for record in GOOD]
    for line, record in zip(answered, GOOD):
        assert line["modelInput"] == record["modelInput"]
        output, invoked = dict(line["modelOutput"]), dict(expected[line["recordId"]])
        output.pop("id"), invoked.pop("id")
        assert output == invoked  # content, stop reason and token usage, as InvokeModel answered
    errors = _lines(folder / "mixed.jsonl.out")
    assert [sorted(line) for line in errors] == [["error", "modelInput", "recordId"]] * 3 + [
        ["modelInput", "modelOutput", "recordId"]]
    assert "not valid JSON" in errors[0]["error"]["errorMessage"]
    assert "recordId" in errors[1]["error"]["errorMessage"]
    assert errors[2]["recordId"] == "BADBODY0001" and "modelInput.messages" in errors[2]["error"]["errorMessage"]
    assert {line["error"]["errorCode"] for line in errors[:3]} == {400}
    manifest = json.loads((folder / "manifest.json.out").read_text())
    assert manifest["totalRecordCount"] == 16 and manifest["successRecordCount"] == 13
    assert manifest["errorRecordCount"] == 3 and manifest["processedRecordCount"] == 16
    assert manifest["inputTokenCount"] == sum(o["usage"]["input_tokens"] for o in expected.values()) + \
        errors[3]["modelOutput"]["usage"]["input_tokens"]
    assert manifest["outputTokenCount"] > 0
    assert bedrock.list_tags_for_resource(resourceARN=arn)["tags"] == [{"key": "team", "value": "a"}]
    assert bedrock.get_model_invocation_job(jobIdentifier=arn.rsplit("/", 1)[-1])["jobArn"] == arn  # by id too
    # Another principal sees nothing of it.
    with pytest.raises(ClientError) as error:
        server.client("bedrock", principal="bob").get_model_invocation_job(jobIdentifier=arn)
    assert error.value.response["Error"]["Code"] == "ResourceNotFoundException"

    # Get and List: filters and pages over this module's jobs (the stopped one ended first).
    _wait(bedrock, jobs["stop"], lambda j: j["status"] == "Stopped")
    listed = bedrock.list_model_invocation_jobs(statusEquals="Completed")["invocationJobSummaries"]
    assert [job["jobName"] for job in listed] == ["answers-all"]
    assert listed[0]["successRecordCount"] == 13
    assert [job["jobName"] for job in bedrock.list_model_invocation_jobs(nameContains="stop")
            ["invocationJobSummaries"]] == ["stop-me"]
    first = bedrock.list_model_invocation_jobs(maxResults=1, sortOrder="Ascending")
    assert [job["jobName"] for job in first["invocationJobSummaries"]] == ["stop-me"]
    second = bedrock.list_model_invocation_jobs(maxResults=1, sortOrder="Ascending", nextToken=first["nextToken"])
    assert [job["jobName"] for job in second["invocationJobSummaries"]] == ["answers-all"]
    assert "nextToken" not in second
    assert server.client("bedrock", principal="bob").list_model_invocation_jobs()["invocationJobSummaries"] == []


def test_openai_batch_round_trip(server, jobs):
    client, batch = server.openai(), jobs["batch"]
    assert batch.status in ("validating", "in_progress") and batch.metadata == {"purpose": "test"}
    deadline = time.monotonic() + 180
    while batch.status not in ("completed", "failed", "cancelled", "expired") and time.monotonic() < deadline:
        time.sleep(0.3)
        batch = client.batches.retrieve(batch.id)
    assert batch.status == "completed", batch
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (4, 3, 1)
    answered = [json.loads(line) for line in client.files.content(batch.output_file_id).text.splitlines()]
    assert [line["custom_id"] for line in answered] == ["q0", "q1", "q2"]
    direct = client.chat.completions.create(model="tailor.tiny", max_tokens=10,
                                            messages=[{"role": "user", "content": QUESTIONS[1]}])
    assert answered[1]["response"]["status_code"] == 200
    assert answered[1]["response"]["body"]["choices"][0]["message"]["content"] == direct.choices[0].message.content
    failed = [json.loads(line) for line in client.files.content(batch.error_file_id).text.splitlines()]
    assert failed[0]["custom_id"] == "bad" and failed[0]["response"]["status_code"] == 400
    assert "n" in failed[0]["response"]["body"]["error"]["message"]
    assert client.files.retrieve(batch.output_file_id).purpose == "batch_output"
    assert [b.id for b in client.batches.list(limit=5)] == [batch.id]

    import openai

    with pytest.raises(openai.BadRequestError) as refused:
        client.batches.create(input_file_id=jobs["file"].id, endpoint="/v1/embeddings", completion_window="24h")
    assert refused.value.body["param"] == "endpoint"
    with pytest.raises(openai.BadRequestError) as refused:
        client.batches.create(input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h")
    assert refused.value.body["param"] == "input_file_id"
    with pytest.raises(openai.NotFoundError):
        server.openai(principal="bob").batches.retrieve(batch.id)
    with pytest.raises(openai.BadRequestError) as refused:  # as OpenAI answers cancelling a finished batch
        client.batches.cancel(batch.id)
    assert "completed" in refused.value.message


# ---------------------------------------------------------------------------------------------
# The converters, pure


def _row(status: str, phase: str = "done", **progress):
    from tailor.store.data_in_out import InvocationJob

    return InvocationJob(status=status, phase=phase, progress={"processedRecordCount": 0, **progress})


@pytest.mark.parametrize(("status", "phase", "progress", "bedrock", "openai"), [
    ("InProgress", "queued", {}, "Submitted", "validating"),
    ("InProgress", "running", {}, "InProgress", "in_progress"),
    ("InProgress", "running", {"finalizing": True}, "InProgress", "finalizing"),
    ("Completed", "done", {}, "Completed", "completed"),
    ("Completed", "done", {"expired": True, "processedRecordCount": 3}, "PartiallyCompleted", "expired"),
    ("Completed", "done", {"expired": True}, "Expired", "expired"),
    ("Failed", "done", {}, "Failed", "failed"),
    ("Stopping", "running", {}, "Stopping", "cancelling"),
    ("Stopped", "done", {}, "Stopped", "cancelled"),
])
def test_statuses_in_each_dialect(status, phase, progress, bedrock, openai):
    from botocore.loaders import Loader
    from openai.types import Batch

    from tailor.api.bedrock.invocation_jobs import bedrock_status
    from tailor.api.openai.batches import batch_status

    row = _row(status, phase, **progress)
    assert bedrock_status(row) == bedrock
    assert batch_status(row) == openai
    enum = Loader().load_service_model("bedrock", "service-2")["shapes"]["ModelInvocationJobStatus"]["enum"]
    assert bedrock in enum and openai in Batch.model_fields["status"].annotation.__args__


def test_create_requests_refuse_what_tailor_does_not_do():
    from tailor.api.bedrock.invocation_jobs import invocation_request
    from tailor.api.openai.batches import read_create
    from tailor.errors import InvalidInput

    params = {"jobName": "j", "roleArn": ROLE, "modelId": HAIKU,
              "inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://b/in.jsonl"}},
              "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://b/out/"}}}
    assert invocation_request(params).input_uri == "s3://b/in.jsonl"
    for extra, field in (({"modelInvocationType": "Converse"}, "modelInvocationType"),
                         ({"vpcConfig": {"subnetIds": ["s"], "securityGroupIds": ["g"]}}, "vpcConfig")):
        with pytest.raises(InvalidInput) as error:
            invocation_request({**params, **extra})
        assert error.value.param == field
    with pytest.raises(InvalidInput) as error:
        read_create({"input_file_id": "file-x", "endpoint": "/v1/chat/completions", "completion_window": "24h",
                     "model": "x"}, token=None)
    assert error.value.param == "model"
    with pytest.raises(InvalidInput) as error:
        read_create({"endpoint": "/v1/chat/completions", "completion_window": "24h"}, token=None)
    assert error.value.param == "input_file_id"


def test_a_job_past_its_timeout_writes_what_it_has_and_expires(tmp_path, tiny_models_dir):
    """The worker, in this process: a job whose timeoutDurationInHours has passed answers nothing
    more, writes its (empty) output and manifest, and reads Expired (OpenAI: expired)."""
    from datetime import timedelta

    from tailor.api.bedrock.invocation_jobs import invocation_job
    from tailor.api.openai.batches import batch_status
    from tailor.jobs.invocation import run_job
    from tailor.services.batch_inference import BedrockBatchRequest, create_bedrock_job
    from tailor.services.buckets import prepare_upload
    from tailor.settings import Settings
    from tailor.store.data_in_out import InvocationJob
    from tailor.store.db import open_store

    home = tiny_home(tmp_path / "home", tiny_models_dir)
    settings = Settings(home=home)
    store = open_store(settings)
    prepare_upload(store, settings, "alice", "s3://late-in/in.jsonl")
    (home / "buckets" / "late-in" / "in.jsonl").write_text(json.dumps(GOOD[0]) + "\n")
    arn = create_bedrock_job(store, settings, "alice", BedrockBatchRequest(
        name="late", role_arn=ROLE, model_id="tailor.tiny", input_uri="s3://late-in/in.jsonl",
        output_uri="s3://late-in/out/", default_max_tokens=16, timeout_hours=24))
    job_id = arn.rsplit("/", 1)[-1]
    with store.session() as session:
        session.get(InvocationJob, job_id).created_at -= timedelta(hours=25)
    assert run_job(store, settings, job_id, lambda: False) == "Completed"
    with store.session() as session:
        row = session.get(InvocationJob, job_id)
    assert invocation_job(row)["status"] == "Expired" and batch_status(row) == "expired"
    folder = home / "buckets" / "late-in" / "out" / job_id
    assert (folder / "in.jsonl.out").read_text() == ""
    assert json.loads((folder / "manifest.json.out").read_text())["totalRecordCount"] == 1
