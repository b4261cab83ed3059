"""Custom models (what training produced, or CreateCustomModel imported: ``services/model_import.py``)
and foundation models (what the catalog offers here).

Custom model lookups are scoped to the calling principal. Views go out; each API dialect renders
them in its own shape.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from tailor.arns import foundation_model_arn
from tailor.catalog import FOUNDATION_MODELS, CustomizationType
from tailor.errors import Conflict, NotFound
from tailor.jobs.spec import JobView, view
from tailor.services.records import common_filters, find_owned, list_page
from tailor.settings import Settings
from tailor.store.data_in_out import ImportJob
from tailor.store.db import Store
from tailor.store.deployments import Deployment
from tailor.store.jobs import TERMINAL, CustomModel, Job
from tailor.store.tags import Tag
from tailor.train.recipes import TRAINABLE

# What ListFoundationModels may report in customizationsSupported: botocore's ModelCustomization
# enum has no REINFORCEMENT_FINE_TUNING, so RFT support is documented rather than listed.
LISTED_CUSTOMIZATIONS = {CustomizationType.FINE_TUNING, CustomizationType.CONTINUED_PRE_TRAINING,
                         CustomizationType.DISTILLATION}


@dataclass(frozen=True)
class CustomModelView:
    row: CustomModel
    job: JobView | None  # the job that trained it, while that job is kept


def _find_model(session, principal: str, identifier: str) -> CustomModel:
    return find_owned(session, CustomModel, principal, identifier, "Custom model")


def _settle_imports(store: Store, principal: str) -> None:
    """A CreateCustomModel model whose import job ended without making it Active (its worker died,
    so the job failed without saying so to the model) becomes Failed with the job's reason."""
    with store.session() as session:
        rows = session.execute(select(CustomModel, ImportJob.failure_message).join(
            ImportJob, ImportJob.model_arn == CustomModel.arn).where(
            CustomModel.principal == principal, CustomModel.status == "Creating",
            ImportJob.status.in_(TERMINAL), ImportJob.status != "Completed")).all()
        for model, reason in rows:
            model.status, model.failure_message = "Failed", reason or "The import of its weights did not complete."


def get_custom_model(store: Store, principal: str, identifier: str) -> CustomModelView:
    _settle_imports(store, principal)
    with store.session() as session:
        model = _find_model(session, principal, identifier)
        job = session.get(Job, model.job_id) if model.job_id else None
        return CustomModelView(model, view(job) if job is not None else None)


def list_custom_models(store: Store, principal: str, query: dict) -> tuple[list[CustomModel], str | None]:
    _settle_imports(store, principal)
    conditions = common_filters(CustomModel, principal, query)
    if query.get("modelStatus"):
        conditions.append(CustomModel.status == query["modelStatus"])
    for key in ("baseModelArnEquals", "foundationModelArnEquals"):
        if query.get(key):
            conditions.append(CustomModel.base_model_arn == query[key])
    with store.session() as session:
        return list_page(session, CustomModel, conditions, query)


def delete_custom_model(store: Store, principal: str, identifier: str) -> dict:
    with store.session() as session:
        model = _find_model(session, principal, identifier)
        if model.status == "Creating":  # CreateCustomModel's import is copying into its folder
            raise Conflict(f"Custom model {model.name} is being created; delete it once it is Active or Failed.")
        # A deployment serving the model, loading it or failed on it would be left naming nothing.
        users = session.scalars(select(Deployment.arn).where(
            (Deployment.model_arn == model.arn) | (Deployment.desired_model_arn == model.arn))).all()
        if users:
            raise Conflict(f"Custom model {model.name} is deployed ({', '.join(sorted(users))}); "
                           "delete those deployments first.")
        # A LoRA model trained on top of this one loads these weights as its base; a job not ended
        # (queued, running, paused) will load them to start or continue from.
        children = session.scalars(select(CustomModel.name).where(CustomModel.source_model_arn == model.arn)).all()
        jobs = session.scalars(select(Job.name).where(Job.source_model_arn == model.arn,
                                                      Job.status.not_in(TERMINAL))).all()
        if children or jobs:
            dependents = [f"custom model {name}" for name in sorted(children)]
            dependents += [f"job {name}" for name in sorted(jobs)]
            raise Conflict(f"Custom model {model.name} is the starting point of {', '.join(dependents)}; "
                           "delete those custom models (or wait for the jobs) first.")
        artifacts = Path(model.artifacts_dir)
        session.delete(model)
        session.execute(Tag.__table__.delete().where(Tag.resource_arn == model.arn))
    shutil.rmtree(artifacts, ignore_errors=True)
    return {}


# ---------------------------------------------------------------------------------------------
# Foundation models


def foundation_model_summary(settings: Settings, model_id: str) -> dict:
    entry = FOUNDATION_MODELS[model_id]
    return {
        "modelArn": foundation_model_arn(settings.region, model_id), "modelId": model_id,
        "modelName": entry.name, "providerName": entry.provider,
        "inputModalities": list(entry.input_modalities), "outputModalities": list(entry.output_modalities),
        "responseStreamingSupported": True,
        "customizationsSupported": [t.value for t in entry.customization_types
                                    if t in TRAINABLE and t in LISTED_CUSTOMIZATIONS],
        "inferenceTypesSupported": list(entry.inference_types), "modelLifecycle": {"status": "ACTIVE"},
    }


def usable_foundation_models(settings: Settings) -> list[str]:
    """Catalog models that can be trained here: with weights, or mapped by an alias."""
    return [model_id for model_id, entry in FOUNDATION_MODELS.items()
            if entry.weights is not None or model_id in settings.model_aliases]


def list_foundation_models(settings: Settings, query: dict) -> dict:
    summaries = [foundation_model_summary(settings, model_id) for model_id in usable_foundation_models(settings)]
    if query.get("byProvider"):
        summaries = [s for s in summaries if s["providerName"].lower() == query["byProvider"].lower()]
    if query.get("byCustomizationType"):
        summaries = [s for s in summaries if query["byCustomizationType"] in s["customizationsSupported"]]
    if query.get("byOutputModality"):
        summaries = [s for s in summaries if query["byOutputModality"] in s["outputModalities"]]
    if query.get("byInferenceType"):
        summaries = [s for s in summaries if query["byInferenceType"] in s["inferenceTypesSupported"]]
    return {"modelSummaries": summaries}


def get_foundation_model(settings: Settings, identifier: str) -> dict:
    from tailor.catalog import strip_foundation_arn

    model_id = strip_foundation_arn(identifier)
    if model_id not in usable_foundation_models(settings):
        raise NotFound(f"Foundation model {identifier} not found (or not mapped by TAILOR_MODEL_ALIASES).")
    return {"modelDetails": foundation_model_summary(settings, model_id)}
