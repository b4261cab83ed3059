"""The OpenAI Evals API's records (``client.evals.*``): an eval (what to test: the shape of its data
and its testing criteria), its runs (one job each: queued, run by a worker, stoppable) and each
run's output items (one per data row: the sample and every criterion's result).

A run is a job like the others — ``JobLifecycle`` columns, started and reaped by the job runner —
so a server restart, a stop or a lost worker ends it as truthfully as a training job. Its output
items are rows, written by its worker as each batch is graded, so a run's progress shows while it
runs and its items can be listed by status with OpenAI's cursor.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tailor.store.db import Base, UTCDateTime
from tailor.store.jobs import JobLifecycle


class Eval(Base):
    __tablename__ = "evals"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # eval_…
    principal: Mapped[str] = mapped_column(String(256), index=True)
    name: Mapped[str] = mapped_column(String(512))
    data_source_config: Mapped[dict] = mapped_column(JSON)  # as the API answers it: type, schema
    testing_criteria: Mapped[list] = mapped_column(JSON)  # the validated grader objects, pass_threshold kept
    metadata_: Mapped[dict | None] = mapped_column("metadata", JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class EvalRun(JobLifecycle, Base):
    """One run of an eval: a job (``id`` is the job id; the API calls it ``evalrun_{id}``)."""

    __tablename__ = "eval_runs"

    name: Mapped[str] = mapped_column(String(512))
    eval_id: Mapped[str] = mapped_column(String(40), index=True)
    spec: Mapped[dict] = mapped_column(JSON)  # the resolved run (tailor.jobs.spec.EvalRunSpec)
    data_source: Mapped[dict] = mapped_column(JSON)  # as given (inline rows left out), echoed back
    metadata_: Mapped[dict | None] = mapped_column("metadata", JSON)
    # result_counts, per_testing_criteria_results and per_model_usage, as the worker last wrote them.
    results: Mapped[dict] = mapped_column(JSON, default=dict)


class EvalOutputItem(Base):
    __tablename__ = "eval_output_items"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # outputitem_…
    run_id: Mapped[str] = mapped_column(String(12), index=True)
    datasource_item_id: Mapped[int] = mapped_column(Integer)  # the row's position in the data, from 0
    status: Mapped[str] = mapped_column(String(8), index=True)  # pass | fail | error
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    body: Mapped[dict] = mapped_column(JSON)  # datasource_item, results, sample
