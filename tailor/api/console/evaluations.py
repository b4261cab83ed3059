"""The console's Evaluations page: the visitor's evaluations — OpenAI evals with their runs, and
Bedrock model evaluation jobs — with status, pass counts and the side-by-side report; a form that
creates an eval and one run per chosen model; runs and jobs watched without a reload.

Everything goes through the services the APIs call (``services.evals``, ``services.evaluations``),
with the visitor's principal: another principal's eval, run or job is "not found". The create form
builds the OpenAI SDK's request bodies (``client.evals.create`` / ``runs.create``) and hands them to
the API's own converters (``api.openai.evals``), so a problem is named by the field the API would
name (``testing_criteria[0].reference``, ``data_source.model``, ...).

Reports: an eval run's is the signed page its ``report_url`` opens (``services.eval_report``:
every completed run of the eval side by side); a Bedrock job's is the ``report.html`` it published
to its output location, served here to its owner only (``services.evaluations.report_file``).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse

from tailor.api.console.auth import checked, signed_in
from tailor.api.console.graders import STARTERS
from tailor.api.console.pages import ConsoleRoute, render
from tailor.api.openai import evals as converters
from tailor.errors import InvalidFields, InvalidInput
from tailor.graders.openai import InvalidGrader
from tailor.jobs.spec import EvalRunRequest, EvalRunSpec
from tailor.services import eval_report, evals, evaluations, models
from tailor.services.console_sessions import ConsoleSession
from tailor.store.evals import Eval, EvalRun
from tailor.store.jobs import TERMINAL

router = APIRouter(route_class=ConsoleRoute)

SHOWN_EVALS = 20  # the newest; the API lists the rest
SHOWN_JOBS = 50
MAX_RUN_MODELS = 8
DEFAULT_PROMPT = "{{item.question}}"
# What the report page may do when served from the console: nothing but show itself (it is a
# self-contained page with inline styles and no scripts; ``tailor.evaluate.report``).
REPORT_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; sandbox"
CRITERIA = {kind: {**STARTERS[kind], **({"pass_threshold": 0.5} if kind != "string_check" else {})}
            for kind in ("string_check", "text_similarity", "score_model")}


# ---------------------------------------------------------------------------------------------
# What the page shows (the same dicts render the tables and answer the page's polling)


def _run_view(settings, row: EvalRun) -> dict[str, Any]:
    results = row.results or {}
    counts = results.get("result_counts") or {}
    status = converters.run_status(row)
    signature = eval_report.report_signature(settings, row.id)
    return {
        "id": f"evalrun_{row.id}", "eval_id": row.eval_id, "name": row.name, "status": status,
        "model": model.identifier if (model := EvalRunSpec.from_record(row.spec).model) else None,
        "total": counts.get("total", 0), "passed": counts.get("passed", 0), "failed": counts.get("failed", 0),
        "errored": counts.get("errored", 0),
        "criteria": [{"name": c["testing_criteria"], "passed": c["passed"], "failed": c["failed"]}
                     for c in results.get("per_testing_criteria_results", [])],
        "error": row.failure_message if row.status == "Failed" else None,
        "finished": row.status in TERMINAL,
        "report": (f"/v1/evals/{row.eval_id}/runs/evalrun_{row.id}/report?signature={signature}"
                   if status == "completed" else None),
    }


def _eval_view(store, settings, principal: str, row: Eval) -> dict[str, Any]:
    runs = evals.list_runs(store, principal, row.id, after=None, limit=100, descending=False, status=None).rows
    return {"id": row.id, "name": row.name, "created": row.created_at.strftime("%Y-%m-%d %H:%M"),
            "criteria": [c["name"] for c in row.testing_criteria],
            "runs": [_run_view(settings, run) for run in runs]}


def _job_view(view: evaluations.EvaluationJobView) -> dict[str, Any]:
    row, spec = view.row, view.spec
    completed = row.status == "Completed"
    return {"name": row.name, "arn": row.arn, "status": row.status, "created": row.created_at.strftime("%Y-%m-%d %H:%M"),
            "models": [model.identifier for model in spec.evaluation.models],
            "datasets": [{"name": task.name, "metrics": list(task.metrics),
                          "report": f"/console/evaluations/jobs/{row.name}/reports/{task.name}" if completed else None}
                         for task in spec.evaluation.datasets],
            "error": row.failure_message if row.status == "Failed" else None,
            "finished": row.status in TERMINAL}


def _listing(store, settings, principal: str) -> dict[str, Any]:
    page = evals.list_evals(store, principal, after=None, limit=SHOWN_EVALS, descending=True, order_by="created_at")
    jobs, _ = evaluations.list_evaluation_jobs(store, principal, {"maxResults": SHOWN_JOBS})
    return {"evals": [_eval_view(store, settings, principal, row) for row in page.rows],
            "jobs": [_job_view(job) for job in jobs]}


def _model_choices(store, settings, principal: str) -> list[dict[str, str]]:
    """The models a run can use: the visitor's active custom models (each beside its base) and the
    foundation models this server runs."""
    custom, _ = models.list_custom_models(store, principal, {"modelStatus": "Active"})
    choices = [{"value": row.arn, "label": row.openai_name or row.name, "base": row.base_model_id} for row in custom]
    choices += [{"value": model_id, "label": model_id, "base": ""} for model_id in models.usable_foundation_models(settings)]
    return choices


@router.get("/console/evaluations", include_in_schema=False)
def index(request: Request, session: ConsoleSession = Depends(signed_in)) -> Response:
    store, settings = request.app.state.store, request.app.state.settings
    listing = _listing(store, settings, session.principal)
    return render(request, "evaluations/index.html", {
        **listing, "choices": _model_choices(store, settings, session.principal), "criteria": CRITERIA,
        "default_prompt": DEFAULT_PROMPT, "created": request.query_params.get("created")})


@router.get("/console/api/evaluations", include_in_schema=False)
def listing(request: Request, session: ConsoleSession = Depends(signed_in)) -> Response:
    """What the page polls while a run or job is unfinished."""
    return JSONResponse(_listing(request.app.state.store, request.app.state.settings, session.principal))


# ---------------------------------------------------------------------------------------------
# Create: an eval and one completions run per model


def _rows(text: Any) -> list[dict]:
    """JSONL rows; a line that is a bare item becomes ``{"item": ...}``."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("rows: paste JSONL rows (one JSON object a line) or choose a file.", param="rows")
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as error:
            raise InvalidInput(f"rows, line {number}: not JSON ({error}).", param="rows") from None
        if not isinstance(value, dict):
            raise InvalidInput(f"rows, line {number}: each line is a JSON object.", param="rows")
        rows.append(value if set(value) <= {"item", "sample"} and isinstance(value.get("item"), dict)
                    else {"item": value})
    return rows


