"""The runner tells a live worker from a dead one by pid *and* start time, on real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tailor.jobs.executors.local import process_start_time, worker_alive
from tailor.store.jobs import Job


@pytest.fixture
def sleeper():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child
    child.kill()
    child.wait()


def proc_stat_start_ticks(pid: int) -> str:
    """What rows written before psutil hold: field 22 of /proc/PID/stat, in clock ticks since boot."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2:].split()[19]


def test_a_running_worker_is_alive_by_its_recorded_start_time(sleeper):
    started = process_start_time(sleeper.pid)
    assert started is not None
    assert float(started) == pytest.approx(psutil.Process(sleeper.pid).create_time(), abs=0.01)
    assert worker_alive(Job(pid=sleeper.pid, pid_started=started))


def test_another_process_with_the_same_pid_is_not_the_worker(sleeper):
    """A reused pid: the process that holds it now started at another time than the one recorded."""
    started = float(process_start_time(sleeper.pid))
    assert not worker_alive(Job(pid=sleeper.pid, pid_started=f"{started - 60:.2f}"))
    assert not worker_alive(Job(pid=sleeper.pid, pid_started="not a start time"))
    assert not worker_alive(Job(pid=sleeper.pid, pid_started=None))


def test_rows_written_before_psutil_keep_their_meaning(sleeper):
    """The /proc tick count an older server stored still names the same live worker."""
    assert worker_alive(Job(pid=sleeper.pid, pid_started=proc_stat_start_ticks(sleeper.pid)))
    ticks_per_second = os.sysconf("SC_CLK_TCK")
    earlier = str(int(proc_stat_start_ticks(sleeper.pid)) - 60 * ticks_per_second)
    assert not worker_alive(Job(pid=sleeper.pid, pid_started=earlier))


def test_a_finished_worker_is_dead_reaped_or_not():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = process_start_time(child.pid)
    assert started is not None
    deadline = time.monotonic() + 30
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process_start_time(child.pid) is None  # exited, not yet waited for: a zombie
    assert not worker_alive(Job(pid=child.pid, pid_started=started))
    child.wait()
    assert process_start_time(child.pid) is None
    assert not worker_alive(Job(pid=child.pid, pid_started=started))
