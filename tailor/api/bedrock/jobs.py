"""Bedrock's job operations <-> the job model (``tailor.jobs.spec``): pure converters, no I/O.

A create request becomes a dialect-neutral request (refusing here what only this dialect can ask
and Tailor does not do); a stored job (row + resolved spec) becomes the response botocore's model
describes. ``FIELDS`` gives errors found while resolving a request this dialect's field names.
"""

from __future__ import annotations

from tailor.catalog import CustomizationType
from tailor.errors import InvalidInput
from tailor.evaluate.spec import CustomMetric, RatingScaleItem
from tailor.jobs.spec import (
    CustomizationRequest,
    DatasetRequest,
    EvaluationRequest,
    Fields,
    InvocationLogsRequest,
    JobView,
    ModelRequest,
)
from tailor.services.customization import PAUSE_STATUSES
from tailor.services.evaluations import EvaluationJobView
from tailor.services.models import CustomModelView
from tailor.store.jobs import CustomModel, Job
from tailor.train.hyperparams import RFT_WIRE_NAMES

RFT_GRADER = "customizationConfig.rftConfig.graderConfig.lambdaGrader.lambdaArn"
TEACHER = "customizationConfig.distillationConfig.teacherModelConfig.teacherModelIdentifier"
INVOCATION_LOGS = "trainingDataConfig.invocationLogsConfig"
CUSTOMIZATION_FIELDS = Fields(
    name="jobName", model_name="customModelName", kind="customizationType", base_model="baseModelIdentifier",
    training_uri="trainingDataConfig.s3Uri", validation_uri="validationDataConfig.validators[{i}].s3Uri",
    output_uri="outputDataConfig.s3Uri", grader=RFT_GRADER, teacher=TEACHER,
    teacher_max_tokens=TEACHER.rpartition(".")[0] + ".maxResponseLengthForInference", invocation_logs=INVOCATION_LOGS,
)
EVALUATION_FIELDS = Fields(
    name="jobName", model_name="", kind="", base_model="", training_uri="", validation_uri="",
    output_uri="outputDataConfig.s3Uri",
    dataset_uri="evaluationConfig.automated.datasetMetricConfigs[{i}].dataset.datasetLocation.s3Uri",
    metrics="evaluationConfig.automated.datasetMetricConfigs[{i}].metricNames",
    model="inferenceConfig.models[{i}].bedrockModel",
    judge="evaluationConfig.automated.evaluatorModelConfig.bedrockEvaluatorModels[0]",
)
CUSTOM_METRIC_FIELD = "evaluationConfig.automated.customMetricConfig.customMetrics[{i}].customMetricDefinition"
CUSTOM_JUDGE_FIELD = "evaluationConfig.automated.customMetricConfig.evaluatorModelConfig.bedrockEvaluatorModels[0]"


def bedrock_status(status: str) -> str:
    """Bedrock's job statuses have no pause (the OpenAI door's): a pausing or paused job, not
    ended and able to continue, is InProgress there; its trainingDetails say Stopped."""
    return "InProgress" if status in PAUSE_STATUSES else status


def _tags(tags: list[dict] | None) -> tuple[tuple[str, str], ...]:
    return tuple((tag["key"], tag["value"]) for tag in tags or [])


# ---------------------------------------------------------------------------------------------
# Customization jobs


def customization_request(params: dict) -> CustomizationRequest:
    """A validated CreateModelCustomizationJob request as the job model's request."""
    data = params.get("trainingDataConfig") or {}
    logs = None
    if data.get("s3Uri") and data.get("invocationLogsConfig"):
        raise InvalidInput("trainingDataConfig: give s3Uri or invocationLogsConfig, not both.")
    if data.get("invocationLogsConfig"):
        config = data["invocationLogsConfig"]
        source = (config.get("invocationLogSource") or {}).get("s3Uri")
        if not source:
            raise InvalidInput(f"{INVOCATION_LOGS}.invocationLogSource.s3Uri: required.")
        logs = InvocationLogsRequest(source, bool(config.get("usePromptResponse", False)),
                                     config.get("requestMetadataFilters") or None)
    elif not data.get("s3Uri"):
        raise InvalidInput("trainingDataConfig.s3Uri: required (or trainingDataConfig.invocationLogsConfig).")
    kind = CustomizationType(params.get("customizationType") or "FINE_TUNING")
    hyperparameters = params.get("hyperParameters") or {}
    grader = None
    teacher = (((params.get("customizationConfig") or {}).get("distillationConfig") or {})
               .get("teacherModelConfig") or {})
    if teacher and kind is not CustomizationType.DISTILLATION:
        raise InvalidInput(f"customizationConfig.distillationConfig: only a DISTILLATION job has a teacher; "
                           f"this job is {kind}.")
    if kind is CustomizationType.REINFORCEMENT_FINE_TUNING:
        if hyperparameters:
            raise InvalidInput("hyperParameters: REINFORCEMENT_FINE_TUNING takes its hyperparameters in "
                               "customizationConfig.rftConfig.hyperParameters.")
        rft = (params.get("customizationConfig") or {}).get("rftConfig") or {}
        hyperparameters = rft.get("hyperParameters") or {}
        grader = ((rft.get("graderConfig") or {}).get("lambdaGrader") or {}).get("lambdaArn")
    return CustomizationRequest(
        fields=CUSTOMIZATION_FIELDS, name=params["jobName"], model_name=params["customModelName"],
        base_model=params["baseModelIdentifier"], kind=kind, training_uri=data.get("s3Uri") or "",
        validation_uris=tuple(v["s3Uri"] for v in (params.get("validationDataConfig") or {}).get("validators") or []),
        output_uri=params["outputDataConfig"]["s3Uri"], hyperparameters=hyperparameters, grader=grader,
        role=params["roleArn"], token=params.get("clientRequestToken"), tags=_tags(params.get("jobTags")),
        vpc=params.get("vpcConfig"), teacher=teacher.get("teacherModelIdentifier"),
        teacher_max_tokens=teacher.get("maxResponseLengthForInference"), invocation_logs=logs,
    )


