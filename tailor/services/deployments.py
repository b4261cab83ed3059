"""Provisioned throughputs and on-demand custom model deployments: what the control-plane API does.

Two kinds of deployment share one table (``tailor.store.deployments.Deployment``) because both serve one
model under one ARN:

* **provisioned** (CreateProvisionedModelThroughput): a custom model or a foundation model, with
  ``modelUnits`` recorded for the serving engine (which decides what a unit buys) and an optional
  ``commitmentDuration``. Status: ``Creating -> InService | Failed``; a new model asked for with
  UpdateProvisionedModelThroughput makes it ``Updating`` until the model is loaded, then
  ``InService`` again (serving the new model, or still the old one with a ``failureMessage``).
* **on_demand** (CreateCustomModelDeployment): an ``Active`` custom model. Status:
  ``Creating -> Active | Failed``; UpdateCustomModelDeployment leaves it ``Active`` (the old model
  keeps serving) while ``updateDetails.updateStatus`` goes ``Updating -> UpdateCompleted |
  UpdateFailed``.

Loading weights is not done here: the serving side asks ``pending_activations`` what to load and
reports back with ``mark_loaded``, which ignores reports that a deletion or a newer request made
stale. ``resolve_deployment`` tells invocation code what a deployment ARN or name serves, and
``serving_arns`` which deployments answer now.

Decisions where the original service is silent or would not fit a self-hosted server:

* Names are unique per principal and kind; a taken name is a ConflictException (on Create and on
  a rename). A repeated ``clientRequestToken`` returns the first request's ARN, as for jobs.
* A deployment's model can be changed only while it is ``InService`` / ``Active`` with no change
  in flight (ConflictException otherwise); a rename is allowed in any state. Asking again for the
  model it serves or is loading changes nothing.
* botocore's model lists ConflictException only on the Delete operations, but boto3 raises any
  code the service knows as its modeled class, so ``client.exceptions.ConflictException`` catches
  these too.
* A provisioned throughput's model can change only as the contract's documentation allows: not
  while it serves a base model (read literally, so also after a move to its base model), and
  otherwise only to that base model or to another custom model customized from it
  (ValidationException).
* ``commitmentExpirationTime`` is creation plus one or six calendar months (the day clamped to the
  month's length). Nothing is billed here, so a commitment does not stop a deletion.
* ``estimated_cost`` is the console's price estimate before buying: the operator's
  ``model_unit_hourly_price`` per unit, over 730 h a month of commitment (or per hour without one).
* A custom model that any deployment names (serving it, loading it, or failed on it) cannot be
  deleted (``models.delete_custom_model`` answers ConflictException).

Every lookup is scoped to the calling principal: another principal's deployment or model is
reported as not found, exactly like one that does not exist.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from tailor.arns import (
    custom_model_deployment_arn,
    foundation_model_arn,
    identifier_kind,
    new_resource_id,
    provisioned_model_arn,
)
from tailor.catalog import FOUNDATION_MODELS, strip_foundation_arn
from tailor.errors import FAILURE_MESSAGE_LIMIT, Conflict, InvalidInput, NotFound
from tailor.services.models import usable_foundation_models
from tailor.services.records import common_filters, insert_once, list_page
from tailor.settings import Settings
from tailor.store.db import Store, utcnow
from tailor.store.deployments import Deployment
from tailor.store.jobs import CustomModel
from tailor.store.tags import Tag

PROVISIONED = "provisioned"
ON_DEMAND = "on_demand"
READY = {PROVISIONED: "InService", ON_DEMAND: "Active"}
WHAT = {PROVISIONED: "Provisioned Throughput", ON_DEMAND: "Custom model deployment"}
NAME_FIELD = {PROVISIONED: "provisionedModelName", ON_DEMAND: "modelDeploymentName"}
COMMITMENT_MONTHS = {"OneMonth": 1, "SixMonths": 6}
HOURS_PER_MONTH = 730  # 365 days x 24 h / 12, the month a cloud price sheet uses
LOADING = ("Creating", "Updating")  # statuses that wait for the engine (as does update_status Updating)
SERVING = ("InService", "Active", "Updating")  # an updating deployment serves its current model


@dataclass(frozen=True)
class DeploymentInfo:
    """What invocation code needs to know about a deployment."""

    id: str
    arn: str
    kind: str  # provisioned | on_demand
    status: str  # it answers when InService, Active or Updating (see SERVING)
    model_arn: str  # the model it serves now (the old one while an update loads)
    model_units: int  # an on-demand deployment counts as one unit
    failure_message: str | None


@dataclass(frozen=True)
class CostEstimate:
    """What ``model_units`` cost for one commitment term (or one hour without a commitment)."""

    amount: float
    currency: str
    hours: int  # the term the amount covers
    hourly: float  # all the units together, per hour


@dataclass(frozen=True)
class _Target:
    """A model a deployment may serve."""

    model_arn: str
    foundation_model_arn: str  # what it was customized from, or the model itself


# ---------------------------------------------------------------------------------------------
# Provisioned throughput


def create_provisioned_throughput(store: Store, settings: Settings, principal: str, request: dict) -> dict:
    token = request.get("clientRequestToken")
    with store.session() as session:
        if earlier := _arn_for_token(session, principal, PROVISIONED, token):
            return {"provisionedModelArn": earlier}  # a retried request: the same resource, no error
        target = _provisioned_target(session, settings, principal, request["modelId"], "modelId")
    deployment_id, now = new_resource_id(), utcnow()
    duration = request.get("commitmentDuration")
    row = Deployment(
        id=deployment_id, arn=provisioned_model_arn(settings.region, settings.account_id, deployment_id),
        kind=PROVISIONED, name=request["provisionedModelName"], principal=principal,
        model_arn=target.model_arn, desired_model_arn=target.model_arn,
        foundation_model_arn=target.foundation_model_arn, model_units=request["modelUnits"],
        desired_model_units=request["modelUnits"], commitment_duration=duration,
        commitment_expiration=commitment_end(now, duration), status="Creating",
        client_request_token=token, created_at=now, last_modified_at=now,
    )
    return {"provisionedModelArn": _insert(store, row, request.get("tags"))}


def provisioned_response(row: Deployment) -> dict:
    return {
        "provisionedModelArn": row.arn, "provisionedModelName": row.name, "modelArn": row.model_arn,
        "desiredModelArn": row.desired_model_arn, "foundationModelArn": row.foundation_model_arn,
        "modelUnits": row.model_units, "desiredModelUnits": row.desired_model_units, "status": row.status,
        "failureMessage": row.failure_message, "commitmentDuration": row.commitment_duration,
        "commitmentExpirationTime": row.commitment_expiration, "creationTime": row.created_at,
        "lastModifiedTime": row.last_modified_at,
    }


def get_provisioned_throughput(store: Store, principal: str, identifier: str) -> dict:
    with store.session() as session:
        return provisioned_response(_find(session, principal, PROVISIONED, identifier))


def list_provisioned_throughputs(store: Store, principal: str, query: dict) -> dict:
    with store.session() as session:
        rows, token = _list(session, principal, PROVISIONED, query)
        # A summary is the full description less the failure message.
        summaries = [{k: v for k, v in provisioned_response(row).items() if k != "failureMessage"} for row in rows]
    return {"provisionedModelSummaries": summaries, "nextToken": token}


def update_provisioned_throughput(store: Store, settings: Settings, principal: str, request: dict) -> dict:
    """Rename (``desiredProvisionedModelName``) and/or ask for another model (``desiredModelId``)."""
    name = request.get("desiredProvisionedModelName")
    try:
        with store.session() as session:
            row = _find(session, principal, PROVISIONED, request["provisionedModelId"])
            if request.get("desiredModelId"):
                target = _provisioned_target(session, settings, principal, request["desiredModelId"],
                                             "desiredModelId")
                _check_same_base(row, target)
                if target.model_arn != row.desired_model_arn:
                    _require_ready(row)
                    row.desired_model_arn, row.status, row.failure_message = target.model_arn, "Updating", None
            if name and name != row.name:
                _require_free_name(session, principal, PROVISIONED, name, "desiredProvisionedModelName")
                row.name = name
            row.last_modified_at = utcnow()
    except IntegrityError:  # a rename that lost a race to the unique index
        raise Conflict(f"desiredProvisionedModelName: a {WHAT[PROVISIONED]} named {name} already exists.") from None
    return {}


def delete_provisioned_throughput(store: Store, principal: str, identifier: str) -> dict:
    return _delete(store, principal, PROVISIONED, identifier)


# ---------------------------------------------------------------------------------------------
# On-demand custom model deployments


def create_custom_model_deployment(store: Store, settings: Settings, principal: str, request: dict) -> dict:
    token = request.get("clientRequestToken")
    with store.session() as session:
        if earlier := _arn_for_token(session, principal, ON_DEMAND, token):
            return {"customModelDeploymentArn": earlier}
        target = _custom_target(session, principal, request["modelArn"], "modelArn")
    deployment_id, now = new_resource_id(), utcnow()
    row = Deployment(
        id=deployment_id, arn=custom_model_deployment_arn(settings.region, settings.account_id, deployment_id),
        kind=ON_DEMAND, name=request["modelDeploymentName"], principal=principal,
        model_arn=target.model_arn, desired_model_arn=target.model_arn,
        foundation_model_arn=target.foundation_model_arn, description=request.get("description"),
        status="Creating", client_request_token=token, created_at=now, last_modified_at=now,
    )
    return {"customModelDeploymentArn": _insert(store, row, request.get("tags"))}


def _update_details(row: Deployment) -> dict | None:
    if row.update_status is None:
        return None
    return {"modelArn": row.desired_model_arn, "updateStatus": row.update_status}


def get_custom_model_deployment(store: Store, principal: str, identifier: str) -> dict:
    with store.session() as session:
        row = _find(session, principal, ON_DEMAND, identifier)
        return {
            "customModelDeploymentArn": row.arn, "modelDeploymentName": row.name, "modelArn": row.model_arn,
            "createdAt": row.created_at, "lastUpdatedAt": row.last_modified_at, "status": row.status,
            "description": row.description, "updateDetails": _update_details(row),
            "failureMessage": row.failure_message,
        }


def list_custom_model_deployments(store: Store, principal: str, query: dict) -> dict:
    # This operation names its creation-time filters createdAfter / createdBefore.
    query = {**query, "creationTimeAfter": query.get("createdAfter"),
             "creationTimeBefore": query.get("createdBefore")}
    with store.session() as session:
        rows, token = _list(session, principal, ON_DEMAND, query)
        summaries = [{
            "customModelDeploymentArn": row.arn, "customModelDeploymentName": row.name, "modelArn": row.model_arn,
            "createdAt": row.created_at, "lastUpdatedAt": row.last_modified_at, "status": row.status,
            "failureMessage": row.failure_message,
        } for row in rows]
    return {"modelDeploymentSummaries": summaries, "nextToken": token}


def update_custom_model_deployment(store: Store, principal: str, request: dict) -> dict:
    """Swap in another custom model; the current one keeps serving until the new one is loaded.

    Asking for the model it already serves, or is already loading, changes nothing.
    """
    with store.session() as session:
        row = _find(session, principal, ON_DEMAND, request["customModelDeploymentIdentifier"])
        target = _custom_target(session, principal, request["modelArn"], "modelArn")
        if target.model_arn != row.desired_model_arn or row.update_status == "UpdateFailed":  # a retry loads again
            _require_ready(row)
            row.desired_model_arn, row.update_status, row.failure_message = target.model_arn, "Updating", None
            row.last_modified_at = utcnow()
        return {"customModelDeploymentArn": row.arn}


def delete_custom_model_deployment(store: Store, principal: str, identifier: str) -> dict:
    return _delete(store, principal, ON_DEMAND, identifier)


# ---------------------------------------------------------------------------------------------
# The serving side: what to load, what came of it, what a deployment serves


def _pending(row: Deployment) -> bool:
    return row.status in LOADING or row.update_status == "Updating"


def pending_activations(store: Store) -> list[tuple[str, str]]:
    """``(deployment id, model ARN to load)`` for every deployment waiting for a model, oldest first."""
    waiting = or_(Deployment.status.in_(LOADING), Deployment.update_status == "Updating")
    with store.session() as session:
        rows = session.execute(select(Deployment.id, Deployment.desired_model_arn).where(waiting)
                               .order_by(Deployment.created_at, Deployment.id))
        return [(deployment_id, model_arn) for deployment_id, model_arn in rows]


def mark_loaded(store: Store, deployment_id: str, model_arn: str, error: str | None = None) -> bool:
    """Record that loading ``model_arn`` for a deployment succeeded (``error`` None) or failed.

    Creating becomes InService / Active, or Failed with ``error`` as the failure message. A model
    change completes (the deployment now serves ``model_arn``) or fails, leaving the old model
    serving with a failure message. Returns False, changing nothing, when the report is stale:
    the deployment was deleted, or it no longer waits for ``model_arn``.
    """
    with store.session() as session:
        row = session.get(Deployment, deployment_id, with_for_update=True)
        if row is None or not _pending(row) or row.desired_model_arn != model_arn:
            return False
        row.last_modified_at = utcnow()
        if row.status == "Creating":
            row.status = "Failed" if error else READY[row.kind]
            row.failure_message = _failure(error) if error else None
        elif error:  # a model change failed: the old model keeps serving
            row.failure_message = _failure(f"Could not load {model_arn}: {error} (still serving {row.model_arn}).")
            if row.kind == PROVISIONED:
                row.desired_model_arn, row.status = row.model_arn, "InService"
            else:  # updateDetails keeps naming the model that failed
                row.update_status = "UpdateFailed"
        else:
            row.model_arn, row.failure_message = model_arn, None
            if row.kind == PROVISIONED:
                row.status = "InService"
            else:
                row.update_status = "UpdateCompleted"
        return True


def resolve_deployment(store: Store, principal: str, identifier: str) -> DeploymentInfo:
    """The deployment a provisioned-model or custom-model-deployment ARN or name names.

    Names are unique per kind only; a name used by both kinds means the provisioned throughput.
    """
    with store.session() as session:
        column = Deployment.arn if identifier_kind(identifier) == "arn" else Deployment.name
        rows = session.scalars(select(Deployment).where(column == identifier, Deployment.principal == principal))
        row = min(rows, key=lambda r: r.kind != PROVISIONED, default=None)
        if row is None:
            raise NotFound(f"No provisioned throughput or custom model deployment {identifier} found.")
        return DeploymentInfo(row.id, row.arn, row.kind, row.status, row.model_arn, row.model_units or 1,
                              row.failure_message)


def serving_arns(store: Store, principal: str) -> list[str]:
    """The ARNs of ``principal``'s deployments that answer requests now, oldest first."""
    with store.session() as session:
        return list(session.scalars(
            select(Deployment.arn).where(Deployment.principal == principal, Deployment.status.in_(SERVING))
            .order_by(Deployment.created_at, Deployment.id)))


