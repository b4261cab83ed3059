"""The job model: a create request is resolved once into the spec the worker runs and the API
shows; concurrent retries of one request make one job; old databases are converted."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select, text

from tailor.api.bedrock.jobs import customization_job, customization_request
from tailor.jobs.spec import CustomizationJobSpec
from tailor.services import buckets, customization
from tailor.settings import Settings
from tailor.store.db import Store, make_engine, migrate, open_store
from tailor.store.jobs import EvaluationJob, Job
from tailor.train.hyperparams import FAMILY_HYPERPARAMETERS

ROLE = "arn:aws:iam::000000000000:role/r"


@pytest.fixture
def settings(tmp_path):
    settings = Settings(home=tmp_path / "home")
    buckets.create_bucket(open_store(settings), settings, "alice-data", owner="alice")
    (settings.home / "buckets" / "alice-data" / "train.jsonl").write_text('{"prompt": "q", "completion": "a"}\n')
    return settings


def request(**changes) -> dict:
    return {"jobName": "job", "customModelName": "model", "roleArn": ROLE, "baseModelIdentifier": "tailor.tiny",
            "trainingDataConfig": {"s3Uri": "s3://alice-data/train.jsonl"},
            "outputDataConfig": {"s3Uri": "s3://alice-data/out/"}, "hyperParameters": {"epochCount": "3"},
            **changes}


def test_the_stored_spec_holds_every_hyperparameter_the_run_uses_and_the_api_shows_them(settings):
    store = open_store(settings)
    arn = customization.create_job(store, settings, "alice", customization_request(request()))
    job = customization.get_job(store, "alice", arn)

    spec = job.spec.train
    defaults = {p.name for p in FAMILY_HYPERPARAMETERS["tailor"]}
    assert spec.hyperparameters["epochCount"] == "3"  # as given
    assert defaults <= set(spec.hyperparameters) and spec.hyperparameters["tuningMethod"] in ("full", "lora")
    assert spec.model == "tailor.tiny" and spec.training_uri == "s3://alice-data/train.jsonl"
    assert spec.output_dir == settings.home / "jobs" / job.row.id / "output"
    shown = customization_job(job)
    assert shown["hyperParameters"] == {name: str(value) for name, value in spec.hyperparameters.items()}
    assert shown["outputDataConfig"] == {"s3Uri": "s3://alice-data/out/"}
    # The worker reads the row's spec, which round-trips exactly.
    with store.session() as session:
        assert CustomizationJobSpec.from_record(session.get(Job, job.row.id).spec) == job.spec


def test_concurrent_retries_of_one_request_make_one_job_and_no_error(settings):
    store = open_store(settings)
    retried = customization_request(request(clientRequestToken="retry-token-1"))
    with ThreadPoolExecutor(8) as pool:
        arns = list(pool.map(lambda _: customization.create_job(store, settings, "alice", retried), range(8)))
    assert len(set(arns)) == 1
    with store.session() as session:
        assert len(session.scalars(select(Job)).all()) == 1


def test_an_old_database_is_converted_to_job_specs(tmp_path):
    url = f"sqlite:///{tmp_path / 'tailor.db'}"
    engine = make_engine(url)
    migrate(engine, "0006")
    now = datetime(2026, 11, 1, tzinfo=timezone.utc).replace(tzinfo=None)
    lifecycle = {"principal": "alice", "phase": "done", "role_arn": ROLE, "stop_requested": False,
                 "work_dir": "/var/tailor/jobs/old", "created_at": now, "last_modified_at": now}
    job_request = request(validationDataConfig={"validators": [{"s3Uri": "s3://alice-data/valid.jsonl"}]},
                          vpcConfig={"subnetIds": ["subnet-1"], "securityGroupIds": ["sg-1"]})
    evaluation_request = {
        "evaluationConfig": {"automated": {"datasetMetricConfigs": [{
            "taskType": "General", "metricNames": ["Builtin.Accuracy"],
            "dataset": {"name": "qa", "datasetLocation": {"s3Uri": "s3://alice-data/qa.jsonl"}}}]}},
        "inferenceConfig": {"models": [{"bedrockModel": {"modelIdentifier": "tailor.tiny",
                                                         "inferenceParams": '{"inferenceConfig": {"maxTokens": 8}}'}}]},
        "outputDataConfig": {"s3Uri": "s3://alice-data/eval/"}, "jobDescription": "before the upgrade"}
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO jobs (id, arn, name, status, customization_type, base_model_id, base_model_arn, "
            "output_model_name, request, status_details, progress, validation_losses, principal, phase, role_arn, "
            "stop_requested, work_dir, created_at, last_modified_at) VALUES ('old1', 'arn:job/old1', 'old', "
            "'Completed', 'FINE_TUNING', 'tailor.tiny', 'arn:fm/tailor.tiny', 'm', :request, '{}', '{}', '[]', "
            ":principal, :phase, :role_arn, :stop_requested, :work_dir, :created_at, :last_modified_at)"),
            {"request": json.dumps(job_request), **lifecycle})
        for job_id, status in (("done1", "Completed"), ("queued1", "InProgress")):
            connection.execute(text(
                "INSERT INTO evaluation_jobs (id, arn, name, status, application_type, request, principal, phase, "
                "role_arn, stop_requested, work_dir, created_at, last_modified_at) VALUES (:id, :arn, :id, :status, "
                "'ModelEvaluation', :request, :principal, :phase, :role_arn, :stop_requested, :work_dir, "
                ":created_at, :last_modified_at)"),
                {"id": job_id, "arn": f"arn:evaluation-job/{job_id}", "status": status,
                 "request": json.dumps(evaluation_request), **lifecycle})

    store = Store(url)  # upgrades to the newest revision
    job = customization.get_job(store, "alice", "old")
    assert job.spec.train.validation_uris == ("s3://alice-data/valid.jsonl",)
    assert job.spec.train.output_dir == Path("/var/tailor/jobs/old/output")
    assert job.spec.vpc == {"subnetIds": ["subnet-1"], "securityGroupIds": ["sg-1"]}
    assert customization_job(job)["hyperParameters"] == {"epochCount": "3"}
    from tailor.api.bedrock.jobs import evaluation_job
    from tailor.services.evaluations import get_evaluation_job

    done = evaluation_job(get_evaluation_job(store, "alice", "done1"))
    assert done["status"] == "Completed" and done["jobDescription"] == "before the upgrade"
    assert done["evaluationConfig"] == evaluation_request["evaluationConfig"]
    assert done["inferenceConfig"] == evaluation_request["inferenceConfig"]
    with store.session() as session:
        queued = session.get(EvaluationJob, "queued1")
        assert queued.status == "Failed" and "create it again" in queued.failure_message
