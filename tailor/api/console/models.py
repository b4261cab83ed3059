"""The console's Models page: custom models (what each was trained from, and how), deploying one as
provisioned throughput or on demand, and the deployments with their status.

Every action is the API's own service call with the signed-in principal, so another principal's
model or deployment is "not found" here exactly as it is through boto3. Deploy requests are checked
against the same botocore input shapes as CreateProvisionedModelThroughput and
CreateCustomModelDeployment, so a bad field gets the API's words and names the field. A new
deployment's status moves from Creating to InService / Active when the activation loop has loaded
it; the page follows that through ``GET /console/api/models/deployments`` (static/models.js), with
no reload.

A model's page also exports it (docs/export.md): the Export form queues an export job in the chosen
format (``model_export.create_export``, the service of ``POST /tailor/v1/custom-models/exports``) and
the page lists the model's exports, following each until it is done, with its signed download link.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse

from tailor.api.bedrock.jobs import bedrock_type
from tailor.api.bedrock.shapes import input_problems
from tailor.api.console.auth import checked, signed_in
from tailor.api.console.pages import ConsoleRoute, render
from tailor.errors import InvalidFields, InvalidInput
from tailor.services import deployments, model_export, models
from tailor.services.console_sessions import ConsoleSession
from tailor.services.models import CustomModelView
from tailor.wire.request_json import json_object

router = APIRouter(route_class=ConsoleRoute)

EXPORT_FORMATS = (("hf", "Hugging Face folder (merged safetensors, tar)"), ("gguf", "GGUF file (llama.cpp)"))
KINDS = {deployments.PROVISIONED: "Provisioned throughput", deployments.ON_DEMAND: "On-demand"}
OPERATION = {deployments.PROVISIONED: "CreateProvisionedModelThroughput",
             deployments.ON_DEMAND: "CreateCustomModelDeployment"}
COMMITMENTS = (("", "No commitment (per hour)"), ("OneMonth", "One month"), ("SixMonths", "Six months"))


# ---------------------------------------------------------------------------------------------
# What the pages show


def _deployments(store, principal: str) -> list[dict[str, Any]]:
    """Both kinds of deployment, newest first, in one shape for the table and its script."""
    rows = [{"arn": d["provisionedModelArn"], "name": d["provisionedModelName"], "kind": deployments.PROVISIONED,
             "status": d["status"], "modelArn": d["modelArn"], "modelUnits": d["modelUnits"],
             "commitment": d["commitmentDuration"], "created": d["creationTime"], "failure": None}
            for d in deployments.list_provisioned_throughputs(store, principal, {})["provisionedModelSummaries"]]
    rows += [{"arn": d["customModelDeploymentArn"], "name": d["customModelDeploymentName"],
              "kind": deployments.ON_DEMAND, "status": d["status"], "modelArn": d["modelArn"], "modelUnits": None,
              "commitment": None, "created": d["createdAt"], "failure": d["failureMessage"]}
             for d in deployments.list_custom_model_deployments(store, principal, {})["modelDeploymentSummaries"]]
    rows.sort(key=lambda row: row["created"], reverse=True)
    for row in rows:
        row["kindLabel"] = KINDS[row["kind"]]
        row["loading"] = row["status"] in deployments.LOADING
        row["created"] = row["created"].isoformat(timespec="seconds")
    return rows


def _exports(request: Request, principal: str, model_arn: str) -> list[dict[str, Any]]:
    """The model's exports, newest first, as the API shows them; links relative to this server."""
    settings = request.app.state.settings
    return [model_export.export_json(row, settings, "") for row in model_export.list_exports(
        request.app.state.store, principal) if row.model_arn == model_arn]


def _training(model: CustomModelView) -> dict[str, Any] | None:
    """How the model was made, from its job's spec (None once the job is gone)."""
    if model.job is None:
        return None
    spec, row = model.job.spec, model.job.row
    train = spec.train
    return {
        "job_id": row.id, "job_name": row.name, "job_status": row.status,
        "training": "" if spec.openai else train.training_uri,
        "openai_files": spec.openai or {},
        "validation": [] if spec.openai else list(train.validation_uris),
        "output": spec.output_uri,
        "hyperparameters": sorted((name, str(value)) for name, value in train.hyperparameters.items()),
        "grader": train.grader.arn if train.grader else None,
        "training_loss": row.training_loss,
        "validation_loss": min(row.validation_losses) if row.validation_losses else None,
    }


