"""How a job's worker process ends a job, whatever its kind: the stop signal it polls, the final
status it records (a stop that arrives while failing or publishing wins), a crash's message, and
``run_to_end``, which ends an evaluation or eval run by how its work went."""

from __future__ import annotations

import signal
import traceback
from collections.abc import Callable

from tailor.errors import TailorError, failure_message
from tailor.evaluate.run import StopRequested
from tailor.settings import Settings
from tailor.store.db import Store
from tailor.store.jobs import transition


class Stop:
    """Set by SIGTERM (the runner delivering a stop request); hooks poll it."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGTERM, lambda signum, frame: setattr(self, "requested", True))

    def __call__(self) -> bool:
        return self.requested


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
