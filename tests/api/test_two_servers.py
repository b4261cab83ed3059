"""Two ``tailor serve`` processes on one PostgreSQL database and one TAILOR_HOME, as a team runs
several API servers behind a load balancer: either answers any request, each queued job runs
exactly once, a stop or a deployment made through one takes effect through the other.

Real servers, real boto3 clients, real (tiny) training on a real PostgreSQL server
(tests/backing/postgres.py).
"""

from __future__ import annotations

import dataclasses
import time

import psutil
import pytest
from botocore.exceptions import ClientError
from sqlalchemy import select

from tailor.store.db import Store
from tailor.store.jobs import Job
from tests.api.conftest import ALIASES, running_server

pytestmark = pytest.mark.slow
ROLE = "arn:aws:iam::000000000000:role/TailorCustomization"


def create(server, name: str, data: str, epochs: int = 1) -> str:
    return server.client().create_model_customization_job(
        jobName=name, customModelName=name, roleArn=ROLE, baseModelIdentifier="tailor.tiny",
        hyperParameters={"epochCount": str(epochs), "batchSize": "8"}, trainingDataConfig={"s3Uri": data},
        outputDataConfig={"s3Uri": f"s3://bkt/{name}/out"})["jobArn"]


def row(store: Store, arn: str) -> Job:
    with store.session() as session:
        return session.scalar(select(Job).where(Job.arn == arn))


def wait_until(predicate, timeout: float = 60, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout}s: {what}")


def test_two_servers_share_one_database_jobs_stops_and_deployments(home, postgres_url, monkeypatch):
    env = {"TAILOR_DATABASE_URL": postgres_url, "TAILOR_MAX_CONCURRENT_JOBS": "1"}
    monkeypatch.setenv("TAILOR_DATABASE_URL", postgres_url)  # this process's store (``put``) is the servers'
    store = Store(postgres_url)
    with running_server(home, ALIASES, env=env) as a:
        data = a.put("s3://bkt/train.jsonl", [{"prompt": f"What is {i} plus one?", "completion": f"{i + 1}"}
                                             for i in range(8)])
        long = a.put("s3://bkt/long.jsonl", [{"prompt": f"Count to {i}.", "completion": " ".join(map(str, range(i)))}
                                            for i in range(64)])
        # A job that A's runner starts (B is not running yet): it trains until stopped.
        started_on_a = create(a, "long", long, epochs=100)
        worker = wait_until(lambda: (job := row(store, started_on_a)).phase == "running" and job.pid,
                            what="A starts the long job")
        assert psutil.Process(worker).ppid() == a.process.pid

        with running_server(home, ALIASES, env=env) as b:
            # Keys made for either server work on both: they are rows in the one database.
            b_with_a_keys = dataclasses.replace(b, keys=a.keys)
            a_with_b_keys = dataclasses.replace(a, keys=b.keys)

            deployment = a.client().create_provisioned_model_throughput(
                modelUnits=1, provisionedModelName="tiny", modelId="tailor.tiny")["provisionedModelArn"]

            # A stop sent to B stops the job A started, and its worker ends.
            b_with_a_keys.client().stop_model_customization_job(jobIdentifier=started_on_a)
            assert b.wait_for(started_on_a, {"Stopped"}, timeout=60)["status"] == "Stopped"
            wait_until(lambda: not psutil.pid_exists(worker) or psutil.Process(worker).status() == "zombie",
                       what="the stopped worker ends")

            # Jobs created on either server, read on the other; each runs exactly once.
            first = create(a_with_b_keys, "first", data)
            second = create(b_with_a_keys, "second", data)
            for arn, other in ((first, b), (second, a)):
                job = other.wait_for(arn, {"Completed", "Failed"}, timeout=240)
                assert job["status"] == "Completed", job.get("failureMessage")
            listed = {s["jobName"]: s["status"] for s in
                      b.client().list_model_customization_jobs()["modelCustomizationJobSummaries"]}
            assert listed == {"long": "Stopped", "first": "Completed", "second": "Completed"}
            assert a.client().list_model_customization_jobs()["modelCustomizationJobSummaries"] == \
                b.client().list_model_customization_jobs()["modelCustomizationJobSummaries"]
            for arn in (first, second):
                job = row(store, arn)
                log = (home / "jobs" / job.id / "job.log").read_text()
                assert job.attempts == 1 and log.count(f"customization job {job.id}: Completed") == 1, log[-2000:]

            # A deployment created through A (before the jobs, so that both servers load it while they
            # train) serves through B, until A deletes it.
            wait_until(lambda: b.client().get_provisioned_model_throughput(
                provisionedModelId=deployment)["status"] == "InService", what="the deployment loads")
            runtime = b.client("bedrock-runtime")
            answer = runtime.converse(modelId=deployment, messages=[{"role": "user", "content": [{"text": "Hi"}]}],
                                      inferenceConfig={"maxTokens": 8, "temperature": 0})
            assert answer["output"]["message"]["content"][0]["text"] and answer["usage"]["outputTokens"] >= 1
            a.client().delete_provisioned_model_throughput(provisionedModelId=deployment)
            with pytest.raises(ClientError) as caught:
                runtime.converse(modelId=deployment, messages=[{"role": "user", "content": [{"text": "Hi"}]}])
            assert caught.value.response["Error"]["Code"] in ("ResourceNotFoundException", "ValidationException")
    store.engine.dispose()