def _configs(job: JobView) -> dict:
    """What the job trains on, with what, and where it writes — as the request put it, with every
    hyperparameter the run uses (defaults filled in)."""
    train = job.spec.train
    configs = {
        "trainingDataConfig": {"s3Uri": train.training_uri},
        "validationDataConfig": {"validators": [{"s3Uri": uri} for uri in train.validation_uris]},
        "outputDataConfig": {"s3Uri": job.spec.output_uri},
    }
    if job.spec.openai is not None:  # the OpenAI door's data are the caller's files, not s3:// objects
        configs["trainingDataConfig"], configs["validationDataConfig"] = {}, {"validators": []}
    if job.spec.invocation_logs is not None:  # as given; the counts are in the job's events
        configs["trainingDataConfig"] = {"invocationLogsConfig": {
            name: value for name, value in job.spec.invocation_logs.items() if name != "counts"}}
    if job.spec.distillation is not None:
        configs["customizationConfig"] = {"distillationConfig": {"teacherModelConfig": dict(job.spec.distillation)}}
    if train.customization_type is CustomizationType.REINFORCEMENT_FINE_TUNING:
        hyperparameters = {name: train.hyperparameters[name] for name in RFT_WIRE_NAMES
                           if name in train.hyperparameters}
        configs["hyperParameters"] = {}
        configs["customizationConfig"] = {"rftConfig": {
            "graderConfig": {"lambdaGrader": {"lambdaArn": train.grader.arn if train.grader else None}},
            "hyperParameters": hyperparameters}}
    else:
        configs["hyperParameters"] = {name: str(value) for name, value in train.hyperparameters.items()}
    return configs


def bedrock_type(customization_type: str) -> str:
    """The customization type in Bedrock's enum: Tailor's DPO is preference fine-tuning, which
    Bedrock can only call FINE_TUNING (its hyperParameters show ``beta``)."""
    return CustomizationType.FINE_TUNING.value if customization_type == CustomizationType.DPO else customization_type


def _metrics(job: JobView) -> dict:
    row, response = job.row, {}
    if row.training_loss is not None:
        response["trainingMetrics"] = {"trainingLoss": row.training_loss}
    if row.validation_losses:
        # The kept checkpoint is the one with the lowest validation loss; one entry per validator.
        validators = max(1, len(job.spec.train.validation_uris))
        response["validationMetrics"] = [{"validationLoss": min(row.validation_losses)}] * validators
    return response


def customization_job(job: JobView) -> dict:
    """GetModelCustomizationJob's response."""
    row = job.row
    return {
        "jobArn": row.arn, "jobName": row.name, "outputModelName": row.output_model_name,
        "outputModelArn": row.output_model_arn, "clientRequestToken": row.client_request_token,
        "roleArn": row.role_arn, "status": bedrock_status(row.status), "statusDetails": row.status_details,
        "failureMessage": row.failure_message, "creationTime": row.created_at,
        "lastModifiedTime": row.last_modified_at, "endTime": row.end_time, "baseModelArn": row.base_model_arn,
        "customizationType": bedrock_type(row.customization_type), "vpcConfig": job.spec.vpc,
        **_configs(job), **_metrics(job),
    }


