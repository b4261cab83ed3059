"""The console's Jobs page: every job of the signed-in principal, a create form per method, and a
job's own page with its live curves.

- ``/console/jobs``: the caller's jobs, whatever door made them (Bedrock, the OpenAI API, the CLI:
  the same rows, ``customization.list_jobs``), filtered by status, name and type.
- ``/console/jobs/new?kind=...``: one form per method Tailor trains (``train/recipes.TRAINABLE``;
  distillation appears when it has a recipe). Each hyperparameter shows its range and default
  (``customization.hyperparameter_table``); the page script checks values as one types, then asks
  ``/console/api/jobs/check`` (``customization.check_request`` + the pre-flight estimate, no side
  effect). Submitting builds the same ``CustomizationRequest`` the APIs build
  (``customization.create_job``); without the script the form is a plain POST.
- ``/console/jobs/{id}``: status, phase, progress, hyperparameters, data, checkpoints, events,
  stop / pause / resume, downloads; the loss and reward curves are drawn from
  ``/console/api/jobs/{id}/metrics`` and kept current by ``/console/api/jobs/{id}/live``, a
  server-sent event stream of the rows the training writes (``job_events.metric_series``).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse

from tailor.api.bedrock.shapes import member_problems
from tailor.api.console.auth import checked, signed_in
from tailor.api.console.pages import ConsoleRoute, render, template_filter
from tailor.api.errors import http_error
from tailor.api.openai.fine_tuning import estimated_finish
from tailor.catalog import FOUNDATION_MODELS, CustomizationType
from tailor.errors import InvalidHyperparameters, InvalidInput, NotFound, TailorError
from tailor.graders.registry import list_graders
from tailor.jobs.spec import CustomizationRequest, Fields
from tailor.services import customization, job_events, models
from tailor.services.console_sessions import ConsoleSession
from tailor.train.recipes import TRAINABLE

router = APIRouter(route_class=ConsoleRoute)

# The form's input names are the names errors point at (``Fields``), so each problem lands under
# its own input; a hyperparameter's input is ``hp.NAME``.
FIELDS = Fields(name="name", model_name="model_name", kind="kind", base_model="base_model",
                training_uri="training_uri", validation_uri="validation_uri", output_uri="output_uri",
                grader="grader", teacher="teacher", teacher_max_tokens="teacher_max_tokens")
FIELD_NAMES = ("name", "model_name", "kind", "base_model", "training_uri", "validation_uri", "output_uri", "grader",
               "teacher", "teacher_max_tokens")
REQUIRED = ("name", "model_name", "base_model", "training_uri", "output_uri")
HP = "hp."
NOUNS = {  # "New ... job"
    CustomizationType.FINE_TUNING: "fine-tuning",
    CustomizationType.CONTINUED_PRE_TRAINING: "continued pre-training",
    CustomizationType.REINFORCEMENT_FINE_TUNING: "reinforcement fine-tuning",
    CustomizationType.DPO: "preference (DPO)",
    CustomizationType.DISTILLATION: "distillation",
}
LABELS = {
    CustomizationType.FINE_TUNING: "Fine-tuning",
    CustomizationType.CONTINUED_PRE_TRAINING: "Continued pre-training",
    CustomizationType.REINFORCEMENT_FINE_TUNING: "Reinforcement fine-tuning",
    CustomizationType.DPO: "Preference (DPO)",
    CustomizationType.DISTILLATION: "Distillation",
}
METHODS = tuple(kind for kind in LABELS if kind in TRAINABLE)
STATUSES = ("InProgress", "Pausing", "Paused", "Stopping", "Stopped", "Completed", "Failed")
TERMINAL = frozenset({"Completed", "Failed", "Stopped"})
# The two names are checked against CreateModelCustomizationJob's shapes, so a name the form
# takes is one every door takes.
NAME_MEMBERS = {"name": "jobName", "model_name": "customModelName"}
# What each chart draws: (element id, title, [(column, label, rows it is in)]).
CHARTS = (
    ("loss-chart", "Loss", (("train_loss", "training loss", "training"), ("valid_loss", "validation loss", "validation"),
                            ("actor_pg_loss", "policy loss", "training"))),
    ("reward-chart", "Reward", (("critic_rewards_mean", "mean reward", "training"),
                                ("val_score_rewards_mean_at_1", "held-out reward", "validation"))),
)
FILE_NOTES = {"training.csv": "step-wise training metrics", "validation.csv": "validation metrics",
              "loss.png": "loss plot", "rewards.png": "reward plot",
              "results.csv": "every step's metrics in one table (OpenAI's results file)"}
LIVE_INTERVAL = 0.5  # seconds between reads of a training job's metrics files (small CSVs)
MIN_INTERVAL = 0.2


def _state(request: Request):
    return request.app.state.store, request.app.state.settings


@template_filter
def job_time(value) -> str:
    """A time as the job page shows it (UTC, to the second)."""
    if value in (None, ""):
        return ""
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


# ---------------------------------------------------------------------------------------------
# The list


@router.get("/console/jobs", include_in_schema=False)
def index(request: Request, status: str = "", name: str = "", kind: str = Query("", alias="type"),
          token: str = Query("", alias="next"), session: ConsoleSession = Depends(signed_in)) -> Response:
    """One page of the caller's jobs, newest first; the type filter applies to the page."""
    store, _ = _state(request)
    query = {"statusEquals": status if status in STATUSES else None, "nameContains": name.strip() or None,
             "maxResults": 100, "nextToken": token or None}
    rows, token = customization.list_jobs(store, session.principal, query)
    if kind:
        rows = [row for row in rows if row.customization_type == kind]
    return render(request, "jobs/index.html", {
        "jobs": rows, "token": token, "filters": {"status": status, "name": name, "type": kind},
        "statuses": STATUSES, "kinds": [kind.value for kind in LABELS if kind in TRAINABLE], "nouns": NOUNS,
        "methods": METHODS})


