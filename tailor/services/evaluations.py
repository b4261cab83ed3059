"""Model evaluation jobs: CreateEvaluationJob, GetEvaluationJob, ListEvaluationJobs,
StopEvaluationJob, BatchDeleteEvaluationJob (automated evaluations of models; SPEC §7).

Create checks everything that can be checked before compute is spent — the metric names, every
dataset (each line, with its line number), every model and the judge — and queues the job; the
job runner then runs ``tailor.evaluate.worker`` in a process of its own, as it does training.

Tailor accepts more than the original in two places, on purpose (docs/evaluation.md): the models
may be any model Tailor can run (custom models need not be deployed) or a remote model the
operator configured by name (``remote_models``), and ``inferenceParams`` may carry a ``system``
prompt. Human and RAG evaluations, built-in datasets and custom judge metrics are refused with a
clear message. Every dataset must be the caller's to read and the output location the caller's to
write (``tailor.services.buckets``); a caller never names an address the server would call.
"""

from __future__ import annotations

import json
import math
import shutil

from sqlalchemy import select

from tailor.arns import evaluation_job_arn, new_resource_id
from tailor.errors import Conflict, InvalidInput, NotFound, TailorError, show_value
from tailor.evaluate.backends import Generation, parse_spec
from tailor.evaluate.dataset import load_questions
from tailor.evaluate.run import check_metrics, needs_reference
from tailor.jobs.store import EvaluationJob, Store, Tag, transition, utcnow
from tailor.services import buckets
from tailor.services.customization import common_filters, find_owned, list_page
from tailor.services.inference import weights_for
from tailor.settings import Settings


def create_evaluation_job(store: Store, settings: Settings, principal: str, request: dict) -> dict:
    token = request.get("clientRequestToken")
    if token:
        with store.session() as session:
            earlier = session.scalar(select(EvaluationJob).where(EvaluationJob.principal == principal,
                                                                 EvaluationJob.client_request_token == token))
            if earlier is not None:  # a retried request: the same job, no error
                return {"jobArn": earlier.arn}
    check_request(store, settings, principal, request)

    job_id = new_resource_id()
    now = utcnow()
    job = EvaluationJob(
        id=job_id, arn=evaluation_job_arn(settings.region, settings.account_id, job_id), name=request["jobName"],
        principal=principal, status="InProgress", phase="queued",
        application_type=request.get("applicationType") or "ModelEvaluation", role_arn=request["roleArn"],
        client_request_token=token, request=request, stop_requested=False,
        work_dir=str(settings.home / "evaluations" / job_id), created_at=now, last_modified_at=now,
    )
    with store.session() as session:
        if session.scalar(select(EvaluationJob.id).where(EvaluationJob.principal == principal,
                                                         EvaluationJob.name == job.name)):
            raise Conflict(f"jobName: an evaluation job named {job.name} already exists.")
        session.add(job)
        for tag in request.get("jobTags") or []:
            session.add(Tag(resource_arn=job.arn, key=tag["key"], value=tag["value"]))
    return {"jobArn": job.arn}


