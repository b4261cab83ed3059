"""Batch inference jobs through both doors: Bedrock's model invocation jobs
(CreateModelInvocationJob, Get, List, Stop) and OpenAI's batches (``/v1/batches``). One table
(``InvocationJob``; an OpenAI batch has ``openai`` set), one worker (``tailor.jobs.invocation``).

Create checks everything that can be checked before compute is spent, and refuses with the field:

- the model: any model Tailor can run for the caller (a foundation model or alias, a deployment,
  an ``ft:`` model, a custom model by ARN even when not deployed), resolved now to its weights and
  InvokeModel body dialect;
- the input: the caller may read it (``buckets.authorize``); an ``s3Uri`` names one file, or a
  folder whose ``.jsonl`` files are all read; a file none of whose lines is a JSON object is not
  JSON Lines and is refused, as are inputs over ``batch_max_records`` records or
  ``batch_max_input_bytes`` bytes, and inputs with no record at all;
- every record, one by one: a line that is not JSON, a record without ``recordId`` or
  ``modelInput``, or a ``modelInput`` the model's body dialect refuses is *not* a reason to refuse
  the job — the record is kept with its problem and becomes an error line in the output, as the
  original writes one (``error``), while the others are answered;
- the output: the caller may write it, proven writable (``buckets.claim_output``).

The records, checked, are copied into the job's folder: the worker reads nothing the caller could
change or take away after create. Concurrent retries with one ``clientRequestToken`` (or, on the
OpenAI door, one ``Idempotency-Key`` or a client's retry of the same body) make one job.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import null, select

from tailor import storage
from tailor.arns import (
    model_invocation_job_arn,
    new_resource_id,
    parse_arn,
)
from tailor.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    QuotaExceeded,
    TailorError,
)
from tailor.jobs.invocation import (
    InputFile,
    InvocationJobSpec,
    bedrock_request,
    empty_progress,
    openai_request,
)
from tailor.serve.protocol import Target
from tailor.services import buckets, files, inference
from tailor.services.records import (
    Page,
    after_page,
    common_filters,
    insert_once,
    list_page,
    made_with_token,
    retried,
    unfinished,
)
from tailor.settings import Settings
from tailor.store.data_in_out import InvocationJob
from tailor.store.db import Store, utcnow
from tailor.store.jobs import transition

INPUT_FIELD = "inputDataConfig.s3InputDataConfig.s3Uri"
OUTPUT_FIELD = "outputDataConfig.s3OutputDataConfig.s3Uri"
OPENAI_ENDPOINTS = ("/v1/chat/completions",)
OPENAI_WINDOW_HOURS = 24
DEFAULT_TIMEOUT_HOURS = 24
PROBLEM_TEXT = 1000  # characters of a malformed line kept in its error line


@dataclass(frozen=True)
class BedrockBatchRequest:
    """CreateModelInvocationJob, as its converter reads it."""

    name: str
    role_arn: str
    model_id: str
    input_uri: str
    output_uri: str
    default_max_tokens: int
    timeout_hours: int | None = None
    tags: tuple[tuple[str, str], ...] = ()
    token: str | None = None


@dataclass(frozen=True)
class OpenAIBatchRequest:
    """``client.batches.create``, as its converter reads it."""

    input_file_id: str
    endpoint: str
    completion_window: str
    default_max_tokens: int
    metadata: dict | None = None
    token: str | None = None


def invocation_job_arn(settings: Settings, job_id: str) -> str:
    """``arn:aws:bedrock:{region}:{account}:model-invocation-job/{id}`` (botocore's ModelInvocationJobArn)."""
    return model_invocation_job_arn(settings.region, settings.account_id, job_id)


# ---------------------------------------------------------------------------------------------
# Create


def create_bedrock_job(store: Store, settings: Settings, principal: str, request: BedrockBatchRequest) -> str:
    """Check and resolve the request, copy its records into the job's folder, queue the job; its
    ARN (a retried request's: the same job's)."""
    earlier = made_with_token(InvocationJob, principal, request.token)
    with store.session() as session:
        if arn := earlier(session):
            return arn
    _check_quota(store, settings, principal)
    target, body = resolve_model(store, settings, principal, request.model_id, "modelId")
    sources = _input_files(store, settings, principal, request.input_uri)
    buckets.claim_output(store, settings, principal, request.output_uri, OUTPUT_FIELD)
    job_id = new_resource_id()
    work_dir = settings.home / "invocation_jobs" / job_id
    try:
        inputs = _prepare_bedrock(settings, sources, work_dir, body, request.default_max_tokens)
        spec = InvocationJobSpec(door="bedrock", model_id=request.model_id, target=target, body=body, inputs=inputs,
                                 output_uri=request.output_uri, input_uri=request.input_uri,
                                 default_max_tokens=request.default_max_tokens,
                                 timeout_hours=request.timeout_hours or DEFAULT_TIMEOUT_HOURS)
        row = _row(settings, principal, job_id, request.name, request.role_arn, request.token, request.model_id,
                   spec, work_dir, openai=None)

        def taken(session) -> Conflict | None:
            if session.scalar(select(InvocationJob.id).where(InvocationJob.principal == principal,
                                                             InvocationJob.name == request.name)):
                return Conflict(f"jobName: a model invocation job named {request.name} already exists.",
                                param="jobName")
            return None

        arn = insert_once(store, row, tags=dict(request.tags), earlier=earlier, taken=taken)
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    if arn != row.arn:  # a concurrent retry made the job first
        shutil.rmtree(work_dir, ignore_errors=True)
    return arn


def create_openai_batch(store: Store, settings: Settings, principal: str, request: OpenAIBatchRequest) -> InvocationJob:
    """``client.batches.create``: the file's every line checked, the model resolved, the batch queued."""
    with store.session() as session:
        if request.token and (earlier := made_with_token(InvocationJob, principal, request.token)(session)):
            return session.scalar(select(InvocationJob).where(InvocationJob.arn == earlier))
    if request.endpoint not in OPENAI_ENDPOINTS:
        raise InvalidInput(f"endpoint: this server answers batches for {', '.join(OPENAI_ENDPOINTS)}; "
                           f"got {request.endpoint!r}.", param="endpoint")
    if request.completion_window != "24h":
        raise InvalidInput(f"completion_window: must be \"24h\"; got {request.completion_window!r}.",
                           param="completion_window")
    _check_metadata(request.metadata)
    _check_quota(store, settings, principal)
    path = files.batch_input_path(store, settings, principal, request.input_file_id, "input_file_id")
    job_id = new_resource_id()
    work_dir = settings.home / "invocation_jobs" / job_id
    try:
        records, model_id = _read_openai(settings, path, request)
        target, body = resolve_model(store, settings, principal, model_id, "input_file_id")
        work_dir.mkdir(parents=True, exist_ok=True)
        records_path = work_dir / "input-0.jsonl"
        records_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        spec = InvocationJobSpec(door="openai", model_id=model_id, target=target, body=body,
                                 inputs=(InputFile(request.input_file_id, str(records_path), len(records)),),
                                 output_uri=None, input_uri=None, default_max_tokens=request.default_max_tokens,
                                 timeout_hours=OPENAI_WINDOW_HOURS)
        fields = {"input_file_id": request.input_file_id, "endpoint": request.endpoint,
                  "completion_window": request.completion_window, "metadata": request.metadata}
        row = _row(settings, principal, job_id, f"batch-{job_id}", "", request.token, model_id, spec, work_dir,
                   openai=fields)
        with store.session() as session:
            session.add(row)
            session.flush()
            session.expunge(row)
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    return row


def _row(settings: Settings, principal: str, job_id: str, name: str, role_arn: str, token: str | None,
         model_id: str, spec: InvocationJobSpec, work_dir: Path, *, openai: dict | None) -> InvocationJob:
    now = utcnow()
    return InvocationJob(
        id=job_id, arn=invocation_job_arn(settings, job_id), name=name, principal=principal, status="InProgress",
        phase="queued", role_arn=role_arn, client_request_token=token, stop_requested=False, work_dir=str(work_dir),
        created_at=now, last_modified_at=now, model_id=model_id, spec=spec.to_record(),
        # SQL NULL, not JSON null, for a Bedrock job: the two doors' lists filter on it.
        progress=empty_progress(spec.total), openai=openai if openai is not None else null(),
        timeout_hours=spec.timeout_hours, message=None)


def _check_quota(store: Store, settings: Settings, principal: str) -> None:
    active = unfinished(store, InvocationJob, principal)
    if active >= settings.max_active_jobs:
        raise QuotaExceeded(f"You have {active} batch inference jobs queued or running, the most this server "
                            f"allows one caller ({settings.max_active_jobs}, max_active_jobs); wait for one to "
                            "finish, or stop one.")


def resolve_model(store: Store, settings: Settings, principal: str, model_id: str, field: str) -> tuple[Target, str]:
    """The weights and InvokeModel body kind of any model Tailor can run for the caller: what
    InvokeModel accepts (foundation model, alias, deployment, ``ft:`` model), or a custom model by
    ARN, deployed or not (a batch job loads its own copy of the weights)."""
    try:
        if _resource_type(model_id) == "custom-model":
            return inference.target_for_model(store, settings, principal, model_id)
        invocable = inference.resolve(store, settings, principal, model_id)
        return invocable.target, invocable.body
    except TailorError as error:
        message = error.message.removeprefix("modelId: ")
        raise InvalidInput(f"{field}: {message}", param=field) from None


def _resource_type(model_id: str) -> str | None:
    if not model_id.startswith("arn:"):
        return None
    try:
        return parse_arn(model_id).resource_type
    except InvalidInput:
        return None


# ---------------------------------------------------------------------------------------------
# Bedrock's input: a file or a folder of .jsonl files in a bucket the caller may read


@dataclass(frozen=True)
class _Source:
    name: str  # the output file is named after it
    uri: str
    size: int


def _input_files(store: Store, settings: Settings, principal: str, uri: str) -> list[_Source]:
    buckets.authorize(store, principal, uri, "read", INPUT_FIELD)
    bucket, key = storage.bucket_of(uri)
    sources: list[_Source] = []
    if key and not key.endswith("/"):
        try:
            sources = [_Source(Path(key).name, uri, storage.size(uri, settings))]
        except NotFound:
            pass
    if not sources:
        prefix = key if not key or key.endswith("/") else key + "/"
        try:
            found = storage.list_objects(f"s3://{bucket}/{prefix}", settings)
        except NotFound:
            found = []
        sources = [_Source(name[len(prefix):], f"s3://{bucket}/{name}", size) for name, size in found
                   if name.endswith(".jsonl")]
    if not sources:
        raise InvalidInput(f"{INPUT_FIELD}: nothing to read at {uri}: no such file, and no .jsonl file under it "
                           "as a folder.", param=INPUT_FIELD)
    total = sum(source.size for source in sources)
    if total > settings.batch_max_input_bytes:
        raise InvalidInput(f"{INPUT_FIELD}: {total:,} bytes of input, over this server's limit of "
                           f"{settings.batch_max_input_bytes:,} per job (batch_max_input_bytes).", param=INPUT_FIELD)
    return sources


def _prepare_bedrock(settings: Settings, sources: list[_Source], work_dir: Path, body: str,
                     default_max_tokens: int) -> tuple[InputFile, ...]:
    """Each source's records, checked, into the job's folder: ``{"recordId", "modelInput",
    "problem"}`` a line, ``problem`` set for a record that will be an error line."""
    work_dir.mkdir(parents=True, exist_ok=True)
    inputs, total = [], 0
    for number, source in enumerate(sources):
        records = []
        with storage.local_path(source.uri, settings).open("rb") as lines:
            for line_number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                total += 1
                if total > settings.batch_max_records:
                    raise InvalidInput(f"{INPUT_FIELD}: more than {settings.batch_max_records:,} records, this "
                                       "server's limit per job (batch_max_records).", param=INPUT_FIELD)
                records.append(_bedrock_record(line, line_number, body, default_max_tokens))
        if records and all(record.get("notJson") for record in records):
            raise InvalidInput(f"{INPUT_FIELD}: {source.uri} is not JSON Lines: no line of it is a JSON object "
                               "(each line is {\"recordId\": ..., \"modelInput\": {...}}).", param=INPUT_FIELD)
        path = work_dir / f"input-{number}.jsonl"
        path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "notJson"}, ensure_ascii=False) + "\n"
                                for r in records), encoding="utf-8")
        inputs.append(InputFile(source.name, str(path), len(records)))
    if total == 0:
        raise InvalidInput(f"{INPUT_FIELD}: the input holds no records.", param=INPUT_FIELD)
    return tuple(inputs)


