"""Jobs stop within seconds, and a server killed with SIGKILL leaves no job lying about its state."""

from __future__ import annotations

import os
import signal
import sqlite3
import time

import pytest

pytestmark = pytest.mark.slow
ROLE = "arn:aws:iam::000000000000:role/TailorCustomization"


def long_job(server, name: str, epochs: int = 100) -> str:
    records = [{"prompt": f"Question number {i} about the long training run?",
                "completion": f"Answer number {i}, which takes a while to learn by heart."} for i in range(64)]
    train = server.put(f"s3://bkt/{name}/train.jsonl", records)
    return server.client().create_model_customization_job(
        jobName=name, customModelName=f"{name}-model", roleArn=ROLE, baseModelIdentifier="tailor.tiny",
        hyperParameters={"epochCount": str(epochs)}, trainingDataConfig={"s3Uri": train},
        outputDataConfig={"s3Uri": f"s3://bkt/{name}/out"})["jobArn"]


def wait_until_training(server, arn: str, timeout: float = 120) -> dict:
    bedrock, deadline = server.client(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = bedrock.get_model_customization_job(jobIdentifier=arn)
        if job["statusDetails"]["trainingDetails"]["status"] == "InProgress" and "trainingMetrics" in job:
            return job
        assert job["status"] == "InProgress", job
        time.sleep(0.3)
    raise AssertionError(f"job never started training: {job}")


def worker_pid(server, arn: str) -> int:
    with sqlite3.connect(server.home / "tailor.db") as connection:
        return connection.execute("SELECT pid FROM jobs WHERE arn = ?", (arn,)).fetchone()[0]


def test_stop_mid_training_ends_stopped_within_seconds(server):
    bedrock = server.client()
    arn = long_job(server, "stop-me")
    wait_until_training(server, arn)
    bedrock.stop_model_customization_job(jobIdentifier=arn)
    assert bedrock.get_model_customization_job(jobIdentifier=arn)["status"] in ("Stopping", "Stopped")
    started = time.monotonic()
    job = server.wait_for(arn, {"Stopped", "Failed", "Completed"}, timeout=30)
    assert job["status"] == "Stopped" and time.monotonic() - started < 10
    assert job["statusDetails"]["trainingDetails"]["status"] == "Stopped"
    assert "outputModelArn" not in job
    assert bedrock.list_custom_models()["modelSummaries"] == []


def test_server_killed_mid_job_then_restarted_tells_the_truth(server):
    """A worker that outlives the killed server finishes; one that died is Failed with the reason;
    a queued job starts when the server is back."""
    lost = long_job(server, "lost-worker")
    queued = long_job(server, "queued-job", epochs=1)
    wait_until_training(server, lost)
    assert server.client().get_model_customization_job(jobIdentifier=queued)["statusDetails"][
        "trainingDetails"]["status"] == "NotStarted"

    scratch = list((server.home / "jobs" / lost.rsplit("/", 1)[1]).glob(".output.partial-*"))
    assert scratch, "a training job writes into a scratch folder"
    server.kill(signal.SIGKILL)
    os.killpg(worker_pid(server, lost), signal.SIGKILL)  # the machine "lost" this worker too
    server.start()

    job = server.wait_for(lost, {"Failed", "Completed", "Stopped"}, timeout=30)
    assert job["status"] == "Failed"
    assert "worker process ended without a result" in job["failureMessage"]
    assert str(server.home) not in job["failureMessage"]  # no server paths in what callers read
    assert not any(path.exists() for path in scratch)  # what the killed worker half-wrote is gone
    assert server.wait_for(queued, {"Completed", "Failed"}, timeout=120)["status"] == "Completed"

    survivor = long_job(server, "survivor", epochs=12)
    wait_until_training(server, survivor)
    server.kill(signal.SIGKILL)  # only the server dies; the worker trains on in its own session
    server.start()
    assert server.wait_for(survivor, {"Completed", "Failed"}, timeout=180)["status"] == "Completed"