# ---------------------------------------------------------------------------------------------
# Shared pieces


def estimated_cost(settings: Settings, model_units: int, commitment: str | None) -> CostEstimate | None:
    """The operator's price for provisioned throughput (``model_unit_hourly_price``), for the console
    to show before buying: ``model_units`` for a commitment's whole term, or per hour without one.

    None when no price is configured. Nothing is billed anywhere: this is only the estimate the
    original console shows, at the operator's price.
    """
    if commitment is not None and commitment not in COMMITMENT_MONTHS:
        raise InvalidInput(f"commitmentDuration: must be one of {', '.join(COMMITMENT_MONTHS)} or none, "
                           f"got {commitment!r}.", param="commitmentDuration")
    if isinstance(model_units, bool) or not isinstance(model_units, int) or model_units < 1:
        raise InvalidInput(f"modelUnits: must be a whole number of at least 1, got {model_units!r}.",
                           param="modelUnits")
    price = settings.model_unit_hourly_price
    if price is None:
        return None
    hours = COMMITMENT_MONTHS[commitment] * HOURS_PER_MONTH if commitment else 1
    hourly = price * model_units
    return CostEstimate(amount=hourly * hours, currency=settings.price_currency, hours=hours, hourly=hourly)


def commitment_end(start: datetime, duration: str | None) -> datetime | None:
    """When a commitment of ``duration`` starting at ``start`` ends: same day and time, N months on."""
    if duration is None:
        return None
    months = start.month - 1 + COMMITMENT_MONTHS[duration]
    year, month = start.year + months // 12, months % 12 + 1
    return start.replace(year=year, month=month, day=min(start.day, calendar.monthrange(year, month)[1]))


