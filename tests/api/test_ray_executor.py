"""Jobs on a real Ray cluster (``TAILOR_EXECUTOR=ray``): one head that holds no CPU and two worker
nodes of one CPU each (``tests/backing/ray_cluster.py``), so every job lands on a worker node and
two jobs run on two nodes at once. Real training of the tiny model, through boto3.

One scenario, because a cluster and a server cost more than the jobs: two jobs start together
on the two nodes; one node is killed mid-training together with the server, and the restarted
server reconciles with Ray's view — the lost job resumes from its checkpoint on a new node and
completes, the other one ran on through it all, and a stop ends it on the cluster.

A second test trains one job in two processes through Ray Train's TorchTrainer, one on each
worker node, and checks it trains exactly what torchrun's two processes train.
"""

from __future__ import annotations

import signal
import sqlite3
import time

import psutil
import pytest

from tests.api.conftest import ALIASES, running_server
from tests.api.test_job_lifecycle import long_job, wait_until_training

pytestmark = pytest.mark.slow


def row(server, arn: str) -> dict:
    with sqlite3.connect(server.home / "tailor.db") as connection:
        connection.row_factory = sqlite3.Row
        return dict(connection.execute("SELECT * FROM jobs WHERE arn = ?", (arn,)).fetchone())


def worker_process(job_id: str) -> psutil.Process | None:
    """The worker of ``job_id`` on this machine (the cluster's nodes run here)."""
    for process in psutil.process_iter(["cmdline"]):
        if process.info["cmdline"] and process.info["cmdline"][-2:] == ["customization", job_id]:
            return process
    return None


def ray_status(ray, ref: str, leaving: tuple[str, ...], timeout: float = 30) -> str:
    """The Ray job's status once it is none of ``leaving``."""
    deadline = time.monotonic() + timeout
    while (status := str(ray.get_job_status(ref).value)) in leaving:
        assert time.monotonic() < deadline, ray.get_job_info(ref)
        time.sleep(0.2)
    return status


def test_jobs_run_stop_and_resume_on_a_ray_cluster(home, ray_cluster):
    from ray.job_submission import JobSubmissionClient

    ray = JobSubmissionClient(ray_cluster.dashboard)
    env = {"TAILOR_EXECUTOR": "ray", "TAILOR_RAY_ADDRESS": ray_cluster.dashboard, "TAILOR_MAX_CONCURRENT_JOBS": "2",
           "TAILOR_CHECKPOINT_STEPS": "2"}
    with running_server(home, ALIASES, env=env) as server:
        bedrock = server.client()
        killed = long_job(server, "killed", epochs=3)
        survivor = long_job(server, "survivor", epochs=100)  # runs until it is stopped
        killed_id = killed.rsplit("/", 1)[1]

        # Both start on the cluster, each a Ray job of its own.
        for arn in (killed, survivor):
            wait_until_training(server, arn, timeout=120)
        assert row(server, killed)["executor"] == "ray"
        assert row(server, killed)["executor_ref"] == f"tailor-{killed_id}-1"
        survivor_ref = row(server, survivor)["executor_ref"]

        # Once `killed` has saved a checkpoint, its node dies, and the server with it (SIGKILL).
        scratch = server.home / "jobs" / killed_id
        deadline = time.monotonic() + 120
        while not list(scratch.glob(".output.partial-*/checkpoints/step-*")):
            assert time.monotonic() < deadline, "no checkpoint"
            time.sleep(0.05)
        node = ray_cluster.node_of(worker_process(killed_id).pid)
        assert node is not None, "the job's worker runs on a worker node"
        server.kill(signal.SIGKILL)
        ray_cluster.kill_node(node)
        deadline = time.monotonic() + 60
        while str(ray.get_job_status(f"tailor-{killed_id}-1").value) != "FAILED":
            assert time.monotonic() < deadline, ray.get_job_info(f"tailor-{killed_id}-1")
            time.sleep(0.2)

        # They ran at once, on two nodes.
        a, b = ray.get_job_info(survivor_ref), ray.get_job_info(f"tailor-{killed_id}-1")
        assert str(a.status.value) == "RUNNING" and a.driver_node_id != b.driver_node_id
        assert a.start_time < b.end_time

        # The restarted server reconciles with Ray's view: `survivor` ran on, and a stop ends it on the
        # cluster; `killed` resumes from its checkpoint on a new node and completes.
        ray_cluster.add_nodes(1)
        server.start()
        wait_until_training(server, survivor)
        assert row(server, survivor)["executor_ref"] == survivor_ref and row(server, survivor)["attempts"] == 1
        bedrock.stop_model_customization_job(jobIdentifier=survivor)
        job = server.wait_for(survivor, {"Stopped", "Failed", "Completed"}, timeout=60)
        assert job["status"] == "Stopped", job
        deadline = time.monotonic() + 30
        while str(ray.get_job_status(survivor_ref).value) != "STOPPED":
            assert time.monotonic() < deadline, ray.get_job_info(survivor_ref)
            time.sleep(0.2)

        job = server.wait_for(killed, {"Completed", "Failed", "Stopped"}, timeout=240)
        assert job["status"] == "Completed", job
        assert row(server, killed)["attempts"] == 2
        assert row(server, killed)["executor_ref"] == f"tailor-{killed_id}-2"
        messages = [event.message for event in server.openai().fine_tuning.jobs.list_events(killed_id, limit=1000)]
        assert any(m.startswith("The worker process was lost") and "continues from its last checkpoint" in m
                   for m in messages)
        assert any(m.startswith("Resuming from the checkpoint at step ") for m in messages)

        # The job's log holds what Ray kept of each attempt's output.
        log = (scratch / "job.log").read_text()
        assert f"--- tailor-{killed_id}-1 ---" in log and f"--- tailor-{killed_id}-2 ---" in log
        assert "Running entrypoint for job" in log


