"""The job runner: starts queued jobs in worker processes, delivers stops, and reaps dead workers.

It keeps no state that matters: every decision is read from the database on each tick, so a
server restarted after a crash (even SIGKILL) continues where the last one left off:
- queued jobs start in FIFO order, at most ``max_concurrent_jobs`` at a time;
- workers run in their own process session and outlive a killed server; a restarted server
  watches them again and they finish on their own;
- a job whose worker is gone without a result (killed, out of memory, machine rebooted) is
  marked Failed with that reason, or Stopped if a stop had been requested — never left InProgress;
- a stop request (status Stopping) becomes SIGTERM to the worker, then SIGKILL after a grace period.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import func, select, update

from tailor.jobs.store import Job, Store, transition, utcnow
from tailor.settings import Settings

log = logging.getLogger(__name__)

ACTIVE_PHASES = ("starting", "running")
LOST_WORKER = ("The job's worker process ended without a result: it was killed, ran out of memory, "
               "or the machine restarted. Its log is {log}. Create the job again to retry.")


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (to tell our worker from a later process with its pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has finished
        return None
    return fields[19]


def worker_alive(job: Job) -> bool:
    if job.pid is None or job.pid_started is None:  # never started, or gone before we saw it
        return False
    return process_start_time(job.pid) == job.pid_started


class Runner:
    def __init__(self, store: Store, settings: Settings, interval: float = 0.5):
        self.store, self.settings, self.interval = store, settings, interval
        self._children: dict[str, subprocess.Popen] = {}  # reaped by poll() so none stay zombies
        self._terminated_at: dict[str, float] = {}
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="tailor-runner", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._halt.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._halt.is_set():
            try:
                self.tick()
            except Exception:  # the runner must outlive any one bad tick (a locked DB, a full disk)
                log.exception("job runner tick failed")
            self._halt.wait(self.interval)

    def tick(self) -> None:
        for job_id, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[job_id]
        self._reap()
        self._deliver_stops()
        self._start_queued()

    def _reap(self) -> None:
        with self.store.session() as session:
            jobs = session.scalars(select(Job).where(Job.status.in_(("InProgress", "Stopping")),
                                                     Job.phase.in_(ACTIVE_PHASES)))
            for job in jobs:
                if job.phase == "starting" and job.pid is None:
                    job.phase = "queued"  # the server died between claiming and spawning
                    continue
                if worker_alive(job):
                    continue
                session.refresh(job)  # the worker may have just written its result
                if job.status not in ("InProgress", "Stopping"):
                    continue
                if job.stop_requested:
                    transition(job, "Stopped")
                else:
                    transition(job, "Failed", failure_message=LOST_WORKER.format(log=Path(job.work_dir) / "job.log"))
                self._terminated_at.pop(job.id, None)

    def _deliver_stops(self) -> None:
        with self.store.session() as session:
            stopping = list(session.scalars(select(Job).where(Job.status == "Stopping")))
        for job in stopping:
            if job.phase == "queued":
                with self.store.session() as session:
                    transition(session.get(Job, job.id), "Stopped")
                continue
            if not worker_alive(job):
                continue  # reaped on the next tick
            sent = self._terminated_at.get(job.id)
            if sent is None:
                self._signal(job, signal.SIGTERM)
                self._terminated_at[job.id] = time.monotonic()
            elif time.monotonic() - sent > self.settings.stop_grace_seconds:
                self._signal(job, signal.SIGKILL)

    @staticmethod
    def _signal(job: Job, signum: int) -> None:
        try:
            os.killpg(job.pid, signum)  # the worker leads its own session: stop its children too
        except ProcessLookupError:
            pass

    def _start_queued(self) -> None:
        while True:
            with self.store.session() as session:
                running = session.scalar(select(func.count()).select_from(Job).where(
                    Job.status.in_(("InProgress", "Stopping")), Job.phase.in_(ACTIVE_PHASES)))
                if running >= self.settings.max_concurrent_jobs:
                    return
                job = session.scalar(select(Job).where(Job.status == "InProgress", Job.phase == "queued")
                                     .order_by(Job.created_at, Job.id).limit(1))
                if job is None:
                    return
                # Claim it: only one server wins a job even when several share a database.
                claimed = session.execute(update(Job).where(Job.id == job.id, Job.phase == "queued")
                                          .values(phase="starting", last_modified_at=utcnow())).rowcount
            if claimed:
                self._spawn(job.id, Path(job.work_dir))

    def _spawn(self, job_id: str, work_dir: Path) -> None:
        work_dir.mkdir(parents=True, exist_ok=True)
        with open(work_dir / "job.log", "ab") as log_file:
            child = subprocess.Popen(
                [sys.executable, "-m", "tailor.jobs.worker", job_id],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True, env={**os.environ, "TAILOR_HOME": str(self.settings.home)},
            )
        self._children[job_id] = child
        with self.store.session() as session:
            job = session.get(Job, job_id)
            job.pid, job.pid_started, job.phase = child.pid, process_start_time(child.pid), "running"