_JSON_TYPES = ((bool, "boolean"), (int, "number"), (float, "number"), (str, "string"), (list, "array"),
               (dict, "object"))


def item_schema(rows: list[dict]) -> dict:
    """The simplest schema the rows fit: each field with the JSON type it first has; required when
    every row has it."""
    properties: dict[str, dict] = {}
    for row in rows:
        for name, value in row["item"].items():
            kind = next((label for python, label in _JSON_TYPES if isinstance(value, python)), None)
            if name not in properties:
                properties[name] = {"type": kind} if kind else {}
    required = [name for name in properties if all(name in row["item"] for row in rows)]
    return {"type": "object", "properties": properties, "required": required}


def _int(body: dict, name: str, default: int) -> int:
    value = body.get(name, default)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name}: a whole number.", param=name) from None


def _bodies(body: dict) -> tuple[dict, list[tuple[str, dict]]]:
    """The SDK-shaped ``evals.create`` body and one ``runs.create`` body per model."""
    criteria = body.get("testing_criteria")
    if isinstance(criteria, dict):
        criteria = [criteria]
    rows = _rows(body.get("rows"))
    chosen = [m for m in body.get("models") or [] if isinstance(m, str) and m.strip()]
    if not chosen:
        raise InvalidInput("models: choose at least one model to run the eval on.", param="models")
    if len(chosen) > MAX_RUN_MODELS:
        raise InvalidInput(f"models: at most {MAX_RUN_MODELS} at once.", param="models")
    labels = body.get("labels") or {}
    template = []
    if isinstance(body.get("system"), str) and body["system"].strip():
        template.append({"role": "developer", "content": body["system"]})
    prompt = body.get("prompt") if isinstance(body.get("prompt"), str) and body["prompt"].strip() else DEFAULT_PROMPT
    template.append({"role": "user", "content": prompt})
    eval_body = {"name": body.get("name") or None, "testing_criteria": criteria,
                 "data_source_config": {"type": "custom", "item_schema": item_schema(rows),
                                        "include_sample_schema": True}}
    runs = []
    for model in dict.fromkeys(chosen):
        label = labels.get(model) if isinstance(labels.get(model), str) else None
        runs.append((model, {"name": (label or model)[:512], "data_source": {
            "type": "completions", "model": model, "source": {"type": "file_content", "content": rows},
            "input_messages": {"type": "template", "template": template},
            "sampling_params": {"max_completion_tokens": _int(body, "max_completion_tokens", 128),
                                "temperature": 0, "seed": 0}}}))
    return eval_body, runs


