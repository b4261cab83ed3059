"""A batch inference job in its worker: answer every record through Tailor's engine, write the
output the way the original writes it.

One worker serves both doors (``InvocationJobSpec.door``):

- **bedrock** (CreateModelInvocationJob): records ``{"recordId", "modelInput"}``, the model's
  native InvokeModel body. Each answered record becomes ``{"recordId", "modelInput",
  "modelOutput"}`` (the native InvokeModel response body, ``tailor.wire.invoke.invoke_response``)
  or ``{"recordId", "modelInput", "error": {"errorCode", "errorMessage"}}``, in
  ``{output}/{jobId}/{input file name}.out``, one output file per input file, beside a
  ``manifest.json.out`` with the job's counts — Bedrock's layout.
- **openai** (``/v1/batches``): lines ``{"custom_id", "method", "url", "body"}`` with a
  chat-completions body. Each answer becomes ``{"id", "custom_id", "response": {"status_code",
  "request_id", "body"}, "error"}`` in the batch's output file (a ``chat.completion`` body) or its
  error file (status 400/408/500, OpenAI's error body); both become files of the batch's owner
  (purpose ``batch_output``).

Why this is fast: records are *submitted* to one in-process engine many at a time (up to
``WINDOW_BATCHES`` engine batches in flight), so the engine's continuous batching decodes them
together; answering them one call after another would leave the batch one row wide. The engine
is the one ``tailor.serve`` runs behind InvokeModel, with the same parsing of the body
(``parse_invoke_body``, ``chat_body``), so a greedy record's answer is InvokeModel's answer.

Progress (``progress``: Bedrock's record and token counts) is written to the job's row about
twice a second, so GetModelInvocationJob and ``batches.retrieve`` show it while the job runs. A
stop (SIGTERM from the runner) cancels what is in flight at once; the records answered so far are
written, and the job ends Stopped. A job past its timeout (``timeoutDurationInHours``, OpenAI's
24 h window) writes what it has and ends Completed with ``progress.expired`` set (Bedrock's
PartiallyCompleted or Expired, OpenAI's ``expired``: the converters say which).

Records that were refused at create (a line that is not JSON, a missing recordId, a body the
model's dialect refuses) arrive with their ``problem`` and become error lines without reaching
the engine.
"""

from __future__ import annotations

import json
import queue
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

from tailor import storage
from tailor.errors import InvalidInput, TailorError
from tailor.evaluate.run import StopRequested
from tailor.jobs.ending import Stop, run_to_end
from tailor.serve.protocol import ChatRequest, Completion, Target
from tailor.settings import Settings
from tailor.store.data_in_out import InvocationJob
from tailor.store.db import Store, utcnow
from tailor.store.files import add_written_file
from tailor.wire import chat_body, invoke

WINDOW_BATCHES = 2  # engine batches' worth of records in flight: the next batch is queued while one decodes
PROGRESS_SECONDS = 0.5
MANIFEST = "manifest.json.out"
# An engine error's code -> the HTTP status a record's error carries (as InvokeModel would answer).
STATUS_OF = {"ValidationException": 400, "ModelTimeoutException": 408, "ModelErrorException": 500}


@dataclass(frozen=True)
class InputFile:
    name: str  # the input file's name, for its output file's name
    records: str  # the prepared records (one JSON object a line), in the job's folder
    count: int


@dataclass(frozen=True)
class InvocationJobSpec:
    """What a batch job runs, resolved at create: the weights, the body dialect, the inputs."""

    door: str  # bedrock | openai
    model_id: str  # as the caller named it, echoed in answers
    target: Target
    body: str  # the InvokeModel body kind (bedrock door)
    inputs: tuple[InputFile, ...]
    output_uri: str | None  # bedrock: the folder the job's {jobId}/ goes under
    input_uri: str | None  # bedrock: the file or folder the caller named
    default_max_tokens: int
    timeout_hours: int = 24

    @property
    def total(self) -> int:
        return sum(item.count for item in self.inputs)

    def to_record(self) -> dict:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict) -> InvocationJobSpec:
        return cls(**{**record, "target": Target(**record["target"]),
                      "inputs": tuple(InputFile(**item) for item in record["inputs"])})


def empty_progress(total: int) -> dict:
    return {"totalRecordCount": total, "processedRecordCount": 0, "successRecordCount": 0, "errorRecordCount": 0,
            "inputTokenCount": 0, "outputTokenCount": 0}


# ---------------------------------------------------------------------------------------------
# One record's request: the same parsing as the door it came through (create checks with these)


