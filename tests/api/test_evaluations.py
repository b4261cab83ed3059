"""Evaluation jobs through an unchanged boto3 client, on a live server: a custom model trained by a
real job against its base model, scored by automatic metrics and by a judge the server serves;
and ``tailor eval compare`` with that judge behind the server's OpenAI and Bedrock APIs."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from botocore.exceptions import ClientError

from tests.api.conftest import ALIASES, HAIKU, running_server
from tests.conftest import HELP_DESK_SYSTEM

pytestmark = pytest.mark.slow

ROLE = "arn:aws:iam::000000000000:role/TailorEvaluation"
JUDGE = "meta.llama3-1-8b-instruct-v1:0"  # the server maps it (TAILOR_MODEL_ALIASES) to the test judge
HAIKU_ID = HAIKU.removesuffix(":200k")
UNCOVERED = {"prompt": "How do Quokka dashboards refresh?", "referenceResponse": "They refresh live.",
             "category": "product"}
METRICS = ["Builtin.Accuracy", "ExactMatch", "RougeL", "BERTScore.F1", "Builtin.Correctness"]


@pytest.fixture
def judged_server(home, evaluation):
    with running_server(home, {**ALIASES, JUDGE + ":128k": str(evaluation.judge / "model")}) as server:
        yield server


def wait_for(bedrock, arn: str, timeout: float = 420) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = bedrock.get_evaluation_job(jobIdentifier=arn)
        if job["status"] not in ("InProgress", "Stopping"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"evaluation job still {job['status']}")


def evaluation_request(name: str, data_uri: str, models: list[str], metrics=METRICS, judge: str | None = JUDGE):
    params = json.dumps({"inferenceConfig": {"maxTokens": 96}, "system": HELP_DESK_SYSTEM})
    automated = {"datasetMetricConfigs": [{"taskType": "QuestionAndAnswer", "metricNames": metrics,
                                           "dataset": {"name": "faq", "datasetLocation": {"s3Uri": data_uri}}}]}
    if judge:
        automated["evaluatorModelConfig"] = {"bedrockEvaluatorModels": [{"modelIdentifier": judge}]}
    return {"jobName": name, "roleArn": ROLE, "evaluationConfig": {"automated": automated},
            "inferenceConfig": {"models": [{"bedrockModel": {"modelIdentifier": m, "inferenceParams": params}}
                                           for m in models]},
            "outputDataConfig": {"s3Uri": "s3://evals/out/"}}


def test_seed_002_as_one_boto3_call_then_the_cli_with_remote_judges(judged_server, evaluation):
    server = judged_server
    bedrock = server.client()
    taught = [json.loads(line) for line in evaluation.data.read_text().splitlines()]
    records = [{"system": HELP_DESK_SYSTEM, "messages": [{"role": "user", "content": q["prompt"]},
                                                        {"role": "assistant", "content": q["referenceResponse"]}]}
               for q in taught] * 8
    train_uri = server.put("s3://evals/train.jsonl", records)
    job = bedrock.create_model_customization_job(
        jobName="faq", customModelName="faq-model", roleArn=ROLE, baseModelIdentifier=HAIKU,
        hyperParameters={"epochCount": "10", "batchSize": "4"}, trainingDataConfig={"s3Uri": train_uri},
        outputDataConfig={"s3Uri": "s3://evals/training/"})
    finished = server.wait_for(job["jobArn"], {"Completed", "Failed"}, timeout=420)
    assert finished["status"] == "Completed", finished.get("failureMessage")
    custom_arn = finished["outputModelArn"]
    data_uri = server.put("s3://evals/eval.jsonl", [*taught, UNCOVERED])

    # One call: the custom model (not deployed) against the base it was trained from.
    arn = bedrock.create_evaluation_job(**evaluation_request("faq-vs-base", data_uri, [custom_arn, HAIKU_ID]))["jobArn"]
    done = wait_for(bedrock, arn)
    assert done["status"] == "Completed", done.get("failureMessages")
    assert done["jobType"] == "Automated" and done["applicationType"] == "ModelEvaluation"
    assert done["inferenceConfig"]["models"][0]["bedrockModel"]["modelIdentifier"] == custom_arn
    (summary,) = bedrock.list_evaluation_jobs(statusEquals="Completed")["jobSummaries"]
    assert summary["jobArn"] == arn and summary["modelIdentifiers"] == [custom_arn, HAIKU_ID]
    assert summary["evaluatorModelIdentifiers"] == [JUDGE] and summary["evaluationTaskTypes"] == ["QuestionAndAnswer"]

    # The original's output files (docs/evaluation.md): one line per answered prompt, per model.
    root = server.home / "buckets" / "evals" / "out" / "faq-vs-base" / arn.rsplit("/", 1)[1]
    (output,) = (root / "models" / custom_arn.rsplit("/", 1)[1] / "taskTypes" / "QuestionAndAnswer" / "datasets"
                 / "faq").glob("*_output.jsonl")
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [line["inputRecord"] for line in lines] == [*taught, UNCOVERED]
    assert {s["metricName"] for s in lines[0]["automatedEvaluationResult"]["scores"]} == set(METRICS)
    assert lines[0]["modelResponses"][0]["modelIdentifier"] == custom_arn
    correctness = [s for line in lines for s in line["automatedEvaluationResult"]["scores"]
                   if s["metricName"] == "Builtin.Correctness"]
    assert all(s["evaluatorDetails"][0]["explanation"] for s in correctness)

    # The summary: the fine-tuned model wins on every metric, and the coverage check found the gap.
    faq = json.loads((root / "summary.json").read_text())["faq"]
    tuned, base = (faq["summary"][label]["metrics"] for label in (custom_arn, HAIKU_ID))
    for metric in METRICS:
        assert tuned[metric]["mean"] > base[metric]["mean"], metric
    assert base["Builtin.Correctness"]["mean"] == pytest.approx(1 / 9)  # the judge rated every base answer 2
    assert [q["prompt"] for q in faq["coverage"]["questions"] if q["under_covered"]] == [UNCOVERED["prompt"]]
    assert "Quokka" in (root / "reports" / "faq" / "report.html").read_text()

    # The same comparison from the command line, with the judge called through the server's
    # OpenAI-compatible API, then through its Bedrock API.
    access_key, secret = server.keys["alice"]
    env = {**server.env, "OPENAI_API_KEY": f"{access_key}.{secret}", "AWS_ACCESS_KEY_ID": access_key,
           "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": "us-east-1"}
    eval_file = server.home / "buckets" / "evals" / "eval.jsonl"
    for judge in (f"openai:{JUDGE}@{server.endpoint}/v1", f"bedrock:{JUDGE}@{server.endpoint}"):
        out = server.home / "cli" / judge.split(":")[0]
        result = subprocess.run(
            [sys.executable, "-m", "tailor", "eval", "compare", "--models", f"faq-model,{HAIKU_ID}",
             "--principal", "alice", "--data", str(eval_file), "--judge", judge, "--metrics", "Builtin.Correctness",
             "--system", HELP_DESK_SYSTEM, "--max-tokens", "96", "--out", str(out)],
            capture_output=True, text=True, env=env, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        report = json.loads((out / "comparison.json").read_text())
        ratings = [answer["scores"][0]["rating"] for row in report["rows"][:4] for answer in row["answers"][1:]]
        assert ratings == [2, 2, 2, 2], judge  # the base's answers, rated by the served judge
        assert report["summary"]["faq-model"]["metrics"]["Builtin.Correctness"]["mean"] > \
            report["summary"][HAIKU_ID]["metrics"]["Builtin.Correctness"]["mean"]


def test_bad_evaluation_requests_are_refused_before_any_work(server):
    bedrock = server.client()
    data_uri = server.put("s3://evals/bad.jsonl", [{"prompt": "Q?", "referenceResponse": "A."},
                                                   {"referenceResponse": "A.", "categry": "x"}])

    def refused(request) -> str:
        with pytest.raises(ClientError) as caught:
            bedrock.create_evaluation_job(**request)
        assert caught.value.response["Error"]["Code"] == "ValidationException"
        return caught.value.response["Error"]["Message"]

    message = refused(evaluation_request("bad-data", data_uri, [HAIKU_ID], metrics=["RougeL"], judge=None))
    assert "line 2: prompt: required key is missing" in message and "line 2: categry: unexpected key" in message
    good_uri = server.put("s3://evals/good.jsonl", [{"prompt": "Q?", "referenceResponse": "A."}])
    message = refused(evaluation_request("no-judge", good_uri, [HAIKU_ID], metrics=["Builtin.Correctness"],
                                         judge=None))
    assert "Builtin.Correctness is rated by a judge model" in message
    message = refused(evaluation_request("toxic", good_uri, [HAIKU_ID], metrics=["Builtin.Toxicity"], judge=None))
    assert "Builtin.Toxicity is not available in Tailor" in message
    message = refused(evaluation_request("unknown", good_uri, ["no-such-model"], metrics=["RougeL"], judge=None))
    assert "inferenceConfig.models[0].bedrockModel.modelIdentifier" in message and "no-such-model" in message
    for params, field in ((b'{"inferenceConfig": {"maxTokens": -5}}', "maxTokens"),
                          (b'{"inferenceConfig": {"maxTokens": 1e999}}', "maxTokens"),
                          (b'{"inferenceConfig": {"temperature": NaN}}', "temperature"),
                          (b'{"inferenceConfig": {"topP": "high"}}', "topP"),
                          (b'{"inferenceConfig": {"stopSequences": [1]}}', "stopSequences"),
                          (b'[[[[]]]]', "inferenceParams")):
        request = evaluation_request("bad-params", good_uri, [HAIKU_ID], metrics=["RougeL"], judge=None)
        request["inferenceConfig"]["models"][0]["bedrockModel"]["inferenceParams"] = params.decode()
        message = refused(request)
        assert "inferenceConfig.models[0].bedrockModel.inferenceParams" in message and field in message, message
    assert bedrock.list_evaluation_jobs()["jobSummaries"] == []

    # A queued or running job stops; a finished one cannot be stopped; another principal sees nothing.
    arn = bedrock.create_evaluation_job(**evaluation_request("stopped", good_uri, [HAIKU_ID], metrics=["RougeL"],
                                                             judge=None))["jobArn"]
    bedrock.stop_evaluation_job(jobIdentifier=arn)
    assert wait_for(bedrock, arn)["status"] == "Stopped"
    assert not (server.home / "buckets" / "evals" / "out" / "stopped").exists()
    with pytest.raises(ClientError) as caught:
        bedrock.stop_evaluation_job(jobIdentifier=arn)
    assert caught.value.response["Error"]["Code"] == "ConflictException"
    with pytest.raises(ClientError) as caught:
        server.client(principal="bob").get_evaluation_job(jobIdentifier=arn)
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as caught:
        bedrock.create_evaluation_job(**evaluation_request("stopped", good_uri, [HAIKU_ID], metrics=["RougeL"],
                                                           judge=None))
    assert caught.value.response["Error"]["Code"] == "ConflictException"

    # Deleting forgets a finished job; an unknown one is an error item, not a failed call.
    missing = arn[:-12] + "000000000000"
    deleted = bedrock.batch_delete_evaluation_job(jobIdentifiers=[arn, missing])
    assert deleted["evaluationJobs"] == [{"jobIdentifier": arn, "jobStatus": "Deleting"}]
    assert [(e["jobIdentifier"], e["code"]) for e in deleted["errors"]] == [(missing, "ResourceNotFoundException")]
    with pytest.raises(ClientError) as caught:
        bedrock.get_evaluation_job(jobIdentifier=arn)
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
