"""Model exports through the API: a caller's custom model as merged Hugging Face weights (a tar of
the folder) or a GGUF file, made by an export job (``jobs/model_export.py``) and downloaded through a
signed link.

The caller names a model it owns (ARN, name or ``ft:`` name); the service resolves it to its
weights (``inference.target_for_artifacts``: full weights, or a LoRA adapter and its base) and
stores that as the job's spec, so the worker never sees a request. A finished job's file lies in
the job's own folder, at a name the worker chose; the download link says only which job, until
when, and a signature over both with a key derived for this purpose from the server key
(``secrets.derived_key``). Nothing the caller sends ever becomes a path: a link for one export
cannot be turned into one for another (the signature covers the id), nor kept past its time (it
covers the expiry), nor made without the server's key.
"""

from __future__ import annotations

import hashlib
import hmac
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from sqlalchemy import select

from tailor import trained
from tailor.arns import model_export_job_arn, new_resource_id
from tailor.errors import AccessDenied, InvalidInput, NotFound, QuotaExceeded
from tailor.export.model import FORMATS, safe_name
from tailor.secrets import derived_key, load_or_create_server_key
from tailor.services import inference
from tailor.services.records import find_owned, unfinished
from tailor.settings import Settings
from tailor.store.data_in_out import ExportJob
from tailor.store.db import Store, utcnow
from tailor.store.jobs import TERMINAL, CustomModel, transition

OUTPUT = "output"  # the job's folder for what it made (kept when it completes: jobs/runner.py)
PURPOSE = "model-export-download"


def create_export(store: Store, settings: Settings, principal: str, identifier: str, fmt: str) -> ExportJob:
    """Queue an export of the caller's custom model ``identifier`` as ``fmt`` (hf | gguf)."""
    if fmt not in FORMATS:
        raise InvalidInput(f"format: must be one of {', '.join(FORMATS)}, got {fmt!r}.", param="format")
    model = _owned_model(store, principal, identifier)
    if model.status != "Active":
        raise InvalidInput(f"modelIdentifier: the custom model {model.name} is {model.status}; only an Active "
                           "model can be exported.", param="modelIdentifier")
    artifacts = Path(model.artifacts_dir)
    if not trained.is_trained(artifacts):
        raise InvalidInput(f"modelIdentifier: the custom model {model.name} has no readable weights.",
                           param="modelIdentifier")
    target, _ = inference.target_for_artifacts(artifacts)
    active = unfinished(store, ExportJob, principal)
    if active >= settings.max_active_jobs:
        raise QuotaExceeded(f"You have {active} exports queued or running, the most this server allows one caller "
                            f"({settings.max_active_jobs}, max_active_jobs); wait for one to finish.")
    job_id = new_resource_id()
    now = utcnow()
    row = ExportJob(id=job_id, arn=export_arn(settings, job_id), name=f"export-{job_id}", principal=principal,
                    status="InProgress", phase="queued", role_arn="", stop_requested=False,
                    work_dir=str(settings.home / "exports" / job_id), created_at=now, last_modified_at=now,
                    model_arn=model.arn, format=fmt,
                    spec={"base": target.base, "adapter": target.adapter, "model_name": model.name},
                    details={"stage": "queued"})
    with store.session() as session:
        session.add(row)
        session.flush()
        session.expunge(row)
    return row


def export_arn(settings: Settings, job_id: str) -> str:
    return model_export_job_arn(settings.region, settings.account_id, job_id)


def _owned_model(store: Store, principal: str, identifier: str) -> CustomModel:
    if not identifier:
        raise InvalidInput("modelIdentifier: name the custom model to export (its ARN or name).",
                           param="modelIdentifier")
    if identifier.startswith(inference.FINE_TUNED_PREFIX):
        return inference.fine_tuned_model(store, principal, identifier)
    with store.session() as session:
        model = find_owned(session, CustomModel, principal, identifier, "Custom model")
        session.expunge(model)
        return model


