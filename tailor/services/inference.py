"""Which weights answer a ``modelId``: the lookup shared by bedrock-runtime and the OpenAI API.

A model id may name, as in the original service:

- a foundation model: its id (``anthropic.claude-3-haiku-20240307-v1:0``, with or without the
  context-window suffix the customization ids carry), its ARN, or a ``TAILOR_MODEL_ALIASES`` key;
- a provisioned throughput (``provisioned-model`` ARN or its name) or an on-demand custom model
  deployment (``custom-model-deployment`` ARN or name): the custom or foundation model it serves.

A custom model itself is not invokable through its ARN: it must be deployed first, and invoking its
ARN answers the original's ValidationException saying so. An imported model (``imported-model``
ARN, CreateModelImportJob) is, as in the original, invoked on demand by its ARN: its folder holds
full weights with a training manifest (``services/model_import.py``), served like a custom model's.
A model fine-tuned through the OpenAI API is, as on OpenAI, callable at once by its ``ft:…`` name
(the engine loads it on first use, as it does a foundation model). Every lookup is scoped to the
caller's principal.

The body a model takes (``Invocable.body``) follows the catalog family of its foundation model;
a custom model takes its base model's, recorded in its training manifest.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from tailor import trained
from tailor.catalog import (
    FAMILIES,
    FOUNDATION_MODELS,
    base_of,
    resolve_model,
    strip_foundation_arn,
)
from tailor.errors import InvalidInput, ModelNotReady, ModelUnavailable, NotFound
from tailor.serve.protocol import Target
from tailor.services import deployments
from tailor.services.model_import import imported_arns, imported_artifacts
from tailor.services.models import usable_foundation_models
from tailor.settings import Settings
from tailor.store.db import Store
from tailor.store.jobs import CustomModel


@dataclass(frozen=True)
class Invocable:
    model_id: str  # as the caller named it, echoed in responses
    target: Target
    body: str  # the InvokeModel body kind: openai | anthropic | cohere | llama | titan
    concurrency_key: str | None = None  # a deployment's ARN: its model units cap concurrent requests
    concurrency: int | None = None


def resolve(store: Store, settings: Settings, principal: str, model_id: str) -> Invocable:
    if model_id.startswith(FINE_TUNED_PREFIX):
        target, body = target_for_artifacts(fine_tuned_artifacts(store, principal, model_id))
        return Invocable(model_id, target, body)
    resource = _resource_type(model_id)
    if resource in ("provisioned-model", "custom-model-deployment") or (
            resource is None and not _is_foundation(model_id, settings)):
        return _deployed(store, settings, principal, model_id)
    if resource == "custom-model":
        with store.session() as session:
            model = session.scalar(select(CustomModel).where(CustomModel.arn == model_id,
                                                             CustomModel.principal == principal))
        if model is None:
            raise NotFound(f"Model {model_id} not found.")
        raise InvalidInput(f"The custom model {model_id} is not deployed, so it cannot be invoked directly. "
                           "Create a provisioned throughput (CreateProvisionedModelThroughput) or an on-demand "
                           "deployment (CreateCustomModelDeployment) for it, and invoke that ARN.")
    if resource == "imported-model":  # on demand, as in the original: no deployment needed
        target, body = target_for_artifacts(imported_artifacts(store, principal, model_id))
        return Invocable(model_id, target, body)
    if resource not in (None, "foundation-model"):
        raise InvalidInput(f"modelId: Tailor cannot invoke a {resource} ({model_id}).")
    return _foundation(settings, model_id)


FINE_TUNED_PREFIX = "ft:"
_CHECKPOINT = re.compile(r"(ft:.+):ckpt-step-([0-9]{1,9})")


def fine_tuned_model(store: Store, principal: str, name: str) -> CustomModel:
    """The caller's custom model named ``ft:…`` (OpenAI's fine-tuned model names)."""
    with store.session() as session:
        model = session.scalar(select(CustomModel).where(CustomModel.openai_name == name,
                                                         CustomModel.principal == principal))
        if model is None:
            raise NotFound(f"The model {name} does not exist or you do not have access to it.", param="model")
        session.expunge(model)
        return model


def fine_tuned_artifacts(store: Store, principal: str, name: str) -> Path:
    """The trained folder an ``ft:`` name means: the model's, or one of its epoch checkpoints'
    (``ft:…:ckpt-step-N``, as ``client.fine_tuning.jobs.checkpoints.list`` names them)."""
    try:
        return Path(fine_tuned_model(store, principal, name).artifacts_dir)
    except NotFound:
        found = _CHECKPOINT.fullmatch(name)
        if found is None:
            raise
    folder = Path(fine_tuned_model(store, principal, found.group(1)).artifacts_dir)
    for checkpoint in trained.checkpoints(folder):
        if checkpoint.step == int(found.group(2)):
            return checkpoint.path
    raise NotFound(f"The model {name} does not exist or you do not have access to it: {found.group(1)} keeps "
                   "no checkpoint at that step.", param="model")


def checkpoint_name(model_name: str, step: int) -> str:
    return f"{model_name}:ckpt-step-{step}"


def fine_tuned_models(store: Store, principal: str) -> list[CustomModel]:
    """The caller's models with OpenAI's ``ft:`` names, oldest first."""
    with store.session() as session:
        rows = list(session.scalars(select(CustomModel).where(
            CustomModel.principal == principal, CustomModel.openai_name.is_not(None))
            .order_by(CustomModel.created_at)))
        session.expunge_all()
        return rows


def _resource_type(model_id: str) -> str | None:
    if not model_id.startswith("arn:"):
        return None
    resource = model_id.split(":", 5)[-1]
    return resource.split("/", 1)[0]


def _catalog_id(model_id: str, settings: Settings) -> str | None:
    """The catalog or alias id ``model_id`` names; invocation ids may omit the ``:200k``-style suffix."""
    model_id = strip_foundation_arn(model_id)
    known = set(usable_foundation_models(settings)) | set(settings.model_aliases)
    if model_id in known:
        return model_id
    extended = [candidate for candidate in known if candidate.startswith(model_id + ":")]
    return extended[0] if len(extended) == 1 else None


def _is_foundation(model_id: str, settings: Settings) -> bool:
    return _catalog_id(model_id, settings) is not None


def _foundation(settings: Settings, model_id: str) -> Invocable:
    catalog_id = _catalog_id(model_id, settings)
    if catalog_id is None:
        raise NotFound(_unknown_model(model_id, _foundation_ids(settings)))
    try:
        resolved = resolve_model(catalog_id, settings)
    except ModelUnavailable as error:
        raise InvalidInput(f"modelId: {error.message}") from error
    return Invocable(model_id, Target(base=catalog_id), resolved.family.invoke_body)


def _deployed(store: Store, settings: Settings, principal: str, identifier: str) -> Invocable:
    try:
        deployment = deployments.resolve_deployment(store, principal, identifier)
    except NotFound:
        if _resource_type(identifier) is not None:  # an ARN says which kind of deployment it meant
            raise
        could_mean = _foundation_ids(settings) + deployments.serving_arns(store, principal)
        raise NotFound(_unknown_model(identifier, could_mean)) from None
    if deployment.status not in deployments.SERVING:
        if deployment.status == "Creating":
            raise ModelNotReady(f"{identifier} is still loading its model; retry shortly.")
        raise InvalidInput(f"{identifier} is {deployment.status} and cannot serve requests"
                           + (f": {deployment.failure_message}" if deployment.failure_message else "."))
    target, body = target_for_model(store, settings, principal, deployment.model_arn)
    return Invocable(identifier, target, body, concurrency_key=deployment.arn,
                     concurrency=deployment.model_units * settings.slots_per_model_unit)


def _foundation_ids(settings: Settings) -> list[str]:
    return [*usable_foundation_models(settings), *settings.model_aliases]


def _unknown_model(model_id: str, could_mean: list[str]) -> str:
    """Why ``model_id`` names no model, with the closest id the caller could have meant, if any."""
    message = (f"Model {model_id} not found: it is not in Tailor's catalog, not mapped by TAILOR_MODEL_ALIASES, "
               "and not one of your provisioned throughputs or custom model deployments.")
    close = difflib.get_close_matches(strip_foundation_arn(model_id), could_mean, n=1)
    return message + (f" Did you mean {close[0]!r}?" if close else "")


def target_for_model(store: Store, settings: Settings, principal: str | None, model_arn: str) -> tuple[Target, str]:
    """The weights and body kind of a custom model (by ARN) or a foundation model (by id or ARN).

    ``principal`` scopes the lookup; None (the server loading a deployment's model) does not.
    """
    if _resource_type(model_arn) == "imported-model":
        return target_for_artifacts(imported_artifacts(store, principal, model_arn))
    if _resource_type(model_arn) != "custom-model":
        invocable = _foundation(settings, model_arn)
        return invocable.target, invocable.body
    query = select(CustomModel).where(CustomModel.arn == model_arn)
    if principal is not None:
        query = query.where(CustomModel.principal == principal)
    with store.session() as session:
        model = session.scalar(query)
        if model is None:
            raise NotFound(f"Custom model {model_arn} not found.")
        artifacts = Path(model.artifacts_dir)
    return target_for_artifacts(artifacts)


def target_for_artifacts(artifacts: Path) -> tuple[Target, str]:
    """A trained folder's weights and body kind: full weights are a base of their own; a LoRA
    adapter goes on the base the manifest recorded (by its weights, not by an alias that may
    have changed since)."""
    try:
        model = trained.read(artifacts)
    except InvalidInput as error:
        raise ModelUnavailable(f"The custom model's artifacts are unreadable: {error.message}") from None
    family = FAMILIES.get(model.family or "tailor", FAMILIES["tailor"])
    if model.is_adapter:
        return Target(base=base_of(model), adapter=str(model.model_dir)), family.invoke_body
    return Target(base=str(model.model_dir)), family.invoke_body


def list_invocable(store: Store, settings: Settings, principal: str) -> list[str]:
    """Model ids a caller can invoke now: foundation models, its serving deployments, its ``ft:``
    models and their checkpoints."""
    ids = [model_id for model_id in FOUNDATION_MODELS if model_id in usable_foundation_models(settings)]
    ids += deployments.serving_arns(store, principal)
    ids += imported_arns(store, principal)
    for model in fine_tuned_models(store, principal):
        ids.append(model.openai_name)
        ids += [checkpoint_name(model.openai_name, kept.step) for kept in trained.checkpoints(Path(model.artifacts_dir))]
    return ids


def weights_for(store: Store, settings: Settings, principal: str, identifier: str, *,
                allow_folders: bool = False) -> Target:
    """The weights behind any model id Tailor knows, deployed or not — what an evaluation loads.

    Besides what ``resolve`` accepts this takes a custom model (ARN or name) that is not deployed,
    a deployment whatever its status, and, with ``allow_folders`` (the local CLI, an operator's
    settings — never an API caller, who could name another principal's output), a training
    output folder (one with a manifest.json).
    """
    if identifier.startswith("ft:"):  # a model fine-tuned through the OpenAI API, or one of its checkpoints
        return target_for_artifacts(fine_tuned_artifacts(store, principal, identifier))[0]
    folder = Path(identifier).expanduser()
    if allow_folders and trained.is_trained(folder):
        return target_for_artifacts(folder)[0]
    resource = _resource_type(identifier)
    if resource in ("custom-model", "imported-model"):
        return target_for_model(store, settings, principal, identifier)[0]
    if resource in ("provisioned-model", "custom-model-deployment"):
        deployment = deployments.resolve_deployment(store, principal, identifier)
        return target_for_model(store, settings, principal, deployment.model_arn)[0]
    if resource is None and not _is_foundation(identifier, settings):
        with store.session() as session:
            model_arn = session.scalar(select(CustomModel.arn).where(CustomModel.name == identifier,
                                                                     CustomModel.principal == principal))
        if model_arn is None:
            try:
                model_arn = deployments.resolve_deployment(store, principal, identifier).model_arn
            except NotFound:
                raise NotFound(f"Model {identifier} not found: not a foundation model, custom model, deployment "
                               "or training output folder.") from None
        return target_for_model(store, settings, principal, model_arn)[0]
    return _foundation(settings, identifier).target
