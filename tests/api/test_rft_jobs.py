"""Reinforcement fine-tuning jobs through an unchanged boto3 client: graders registered on the
server's machine and referenced by their Lambda ARN; the job's live rewards through the OpenAI
client's ``fine_tuning.jobs.list_events``; a grader that throws; a job that continues from an SFT
custom model and beats it on held-out prompts; and a judge-graded job."""

from __future__ import annotations

import csv
import importlib.util
import json
import time

import pytest
from botocore.exceptions import ClientError

from tailor import rft_demo
from tests.api.conftest import ALIASES, running_server
from tests.conftest import tiny_home

pytestmark = pytest.mark.slow

ROLE = "arn:aws:iam::000000000000:role/TailorCustomization"
JUDGE = "meta.llama3-1-8b-instruct-v1:0:128k"  # the server maps it (TAILOR_MODEL_ALIASES) to a test judge
# Rewards short answers; throws on answers whose length is a multiple of 3 (those score 0, counted).
THROWING = '''
def lambda_handler(event, context):
    results = []
    for s in event:
        text = s["messages"][-1]["content"]
        if len(text) % 3 == 0:
            raise ValueError(f"cannot grade an answer of {len(text)} characters")
        results.append({"id": s["id"], "aggregate_reward_score": max(0.0, 1 - len(text) / 12)})
    return results
'''


def rft_request(name: str, base: str, grader_arn: str, train_uri: str, hyperparameters: dict,
                validation_uri: str | None = None) -> dict:
    request = dict(
        jobName=name, customModelName=f"{name}-model", roleArn=ROLE, baseModelIdentifier=base,
        customizationType="REINFORCEMENT_FINE_TUNING", trainingDataConfig={"s3Uri": train_uri},
        outputDataConfig={"s3Uri": "s3://rft/output/"},
        customizationConfig={"rftConfig": {"graderConfig": {"lambdaGrader": {"lambdaArn": grader_arn}},
                                           "hyperParameters": hyperparameters}})
    if validation_uri:
        request["validationDataConfig"] = {"validators": [{"s3Uri": validation_uri}]}
    return request


def register(server, name: str, source: str, tmp_path, **options):
    from tailor.graders.registry import create_grader
    from tailor.settings import Settings
    from tailor.store.db import open_store

    settings = Settings(home=server.home)
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    return create_grader(open_store(settings), settings, name, file=path, **options)


def openai_client(server):
    from openai import OpenAI

    access_key_id, secret = server.keys["alice"]
    return OpenAI(base_url=server.endpoint + "/v1", api_key=f"{access_key_id}.{secret}", max_retries=0)


def all_events(client, job_id: str) -> list:
    """Every event, oldest first, through the OpenAI client's pagination."""
    return list(client.fine_tuning.jobs.list_events(job_id, limit=50))[::-1]


def metrics(events: list, key: str, of: str | None = None) -> list[float]:
    """``key`` of every metrics event, oldest first; ``of`` keeps only events that carry that key too
    (training steps carry critic_rewards_mean, held-out evaluations val_score_rewards_mean_at_1)."""
    return [event.data[key] for event in events
            if event.type == "metrics" and key in event.data and (of or key) in event.data]


def output_folder(server, job_arn: str):
    job_id = job_arn.rsplit("/", 1)[1]
    return server.home / "buckets" / "rft" / "output" / f"model-customization-job-{job_id}"