# ---------------------------------------------------------------------------------------------
# The create form


def _kind(value: str) -> CustomizationType:
    try:
        kind = CustomizationType(value or CustomizationType.FINE_TUNING)
    except ValueError:
        raise InvalidInput(f"kind: {value!r} is not a customization type.", param="kind") from None
    if kind not in TRAINABLE:
        raise InvalidInput(f"kind: {kind} is not available in Tailor yet.", param="kind")
    return kind


def _base_models(request: Request, principal: str, kind: CustomizationType) -> list[tuple[str, str]]:
    """(identifier, label) of each model a ``kind`` job can start from: the foundation models that
    support it here, then the caller's custom models (the server checks the pairing on submit)."""
    store, settings = _state(request)
    # Not ListFoundationModels' byCustomizationType: Bedrock's listing has no DPO, nor RFT of these models.
    choices = [(model_id, f"{model_id} (foundation)") for model_id in models.usable_foundation_models(settings)
               if kind in FOUNDATION_MODELS[model_id].customization_types]
    custom, _ = models.list_custom_models(store, principal, {"modelStatus": "Active", "maxResults": 100})
    choices += [(row.arn, f"{row.name} (your custom model)") for row in custom]
    return choices


def _table(request: Request, principal: str, kind: CustomizationType, base_model: str, tuning_method: str | None):
    """The hyperparameter table to show, or (None, why) when the base model has none for ``kind``."""
    store, settings = _state(request)
    if not base_model:
        return None, "Choose a base model to see its hyperparameters."
    try:
        return customization.hyperparameter_table(store, settings, principal, base_model, kind, tuning_method,
                                                  FIELDS), None
    except (InvalidInput, NotFound) as error:
        return None, error.message


def _form_context(request: Request, session: ConsoleSession, kind: CustomizationType, values: Mapping[str, str],
                  problems: Mapping[str, str] | None = None, message: str | None = None) -> dict:
    base_models = _base_models(request, session.principal, kind)
    base_model = values.get("base_model") or (base_models[0][0] if base_models else "")
    table, why = _table(request, session.principal, kind, base_model, values.get(HP + "tuningMethod") or None)
    graders = list_graders(request.app.state.store) if kind is CustomizationType.REINFORCEMENT_FINE_TUNING else []
    return {"kind": kind, "labels": LABELS, "nouns": NOUNS, "methods": METHODS, "base_models": base_models,
            "base_model": base_model, "table": table, "table_problem": why, "values": values,
            "problems": problems or {}, "message": message, "graders": graders,
            "token": values.get("token") or secrets.token_urlsafe(16)}


@router.get("/console/jobs/new", include_in_schema=False)
def new_form(request: Request, kind: str = "FINE_TUNING", base_model: str = "",
             session: ConsoleSession = Depends(signed_in)) -> Response:
    return render(request, "jobs/new.html", _form_context(request, session, _kind(kind), {"base_model": base_model}))


