"""Jobs and what they produce: customization and evaluation jobs (one lifecycle, driven by the
job runner) and custom models.

A job's status only moves along the edges in ``JOB_TRANSITIONS``; ``transition`` is the one place
that changes it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tailor.errors import Conflict
from tailor.store.db import Base, UTCDateTime, utcnow


class JobLifecycle:
    """The columns the job runner drives, the same for customization and evaluation jobs: where a
    job is (status, phase), its worker process, a requested stop, its folder and its times."""

    id: Mapped[str] = mapped_column(String(12), primary_key=True)
    arn: Mapped[str] = mapped_column(String(1011), unique=True)
    name: Mapped[str] = mapped_column(String(63), index=True)
    principal: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), index=True)
    # Where an InProgress job is: queued -> starting -> running; "paused" while Paused (no worker,
    # its checkpoint kept); "done" once terminal.
    phase: Mapped[str] = mapped_column(String(16), index=True)
    role_arn: Mapped[str] = mapped_column(String(2048))
    client_request_token: Mapped[str | None] = mapped_column(String(256))
    failure_message: Mapped[str | None] = mapped_column(Text)
    pid: Mapped[int | None] = mapped_column(Integer)
    pid_started: Mapped[str | None] = mapped_column(String(32))  # the process's start time: pid reuse guard
    # Where the current attempt runs (tailor/jobs/executors): "local" (a process on ``host``, which
    # only a server on that host can judge by its pid) or "ray" (``executor_ref``: Ray's submission id).
    executor: Mapped[str | None] = mapped_column(String(16))
    executor_ref: Mapped[str | None] = mapped_column(String(128))
    host: Mapped[str | None] = mapped_column(String(255))
    stop_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    work_dir: Mapped[str] = mapped_column(String(4096))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_modified_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Job(JobLifecycle, Base):
    __tablename__ = "jobs"

    customization_type: Mapped[str] = mapped_column(String(32))
    base_model_id: Mapped[str] = mapped_column(String(256))
    base_model_arn: Mapped[str] = mapped_column(String(1011))  # always the foundation model's (botocore's shape)
    # Iterative customization: the custom model training starts from (its base is base_model_arn).
    source_model_arn: Mapped[str | None] = mapped_column(String(1011))
    output_model_name: Mapped[str] = mapped_column(String(63))
    output_model_arn: Mapped[str | None] = mapped_column(String(1011))
    spec: Mapped[dict] = mapped_column(JSON)  # the resolved job spec (tailor.jobs.spec.CustomizationJobSpec)
    status_details: Mapped[dict] = mapped_column(JSON, default=dict)
    progress: Mapped[dict] = mapped_column(JSON, default=dict)
    training_loss: Mapped[float | None] = mapped_column(Float)
    validation_losses: Mapped[list] = mapped_column(JSON, default=list)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # worker starts


class EvaluationJob(JobLifecycle, Base):
    """A model evaluation job (CreateEvaluationJob): one runner starts both kinds of job."""

    __tablename__ = "evaluation_jobs"

    application_type: Mapped[str] = mapped_column(String(32))
    spec: Mapped[dict] = mapped_column(JSON)  # the resolved job spec (tailor.jobs.spec.EvaluationJobSpec)


class CustomModel(Base):
    __tablename__ = "custom_models"

    id: Mapped[str] = mapped_column(String(12), primary_key=True)
    arn: Mapped[str] = mapped_column(String(1011), unique=True)
    name: Mapped[str] = mapped_column(String(63), index=True)
    principal: Mapped[str] = mapped_column(String(256))
    # A model fine-tuned through the OpenAI API: its ft:{base}:{owner}:{suffix}:{job} name, which
    # that API's clients call it by (its Bedrock name cannot hold ":" or ".").
    openai_name: Mapped[str | None] = mapped_column(String(512), index=True)
    job_id: Mapped[str | None] = mapped_column(String(12))
    base_model_id: Mapped[str] = mapped_column(String(256))
    base_model_arn: Mapped[str] = mapped_column(String(1011))
    source_model_arn: Mapped[str | None] = mapped_column(String(1011))  # the custom model it was trained from
    customization_type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # Creating | Active | Failed
    failure_message: Mapped[str | None] = mapped_column(Text)
    artifacts_dir: Mapped[str] = mapped_column(String(4096))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class JobEvent(Base):
    """Something that happened to a job, when it happened, as its worker recorded it: a stage it
    entered (building the built-in model, training), a stop and why (early stopping at step N of
    M), and the time each step was reached (``kind`` "progress", ``data`` {"step": N}, at most about
    once a second). The API's event lists are made from these and the run's metrics files."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(12), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(16))  # message | progress | estimate
    level: Mapped[str] = mapped_column(String(8))  # info | warn | error
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict] = mapped_column(JSON, default=dict)


# Legal status changes. Stopping always ends in Stopped or Failed (a stop request wins over a
# result that arrives while stopping), and terminal states never change.
# Pausing and Paused: a customization job asked to pause saves a checkpoint at its next step and
# ends its worker (Paused); resumed, it is queued again and continues from that checkpoint. A
# job that finishes or fails before it gets to pause ends as it would have.
JOB_TRANSITIONS: dict[str, set[str]] = {
    "InProgress": {"Completed", "Failed", "Stopping", "Stopped", "Pausing", "Paused"},
    "Pausing": {"Paused", "Completed", "Failed", "Stopping", "Stopped"},
    "Paused": {"InProgress", "Stopping", "Stopped", "Failed"},
    "Stopping": {"Stopped", "Failed"},
    "Completed": set(),
    "Failed": set(),
    "Stopped": set(),
}
TERMINAL = {"Completed", "Failed", "Stopped"}


def transition(job: JobLifecycle, status: str, **changes) -> None:
    """Move ``job`` to ``status`` (raising Conflict on an illegal edge) and apply ``changes``."""
    if status != job.status and status not in JOB_TRANSITIONS[job.status]:
        raise Conflict(f"Job {job.name} is {job.status}; it cannot become {status}.")
    now = utcnow()
    job.status = status
    job.last_modified_at = now
    if status in TERMINAL:
        job.end_time = now
        job.phase = "done"
    for name, value in changes.items():
        setattr(job, name, value)
