"""Jobs on a real Ray cluster (``TAILOR_EXECUTOR=ray``): one head that holds no CPU and two worker
nodes of one CPU each (``tests/backing/ray_cluster.py``), so every job lands on a worker node and
two jobs run on two nodes at once. Real training of the tiny model, through boto3.

One scenario, because a cluster and a server cost more than the jobs: two jobs start together
on the two nodes; one node is killed mid-training together with the server, and the restarted
server reconciles with Ray's view — the lost job resumes from its checkpoint on a new node and
completes, the other one ran on through it all, and a stop ends it on the cluster.
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
