"""The pre-flight estimate at create time, through a real server and real boto3 and OpenAI clients
(issue 14): a job that cannot fit the server's devices is refused with a ValidationException that
names its peak memory, the budget and what would make it fit; one that fits has the estimate as an
event. The servers run without the job runner: nothing trains."""

from __future__ import annotations

import re

import pytest
from botocore.exceptions import ClientError

from tests.api.conftest import ALIASES, running_server

ROLE = "arn:aws:iam::000000000000:role/TailorCustomization"
RECORDS = [{"prompt": f"What is code {i}?", "completion": f"Code {i} is {i * 7 % 10}."} for i in range(16)]


def create(server, name: str, hyperparameters: dict[str, str]) -> str:
    train = server.put(f"s3://bkt/{name}/train.jsonl", RECORDS)
    return server.client().create_model_customization_job(
        jobName=name, customModelName=f"{name}-model", roleArn=ROLE, baseModelIdentifier="tailor.tiny",
        hyperParameters=hyperparameters, trainingDataConfig={"s3Uri": train},
        outputDataConfig={"s3Uri": f"s3://bkt/{name}/out"})["jobArn"]


def test_a_job_that_cannot_fit_is_refused_saying_what_would_fit(home, monkeypatch):
    # 20 MiB a device: tailor.tiny's full-training state (weights, gradients, AdamW: 16 bytes for
    # each of its 1.5 M parameters) does not fit; a LoRA adapter's does.
    monkeypatch.setenv("TAILOR_DEVICE_MEMORY_GIB", "0.02")
    with running_server(home, ALIASES, ("--no-runner",)) as server:
        with pytest.raises(ClientError) as caught:
            create(server, "too-big", {"tuningMethod": "full", "batchSize": "8"})
        error = caught.value.response["Error"]
        assert error["Code"] == "ValidationException"
        message = error["Message"]
        assert re.search(r"estimated peak memory is [\d.]+ MiB per device", message), message
        assert "a device has 20 MiB (TAILOR_DEVICE_MEMORY_GIB)" in message
        assert "LoRA instead of full training" in message
        assert server.client().list_model_customization_jobs()["modelCustomizationJobSummaries"] == []
        # What the advice says fits, fits.
        arn = create(server, "adapter", {"tuningMethod": "lora", "batchSize": "8"})
        assert server.client().get_model_customization_job(jobIdentifier=arn)["status"] == "InProgress"


def test_a_job_that_fits_shows_its_estimate_in_its_events(home, monkeypatch):
    from openai import OpenAI

    monkeypatch.delenv("TAILOR_DEVICE_MEMORY_GIB", raising=False)
    monkeypatch.setenv("TAILOR_TRAINING_PROCESSES", "1")
    with running_server(home, ALIASES, ("--no-runner",)) as server:
        arn = create(server, "fits", {"batchSize": "8"})
        access_key_id, secret = server.keys["alice"]
        client = OpenAI(base_url=server.endpoint + "/v1", api_key=f"{access_key_id}.{secret}", max_retries=0)
        events = list(client.fine_tuning.jobs.list_events(arn.rsplit("/", 1)[1], limit=100))[::-1]
    assert events[0].message.startswith("Created customization job fits")
    estimate = events[1]
    assert estimate.type == "message"
    assert re.fullmatch(r"Estimated peak memory [\d.]+ MiB per device of [\d.]+ GiB \(1 process, data parallel, "
                        r"micro-batch 8, no activation checkpointing\); about \d+ s\.", estimate.message), \
        estimate.message
    data = estimate.data
    assert data["fits"] is True and data["processes"] == 1 and data["micro_batch_size"] == 8
    assert 0 < data["peak_bytes"] < data["budget_bytes"]
    assert data["sequence_length_from"] == "data" and data["tuning_method"] == "full"
