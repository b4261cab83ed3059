"""Model import: Hugging Face-format weights in a bucket become a model Tailor serves and trains.

Two requests share the machinery (docs/import.md):

- CreateModelImportJob makes an import job (``ImportJob``); when it completes, an imported model
  (``ImportedModel``, ``imported-model/{id}``) exists, invocable at once by its ARN (imported
  models are on-demand, as in the original) and customizable (``imported_start``);
- CreateCustomModel makes a custom model (``custom-model/imported/{id}``, customization type
  IMPORTED) that is ``Creating`` at once and ``Active`` once the same work has checked and copied
  its weights; like any custom model it is invoked through a deployment. Its work runs as an
  import job too (the copy of a 15 GB folder does not fit in a request), one that
  ListModelImportJobs does not show: the original has none for it either.

What is cheap is checked here, before anything is queued: the caller may read the bucket, the
folder has config.json, safetensors weights (every shard its index names), a tokenizer
(tokenizer.json or tokenizer.model) and tokenizer_config.json, and it is within
``import_max_bytes``. The worker (``tailor/jobs/model_import.py``) copies the files into the job's
folder and checks what needs transformers: the architecture is one Tailor serves and trains, every
tensor the config implies is there with its shape, the tokenizer loads and has a chat template.
The copy is a trained folder (``tailor.trained``: ``model/`` and a manifest saying full weights),
so serving, evaluation and training read it as they read a fine-tuned model's.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import or_, select

from tailor import storage
from tailor.arns import (
    custom_model_arn,
    imported_model_arn,
    model_import_job_arn,
    new_resource_id,
)
from tailor.errors import Conflict, InvalidInput, NotFound
from tailor.jobs.model_import import CUSTOM_KIND, IMPORTED_KIND, INDEX
from tailor.services.buckets import authorize
from tailor.services.records import (
    common_filters,
    find_owned,
    insert_once,
    list_page,
    made_with_token,
)
from tailor.settings import Settings
from tailor.store.data_in_out import ImportedModel, ImportJob
from tailor.store.db import Store, utcnow
from tailor.store.deployments import Deployment
from tailor.store.jobs import TERMINAL, CustomModel, Job
from tailor.store.tags import Tag

IMPORT_SOURCE = "modelDataSource.s3DataSource.s3Uri"
CUSTOM_SOURCE = "modelSourceConfig.s3DataSource.s3Uri"
# What a folder must hold; a tokenizer is tokenizer.json (fast) or tokenizer.model (SentencePiece).
CONFIG = "config.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
TOKENIZERS = ("tokenizer.json", "tokenizer.model")
# Pickled weights are never copied or loaded: only safetensors are read.
PICKLED = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# A custom model's base id until its import has found the architecture (botocore's ModelName
# pattern: provider.name); then imported.{family}, e.g. imported.llama3.
PENDING_BASE = "imported.pending"


@dataclass(frozen=True)
class ImportRequest:
    """A model import, whichever request made it. ``job_name`` is None for CreateCustomModel."""

    model_name: str
    source_uri: str
    role: str | None
    token: str | None
    job_name: str | None = None
    job_tags: tuple[tuple[str, str], ...] = ()
    model_tags: tuple[tuple[str, str], ...] = ()
    source_field: str = IMPORT_SOURCE


# ---------------------------------------------------------------------------------------------
# Create


def create_import_job(store: Store, settings: Settings, principal: str, request: ImportRequest) -> str:
    """Check the folder and queue its import; the job's ARN (a retried request's: the same job's)."""
    earlier = made_with_token(ImportJob, principal, request.token)
    with store.session() as session:
        if arn := earlier(session):
            return arn
    files = check_folder(store, settings, principal, request.source_uri, request.source_field)
    job_id, model_id = new_resource_id(), new_resource_id()
    model_arn = imported_model_arn(settings.region, settings.account_id, model_id)
    row = _job_row(settings, principal, request, job_id, files, kind=IMPORTED_KIND, model_id=model_id,
                   model_arn=model_arn)

    def taken(session) -> Conflict | None:
        if session.scalar(select(ImportJob.id).where(ImportJob.principal == principal,
                                                     ImportJob.name == row.name)):
            return Conflict(f"jobName: an import job named {row.name} already exists.")
        if _model_name_taken(session, principal, request.model_name):
            return Conflict(f"importedModelName: a model named {request.model_name} already exists "
                            "(or is being imported).")
        return None

    return insert_once(store, row, tags=dict(request.job_tags), earlier=earlier, taken=taken)


