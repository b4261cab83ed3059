"""The job runner: starts queued jobs in worker processes, delivers stops, and reaps dead workers.

It runs every kind of job — customization, evaluation, OpenAI eval runs, batch inference, model
import and export — each in a worker process (``python -m tailor.jobs.worker KIND ID``), from one
queue, oldest first, under one concurrency limit.

It keeps no state that matters: every decision is read from the database on each tick, so a
server restarted after a crash (even SIGKILL) continues where the last one left off:
- queued jobs start in FIFO order, at most ``max_concurrent_jobs`` at a time;
- workers run in their own process session and outlive a killed server; a restarted server
  watches them again and they finish on their own;
- a customization job whose worker is gone without a result (killed, out of memory, machine
  rebooted) but left a checkpoint is queued again, and its next worker continues from there, up to
  ``max_job_attempts`` starts; any other such job is marked Failed with that reason, or Stopped
  if a stop had been requested — never left InProgress;
- a stop request (status Stopping) becomes SIGTERM to the worker, then SIGKILL after a grace period;
  a paused job (no worker) is stopped at once and its checkpoint removed; a pause request (status
  Pausing) is read by the worker itself, which checkpoints and ends the job Paused;
- a job whose worker cannot even be started (its folder cannot be created: a full disk, an
  unwritable ``$TAILOR_HOME/jobs``) fails with that reason, and the queue goes on;
- scratch left by a worker that died mid-write (training's ``.*.partial-*`` folders, an
  evaluation's staging folder, a failed job's unpublished output) is removed once the job has
  ended: at start for every ended job, and for each job the runner itself sees end.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
from sqlalchemy import func, select, update

from tailor import trained
from tailor.settings import Settings
from tailor.store.data_in_out import ExportJob, ImportJob, InvocationJob
from tailor.store.db import CLAIM_LOCK, Store, hold_lock, utcnow
from tailor.store.evals import EvalRun
from tailor.store.jobs import EvaluationJob, Job, JobEvent, JobLifecycle, transition
from tailor.train import distributed
from tailor.train.checkpoints import last_saved
from tailor.train.devices import processes_for
from tailor.train.recipes import SUPERVISED
from tailor.trained import PARTIAL

log = logging.getLogger(__name__)

ACTIVE_PHASES = ("starting", "running")
WORKING = ("InProgress", "Stopping", "Pausing")  # statuses whose job may have a worker
WORKER_LOG = "job.log"  # in the job's folder: the worker's output, progress lines, a crash's traceback
# table -> the worker's KIND argument
WORKERS = {Job: "customization", EvaluationJob: "evaluation", EvalRun: "eval_run", InvocationJob: "invocation",
           ImportJob: "model_import", ExportJob: "model_export"}
LOST_WORKER = ("The job's worker process ended without a result: it was killed, ran out of memory, "
               "or the machine restarted, and no checkpoint (or no start) was left to continue from. Its log "
               "stays on the server (`tailor jobs logs JOB`). Create the job again to retry.")
UNSTARTABLE = ("The server could not start this job's worker ({reason}); the operator should check "
               "that TAILOR_HOME is writable and has space. Create the job again to retry.")


# How far apart two readings of one process's start time may be and still name the same process.
# psutil gives the start time as boot time + kernel start ticks / CLK_TCK; the boot time is read
# from /proc/stat in whole seconds and moves when the wall clock is stepped, so two servers may
# differ by a second for the same process. A reused pid belongs to a process started after ours
# ended, at the earliest one tick later; 1 s of tolerance therefore trades a pid reused within the
# same second (needs the whole pid space to wrap in that second) for no false "worker died".
START_TIME_TOLERANCE_SECONDS = 1.0


def process_start_time(pid: int) -> str | None:
    """When ``pid`` started, as stored in ``pid_started`` (seconds since the epoch, from psutil);
    None when there is no such process or it has finished (a zombie)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:  # finished, not yet reaped by its parent
            return None
        return f"{process.create_time():.2f}"
    except psutil.Error:  # NoSuchProcess, AccessDenied, ZombieProcess: not one we can watch
        return None