def test_a_job_survives_a_grader_that_throws_and_shows_its_rewards_as_events(server, tmp_path):
    grader = register(server, "throwing", THROWING, tmp_path)
    prompts = [{"messages": [{"role": "user", "content": f"Say something about {i}."}], "reference_answer": "short"}
               for i in range(20)]
    uri = server.put("s3://rft/train.jsonl", prompts)
    bedrock = server.client()
    request = rft_request("rft-throwing", "tailor.tiny", grader.arn, uri,
                          {"epochCount": 1, "batchSize": 16, "trainingSamplePerPrompt": 8, "inferenceMaxTokens": 8,
                           "evalInterval": 4})

    with pytest.raises(ClientError) as caught:  # an unregistered grader is refused before any work
        bedrock.create_model_customization_job(**{**request, "customizationConfig": {"rftConfig": {
            "graderConfig": {"lambdaGrader": {"lambdaArn": grader.arn.replace("throwing", "nope")}}}}})
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert "tailor graders create" in caught.value.response["Error"]["Message"]

    job = bedrock.create_model_customization_job(**request)
    done = server.wait_for(job["jobArn"], {"Completed", "Failed"})
    assert done["status"] == "Completed", done.get("failureMessage")
    assert done["customizationConfig"]["rftConfig"]["graderConfig"]["lambdaGrader"]["lambdaArn"] == grader.arn
    assert "trainingLoss" in done["trainingMetrics"]

    output = output_folder(server, job["jobArn"])
    with open(output / "training_artifacts" / "step_wise_training_metrics.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 9 and all(0 <= float(row["critic/rewards/mean"]) <= 1 for row in rows)
    assert sum(int(row["grader/error_count"]) for row in rows) > 0  # thrown, scored 0, counted: the job lived
    with open(output / "validation_artifacts" / "post_fine_tuning_validation" / "validation_metrics.csv") as file:
        assert [row["step"] for row in csv.DictReader(file)] == ["0", "4", "8", "9"]

    # The same numbers through the OpenAI-compatible events API, by the job's id, name or ARN.
    client = openai_client(server)
    job_id = job["jobArn"].rsplit("/", 1)[1]
    events = all_events(client, job_id)
    assert [e.message for e in events if e.type == "message"][-1] == "The job has successfully completed."
    assert metrics(events, "critic_rewards_mean") == [float(row["critic/rewards/mean"]) for row in rows]
    assert metrics(events, "grader_error_count", of="critic_rewards_mean") == [
        float(row["grader/error_count"]) for row in rows]
    assert [e.data["total_steps"] for e in events if e.type == "metrics"][0] == 9
    assert len(metrics(events, "val_score_rewards_mean_at_1")) == 4
    newest = client.fine_tuning.jobs.list_events("rft-throwing", limit=2)
    assert [e.id for e in newest.data] == [e.id for e in events[::-1][:2]] and newest.has_more
    assert client.fine_tuning.jobs.list_events(job["jobArn"], limit=1).data[0].id == events[-1].id
    model = bedrock.get_custom_model(modelIdentifier=done["outputModelArn"])
    assert model["customizationType"] == "REINFORCEMENT_FINE_TUNING"


# ---------------------------------------------------------------------------------------------
# From an SFT custom model: the proof of learning through the API, and a judge-graded job.


@pytest.fixture(scope="module")
def judged(tmp_path_factory, tiny_models_dir):
    """A server whose JUDGE is the tiny model taught to rate, in the instruction-following judge
    template's exact prompt, a bare fruit name 10 and the sentence style 2 (a test judge: it knows
    nothing else), plus the task's files in its buckets."""
    from tailor.evaluate.judge import FORM, SYSTEM
    from tailor.graders.contract import sample
    from tailor.graders.template_files import template_path
    from tailor.settings import Settings
    from tailor.train import sft
    from tailor.train.spec import TrainSpec

    root = tmp_path_factory.mktemp("rft-jobs")
    home = tiny_home(root / "home", tiny_models_dir)
    files = rft_demo.write_task(root / "task")

    spec = importlib.util.spec_from_file_location("judge_template", template_path("judge_instruction_following"))
    template = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(template)
    records = []
    for i, line in enumerate(files.rft.read_text().splitlines()[:40]):
        record = json.loads(line)
        fruit = record["reference_answer"]
        for answer, verdict in ((fruit, "The response gives the name alone, as asked.\nRating: 10"),
                                (f"The fruit is {fruit}.", "The response adds words nobody asked for.\nRating: 2")):
            prompt = template.build_prompt(sample(record, answer, f"judge-{i}"))
            records.append({"system": SYSTEM, "messages": [{"role": "user", "content": f"{prompt.strip()}\n\n{FORM}"},
                                                           {"role": "assistant", "content": verdict}]})
    (root / "judge.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    judge = sft.run(TrainSpec("FINE_TUNING", "tailor.tiny", str(root / "judge.jsonl"), root / "judge",
                              hyperparameters={"epochCount": "6", "batchSize": "8"}, progress=False),
                    Settings(home=home)).output_dir
    with running_server(home, {**ALIASES, JUDGE: str(judge / "model")}) as server:
        yield server, files


@pytest.fixture(scope="module")
def sft_start(judged):
    """The SFT starting point, trained by a boto3 job: a custom model."""
    server, files = judged
    uri = server.put("s3://rft/sft.jsonl", [json.loads(line) for line in files.sft.read_text().splitlines()])
    job = server.client().create_model_customization_job(
        jobName="sft-start", customModelName="fruit-sft", roleArn=ROLE, baseModelIdentifier="tailor.tiny",
        trainingDataConfig={"s3Uri": uri}, outputDataConfig={"s3Uri": "s3://rft/output/"},
        hyperParameters=rft_demo.SFT_HYPERPARAMETERS)
    done = server.wait_for(job["jobArn"], {"Completed", "Failed"})
    assert done["status"] == "Completed", done.get("failureMessage")
    return done["outputModelArn"]


