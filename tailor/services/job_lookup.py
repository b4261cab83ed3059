"""A customization job found on this machine by ARN or name, for the operator's ``tailor jobs logs``.

The API scopes every job to its principal; the operator on the server's machine sees them all,
as they see every file under TAILOR_HOME. A job's worker log (``job.log`` in its folder: the
worker's output, progress lines, warnings, a crash's traceback) has no place in the API, so the
command reads it here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import or_, select

from tailor.errors import InvalidInput, NotFound
from tailor.jobs.runner import WORKER_LOG
from tailor.store.db import Store
from tailor.store.jobs import TERMINAL, Job


@dataclass(frozen=True)
class JobLog:
    name: str
    arn: str
    status: str
    log_file: Path  # may not exist yet: a queued job's worker has not started

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL


def job_log(store: Store, identifier: str) -> JobLog:
    """Where the job named ``identifier`` (its ARN, or a name only one principal uses) keeps its
    worker log, and the job's status now."""
    with store.session() as session:
        rows = session.scalars(select(Job).where(or_(Job.arn == identifier, Job.name == identifier))).all()
        if not rows:
            raise NotFound(f"No customization job {identifier} under this TAILOR_HOME.")
        if len(rows) > 1:  # job names are unique per principal only
            owners = ", ".join(sorted(row.principal for row in rows))
            raise InvalidInput(f"{len(rows)} jobs are named {identifier} (principals {owners}); name one by its ARN "
                               "(`tailor jobs list`).")
        job = rows[0]
        return JobLog(job.name, job.arn, job.status, Path(job.work_dir) / WORKER_LOG)