def _bedrock_record(line: bytes, line_number: int, body: str, default_max_tokens: int) -> dict:
    try:
        value = json.loads(line)
    except (ValueError, UnicodeDecodeError) as error:
        text = line.decode("utf-8", errors="replace").strip()[:PROBLEM_TEXT]
        return {"recordId": None, "modelInput": text, "notJson": True,
                "problem": f"line {line_number}: not valid JSON ({error})."}
    if not isinstance(value, dict):
        return {"recordId": None, "modelInput": value, "notJson": True,
                "problem": f"line {line_number}: a record is a JSON object {{\"recordId\", \"modelInput\"}}."}
    record_id, model_input = value.get("recordId"), value.get("modelInput")
    problem = None
    if not isinstance(record_id, str) or not record_id:
        problem = f"line {line_number}: recordId: required, a non-empty string."
    elif model_input is None:
        problem = f"line {line_number}: modelInput: required, the model's InvokeModel body."
    else:
        try:
            bedrock_request(body, model_input, default_max_tokens)
        except TailorError as error:
            problem = f"line {line_number}: {_problems(error, 'modelInput')}"
    return {"recordId": record_id if isinstance(record_id, str) else None, "modelInput": model_input,
            "problem": problem}


def _problems(error: TailorError, prefix: str) -> str:
    problems = getattr(error, "problems", None)
    if problems and isinstance(problems, list | tuple):
        return "; ".join(f"{prefix}.{path}: {problem}" if path else f"{prefix}: {problem}"
                         for path, problem in problems)
    return f"{prefix}: {error.message}"


