"""A reinforcement fine-tuning job through an unchanged boto3 client: a grader registered on the
server's machine, referenced by its Lambda ARN; per-step reward metrics at the output location."""

from __future__ import annotations

import csv
import json

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.slow

ROLE = "arn:aws:iam::000000000000:role/TailorCustomization"
GRADER = '''
def lambda_handler(event, context):
    # Reward short answers: 1 for an empty one, 0 from 12 characters on.
    return [{"id": s["id"], "aggregate_reward_score": max(0.0, 1 - len(s["messages"][-1]["content"]) / 12),
             "metrics_list": [{"name": "length", "value": len(s["messages"][-1]["content"]), "type": "Metric"}]}
            for s in event]
'''


def test_an_rft_job_trains_with_a_registered_grader(server, tmp_path):
    from tailor.graders.registry import create_grader
    from tailor.jobs.store import open_store
    from tailor.settings import Settings

    settings = Settings(home=server.home)
    source = tmp_path / "short.py"
    source.write_text(GRADER)
    grader = create_grader(open_store(settings), settings, "short-answers", file=source)
    prompts = [{"messages": [{"role": "user", "content": f"Say something about {i}."}], "reference_answer": "short"}
               for i in range(20)]
    uri = server.put("s3://rft/train.jsonl", prompts)
    bedrock = server.client()
    request = dict(
        jobName="rft-short", customModelName="rft-short-model", roleArn=ROLE, baseModelIdentifier="tailor.tiny",
        customizationType="REINFORCEMENT_FINE_TUNING", trainingDataConfig={"s3Uri": uri},
        outputDataConfig={"s3Uri": "s3://rft/output/"},
        customizationConfig={"rftConfig": {
            "graderConfig": {"lambdaGrader": {"lambdaArn": grader.arn}},
            "hyperParameters": {"epochCount": 1, "batchSize": 16, "trainingSamplePerPrompt": 8,
                                "inferenceMaxTokens": 8, "evalInterval": 4}}})

    with pytest.raises(ClientError) as caught:  # an unregistered grader is refused before any work
        bedrock.create_model_customization_job(**{**request, "customizationConfig": {"rftConfig": {
            "graderConfig": {"lambdaGrader": {"lambdaArn": grader.arn.replace("short-answers", "nope")}}}}})
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert "tailor graders create" in caught.value.response["Error"]["Message"]

    job = bedrock.create_model_customization_job(**request)
    done = server.wait_for(job["jobArn"], {"Completed", "Failed"})
    assert done["status"] == "Completed", done.get("failureMessage")
    assert done["customizationType"] == "REINFORCEMENT_FINE_TUNING"
    assert done["customizationConfig"]["rftConfig"]["graderConfig"]["lambdaGrader"]["lambdaArn"] == grader.arn
    assert "trainingLoss" in done["trainingMetrics"]

    output = server.home / "buckets" / "rft" / "output" / f"model-customization-job-{job['jobArn'].rsplit('/', 1)[1]}"
    with open(output / "training_artifacts" / "step_wise_training_metrics.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 9 and all(0 <= float(row["critic/rewards/mean"]) <= 1 for row in rows)
    with open(output / "validation_artifacts" / "post_fine_tuning_validation" / "validation_metrics.csv") as file:
        assert [row["step"] for row in csv.DictReader(file)] == ["0", "4", "8", "9"]
    model = bedrock.get_custom_model(modelIdentifier=done["outputModelArn"])
    assert model["customizationType"] == "REINFORCEMENT_FINE_TUNING"
    assert json.loads((server.home / "jobs").joinpath(job["jobArn"].rsplit("/", 1)[1], "output",
                                                       "manifest.json").read_text())["result"]["grader"] == grader.arn
