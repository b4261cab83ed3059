"""Distillation and invocation logs as training data, through boto3 against a real server.

The proof: a teacher that knows the FAQ (tailor.tiny fine-tuned on the 48 pairs through boto3)
answers the 48 questions as prompts only; the student (tailor.tiny again) learns from its answers;
asked the 16 held-out paraphrased questions greedily, the student answers at least 80 % of them
exactly as the teacher does. On tailor.tiny this holds because the teacher reproduces its 48
answers word for word, so the student's run sees the teacher's own data with the same
hyperparameters and seed: anything lost on the way (a prompt, the system prompt, the answer's
length, greedy decoding) shows up as disagreement. docs/distillation.md has the measured figures.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from importlib import resources

import pytest
from botocore.exceptions import ClientError

from tailor import assets
from tests.api.conftest import ALIASES, running_server
from tests.conftest import tiny_home

SYSTEM = "You are Tailor's help desk. Answer questions about Tailor briefly and exactly."
ROLE = "arn:aws:iam::000000000000:role/tailor"
TEACHER_FIELD = "customizationConfig.distillationConfig.teacherModelConfig.teacherModelIdentifier"
LOGS_FIELD = "trainingDataConfig.invocationLogsConfig"
# The smallest run measured to make tailor.tiny say all 48 answers word for word (15 epochs: 24 of
# 48; then the student learns something else than the teacher knows, and agreement falls).
HYPERPARAMETERS = {"epochCount": "20"}
MAX_TOKENS = 128
LOG_BYTES_LIMIT = 100_000  # TAILOR_INVOCATION_LOG_TRAINING_BYTES for this module's server


def _pairs(name: str) -> list[dict]:
    return json.loads(resources.files(assets).joinpath(name).read_text())


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_models_dir):
    home = tiny_home(tmp_path_factory.mktemp("distillation") / "home", tiny_models_dir)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TAILOR_INVOCATION_LOG_TRAINING_BYTES", str(LOG_BYTES_LIMIT))
        with running_server(home, ALIASES) as running:
            yield running


def _wait(server, arn: str, timeout: float = 600) -> dict:
    job = server.wait_for(arn, {"Completed", "Failed", "Stopped"}, timeout=timeout)
    assert job["status"] == "Completed", job.get("failureMessage")
    return job


def _error(call) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value


@pytest.fixture(scope="module")
def distilled(server):
    """The teacher fine-tuned on the FAQ, and the student distilled from it on the prompts alone."""
    bedrock = server.client()
    pairs = _pairs("tailor-faq.json")
    train = server.put("s3://alice-distil/faq.jsonl", [
        {"system": SYSTEM, "messages": [{"role": "user", "content": p["question"]},
                                        {"role": "assistant", "content": p["answer"]}]} for p in pairs])
    teacher_job = bedrock.create_model_customization_job(
        jobName="faq-teacher", customModelName="faq-teacher", roleArn=ROLE, baseModelIdentifier="tailor.tiny",
        trainingDataConfig={"s3Uri": train}, outputDataConfig={"s3Uri": "s3://alice-distil/out/"},
        hyperParameters=HYPERPARAMETERS)["jobArn"]
    teacher = _wait(server, teacher_job)["outputModelArn"]

    prompts = server.put("s3://alice-distil/prompts.jsonl", [
        {"schemaVersion": "bedrock-conversation-2024", "system": [{"text": SYSTEM}],
         "messages": [{"role": "user", "content": [{"text": p["question"]}]}]} for p in pairs])
    started = datetime.now(UTC)
    student_job = bedrock.create_model_customization_job(
        jobName="faq-student", customModelName="faq-student", roleArn=ROLE, baseModelIdentifier="tailor.tiny",
        customizationType="DISTILLATION", trainingDataConfig={"s3Uri": prompts},
        outputDataConfig={"s3Uri": "s3://alice-distil/out/"}, hyperParameters=HYPERPARAMETERS,
        customizationConfig={"distillationConfig": {"teacherModelConfig": {
            "teacherModelIdentifier": teacher, "maxResponseLengthForInference": MAX_TOKENS}}})["jobArn"]
    job = _wait(server, student_job)
    return {"teacher": teacher, "student": job["outputModelArn"], "job": job, "started": started}


def _answers(server, model_arn: str, name: str, questions: list[str]) -> list[str]:
    """``questions`` asked greedily of ``model_arn``, deployed for the purpose, concurrently (the
    engine batches them)."""
    bedrock, runtime = server.client(), server.client("bedrock-runtime")
    arn = bedrock.create_custom_model_deployment(modelDeploymentName=name, modelArn=model_arn)[
        "customModelDeploymentArn"]
    deadline = time.monotonic() + 180
    while bedrock.get_custom_model_deployment(customModelDeploymentIdentifier=arn)["status"] != "Active":
        assert time.monotonic() < deadline, f"deployment {name} not Active after 180 s"
        time.sleep(0.5)

    def ask(question: str) -> str:
        answer = runtime.converse(modelId=arn, system=[{"text": SYSTEM}],
                                  messages=[{"role": "user", "content": [{"text": question}]}],
                                  inferenceConfig={"maxTokens": MAX_TOKENS, "temperature": 0.0})
        return answer["output"]["message"]["content"][0]["text"]

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(ask, questions))


def test_a_student_distilled_from_a_teacher_answers_held_out_questions_as_the_teacher_does(server, distilled):
    job = distilled["job"]
    assert job["customizationType"] == "DISTILLATION"
    assert job["customizationConfig"] == {"distillationConfig": {"teacherModelConfig": {
        "teacherModelIdentifier": distilled["teacher"], "maxResponseLengthForInference": MAX_TOKENS}}}
    assert {phase: details["status"] for phase, details in job["statusDetails"].items()} == {
        "validationDetails": "Completed", "dataProcessingDetails": "Completed", "trainingDetails": "Completed"}

    # The teacher's answers are a dataset in the job's output: the 48 prompts, each answered.
    job_id = job["jobArn"].rsplit("/", 1)[1]
    dataset = (server.home / "buckets" / "alice-distil" / "out" / f"model-customization-job-{job_id}"
               / "distillation-data" / "teacher-responses.jsonl")
    records = [json.loads(line) for line in dataset.read_text().splitlines()]
    pairs = _pairs("tailor-faq.json")
    assert [r["messages"][0]["content"] for r in records] == [p["question"] for p in pairs]
    assert all(r["system"] == SYSTEM and r["messages"][1]["role"] == "assistant" for r in records)
    taught = sum(r["messages"][1]["content"] == p["answer"] for r, p in zip(records, pairs))

    # Its progress was reported as it went (events, through the OpenAI door's view of the job).
    events = [e.message for e in server.openai().fine_tuning.jobs.list_events(job_id, limit=500)]
    assert "The teacher is answering 48 prompts." in events
    assert "The teacher answered 48 of 48 prompts." in events

    held_out = [p["question"] for p in _pairs("tailor-faq-validation.json")]
    teacher = _answers(server, distilled["teacher"], "teacher", held_out)
    student = _answers(server, distilled["student"], "student", held_out)
    agreed = sum(t == s for t, s in zip(teacher, student))
    print(f"teacher reproduced {taught}/48 taught answers; student agrees on {agreed}/{len(held_out)} held-out")
    assert agreed >= 0.8 * len(held_out), list(zip(teacher, student))


def test_a_teacher_the_caller_may_not_use_is_refused_at_create_naming_the_field(server, distilled):
    bob = server.client(principal="bob")
    prompts = server.put("s3://bob-distil/prompts.jsonl", [
        {"schemaVersion": "bedrock-conversation-2024", "messages": [{"role": "user", "content": [{"text": "Hi?"}]}]}
    ] * 8, principal="bob")

    def create(teacher: str):
        return bob.create_model_customization_job(
            jobName="bob-student", customModelName="bob-student", roleArn=ROLE, baseModelIdentifier="tailor.tiny",
            customizationType="DISTILLATION", trainingDataConfig={"s3Uri": prompts},
            outputDataConfig={"s3Uri": "s3://bob-distil/out/"},
            customizationConfig={"distillationConfig": {"teacherModelConfig": {"teacherModelIdentifier": teacher}}})

    for teacher in (distilled["teacher"],  # alice's model
                    "faq-teacher",  # ... by its name
                    "no.such-model-v1:0",
                    "openai:gpt-4o@https://api.openai.com/v1"):  # an address the operator did not register
        error = _error(lambda: create(teacher))
        assert error.response["Error"]["Code"] == "ValidationException", teacher
        assert TEACHER_FIELD in error.response["Error"]["Message"], teacher
    assert bob.list_model_customization_jobs()["modelCustomizationJobSummaries"] == []


def _log_record(request_id: str, question: str, answer: str, project: str) -> dict:
    from tailor.wire.invocation_logs import invocation_record

    return invocation_record(
        request_id=request_id, timestamp=datetime.now(UTC), account_id="000000000000",
        identity_arn="arn:aws:iam::000000000000:user/alice", region="us-east-1", operation="Converse",
        model_id="tailor.tiny", input_body={"system": [{"text": SYSTEM}], "messages": [
            {"role": "user", "content": [{"text": question}]}]},
        output_body={"output": {"message": {"role": "assistant", "content": [{"text": answer}]}},
                     "stopReason": "end_turn"},
        input_tokens=10, output_tokens=10, request_metadata={"project": project})


def test_invocation_logs_train_when_their_records_match_and_are_refused_when_none_do(server):
    bedrock = server.client()
    pairs = _pairs("tailor-faq.json")[:12]
    logs = [_log_record(f"r{i}", p["question"], p["answer"], "faq" if i < 10 else "other")
            for i, p in enumerate(pairs)]
    server.put("s3://alice-logs/AWSLogs/000000000000/BedrockModelInvocationLogs/us-east-1/a.json", logs)

    def create(name: str, kind: str, use_prompt_response: bool, filters: dict | None, **more):
        config = {"invocationLogSource": {"s3Uri": "s3://alice-logs/AWSLogs/"}, "usePromptResponse": use_prompt_response}
        if filters is not None:
            config["requestMetadataFilters"] = filters
        return bedrock.create_model_customization_job(
            jobName=name, customModelName=name, roleArn=ROLE, baseModelIdentifier="tailor.tiny",
            customizationType=kind, trainingDataConfig={"invocationLogsConfig": config},
            outputDataConfig={"s3Uri": "s3://alice-logs/out/"}, **more)

    error = _error(lambda: create("none", "FINE_TUNING", True, {"equals": {"project": "nothing"}}))
    assert error.response["Error"]["Code"] == "ValidationException"
    assert f"{LOGS_FIELD}.requestMetadataFilters: matched 0 of 12 log records" in error.response["Error"]["Message"]

    error = _error(lambda: create("no-answers", "FINE_TUNING", False, None))
    assert error.response["Error"]["Code"] == "ValidationException"
    assert f"{LOGS_FIELD}.usePromptResponse: must be true for FINE_TUNING" in error.response["Error"]["Message"]

    server.put("s3://bob-logs/a.json", logs, principal="bob")
    error = _error(lambda: bedrock.create_model_customization_job(
        jobName="not-hers", customModelName="not-hers", roleArn=ROLE, baseModelIdentifier="tailor.tiny",
        trainingDataConfig={"invocationLogsConfig": {"invocationLogSource": {"s3Uri": "s3://bob-logs/"},
                                                     "usePromptResponse": True}},
        outputDataConfig={"s3Uri": "s3://alice-logs/out/"}))
    assert error.response["Error"]["Code"] == "AccessDeniedException"
    assert f"{LOGS_FIELD}.invocationLogSource.s3Uri" in error.response["Error"]["Message"]

    # More log bytes than the server reads as training data: refused before any is read.
    server.put("s3://alice-logs/many/AWSLogs/a.json", logs * (LOG_BYTES_LIMIT // len(json.dumps(logs)) + 1))
    error = _error(lambda: bedrock.create_model_customization_job(
        jobName="too-many", customModelName="too-many", roleArn=ROLE, baseModelIdentifier="tailor.tiny",
        trainingDataConfig={"invocationLogsConfig": {"invocationLogSource": {"s3Uri": "s3://alice-logs/many/"},
                                                     "usePromptResponse": True}},
        outputDataConfig={"s3Uri": "s3://alice-logs/out/"}))
    assert error.response["Error"]["Code"] == "ValidationException"
    assert "more than this server reads as training data" in error.response["Error"]["Message"]

    # Ten records match; they become the job's training file, counted in its events. (Stopped at
    # once: training on them is fine-tuning, tested elsewhere.)
    arn = create("from-logs", "FINE_TUNING", True, {"orAll": [{"equals": {"project": "faq"}}]})["jobArn"]
    bedrock.stop_model_customization_job(jobIdentifier=arn)
    job = bedrock.get_model_customization_job(jobIdentifier=arn)
    assert job["trainingDataConfig"] == {"invocationLogsConfig": {
        "invocationLogSource": {"s3Uri": "s3://alice-logs/AWSLogs/"}, "usePromptResponse": True,
        "requestMetadataFilters": {"orAll": [{"equals": {"project": "faq"}}]}}}
    events = [e.message for e in server.openai().fine_tuning.jobs.list_events(arn.rsplit("/", 1)[1], limit=100)]
    assert ("Training data from invocation logs: 1 files, 12 records, 10 matched the filters, 10 training "
            "records written.") in events
    training = server.home / "jobs" / arn.rsplit("/", 1)[1] / "training-data" / "training.jsonl"
    records = [json.loads(line) for line in training.read_text().splitlines()]
    assert records[0] == {"system": SYSTEM, "messages": [{"role": "user", "content": pairs[0]["question"]},
                                                         {"role": "assistant", "content": pairs[0]["answer"]}]}

    # Distillation takes the prompts alone: the teacher answers them.
    arn = create("distil-logs", "DISTILLATION", False, {"notEquals": {"project": "faq"}}, customizationConfig={
        "distillationConfig": {"teacherModelConfig": {"teacherModelIdentifier": "tailor.tiny"}}})["jobArn"]
    bedrock.stop_model_customization_job(jobIdentifier=arn)
    prompts = server.home / "jobs" / arn.rsplit("/", 1)[1] / "training-data" / "invocation-logs.jsonl"
    assert [json.loads(line) for line in prompts.read_text().splitlines()] == [
        {"schemaVersion": "bedrock-conversation-2024", "system": [{"text": SYSTEM}],
         "messages": [{"role": "user", "content": [{"text": p["question"]}]}]} for p in pairs[10:]]


def test_a_distillation_job_pauses_resumes_without_asking_the_teacher_again_and_stops(server):
    bedrock, openai = server.client(), server.openai()
    prompts = server.put("s3://alice-pause/prompts.jsonl", [
        {"schemaVersion": "bedrock-conversation-2024",
         "messages": [{"role": "user", "content": [{"text": p["question"]}]}]} for p in _pairs("tailor-faq.json")[:8]])

    def create(name: str) -> str:
        return bedrock.create_model_customization_job(
            jobName=name, customModelName=name, roleArn=ROLE, baseModelIdentifier="tailor.tiny",
            customizationType="DISTILLATION", trainingDataConfig={"s3Uri": prompts},
            outputDataConfig={"s3Uri": "s3://alice-pause/out/"}, hyperParameters={"epochCount": "40"},
            customizationConfig={"distillationConfig": {"teacherModelConfig": {
                "teacherModelIdentifier": "tailor.tiny", "maxResponseLengthForInference": 16}}})["jobArn"]

    def training(arn: str) -> None:  # the student's phase has begun
        deadline = time.monotonic() + 300
        while bedrock.get_model_customization_job(jobIdentifier=arn)["statusDetails"]["trainingDetails"][
                "status"] != "InProgress":
            assert time.monotonic() < deadline
            time.sleep(0.2)

    arn = create("pause-me")
    job_id = arn.rsplit("/", 1)[1]
    training(arn)
    openai.fine_tuning.jobs.pause(job_id)
    deadline = time.monotonic() + 120
    while openai.fine_tuning.jobs.retrieve(job_id).status != "paused":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    openai.fine_tuning.jobs.resume(job_id)
    _wait(server, arn)
    events = [e.message for e in openai.fine_tuning.jobs.list_events(job_id, limit=500)]
    assert events.count("The teacher is answering 8 prompts.") == 1  # its answers were kept
    assert any(e.startswith("Paused at step") for e in events)
    assert any(e.startswith("Resuming from the checkpoint at step") for e in events)

    arn = create("stop-me")
    training(arn)
    bedrock.stop_model_customization_job(jobIdentifier=arn)
    job = server.wait_for(arn, {"Stopped", "Completed", "Failed"}, timeout=120)
    assert job["status"] == "Stopped" and job["statusDetails"]["trainingDetails"]["status"] == "Stopped"