# ---------------------------------------------------------------------------------------------
# OpenAI's input: a file of {custom_id, method, url, body} lines


def _read_openai(settings: Settings, path: Path, request: OpenAIBatchRequest) -> tuple[list[dict], str]:
    """The batch's records (``{"custom_id", "body", "problem"}``) and the one model they name.

    A line that cannot be a request of this batch (not JSON, no custom_id, a repeated one, another
    method or URL, another model) refuses the batch, naming the line, as OpenAI's validation fails
    a batch; a body the chat-completions endpoint would refuse is that request's error (400) in
    the batch's error file."""
    field = "input_file_id"
    size = path.stat().st_size
    if size > settings.batch_max_input_bytes:
        raise InvalidInput(f"{field}: {size:,} bytes, over this server's limit of {settings.batch_max_input_bytes:,} "
                           "per batch (batch_max_input_bytes).", param=field)
    records, seen, model_id = [], set(), None
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            if len(records) >= settings.batch_max_records:
                raise InvalidInput(f"{field}: more than {settings.batch_max_records:,} requests, this server's limit "
                                   "per batch (batch_max_records).", param=field)
            where = f"{field}: line {number}"
            try:
                value = json.loads(line)
            except (ValueError, UnicodeDecodeError) as error:
                raise InvalidInput(f"{where}: not valid JSON ({error}).", param=field) from None
            if not isinstance(value, dict):
                raise InvalidInput(f"{where}: a request is a JSON object {{custom_id, method, url, body}}.",
                                   param=field)
            custom_id = value.get("custom_id")
            if not isinstance(custom_id, str) or not custom_id:
                raise InvalidInput(f"{where}: custom_id: required, a non-empty string.", param=field)
            if custom_id in seen:
                raise InvalidInput(f"{where}: custom_id {custom_id!r} appears twice; each request's is unique.",
                                   param=field)
            seen.add(custom_id)
            if value.get("method") != "POST":
                raise InvalidInput(f"{where}: method: must be \"POST\".", param=field)
            if value.get("url") != request.endpoint:
                raise InvalidInput(f"{where}: url: must be the batch's endpoint, {request.endpoint}.", param=field)
            body = value.get("body")
            if not isinstance(body, dict) or not isinstance(body.get("model"), str) or not body["model"]:
                raise InvalidInput(f"{where}: body.model: required; every request names the batch's model.",
                                   param=field)
            if model_id is None:
                model_id = body["model"]
            elif body["model"] != model_id:
                raise InvalidInput(f"{where}: body.model: {body['model']!r} differs from {model_id!r}; a batch's "
                                   "requests all use one model.", param=field)
            problem = None
            try:
                openai_request(body, request.default_max_tokens)
            except TailorError as error:
                problem = _problems(error, "body")
            records.append({"custom_id": custom_id, "body": body, "problem": problem})
    if not records:
        raise InvalidInput(f"{field}: the file holds no requests.", param=field)
    return records, model_id


