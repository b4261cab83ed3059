"""Bedrock's model import operations: CreateModelImportJob, GetModelImportJob, ListModelImportJobs,
ListImportedModels, GetImportedModel, DeleteImportedModel, and CreateCustomModel (weights in a
bucket registered as a custom model). Requests become a ``services.model_import.ImportRequest``;
rows become responses (pure converters). What Tailor does not do — KMS keys, a VPC, SageMaker
model packages — is refused naming the field, never ignored.
"""

from __future__ import annotations

from tailor.errors import InvalidInput
from tailor.jobs.model_import import MODEL_UNITS_VERSION, model_units
from tailor.services import model_import
from tailor.services.model_import import CUSTOM_SOURCE, IMPORT_SOURCE, ImportRequest
from tailor.store.data_in_out import ImportedModel, ImportJob


def _tags(tags: list[dict] | None) -> tuple[tuple[str, str], ...]:
    return tuple((tag["key"], tag["value"]) for tag in tags or [])


def _refuse(params: dict, fields: dict[str, str]) -> None:
    for name, why in fields.items():
        if params.get(name) is not None:
            raise InvalidInput(f"{name}: {why}")


_NO_KMS = "Tailor does not encrypt models with KMS keys; leave it out."


def import_request(params: dict) -> ImportRequest:
    """CreateModelImportJob's request."""
    _refuse(params, {"vpcConfig": "Tailor reads buckets itself; there is no VPC to configure.",
                     "importedModelKmsKeyId": _NO_KMS})
    return ImportRequest(model_name=params["importedModelName"], source_uri=_source(params, "modelDataSource"),
                         role=params["roleArn"], token=params.get("clientRequestToken"), job_name=params["jobName"],
                         job_tags=_tags(params.get("jobTags")), model_tags=_tags(params.get("importedModelTags")),
                         source_field=IMPORT_SOURCE)


def custom_model_request(params: dict) -> ImportRequest:
    """CreateCustomModel's request (weights in a bucket: ``modelSourceConfig``)."""
    _refuse(params, {"customModelDataSource": "Tailor has no SageMaker model packages; give the weights' folder "
                                              "as modelSourceConfig.s3DataSource.s3Uri.",
                     "modelKmsKeyArn": _NO_KMS})
    if not params.get("modelSourceConfig"):
        raise InvalidInput(f"{CUSTOM_SOURCE}: required: the s3:// folder of the model's Hugging Face files.")
    return ImportRequest(model_name=params["modelName"], source_uri=_source(params, "modelSourceConfig"),
                         role=params.get("roleArn"), token=params.get("clientRequestToken"),
                         model_tags=_tags(params.get("modelTags")), source_field=CUSTOM_SOURCE)


def _source(params: dict, field: str) -> str:
    source = (params.get(field) or {}).get("s3DataSource")
    if not source:
        raise InvalidInput(f"{field}.s3DataSource: required (Tailor imports from s3:// folders).")
    return source["s3Uri"]


def import_job(job: ImportJob) -> dict:
    """GetModelImportJob's response."""
    return {
        "jobArn": job.arn, "jobName": job.name, "importedModelName": job.model_name,
        "importedModelArn": job.model_arn, "roleArn": job.role_arn,
        "modelDataSource": {"s3DataSource": {"s3Uri": job.spec["source_uri"]}}, "status": job.status,
        "failureMessage": job.failure_message, "creationTime": job.created_at,
        "lastModifiedTime": job.last_modified_at, "endTime": job.end_time,
    }


def import_jobs(rows: list[ImportJob], token: str | None) -> dict:
    """ListModelImportJobs' response."""
    return {"modelImportJobSummaries": [{
        "jobArn": job.arn, "jobName": job.name, "status": job.status, "lastModifiedTime": job.last_modified_at,
        "creationTime": job.created_at, "endTime": job.end_time, "importedModelArn": job.model_arn,
        "importedModelName": job.model_name,
    } for job in rows], "nextToken": token}


def imported_model(model: ImportedModel) -> dict:
    """GetImportedModel's response."""
    return {
        "modelArn": model.arn, "modelName": model.name, "jobName": _job_name(model), "jobArn": model.job_arn,
        "modelDataSource": {"s3DataSource": {"s3Uri": model.details.get("source", "")}},
        "creationTime": model.created_at, "modelArchitecture": model.architecture,
        "instructSupported": bool(model.details.get("instruct_supported", True)),
        "customModelUnits": {"customModelUnitsPerModelCopy": model_units(model.size_bytes),
                             "customModelUnitsVersion": MODEL_UNITS_VERSION},
    }


def _job_name(model: ImportedModel) -> str | None:
    return model.details.get("job_name")


def imported_models(rows: list[ImportedModel], token: str | None) -> dict:
    """ListImportedModels' response."""
    return {"modelSummaries": [{
        "modelArn": model.arn, "modelName": model.name, "creationTime": model.created_at,
        "instructSupported": bool(model.details.get("instruct_supported", True)),
        "modelArchitecture": model.architecture,
    } for model in rows], "nextToken": token}


OPERATIONS: dict = {
    "CreateModelImportJob": lambda c, p: {"jobArn": model_import.create_import_job(
        c.store, c.settings, c.principal, import_request(p))},
    "GetModelImportJob": lambda c, p: import_job(model_import.get_import_job(c.store, c.principal, p["jobIdentifier"])),
    "ListModelImportJobs": lambda c, p: import_jobs(*model_import.list_import_jobs(c.store, c.principal, p)),
    "ListImportedModels": lambda c, p: imported_models(*model_import.list_imported_models(c.store, c.principal, p)),
    "GetImportedModel":
        lambda c, p: imported_model(model_import.get_imported_model(c.store, c.principal, p["modelIdentifier"])),
    "DeleteImportedModel":
        lambda c, p: model_import.delete_imported_model(c.store, c.principal, p["modelIdentifier"]),
    "CreateCustomModel": lambda c, p: {"modelArn": model_import.create_custom_model(
        c.store, c.settings, c.principal, custom_model_request(p))},
}
