"""The local executor on real processes, the job log an executor's logs are copied into, and a
stop that reaches a worker running off the main thread (as Ray Train runs it)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tailor.jobs.ending import Stop
from tailor.jobs.executors import WORKER_LOG, Resources, executor_for
from tailor.jobs.executors.local import LocalExecutor, process_start_time
from tailor.jobs.runner import append_attempt_log
from tailor.settings import Settings
from tailor.store.jobs import Job


def wait_until(predicate, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_executor_for_picks_by_name(tmp_path):
    settings = Settings(home=tmp_path)
    assert executor_for(settings).name == "local"
    assert executor_for(settings, "local").name == "local"
    assert executor_for(Settings(home=tmp_path, executor="ray", ray_address="http://127.0.0.1:9")).name == "ray"


def test_a_submitted_worker_is_recorded_runs_and_ends_with_its_log(tmp_path):
    """A worker for a job that does not exist starts, fails, and leaves its traceback in job.log."""
    executor = LocalExecutor(Settings(home=tmp_path))
    started = executor.submit("customization", "no-such-job", tmp_path / "job", Resources())
    assert started.executor == "local" and started.host == socket.gethostname() and started.ref is None
    row = Job(pid=started.pid, pid_started=started.pid_started, host=started.host)
    assert started.pid_started == process_start_time(started.pid)
    wait_until(lambda: executor.state(row).kind == "ended", timeout=120)
    executor.poll()  # reaped: no zombie left
    assert executor._children == {}
    assert "no-such-job" in (tmp_path / "job" / WORKER_LOG).read_text()
    assert executor.logs(row) is None  # the worker wrote its log itself


@pytest.fixture
def session_leader():
    """A worker stand-in: a process leading its own session, with a child, that records SIGTERM."""
    child = subprocess.Popen([sys.executable, "-c",
                              "import signal, subprocess, sys, time\n"
                              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
                              "signal.signal(signal.SIGTERM, lambda *a: print('term', flush=True))\n"
                              "print('ready', flush=True)\n"
                              "time.sleep(60)"],
                             stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert child.stdout.readline() == "ready\n"
    yield child
    child.kill()
    child.wait()


def test_stop_terms_then_kills_the_whole_session_but_only_on_its_own_host(tmp_path, session_leader):
    executor = LocalExecutor(Settings(home=tmp_path))
    pid = session_leader.pid
    elsewhere = Job(pid=pid, pid_started=process_start_time(pid), host="another-machine")
    assert executor.state(elsewhere).kind == "unknown"  # another host's pid: not ours to judge
    executor.stop(elsewhere, force=True)
    assert session_leader.poll() is None

    here = Job(pid=pid, pid_started=process_start_time(pid), host=socket.gethostname())
    legacy = Job(pid=pid, pid_started=process_start_time(pid), host=None)  # before hosts: judged as ours
    assert executor.state(here).kind == executor.state(legacy).kind == "alive"
    executor.stop(here, force=False)
    assert session_leader.stdout.readline() == "term\n"  # asked, not killed
    assert session_leader.poll() is None
    executor.stop(here, force=True)
    assert session_leader.wait(timeout=10) == -signal.SIGKILL
    assert executor.state(here).kind == "ended"


def test_an_attempts_log_is_appended_as_it_grows(tmp_path):
    path = tmp_path / WORKER_LOG
    append_attempt_log(path, "tailor-j-1", "one\n")
    append_attempt_log(path, "tailor-j-1", "one\ntwo\n")
    append_attempt_log(path, "tailor-j-2", "three 10%\r")
    append_attempt_log(path, "tailor-j-2", "three 10%\rthree 100%\nfour\n")  # a progress bar's \r
    assert path.read_bytes() == b"--- tailor-j-1 ---\none\ntwo\n--- tailor-j-2 ---\nthree 10%\rthree 100%\nfour\n"
    append_attempt_log(path, "tailor-j-2", "rewritten\n")  # an executor's log that was cut
    assert path.read_bytes() == b"--- tailor-j-1 ---\none\ntwo\n--- tailor-j-2 ---\nrewritten\n"


def test_a_stop_reaches_a_worker_off_the_main_thread_through_its_row():
    """No signal reaches a thread: there ``Stop`` asks the job's row (at most every ``every`` s)."""
    stopping = threading.Event()
    seen = []

    def worker():
        stop = Stop(poll=stopping.is_set, every=0.01)
        seen.append(stop())
        stopping.set()
        time.sleep(0.02)
        seen.append(stop())

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [False, True]
    previous = signal.getsignal(signal.SIGTERM)
    try:
        assert not Stop(poll=lambda: True)()  # on the main thread SIGTERM says it, not the poll
    finally:
        signal.signal(signal.SIGTERM, previous)