def _failure(message: str) -> str:
    return message[:FAILURE_MESSAGE_LIMIT]


def _find(session, principal: str, kind: str, identifier: str) -> Deployment:
    """A deployment of ``kind`` by ARN or name, owned by ``principal``; another's is as good as missing."""
    column = Deployment.arn if identifier_kind(identifier) == "arn" else Deployment.name
    row = session.scalar(select(Deployment).where(column == identifier, Deployment.kind == kind,
                                                  Deployment.principal == principal))
    if row is None:
        raise NotFound(f"{WHAT[kind]} {identifier} not found.")
    return row


def _arn_for_token(session, principal: str, kind: str, token: str | None) -> str | None:
    if not token:
        return None
    return session.scalar(select(Deployment.arn).where(Deployment.principal == principal, Deployment.kind == kind,
                                                       Deployment.client_request_token == token))


def _require_free_name(session, principal: str, kind: str, name: str, field: str) -> None:
    if session.scalar(select(Deployment.id).where(Deployment.principal == principal, Deployment.kind == kind,
                                                  Deployment.name == name)):
        raise Conflict(f"{field}: a {WHAT[kind]} named {name} already exists.")


def _insert(store: Store, row: Deployment, tags: list[dict] | None) -> str:
    """Add ``row`` with its tags (a repeated key: the last wins); the ARN of the deployment the
    request names (``records.insert_once``: a retry with the same token gets the first one's)."""

    def taken(session) -> Conflict | None:
        try:
            _require_free_name(session, row.principal, row.kind, row.name, NAME_FIELD[row.kind])
        except Conflict as error:
            return error
        return None

    return insert_once(store, row, tags={tag["key"]: tag["value"] for tag in tags or []}, taken=taken,
                       earlier=lambda session: _arn_for_token(session, row.principal, row.kind, row.client_request_token))


