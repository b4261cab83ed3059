"""The job runner: starts queued jobs in worker processes, delivers stops, and reaps dead workers.

It runs every kind of job — customization, evaluation, OpenAI eval runs, batch inference, model
import and export — each in a worker process (``python -m tailor.jobs.worker KIND ID``), from one
queue, oldest first, under one concurrency limit. Where a worker runs is its executor's business
(``jobs/executors``: a local process, or a job on a Ray cluster); what happens to the job is the
runner's, decided alike for both from the executor's answer (alive, ended, or unknown for now).

It keeps no state that matters: every decision is read from the database on each tick, so a
server restarted after a crash (even SIGKILL) continues where the last one left off:
- queued jobs start in FIFO order, at most ``max_concurrent_jobs`` at a time;
- workers run in their own process session (or on the cluster) and outlive a killed server; a
  restarted server watches them again and they finish on their own; a local worker is judged by
  its pid only by a server on its own host;
- a customization job whose worker is gone without a result (killed, out of memory, machine
  rebooted) but left a checkpoint is queued again, and its next worker continues from there, up to
  ``max_job_attempts`` starts; any other such job is marked Failed with that reason, or Stopped
  if a stop had been requested — never left InProgress;
- a stop request (status Stopping) becomes SIGTERM to the worker (Ray: ``stop_job``, which does the
  same on the node), then SIGKILL after a grace period;
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
import shutil
import threading
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, update

from tailor import trained
from tailor.jobs.executors import (
    WORKER_LOG,
    Executor,
    Resources,
    Unreachable,
    executor_for,
)
from tailor.settings import Settings
from tailor.store.data_in_out import ExportJob, ImportJob, InvocationJob
from tailor.store.db import CLAIM_LOCK, Store, hold_lock, utcnow
from tailor.store.evals import EvalRun
from tailor.store.jobs import EvaluationJob, Job, JobEvent, JobLifecycle, transition
from tailor.train.checkpoints import last_saved
from tailor.train.devices import on_gpu, processes_for
from tailor.train.recipes import SUPERVISED
from tailor.trained import PARTIAL

log = logging.getLogger(__name__)

ACTIVE_PHASES = ("starting", "running")
WORKING = ("InProgress", "Stopping", "Pausing")  # statuses whose job may have a worker
# table -> the worker's KIND argument
WORKERS = {Job: "customization", EvaluationJob: "evaluation", EvalRun: "eval_run", InvocationJob: "invocation",
           ImportJob: "model_import", ExportJob: "model_export"}
LOST_WORKER = ("The job's worker process ended without a result: it was killed, ran out of memory, "
               "or the machine restarted, and no checkpoint (or no start) was left to continue from. Its log "
               "stays on the server (`tailor jobs logs JOB`). Create the job again to retry.")
UNSTARTABLE = ("The server could not start this job's worker ({reason}); the operator should check "
               "that TAILOR_HOME is writable and has space. Create the job again to retry.")
# A claimed job whose worker was never started (its server died between the two) is queued again
# after this long: sooner, another server's claim still starting it would be taken for one.
STARTING_STALE = timedelta(seconds=30)
UNREACHABLE_RETRY_SECONDS = 5.0  # the executor out of reach: how long queued jobs wait before another try
LOG_SYNC_SECONDS = 2.0  # how often an executor's logs (Ray's) are copied into the job's log


def queued(table):
    """The condition of ``table``'s jobs in the queue: what ``claim_next`` takes, oldest first."""
    return (table.status == "InProgress") & (table.phase == "queued")


def active(table):
    """The condition of ``table``'s jobs with a worker starting or running: what the concurrency
    limit counts and what the runner watches."""
    return table.status.in_(WORKING) & table.phase.in_(ACTIVE_PHASES)