def _check_metadata(metadata: dict | None) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, dict) or len(metadata) > 16:
        raise InvalidInput("metadata: at most 16 string keys and values.", param="metadata")
    for key, value in metadata.items():
        if not isinstance(key, str) or len(key) > 64 or not isinstance(value, str) or len(value) > 512:
            raise InvalidInput("metadata: keys are strings of up to 64 characters, values strings of up to 512.",
                               param="metadata")


# ---------------------------------------------------------------------------------------------
# Get, list, stop


def _find(session, principal: str, identifier: str, *, openai: bool) -> InvocationJob:
    """The caller's job by ARN or id (Bedrock), or by ``batch_…`` id (OpenAI); another door's or
    another principal's job is as good as missing."""
    if openai:
        job_id = identifier.removeprefix("batch_")
    else:
        job_id = identifier.rsplit("/", 1)[-1] if identifier.startswith("arn:") else identifier
    row = session.get(InvocationJob, job_id) if isinstance(job_id, str) else None
    if (row is None or row.principal != principal or (row.openai is not None) != openai
            or (identifier.startswith("arn:") and row.arn != identifier)):
        if openai:
            raise NotFound(f"No batch found with id {identifier!r}.", param="batch_id")
        raise NotFound(f"Model invocation job {identifier} not found.")
    return row