def bedrock_request(kind: str, model_input, default_max_tokens: int) -> ChatRequest:
    """The ``ChatRequest`` of a record's ``modelInput`` (InvokeModel's native body); raises
    ``InvalidInput``/``InvalidFields`` naming what the dialect refuses."""
    if not isinstance(model_input, dict):
        raise InvalidInput("modelInput: must be a JSON object, the model's InvokeModel body.")
    return invoke.parse_invoke_body(kind, json.dumps(model_input), default_max_tokens=default_max_tokens)


def openai_request(body, default_max_tokens: int) -> ChatRequest:
    """The ``ChatRequest`` of a batch line's chat-completions ``body``."""
    parsed = chat_body.read(body)
    if parsed.stream:
        raise InvalidInput("body.stream: a batch request is answered whole; streaming is not available.",
                           param="body.stream")
    return chat_body.chat_request(parsed, default_max_tokens=default_max_tokens)


# ---------------------------------------------------------------------------------------------
# The worker


def run_job(store: Store, settings: Settings, job_id: str, stop: Stop) -> str:
    """Run batch job ``job_id``; its final status."""
    with store.session() as session:
        job = session.get(InvocationJob, job_id)
        if job is None or job.status != "InProgress":
            return job.status if job else "missing"
        spec = InvocationJobSpec.from_record(job.spec)
        deadline = job.created_at + timedelta(hours=job.timeout_hours or spec.timeout_hours)
    return run_to_end(store, settings, InvocationJob, job_id,
                      lambda: _run(store, settings, job_id, spec, stop, deadline), "The batch inference job")


@dataclass
class _Answers:
    """What the job has answered so far: one output line per record, by position."""

    lines: dict[int, dict] = field(default_factory=dict)
    failed: set[int] = field(default_factory=set)
    progress: dict = field(default_factory=dict)

    def add(self, position: int, line: dict, completion: Completion | None) -> None:
        self.lines[position] = line
        counts = self.progress
        counts["processedRecordCount"] += 1
        if completion is None:
            counts["errorRecordCount"] += 1
            self.failed.add(position)
        else:
            counts["successRecordCount"] += 1
            counts["inputTokenCount"] += completion.input_tokens
            counts["outputTokenCount"] += completion.output_tokens


def _run(store: Store, settings: Settings, job_id: str, spec: InvocationJobSpec, stop: Stop, deadline) -> None:
    from tailor.serve.engine import Engine, EngineError

    records = [json.loads(line) for item in spec.inputs
               for line in Path(item.records).read_text(encoding="utf-8").splitlines()]
    answers = _Answers(progress={**empty_progress(len(records)), "startedAt": time.time()})
    _save_progress(store, job_id, answers.progress)
    finished: queue.Queue = queue.Queue()
    window = settings.engine_max_batch * WINDOW_BATCHES
    engine = None  # started with the first record to answer: a job of refused records loads no model
    in_flight: dict = {}
    expired = False
    last_saved = time.monotonic()
    try:
        pending = iter(enumerate(records))
        exhausted = False
        while not exhausted or in_flight:
            if stop():
                break
            if utcnow() >= deadline:
                expired = True
                break
            while not exhausted and len(in_flight) < window:  # keep the engine's batch full
                position, record = next(pending, (None, None))
                if position is None:
                    exhausted = True
                    break
                chat, problem = _chat(spec, record)
                if chat is None:
                    answers.add(position, _error_line(spec, record, 400, problem), None)
                    continue
                engine = engine or Engine(settings, max_models=1)
                in_flight[position] = engine.submit(spec.target, chat, _collector(position, finished))
            try:
                position, event = finished.get(timeout=0.2)
            except queue.Empty:
                continue
            in_flight.pop(position, None)
            record = records[position]
            if isinstance(event, EngineError):
                line = _error_line(spec, record, STATUS_OF.get(event.code, 500), f"{event.code}: {event.message}")
                answers.add(position, line, None)
            else:
                answers.add(position, _answer_line(spec, record, event), event)
            if time.monotonic() - last_saved >= PROGRESS_SECONDS:
                _save_progress(store, job_id, answers.progress)
                last_saved = time.monotonic()
    finally:
        for handle in in_flight.values():
            handle.cancel()
        if engine is not None:
            engine.close()
    answers.progress["expired"] = expired
    answers.progress["finalizing"] = True
    _save_progress(store, job_id, answers.progress)
    _write_output(store, settings, job_id, spec, records, answers)
    if stop():
        raise StopRequested("The batch inference job was stopped.")


def _collector(position: int, finished: queue.Queue):
    from tailor.serve.engine import EngineError

    def emit(event) -> None:
        if isinstance(event, Completion | EngineError):
            finished.put((position, event))
    return emit


