"""Where a job's worker runs: a process on the server's machine (``local``) or a job on a Ray
cluster (``ray``). The runner (``jobs/runner.py``) decides what runs, resumes and fails; an
executor only starts a worker, says whether it is still running, stops it and reads its log.

Every job's row says which executor runs its current attempt (``executor``) and how to find it
again (``pid``/``pid_started``/``host`` for a local process, ``executor_ref`` for Ray's submission
id), so any server — restarted, or another one on the same database — judges it from the row
alone. docs/executors.md says more.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from tailor.settings import Settings

WORKER_LOG = "job.log"  # in the job's folder: the worker's output, progress lines, a crash's traceback


class Unreachable(OSError):
    """The executor cannot be reached now (a Ray cluster down): the job waits in the queue."""


@dataclass(frozen=True)
class Resources:
    """What one job's worker asks for, from its pre-flight estimate (``train/preflight.py``)."""

    processes: int = 1  # training processes (one per device)
    memory_bytes: int = 0  # per process; 0: unknown (no estimate)
    gpus: int = 0  # per process


@dataclass(frozen=True)
class Started:
    """Where a started worker is, as its row records it."""

    executor: str
    pid: int | None = None
    pid_started: str | None = None
    host: str | None = None
    ref: str | None = None


@dataclass(frozen=True)
class State:
    """What the executor knows of a worker: ``alive``; ``ended`` (``message`` says how, when the
    executor knows); ``unknown``: the executor cannot tell now (a cluster out of reach) — judge later."""

    kind: Literal["alive", "ended", "unknown"]
    message: str | None = None


class Executor(Protocol):
    name: str

    def submit(self, kind: str, job_id: str, work_dir: Path, resources: Resources, attempt: int) -> Started:
        """Start ``python -m tailor.jobs.worker KIND JOB_ID``; raises ``OSError`` when it cannot."""

    def state(self, row) -> State:
        """The worker of ``row`` (a job table's row: pid, pid_started, host, executor_ref)."""

    def stop(self, row, force: bool) -> None:
        """Ask the worker to end (it records Stopped), or with ``force`` end it now."""

    def logs(self, row) -> str | None:
        """The worker's output as the executor keeps it; None when the worker writes ``WORKER_LOG`` itself."""


def executor_for(settings: Settings, name: str | None = None) -> Executor:
    """The executor called ``name`` (a row's ``executor``; NULL rows predate executors: local),
    else the server's (``settings.executor``)."""
    name = name or settings.executor
    if name == "ray":
        from tailor.jobs.executors.ray import (
            RayExecutor,  # imports ray: only for servers that use it
        )

        return RayExecutor(settings)
    from tailor.jobs.executors.local import LocalExecutor

    return LocalExecutor(settings)
