"""Workers as processes on the server's machine.

Each worker (``python -m tailor.jobs.worker KIND ID``; under torchrun when it trains in several
processes) runs in its own process session, so a crash, an OOM or a server killed with SIGKILL
never takes a job down with it, nor the other way round, and a stop reaches the whole group. Its
output goes to the job's ``job.log``. The row records its pid, its start time (a pid alone could
name a later process that reused it) and this machine's name: only a server on the same machine
can judge a pid; another one leaves the row to it (``State("unknown")``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil

from tailor.jobs.executors import WORKER_LOG, Resources, Started, State
from tailor.settings import Settings
from tailor.train import distributed

# How far apart two readings of one process's start time may be and still name the same process.
# psutil gives the start time as boot time + kernel start ticks / CLK_TCK; the boot time is read
# from /proc/stat in whole seconds and moves when the wall clock is stepped, so two servers may
# differ by a second for the same process. A reused pid belongs to a process started after ours
# ended, at the earliest one tick later; 1 s of tolerance therefore trades a pid reused within the
# same second (needs the whole pid space to wrap in that second) for no false "worker died".
START_TIME_TOLERANCE_SECONDS = 1.0


def this_host() -> str:
    return socket.gethostname()


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


def worker_alive(job) -> bool:
    """Whether the process ``job``'s row records (pid and start time) still runs on this machine."""
    if job.pid is None or job.pid_started is None:  # never started, or gone before we saw it
        return False
    started, expected = process_start_time(job.pid), _stored_start_seconds(job.pid_started)
    if started is None or expected is None:
        return False
    return abs(float(started) - expected) <= START_TIME_TOLERANCE_SECONDS


class LocalExecutor:
    name = "local"

    def __init__(self, settings: Settings):
        self.settings = settings
        self._children: dict[int, subprocess.Popen] = {}  # by pid; waited for so none stay zombies

    def submit(self, kind: str, job_id: str, work_dir: Path, resources: Resources, attempt: int = 1) -> Started:
        worker = ["tailor.jobs.worker", kind, job_id]
        processes = resources.processes
        # Several processes: torchrun starts them, and is the process the job's row watches.
        command = distributed.launch_command(processes, worker) if processes > 1 else [sys.executable, "-m", *worker]
        work_dir.mkdir(parents=True, exist_ok=True)
        with open(work_dir / WORKER_LOG, "ab") as log_file:
            child = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**distributed.launch_environment(processes), "TAILOR_HOME": str(self.settings.home)},
            )
        self._children[child.pid] = child
        return Started(self.name, pid=child.pid, pid_started=process_start_time(child.pid), host=this_host())

    def poll(self) -> None:
        """Wait for the children that have ended (else they stay zombies until the server exits)."""
        for pid, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[pid]

    @staticmethod
    def ours(row) -> bool:
        """Whether this server may judge ``row``'s pid: its worker runs on this machine (rows
        without a host predate several servers: this one's)."""
        return row.host is None or row.host == this_host()

    def state(self, row) -> State:
        if not self.ours(row):
            return State("unknown")  # another machine's process: its server judges it
        return State("alive") if worker_alive(row) else State("ended")

    def stop(self, row, force: bool) -> None:
        if not self.ours(row) or not worker_alive(row):
            return
        try:
            os.killpg(row.pid, signal.SIGKILL if force else signal.SIGTERM)  # the worker leads its session
        except ProcessLookupError:
            pass

    def logs(self, row) -> str | None:
        return None  # the worker writes job.log itself
