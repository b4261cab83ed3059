"""The Bedrock control plane through real boto3 clients, a real server and real training, on each
database Tailor runs on: SQLite (the default) and a real PostgreSQL server (tests/backing/postgres.py)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.api.conftest import (
    ALIASES,
    COMMAND,
    HAIKU,
    TITAN,
    insecure_local_server,
    running_server,
)
from tests.conftest import SEED_002_SYSTEM

ROLE = "arn:aws:iam::000000000000:role/TailorCustomization"


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request, home, monkeypatch):
    """A real server on SQLite, then on PostgreSQL (a fresh database of its own). The test's own
    process reads the same database (``server.put`` registers buckets through the store)."""
    env = {}
    if request.param == "postgresql":
        env["TAILOR_DATABASE_URL"] = request.getfixturevalue("postgres_url")
        monkeypatch.setenv("TAILOR_DATABASE_URL", env["TAILOR_DATABASE_URL"])
    with running_server(home, ALIASES, env=env) as running:
        yield running


def faq_messages(bedrock_faq, count=None) -> list[dict]:
    pairs = json.loads(bedrock_faq.read_text())[:count]
    return [{"system": SEED_002_SYSTEM, "messages": [{"role": "user", "content": p["sentence1"]},
                                                     {"role": "assistant", "content": p["sentence2"]}]}
            for p in pairs]


def error_of(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


# Training to completion is SQLite's alone (a minute each); tests/api/test_two_servers.py trains on PostgreSQL.
SQLITE_ONLY = pytest.mark.parametrize("server", ["sqlite"], indirect=True)


@pytest.mark.slow
@SQLITE_ONLY
def test_seed_003_flow_fine_tunes_an_aliased_haiku_to_completion(server, bedrock_faq):
    bedrock = server.client()
    fine_tuning = bedrock.list_foundation_models(byCustomizationType="FINE_TUNING")["modelSummaries"]
    assert {HAIKU, "tailor.tiny"} <= {m["modelId"] for m in fine_tuning}

    train = server.put("s3://my-bucket/haiku/train.jsonl", faq_messages(bedrock_faq))
    validation = server.put("s3://my-bucket/haiku/validation.jsonl", faq_messages(bedrock_faq, 32))
    created = bedrock.create_model_customization_job(
        jobName="haiku-faq", customModelName="haiku-faq-model", roleArn=ROLE, baseModelIdentifier=HAIKU,
        customizationType="FINE_TUNING",
        hyperParameters={"epochCount": "3", "batchSize": "8", "learningRateMultiplier": "1",
                         "earlyStoppingThreshold": "0.001", "earlyStoppingPatience": "2"},
        trainingDataConfig={"s3Uri": train}, validationDataConfig={"validators": [{"s3Uri": validation}]},
        outputDataConfig={"s3Uri": "s3://my-bucket/haiku/output/"})
    arn = created["jobArn"]
    assert arn.startswith(f"arn:aws:bedrock:us-east-1:000000000000:model-customization-job/{HAIKU}/")

    job = server.wait_for(arn, {"Completed", "Failed"})
    assert job["status"] == "Completed", job.get("failureMessage")
    assert {phase: d["status"] for phase, d in job["statusDetails"].items()} == {
        "validationDetails": "Completed", "dataProcessingDetails": "Completed", "trainingDetails": "Completed"}
    assert job["trainingMetrics"]["trainingLoss"] > 0
    assert len(job["validationMetrics"]) == 1 and job["validationMetrics"][0]["validationLoss"] > 0
    assert job["hyperParameters"]["epochCount"] == "3" and job["endTime"] >= job["creationTime"]

    output = server.home / "buckets" / "my-bucket" / "haiku" / "output" / f"model-customization-job-{arn.rsplit('/', 1)[1]}"
    with open(output / "training_artifacts" / "step_wise_training_metrics.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 3 * 11 and list(rows[0]) == ["step_number", "epoch_number", "training_loss", "perplexity"]
    assert (output / "validation_artifacts" / "post_fine_tuning_validation" / "validation_metrics.csv").is_file()

    model = bedrock.get_custom_model(modelIdentifier=job["outputModelArn"])
    assert (model["modelStatus"], model["modelName"], model["jobArn"]) == ("Active", "haiku-faq-model", arn)
    assert [m["modelArn"] for m in bedrock.list_custom_models()["modelSummaries"]] == [job["outputModelArn"]]
    summaries = bedrock.list_model_customization_jobs(statusEquals="Completed")["modelCustomizationJobSummaries"]
    assert [s["jobArn"] for s in summaries] == [arn]


@pytest.mark.slow
@SQLITE_ONLY
def test_seed_001_prompt_completion_and_cpt(server):
    bedrock = server.client()
    train = server.put("s3://bkt/sum/train.jsonl", [{"prompt": f"Summarize the following conversation.\n\n#Person1#: hi {i}",
                                                    "completion": f"Person1 greets {i}."} for i in range(32)])
    arn = bedrock.create_model_customization_job(
        jobName="cohere-sum", customModelName="cohere-sum", roleArn=ROLE, baseModelIdentifier=COMMAND,
        hyperParameters={"epochCount": "1", "batchSize": "8", "learningRate": "0.00001"},
        trainingDataConfig={"s3Uri": train}, outputDataConfig={"s3Uri": "s3://bkt/sum/out"})["jobArn"]
    text = server.put("s3://bkt/letters/train.jsonl", [{"input": f"Dear shareholders, year {i} was good."} for i in range(16)])
    cpt = bedrock.create_model_customization_job(
        jobName="titan-cpt", customModelName="titan-cpt", roleArn=ROLE, baseModelIdentifier=TITAN,
        customizationType="CONTINUED_PRE_TRAINING", hyperParameters={"epochCount": "1"},
        trainingDataConfig={"s3Uri": text}, outputDataConfig={"s3Uri": "s3://bkt/letters/out"})["jobArn"]
    for job_arn in (arn, cpt):
        job = server.wait_for(job_arn, {"Completed", "Failed"})
        assert job["status"] == "Completed", job.get("failureMessage")
    assert bedrock.get_model_customization_job(jobIdentifier="titan-cpt")["customizationType"] == "CONTINUED_PRE_TRAINING"


@pytest.mark.slow
def test_invalid_data_fails_the_job_with_line_numbers_and_trains_nothing(server):
    bedrock = server.client()
    lines = [{"prompt": "q", "completion": "a"}] * 8 + [{"prompt": "q"}]
    train = server.put("s3://bkt/bad.jsonl", lines)
    arn = bedrock.create_model_customization_job(
        jobName="bad-data", customModelName="bad-data", roleArn=ROLE, baseModelIdentifier="tailor.tiny",
        trainingDataConfig={"s3Uri": train}, outputDataConfig={"s3Uri": "s3://bkt/out"})["jobArn"]
    job = server.wait_for(arn, {"Completed", "Failed"})
    assert job["status"] == "Failed"
    assert "line 9: completion" in job["failureMessage"]
    assert job["statusDetails"]["validationDetails"]["status"] == "Failed"
    assert job["statusDetails"]["trainingDetails"]["status"] == "NotStarted"
    assert "outputModelArn" not in job


def test_bad_requests_get_the_original_error_codes(server):
    bedrock = server.client()
    base = dict(jobName="j1", customModelName="m1", roleArn=ROLE, baseModelIdentifier=HAIKU,
                trainingDataConfig={"s3Uri": "s3://bkt/t.jsonl"}, outputDataConfig={"s3Uri": "s3://bkt/o"})
    code, message = error_of(lambda: bedrock.create_model_customization_job(
        **base, hyperParameters={"epochCount": "11", "batchSize": "2"}))
    assert code == "ValidationException"
    assert "epochCount: must be between 1 and 10; got 11" in message and "batchSize" in message
    code, message = error_of(lambda: bedrock.create_model_customization_job(**{**base, "jobName": "bad name!"}))
    assert code == "ValidationException" and "jobName" in message
    code, message = error_of(lambda: bedrock.create_model_customization_job(
        **{**base, "baseModelIdentifier": "meta.llama3-1-8b-instruct-v1:0:128k"}))
    assert code == "ValidationException" and "TAILOR_MODEL_ALIASES" in message
    code, _ = error_of(lambda: bedrock.create_model_customization_job(**base, customizationType="DISTILLATION"))
    assert code == "ValidationException"
    code, _ = error_of(lambda: bedrock.get_model_customization_job(jobIdentifier="no-such-job"))
    assert code == "ResourceNotFoundException"
    code, _ = error_of(lambda: bedrock.stop_model_customization_job(jobIdentifier="no-such-job"))
    assert code == "ResourceNotFoundException"


def test_signatures_idempotency_isolation_pagination_and_stopping_queued_jobs(server):
    alice, bob = server.client(principal="alice"), server.client(principal="bob")
    code, _ = error_of(lambda: server.client(secret="wrong-secret").list_model_customization_jobs())
    assert code == "AccessDeniedException"

    train = server.put("s3://bkt/t.jsonl", [{"prompt": "q", "completion": "a"}] * 8)
    request = dict(customModelName="m", roleArn=ROLE, baseModelIdentifier="tailor.tiny",
                   hyperParameters={"epochCount": "100"},
                   trainingDataConfig={"s3Uri": train}, outputDataConfig={"s3Uri": "s3://bkt/o"})
    first = alice.create_model_customization_job(jobName="job-0", clientRequestToken="token-0",
                                                 **{**request, "customModelName": "m-0"})["jobArn"]
    again = alice.create_model_customization_job(jobName="job-0", clientRequestToken="token-0",
                                                 **{**request, "customModelName": "m-0"})["jobArn"]
    assert again == first
    arns = [first] + [alice.create_model_customization_job(jobName=f"job-{i}", **{**request, "customModelName": f"m-{i}"})["jobArn"]
                      for i in range(1, 5)]
    code, _ = error_of(lambda: alice.create_model_customization_job(jobName="job-1", **{**request, "customModelName": "x"}))
    assert code == "ConflictException"

    # Pages of 2, newest first, cover the five jobs once each.
    seen, token = [], None
    while True:
        page = alice.list_model_customization_jobs(maxResults=2, **({"nextToken": token} if token else {}))
        seen += [s["jobArn"] for s in page["modelCustomizationJobSummaries"]]
        token = page.get("nextToken")
        if not token:
            break
    assert seen == arns[::-1]
    oldest = alice.list_model_customization_jobs(sortOrder="Ascending", maxResults=1)["modelCustomizationJobSummaries"]
    assert oldest[0]["jobArn"] == first

    # Another principal sees none of it.
    assert bob.list_model_customization_jobs()["modelCustomizationJobSummaries"] == []
    code, _ = error_of(lambda: bob.get_model_customization_job(jobIdentifier=first))
    assert code == "ResourceNotFoundException"

    # Tags on a job, then stop everything: queued jobs stop at once, the running one within seconds.
    alice.tag_resource(resourceARN=first, tags=[{"key": "team", "value": "faq"}])
    assert alice.list_tags_for_resource(resourceARN=first)["tags"] == [{"key": "team", "value": "faq"}]
    for arn in arns:
        alice.stop_model_customization_job(jobIdentifier=arn)
    for arn in arns:
        assert server.wait_for(arn, {"Stopped"}, timeout=60)["status"] == "Stopped"
    code, _ = error_of(lambda: alice.stop_model_customization_job(jobIdentifier=first))
    assert code == "ConflictException"


def test_insecure_local_binds_to_loopback_only_and_names_callers_by_key(home):
    done = subprocess.run([sys.executable, "-m", "tailor", "serve", "--insecure-local", "--host", "0.0.0.0"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "binds only to loopback" in done.stderr

    with insecure_local_server(home) as (port, _):
        def client(key: str):
            return boto3.client("bedrock", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                                aws_access_key_id=key, aws_secret_access_key="anything")

        train = home.parent / "t.jsonl"
        train.write_text('{"prompt": "q", "completion": "a"}\n' * 8)
        uploaded = subprocess.run([sys.executable, "-m", "tailor", "data", "upload", str(train), "s3://bkt/t.jsonl",
                                   "--principal", "CAROL"], capture_output=True, text=True, timeout=60)
        assert uploaded.returncode == 0, uploaded.stderr
        client("CAROL").create_model_customization_job(
            jobName="carol-job", customModelName="carol-model", roleArn=ROLE, baseModelIdentifier="tailor.tiny",
            hyperParameters={"epochCount": "1"}, trainingDataConfig={"s3Uri": "s3://bkt/t.jsonl"},
            outputDataConfig={"s3Uri": "s3://bkt/o"})
        assert [j["jobName"] for j in client("CAROL").list_model_customization_jobs()["modelCustomizationJobSummaries"]] == ["carol-job"]
        assert client("DAVE").list_model_customization_jobs()["modelCustomizationJobSummaries"] == []
        client("CAROL").stop_model_customization_job(jobIdentifier="carol-job")
    output = (home / "server.log").read_text()
    assert "WARNING: --insecure-local: requests are NOT authenticated" in output


def test_an_unwritable_output_location_is_refused_before_any_work(server):
    train = server.put("s3://bkt/t.jsonl", [{"prompt": "q", "completion": "a"}] * 8)
    (server.home / "buckets" / "blocked").write_text("a file where the bucket folder should be")
    (server.home / "buckets" / "bkt" / "taken").write_text("a file where the output folder should be")
    request = dict(customModelName="no-output", roleArn=ROLE, baseModelIdentifier="tailor.tiny",
                   hyperParameters={"epochCount": "1"}, trainingDataConfig={"s3Uri": train})
    for position, output in enumerate(("s3://blocked/out", "s3://bkt/taken/out", "s3://bkt/a/../../x")):
        code, message = error_of(lambda: server.client().create_model_customization_job(
            jobName=f"no-output-{position}", outputDataConfig={"s3Uri": output}, **request))
        assert code == "ValidationException", (output, message)
        assert message.startswith("outputDataConfig.s3Uri: "), message
        assert str(server.home) not in message  # no server paths in what a caller sees
    assert server.client().list_model_customization_jobs()["modelCustomizationJobSummaries"] == []