def create_custom_model(store: Store, settings: Settings, principal: str, request: ImportRequest) -> str:
    """CreateCustomModel: the custom model's ARN; it is Creating until its import job has run."""
    earlier = made_with_token(ImportJob, principal, request.token)
    with store.session() as session:
        if job_arn := earlier(session):
            return session.scalar(select(ImportJob.model_arn).where(ImportJob.arn == job_arn))
    files = check_folder(store, settings, principal, request.source_uri, request.source_field)
    job_id, model_id = new_resource_id(), new_resource_id()
    model_arn = custom_model_arn(settings.region, settings.account_id, "imported", model_id)
    job = _job_row(settings, principal, request, job_id, files, kind=CUSTOM_KIND, model_id=model_id,
                   model_arn=model_arn)
    now = utcnow()
    model = CustomModel(id=model_id, arn=model_arn, name=request.model_name, principal=principal, openai_name=None,
                        job_id=None, base_model_id=PENDING_BASE, base_model_arn=model_arn, source_model_arn=None,
                        customization_type="IMPORTED", status="Creating", failure_message=None,
                        artifacts_dir=str(artifacts_of(job)), created_at=now)

    with store.session() as session:  # the model and its job together, or neither
        if job_arn := earlier(session):  # the same request again, meanwhile
            return session.scalar(select(ImportJob.model_arn).where(ImportJob.arn == job_arn))
        if session.scalar(select(CustomModel.id).where(CustomModel.principal == principal,
                                                       CustomModel.name == request.model_name)):
            raise Conflict(f"modelName: a custom model named {request.model_name} already exists.")
        session.add(model)
        session.add(job)
        session.flush()
        for key, value in request.model_tags:
            session.add(Tag(resource_arn=model_arn, key=key, value=value))
    return model_arn


def _job_row(settings: Settings, principal: str, request: ImportRequest, job_id: str, files: list[tuple[str, int]],
             *, kind: str, model_id: str, model_arn: str) -> ImportJob:
    now = utcnow()
    spec = {"kind": kind, "source_uri": request.source_uri, "files": [list(entry) for entry in files],
            "model_id": model_id, "model_arn": model_arn, "model_tags": [list(tag) for tag in request.model_tags],
            "max_bytes": settings.import_max_bytes}
    return ImportJob(
        id=job_id, arn=model_import_job_arn(settings.region, settings.account_id, job_id),
        name=request.job_name or f"create-custom-model-{job_id}", principal=principal, status="InProgress",
        phase="queued", role_arn=request.role or "", client_request_token=request.token, failure_message=None,
        stop_requested=False, work_dir=str(settings.home / "imports" / job_id), created_at=now,
        last_modified_at=now, model_name=request.model_name,
        model_arn=model_arn if kind == CUSTOM_KIND else None, spec=spec, details={})


def artifacts_of(job: ImportJob) -> Path:
    """Where an import job publishes its model: the job folder's ``output`` (the runner removes it
    when the job does not complete)."""
    return Path(job.work_dir) / "output"


def _model_name_taken(session, principal: str, name: str) -> bool:
    if session.scalar(select(ImportedModel.id).where(ImportedModel.principal == principal, ImportedModel.name == name)):
        return True
    running = select(ImportJob.id).where(ImportJob.principal == principal, ImportJob.model_name == name,
                                         ImportJob.status.not_in(TERMINAL), _visible())
    return session.scalar(running) is not None


def check_folder(store: Store, settings: Settings, principal: str, uri: str, field: str) -> list[tuple[str, int]]:
    """The files of the folder ``uri`` names, as ``(name, bytes)``, after the checks that need no
    model library: the caller may read it, it holds what a Hugging Face model folder must (a
    missing file is named), and it fits ``import_max_bytes``. Files in sub-folders and pickled
    weights are left out: only the folder's own files are imported, and only safetensors are read."""
    authorize(store, principal, uri, "read", field)
    bucket, key = storage.bucket_of(uri)
    prefix = key.rstrip("/") + "/" if key.strip("/") else ""
    try:
        listed = storage.list_objects(f"s3://{bucket}/{prefix}", settings)
    except NotFound as error:
        raise InvalidInput(f"{field}: {error.message}") from None
    files = [(name[len(prefix):], size) for name, size in listed
             if "/" not in name[len(prefix):] and not name.endswith(PICKLED)]
    if not files:
        raise InvalidInput(f"{field}: there are no files at {uri}; expected a Hugging Face model folder "
                           f"({CONFIG}, *.safetensors, {TOKENIZERS[0]}, {TOKENIZER_CONFIG}).")
    names = {name for name, _ in files}
    missing = [name for name in (CONFIG, TOKENIZER_CONFIG) if name not in names]
    if not any(name in names for name in TOKENIZERS):
        missing.append(" or ".join(TOKENIZERS))
    weights = sorted(name for name in names if name.endswith(".safetensors"))
    if not weights:
        pickled = [name[len(prefix):] for name, _ in listed if name.endswith(PICKLED)]
        missing.append("*.safetensors (model weights)" + (f"; Tailor does not load pickled weights "
                                                          f"({', '.join(pickled[:3])})" if pickled else ""))
    elif INDEX in names:
        missing += sorted(_shards(settings, f"s3://{bucket}/{prefix}{INDEX}", field) - names)
    if missing:
        raise InvalidInput(f"{field}: the model folder {uri} lacks {', '.join(missing)}.")
    total = sum(size for _, size in files)
    if total > settings.import_max_bytes:
        raise InvalidInput(f"{field}: the model folder {uri} holds {total:,} bytes; this server imports at most "
                           f"{settings.import_max_bytes:,} (TAILOR_IMPORT_MAX_BYTES).")
    return sorted(files)