def _cost_text(estimate: deployments.CostEstimate | None, commitment: str | None) -> str:
    if estimate is None:
        return "No price configured: the operator sets model_unit_hourly_price to show an estimate."
    if commitment:
        return (f"Estimated {estimate.amount:,.2f} {estimate.currency} for the {dict(COMMITMENTS)[commitment].lower()} "
                f"commitment ({estimate.hours:,} h at {estimate.hourly:,.2f} {estimate.currency}/h).")
    return f"Estimated {estimate.amount:,.2f} {estimate.currency} per hour."


# ---------------------------------------------------------------------------------------------
# Pages


@router.get("/console/models", include_in_schema=False)
def index(request: Request, session: ConsoleSession = Depends(signed_in)) -> Response:
    store = request.app.state.store
    rows, _ = models.list_custom_models(store, session.principal, {})
    names = {row.arn: row.name for row in rows}
    return render(request, "models/index.html", {
        "models": [{"name": row.name, "arn": row.arn, "base": row.base_model_id, "status": row.status,
                    "type": bedrock_type(row.customization_type), "created": row.created_at.isoformat(timespec="seconds"),
                    "job_id": row.job_id} for row in rows],
        "deployments": _deployments(store, session.principal), "model_names": names,
    })


@router.get("/console/models/{name}", include_in_schema=False)
def detail(request: Request, name: str, session: ConsoleSession = Depends(signed_in)) -> Response:
    store, settings = request.app.state.store, request.app.state.settings
    model = models.get_custom_model(store, session.principal, name)
    serving = [row for row in _deployments(store, session.principal) if row["modelArn"] == model.row.arn]
    return render(request, "models/detail.html", {
        "model": model.row, "type": bedrock_type(model.row.customization_type), "training": _training(model),
        "deployments": serving, "model_names": {model.row.arn: model.row.name}, "only_model": model.row.arn,
        "commitments": COMMITMENTS,
        "cost": _cost_text(deployments.estimated_cost(settings, 1, None), None),
        "export_formats": EXPORT_FORMATS, "exports": _exports(request, session.principal, model.row.arn),
    })


@router.post("/console/models/{name}/delete", include_in_schema=False)
async def delete_model(request: Request, name: str, session: ConsoleSession = Depends(checked)) -> Response:
    await run_in_threadpool(models.delete_custom_model, request.app.state.store, session.principal, name)
    return RedirectResponse("/console/models", status_code=303)


@router.post("/console/models/{name}/deploy", include_in_schema=False)
async def deploy_form(request: Request, name: str, session: ConsoleSession = Depends(checked)) -> Response:
    """The deploy forms without JavaScript: deploy, then back to the list of deployments."""
    form = await request.form()
    await run_in_threadpool(_deploy, request, session.principal, name, {k: str(v) for k, v in form.items()})
    return RedirectResponse("/console/models#deployments", status_code=303)


@router.post("/console/models/{name}/export", include_in_schema=False)
async def export_form(request: Request, name: str, session: ConsoleSession = Depends(checked)) -> Response:
    """The Export form without JavaScript: queue the export, then back to the model's exports."""
    form = await request.form()
    await run_in_threadpool(_export, request, session.principal, name, str(form.get("format", "")))
    return RedirectResponse(f"/console/models/{quote(name, safe='')}#exports", status_code=303)


# Not under /console/models/: a custom model may be called "deployments".
@router.post("/console/deployments/delete", include_in_schema=False)
async def delete_deployment_form(request: Request, session: ConsoleSession = Depends(checked)) -> Response:
    form = await request.form()
    await run_in_threadpool(_delete_deployment, request, session.principal, str(form.get("kind", "")),
                            str(form.get("arn", "")))
    return RedirectResponse("/console/models#deployments", status_code=303)


# ---------------------------------------------------------------------------------------------
# JSON for models.js


@router.get("/console/api/models/deployments", include_in_schema=False)
def deployments_json(request: Request, session: ConsoleSession = Depends(signed_in)) -> Response:
    return JSONResponse({"deployments": _deployments(request.app.state.store, session.principal)})


