"""How a job's worker process ends a job, whatever its kind: the stop signal it polls, the final
status it records (a stop that arrives while failing or publishing wins), a crash's message, and
``run_to_end``, which ends an evaluation or eval run by how its work went."""

from __future__ import annotations

import signal
import threading
import time
import traceback
from collections.abc import Callable

from tailor.errors import TailorError, failure_message
from tailor.evaluate.run import StopRequested
from tailor.settings import Settings
from tailor.store.db import Store
from tailor.store.jobs import transition


class Stop:
    """Set by SIGTERM (the runner delivering a stop request); hooks poll it.

    Only a process's main thread can catch a signal: a worker that runs in another thread (Ray
    Train runs each training process's loop in one: ``train/ray_train.py``) asks ``poll`` instead —
    whether the job's row says it is stopping — at most every ``every`` seconds."""

    def __init__(self, poll: Callable[[], bool] | None = None, every: float = 1.0) -> None:
        self.requested = False
        self._poll, self._every, self._polled_at = None, every, 0.0
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda signum, frame: setattr(self, "requested", True))
        else:
            self._poll = poll

    def __call__(self) -> bool:
        if not self.requested and self._poll is not None and time.monotonic() - self._polled_at >= self._every:
            self._polled_at = time.monotonic()
            self.requested = self._poll()
        return self.requested


def stopping(store: Store, table, job_id: str) -> Callable[[], bool]:
    """Whether the job's row asks for a stop (Stopping): ``Stop``'s poll off the main thread."""

    def poll() -> bool:
        with store.session() as session:
            job = session.get(table, job_id)
            return job is None or bool(job.stop_requested) or job.status == "Stopping"

    return poll


def finish(store: Store, settings: Settings, table, job_id: str, status: str, failure: str | None = None,
           **changes) -> str:
    """End the job as ``status`` (with ``failure`` as its message when it failed); the status it ended in.
    A stop that arrived while the job was failing or publishing wins: the user asked for it."""
    with store.session() as session:
        job = session.get(table, job_id)
        if job.stop_requested and status in ("Failed", "Completed") and job.status == "Stopping":
            status = "Stopped"
        if failure and status == "Failed":
            changes["failure_message"] = failure_message(failure, settings.home)
        transition(job, status, **changes)
    return status


def crashed(error: BaseException, what: str) -> str:
    """The failure message of a bug or an OOM: the job fails, the server lives on."""
    traceback.print_exc()
    return f"{what} failed: {type(error).__name__}: {error}"


def run_to_end(store: Store, settings: Settings, table, job_id: str, work: Callable[[], None], what: str) -> str:
    """Run ``work`` and end the job by how it went: Completed; Stopped when it raised
    ``StopRequested``; Failed with a ``TailorError``'s message, or with a crash's (``crashed``)."""
    try:
        work()
    except StopRequested:
        return finish(store, settings, table, job_id, "Stopped")
    except TailorError as error:
        return finish(store, settings, table, job_id, "Failed", error.message)
    except Exception as error:
        return finish(store, settings, table, job_id, "Failed", crashed(error, what))
    return finish(store, settings, table, job_id, "Completed")