@router.get("/console/api/jobs/hyperparameters", include_in_schema=False)
def hyperparameter_fields(request: Request, kind: str = "FINE_TUNING", base_model: str = "", tuning_method: str = "",
                          session: ConsoleSession = Depends(signed_in)) -> dict:
    """The form's hyperparameter inputs for another base model or tuning method, as HTML (the same
    template the page renders), so the script never builds them itself."""
    table, why = _table(request, session.principal, _kind(kind), base_model, tuning_method or None)
    html = render(request, "jobs/_hyperparameters.html", {"table": table, "table_problem": why, "values": {},
                                                           "problems": {}}).body.decode()
    return {"html": html}


def _text(values: Mapping[str, object], name: str) -> str:
    value = values.get(name)
    return value.strip() if isinstance(value, str) else ""


def _missing(values: Mapping[str, object]) -> dict[str, str]:
    problems = {name: "Required." for name in REQUIRED if not _text(values, name)}
    for name, member in NAME_MEMBERS.items():
        wrong = _text(values, name) and member_problems("CreateModelCustomizationJobRequest", member,
                                                        _text(values, name))
        if wrong:
            problems[name] = wrong[0].removeprefix(f"{member}: ").capitalize()
    return problems


def form_request(values: Mapping[str, object]) -> CustomizationRequest:
    """The form's values as the request every door builds (``Fields`` naming the form's inputs);
    empty hyperparameters are left to their defaults."""
    kind = _kind(_text(values, "kind"))
    grader, definition = None, None
    if kind is CustomizationType.REINFORCEMENT_FINE_TUNING:
        if _text(values, "grader_source") == "definition":
            try:
                definition = json.loads(_text(values, "grader_definition") or "null")
            except ValueError as error:
                raise InvalidInput(f"grader: the grader object is not JSON ({error}).", param="grader") from None
            if not isinstance(definition, dict):
                raise InvalidInput("grader: paste an OpenAI grader object (a JSON object with a \"type\").",
                                   param="grader")
        else:
            grader = _text(values, "grader") or None
    teacher, teacher_tokens = None, None
    if kind is CustomizationType.DISTILLATION:
        teacher = _text(values, "teacher") or None
        if _text(values, "teacher_max_tokens"):
            try:
                teacher_tokens = int(_text(values, "teacher_max_tokens"))
            except ValueError:
                raise InvalidInput("teacher_max_tokens: must be a whole number of tokens.",
                                   param="teacher_max_tokens") from None
    validation = _text(values, "validation_uri")
    return CustomizationRequest(
        fields=FIELDS, name=_text(values, "name"), model_name=_text(values, "model_name"),
        base_model=_text(values, "base_model"), kind=kind, training_uri=_text(values, "training_uri"),
        output_uri=_text(values, "output_uri"), validation_uris=(validation,) if validation else (),
        hyperparameters={name.removeprefix(HP): value.strip() for name, value in values.items()
                         if name.startswith(HP) and isinstance(value, str) and value.strip()},
        grader=grader, grader_definition=definition, teacher=teacher, teacher_max_tokens=teacher_tokens,
        token=_text(values, "token") or None)


def problems_of(error: TailorError) -> tuple[dict[str, str], str | None]:
    """An error as (problems by input name, a message for the whole form)."""
    if isinstance(error, InvalidHyperparameters):
        return {HP + name: problem for name, problem in error.problems.items()}, None
    message = error.message
    param = (error.param or "").split(".")[0].split("[")[0]
    for name in FIELD_NAMES:
        if param == name or message.startswith(f"{name}: "):
            return {name: message.removeprefix(f"{name}: ")}, None
    return {}, message


def estimate_json(preflight) -> dict:
    """A pre-flight estimate as the form (and ``POST /tailor/v1/customization-jobs/estimate``) shows it."""
    if preflight is None:
        return {"available": False, "text": "No pre-flight estimate for this job: Tailor estimates supervised "
                                            "jobs (fine-tuning, continued pre-training) of models whose config "
                                            "it has."}
    data = preflight.data()
    return {"available": True, "fits": data["fits"], "text": preflight.describe() if data["fits"] else
            preflight.refusal(), "data": data}