def test_an_rft_job_from_an_sft_custom_model_beats_it_on_held_out_prompts(judged, sft_start, tmp_path):
    from tailor.settings import Settings

    server, files = judged
    grader = register(server, "exact-answer", files.grader.read_text(), tmp_path)
    train = server.put("s3://rft/rft.jsonl", [json.loads(line) for line in files.rft.read_text().splitlines()])
    held_out = server.put("s3://rft/held_out.jsonl",
                          [json.loads(line) for line in files.held_out.read_text().splitlines()])
    bedrock, client = server.client(), openai_client(server)
    job = bedrock.create_model_customization_job(**rft_request(
        "rft-exact", sft_start, grader.arn, train, rft_demo.RFT_HYPERPARAMETERS, held_out))
    job_id = job["jobArn"].rsplit("/", 1)[1]
    # The contract's baseModelArn is a foundation model's: the custom model's own base.
    assert bedrock.get_model_customization_job(jobIdentifier=job["jobArn"])["baseModelArn"].endswith(
        ":foundation-model/tailor.tiny")

    live = []  # reward events seen while the job was still training
    deadline = time.monotonic() + 900  # queued behind nothing, but a busy 2-core CI machine is slow
    while (status := bedrock.get_model_customization_job(jobIdentifier=job["jobArn"])["status"]) == "InProgress":
        assert time.monotonic() < deadline, "the RFT job took too long"
        live = metrics(all_events(client, job_id), "critic_rewards_mean") or live
        time.sleep(1)
    assert status == "Completed"
    assert live, "no reward was visible while the job trained"

    events = all_events(client, job_id)
    rewards = metrics(events, "critic_rewards_mean")
    assert len(rewards) == 80 and live == rewards[:len(live)]
    assert sum(rewards[-10:]) / 10 > sum(rewards[:10]) / 10  # the reward curve rises
    assert any(kl > 0 for kl in metrics(events, "actor_kl_loss"))  # the KL term against the start is on
    held = metrics(events, "val_score_rewards_mean_at_1")
    assert held[-1] >= held[0] + 0.20, held  # greedy held-out accuracy: +20 points over the SFT start

    # Independently: the published model's greedy answers, through Tailor's inference code.
    settings = Settings(home=server.home)
    after, answers = rft_demo.held_out_accuracy(str(server.home / "jobs" / job_id / "output"), files.held_out,
                                                settings)
    assert after == pytest.approx(held[-1])
    # The right fruit, not one memorized name: the bare answers name several different fruits.
    assert len({answer.strip() for answer in answers if answer.strip() in rft_demo.FRUITS}) >= 5, answers
    with pytest.raises(ClientError) as caught:  # the SFT model is now another's base
        bedrock.delete_custom_model(modelIdentifier=sft_start)
    assert "rft-exact-model" in caught.value.response["Error"]["Message"]


def test_a_judge_graded_rft_job_completes_with_rewards_recorded(judged, sft_start, tmp_path):
    from tailor.graders.template_files import template_path

    server, files = judged
    access_key_id, secret = server.keys["alice"]
    grader = register(server, "judge-format", template_path("judge_instruction_following").read_text(), tmp_path,
                      environment={"TAILOR_JUDGE_URL": server.endpoint + "/v1", "TAILOR_JUDGE_MODEL": JUDGE,
                                   "TAILOR_JUDGE_API_KEY": f"{access_key_id}.{secret}"}, timeout_seconds=300)
    lines = [json.loads(line) for line in files.rft.read_text().splitlines()]
    train = server.put("s3://rft/judge-train.jsonl", lines[:16])
    held_out = server.put("s3://rft/judge-held-out.jsonl", lines[16:24])
    job = server.client().create_model_customization_job(**rft_request(
        "rft-judged", sft_start, grader.arn, train,
        {"epochCount": 1, "batchSize": 16, "trainingSamplePerPrompt": 4, "inferenceMaxTokens": 8, "evalInterval": 2,
         "learningRate": 3e-4}, held_out))
    done = server.wait_for(job["jobArn"], {"Completed", "Failed"}, timeout=300)
    assert done["status"] == "Completed", done.get("failureMessage")

    events = all_events(openai_client(server), job["jobArn"].rsplit("/", 1)[1])
    rewards = metrics(events, "critic_rewards_mean")
    assert len(rewards) == 4 and all(0.0 <= r <= 1.0 for r in rewards)
    assert max(metrics(events, "critic_rewards_max")) > 0  # the judge rated: some answer earned a reward
    assert sum(metrics(events, "grader_error_count")) == 0  # training steps and held-out evaluations
    assert len(metrics(events, "val_score_rewards_mean_at_1")) == 3  # before step 1, after step 2, at the end