def _chat(spec: InvocationJobSpec, record: dict) -> tuple[ChatRequest | None, str | None]:
    if record.get("problem"):
        return None, record["problem"]
    try:
        if spec.door == "openai":
            return openai_request(record["body"], spec.default_max_tokens), None
        return bedrock_request(spec.body, record["modelInput"], spec.default_max_tokens), None
    except TailorError as error:
        return None, _message(error)


def _message(error: TailorError) -> str:
    problems = getattr(error, "problems", None)
    if problems and isinstance(problems, list | tuple):
        return "; ".join(f"{path}: {problem}" for path, problem in problems)
    return error.message


def _answer_line(spec: InvocationJobSpec, record: dict, completion: Completion) -> dict:
    request_id = str(uuid.uuid4())
    if spec.door == "openai":
        body = chat_body.chat_completion(completion, model=spec.model_id, completion_id=f"chatcmpl-{uuid.uuid4().hex}",
                                         created=int(time.time()))
        return {"id": _request_line_id(), "custom_id": record["custom_id"],
                "response": {"status_code": 200, "request_id": request_id, "body": body}, "error": None}
    output = invoke.invoke_response(spec.body, completion, model_id=spec.model_id, request_id=request_id,
                                    request_body=json.dumps(record["modelInput"]))
    return {"recordId": record["recordId"], "modelInput": record["modelInput"], "modelOutput": output}


def _error_line(spec: InvocationJobSpec, record: dict, status: int, message: str) -> dict:
    if spec.door == "openai":
        kind = "invalid_request_error" if status == 400 else "server_error"
        body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
        return {"id": _request_line_id(), "custom_id": record.get("custom_id"),
                "response": {"status_code": status, "request_id": str(uuid.uuid4()), "body": body}, "error": None}
    return {"recordId": record.get("recordId"), "modelInput": record.get("modelInput"),
            "error": {"errorCode": status, "errorMessage": message}}


def _request_line_id() -> str:
    return f"batch_req_{uuid.uuid4().hex}"


def _save_progress(store: Store, job_id: str, progress: dict) -> None:
    with store.session() as session:
        job = session.get(InvocationJob, job_id)
        job.progress = dict(progress)  # a new value: the JSON column sees the change
        job.last_modified_at = utcnow()


# ---------------------------------------------------------------------------------------------
# Output


def _write_output(store: Store, settings: Settings, job_id: str, spec: InvocationJobSpec, records: list[dict],
                  answers: _Answers) -> None:
    """Every answered record's line, in input order (a stopped job's too: what was answered)."""
    if spec.door == "openai":
        _write_openai(store, settings, job_id, answers)
        return
    folder = Path(_work_dir(store, job_id)) / "output"
    folder.mkdir(parents=True, exist_ok=True)
    destination = spec.output_uri.rstrip("/") + f"/{job_id}/"
    start = 0
    for item in spec.inputs:
        lines = [answers.lines[position] for position in range(start, start + item.count) if position in answers.lines]
        start += item.count
        path = folder / f"{item.name}.out"
        path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
        storage.upload_file(path, destination + path.name, settings)
    manifest = folder / MANIFEST
    manifest.write_text(json.dumps({key: answers.progress[key] for key in empty_progress(0)}) + "\n")
    storage.upload_file(manifest, destination + MANIFEST, settings)


def _write_openai(store: Store, settings: Settings, job_id: str, answers: _Answers) -> None:
    """The output file (answered requests) and the error file (refused or failed ones), each a file
    of the batch's owner; their ids go into the batch's ``openai`` fields."""
    with store.session() as session:
        job = session.get(InvocationJob, job_id)
        principal, fields = job.principal, dict(job.openai or {})
    positions = sorted(answers.lines)
    kept = {"output_file_id": [p for p in positions if p not in answers.failed],
            "error_file_id": [p for p in positions if p in answers.failed]}
    for key, chosen in kept.items():
        if chosen:
            content = "".join(json.dumps(answers.lines[p], ensure_ascii=False) + "\n" for p in chosen).encode()
            name = f"batch_{job_id}_{'output' if key == 'output_file_id' else 'error'}.jsonl"
            fields[key] = add_written_file(store, settings.home, principal, filename=name, purpose="batch_output",
                                           content=content)
    with store.session() as session:
        job = session.get(InvocationJob, job_id)
        job.openai = fields


def _work_dir(store: Store, job_id: str) -> str:
    with store.session() as session:
        return session.get(InvocationJob, job_id).work_dir