def _stored_start_seconds(stored: str) -> float | None:
    """A stored ``pid_started`` as seconds since the epoch. Rows written before psutil hold the raw
    /proc/PID/stat field (kernel ticks since boot, an integer); they are converted with this boot's
    time rather than treated as a mismatch, which would fail every job that was running across the
    upgrade while its worker went on. (Such a value cannot say which boot it counts from, exactly
    as before; a worker from before a reboot is gone, and a new process would have to hold its pid
    *and* have started at the same tick after this boot to be taken for it.) A value in neither
    format was written by no version of Tailor: it names no process we started."""
    try:
        if stored.isdigit():
            return psutil.boot_time() + int(stored) / os.sysconf("SC_CLK_TCK")
        return float(stored)
    except (ValueError, OSError):
        return None


def worker_alive(job: JobLifecycle) -> bool:
    if job.pid is None or job.pid_started is None:  # never started, or gone before we saw it
        return False
    started, expected = process_start_time(job.pid), _stored_start_seconds(job.pid_started)
    if started is None or expected is None:
        return False
    return abs(float(started) - expected) <= START_TIME_TOLERANCE_SECONDS


class Runner:
    def __init__(self, store: Store, settings: Settings, interval: float = 0.5):
        self.store, self.settings, self.interval = store, settings, interval
        # By job id (unique across tables); reaped by poll() so none stay zombies.
        self._children: dict[str, subprocess.Popen] = {}
        self._terminated_at: dict[str, float] = {}
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.clean_ended()
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
        for table in WORKERS:
            with self.store.session() as session:
                jobs = session.scalars(select(table).where(table.status.in_(WORKING),
                                                           table.phase.in_(ACTIVE_PHASES)))
                for job in jobs:
                    self._reap_one(session, job)

    def _reap_one(self, session, job: JobLifecycle) -> None:
        if job.phase == "starting" and job.pid is None:
            job.phase = "queued"  # the server died between claiming and spawning
            return
        if worker_alive(job):
            return
        session.refresh(job)  # the worker may have just written its result
        if job.status not in WORKING:
            return
        if job.stop_requested:
            transition(job, "Stopped")
        elif job.status == "Pausing" and self._has_checkpoint(job):
            transition(job, "Paused", phase="paused", pid=None, pid_started=None)  # lost while pausing
            return
        elif self._resumable(job):
            # Queued again: its next worker continues from the checkpoint (jobs/customization.py).
            job.phase, job.pid, job.pid_started = "queued", None, None
            session.add(JobEvent(job_id=job.id, created_at=utcnow(), kind="message", level="warn", data={},
                                 message=f"The worker process was lost (killed, out of memory, or the machine "
                                         f"restarted); the job continues from its last checkpoint (start "
                                         f"{job.attempts + 1} of {self.settings.max_job_attempts})."))
            return
        else:
            transition(job, "Failed", failure_message=LOST_WORKER)
        self._terminated_at.pop(job.id, None)
        clean_scratch(Path(job.work_dir), keep_output=False)

    def _resumable(self, job: JobLifecycle) -> bool:
        """A customization job that has starts left and whose lost worker saved a checkpoint."""
        return job.attempts < self.settings.max_job_attempts and self._has_checkpoint(job)

    @staticmethod
    def _has_checkpoint(job: JobLifecycle) -> bool:
        return isinstance(job, Job) and last_saved(trained.in_progress(Path(job.work_dir) / "output")) is not None

    def _deliver_stops(self) -> None:
        for table in WORKERS:
            with self.store.session() as session:
                stopping = list(session.scalars(select(table).where(table.status == "Stopping")))
            for job in stopping:
                self._stop(table, job)

    def _stop(self, table, job: JobLifecycle) -> None:
        if job.phase in ("queued", "paused"):  # no worker: a paused job's checkpoint goes too
            with self.store.session() as session:
                transition(session.get(table, job.id), "Stopped")
            clean_scratch(Path(job.work_dir), keep_output=False)
            return
        if not worker_alive(job):
            return  # reaped on the next tick
        sent = self._terminated_at.get(job.id)
        if sent is None:
            self._signal(job, signal.SIGTERM)
            self._terminated_at[job.id] = time.monotonic()
        elif time.monotonic() - sent > self.settings.stop_grace_seconds:
            self._signal(job, signal.SIGKILL)

    def clean_ended(self) -> None:
        """Remove the leftovers of every job that has ended (what workers killed mid-write left)."""
        for path in ended_leftovers(self.store):
            shutil.rmtree(path, ignore_errors=True)

    @staticmethod
    def _signal(job: JobLifecycle, signum: int) -> None:
        try:
            os.killpg(job.pid, signum)  # the worker leads its own session: stop its children too
        except ProcessLookupError:
            pass

    def _start_queued(self) -> None:
        while (claimed := self.claim_next()) is not None:
            table, job = claimed
            self._spawn(table, job.id, Path(job.work_dir), self._processes(job))

    def claim_next(self) -> tuple[type, JobLifecycle] | None:
        """Claim the oldest queued job of any kind (phase queued -> starting) if fewer than
        ``max_concurrent_jobs`` are running; None when there is none or no room. Several servers
        may call this at once on one database: each job is claimed by exactly one of them."""
        with self.store.session() as session:
            # One server at a time counts and claims, so servers sharing a database never start more
            # than max_concurrent_jobs between them (a job is claimed once anyway: the UPDATE below
            # only succeeds while it is still queued).
            hold_lock(session, CLAIM_LOCK)
            running = sum(session.scalar(select(func.count()).select_from(table).where(
                table.status.in_(WORKING), table.phase.in_(ACTIVE_PHASES)))
                for table in WORKERS)
            if running >= self.settings.max_concurrent_jobs:
                return None
            queued = [session.scalar(select(table).where(table.status == "InProgress", table.phase == "queued")
                                     .order_by(table.created_at, table.id).limit(1)) for table in WORKERS]
            queued = [job for job in queued if job is not None]
            if not queued:
                return None
            job = min(queued, key=lambda j: (j.created_at, j.id))
            table = type(job)
            claimed = session.execute(update(table).where(table.id == job.id, table.phase == "queued")
                                      .values(phase="starting", last_modified_at=utcnow())).rowcount
        # Lost to another server between the read and the UPDATE: look again.
        return (table, job) if claimed else self.claim_next()

    def _processes(self, job: JobLifecycle) -> int:
        """How many processes train ``job``: the server's setting for the supervised recipes, which
        train data parallel or sharded (``train/distributed.py``); one for everything else."""
        if isinstance(job, Job) and job.customization_type in SUPERVISED:
            return processes_for(self.settings)
        return 1

    def _spawn(self, table, job_id: str, work_dir: Path, processes: int = 1) -> None:
        worker = ["tailor.jobs.worker", WORKERS[table], job_id]
        # Several processes: torchrun starts them, and is the process the job's row watches.
        command = distributed.launch_command(processes, worker) if processes > 1 else [sys.executable, "-m", *worker]
        try:
            work_dir.mkdir(parents=True, exist_ok=True)
            with open(work_dir / WORKER_LOG, "ab") as log_file:
                child = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env={**distributed.launch_environment(processes), "TAILOR_HOME": str(self.settings.home)},
                )
        except OSError as error:
            log.error("job %s: cannot start its worker in %s: %s", job_id, work_dir, error)
            with self.store.session() as session:
                transition(session.get(table, job_id), "Failed",
                           failure_message=UNSTARTABLE.format(reason=error.strerror or type(error).__name__))
            return
        self._children[job_id] = child
        with self.store.session() as session:
            job = session.get(table, job_id)
            job.pid, job.pid_started, job.phase = child.pid, process_start_time(child.pid), "running"
            if isinstance(job, Job):
                job.attempts += 1


def leftovers(work_dir: Path, *, keep_output: bool) -> list[Path]:
    """What an ended job's worker left half-written in its folder: training scratch
    (``.output.partial-PID``), and unless the job completed, its output (a failed training's
    weights, an evaluation's staging folder), which nothing will ever publish. The log is kept."""
    if not work_dir.is_dir():
        return []
    found = list(work_dir.glob(f".*{PARTIAL}*"))
    if not keep_output and (work_dir / "output").exists():
        found.append(work_dir / "output")
    return found


def ended_leftovers(store: Store) -> list[Path]:
    """The leftovers of every job, of both kinds, that has ended."""
    found: list[Path] = []
    for table in WORKERS:
        with store.session() as session:
            ended = session.execute(select(table.work_dir, table.status).where(table.phase == "done")).all()
        for work_dir, status in ended:
            found += leftovers(Path(work_dir), keep_output=status == "Completed")
    return found


def clean_scratch(work_dir: Path, *, keep_output: bool) -> None:
    for path in leftovers(work_dir, keep_output=keep_output):
        shutil.rmtree(path, ignore_errors=True)
