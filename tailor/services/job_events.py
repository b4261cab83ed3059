"""A customization job's events, live: its status changes and every step's metrics, in the shape of
OpenAI's fine-tuning events (``GET /v1/fine_tuning/jobs/{id}/events``, ``client.fine_tuning.jobs.list_events``).

GetModelCustomizationJob can carry only a training loss and validation losses (botocore's
shape); reinforcement fine-tuning's rewards have no place there. The original service shows them
in its console and, through its OpenAI-compatible API, as ``metrics`` events, one per row of the
training's step-wise metrics files — which is what this module answers, for every job type, while
the job trains and after:

- ``metrics`` events, one per training step: for RFT ``critic_rewards_mean|max|min``,
  ``actor_pg_loss``, ``actor_kl_loss``, ``actor_entropy``, ``actor_grad_norm``,
  ``response_length_mean``, ``grader_error_count``; for SFT and CPT ``train_loss``;
- ``metrics`` events for each evaluation on held-out data: ``val_score_rewards_mean_at_1`` (RFT,
  the greedy held-out reward) or ``valid_loss``;
- ``message`` events: the job was created, its pre-flight estimate (peak memory per device, the
  micro-batch, activation checkpointing, the time; its numbers in ``data``), and how it ended.

They are read from the metrics files the training writes (and flushes) as it goes
(``tailor.trained.read_metrics``: the published folder, or the run's scratch folder while it
trains), so they appear while the job runs. The files record no times; the worker records when
each step was reached (``JobEvent`` rows of kind "progress", about once a second), and a metrics
event's ``created_at`` is the first such time at or after its step. The worker's own messages —
building the built-in model, training started, the real end (every step, or early stopping at step
N of M), a stop — are events too, with the times they happened. Newest first, paged with
``after`` (an event id) and ``limit``, as OpenAI's.
"""

from __future__ import annotations

import bisect
import math
from pathlib import Path

from sqlalchemy import select

from tailor.errors import InvalidInput
from tailor.jobs.results import renamed
from tailor.services.customization import find_job
from tailor.store.db import Store
from tailor.store.jobs import Job, JobEvent
from tailor.trained import read_metrics

MAX_LIMIT = 1000
ENDINGS = {"Completed": "The job has successfully completed.", "Stopped": "The job was stopped."}


def list_events(store: Store, principal: str, identifier: str, *, after: str | None = None,
                limit: int = 20) -> dict:
    """One page of the job's events, newest first (OpenAI's list object)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit: must be between 1 and {MAX_LIMIT}; got {limit}.")
    with store.session() as session:
        job = find_job(session, principal, identifier)
        recorded = session.scalars(select(JobEvent).where(JobEvent.job_id == job.id).order_by(JobEvent.id)).all()
        events = job_events(job, recorded)
    newest_first = events[::-1]
    if after is not None:
        ids = [event["id"] for event in newest_first]
        newest_first = newest_first[ids.index(after) + 1:] if after in ids else []
    page = newest_first[:limit]
    return {"object": "list", "data": page, "has_more": len(newest_first) > limit}


def job_events(job: Job, recorded: list[JobEvent]) -> list[dict]:
    """Every event of the job, oldest first."""
    def event(kind: str, index: int, created: float, message: str, data: dict | None = None, level: str = "info",
              type: str | None = None):
        return {"object": "fine_tuning.job.event", "id": f"ftevent-{job.id}-{kind}-{index}", "created_at": int(created),
                "level": level, "message": message, "data": data or {},
                "type": type or ("metrics" if data else "message")}

    reached = sorted((row.data["step"], row.created_at.timestamp()) for row in recorded if row.kind == "progress")
    # Sorted by (time, then: creation, the worker's messages in order, steps with each step's
    # evaluation after it, the end): metrics within one second keep their order.
    events = [((job.created_at.timestamp(), -2, 0), event("created", 0, job.created_at.timestamp(),
               f"Created customization job {job.name} ({job.customization_type} of {job.base_model_id})."))]
    for row in recorded:
        if row.kind == "message":
            events.append(((row.created_at.timestamp(), -1, row.id), event("worker", row.id, row.created_at.timestamp(),
                                                                  row.message, level=row.level)))
        elif row.kind == "estimate":  # recorded at create time (services/customization.py)
            events.append(((row.created_at.timestamp(), -1, row.id), event("estimate", row.id,
                           row.created_at.timestamp(), row.message, row.data, row.level, type="message")))
    total = (job.progress or {}).get("totalSteps")
    metrics = read_metrics(Path(job.work_dir) / "output")
    files = (("step", metrics.training, metrics.training_written, "training metrics"),
             ("validation", metrics.validation, metrics.validation_written, "held-out metrics"))
    for order, (kind, rows, modified, what) in enumerate(files):
        for index, row in enumerate(renamed(row) for row in rows):
            data = {"step": row.pop("step"), "total_steps": total, **row}
            created = _time_of_step(reached, data["step"], modified)
            message = f"Step {data['step']}/{total or '?'}: {what}"
            events.append(((created, data["step"], order), event(kind, index, created, message, data)))
    if job.end_time is not None:
        message = ENDINGS.get(job.status) or f"The job failed: {job.failure_message}"
        events.append(((job.end_time.timestamp(), math.inf, 0), event("end", 0, job.end_time.timestamp(), message,
                                                            level="info" if job.status != "Failed" else "error")))
    return [item for _, item in sorted(events, key=lambda pair: pair[0])]


def _time_of_step(reached: list[tuple[int, float]], step: int, fallback: float) -> float:
    """When ``step`` was reached: the first recorded progress at or after it (the worker records
    progress about once a second); the metrics file's time for a run recorded before that."""
    position = bisect.bisect_left(reached, (step, -math.inf))
    return reached[position][1] if position < len(reached) else fallback


def metric_series(store: Store, principal: str, identifier: str, after_step: int | None = None,
                  after_validation_step: int | None = None) -> dict:
    """The job's step-wise metrics as columns, for a chart, with where the job stands — read as
    ``job_events`` reads them (OpenAI's names: ``step``, ``train_loss``, ``valid_loss``,
    ``critic_rewards_mean``, ``val_score_rewards_mean_at_1`` ...), so it works while the job trains.

    Only the training rows after step ``after_step`` and the held-out rows after
    ``after_validation_step`` (each None: all): a live chart asks for what is new since its last
    answer. The two cursors are apart because a step's held-out row is written after its training
    row. Returns ``{"status", "phase", "status_details", "progress", "failure_message", "end_time",
    "training": {column: [values]}, "validation": {column: [values]}}``; a column lacks a value
    (None) where a row lacks it."""
    with store.session() as session:
        job = find_job(session, principal, identifier)
        state = {"status": job.status, "phase": job.phase, "status_details": job.status_details or {},
                 "progress": job.progress or {}, "failure_message": job.failure_message,
                 "end_time": job.end_time.isoformat() if job.end_time else None}
        output = Path(job.work_dir) / "output"
    metrics = read_metrics(output)
    return {**state, "training": _columns(metrics.training, after_step),
            "validation": _columns(metrics.validation, after_validation_step)}


def _columns(rows: list[dict], after: int | None) -> dict[str, list]:
    kept = [row for row in (renamed(row) for row in rows)
            if "step" in row and (after is None or row["step"] > after)]
    names = ["step", *sorted({name for row in kept for name in row} - {"step"})]
    return {name: [row.get(name) for row in kept] for name in names} if kept else {}
