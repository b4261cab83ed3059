"""Customization jobs: create (check and resolve a request into the job spec the worker runs),
get, list, stop.

A request comes in the dialect-neutral form of ``tailor.jobs.spec``; what goes out are views of
the stored rows with their specs, which each API dialect renders in its own shape. Heavy
libraries stay out: checking a job's model and hyperparameters needs only the catalog.

A supervised job is estimated before it is queued (``train.preflight.preflight``: the model's
config.json and, if small, its data; no torch, no weights): one that cannot fit this server's
devices is refused, saying what would make it fit; one that fits has the estimate as its first
event.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import tempfile
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from tailor import storage, trained
from tailor.arns import foundation_model_arn, job_arn, new_resource_id
from tailor.catalog import CustomizationType, resolve_model, resolve_registered_model
from tailor.errors import (
    AccessDenied,
    Conflict,
    InvalidInput,
    ModelUnavailable,
    NotFound,
    QuotaExceeded,
    TailorError,
)
from tailor.evaluate.backends import Generation, parse_spec
from tailor.evaluate.spec import ModelToRun
from tailor.graders import openai as openai_graders
from tailor.graders.info import GraderInfo
from tailor.graders.registry import get_grader
from tailor.jobs.results import results_csv
from tailor.jobs.spec import (
    CustomizationJobSpec,
    CustomizationRequest,
    Fields,
    InvocationLogsRequest,
    JobView,
    view,
)
from tailor.secrets import load_or_create_server_key
from tailor.services import buckets, files, model_import, records
from tailor.services.inference import weights_for
from tailor.services.records import (
    Page,
    after_page,
    common_filters,
    find_owned,
    insert_once,
    list_page,
    made_with_token,
)
from tailor.settings import Settings
from tailor.store.data_in_out import ImportedModel
from tailor.store.db import Store, utcnow
from tailor.store.jobs import CustomModel, Job, JobEvent, transition
from tailor.store.tags import Tag
from tailor.train import distill, preflight
from tailor.train.hyperparams import (
    Hyperparameter,
    dpo_table_for,
    parse_dpo_hyperparameters,
    parse_hyperparameters,
    parse_rft_hyperparameters,
    rft_table_for,
    table_for,
)
from tailor.train.recipes import PAUSABLE, SUPERVISED, TRAINABLE
from tailor.train.spec import TrainSpec
from tailor.wire import invocation_logs

PHASES = ("validationDetails", "dataProcessingDetails", "trainingDetails")
PAUSE_STATUSES = ("Pausing", "Paused")
MAX_PAGE = 100
# The role the OpenAI door's jobs name (Bedrock requires one; Tailor assumes no role, it echoes it).
OPENAI_ROLE = "arn:aws:iam::{account}:role/tailor-openai-api"
# DISTILLATION: the teacher's longest answer when the request gives none, and the most it may ask.
DEFAULT_TEACHER_TOKENS = 1024
MAX_TEACHER_TOKENS = 8192
# The customization types that can learn from invocation logs, and what each takes from them.
LOG_TYPES = (CustomizationType.FINE_TUNING, CustomizationType.REINFORCEMENT_FINE_TUNING,
             CustomizationType.DISTILLATION)


# ---------------------------------------------------------------------------------------------
# Create


def create_job(store: Store, settings: Settings, principal: str, request: CustomizationRequest) -> str:
    """Check and resolve ``request``, queue the job; its ARN (a retried request's: the same job's)."""
    fields = request.fields
    earlier = made_with_token(Job, principal, request.token)
    with store.session() as session:
        if arn := earlier(session):
            return arn
    job_id = new_resource_id()
    if request.openai is not None:  # results go to the caller's own bucket, as a Bedrock job's do
        request = replace(request, output_uri=openai_output_uri(settings, principal),
                          role=request.role or OPENAI_ROLE.format(account=settings.account_id))
    spec, model, start = resolve(store, settings, principal, request, settings.home / "jobs" / job_id / "output")
    _check_quota(store, settings, principal)  # after the request's own problems, which say more
    estimate = _preflight(settings, spec, model)
    if request.openai is not None:  # OpenAI's jobs have no name; their model's is OpenAI's pattern
        openai_name = fine_tuned_model_name(model.model_id, principal, request.openai.get("suffix"), job_id)
        request = replace(request, name=job_id, model_name=bedrock_name(openai_name, job_id))
        spec = replace(spec, openai={**spec.openai, "fine_tuned_model": openai_name})
    now = utcnow()
    row = Job(
        id=job_id, arn=job_arn(settings.region, settings.account_id, model.model_id, job_id),
        name=request.name, principal=principal, status="InProgress", phase="queued",
        customization_type=request.kind.value, base_model_id=model.model_id,
        base_model_arn=foundation_model_arn(settings.region, model.model_id),
        source_model_arn=start.arn if start else None, output_model_name=request.model_name,
        output_model_arn=None, role_arn=request.role, client_request_token=request.token,
        spec=spec.to_record(),
        status_details={phase: {"status": "NotStarted", "creationTime": now.isoformat(),
                                "lastModifiedTime": now.isoformat()} for phase in PHASES},
        progress={}, validation_losses=[], stop_requested=False,
        work_dir=str(settings.home / "jobs" / job_id), created_at=now, last_modified_at=now,
    )

    def taken(session) -> Conflict | None:
        if session.scalar(select(Job.id).where(Job.principal == principal, Job.name == row.name)):
            return Conflict(f"{fields.name}: a job named {row.name} already exists.")
        if session.scalar(select(CustomModel.id).where(CustomModel.principal == principal,
                                                       CustomModel.name == row.output_model_name)):
            return Conflict(f"{fields.model_name}: a custom model named {row.output_model_name} already exists.")
        return None

    arn = insert_once(store, row, tags=dict(request.tags), earlier=earlier, taken=taken)
    if estimate is not None and arn == row.arn:  # not a retried request's earlier job
        with store.session() as session:
            session.add(JobEvent(job_id=job_id, created_at=now, kind="estimate", level="info",
                                 message=estimate.describe(), data=estimate.data()))
    if spec.invocation_logs is not None and arn == row.arn:
        counts = spec.invocation_logs["counts"]
        skipped = "".join(f"; {n} {why}" for why, n in counts["skipped"].items())
        with store.session() as session:
            session.add(JobEvent(job_id=job_id, created_at=now, kind="message", level="info", data=counts,
                                 message=f"Training data from invocation logs: {counts['files']} files, "
                                         f"{counts['records']} records, {counts['matched']} matched the filters, "
                                         f"{counts['written']} training records written{skipped}."))
    return arn


def _check_quota(store: Store, settings: Settings, principal: str) -> None:
    """A principal's unfinished jobs are bounded (``max_active_jobs``): one caller cannot fill the
    queue. Checked before any work; a race can let one more in, never many."""
    active = records.unfinished(store, Job, principal)
    if active >= settings.max_active_jobs:
        raise QuotaExceeded(f"You have {active} customization jobs queued, running or paused, the most this server "
                            f"allows one caller ({settings.max_active_jobs}, max_active_jobs); wait for one to "
                            "finish, or stop one.")


def fine_tuned_model_name(base: str, principal: str, suffix: str | None, job_id: str) -> str:
    """OpenAI's name for a fine-tuned model, ``ft:{base}:{owner}:{suffix}:{id}``: callable by that
    name at once, without a deployment."""
    return f"ft:{base}:{principal}:{suffix or ''}:{job_id}"


def openai_output_uri(settings: Settings, principal: str) -> str:
    """Where the OpenAI door's jobs of ``principal`` publish their metrics files, as a Bedrock job
    does to its output location: a bucket of the caller's (claimed on first use), named by a keyed
    hash of the principal, so that no other principal can guess and take the name first."""
    key = load_or_create_server_key(settings.home)
    digest = hmac.new(key, f"openai-output:{principal}".encode(), hashlib.sha256).hexdigest()[:24]
    return f"s3://openai-{digest}/fine-tuning/"


def bedrock_name(openai_name: str, job_id: str) -> str:
    """The same model's name through the Bedrock door, where names are letters and digits joined
    by single hyphens, at most 63 characters: ``ft-tailor-tiny-alice-faq-<job>``."""
    words = "-".join(re.findall(r"[0-9A-Za-z]+", openai_name.removesuffix(job_id)))
    return f"{words[:62 - len(job_id)].rstrip('-')}-{job_id}"


def find_retried(store: Store, principal: str, token_prefix: str, within: timedelta) -> JobView | None:
    """The caller's newest job whose idempotency token starts with ``token_prefix``, created within
    ``within``: the job a retried request (the same body, sent again by a client's retry) made."""
    with store.session() as session:
        job = records.retried(session, Job, principal, token_prefix, within)
        return view(job) if job is not None else None


def _preflight(settings: Settings, spec: CustomizationJobSpec, model, *,
               refuse: bool = True) -> preflight.Preflight | None:
    """The supervised job's pre-flight estimate on this server's devices (None for reinforcement
    fine-tuning, or a model whose config is not here yet); refused if it cannot fit (unless not
    ``refuse``: a form shows the estimate that does not fit, with its advice)."""
    train = spec.train
    if train.customization_type not in SUPERVISED:
        return None
    config = parse_hyperparameters(train.hyperparameters, model)  # the resolved values: no error here
    try:
        result = preflight.preflight(model, config, train.customization_type, train.training_uri, settings,
                                     train.parallelism)
    except (OSError, ValueError):  # an unreadable config.json: the worker's loading says what is wrong
        return None
    if refuse and result is not None and not result.plan.fits:
        raise InvalidInput(result.refusal())
    return result


def resolve(store: Store, settings: Settings, principal: str, request: CustomizationRequest, output_dir: Path,
            *, claim: bool = True):
    """The job spec ``request`` means, checked, training into ``output_dir``: (spec, the foundation
    model, the custom model it starts from or None). With ``claim`` False nothing is created (no
    bucket claimed, no folder made): the same checks, for a form that validates as one types."""
    fields = request.fields
    kind = request.kind
    if kind not in TRAINABLE:
        raise InvalidInput(f"{fields.kind}: {kind} is not available in Tailor yet; "
                           f"available: {', '.join(sorted(TRAINABLE))}.")
    model, start = _base_model(store, settings, principal, request.base_model, kind, fields)
    grader = None
    if kind is CustomizationType.REINFORCEMENT_FINE_TUNING:
        grader = _grader(store, settings, request)
        hyperparameters = parse_rft_hyperparameters(_rft_learning_rate(request.hyperparameters, model),
                                                    model).hyperparameters
    elif kind is CustomizationType.DPO:
        hyperparameters = parse_dpo_hyperparameters(request.hyperparameters, model).hyperparameters
    else:
        hyperparameters = parse_hyperparameters(request.hyperparameters, model).hyperparameters
    teacher = _teacher(store, settings, principal, request) if kind is CustomizationType.DISTILLATION else None
    training_uri, validation_uris = _authorize_data(store, settings, principal, request, claim=claim)
    logs = None
    if request.invocation_logs is not None:
        training_uri, logs = _training_from_logs(store, settings, principal, request, output_dir.parent, claim=claim)
        if kind is CustomizationType.DISTILLATION and request.invocation_logs.use_prompt_response:
            teacher = replace(teacher, target=None, remote=None)  # echoed; the logged answers are used
    train = TrainSpec(customization_type=kind, model=start.artifacts_dir if start else model.model_id,
                      training_uri=training_uri, output_dir=output_dir,
                      validation_uris=validation_uris, hyperparameters=hyperparameters,
                      grader=grader, teacher=teacher if teacher and (teacher.target or teacher.remote) else None,
                      teacher_max_tokens=teacher.generation.max_tokens if teacher else 0)
    distillation = None
    if teacher is not None:
        distillation = {"teacherModelIdentifier": teacher.identifier,
                        "maxResponseLengthForInference": teacher.generation.max_tokens}
    openai = None
    if request.openai is not None:
        openai = {**request.openai, "training_file": request.training_uri,
                  "validation_file": request.validation_uris[0] if request.validation_uris else None}
    spec = CustomizationJobSpec(train=train, output_uri=request.output_uri,
                                vpc=dict(request.vpc) if request.vpc else None, openai=openai,
                                distillation=distillation, invocation_logs=logs)
    return spec, model, start


def _teacher(store: Store, settings: Settings, principal: str, request: CustomizationRequest) -> ModelToRun:
    """The model that answers a distillation's prompts, resolved now with the caller's rights: one
    Tailor serves this caller (a foundation model or alias, the caller's custom model by ARN or
    name, a deployment: ``inference.weights_for``) or a remote model the operator configured by
    name (``remote_models``). Never another principal's model, nor an address the caller names."""
    field = request.fields.teacher or "teacher"
    length_field = request.fields.teacher_max_tokens or "teacher_max_tokens"
    if not request.teacher:
        raise InvalidInput(f"{field}: required for DISTILLATION (the model whose answers the student learns).")
    tokens = DEFAULT_TEACHER_TOKENS if request.teacher_max_tokens is None else request.teacher_max_tokens
    if not 1 <= tokens <= MAX_TEACHER_TOKENS:
        raise InvalidInput(f"{length_field}: must be between 1 and {MAX_TEACHER_TOKENS}; got {tokens}.")
    generation = Generation(max_tokens=tokens, temperature=0.0)  # greedy: the teacher's own best answer
    if request.teacher in settings.remote_models:
        return ModelToRun(request.teacher, remote=request.teacher, generation=generation)
    try:
        target = weights_for(store, settings, principal, request.teacher)
    except TailorError as error:
        hint = ""
        if parse_spec(request.teacher).kind != "tailor":
            hint = (" A request cannot name an address for the server to call; the operator can configure a "
                    "remote model under a name (remote_models, docs/security.md).")
        raise InvalidInput(f"{field}: {error.message}{hint}") from None
    return ModelToRun(request.teacher, target=target, generation=generation)


def _training_from_logs(store: Store, settings: Settings, principal: str, request: CustomizationRequest,
                        job_folder: Path, *, claim: bool) -> tuple[str, dict]:
    """The training file a job reads from invocation logs: the caller's log files under the source,
    the records the filters keep, converted (``wire.invocation_logs``) into the job's folder in its
    type's format — FINE_TUNING: prompt and logged answer as messages records; REINFORCEMENT_FINE_TUNING:
    the prompts (the logged answer, if asked for, as each record's reference answer); DISTILLATION:
    the prompts for the teacher, or with ``usePromptResponse`` the logged answers as they are (as
    Bedrock does). Refused, naming the field, before any work: a source the caller may not read,
    no log files, filters matching nothing. (path of the file, what was read: echoed with counts)"""
    logs: InvocationLogsRequest = request.invocation_logs
    field, kind = request.fields.invocation_logs, request.kind
    source_field = f"{field}.invocationLogSource.s3Uri"
    if kind not in LOG_TYPES:
        raise InvalidInput(f"{field}: {kind} cannot learn from invocation logs; "
                           f"{', '.join(LOG_TYPES)} can.")
    if kind is CustomizationType.FINE_TUNING and not logs.use_prompt_response:
        raise InvalidInput(f"{field}.usePromptResponse: must be true for FINE_TUNING: without the logged "
                           "answers there is nothing to learn (prompts alone train REINFORCEMENT_FINE_TUNING or "
                           "DISTILLATION).")
    buckets.authorize(store, principal, logs.source_uri, "read", source_field)
    bucket, _ = storage.bucket_of(logs.source_uri)
    try:
        found = [(key, size) for key, size in storage.list_objects(logs.source_uri, settings)
                 if invocation_logs.is_log_file(key)]
    except NotFound as error:
        raise InvalidInput(f"{source_field}: {error.message}") from None
    if not found:
        raise InvalidInput(f"{source_field}: no invocation log files under {logs.source_uri} "
                           f"({', '.join(invocation_logs.LOG_SUFFIXES)}).")
    total = sum(size for _, size in found)
    if total > settings.invocation_log_training_bytes:  # a limit before any file is read
        raise InvalidInput(f"{source_field}: the {len(found)} log files under {logs.source_uri} hold {total:,} "
                           f"bytes, more than this server reads as training data "
                           f"({settings.invocation_log_training_bytes:,}: TAILOR_INVOCATION_LOG_TRAINING_BYTES); "
                           "name a narrower prefix (a day or an hour of logs).")
    keys = [key for key, _ in found]
    with tempfile.TemporaryDirectory() as scratch:
        folder = job_folder / "training-data" if claim else Path(scratch)
        converted = folder / "invocation-logs.jsonl"
        selection = invocation_logs.training_file(
            [storage.local_path(f"s3://{bucket}/{key}", settings) for key in keys], converted,
            use_prompt_response=logs.use_prompt_response, filters=logs.filters)
        counts = {"files": selection.files, "records": selection.records, "matched": selection.matched,
                  "written": selection.written, "skipped": selection.skipped}
        if selection.matched == 0:
            raise InvalidInput(f"{field}.requestMetadataFilters: matched 0 of {selection.records} log records in "
                               f"{selection.files} files under {logs.source_uri}; nothing to train on.")
        if selection.written == 0:
            reasons = ", ".join(f"{n} {why}" for why, n in selection.skipped.items())
            raise InvalidInput(f"{field}: none of the {selection.matched} matching log records gives a training "
                               f"record ({reasons}).")
        training = _log_training_file(converted, kind, logs.use_prompt_response)
    echo = {"invocationLogSource": {"s3Uri": logs.source_uri}, "usePromptResponse": logs.use_prompt_response,
            "counts": counts}
    if logs.filters:
        echo["requestMetadataFilters"] = dict(logs.filters)
    return (str(training) if claim else ""), echo


def _log_training_file(converted: Path, kind: CustomizationType, use_prompt_response: bool) -> Path:
    """The converted logs (bedrock-conversation-2024) as the file ``kind``'s recipe reads."""
    if kind is CustomizationType.DISTILLATION:
        return converted  # distill reads this format (prompts, or answered conversations)
    out = converted.with_name("training.jsonl")
    if kind is CustomizationType.FINE_TUNING:
        distill.as_messages_file(converted, out)
        return out
    lines = []  # REINFORCEMENT_FINE_TUNING: prompts, with the logged answer as the reference answer
    for line in converted.read_text(encoding="utf-8").splitlines():
        system, turns = distill.conversation_of(json.loads(line))
        answer = turns.pop()[1] if use_prompt_response and turns[-1][0] == "assistant" else None
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": role, "content": text} for role, text in turns]
        lines.append(json.dumps({"messages": messages, **({"reference_answer": answer} if answer else {})},
                                ensure_ascii=False))
    out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return out


def _base_model(store: Store, settings: Settings, principal: str, identifier: str, kind: CustomizationType,
                fields: Fields):
    """The foundation model a job trains and the caller's custom model it starts from (or None), for
    ``identifier`` (a foundation model, or one of the caller's custom models); ``kind`` must be
    one the model supports."""
    start = _custom_start(store, principal, identifier, settings, fields)
    try:
        model = (resolve_model(start.artifacts_dir, settings) if start
                 else resolve_registered_model(identifier, settings))
    except ModelUnavailable as error:
        raise InvalidInput(f"{fields.base_model}: {error.message}") from error
    except NotFound as error:
        raise NotFound(f"{fields.base_model}: {error.message} Nor is it one of your custom models.") from None
    if kind not in model.customization_types:
        supported = ", ".join(model.customization_types)
        raise InvalidInput(f"{fields.kind}: {model.model_id} supports {supported}, not {kind}.")
    return model, start


def _rft_learning_rate(given, model):
    """OpenAI's reinforcement ``learning_rate_multiplier`` as the family's learningRate: the
    multiplier times its default (Bedrock's RFT takes an absolute rate)."""
    if "learningRateMultiplier" not in given:
        return given
    rest = {name: value for name, value in given.items() if name != "learningRateMultiplier"}
    default = rft_table_for(model, rest.get("tuningMethod"))["learningRate"].default
    return {**rest, "learningRate": float(given["learningRateMultiplier"]) * default}


def _grader(store: Store, settings: Settings, request: CustomizationRequest) -> GraderInfo:
    """The registered grader an RFT job names, or the OpenAI grader object it gives, snapshotted:
    the job keeps it as it is now."""
    field = request.fields.grader
    if request.grader_definition is not None:
        try:
            return openai_graders.grader_info(request.grader_definition, settings)
        except openai_graders.InvalidGrader as error:
            raise error.under(field) from None
    if not request.grader:
        raise InvalidInput(f"{field}: required for REINFORCEMENT_FINE_TUNING (register a grader with "
                           "`tailor graders create`).")
    try:
        return get_grader(store, request.grader)
    except NotFound as error:
        raise InvalidInput(f"{field}: {error.message} Register it on the server with "
                           "`tailor graders create NAME --file grader.py`.") from None


def _authorize_data(store: Store, settings: Settings, principal: str, request: CustomizationRequest, *,
                    claim: bool = True) -> tuple[str, tuple[str, ...]]:
    """Every URI the job names must be the caller's to read, and its output location the caller's to
    write — checked (and the output claimed, unless not ``claim``) now, before the job is queued.
    The OpenAI door names the caller's files instead, by id. What the job reads: (training, validation)."""
    fields = request.fields
    output = buckets.claim_output if claim else _check_output
    if request.invocation_logs is not None:  # read and authorized by _training_from_logs
        for position, uri in enumerate(request.validation_uris):
            buckets.authorize(store, principal, uri, "read", fields.validation_uri.format(i=position))
        output(store, settings, principal, request.output_uri, fields.output_uri)
        return "", request.validation_uris
    if request.openai is not None:
        output(store, settings, principal, request.output_uri, "output")
        return (files.training_path(store, settings, principal, request.training_uri, fields.training_uri),
                tuple(files.training_path(store, settings, principal, file_id, fields.validation_uri)
                      for file_id in request.validation_uris))
    buckets.authorize_input(store, settings, principal, request.training_uri, fields.training_uri)
    for position, uri in enumerate(request.validation_uris):
        buckets.authorize_input(store, settings, principal, uri, fields.validation_uri.format(i=position))
    output(store, settings, principal, request.output_uri, fields.output_uri)
    return request.training_uri, request.validation_uris


def _check_output(store: Store, settings: Settings, principal: str, uri: str, field: str) -> None:
    """What ``buckets.claim_output`` refuses, creating nothing: a location the caller may not write
    to is refused; a local bucket nobody has yet would be claimed by the job, so it passes. (Whether
    the folder is writable is proven when the job is created.)"""
    try:
        buckets.authorize(store, principal, uri, "write", field)
    except AccessDenied:
        bucket, _ = storage.bucket_of(uri)
        if (settings.s3_endpoint_url or buckets.access_of(store, principal, bucket) is not None
                or storage.local_bucket_exists(bucket, settings)):
            raise


def _custom_start(store: Store, principal: str, identifier: str, settings: Settings,
                  fields: Fields) -> CustomModel | ImportedModel | None:
    """The caller's custom or imported model that the base model field names (by ARN, or by a name
    that is not a foundation model's), or None for a foundation model. Training starts from its
    weights (both kinds keep them in a trained folder: ``arn`` and ``artifacts_dir`` are all used)."""
    try:  # an imported model (CreateModelImportJob), by its ARN
        if (imported := model_import.imported_start(store, principal, identifier)) is not None:
            return imported
    except NotFound as error:
        raise InvalidInput(f"{fields.base_model}: {error.message}") from None
    if ":custom-model/" not in identifier:
        try:
            resolve_registered_model(identifier, settings)
            return None
        except (NotFound, ModelUnavailable, InvalidInput):
            pass  # not a foundation model: perhaps a custom model's name
    with store.session() as session:
        if identifier.startswith("ft:"):  # an OpenAI fine-tuned model's name
            found = session.scalar(select(CustomModel).where(CustomModel.openai_name == identifier,
                                                             CustomModel.principal == principal))
            if found is None:
                raise NotFound(f"{fields.base_model}: the model {identifier} does not exist or you do not have "
                               "access to it.", param=fields.base_model)
            return found
        try:
            return find_owned(session, CustomModel, principal, identifier, "Custom model")
        except NotFound as error:
            if ":custom-model/" in identifier:
                raise InvalidInput(f"{fields.base_model}: {error.message}") from None
    return None  # resolve_registered_model says what is wrong with the identifier


# ---------------------------------------------------------------------------------------------
# Read, list, stop


def find_job(session, principal: str, identifier: str) -> Job:
    """The caller's job by ARN, name or the ARN's last part (OpenAI clients put a job's id in the path)."""
    if not identifier.startswith("arn:") and (job := session.get(Job, identifier)) is not None:
        if job.principal == principal:
            return job
    return find_owned(session, Job, principal, identifier, "Customization job")


def get_job(store: Store, principal: str, identifier: str) -> JobView:
    with store.session() as session:
        return view(find_job(session, principal, identifier))


def list_jobs(store: Store, principal: str, query: dict) -> tuple[list[Job], str | None]:
    """One page of the caller's jobs (``query`` as ``records.common_filters`` reads it, plus
    ``statusEquals``) and the next page's token."""
    conditions = common_filters(Job, principal, query)
    if query.get("statusEquals"):
        # A pausing or paused job shows as InProgress where a dialect has no pause (Bedrock).
        wanted = (query["statusEquals"], *PAUSE_STATUSES) if query["statusEquals"] == "InProgress" else (
            query["statusEquals"],)
        conditions.append(Job.status.in_(wanted))
    with store.session() as session:
        return list_page(session, Job, conditions, query)


def list_jobs_after(store: Store, principal: str, *, after: str | None, limit: int,
                    metadata: dict[str, str] | None = None) -> Page:
    """One page of the caller's jobs, newest first, after the job ``after`` (OpenAI's cursor), those
    carrying every ``metadata`` key and value (as tags) only. Rows are ``JobView``s."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit: must be between 1 and {MAX_PAGE}; got {limit}.", param="limit")
    conditions = [Job.principal == principal]
    for key, value in (metadata or {}).items():
        conditions.append(Job.arn.in_(select(Tag.resource_arn).where(Tag.key == key, Tag.value == value)))
    with store.session() as session:
        found = after_page(session, Job, conditions, after=after, descending=True, limit=limit)
    return Page([view(row) for row in found.rows], found.has_more)


def job_checkpoints(store: Store, principal: str, identifier: str) -> tuple[JobView, list[trained.Checkpoint]]:
    """The caller's job and the epoch checkpoints its trained model keeps (none before it is published)."""
    job = get_job(store, principal, identifier)
    if job.row.output_model_arn is None:
        return job, []
    return job, trained.checkpoints(Path(job.spec.train.output_dir))


def tags_of(store: Store, arn: str) -> dict[str, str]:
    with store.session() as session:
        return {tag.key: tag.value for tag in session.scalars(select(Tag).where(Tag.resource_arn == arn))}


def stop_job(store: Store, principal: str, identifier: str) -> None:
    """InProgress, Pausing or Paused -> Stopping (the runner signals the worker, or removes a paused
    job's checkpoint) or, still queued, straight to Stopped."""
    with store.session() as session:
        job = find_job(session, principal, identifier)
        if job.status not in ("InProgress", *PAUSE_STATUSES):
            raise Conflict(f"Job {job.name} is {job.status}; only an InProgress job can be stopped.")
        transition(job, "Stopped" if job.phase == "queued" else "Stopping", stop_requested=True)


def pause_job(store: Store, principal: str, identifier: str) -> JobView:
    """InProgress -> Pausing: the worker saves a checkpoint at its next step and ends the job Paused
    (``jobs/customization.py``); a job still queued is Paused at once. Supervised recipes only."""
    with store.session() as session:
        job = find_job(session, principal, identifier)
        if job.status in PAUSE_STATUSES:
            return view(job)
        if job.status != "InProgress":
            raise Conflict(f"Job {job.name} is {job.status}; only a running job can be paused.")
        if job.customization_type not in PAUSABLE:
            raise Conflict(f"Job {job.name} is {job.customization_type}, which cannot pause; stop it instead.")
        if job.phase == "queued":
            transition(job, "Paused", phase="paused")
        else:
            transition(job, "Pausing")
        return view(job)


def resume_job(store: Store, principal: str, identifier: str) -> JobView:
    """Paused -> InProgress, queued again: its next worker continues from the checkpoint."""
    with store.session() as session:
        job = find_job(session, principal, identifier)
        if job.status != "Paused":
            raise Conflict(f"Job {job.name} is {job.status}; only a paused job can be resumed.")
        transition(job, "InProgress", phase="queued")
        return view(job)


# ---------------------------------------------------------------------------------------------
# A create form's checks as one types, and a job's files (the web console's Jobs page)

# A job's files a browser may download: name -> the file in the job's training output (None: made
# from the metrics files, as the OpenAI door's results file is).
ARTIFACTS: dict[str, tuple[Path | None, str]] = {
    "training.csv": (trained.TRAINING_METRICS, "text/csv"),
    "validation.csv": (trained.VALIDATION_METRICS, "text/csv"),
    "loss.png": (trained.LOSS_PLOT, "image/png"),
    "rewards.png": (trained.REWARD_PLOT, "image/png"),
    "results.csv": (None, "text/csv"),
}


def hyperparameter_table(store: Store, settings: Settings, principal: str, base_model: str,
                         kind: CustomizationType | str, tuning_method: str | None = None,
                         fields: Fields | None = None) -> dict[str, Hyperparameter]:
    """The hyperparameters a ``kind`` job of ``base_model`` accepts, with ranges and defaults — the
    table its request is checked against (a custom model as base: its foundation model's). Reinforcement
    fine-tuning's defaults depend on ``tuning_method`` (None: the model's default)."""
    fields = fields or Fields(name="name", model_name="model_name", kind="kind", base_model="base_model",
                              training_uri="training_uri", validation_uri="validation_uri", output_uri="output_uri")
    try:
        kind = CustomizationType(kind)
    except ValueError:
        raise InvalidInput(f"{fields.kind}: {kind!r} is not a customization type.") from None
    if kind not in TRAINABLE:
        raise InvalidInput(f"{fields.kind}: {kind} is not available in Tailor yet; "
                           f"available: {', '.join(sorted(TRAINABLE))}.")
    model, _ = _base_model(store, settings, principal, base_model, kind, fields)
    if kind is CustomizationType.REINFORCEMENT_FINE_TUNING:
        return rft_table_for(model, tuning_method if tuning_method in ("full", "lora") else None)
    if kind is CustomizationType.DPO:
        return dpo_table_for(model)
    return table_for(model)


def check_request(store: Store, settings: Settings, principal: str, request: CustomizationRequest):
    """Every check ``create_job`` makes of ``request``'s own content (as ``resolve``), with no side
    effect: no bucket is claimed, no folder made, nothing queued. (spec, model, start) when it
    passes; the error ``create_job`` would raise otherwise."""
    return resolve(store, settings, principal, request, settings.home / "jobs" / "unsaved" / "output", claim=False)


def estimate_job(store: Store, settings: Settings, principal: str,
                 request: CustomizationRequest) -> preflight.Preflight | None:
    """``request`` checked (``check_request``) and its pre-flight estimate — the one ``create_job``
    records as the job's first event — also when it does not fit (``plan.fits`` says so, and
    ``refusal()`` what would make it fit; ``create_job`` refuses it). None when there is no estimate:
    reinforcement fine-tuning and DPO have none, nor a model whose config is not here yet."""
    spec, model, _ = check_request(store, settings, principal, request)
    return _preflight(settings, spec, model, refuse=False)


def job_artifact(store: Store, principal: str, identifier: str, name: str) -> tuple[bytes, str]:
    """One of ``ARTIFACTS`` of the caller's job, as (content, media type): the metrics files as the
    training writes them (while it trains too), its loss or reward plot, or the OpenAI-style results
    CSV. ``NotFound`` for another principal's job, an unknown name or a file not written (yet)."""
    job = get_job(store, principal, identifier)
    if name not in ARTIFACTS:
        raise NotFound(f"A job has no file {name!r}; files: {', '.join(ARTIFACTS)}.")
    relative, media_type = ARTIFACTS[name]
    output = Path(job.spec.train.output_dir)
    if relative is None:
        return results_csv(output), media_type
    folder = output if output.is_dir() else trained.in_progress(output)  # published, or still training
    try:
        if folder is None:
            raise FileNotFoundError(output)
        return (folder / relative).read_bytes(), media_type
    except OSError:  # not written (yet); a scratch folder renamed into place while read
        raise NotFound(f"Job {job.row.name} has no {name} yet.") from None
