"""Workers as jobs on a Ray cluster, through Ray's Jobs API (``ray.job_submission``).

Each attempt of a job is one Ray job, submission id ``tailor-{job id}-{attempt}``, whose
entrypoint is the same worker a local process runs (``python -m tailor.jobs.worker KIND ID``):
it reads its spec from the database and writes every change there, so the cluster's nodes share
Tailor's database and storage (TAILOR_HOME, TAILOR_DATABASE_URL, ... go in the runtime
environment). The entrypoint asks Ray for the resources the job's pre-flight estimate needs (a
CPU, its GPUs, its peak memory), so Ray places it on a node that has them, or queues it. A job
trained by several processes asks for nothing itself: its worker starts Ray Train's
``TorchTrainer`` with one Ray Train worker per process, each with one process's share
(``train/ray_train.py``).

Ray's view of a submission is the worker's state: PENDING and RUNNING are alive; SUCCEEDED,
FAILED and STOPPED have ended (the runner then reads the row: a worker that wrote no result is
lost, and its job resumes from its checkpoint or fails with Ray's message); a submission Ray has
no record of (a cluster restarted without its GCS state) has ended too. A cluster out of reach
says nothing: the runner judges the job later.
"""

from __future__ import annotations

import logging
import os
import shlex
from pathlib import Path

from tailor.jobs.executors import Resources, Started, State, Unreachable
from tailor.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "http://127.0.0.1:8265"  # a local cluster's dashboard (``ray start --head``)
ALIVE = ("PENDING", "RUNNING")
# The environment a worker needs on the cluster: Tailor's settings, and what the worker's libraries read.
PASSED_PREFIXES = ("TAILOR_", "HF_", "TRANSFORMERS_", "OMP_NUM_THREADS")
RAY_TRAIN_WORKERS = "TAILOR_RAY_TRAIN_WORKERS"  # the worker trains through TorchTrainer with this many
RAY_TRAIN_MEMORY = "TAILOR_RAY_TRAIN_MEMORY_BYTES"  # ... each asking Ray for this much memory
RAY_TRAIN_GPUS = "TAILOR_RAY_TRAIN_GPUS"  # ... and this many GPUs


def address(settings: Settings) -> str:
    return settings.ray_address or os.environ.get("RAY_ADDRESS") or DEFAULT_ADDRESS


def submission_id(job_id: str, attempt: int) -> str:
    return f"tailor-{job_id}-{attempt}"


class RayExecutor:
    name = "ray"

    def __init__(self, settings: Settings):
        self.settings = settings
        self._client = None

    def client(self):
        """The Jobs API client, made on first use (making it asks the cluster for its version, so a
        server starts even while its cluster is down); ConnectionError when it is out of reach."""
        if self._client is None:
            from ray.job_submission import JobSubmissionClient

            self._client = JobSubmissionClient(address(self.settings))
        return self._client

    def environment(self, resources: Resources) -> dict[str, str]:
        env = {name: value for name, value in os.environ.items() if name.startswith(PASSED_PREFIXES)}
        env["TAILOR_HOME"] = str(self.settings.home)
        if self.settings.database_url:
            env["TAILOR_DATABASE_URL"] = self.settings.database_url
        # Ray's job supervisor sends SIGTERM on stop, then SIGKILL after this long: the worker's
        # grace to record Stopped, as a local worker has.
        env["RAY_JOB_STOP_WAIT_TIME_S"] = str(int(self.settings.stop_grace_seconds))
        if resources.processes > 1:
            env[RAY_TRAIN_WORKERS] = str(resources.processes)
            env[RAY_TRAIN_MEMORY] = str(resources.memory_bytes)
            env[RAY_TRAIN_GPUS] = str(resources.gpus)
        return env

    def submit(self, kind: str, job_id: str, work_dir: Path, resources: Resources, attempt: int = 1) -> Started:
        work_dir.mkdir(parents=True, exist_ok=True)  # shared storage: the worker writes there
        entrypoint = shlex.join([self.settings.ray_python, "-m", "tailor.jobs.worker", kind, job_id])
        ref = submission_id(job_id, attempt)
        if resources.processes > 1:  # the Ray Train workers hold the resources; the driver coordinates
            asks = {"entrypoint_num_cpus": 0}
        else:
            asks = {"entrypoint_num_cpus": 1, "entrypoint_num_gpus": resources.gpus,
                    "entrypoint_memory": resources.memory_bytes}
        try:
            self.client().submit_job(entrypoint=entrypoint, submission_id=ref,
                                     runtime_env={"env_vars": self.environment(resources)},
                                     metadata={"tailor_job": job_id, "tailor_kind": kind}, **asks)
        except RuntimeError as error:
            if "already exists" not in str(error):  # submitted before a crash: it is this attempt
                raise OSError(f"Ray refused the job: {error}") from error
        except Exception as error:  # out of reach: requests' ConnectionError, ...
            self._client = None
            raise Unreachable(f"the Ray cluster at {address(self.settings)} is out of reach: {error}") from error
        return Started(self.name, ref=ref)

    def state(self, row) -> State:
        if not row.executor_ref:
            return State("ended", "The job was never submitted to Ray.")
        try:
            info = self.client().get_job_info(row.executor_ref)
        except RuntimeError as error:
            if "does not exist" in str(error):
                return State("ended", f"Ray has no record of {row.executor_ref} (was the cluster restarted?).")
            log.warning("Ray: cannot read %s: %s", row.executor_ref, error)
            return State("unknown")
        except Exception as error:  # the cluster is out of reach: judge later
            log.warning("Ray: cannot read %s: %s", row.executor_ref, error)
            self._client = None
            return State("unknown")
        status = str(getattr(info.status, "value", info.status))
        if status in ALIVE:
            return State("alive")
        return State("ended", f"Ray: {row.executor_ref} {status}: {info.message}" if info.message
                     else f"Ray: {row.executor_ref} {status}.")

    def stop(self, row, force: bool) -> None:
        """``stop_job``: Ray's supervisor sends SIGTERM (the worker records Stopped), then SIGKILL
        after the grace (RAY_JOB_STOP_WAIT_TIME_S); ``force`` asks again, in case the first was lost."""
        if not row.executor_ref:
            return
        try:
            self.client().stop_job(row.executor_ref)
        except Exception as error:
            log.warning("Ray: cannot stop %s: %s", row.executor_ref, error)

    def logs(self, row) -> str | None:
        if not row.executor_ref:
            return None
        try:
            return self.client().get_job_logs(row.executor_ref)
        except Exception as error:
            log.warning("Ray: cannot read the logs of %s: %s", row.executor_ref, error)
            return None
