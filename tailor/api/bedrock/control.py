"""Bedrock control-plane routes: HTTP <-> ``tailor.services``, nothing more.

Each operation's method, path and success status come from botocore's service model
(``shapes.http_binding``); its parameters are gathered from the path, the query string and the
JSON body, validated against the model, converted (jobs: ``api/bedrock/jobs.py``, into the job
model every dialect shares), passed to a service function, and the result is shaped by the
model's output shape. ``OPERATIONS`` is the one list of what Tailor answers
(``tests/api/bedrock/test_operations.py`` keeps it in step with what the server routes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from tailor.api.bedrock import invocation_jobs, invocation_logging, jobs, model_import
from tailor.api.bedrock.errors import error_json
from tailor.api.bedrock.shapes import http_binding, shape_output, validate_input
from tailor.services import customization, deployments, evaluations, models, tags
from tailor.settings import Settings
from tailor.store.db import Store
from tailor.wire.request_json import json_object


@dataclass(frozen=True)
class Caller:
    store: Store
    settings: Settings
    principal: str


OPERATIONS: dict[str, Callable[[Caller, dict], dict]] = {
    "CreateModelCustomizationJob": lambda c, p: {"jobArn": customization.create_job(
        c.store, c.settings, c.principal, jobs.customization_request(p))},
    "GetModelCustomizationJob":
        lambda c, p: jobs.customization_job(customization.get_job(c.store, c.principal, p["jobIdentifier"])),
    "ListModelCustomizationJobs":
        lambda c, p: jobs.customization_jobs(*customization.list_jobs(c.store, c.principal, p)),
    "StopModelCustomizationJob": lambda c, p: customization.stop_job(c.store, c.principal, p["jobIdentifier"]) or {},
    "ListFoundationModels": lambda c, p: models.list_foundation_models(c.settings, p),
    "GetFoundationModel": lambda c, p: models.get_foundation_model(c.settings, p["modelIdentifier"]),
    "ListCustomModels": lambda c, p: jobs.custom_models(*models.list_custom_models(c.store, c.principal, p),
                                                           c.settings.account_id),
    "GetCustomModel":
        lambda c, p: jobs.custom_model(models.get_custom_model(c.store, c.principal, p["modelIdentifier"])),
    "DeleteCustomModel": lambda c, p: models.delete_custom_model(c.store, c.principal, p["modelIdentifier"]),
    "TagResource": lambda c, p: tags.tag_resource(c.store, c.principal, p["resourceARN"], p["tags"]),
    "UntagResource": lambda c, p: tags.untag_resource(c.store, c.principal, p["resourceARN"], p["tagKeys"]),
    "ListTagsForResource": lambda c, p: tags.list_tags(c.store, c.principal, p["resourceARN"]),
    "CreateProvisionedModelThroughput":
        lambda c, p: deployments.create_provisioned_throughput(c.store, c.settings, c.principal, p),
    "GetProvisionedModelThroughput":
        lambda c, p: deployments.get_provisioned_throughput(c.store, c.principal, p["provisionedModelId"]),
    "ListProvisionedModelThroughputs": lambda c, p: deployments.list_provisioned_throughputs(c.store, c.principal, p),
    "UpdateProvisionedModelThroughput":
        lambda c, p: deployments.update_provisioned_throughput(c.store, c.settings, c.principal, p),
    "DeleteProvisionedModelThroughput":
        lambda c, p: deployments.delete_provisioned_throughput(c.store, c.principal, p["provisionedModelId"]),
    "CreateCustomModelDeployment":
        lambda c, p: deployments.create_custom_model_deployment(c.store, c.settings, c.principal, p),
    "GetCustomModelDeployment": lambda c, p: deployments.get_custom_model_deployment(
        c.store, c.principal, p["customModelDeploymentIdentifier"]),
    "ListCustomModelDeployments": lambda c, p: deployments.list_custom_model_deployments(c.store, c.principal, p),
    "UpdateCustomModelDeployment": lambda c, p: deployments.update_custom_model_deployment(c.store, c.principal, p),
    "DeleteCustomModelDeployment": lambda c, p: deployments.delete_custom_model_deployment(
        c.store, c.principal, p["customModelDeploymentIdentifier"]),
    "CreateEvaluationJob": lambda c, p: {"jobArn": evaluations.create_evaluation_job(
        c.store, c.settings, c.principal, jobs.evaluation_request(p))},
    "GetEvaluationJob":
        lambda c, p: jobs.evaluation_job(evaluations.get_evaluation_job(c.store, c.principal, p["jobIdentifier"])),
    "ListEvaluationJobs": lambda c, p: jobs.evaluation_jobs(*evaluations.list_evaluation_jobs(c.store, c.principal, p)),
    "StopEvaluationJob": lambda c, p: evaluations.stop_evaluation_job(c.store, c.principal, p["jobIdentifier"]),
    "BatchDeleteEvaluationJob":
        lambda c, p: evaluations.batch_delete_evaluation_jobs(c.store, c.principal, p["jobIdentifiers"]),
    # Data and weights in and out: each group's operations beside its converters.
    **invocation_logging.OPERATIONS,
    **invocation_jobs.OPERATIONS,
    **model_import.OPERATIONS,
}


def _params(request: Request, body: bytes) -> dict:
    params: dict = json_object(body) if body.strip() else {}
    params.update(request.query_params)
    params.update(request.path_params)
    return params


def add_routes(app: FastAPI) -> None:
    """Register every operation. ``app.state`` holds the store, the settings and
    ``authenticate(request, body) -> principal``."""
    for operation in OPERATIONS:
        method, uri, status = http_binding(operation)
        # ARNs in the path contain "/" once decoded, so every path parameter takes the rest of it.
        path = uri.replace("}", ":path}")
        app.add_api_route(path, _handler(operation, status), methods=[method], name=operation,
                          include_in_schema=True)


def _handler(operation: str, status: int):
    async def handle(request: Request) -> Response:
        body = await request.body()
        try:
            principal = await run_in_threadpool(request.app.state.authenticate, request, body)
            params = validate_input(operation, _params(request, body))
            caller = Caller(request.app.state.store, request.app.state.settings, principal)
            result = await run_in_threadpool(OPERATIONS[operation], caller, params)
            return JSONResponse(shape_output(operation, result), status_code=status)
        except Exception as error:  # every failure leaves in the AWS error envelope
            return error_json(error)

    handle.__name__ = operation
    return handle