@router.post("/console/api/jobs/check", include_in_schema=False)
def check(request: Request, values: dict = Body(...), session: ConsoleSession = Depends(checked)) -> dict:
    """The form's problems by input (nothing is created), and when it has none the pre-flight
    estimate. Until every required input has a value only those are reported."""
    missing = _missing(values)
    if missing:
        return {"problems": missing, "message": None, "estimate": None, "complete": False}
    store, settings = _state(request)
    try:
        estimate = customization.estimate_job(store, settings, session.principal, form_request(values))
    except TailorError as error:
        problems, message = problems_of(error)
        return {"problems": problems, "message": message, "estimate": None, "complete": True}
    return {"problems": {}, "message": None, "estimate": estimate_json(estimate), "complete": True}


class _Problems(InvalidInput):
    """Inputs left empty or malformed, by name."""

    def __init__(self, problems: dict[str, str]):
        self.problems = problems
        super().__init__("Fill in: " + ", ".join(problems) + ".")


def _create(request: Request, session: ConsoleSession, values: Mapping[str, object]) -> str:
    missing = _missing(values)
    if missing:
        raise _Problems(missing)
    store, settings = _state(request)
    arn = customization.create_job(store, settings, session.principal, form_request(values))
    return customization.get_job(store, session.principal, arn).row.id


def _problems(error: TailorError) -> tuple[dict[str, str], str | None]:
    return (error.problems, None) if isinstance(error, _Problems) else problems_of(error)


@router.post("/console/api/jobs", include_in_schema=False)
def create(request: Request, values: dict = Body(...), session: ConsoleSession = Depends(checked)) -> Response:
    """Create the job the form describes; its page's URL, or the problems by input."""
    try:
        job_id = _create(request, session, values)
    except TailorError as error:
        problems, message = _problems(error)
        status = 400 if isinstance(error, _Problems) else http_error(error).openai_status
        return JSONResponse({"error": {"message": message or error.message, "field": next(iter(problems), None),
                                       "fields": problems}}, status_code=status)
    return JSONResponse({"id": job_id, "url": f"/console/jobs/{job_id}"}, status_code=201)


@router.post("/console/jobs/new", include_in_schema=False)
async def create_from_form(request: Request, session: ConsoleSession = Depends(checked)) -> Response:
    """The form without its script: a plain POST, answered by the job page or the form with its problems."""
    values = {name: value for name, value in (await request.form()).items() if isinstance(value, str)}
    try:
        job_id = await run_in_threadpool(_create, request, session, values)
    except TailorError as error:
        problems, message = _problems(error)
        context = await run_in_threadpool(_form_context, request, session, _kind(_text(values, "kind")), values,
                                          problems, message or (None if problems else error.message))
        return render(request, "jobs/new.html", context, status=400)
    return RedirectResponse(f"/console/jobs/{job_id}", status_code=303)


# ---------------------------------------------------------------------------------------------
# A job's page, its actions and files


def _available_files(store, principal: str, job_id: str) -> list[str]:
    """The job's files that exist now (the results CSV once there are metrics to put in it)."""
    names = []
    for name in customization.ARTIFACTS:
        if name == "results.csv" and "training.csv" not in names:
            continue
        try:
            customization.job_artifact(store, principal, job_id, name)
            names.append(name)
        except NotFound:
            pass
    return names


@router.get("/console/jobs/{job_id}", include_in_schema=False)
def job_page(request: Request, job_id: str, session: ConsoleSession = Depends(signed_in)) -> Response:
    store, _ = _state(request)
    job, checkpoints = customization.job_checkpoints(store, session.principal, job_id)
    events = job_events.list_events(store, session.principal, job.row.id, limit=1000)["data"]
    messages = [event for event in events if event["type"] == "message"]
    finish = estimated_finish(job, datetime.now(UTC))
    charts = [{"id": chart_id, "title": title, "series": [list(series) for series in columns]}
              for chart_id, title, columns in CHARTS
              if chart_id == "loss-chart" or job.row.customization_type == CustomizationType.REINFORCEMENT_FINE_TUNING]
    return render(request, "jobs/job.html", {
        "job": job, "row": job.row, "train": job.spec.train, "labels": LABELS, "checkpoints": checkpoints,
        "events": messages, "finish": finish, "charts": charts, "files": _available_files(store, session.principal,
                                                                                          job.row.id),
        "file_notes": FILE_NOTES, "terminal": job.row.status in TERMINAL})