def check_request(store: Store, settings: Settings, principal: str, request: dict) -> None:
    """Refuse, with every reason at once, a request Tailor cannot run."""
    if (request.get("applicationType") or "ModelEvaluation") != "ModelEvaluation":
        raise InvalidInput("applicationType: only ModelEvaluation is available in Tailor (no RAG evaluation).")
    automated = request["evaluationConfig"].get("automated")
    if automated is None:
        raise InvalidInput("evaluationConfig.human: human evaluation is not available in Tailor; "
                           "use evaluationConfig.automated.")
    if automated.get("customMetricConfig"):
        raise InvalidInput("evaluationConfig.automated.customMetricConfig: custom judge metrics are not "
                           "available in Tailor yet; use the Builtin.* judge metrics.")
    models = request["inferenceConfig"].get("models")
    if not models:
        raise InvalidInput("inferenceConfig.models: required (RAG configurations are not available in Tailor).")

    judge = judge_spec(automated)
    for position, config in enumerate(automated["datasetMetricConfigs"]):
        field = f"evaluationConfig.automated.datasetMetricConfigs[{position}]"
        metrics = config["metricNames"]
        check_metrics(metrics, has_judge=judge is not None, field=f"{field}.metricNames")
        uri = (config["dataset"].get("datasetLocation") or {}).get("s3Uri")
        if not uri:
            raise InvalidInput(f"{field}.dataset.datasetLocation.s3Uri: required; Tailor bundles none of the "
                               f"built-in datasets ({config['dataset']['name']}).")
        buckets.authorize(store, principal, uri, "read", f"{field}.dataset.datasetLocation.s3Uri")
        load_questions(uri, settings, reference_required=needs_reference(metrics),
                       needed_for="the automatic metrics")

    for position, config in enumerate(models):
        field = f"inferenceConfig.models[{position}]"
        if "bedrockModel" not in config:
            raise InvalidInput(f"{field}: only bedrockModel is available in Tailor (no precomputed inference).")
        generation_of(config["bedrockModel"], f"{field}.bedrockModel")
        _check_model(store, settings, principal, config["bedrockModel"]["modelIdentifier"], f"{field}.bedrockModel")
    if judge is not None:
        _check_model(store, settings, principal, judge,
                     "evaluationConfig.automated.evaluatorModelConfig.bedrockEvaluatorModels[0]")
    buckets.claim_output(store, settings, principal, request["outputDataConfig"]["s3Uri"], "outputDataConfig.s3Uri")


def judge_spec(automated: dict) -> str | None:
    """The judge's model identifier, if the evaluation has one."""
    evaluators = (automated.get("evaluatorModelConfig") or {}).get("bedrockEvaluatorModels") or []
    return evaluators[0]["modelIdentifier"] if evaluators else None


def _check_model(store: Store, settings: Settings, principal: str, identifier: str, field: str) -> None:
    """A model Tailor runs for this caller, or a remote model the operator configured by name."""
    if identifier in settings.remote_models:
        return
    try:
        weights_for(store, settings, principal, identifier)
    except TailorError as error:
        hint = ""
        if parse_spec(identifier).kind != "tailor":
            hint = (" A request cannot name an address for the server to call; the operator can configure a "
                    "remote model under a name (remote_models, docs/security.md).")
        raise InvalidInput(f"{field}.modelIdentifier: {error.message}{hint}") from None


MAX_ANSWER_TOKENS = 8192  # an evaluation's answers are short; more only ties up the engine
MAX_STOP_SEQUENCES = 4  # as Bedrock's inferenceConfig allows


def generation_of(bedrock_model: dict, field: str = "bedrockModel") -> Generation:
    """How a model answers: ``inferenceParams`` as the original takes it,
    ``{"inferenceConfig": {"maxTokens", "temperature", "topP", "stopSequences"}}``, plus ``system``.
    Every value is checked here, at create time, with the field it came from."""
    text = bedrock_model.get("inferenceParams")
    if not text:
        return Generation()
    field = f"{field}.inferenceParams"
    try:
        params = json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidInput(f"{field}: expected JSON like {{\"inferenceConfig\": {{\"maxTokens\": 512, "
                           "\"temperature\": 0}}}}.") from None
    if not isinstance(params, dict) or not isinstance(params.get("inferenceConfig") or {}, dict):
        raise InvalidInput(f"{field}: expected a JSON object with an optional inferenceConfig object.")
    config = params.get("inferenceConfig") or {}
    system = params.get("system")
    if system is not None and not isinstance(system, str):
        raise InvalidInput(f"{field}.system: must be a string.")
    stop = config.get("stopSequences") or []
    if (not isinstance(stop, list) or len(stop) > MAX_STOP_SEQUENCES
            or not all(isinstance(item, str) and item for item in stop)):
        raise InvalidInput(f"{field}.inferenceConfig.stopSequences: at most {MAX_STOP_SEQUENCES} non-empty strings.")
    return Generation(
        max_tokens=_number(config, "maxTokens", Generation.max_tokens, 1, MAX_ANSWER_TOKENS, field, whole=True),
        temperature=_number(config, "temperature", Generation.temperature, 0.0, 1.0, field),
        top_p=_number(config, "topP", Generation.top_p, 0.0, 1.0, field),
        stop=tuple(stop), system=system or None)