def get_export(store: Store, principal: str, export_id: str) -> ExportJob:
    """The caller's export by id or ARN; another caller's is "not found"."""
    job_id = export_id.rsplit("/", 1)[-1]
    with store.session() as session:
        row = session.scalar(select(ExportJob).where(ExportJob.id == job_id, ExportJob.principal == principal))
        if row is None:
            raise NotFound(f"Export {export_id} not found.")
        session.expunge(row)
        return row


def delete_export(store: Store, principal: str, export_id: str) -> ExportJob:
    """Delete the caller's export: one still queued or running is stopped first (the runner ends
    its worker and removes what it half-wrote; its row stays, Stopped, until deleted again); an
    ended one loses its file and its row, so its download link stops working at once."""
    row = get_export(store, principal, export_id)
    with store.session() as session:
        row = session.get(ExportJob, row.id)
        if row.status in TERMINAL:
            session.delete(row)
            shutil.rmtree(row.work_dir, ignore_errors=True)
        elif row.status != "Stopping":
            transition(row, "Stopping", stop_requested=True)
        session.flush()
        session.expunge(row)
        return row


def list_exports(store: Store, principal: str) -> list[ExportJob]:
    with store.session() as session:
        rows = list(session.scalars(select(ExportJob).where(ExportJob.principal == principal)
                                    .order_by(ExportJob.created_at.desc()).limit(100)))
        session.expunge_all()
        return rows


def export_json(row: ExportJob, settings: Settings, base_url: str) -> dict:
    """An export as the API shows it: status, progress, what was written and checked, and when it
    has completed a download link that works for ``export_link_seconds``."""
    details = row.details or {}
    shown = {
        "exportId": row.id, "exportArn": row.arn, "modelArn": row.model_arn,
        "modelName": (row.spec or {}).get("model_name"), "format": row.format, "status": row.status,
        "stage": details.get("stage"), "createdAt": row.created_at.isoformat(),
        "endTime": row.end_time.isoformat() if row.end_time else None,
    }
    if row.failure_message:
        shown["failureMessage"] = row.failure_message
    if details.get("file"):
        shown.update({"fileName": details["file"], "sizeBytes": details.get("size_bytes"),
                      "files": details.get("files", {}), "checks": details.get("checks", [])})
    if row.status == "Completed" and details.get("file"):
        link = download_link(settings, row.id)
        shown["downloadUrl"] = f"{base_url.rstrip('/')}{link.path}?{link.query}"
        shown["downloadExpiresAt"] = link.expires
    return shown


@dataclass(frozen=True)
class Link:
    path: str
    query: str
    expires: int


def download_link(settings: Settings, job_id: str, now: float | None = None) -> Link:
    expires = int(now if now is not None else time.time()) + settings.export_link_seconds
    query = urlencode({"expires": expires, "signature": download_signature(settings, job_id, expires)})
    return Link(f"/tailor/v1/custom-models/exports/{job_id}/download", query, expires)


def download_signature(settings: Settings, job_id: str, expires: int) -> str:
    key = derived_key(load_or_create_server_key(settings.home), PURPOSE)
    return hmac.new(key, f"{job_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def download_file(store: Store, settings: Settings, job_id: str, expires: str, signature: str) -> tuple[Path, str]:
    """The file a download link opens and the name to save it as. A link whose signature is not
    this export's (forged, altered, another export's) is "not found"; a genuine one past its time
    is refused as expired."""
    try:
        until = int(expires)
    except ValueError:
        raise NotFound("Export download not found.") from None
    if not hmac.compare_digest(str(signature), download_signature(settings, job_id, until)):
        raise NotFound("Export download not found.")
    if until < time.time():
        raise AccessDenied("This download link has expired; get a fresh one from "
                           f"GET /tailor/v1/custom-models/exports/{job_id}.")
    with store.session() as session:
        row = session.get(ExportJob, job_id)
        if row is None or row.status != "Completed" or not (row.details or {}).get("file"):
            raise NotFound("Export download not found.")
        name, work_dir = row.details["file"], Path(row.work_dir)
    path = work_dir / OUTPUT / safe_name(name)  # the worker's own name, made safe again all the same
    if not path.is_file():
        raise NotFound("The export's file is gone (its job folder was removed).")
    return path, path.name