def _require_ready(row: Deployment) -> None:
    """A model change waits until the deployment serves and no other change is in flight."""
    if row.status != READY[row.kind] or row.update_status == "Updating":
        state = "updating" if row.update_status == "Updating" else row.status
        raise Conflict(f"{WHAT[row.kind]} {row.name} is {state}; its model can be changed only when it is "
                       f"{READY[row.kind]} with no update in progress.")


def _check_same_base(row: Deployment, target: _Target) -> None:
    """The contract's rule for desiredModelId: a base-model throughput keeps its model; a custom one
    may move to its base model or to another custom model customized from that base."""
    if row.model_arn == row.foundation_model_arn and target.model_arn != row.model_arn:
        raise InvalidInput(f"desiredModelId: Provisioned Throughput {row.name} serves the base model "
                           f"{row.model_arn}; its model cannot be changed.")
    if target.foundation_model_arn != row.foundation_model_arn:
        raise InvalidInput(f"desiredModelId: {target.model_arn} is based on {target.foundation_model_arn}, but "
                           f"Provisioned Throughput {row.name} serves models based on {row.foundation_model_arn}.")


def _list(session, principal: str, kind: str, query: dict):
    conditions = [*common_filters(Deployment, principal, query), Deployment.kind == kind]
    if query.get("statusEquals"):
        conditions.append(Deployment.status == query["statusEquals"])
    if query.get("modelArnEquals"):
        conditions.append(Deployment.model_arn == query["modelArnEquals"])
    return list_page(session, Deployment, conditions, query)