def get_job(store: Store, principal: str, identifier: str, *, openai: bool = False) -> InvocationJob:
    with store.session() as session:
        row = _find(session, principal, identifier, openai=openai)
        session.expunge(row)
        return row


def list_bedrock_jobs(store: Store, principal: str, query: dict) -> tuple[list[InvocationJob], str | None]:
    """ListModelInvocationJobs: the caller's Bedrock-door jobs, filtered, one page."""
    conditions = [*common_filters(InvocationJob, principal, {"nameContains": query.get("nameContains")}),
                  InvocationJob.openai.is_(None)]
    if query.get("submitTimeAfter"):
        conditions.append(InvocationJob.created_at > query["submitTimeAfter"])
    if query.get("submitTimeBefore"):
        conditions.append(InvocationJob.created_at < query["submitTimeBefore"])
    if status := query.get("statusEquals"):
        conditions.append(_status_condition(status))
    with store.session() as session:
        rows, token = list_page(session, InvocationJob, conditions, query)
        session.expunge_all()
        return rows, token


def _status_condition(status: str):
    """A Bedrock status as a condition on Tailor's lifecycle (the converter's mapping, reversed)."""
    progress_expired = InvocationJob.progress["expired"].as_boolean()
    processed = InvocationJob.progress["processedRecordCount"].as_integer()
    conditions = {
        "Submitted": (InvocationJob.status == "InProgress") & InvocationJob.phase.in_(("queued", "starting")),
        "InProgress": (InvocationJob.status == "InProgress") & InvocationJob.phase.not_in(("queued", "starting")),
        "Completed": (InvocationJob.status == "Completed") & ~progress_expired.is_(True),
        "PartiallyCompleted": (InvocationJob.status == "Completed") & progress_expired.is_(True) & (processed > 0),
        "Expired": (InvocationJob.status == "Completed") & progress_expired.is_(True) & (processed == 0),
        "Failed": InvocationJob.status == "Failed",
        "Stopping": InvocationJob.status == "Stopping",
        "Stopped": InvocationJob.status == "Stopped",
    }
    return conditions.get(status, InvocationJob.id.is_(None))  # Validating, Scheduled: none here


def list_openai_batches(store: Store, principal: str, *, after: str | None, limit: int) -> Page:
    if not 1 <= limit <= 100:
        raise InvalidInput(f"limit: must be between 1 and 100; got {limit}.", param="limit")
    with store.session() as session:
        return after_page(session, InvocationJob, [InvocationJob.principal == principal,
                                                   InvocationJob.openai.is_not(None)],
                          after=after.removeprefix("batch_") if after else None, descending=True, limit=limit)


def stop_job(store: Store, principal: str, identifier: str, *, openai: bool = False) -> InvocationJob:
    """A queued job is Stopped at once; a running one Stopping (the runner signals its worker,
    which writes what was answered and ends Stopped)."""
    with store.session() as session:
        row = _find(session, principal, identifier, openai=openai)
        if row.status == "InProgress":
            if openai:
                row.openai = {**row.openai, "cancelling_at": int(utcnow().timestamp())}
            transition(row, "Stopped" if row.phase == "queued" else "Stopping", stop_requested=True)
        elif openai and row.status != "Stopping":
            ended = {"Completed": "completed", "Failed": "failed", "Stopped": "cancelled"}.get(row.status, row.status)
            raise Conflict(f"Batch {identifier} is {ended}; only a batch in progress can be cancelled.",
                           param="batch_id")
        elif not openai:
            raise Conflict(f"Model invocation job {row.name} is {row.status}; only a job in progress can be stopped.")
        session.flush()
        session.expunge(row)
        return row


def find_retried_batch(store: Store, principal: str, token_prefix: str, within: timedelta) -> InvocationJob | None:
    """The caller's newest batch whose token starts with ``token_prefix`` made within ``within``:
    what a client's retry of the same create made."""
    with store.session() as session:
        row = retried(session, InvocationJob, principal, token_prefix, within)
        if row is not None:
            session.expunge(row)
        return row
