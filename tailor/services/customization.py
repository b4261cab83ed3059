"""Customization jobs, custom models and foundation models: what the control-plane API does.

Functions here take validated request dicts (wire field names, as botocore's model defines them)
and a principal, talk to the store, and return response dicts in the same wire vocabulary. They
know nothing of HTTP; ``tailor.api.bedrock.control`` is the thin layer that calls them. Heavy
libraries stay out: checking a job's model and hyperparameters needs only the catalog.

Every lookup is scoped to the calling principal: another principal's job or model is reported as
not found, exactly like one that does not exist.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from tailor.arns import foundation_model_arn, job_arn, new_resource_id
from tailor.catalog import FOUNDATION_MODELS, CustomizationType, resolve_model, resolve_registered_model
from tailor.errors import Conflict, InvalidInput, ModelUnavailable, NotFound
from tailor.jobs.store import CustomModel, Deployment, EvaluationJob, Job, Store, Tag, page, transition, utcnow
from tailor.services import buckets
from tailor.settings import Settings
from tailor.train.hyperparams import parse_hyperparameters

# Types whose recipes Tailor has today; the others are answered with a clear ValidationException.
TRAINABLE = {CustomizationType.FINE_TUNING, CustomizationType.CONTINUED_PRE_TRAINING,
             CustomizationType.REINFORCEMENT_FINE_TUNING}
# What ListFoundationModels may report in customizationsSupported: botocore's ModelCustomization
# enum has no REINFORCEMENT_FINE_TUNING, so RFT support is documented rather than listed.
LISTED_CUSTOMIZATIONS = {CustomizationType.FINE_TUNING, CustomizationType.CONTINUED_PRE_TRAINING,
                         CustomizationType.DISTILLATION}
PHASES = ("validationDetails", "dataProcessingDetails", "trainingDetails")


# ---------------------------------------------------------------------------------------------
# Jobs


def create_job(store: Store, settings: Settings, principal: str, request: dict) -> dict:
    token = request.get("clientRequestToken")
    with store.session() as session:
        if token:
            earlier = session.scalar(select(Job).where(Job.principal == principal,
                                                       Job.client_request_token == token))
            if earlier is not None:  # a retried request: the same job, no error
                return {"jobArn": earlier.arn}

    if not (request.get("trainingDataConfig") or {}).get("s3Uri"):
        raise InvalidInput("trainingDataConfig.s3Uri: required (invocation logs as training data are not "
                           "supported yet).")
    kind = CustomizationType(request.get("customizationType") or "FINE_TUNING")
    if kind not in TRAINABLE:
        raise InvalidInput(f"customizationType: {kind} is not available in Tailor yet; "
                           f"available: {', '.join(sorted(TRAINABLE))}.")
    base_id = request["baseModelIdentifier"]
    start = _custom_start(store, principal, base_id, settings)  # a custom model customized again
    try:
        model = resolve_model(start.artifacts_dir, settings) if start else resolve_registered_model(base_id, settings)
    except ModelUnavailable as error:
        raise InvalidInput(f"baseModelIdentifier: {error.message}") from error
    except NotFound as error:
        raise NotFound(f"baseModelIdentifier: {error.message} Nor is it one of your custom models.") from None
    if kind not in model.customization_types:
        supported = ", ".join(model.customization_types)
        raise InvalidInput(f"customizationType: {model.model_id} supports {supported}, not {kind}.")
    if kind is CustomizationType.REINFORCEMENT_FINE_TUNING:
        _check_rft(store, request, model)
    else:
        parse_hyperparameters(request.get("hyperParameters") or {}, model)  # every bad field, named
    _authorize_data(store, settings, principal, request)

    job_id = new_resource_id()
    now = utcnow()
    job = Job(
        id=job_id, arn=job_arn(settings.region, settings.account_id, model.model_id, job_id),
        name=request["jobName"], principal=principal, status="InProgress", phase="queued",
        customization_type=kind.value, base_model_id=model.model_id,
        base_model_arn=foundation_model_arn(settings.region, model.model_id),
        source_model_arn=start.arn if start else None, output_model_name=request["customModelName"],
        output_model_arn=None, role_arn=request["roleArn"],
        client_request_token=token, request=request,
        status_details={phase: {"status": "NotStarted", "creationTime": now.isoformat(),
                                "lastModifiedTime": now.isoformat()} for phase in PHASES},
        progress={}, validation_losses=[], stop_requested=False,
        work_dir=str(settings.home / "jobs" / job_id), created_at=now, last_modified_at=now,
    )
    with store.session() as session:
        if session.scalar(select(Job.id).where(Job.principal == principal, Job.name == job.name)):
            raise Conflict(f"jobName: a job named {job.name} already exists.")
        if session.scalar(select(CustomModel.id).where(CustomModel.principal == principal,
                                                       CustomModel.name == job.output_model_name)):
            raise Conflict(f"customModelName: a custom model named {job.output_model_name} already exists.")
        session.add(job)
        for tag in request.get("jobTags") or []:
            session.add(Tag(resource_arn=job.arn, key=tag["key"], value=tag["value"]))
    return {"jobArn": job.arn}


def _authorize_data(store: Store, settings: Settings, principal: str, request: dict) -> None:
    """Every URI the job names must be the caller's to read, and its output location the caller's to
    write — checked (and the output claimed) now, before the job is queued."""
    buckets.authorize(store, principal, request["trainingDataConfig"]["s3Uri"], "read", "trainingDataConfig.s3Uri")
    for position, validator in enumerate((request.get("validationDataConfig") or {}).get("validators") or []):
        buckets.authorize(store, principal, validator["s3Uri"], "read",
                          f"validationDataConfig.validators[{position}].s3Uri")
    buckets.claim_output(store, settings, principal, request["outputDataConfig"]["s3Uri"], "outputDataConfig.s3Uri")


def _custom_start(store: Store, principal: str, identifier: str, settings: Settings) -> CustomModel | None:
    """The caller's custom model that ``baseModelIdentifier`` names (by ARN, or by a name that is
    not a foundation model's), or None for a foundation model. Training starts from its weights."""
    if ":custom-model/" not in identifier:
        try:
            resolve_registered_model(identifier, settings)
            return None
        except (NotFound, ModelUnavailable, InvalidInput):
            pass  # not a foundation model: perhaps a custom model's name
    with store.session() as session:
        try:
            return find_owned(session, CustomModel, principal, identifier, "Custom model")
        except NotFound as error:
            if ":custom-model/" in identifier:
                raise InvalidInput(f"baseModelIdentifier: {error.message}") from None
    return None  # resolve_model says what is wrong with the identifier