def _shards(settings: Settings, index_uri: str, field: str) -> set[str]:
    """The weight files a sharded checkpoint's index names."""
    try:
        index = json.loads(storage.read_bytes(index_uri, settings))
        return {str(name) for name in index["weight_map"].values()}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise InvalidInput(f"{field}: {INDEX} is not a safetensors index ({type(error).__name__}: {error}).") from None


# ---------------------------------------------------------------------------------------------
# Import jobs: read, list


def _visible():
    """Import jobs ListModelImportJobs shows: not CreateCustomModel's."""
    return or_(ImportJob.model_arn.is_(None), ImportJob.model_arn.not_like("%:custom-model/%"))


def get_import_job(store: Store, principal: str, identifier: str) -> ImportJob:
    with store.session() as session:
        job = find_owned(session, ImportJob, principal, identifier, "Model import job")
        if job.model_arn and ":custom-model/" in job.model_arn:
            raise NotFound(f"Model import job {identifier} not found.")
        return job


def list_import_jobs(store: Store, principal: str, query: dict) -> tuple[list[ImportJob], str | None]:
    conditions = [*common_filters(ImportJob, principal, query), _visible()]
    if query.get("statusEquals"):
        conditions.append(ImportJob.status == query["statusEquals"])
    with store.session() as session:
        return list_page(session, ImportJob, conditions, query)


# ---------------------------------------------------------------------------------------------
# Imported models: read, list, delete, and their use by inference and training


def get_imported_model(store: Store, principal: str, identifier: str) -> ImportedModel:
    with store.session() as session:
        return find_owned(session, ImportedModel, principal, identifier, "Imported model")


def list_imported_models(store: Store, principal: str, query: dict) -> tuple[list[ImportedModel], str | None]:
    with store.session() as session:
        return list_page(session, ImportedModel, common_filters(ImportedModel, principal, query), query)


def delete_imported_model(store: Store, principal: str, identifier: str) -> dict:
    """Remove the model, its tags and its weights; refused while a deployment serves it or a job not
    ended starts from it (its weights would vanish under them)."""
    with store.session() as session:
        model = find_owned(session, ImportedModel, principal, identifier, "Imported model")
        users = session.scalars(select(Deployment.arn).where(
            (Deployment.model_arn == model.arn) | (Deployment.desired_model_arn == model.arn))).all()
        jobs = session.scalars(select(Job.name).where(Job.source_model_arn == model.arn,
                                                      Job.status.not_in(TERMINAL))).all()
        children = session.scalars(select(CustomModel.name).where(CustomModel.source_model_arn == model.arn)).all()
        if users or jobs or children:
            dependents = [*sorted(users), *(f"job {name}" for name in sorted(jobs)),
                          *(f"custom model {name}" for name in sorted(children))]
            raise Conflict(f"Imported model {model.name} is in use by {', '.join(dependents)}; "
                           "delete those (or wait for the jobs) first.")
        artifacts = Path(model.artifacts_dir)
        session.delete(model)
        session.execute(Tag.__table__.delete().where(Tag.resource_arn == model.arn))
    shutil.rmtree(artifacts, ignore_errors=True)
    return {}


def imported_start(store: Store, principal: str, identifier: str) -> ImportedModel | None:
    """The caller's imported model that a customization job's base model field names (by its
    ``imported-model`` ARN), or None when the identifier is not such an ARN; ``NotFound`` for an
    imported-model ARN that is not the caller's. Training starts from its folder
    (``artifacts_dir``, a trained folder of full weights), as from a custom model's."""
    if ":imported-model/" not in (identifier or ""):
        return None
    with store.session() as session:
        model = session.scalar(select(ImportedModel).where(ImportedModel.arn == identifier,
                                                           ImportedModel.principal == principal))
        if model is None:
            raise NotFound(f"Imported model {identifier} not found.")
        session.expunge(model)
        return model


def imported_artifacts(store: Store, principal: str | None, arn: str) -> Path:
    """The trained folder of an imported model by its ARN; ``principal`` scopes the lookup (None:
    the server itself, loading a deployment's model)."""
    query = select(ImportedModel.artifacts_dir).where(ImportedModel.arn == arn)
    if principal is not None:
        query = query.where(ImportedModel.principal == principal)
    with store.session() as session:
        folder = session.scalar(query)
    if folder is None:
        raise NotFound(f"Imported model {arn} not found.")
    return Path(folder)


def imported_arns(store: Store, principal: str) -> list[str]:
    """The caller's imported models' ARNs, oldest first (what it can invoke by ARN)."""
    with store.session() as session:
        return list(session.scalars(select(ImportedModel.arn).where(ImportedModel.principal == principal)
                                    .order_by(ImportedModel.created_at)))