class Runner:
    def __init__(self, store: Store, settings: Settings, interval: float = 0.5):
        self.store, self.settings, self.interval = store, settings, interval
        self._executors: dict[str, Executor] = {}
        self._terminated_at: dict[str, float] = {}
        self._forced: set[str] = set()
        self._unreachable_until = 0.0
        self._logs_synced_at = 0.0
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def executor(self, name: str | None = None) -> Executor:
        """The executor of a row (``executor``; NULL rows predate executors and ran locally), or with
        no name the one new jobs start on (``settings.executor``)."""
        name = name or self.settings.executor
        if name not in self._executors:
            self._executors[name] = executor_for(self.settings, name)
        return self._executors[name]

    def _executor_of(self, job: JobLifecycle) -> Executor:
        return self.executor(job.executor or "local")

    def start(self) -> None:
        """Clean up after ended jobs, then tick in a thread. The first tick reconciles every working
        job with its executor's view (a local pid, Ray's job status): running ones are left running,
        ended or lost ones are reaped as below — the database stays the source of truth."""
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
        local = self._executors.get("local")
        if local is not None:
            local.poll()
        self._reap()
        self._deliver_stops()
        self._start_queued()
        if time.monotonic() - self._logs_synced_at >= LOG_SYNC_SECONDS:
            self._logs_synced_at = time.monotonic()
            self._sync_logs()

    def _reap(self) -> None:
        for table in WORKERS:
            with self.store.session() as session:
                jobs = session.scalars(select(table).where(active(table)))
                for job in jobs:
                    self._reap_one(session, job)

    def _reap_one(self, session, job: JobLifecycle) -> None:
        if job.phase == "starting" and job.pid is None and job.executor_ref is None:
            if _age(job) > STARTING_STALE:
                job.phase = "queued"  # the server that claimed it died before starting its worker
            return
        state = self._executor_of(job).state(job)
        if state.kind != "ended":  # running, or not ours to judge now (another host's, Ray out of reach)
            return
        session.refresh(job)  # the worker may have just written its result
        if job.status not in WORKING:
            self._sync_log(job)
            return
        self._sync_log(job)
        if job.stop_requested:
            transition(job, "Stopped")
        elif job.status == "Pausing" and self._has_checkpoint(job):
            transition(job, "Paused", phase="paused", pid=None, pid_started=None)  # lost while pausing
            return
        elif self._resumable(job):
            # Queued again: its next worker continues from the checkpoint (jobs/customization.py).
            job.phase, job.pid, job.pid_started, job.executor_ref = "queued", None, None, None
            how = f" ({state.message})" if state.message else ""
            session.add(JobEvent(job_id=job.id, created_at=utcnow(), kind="message", level="warn", data={},
                                 message=f"The worker process was lost (killed, out of memory, or the machine "
                                         f"restarted){how}; the job continues from its last checkpoint (start "
                                         f"{job.attempts + 1} of {self.settings.max_job_attempts})."))
            return
        else:
            reason = LOST_WORKER if not state.message else f"{LOST_WORKER} {state.message}"
            transition(job, "Failed", failure_message=reason)
        self._terminated_at.pop(job.id, None)
        self._forced.discard(job.id)
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
        executor = self._executor_of(job)
        if executor.state(job).kind != "alive":
            return  # reaped on the next tick (or by the server of the worker's host)
        sent = self._terminated_at.get(job.id)
        if sent is None:
            executor.stop(job, force=False)
            self._terminated_at[job.id] = time.monotonic()
        elif time.monotonic() - sent > self.settings.stop_grace_seconds and (
                job.executor != "ray" or job.id not in self._forced):
            executor.stop(job, force=True)  # a local worker: SIGKILL every tick until it is gone
            self._forced.add(job.id)

    def clean_ended(self) -> None:
        """Remove the leftovers of every job that has ended (what workers killed mid-write left)."""
        for path in ended_leftovers(self.store):
            shutil.rmtree(path, ignore_errors=True)

    def _start_queued(self) -> None:
        if time.monotonic() < self._unreachable_until:
            return
        while (claimed := self.claim_next()) is not None:
            table, job = claimed
            if not self._spawn(table, job.id, Path(job.work_dir), self._resources(job)):
                return

    def claim_next(self) -> tuple[type, JobLifecycle] | None:
        """Claim the oldest queued job of any kind (phase queued -> starting) if fewer than
        ``max_concurrent_jobs`` are running; None when there is none or no room. Several servers
        may call this at once on one database: each job is claimed by exactly one of them."""
        with self.store.session() as session:
            # One server at a time counts and claims, so servers sharing a database never start more
            # than max_concurrent_jobs between them (a job is claimed once anyway: the UPDATE below
            # only succeeds while it is still queued).
            hold_lock(session, CLAIM_LOCK)
            running = sum(session.scalar(select(func.count()).select_from(table).where(active(table)))
                          for table in WORKERS)
            if running >= self.settings.max_concurrent_jobs:
                return None
            oldest = [session.scalar(select(table).where(queued(table)).order_by(table.created_at, table.id).limit(1))
                      for table in WORKERS]
            oldest = [job for job in oldest if job is not None]
            if not oldest:
                return None
            job = min(oldest, key=lambda j: (j.created_at, j.id))
            table = type(job)
            claimed = session.execute(update(table).where(table.id == job.id, table.phase == "queued")
                                      .values(phase="starting", last_modified_at=utcnow())).rowcount
        # Lost to another server between the read and the UPDATE: look again.
        return (table, job) if claimed else self.claim_next()

    def _resources(self, job: JobLifecycle) -> Resources:
        """What ``job``'s worker needs: for the supervised recipes, the server's training processes
        (data parallel or sharded: ``train/distributed.py``), each with the memory of the job's
        pre-flight estimate and a GPU when training runs on GPUs; one process for everything else."""
        if not (isinstance(job, Job) and job.customization_type in SUPERVISED):
            return Resources()
        with self.store.session() as session:
            estimate = session.scalar(select(JobEvent.data).where(
                JobEvent.job_id == job.id, JobEvent.kind == "estimate").order_by(JobEvent.id).limit(1))
        gpus = self.settings.ray_gpus_per_process
        if gpus is None:
            gpus = 1 if on_gpu(self.settings) else 0
        return Resources(processes=processes_for(self.settings), gpus=gpus,
                         memory_bytes=int((estimate or {}).get("peak_bytes") or 0))

    def _spawn(self, table, job_id: str, work_dir: Path, resources: Resources = Resources()) -> bool:
        """Start the claimed job's worker on the server's executor; False when the executor is out
        of reach (the job is queued again, and the queue waits)."""
        executor = self.executor()
        with self.store.session() as session:
            attempt = getattr(session.get(table, job_id), "attempts", 0) + 1  # customization jobs count starts
        try:
            started = executor.submit(WORKERS[table], job_id, work_dir, resources, attempt)
        except Unreachable as error:
            log.warning("job %s waits: %s", job_id, error)
            with self.store.session() as session:
                session.get(table, job_id).phase = "queued"
            self._unreachable_until = time.monotonic() + UNREACHABLE_RETRY_SECONDS
            return False
        except OSError as error:
            log.error("job %s: cannot start its worker in %s: %s", job_id, work_dir, error)
            with self.store.session() as session:
                transition(session.get(table, job_id), "Failed",
                           failure_message=UNSTARTABLE.format(reason=error.strerror or str(error)))
            return True
        with self.store.session() as session:
            job = session.get(table, job_id)
            job.pid, job.pid_started, job.phase = started.pid, started.pid_started, "running"
            job.executor, job.executor_ref, job.host = started.executor, started.ref, started.host
            if isinstance(job, Job):
                job.attempts += 1
        return True

    def _sync_logs(self) -> None:
        """Copy the logs an executor keeps (Ray's) into each running job's log, for ``tailor jobs logs``."""
        for table in WORKERS:
            with self.store.session() as session:
                jobs = list(session.scalars(select(table).where(
                    table.status.in_(WORKING), table.phase == "running", table.executor_ref.is_not(None))))
            for job in jobs:
                self._sync_log(job)

    def _sync_log(self, job: JobLifecycle) -> None:
        if job.executor_ref is None or (text := self._executor_of(job).logs(job)) is None:
            return
        try:
            append_attempt_log(Path(job.work_dir) / WORKER_LOG, job.executor_ref, text)
        except OSError as error:
            log.warning("job %s: cannot write its log: %s", job.id, error)


def append_attempt_log(path: Path, ref: str, text: str) -> None:
    """Bring ``path`` up to date with attempt ``ref``'s whole log ``text``, under a header line of its
    own: only what is new is appended (a reader following the file sees it grow), and the logs of
    earlier attempts stay above it."""
    header = f"--- {ref} ---\n"
    old = ""
    if path.exists():
        with open(path, newline="", errors="replace") as file:  # as written: progress bars' \r kept
            old = file.read()
    at = old.find(header)
    if at < 0:
        with open(path, "a") as file:
            file.write(("" if not old or old.endswith("\n") else "\n") + header + text)
        return
    have = old[at + len(header):]
    if text.startswith(have):
        if len(text) > len(have):
            with open(path, "a") as file:
                file.write(text[len(have):])
    else:  # the executor's log was cut or rewritten: the attempt's part is replaced
        with open(path, "w", newline="") as file:
            file.write(old[:at] + header + text)


def _age(job: JobLifecycle) -> timedelta:
    changed = job.last_modified_at
    now = utcnow()
    if changed.tzinfo is None and now.tzinfo is not None:  # SQLite returns naive UTC datetimes
        changed = changed.replace(tzinfo=now.tzinfo)
    return now - changed


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