def training_start(store: Store, job: Job) -> str:
    """What a job's training loads: its foundation model's id, or the training output folder of
    the custom model it continues from."""
    if job.source_model_arn is None:
        return job.base_model_id
    with store.session() as session:
        artifacts = session.scalar(select(CustomModel.artifacts_dir).where(CustomModel.arn == job.source_model_arn))
    if artifacts is None:
        raise NotFound(f"The custom model {job.source_model_arn} this job starts from was deleted.")
    return artifacts


def _check_rft(store: Store, request: dict, model) -> None:
    """An RFT job names a registered grader and takes typed hyperparameters in rftConfig."""
    from tailor.graders.registry import get_grader
    from tailor.train.hyperparams import parse_rft_hyperparameters

    if request.get("hyperParameters"):
        raise InvalidInput("hyperParameters: REINFORCEMENT_FINE_TUNING takes its hyperparameters in "
                           "customizationConfig.rftConfig.hyperParameters.")
    rft = (request.get("customizationConfig") or {}).get("rftConfig")
    arn = ((rft or {}).get("graderConfig") or {}).get("lambdaGrader", {}).get("lambdaArn")
    if not arn:
        raise InvalidInput("customizationConfig.rftConfig.graderConfig.lambdaGrader.lambdaArn: required for "
                           "REINFORCEMENT_FINE_TUNING (register a grader with `tailor graders create`).")
    try:
        get_grader(store, arn)
    except NotFound as error:
        raise InvalidInput(f"customizationConfig.rftConfig.graderConfig.lambdaGrader.lambdaArn: {error.message} "
                           "Register it on the server with `tailor graders create NAME --file grader.py`.") from None
    parse_rft_hyperparameters(rft.get("hyperParameters") or {}, model)


