"""What ``/metrics`` reports from the database, read at scrape time so that every server of a
deployment reports the same: jobs by kind and status, the queue and the running jobs (as the
runner counts them), the running training jobs' throughput, and the shared counters."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from tailor.jobs.runner import WORKERS, WORKING, active, queued
from tailor.store import counters
from tailor.store.db import Store
from tailor.store.jobs import Job


@dataclass(frozen=True)
class JobFigures:
    by_status: dict[tuple[str, str], int]  # (kind, status) -> jobs
    queued: dict[str, int]  # kind -> jobs waiting for a worker
    running: dict[str, int]  # kind -> jobs with a worker starting or running
    training_tokens_per_second: float  # the running customization jobs together, as last reported
    counters: list[tuple[str, dict[str, str], float]]  # counters.read's rows


def job_figures(store: Store) -> JobFigures:
    by_status, waiting, running = {}, {}, {}
    with store.session() as session:
        for table, kind in WORKERS.items():
            for status, number in session.execute(select(table.status, func.count()).group_by(table.status)):
                by_status[kind, status] = number
            waiting[kind] = session.scalar(select(func.count()).select_from(table).where(queued(table)))
            running[kind] = session.scalar(select(func.count()).select_from(table).where(active(table)))
        # A customization job's worker writes its throughput into the job's progress (at most once a
        # second); a job that has not reported yet counts 0.
        progress = session.scalars(select(Job.progress).where(Job.status.in_(WORKING), Job.phase == "running"))
        rate = sum(_rate((entry or {}).get("tokensPerSecond")) for entry in progress)
    return JobFigures(by_status, waiting, running, rate, counters.read(store.engine))


def _rate(value) -> float:
    return float(value) if isinstance(value, int | float) and value >= 0 else 0.0