@router.get("/console/api/models/estimate", include_in_schema=False)
def estimate_json(request: Request, modelUnits: str = "1", commitmentDuration: str = "",  # noqa: N803 — API names
                  session: ConsoleSession = Depends(signed_in)) -> Response:
    try:
        units = int(modelUnits)
    except ValueError:
        raise InvalidInput(f"modelUnits: must be a whole number of at least 1, got {modelUnits!r}.",
                           param="modelUnits") from None
    commitment = commitmentDuration or None
    estimate = deployments.estimated_cost(request.app.state.settings, units, commitment)
    return JSONResponse({"estimate": None if estimate is None else {
        "amount": estimate.amount, "currency": estimate.currency, "hours": estimate.hours, "hourly": estimate.hourly},
        "text": _cost_text(estimate, commitment)})


@router.post("/console/api/models/{name}/deploy", include_in_schema=False)
async def deploy_json(request: Request, name: str, session: ConsoleSession = Depends(checked)) -> Response:
    fields = json_object(await request.body())
    arn = await run_in_threadpool(_deploy, request, session.principal, name, fields)
    return JSONResponse({"arn": arn}, status_code=201)


@router.post("/console/api/models/{name}/export", include_in_schema=False)
async def export_json(request: Request, name: str, session: ConsoleSession = Depends(checked)) -> Response:
    fields = json_object(await request.body())
    fmt = fields.get("format")
    shown = await run_in_threadpool(_export, request, session.principal, name, fmt if isinstance(fmt, str) else "")
    return JSONResponse(shown, status_code=201)


@router.get("/console/api/models/{name}/exports", include_in_schema=False)
def exports_json(request: Request, name: str, session: ConsoleSession = Depends(signed_in)) -> Response:
    model = models.get_custom_model(request.app.state.store, session.principal, name).row
    return JSONResponse({"exports": _exports(request, session.principal, model.arn)})


# ---------------------------------------------------------------------------------------------
# Actions


def _export(request: Request, principal: str, name: str, fmt: str) -> dict[str, Any]:
    """Queue an export of the custom model ``name``; the export as the API shows it."""
    store, settings = request.app.state.store, request.app.state.settings
    model = models.get_custom_model(store, principal, name).row  # another's model: NotFound, as the API says
    row = model_export.create_export(store, settings, principal, model.arn, fmt)
    return model_export.export_json(row, settings, "")


def _deploy(request: Request, principal: str, name: str, fields: dict[str, Any]) -> str:
    """Deploy the custom model ``name`` as ``fields["kind"]`` asks; the new deployment's ARN."""
    store, settings = request.app.state.store, request.app.state.settings
    model = models.get_custom_model(store, principal, name).row  # another's model: NotFound, as the API says
    kind = fields.get("kind")
    if kind == deployments.PROVISIONED:
        units = fields.get("modelUnits")
        params = {"provisionedModelName": fields.get("provisionedModelName", ""), "modelId": model.arn,
                  "modelUnits": int(units) if isinstance(units, str) and units.strip().isdigit() else units}
        if fields.get("commitmentDuration"):
            params["commitmentDuration"] = fields["commitmentDuration"]
    elif kind == deployments.ON_DEMAND:
        params = {"modelDeploymentName": fields.get("modelDeploymentName", ""), "modelArn": model.arn}
    else:
        raise InvalidInput(f"kind: must be {' or '.join(KINDS)}, got {kind!r}.", param="kind")
    coerced, problems = input_problems(OPERATION[kind], params)
    if problems:
        raise InvalidFields(tuple(problem.split(": ", 1)) for problem in problems)  # type: ignore[misc]
    if kind == deployments.PROVISIONED:
        return deployments.create_provisioned_throughput(store, settings, principal, coerced)["provisionedModelArn"]
    return deployments.create_custom_model_deployment(store, settings, principal, coerced)["customModelDeploymentArn"]


def _delete_deployment(request: Request, principal: str, kind: str, arn: str) -> None:
    store = request.app.state.store
    if kind == deployments.PROVISIONED:
        deployments.delete_provisioned_throughput(store, principal, arn)
    elif kind == deployments.ON_DEMAND:
        deployments.delete_custom_model_deployment(store, principal, arn)
    else:
        raise InvalidInput(f"kind: must be {' or '.join(KINDS)}, got {kind!r}.", param="kind")
