"""Model evaluation jobs: create (check and resolve a request into the job spec the worker runs),
get, list, stop, delete — automated evaluations of models against datasets, by metrics and judges.

Create checks everything that can be checked before compute is spent — the metric names, every
dataset (each line, with its line number), every model and the judge — and queues the job; the
job runner then runs it in a worker process of its own (``tailor.jobs.worker``), as it does training.

Tailor accepts more than the original in two places, on purpose (docs/evaluation.md): the models
may be any model Tailor can run (custom models need not be deployed) or a remote model the
operator configured by name (``remote_models``), and ``inferenceParams`` may carry a ``system``
prompt. Human and RAG evaluations and built-in datasets are refused with a clear message. Every
dataset must be the caller's to read and the output location the caller's to write
(``tailor.services.buckets``); a caller never names an address the server would call.

A model may be a *precomputed inference source*: nothing is resolved for it, and every dataset
line must carry its answer (``modelResponses``, checked line by line here). *Custom metrics* are
checked here (names, the instructions' variables, the rating scale) and converted to the OpenAI
grader definitions that will grade them (``tailor.evaluate.judge.custom_grader``), which are
validated now by the grader layer itself; their evaluator model is resolved like the judge's.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass

from sqlalchemy import select

from tailor import storage
from tailor.arns import evaluation_job_arn, new_resource_id
from tailor.errors import Conflict, InvalidInput, NotFound, TailorError, show_value
from tailor.evaluate.backends import Generation, parse_spec
from tailor.evaluate.dataset import load_questions
from tailor.evaluate.job import reference_required
from tailor.evaluate.judge import custom_grader, custom_instruction_problems
from tailor.evaluate.run import METRICS, NOT_AVAILABLE, check_metrics
from tailor.evaluate.spec import CustomMetric, DatasetTask, EvaluationSpec, ModelToRun
from tailor.jobs.spec import (
    CustomizationJobSpec,
    EvaluationJobSpec,
    EvaluationRequest,
    ModelRequest,
)
from tailor.services import buckets
from tailor.services.inference import weights_for
from tailor.services.records import (
    common_filters,
    find_owned,
    insert_once,
    list_page,
    made_with_token,
)
from tailor.settings import Settings
from tailor.store.db import Store, utcnow
from tailor.store.jobs import CustomModel, EvaluationJob, Job, transition
from tailor.store.tags import Tag


def create_evaluation_job(store: Store, settings: Settings, principal: str, request: EvaluationRequest) -> str:
    """Check and resolve ``request``, queue the job; its ARN (a retried request's: the same job's)."""
    earlier = made_with_token(EvaluationJob, principal, request.token)
    with store.session() as session:
        if arn := earlier(session):
            return arn
    spec = resolve(store, settings, principal, request)
    job_id = new_resource_id()
    now = utcnow()
    row = EvaluationJob(
        id=job_id, arn=evaluation_job_arn(settings.region, settings.account_id, job_id), name=request.name,
        principal=principal, status="InProgress", phase="queued", application_type="ModelEvaluation",
        role_arn=request.role, client_request_token=request.token, spec=spec.to_record(), stop_requested=False,
        work_dir=str(settings.home / "evaluations" / job_id), created_at=now, last_modified_at=now,
    )

    def taken(session) -> Conflict | None:
        if session.scalar(select(EvaluationJob.id).where(EvaluationJob.principal == principal,
                                                         EvaluationJob.name == row.name)):
            return Conflict(f"{request.fields.name}: an evaluation job named {row.name} already exists.")
        return None

    return insert_once(store, row, tags=dict(request.tags), earlier=earlier, taken=taken)


def resolve(store: Store, settings: Settings, principal: str, request: EvaluationRequest) -> EvaluationJobSpec:
    """Check everything that can be checked before compute is spent — the metric names, every
    dataset (each line, with its line number), every model and the judge — and resolve each model
    to what answers; refused with the first problem, naming its field."""
    fields = request.fields
    custom = {metric.name: metric for metric in request.custom_metrics}
    custom_judge = None
    if request.custom_metrics:
        _check_custom_metrics(request, settings)
        custom_judge = _model(store, settings, principal, ModelRequest(request.custom_judge),
                              request.custom_judge_field)
    sources = tuple(model.identifier for model in request.models if model.precomputed)
    datasets = []
    for position, dataset in enumerate(request.datasets):
        check_metrics(list(dataset.metrics), has_judge=request.judge is not None,
                      field=fields.metrics.format(i=position), custom=custom)
        uri_field = fields.dataset_uri.format(i=position)
        buckets.authorize(store, principal, dataset.uri, "read", uri_field)
        load_questions(dataset.uri, settings, reference_required=reference_required(dataset.metrics,
                                                                                     request.custom_metrics),
                       needed_for="the automatic metrics, or a custom metric that uses {{ground_truth}}",
                       precomputed=sources)
        datasets.append(DatasetTask(dataset.name, dataset.task_type, tuple(dataset.metrics), dataset.uri))
    named = {name for dataset in request.datasets for name in dataset.metrics}
    for position, metric in enumerate(request.custom_metrics):
        if metric.name not in named:
            raise InvalidInput(f"{request.custom_metric_field.format(i=position)}.name: the custom metric "
                               f"{metric.name} is named in no {fields.metrics.format(i='*')}; list it with the "
                               "metrics of each dataset it should score.")
    models = tuple(ModelToRun(model.identifier, precomputed=True) if model.precomputed
                   else _model(store, settings, principal, model, fields.model.format(i=position))
                   for position, model in enumerate(request.models))
    judge = _model(store, settings, principal, ModelRequest(request.judge), fields.judge) if request.judge else None
    buckets.claim_output(store, settings, principal, request.output_uri, fields.output_uri)
    evaluation = EvaluationSpec(datasets=tuple(datasets), models=models, judge=judge,
                                training_uri=_training_data(store, principal,
                                                            [m.identifier for m in models if not m.precomputed]),
                                custom_metrics=request.custom_metrics, custom_judge=custom_judge)
    return EvaluationJobSpec(evaluation=evaluation, output_uri=request.output_uri,
                             description=request.description, encryption_key=request.encryption_key)


RESERVED_PREFIX = "Builtin."


def _check_custom_metrics(request: EvaluationRequest, settings: Settings) -> None:
    """Every problem with the custom metrics, at once, each under its field: names (unique, not a
    built-in metric's), instructions (only the known variables, ``{{prediction}}`` required), the
    rating scale (one kind of value, no value twice); then the grader definition each becomes,
    validated by the grader layer that will grade it (the evaluator must be a model it can ask)."""
    from tailor.graders.openai import InvalidGrader, validate

    problems: list[str] = []
    names: set[str] = set()
    builtin = {*METRICS, *NOT_AVAILABLE}
    for position, metric in enumerate(request.custom_metrics):
        field = request.custom_metric_field.format(i=position)
        if metric.name in builtin or metric.name.startswith(RESERVED_PREFIX):
            problems.append(f"{field}.name: {metric.name} is a built-in metric's name (or starts with "
                            f"{RESERVED_PREFIX}); give the custom metric a name of its own")
        elif metric.name in names:
            problems.append(f"{field}.name: {metric.name} names another custom metric of this job too")
        names.add(metric.name)
        problems += [f"{field}.instructions: {problem}" for problem in custom_instruction_problems(metric.instructions)]
        problems += _scale_problems(metric, f"{field}.ratingScale")
    if problems:
        raise InvalidInput("; ".join(problems) + ".")
    for position, metric in enumerate(request.custom_metrics):
        try:
            validate(custom_grader(metric, request.custom_judge), settings)
        except InvalidGrader as error:
            shown = "; ".join(problem for _, problem in error.problems)
            field = (request.custom_judge_field + ".modelIdentifier"
                     if all(path.endswith(".model") for path, _ in error.problems)
                     else request.custom_metric_field.format(i=position))
            raise InvalidInput(f"{field}: {shown}") from None


def _scale_problems(metric: CustomMetric, field: str) -> list[str]:
    scale = metric.rating_scale
    problems = []
    kinds = {isinstance(item.value, str) for item in scale}
    if len(kinds) > 1:
        problems.append(f"{field}: every item's value must be of one kind, all floatValue or all stringValue")
    for position, item in enumerate(scale):
        for name, text in (("definition", item.definition), ("value.stringValue", item.value)):
            if isinstance(text, str) and "{{" in text:
                problems.append(f"{field}[{position}].{name}: must not contain '{{{{' (only the instructions "
                                "hold variables)")
    words = [item.value.strip().lower() for item in scale if isinstance(item.value, str)]
    if len(set(words)) != len(words):
        problems.append(f"{field}: a stringValue is given twice (ignoring case and surrounding spaces)")
    if any(not item.value.strip() for item in scale if isinstance(item.value, str)):
        problems.append(f"{field}: a stringValue must not be only spaces")
    return problems


def _model(store: Store, settings: Settings, principal: str, model: ModelRequest, field: str) -> ModelToRun:
    """A model Tailor runs for this caller (resolved to its weights now, with the caller's rights),
    or a remote model the operator configured by name."""
    generation = generation_of(model.inference_params, field)
    if model.identifier in settings.remote_models:
        return ModelToRun(model.identifier, remote=model.identifier, generation=generation,
                          inference_params=model.inference_params)
    try:
        target = weights_for(store, settings, principal, model.identifier)
    except TailorError as error:
        hint = ""
        if parse_spec(model.identifier).kind != "tailor":
            hint = (" A request cannot name an address for the server to call; the operator can configure a "
                    "remote model under a name (remote_models, docs/security.md).")
        raise InvalidInput(f"{field}.modelIdentifier: {error.message}{hint}") from None
    return ModelToRun(model.identifier, target=target, generation=generation, inference_params=model.inference_params)


def _training_data(store: Store, principal: str, identifiers: list[str]) -> str | None:
    """The training data URI of the first model that is a custom model trained here."""
    with store.session() as session:
        for identifier in identifiers:
            column = CustomModel.arn if identifier.startswith("arn:") else CustomModel.name
            model = session.scalar(select(CustomModel).where(column == identifier, CustomModel.principal == principal))
            if model is not None and model.job_id and (job := session.get(Job, model.job_id)) is not None:
                return CustomizationJobSpec.from_record(job.spec).train.training_uri
    return None


MAX_ANSWER_TOKENS = 8192  # an evaluation's answers are short; more only ties up the engine
MAX_STOP_SEQUENCES = 4  # as Bedrock's inferenceConfig allows


def generation_of(text: str | None, field: str = "bedrockModel") -> Generation:
    """How a model answers: ``inferenceParams`` as the original takes it,
    ``{"inferenceConfig": {"maxTokens", "temperature", "topP", "stopSequences"}}``, plus ``system``.
    Every value is checked here, at create time, with the field it came from."""
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


@dataclass(frozen=True)
class EvaluationJobView:
    row: EvaluationJob
    spec: EvaluationJobSpec


def _find(session, principal: str, identifier: str) -> EvaluationJob:
    return find_owned(session, EvaluationJob, principal, identifier, "Evaluation job")


def get_evaluation_job(store: Store, principal: str, identifier: str) -> EvaluationJobView:
    with store.session() as session:
        job = _find(session, principal, identifier)
        return EvaluationJobView(job, EvaluationJobSpec.from_record(job.spec))


def list_evaluation_jobs(store: Store, principal: str, query: dict) -> tuple[list[EvaluationJobView], str | None]:
    conditions = common_filters(EvaluationJob, principal, query)
    if query.get("statusEquals"):
        conditions.append(EvaluationJob.status == query["statusEquals"])
    if query.get("applicationTypeEquals"):
        conditions.append(EvaluationJob.application_type == query["applicationTypeEquals"])
    with store.session() as session:
        rows, token = list_page(session, EvaluationJob, conditions, query)
        return [EvaluationJobView(row, EvaluationJobSpec.from_record(row.spec)) for row in rows], token


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


REPORT_FILE = "report.html"


def report_file(store: Store, settings: Settings, principal: str, identifier: str, dataset: str) -> bytes:
    """The side-by-side report (``report.html``) a completed job published for one of its
    datasets, read from its output location — ``{outputUri}/{job name}/{job id}/reports/{dataset}/``
    (``tailor.jobs.evaluation``, ``tailor.evaluate.job``). Only the job's owner reads it: another
    principal's job, like an unknown one, is "not found", and so is a dataset the job does not
    name (the name never becomes a path the caller chose)."""
    view = get_evaluation_job(store, principal, identifier)
    names = [task.name for task in view.spec.evaluation.datasets]
    if dataset not in names:
        raise NotFound(f"Evaluation job {view.row.name} has no dataset named {dataset!r}; its datasets: "
                       f"{', '.join(names)}.", param="dataset")
    if view.row.status != "Completed":
        raise NotFound(f"Evaluation job {view.row.name} is {view.row.status}: a report is published only when "
                       "the job completes.")
    uri = f"{view.spec.output_uri.rstrip('/')}/{view.row.name}/{view.row.id}/reports/{dataset}/{REPORT_FILE}"
    return storage.read_bytes(uri, settings)
