"""Jobs stop within seconds, and a server killed with SIGKILL leaves no job lying about its state.

The tests whose truth lives in the database across processes (a stop, a killed server, a killed
worker resumed) run on SQLite and on a real PostgreSQL server (tests/backing/postgres.py); the rest
run on SQLite, the default, to keep CI within its budget."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.api.conftest import ALIASES, running_server

pytestmark = pytest.mark.slow
ROLE = "arn:aws:iam::000000000000:role/TailorCustomization"


@pytest.fixture
def server(request, home):
    """A real server on SQLite, or, for a test marked ``ON_BOTH_DATABASES``, also on PostgreSQL (a
    fresh database of its own)."""
    env = {}
    if getattr(request, "param", "sqlite") == "postgresql":
        env["TAILOR_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    with running_server(home, ALIASES, env=env) as running:
        yield running


ON_BOTH_DATABASES = pytest.mark.parametrize("server", ["sqlite", "postgresql"], indirect=True)


def database_value(server, sql: str, **params):
    """One value read straight from the server's database (the SQLite file in its home, or its
    TAILOR_DATABASE_URL), as another process sees what the server committed."""
    from sqlalchemy import create_engine, text

    engine = create_engine(server.database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(text(sql), params).scalar_one()
    finally:
        engine.dispose()


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
    return database_value(server, "SELECT pid FROM jobs WHERE arn = :arn", arn=arn)


@ON_BOTH_DATABASES
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


@ON_BOTH_DATABASES
def test_server_killed_mid_job_then_restarted_tells_the_truth(server):
    """A worker that outlives the killed server finishes; one that died is Failed with the reason;
    a queued job starts when the server is back."""
    import psutil

    lost = long_job(server, "lost-worker")
    queued = long_job(server, "queued-job", epochs=1)
    wait_until_training(server, lost)
    assert server.client().get_model_customization_job(jobIdentifier=queued)["statusDetails"][
        "trainingDetails"]["status"] == "NotStarted"

    scratch = list((server.home / "jobs" / lost.rsplit("/", 1)[1]).glob(".output.partial-*"))
    assert scratch, "a training job writes into a scratch folder"
    server.kill(signal.SIGKILL)
    os.killpg(worker_pid(server, lost), signal.SIGKILL)  # the machine "lost" this worker too
    # With one start allowed, a lost worker is not restarted from its checkpoint (that is
    # test_a_killed_worker_is_restarted_from_its_checkpoint_and_ends_as_if_never_killed).
    server.env = {**server.env, "TAILOR_MAX_JOB_ATTEMPTS": "1"}
    server.start()

    job = server.wait_for(lost, {"Failed", "Completed", "Stopped"}, timeout=30)
    assert job["status"] == "Failed"
    assert "worker process ended without a result" in job["failureMessage"]
    assert str(server.home) not in job["failureMessage"]  # no server paths in what callers read
    assert not any(path.exists() for path in scratch)  # what the killed worker half-wrote is gone
    assert server.wait_for(queued, {"Completed", "Failed"}, timeout=120)["status"] == "Completed"

    # 6 epochs (48 steps): still training when the server is killed, done soon after it is back.
    survivor = long_job(server, "survivor", epochs=6)
    wait_until_training(server, survivor)
    worker = psutil.Process(worker_pid(server, survivor))
    server.kill(signal.SIGKILL)  # only the server dies; the worker trains on in its own session
    assert worker.status() != psutil.STATUS_ZOMBIE
    server.start()
    assert server.wait_for(survivor, {"Completed", "Failed"}, timeout=180)["status"] == "Completed"


@ON_BOTH_DATABASES
def test_a_killed_worker_is_restarted_from_its_checkpoint_and_ends_as_if_never_killed(server):
    """kill -9 of a training worker: the runner starts the job again, the new worker continues
    from the last checkpoint, and the custom model equals that of a job nobody killed."""
    from safetensors.torch import load_file

    server.kill()
    server.env = {**server.env, "TAILOR_CHECKPOINT_STEPS": "4"}
    server.start()
    bedrock = server.client()
    killed, whole = long_job(server, "killed-once", epochs=6), long_job(server, "never-killed", epochs=6)
    scratch = server.home / "jobs" / killed.rsplit("/", 1)[1]
    deadline = time.monotonic() + 180
    while not list(scratch.glob(".output.partial-*/checkpoints/step-*")):
        assert time.monotonic() < deadline and bedrock.get_model_customization_job(
            jobIdentifier=killed)["status"] == "InProgress", "the job ended before its first checkpoint"
        time.sleep(0.01)
    os.killpg(worker_pid(server, killed), signal.SIGKILL)

    for arn in (killed, whole):
        assert server.wait_for(arn, {"Completed", "Failed"}, timeout=300)["status"] == "Completed"
    models = {arn: bedrock.get_custom_model(modelIdentifier=bedrock.get_model_customization_job(
        jobIdentifier=arn)["outputModelArn"]) for arn in (killed, whole)}
    weights = [load_file(server.home / "jobs" / arn.rsplit("/", 1)[1] / "output" / "model" / "model.safetensors")
               for arn in (killed, whole)]
    assert max(float((weights[0][name] - weights[1][name]).abs().max()) for name in weights[1]) == 0.0
    assert models[killed]["trainingMetrics"] == models[whole]["trainingMetrics"]

    # Through the OpenAI-compatible events API, as a client watching the job sees it.
    from openai import OpenAI

    access_key_id, secret = server.keys["alice"]
    client = OpenAI(base_url=server.endpoint + "/v1", api_key=f"{access_key_id}.{secret}", max_retries=0)
    messages = [event.message for event in client.fine_tuning.jobs.list_events(killed.rsplit("/", 1)[1], limit=1000)
                if event.type == "message"]
    assert any(m.startswith("The worker process was lost") for m in messages)
    assert any(m.startswith("Resuming from the checkpoint at step ") for m in messages)
    assert database_value(server, "SELECT attempts FROM jobs WHERE arn = :arn", arn=killed) == 2


def test_a_job_trained_by_two_processes_completes_and_a_stop_reaches_every_process(server):
    """TAILOR_TRAINING_PROCESSES=2: torchrun runs the worker as two gloo processes; the job
    completes with one custom model, and a stop ends another in Stopped with no process left."""
    import psutil

    server.kill()
    server.env = {**server.env, "TAILOR_TRAINING_PROCESSES": "2"}
    server.start()
    bedrock = server.client()
    done = long_job(server, "two-processes", epochs=2)
    assert server.wait_for(done, {"Completed", "Failed"}, timeout=300)["status"] == "Completed"
    job = bedrock.get_model_customization_job(jobIdentifier=done)
    assert job["trainingMetrics"]["trainingLoss"] > 0
    assert len(bedrock.list_custom_models()["modelSummaries"]) == 1

    from openai import OpenAI

    access_key_id, secret = server.keys["alice"]
    client = OpenAI(base_url=server.endpoint + "/v1", api_key=f"{access_key_id}.{secret}", max_retries=0)
    messages = [event.message for event in client.fine_tuning.jobs.list_events(done.rsplit("/", 1)[1], limit=1000)]
    assert "Training in 2 processes." in messages

    stopped = long_job(server, "two-processes-stopped")
    wait_until_training(server, stopped)
    launcher = psutil.Process(worker_pid(server, stopped))
    trainers = launcher.children(recursive=True)
    assert len(trainers) == 2
    bedrock.stop_model_customization_job(jobIdentifier=stopped)
    assert server.wait_for(stopped, {"Stopped", "Failed", "Completed"}, timeout=60)["status"] == "Stopped"
    _, alive = psutil.wait_procs([launcher, *trainers], timeout=30)
    assert not alive


def test_a_paused_job_keeps_its_checkpoint_and_resumed_ends_as_if_never_paused(server):
    """client.fine_tuning.jobs.pause: the worker checkpoints at its next step and ends, the job is
    paused (InProgress to Bedrock, no process); resume queues it again, it continues from that
    checkpoint, and its custom model equals that of a job nobody paused."""
    import psutil
    from openai import OpenAI
    from safetensors.torch import load_file

    bedrock = server.client()
    access_key_id, secret = server.keys["alice"]
    client = OpenAI(base_url=server.endpoint + "/v1", api_key=f"{access_key_id}.{secret}", max_retries=0)
    # 16 epochs (128 steps): long enough that a pause asked as training starts lands mid-run.
    paused, whole = long_job(server, "paused-once", epochs=16), long_job(server, "never-paused", epochs=16)
    paused_id = paused.rsplit("/", 1)[1]
    wait_until_training(server, paused)
    launcher = psutil.Process(worker_pid(server, paused))
    deadline = time.monotonic() + 60
    while (running := client.fine_tuning.jobs.retrieve(paused_id)).estimated_finish is None:  # after a step's progress
        assert running.status == "running" and time.monotonic() < deadline, running
        time.sleep(0.2)
    assert running.estimated_finish >= int(time.time()) - 1
    assert client.fine_tuning.jobs.pause(paused_id).status in ("pausing", "paused")

    deadline = time.monotonic() + 60
    while (job := client.fine_tuning.jobs.pause(paused_id)).status != "paused":  # pausing again: idempotent
        assert time.monotonic() < deadline, job
        time.sleep(0.3)
    assert not psutil.wait_procs([launcher], timeout=30)[1]  # its worker ended
    assert client.fine_tuning.jobs.retrieve(paused_id).status == "paused"
    shown = bedrock.get_model_customization_job(jobIdentifier=paused)
    assert shown["status"] == "InProgress" and shown["statusDetails"]["trainingDetails"]["status"] == "Stopped"
    assert paused in [s["jobArn"] for s in bedrock.list_model_customization_jobs(statusEquals="InProgress")[
        "modelCustomizationJobSummaries"]]
    scratch = server.home / "jobs" / paused_id
    assert list(scratch.glob(".output.partial-*/checkpoints/step-*"))
    with pytest.raises(Exception, match="only a paused job can be resumed"):
        client.fine_tuning.jobs.resume(whole.rsplit("/", 1)[1])

    assert client.fine_tuning.jobs.resume(paused_id).status == "queued"
    for arn in (paused, whole):
        assert server.wait_for(arn, {"Completed", "Failed"}, timeout=300)["status"] == "Completed"
    done = client.fine_tuning.jobs.retrieve(paused_id)
    assert done.status == "succeeded" and done.hyperparameters.n_epochs == 16  # resumed with what it was given
    weights = [load_file(server.home / "jobs" / arn.rsplit("/", 1)[1] / "output" / "model" / "model.safetensors")
               for arn in (paused, whole)]
    assert max(float((weights[0][name] - weights[1][name]).abs().max()) for name in weights[1]) == 0.0
    messages = [event.message for event in client.fine_tuning.jobs.list_events(paused_id, limit=1000)]
    [pause] = [m for m in messages if m.startswith("Paused at step ")]
    step = pause.removeprefix("Paused at step ").split()[0]
    assert f"Resuming from the checkpoint at step {step}." in messages
