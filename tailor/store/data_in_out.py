"""What moves data and weights in and out of Tailor: invocation logging configurations, batch
inference jobs (Bedrock's model invocation jobs and OpenAI's batches, one table), model import
jobs and the models they import, and model exports. Every job here is driven by the job runner
like a customization job (``JobLifecycle``); what each kind keeps beyond that is in its JSON
columns, written by its service and its worker.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tailor.store.db import Base, UTCDateTime
from tailor.store.jobs import JobLifecycle


class InvocationLoggingConfig(Base):
    """A principal's model invocation logging configuration (PutModelInvocationLoggingConfiguration):
    the loggingConfig as accepted; no row means logging is off."""

    __tablename__ = "invocation_logging"

    principal: Mapped[str] = mapped_column(String(256), primary_key=True)
    config: Mapped[dict] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class InvocationJob(JobLifecycle, Base):
    """A batch inference job: CreateModelInvocationJob, or an OpenAI batch (``openai`` set)."""

    __tablename__ = "invocation_jobs"

    model_id: Mapped[str] = mapped_column(String(2048))  # as the caller named it
    spec: Mapped[dict] = mapped_column(JSON)  # the resolved job spec the worker runs
    progress: Mapped[dict] = mapped_column(JSON, default=dict)  # record counts, as the worker writes them
    openai: Mapped[dict | None] = mapped_column(JSON)  # an OpenAI batch's own fields (endpoint, files, metadata)
    timeout_hours: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str | None] = mapped_column(Text)


class ImportJob(JobLifecycle, Base):
    """A model import job (CreateModelImportJob)."""

    __tablename__ = "import_jobs"

    model_name: Mapped[str] = mapped_column(String(63), index=True)
    model_arn: Mapped[str | None] = mapped_column(String(1011))  # the imported model's, once it exists
    spec: Mapped[dict] = mapped_column(JSON)
    details: Mapped[dict] = mapped_column(JSON, default=dict)


class ImportedModel(Base):
    """A model imported from Hugging Face-format weights (GetImportedModel)."""

    __tablename__ = "imported_models"

    id: Mapped[str] = mapped_column(String(12), primary_key=True)
    arn: Mapped[str] = mapped_column(String(1011), unique=True)
    name: Mapped[str] = mapped_column(String(63), index=True)
    principal: Mapped[str] = mapped_column(String(256), index=True)
    job_id: Mapped[str | None] = mapped_column(String(12))
    job_arn: Mapped[str | None] = mapped_column(String(1011))
    architecture: Mapped[str] = mapped_column(String(64))
    artifacts_dir: Mapped[str] = mapped_column(String(4096))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    details: Mapped[dict] = mapped_column(JSON, default=dict)  # data source, instruct support, config summary
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ExportJob(JobLifecycle, Base):
    """A model export: merged Hugging Face weights or a GGUF file, downloadable when Completed."""

    __tablename__ = "export_jobs"

    model_arn: Mapped[str] = mapped_column(String(1011))
    format: Mapped[str] = mapped_column(String(16))  # hf | gguf
    spec: Mapped[dict] = mapped_column(JSON)
    details: Mapped[dict] = mapped_column(JSON, default=dict)  # files, sizes, round-trip checks