def customization_jobs(rows: list[Job], token: str | None) -> dict:
    """ListModelCustomizationJobs' response."""
    return {"modelCustomizationJobSummaries": [{
        "jobArn": job.arn, "baseModelArn": job.base_model_arn, "jobName": job.name,
        "status": bedrock_status(job.status),
        "statusDetails": job.status_details, "lastModifiedTime": job.last_modified_at,
        "creationTime": job.created_at, "endTime": job.end_time, "customModelArn": job.output_model_arn,
        "customModelName": job.output_model_name, "customizationType": bedrock_type(job.customization_type),
    } for job in rows], "nextToken": token}


# ---------------------------------------------------------------------------------------------
# Custom models


def custom_model(model: CustomModelView) -> dict:
    """GetCustomModel's response."""
    row = model.row
    response = {
        "modelArn": row.arn, "modelName": row.name, "creationTime": row.created_at,
        "baseModelArn": row.base_model_arn, "customizationType": bedrock_type(row.customization_type),
        "modelStatus": row.status, "failureMessage": row.failure_message,
    }
    if model.job is not None:
        configs = _configs(model.job)
        configs.pop("customizationConfig", None)
        response.update(jobName=model.job.row.name, jobArn=model.job.row.arn, **configs, **_metrics(model.job))
    return response


def custom_models(rows: list[CustomModel], token: str | None, account_id: str) -> dict:
    """ListCustomModels' response."""
    return {"modelSummaries": [{
        "modelArn": m.arn, "modelName": m.name, "creationTime": m.created_at, "baseModelArn": m.base_model_arn,
        # The contract's ModelName is the id without its version suffix (provider.name).
        "baseModelName": m.base_model_id.split(":")[0], "customizationType": bedrock_type(m.customization_type),
        "ownerAccountId": account_id, "modelStatus": m.status,
    } for m in rows], "nextToken": token}


# ---------------------------------------------------------------------------------------------
# Evaluation jobs


def evaluation_request(params: dict) -> EvaluationRequest:
    """A validated CreateEvaluationJob request as the job model's request; what Tailor does not do
    (human and RAG evaluations, built-in datasets) is refused here, naming the field. A
    ``precomputedInferenceSource`` becomes a precomputed ``ModelRequest`` (its answers are in the
    dataset); ``customMetricConfig`` becomes the request's custom metrics and their judge, which
    the service checks."""
    if (params.get("applicationType") or "ModelEvaluation") != "ModelEvaluation":
        raise InvalidInput("applicationType: only ModelEvaluation is available in Tailor (no RAG evaluation).")
    automated = params["evaluationConfig"].get("automated")
    if automated is None:
        raise InvalidInput("evaluationConfig.human: human evaluation is not available in Tailor; "
                           "use evaluationConfig.automated.")
    models = params["inferenceConfig"].get("models")
    if not models:
        raise InvalidInput("inferenceConfig.models: required (RAG configurations are not available in Tailor).")
    datasets = []
    for position, config in enumerate(automated["datasetMetricConfigs"]):
        uri = (config["dataset"].get("datasetLocation") or {}).get("s3Uri")
        if not uri:
            raise InvalidInput(f"evaluationConfig.automated.datasetMetricConfigs[{position}].dataset.datasetLocation."
                               f"s3Uri: required; Tailor bundles none of the built-in datasets "
                               f"({config['dataset']['name']}).")
        datasets.append(DatasetRequest(config["dataset"]["name"], config["taskType"], tuple(config["metricNames"]),
                                       uri))
    runs = []
    for position, config in enumerate(models):
        if "precomputedInferenceSource" in config:
            source = config["precomputedInferenceSource"]["inferenceSourceIdentifier"]
            if any(source == run.identifier for run in runs) or any(
                    source == ((other.get("bedrockModel") or {}).get("modelIdentifier")) for other in models):
                raise InvalidInput(f"inferenceConfig.models[{position}].precomputedInferenceSource."
                                   f"inferenceSourceIdentifier: {source} names another model of this job too; a "
                                   "precomputed inference source needs a name of its own (the one the dataset's "
                                   "modelResponses[].modelIdentifier gives).")
            runs.append(ModelRequest(source, precomputed=True))
        else:
            runs.append(ModelRequest(config["bedrockModel"]["modelIdentifier"],
                                     config["bedrockModel"].get("inferenceParams")))
    custom = automated.get("customMetricConfig") or {}
    custom_metrics = tuple(_custom_metric(entry["customMetricDefinition"])
                           for entry in custom.get("customMetrics") or [])
    custom_judges = (custom.get("evaluatorModelConfig") or {}).get("bedrockEvaluatorModels") or []
    evaluators = (automated.get("evaluatorModelConfig") or {}).get("bedrockEvaluatorModels") or []
    return EvaluationRequest(
        fields=EVALUATION_FIELDS, name=params["jobName"], output_uri=params["outputDataConfig"]["s3Uri"],
        datasets=tuple(datasets), models=tuple(runs), judge=evaluators[0]["modelIdentifier"] if evaluators else None,
        description=params.get("jobDescription"), encryption_key=params.get("customerEncryptionKeyId"),
        role=params["roleArn"], token=params.get("clientRequestToken"), tags=_tags(params.get("jobTags")),
        custom_metrics=custom_metrics, custom_judge=custom_judges[0]["modelIdentifier"] if custom_judges else None,
        custom_metric_field=CUSTOM_METRIC_FIELD, custom_judge_field=CUSTOM_JUDGE_FIELD,
    )