def find_owned(session, table, principal: str, identifier: str, what: str):
    """A row of ``table`` by ARN or name, owned by ``principal``; another's is as good as missing."""
    column = table.arn if identifier.startswith("arn:") else table.name
    row = session.scalar(select(table).where(column == identifier, table.principal == principal))
    if row is None:
        raise NotFound(f"{what} {identifier} not found.")
    return row


def _find_job(session, principal: str, identifier: str) -> Job:
    return find_owned(session, Job, principal, identifier, "Customization job")


def _metrics(job: Job) -> dict:
    response = {}
    if job.training_loss is not None:
        response["trainingMetrics"] = {"trainingLoss": job.training_loss}
    if job.validation_losses:
        # The kept checkpoint is the one with the lowest validation loss; one entry per validator.
        validators = (job.request.get("validationDataConfig") or {}).get("validators") or [{}]
        response["validationMetrics"] = [{"validationLoss": min(job.validation_losses)}] * len(validators)
    return response


def job_response(job: Job) -> dict:
    request = job.request
    response = {
        "jobArn": job.arn, "jobName": job.name, "outputModelName": job.output_model_name,
        "outputModelArn": job.output_model_arn, "clientRequestToken": job.client_request_token,
        "roleArn": job.role_arn, "status": job.status, "statusDetails": job.status_details,
        "failureMessage": job.failure_message, "creationTime": job.created_at,
        "lastModifiedTime": job.last_modified_at, "endTime": job.end_time, "baseModelArn": job.base_model_arn,
        "hyperParameters": request.get("hyperParameters") or {},
        "trainingDataConfig": request["trainingDataConfig"],
        "validationDataConfig": request.get("validationDataConfig") or {"validators": []},
        "outputDataConfig": request["outputDataConfig"], "customizationType": job.customization_type,
        "vpcConfig": request.get("vpcConfig"), "customizationConfig": request.get("customizationConfig"),
    }
    return {**response, **_metrics(job)}


def get_job(store: Store, principal: str, identifier: str) -> dict:
    with store.session() as session:
        return job_response(_find_job(session, principal, identifier))


def common_filters(table, principal: str, query: dict) -> list:
    """The filters every List operation shares: owner, name substring, creation time window."""
    conditions = [table.principal == principal]
    if query.get("nameContains"):
        conditions.append(table.name.contains(query["nameContains"], autoescape=True))
    if query.get("creationTimeAfter"):
        conditions.append(table.created_at > query["creationTimeAfter"])
    if query.get("creationTimeBefore"):
        conditions.append(table.created_at < query["creationTimeBefore"])
    return conditions


def list_page(session, table, conditions: list, query: dict):
    """One page, newest first unless sortOrder=Ascending; 100 rows unless maxResults says otherwise."""
    return page(session, table, conditions, descending=query.get("sortOrder", "Descending") == "Descending",
                limit=query.get("maxResults") or 100, token=query.get("nextToken"))


def list_jobs(store: Store, principal: str, query: dict) -> dict:
    conditions = common_filters(Job, principal, query)
    if query.get("statusEquals"):
        conditions.append(Job.status == query["statusEquals"])
    with store.session() as session:
        rows, token = list_page(session, Job, conditions, query)
        summaries = [{
            "jobArn": job.arn, "baseModelArn": job.base_model_arn, "jobName": job.name, "status": job.status,
            "statusDetails": job.status_details, "lastModifiedTime": job.last_modified_at,
            "creationTime": job.created_at, "endTime": job.end_time, "customModelArn": job.output_model_arn,
            "customModelName": job.output_model_name, "customizationType": job.customization_type,
        } for job in rows]
    return {"modelCustomizationJobSummaries": summaries, "nextToken": token}


def stop_job(store: Store, principal: str, identifier: str) -> dict:
    """InProgress -> Stopping (the runner signals the worker) or, still queued, straight to Stopped."""
    with store.session() as session:
        job = _find_job(session, principal, identifier)
        if job.status != "InProgress":
            raise Conflict(f"Job {job.name} is {job.status}; only an InProgress job can be stopped.")
        if job.phase == "queued":
            transition(job, "Stopped", stop_requested=True)
        else:
            transition(job, "Stopping", stop_requested=True)
    return {}