def test_a_job_trained_by_two_processes_runs_through_ray_train_on_two_nodes(home, ray_cluster):
    """TAILOR_TRAINING_PROCESSES=2 under Ray: the job's worker runs TorchTrainer, whose two Ray
    Train workers (each asks for a CPU; a worker node has one) run the job's loop on the two
    worker nodes, joined by gloo. The job completes with exactly what torchrun's two processes
    train from the same job: the same server restarted with the local executor trains it again.
    (A stop of such a job mid-training — Stopped in Tailor, ended in Ray — passed in a longer
    version of this test and is left out of CI: a second Ray Train start costs ~20 s here.)"""
    from ray.job_submission import JobSubmissionClient
    from ray.util.state import list_actors, list_nodes
    from safetensors.torch import load_file

    ray = JobSubmissionClient(ray_cluster.dashboard)
    env = {"TAILOR_EXECUTOR": "ray", "TAILOR_RAY_ADDRESS": ray_cluster.dashboard, "TAILOR_TRAINING_PROCESSES": "2"}
    with running_server(home, ALIASES, env=env) as server:
        arns = [long_job(server, "ray-train", epochs=1)]
        job = server.wait_for(arns[0], {"Completed", "Failed", "Stopped"}, timeout=180)
        assert job["status"] == "Completed", job
        ref = row(server, arns[0])["executor_ref"]
        assert row(server, arns[0])["executor"] == "ray"

        # The same job (same records, same hyperparameters), trained by torchrun's two processes:
        # started now, while Ray's side is checked below (its driver is still ending).
        server.kill()
        server.env = {**server.env, "TAILOR_EXECUTOR": "local"}
        server.start()
        arns.append(long_job(server, "torchrun", epochs=1))

        assert ray_status(ray, ref, ("PENDING", "RUNNING")) == "SUCCEEDED"  # rank 0 wrote the row; the driver then ends
        assert "Training in 2 processes." in [  # the loop saw WORLD_SIZE=2, which TorchTrainer set
            event.message for event in server.openai().fine_tuning.jobs.list_events(arns[0].rsplit("/", 1)[1], limit=1000)]
        # Ray's own record: the Ray job's training workers were two actors, on two different worker nodes.
        actors = list_actors(address=ray_cluster.dashboard, filters=[("job_id", "=", ray.get_job_info(ref).job_id)],
                             detail=True, limit=1000)
        nodes = [actor.node_id for actor in actors if actor.class_name == "RayTrainWorker"]
        assert len(nodes) == 2 and len(set(nodes)) == 2, actors
        head = {node.node_id for node in list_nodes(address=ray_cluster.dashboard) if node.is_head_node}
        assert not head & set(nodes)

        job = server.wait_for(arns[1], {"Completed", "Failed", "Stopped"}, timeout=180)
        assert job["status"] == "Completed", job
        assert row(server, arns[1])["executor"] == "local"

        # The same training: loss, tokens and every weight of the custom model (gloo sums the two
        # processes' gradients in the same order whoever started them).
        bedrock, openai = server.client(), server.openai()
        losses = [bedrock.get_model_customization_job(jobIdentifier=arn)["trainingMetrics"]["trainingLoss"]
                  for arn in arns]
        assert losses[0] == pytest.approx(losses[1], rel=1e-6)
        tokens = [openai.fine_tuning.jobs.retrieve(arn.rsplit("/", 1)[1]).trained_tokens for arn in arns]
        assert tokens[0] == tokens[1] > 0
        weights = [load_file(server.home / "jobs" / arn.rsplit("/", 1)[1] / "output" / "model" / "model.safetensors")
                   for arn in arns]
        assert weights[0].keys() == weights[1].keys()
        assert max(float((weights[0][name] - weights[1][name]).abs().max()) for name in weights[1]) < 1e-6