def _custom_metric(definition: dict) -> CustomMetric:
    """A CustomMetricDefinition (its shape already checked against the contract: lengths, the
    name's pattern, one of stringValue / floatValue per item)."""
    scale = tuple(RatingScaleItem(item["definition"], item["value"]["stringValue"] if "stringValue" in item["value"]
                                  else float(item["value"]["floatValue"]))
                  for item in definition.get("ratingScale") or [])
    return CustomMetric(definition["name"], definition["instructions"], scale)


def _custom_metric_config(evaluation) -> dict:
    metrics = []
    for metric in evaluation.custom_metrics:
        definition = {"name": metric.name, "instructions": metric.instructions}
        if metric.rating_scale:
            definition["ratingScale"] = [
                {"definition": item.definition,
                 "value": {"stringValue": item.value} if isinstance(item.value, str) else {"floatValue": item.value}}
                for item in metric.rating_scale]
        metrics.append({"customMetricDefinition": definition})
    return {"customMetrics": metrics,
            "evaluatorModelConfig": {"bedrockEvaluatorModels": [{"modelIdentifier": evaluation.custom_judge.identifier}]}}


def _model_config(model) -> dict:
    if model.precomputed:
        return {"precomputedInferenceSource": {"inferenceSourceIdentifier": model.identifier}}
    return {"bedrockModel": _bedrock_model(model.identifier, model.inference_params)}


def _bedrock_model(identifier: str, inference_params: str | None) -> dict:
    model = {"modelIdentifier": identifier}
    if inference_params is not None:
        model["inferenceParams"] = inference_params
    return model


def _evaluation_configs(job: EvaluationJobView) -> dict:
    evaluation = job.spec.evaluation
    automated = {"datasetMetricConfigs": [{
        "taskType": dataset.task_type, "metricNames": list(dataset.metrics),
        "dataset": {"name": dataset.name, "datasetLocation": {"s3Uri": dataset.uri}},
    } for dataset in evaluation.datasets]}
    if evaluation.judge is not None:
        automated["evaluatorModelConfig"] = {"bedrockEvaluatorModels": [
            {"modelIdentifier": evaluation.judge.identifier}]}
    if evaluation.custom_metrics:
        automated["customMetricConfig"] = _custom_metric_config(evaluation)
    return {
        "evaluationConfig": {"automated": automated},
        "inferenceConfig": {"models": [_model_config(m) for m in evaluation.models]},
        "outputDataConfig": {"s3Uri": job.spec.output_uri},
    }


def evaluation_job(job: EvaluationJobView) -> dict:
    """GetEvaluationJob's response."""
    row = job.row
    return {
        "jobName": row.name, "status": row.status, "jobArn": row.arn, "jobDescription": job.spec.description,
        "roleArn": row.role_arn, "customerEncryptionKeyId": job.spec.encryption_key, "jobType": "Automated",
        "applicationType": row.application_type, **_evaluation_configs(job),
        "creationTime": row.created_at, "lastModifiedTime": row.last_modified_at,
        "failureMessages": [row.failure_message] if row.failure_message else None,
    }


def evaluation_jobs(jobs: list[EvaluationJobView], token: str | None) -> dict:
    """ListEvaluationJobs' response."""
    summaries = []
    for job in jobs:
        evaluation = job.spec.evaluation
        models = [m.identifier for m in evaluation.models if not m.precomputed]
        sources = [m.identifier for m in evaluation.models if m.precomputed]
        models_summary = {"bedrockModelIdentifiers": models}
        if sources:
            models_summary["precomputedInferenceSourceIdentifiers"] = sources
        summaries.append({
            "jobArn": job.row.arn, "jobName": job.row.name, "status": job.row.status,
            "creationTime": job.row.created_at, "jobType": "Automated", "applicationType": job.row.application_type,
            "evaluationTaskTypes": sorted({d.task_type for d in evaluation.datasets}),
            "modelIdentifiers": models,
            "evaluatorModelIdentifiers": [evaluation.judge.identifier] if evaluation.judge else None,
            "customMetricsEvaluatorModelIdentifiers":
                [evaluation.custom_judge.identifier] if evaluation.custom_judge else None,
            "inferenceConfigSummary": {"modelConfigSummary": models_summary},
        })
    return {"jobSummaries": summaries, "nextToken": token}