# ---------------------------------------------------------------------------------------------
# Custom models


def _find_model(session, principal: str, identifier: str) -> CustomModel:
    return find_owned(session, CustomModel, principal, identifier, "Custom model")


def get_custom_model(store: Store, principal: str, identifier: str) -> dict:
    with store.session() as session:
        model = _find_model(session, principal, identifier)
        job = session.get(Job, model.job_id) if model.job_id else None
        response = {
            "modelArn": model.arn, "modelName": model.name, "creationTime": model.created_at,
            "baseModelArn": model.base_model_arn, "customizationType": model.customization_type,
            "modelStatus": model.status, "failureMessage": model.failure_message,
        }
        if job is not None:
            response.update(jobName=job.name, jobArn=job.arn, hyperParameters=job.request.get("hyperParameters") or {},
                            trainingDataConfig=job.request["trainingDataConfig"],
                            validationDataConfig=job.request.get("validationDataConfig") or {"validators": []},
                            outputDataConfig=job.request["outputDataConfig"], **_metrics(job))
        return response


def list_custom_models(store: Store, settings: Settings, principal: str, query: dict) -> dict:
    conditions = common_filters(CustomModel, principal, query)
    if query.get("modelStatus"):
        conditions.append(CustomModel.status == query["modelStatus"])
    for key in ("baseModelArnEquals", "foundationModelArnEquals"):
        if query.get(key):
            conditions.append(CustomModel.base_model_arn == query[key])
    with store.session() as session:
        rows, token = list_page(session, CustomModel, conditions, query)
        summaries = [{
            "modelArn": m.arn, "modelName": m.name, "creationTime": m.created_at, "baseModelArn": m.base_model_arn,
            # The contract's ModelName is the id without its version suffix (provider.name).
            "baseModelName": m.base_model_id.split(":")[0], "customizationType": m.customization_type,
            "ownerAccountId": settings.account_id, "modelStatus": m.status,
        } for m in rows]
    return {"modelSummaries": summaries, "nextToken": token}


def delete_custom_model(store: Store, principal: str, identifier: str) -> dict:
    import shutil

    with store.session() as session:
        model = _find_model(session, principal, identifier)
        # A deployment serving the model, loading it or failed on it would be left naming nothing.
        users = session.scalars(select(Deployment.arn).where(
            (Deployment.model_arn == model.arn) | (Deployment.desired_model_arn == model.arn))).all()
        if users:
            raise Conflict(f"Custom model {model.name} is deployed ({', '.join(sorted(users))}); "
                           "delete those deployments first.")
        # A LoRA model trained on top of this one loads these weights as its base; a queued or
        # running job will load them to start from.
        children = session.scalars(select(CustomModel.name).where(CustomModel.source_model_arn == model.arn)).all()
        jobs = session.scalars(select(Job.name).where(Job.source_model_arn == model.arn,
                                                      Job.status.in_(("InProgress", "Stopping")))).all()
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


# ---------------------------------------------------------------------------------------------
# Tags


def _owned_arn(session, principal: str, arn: str) -> None:
    owned = any(session.scalar(select(table.id).where(table.arn == arn, table.principal == principal))
                for table in (Job, CustomModel, Deployment, EvaluationJob))
    if not owned:
        raise NotFound(f"Resource {arn} not found.")


def tag_resource(store: Store, principal: str, arn: str, tags: list[dict]) -> dict:
    with store.session() as session:
        _owned_arn(session, principal, arn)
        for tag in tags:
            session.merge(Tag(resource_arn=arn, key=tag["key"], value=tag["value"]))
    return {}


def untag_resource(store: Store, principal: str, arn: str, keys: list[str]) -> dict:
    with store.session() as session:
        _owned_arn(session, principal, arn)
        session.execute(Tag.__table__.delete().where(Tag.resource_arn == arn, Tag.key.in_(keys)))
    return {}


def list_tags(store: Store, principal: str, arn: str) -> dict:
    with store.session() as session:
        _owned_arn(session, principal, arn)
        tags = session.scalars(select(Tag).where(Tag.resource_arn == arn).order_by(Tag.key))
        return {"tags": [{"key": t.key, "value": t.value} for t in tags]}