@router.post("/console/jobs/{job_id}/{action}", include_in_schema=False)
def act(request: Request, job_id: str, action: str, session: ConsoleSession = Depends(checked)) -> Response:
    """Stop, pause or resume: the same service calls as the APIs' (their refusals as the error page)."""
    store, _ = _state(request)
    actions = {"stop": customization.stop_job, "pause": customization.pause_job, "resume": customization.resume_job}
    if action not in actions:
        raise NotFound(f"A job has no action {action!r}.")
    job = customization.get_job(store, session.principal, job_id)
    actions[action](store, session.principal, job.row.id)
    return RedirectResponse(f"/console/jobs/{job.row.id}", status_code=303)


@router.get("/console/jobs/{job_id}/files/{name}", include_in_schema=False)
def download(request: Request, job_id: str, name: str, session: ConsoleSession = Depends(signed_in)) -> Response:
    store, _ = _state(request)
    content, media_type = customization.job_artifact(store, session.principal, job_id, name)
    disposition = "inline" if media_type.startswith("image/") else "attachment"
    return Response(content, media_type=media_type, headers={
        "Content-Disposition": f'{disposition}; filename="{job_id}-{name}"', "Cache-Control": "no-store"})


@router.get("/console/api/jobs/{job_id}/files", include_in_schema=False)
def files(request: Request, job_id: str, session: ConsoleSession = Depends(signed_in)) -> dict:
    store, _ = _state(request)
    job = customization.get_job(store, session.principal, job_id)
    return {"files": [{"name": name, "url": f"/console/jobs/{job.row.id}/files/{name}"}
                      for name in _available_files(store, session.principal, job.row.id)]}


def _status(series: dict, job_id: str) -> dict:
    progress = series["progress"]
    return {"status": series["status"], "phase": series["phase"], "status_details": series["status_details"],
            "progress": progress, "failure_message": series["failure_message"], "end_time": series["end_time"],
            "job": job_id}


@router.get("/console/api/jobs/{job_id}/metrics", include_in_schema=False)
def metrics(request: Request, job_id: str, session: ConsoleSession = Depends(signed_in)) -> dict:
    """The whole series so far (a chart's first paint), with where the job stands."""
    store, _ = _state(request)
    return job_events.metric_series(store, session.principal, job_id)


def _cursor(last_event_id: str | None) -> tuple[int | None, int | None]:
    """The steps a reconnecting stream had (its last event id, ``TRAINING:VALIDATION``)."""
    try:
        training, validation = (last_event_id or "").split(":")
        return (int(training) if training else None), (int(validation) if validation else None)
    except ValueError:
        return None, None


def _last(columns: dict, current: int | None) -> int | None:
    steps = columns.get("step") or []
    return max(steps) if steps else current


@router.get("/console/api/jobs/{job_id}/live", include_in_schema=False)
async def live(request: Request, job_id: str, interval: float = LIVE_INTERVAL, cursor: str = "",
               session: ConsoleSession = Depends(signed_in)) -> Response:
    """Server-sent events while the job runs: ``metrics`` (the rows after the last step sent; the
    event id says which, so a reconnect resumes there; ``cursor`` says it for a first connection,
    after a first paint from ``metrics``), ``status`` (when it changes) and ``end`` at a terminal
    status. Reads run in a thread; the loop ends with the job or the client."""
    store, _ = _state(request)
    interval = max(MIN_INTERVAL, interval)
    training, validation = _cursor(request.headers.get("last-event-id") or cursor)
    read = job_events.metric_series  # a foreign or unknown job is a 404 here, before the stream starts
    first = await run_in_threadpool(read, store, session.principal, job_id, training, validation)

    async def stream() -> AsyncIterator[bytes]:
        nonlocal training, validation
        series, shown = first, None
        yield b"retry: 2000\n\n"
        while True:
            if series["training"] or series["validation"]:
                training, validation = _last(series["training"], training), _last(series["validation"], validation)
                payload = {"training": series["training"], "validation": series["validation"]}
                cursor = f"{'' if training is None else training}:{'' if validation is None else validation}"
                yield f"id: {cursor}\nevent: metrics\ndata: {json.dumps(payload)}\n\n".encode()
            status = _status(series, job_id)
            if status != shown:
                shown = status
                yield f"event: status\ndata: {json.dumps(status)}\n\n".encode()
            if series["status"] in TERMINAL:
                yield f"event: end\ndata: {json.dumps({'status': series['status']})}\n\n".encode()
                return
            await asyncio.sleep(interval)
            if await request.is_disconnected():
                return
            series = await run_in_threadpool(read, store, session.principal, job_id, training, validation)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