def _number(config: dict, name: str, default, low, high, field: str, whole: bool = False):
    """``config[name]`` as a finite number in ``[low, high]`` (a whole one if ``whole``)."""
    value = config.get(name, default)
    kind = "a whole number" if whole else "a number"
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or (whole and value != int(value)) or not low <= value <= high):
        raise InvalidInput(f"{field}.inferenceConfig.{name}: must be {kind} from {low} to {high}; "
                           f"got {show_value(value)}.")
    return int(value) if whole else float(value)


# ---------------------------------------------------------------------------------------------


def _find(session, principal: str, identifier: str) -> EvaluationJob:
    return find_owned(session, EvaluationJob, principal, identifier, "Evaluation job")


def get_evaluation_job(store: Store, principal: str, identifier: str) -> dict:
    with store.session() as session:
        job = _find(session, principal, identifier)
        request = job.request
        return {
            "jobName": job.name, "status": job.status, "jobArn": job.arn,
            "jobDescription": request.get("jobDescription"), "roleArn": job.role_arn,
            "customerEncryptionKeyId": request.get("customerEncryptionKeyId"), "jobType": "Automated",
            "applicationType": job.application_type, "evaluationConfig": request["evaluationConfig"],
            "inferenceConfig": request["inferenceConfig"], "outputDataConfig": request["outputDataConfig"],
            "creationTime": job.created_at, "lastModifiedTime": job.last_modified_at,
            "failureMessages": [job.failure_message] if job.failure_message else None,
        }


def list_evaluation_jobs(store: Store, principal: str, query: dict) -> dict:
    conditions = common_filters(EvaluationJob, principal, query)
    if query.get("statusEquals"):
        conditions.append(EvaluationJob.status == query["statusEquals"])
    if query.get("applicationTypeEquals"):
        conditions.append(EvaluationJob.application_type == query["applicationTypeEquals"])
    with store.session() as session:
        rows, token = list_page(session, EvaluationJob, conditions, query)
        summaries = [_summary(job) for job in rows]
    return {"jobSummaries": summaries, "nextToken": token}


def _summary(job: EvaluationJob) -> dict:
    automated = job.request["evaluationConfig"]["automated"]
    models = [m["bedrockModel"]["modelIdentifier"] for m in job.request["inferenceConfig"]["models"]]
    evaluators = [e["modelIdentifier"] for e in
                  (automated.get("evaluatorModelConfig") or {}).get("bedrockEvaluatorModels") or []]
    return {
        "jobArn": job.arn, "jobName": job.name, "status": job.status, "creationTime": job.created_at,
        "jobType": "Automated", "applicationType": job.application_type,
        "evaluationTaskTypes": sorted({c["taskType"] for c in automated["datasetMetricConfigs"]}),
        "modelIdentifiers": models, "evaluatorModelIdentifiers": evaluators or None,
        "inferenceConfigSummary": {"modelConfigSummary": {"bedrockModelIdentifiers": models}},
    }


def stop_evaluation_job(store: Store, principal: str, identifier: str) -> dict:
    """InProgress -> Stopping (the runner signals the worker) or, still queued, straight to Stopped."""
    with store.session() as session:
        job = _find(session, principal, identifier)
        if job.status != "InProgress":
            raise Conflict(f"Evaluation job {job.name} is {job.status}; only an InProgress job can be stopped.")
        transition(job, "Stopped" if job.phase == "queued" else "Stopping", stop_requested=True)
    return {}


def batch_delete_evaluation_jobs(store: Store, principal: str, identifiers: list[str]) -> dict:
    """Forget finished jobs (their published results stay where they were written). A job still
    running is refused per item, as is an unknown one; the others are deleted."""
    deleted, errors, folders = [], [], []
    with store.session() as session:
        for identifier in identifiers:
            try:
                job = _find(session, principal, identifier)
            except NotFound as error:
                errors.append({"jobIdentifier": identifier, "code": "ResourceNotFoundException",
                               "message": error.message})
                continue
            if job.status in ("InProgress", "Stopping"):
                errors.append({"jobIdentifier": identifier, "code": "ConflictException",
                               "message": f"Evaluation job {job.name} is {job.status}; stop it first."})
                continue
            folders.append(job.work_dir)
            session.delete(job)
            session.execute(Tag.__table__.delete().where(Tag.resource_arn == job.arn))
            deleted.append({"jobIdentifier": job.arn, "jobStatus": "Deleting"})
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    return {"errors": errors, "evaluationJobs": deleted}