def _create(store, settings, principal: str, body: dict) -> dict:
    eval_body, run_bodies = _bodies(body)
    eval_request = converters.eval_request(eval_body)
    run_requests = [converters.run_request("pending", run_body, f"console-{uuid.uuid4().hex}")
                    for _, run_body in run_bodies]  # every run body checked before anything is made
    created = evals.create_eval(store, settings, principal, eval_request)
    runs = []
    for request in run_requests:
        try:
            runs.append(evals.create_run(store, settings, principal,
                                         _with_eval(request, created.id)))
        except Exception:
            if not runs:  # nothing ran: leave no empty eval behind
                evals.delete_eval(store, principal, created.id)
            raise
    return {"eval_id": created.id, "runs": [f"evalrun_{run.id}" for run in runs]}


def _with_eval(request: EvalRunRequest, eval_id: str) -> EvalRunRequest:
    return replace(request, eval_id=eval_id)


def _form_field(path: str) -> str:
    """The form's input a request path belongs to."""
    for prefix, field in (("testing_criteria", "testing_criteria"), ("data_source.source", "rows"),
                          ("data_source.model", "models"), ("data_source.input_messages", "prompt"),
                          ("data_source.sampling_params", "max_completion_tokens"),
                          ("data_source_config", "rows"), ("name", "name")):
        if path.startswith(prefix):
            return field
    return path


def _problems(error: InvalidFields | InvalidGrader) -> JSONResponse:
    fields: dict[str, str] = {}
    for path, problem in error.problems:
        field = _form_field(path)
        fields[field] = (fields[field] + "; " if field in fields else "") + f"{path}: {problem}"
    first = _form_field(error.problems[0][0]) if error.problems else None
    return JSONResponse({"error": {"message": error.message, "field": first, "fields": fields}}, status_code=400)


@router.post("/console/api/evaluations", include_in_schema=False)
async def create(request: Request, session: ConsoleSession = Depends(checked)) -> Response:
    """An eval (name, testing criteria, the rows' schema) and one run per model over the rows."""
    try:
        body = await request.json()
    except ValueError:
        raise InvalidInput("The body must be JSON.") from None
    if not isinstance(body, dict):
        raise InvalidInput("The body must be a JSON object.")
    try:
        made = await run_in_threadpool(_create, request.app.state.store, request.app.state.settings,
                                       session.principal, body)
    except (InvalidFields, InvalidGrader) as error:
        return _problems(error)
    except InvalidInput as error:
        if error.param:
            error.param = _form_field(error.param)
        raise
    return JSONResponse(made, status_code=201)


# ---------------------------------------------------------------------------------------------
# Cancel, stop, reports


@router.post("/console/api/evaluations/{eval_id}/runs/{run_id}/cancel", include_in_schema=False)
def cancel(request: Request, eval_id: str, run_id: str, session: ConsoleSession = Depends(checked)) -> Response:
    row = evals.cancel_run(request.app.state.store, session.principal, eval_id, run_id)
    return JSONResponse(_run_view(request.app.state.settings, row))


@router.post("/console/api/evaluations/jobs/{name}/stop", include_in_schema=False)
def stop(request: Request, name: str, session: ConsoleSession = Depends(checked)) -> Response:
    evaluations.stop_evaluation_job(request.app.state.store, session.principal, name)
    return JSONResponse(_job_view(evaluations.get_evaluation_job(request.app.state.store, session.principal, name)))


@router.get("/console/evaluations/jobs/{name}/reports/{dataset}", include_in_schema=False)
def job_report(request: Request, name: str, dataset: str, session: ConsoleSession = Depends(signed_in)) -> Response:
    """The report a completed evaluation job published for ``dataset``, to its owner."""
    html = evaluations.report_file(request.app.state.store, request.app.state.settings, session.principal, name,
                                   dataset)
    return HTMLResponse(html, headers={"Content-Security-Policy": REPORT_POLICY, "Cache-Control": "no-store"})