def _delete(store: Store, principal: str, kind: str, identifier: str) -> dict:
    with store.session() as session:
        row = _find(session, principal, kind, identifier)
        session.delete(row)
        session.execute(Tag.__table__.delete().where(Tag.resource_arn == row.arn))
    return {}


# ---------------------------------------------------------------------------------------------
# Which models a deployment may serve


def _custom_target(session, principal: str, identifier: str, field: str) -> _Target:
    """An Active custom model of ``principal``, by ARN or name."""
    column = CustomModel.arn if identifier_kind(identifier) == "arn" else CustomModel.name
    model = session.scalar(select(CustomModel).where(column == identifier, CustomModel.principal == principal))
    if model is None:
        raise NotFound(f"{field}: custom model {identifier} not found.")
    if model.status != "Active":
        raise InvalidInput(f"{field}: custom model {model.name} is {model.status}; only an Active custom model "
                           "can be deployed.")
    return _Target(model.arn, model.base_model_arn)


def _provisioned_target(session, settings: Settings, principal: str, identifier: str, field: str) -> _Target:
    """A custom model (ARN or name) or a foundation model Tailor can serve (id or ARN).

    Foundation ids always hold a "." and custom model names never do, so the two cannot be confused.
    """
    is_arn = identifier_kind(identifier) == "arn"
    if (is_arn and ":custom-model/" in identifier) or (not is_arn and "." not in identifier):
        return _custom_target(session, principal, identifier, field)
    model_id = strip_foundation_arn(identifier)
    if model_id in usable_foundation_models(settings):
        arn = foundation_model_arn(settings.region, model_id)
        return _Target(arn, arn)
    if model_id in FOUNDATION_MODELS:
        raise InvalidInput(f"{field}: {model_id} is an id of the original service and Tailor has no weights for it; "
                           f"map it to a local model in TAILOR_MODEL_ALIASES to deploy it.")
    raise NotFound(f"{field}: model {identifier} not found.")
