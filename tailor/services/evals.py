"""OpenAI's Evals API (``client.evals.*``): evals, their runs and the runs' output items.

An *eval* says what to test: the shape of each data row (``item_schema``, a JSON Schema) and its
testing criteria — OpenAI's grader objects, checked by ``tailor.graders.openai.validate`` exactly
as a reinforcement job's grader is, each with the ``pass_threshold`` that turns its score into a
pass. A *run* is a job: create checks every row against the schema (a bad row is refused by its
position and field), resolves the model that will answer with the caller's rights, copies the rows
into the run's folder and queues it; the job runner starts ``tailor.jobs.eval_run`` in a worker of
its own. Cancel is the job's stop. Everything is the caller's own: another principal's evals,
runs, items and files are "not found".

A run's report (``report_url``): ``services/eval_report.py``.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select

from tailor.arns import new_resource_id
from tailor.errors import Conflict, InvalidInput, NotFound, QuotaExceeded, TailorError
from tailor.evaluate.spec import ModelToRun
from tailor.graders.openai import (
    InvalidGrader,
    MultiGrader,
    PythonGrader,
    to_json,
    validate,
)
from tailor.jobs.spec import EvalRunRequest, EvalRunSpec
from tailor.services import files
from tailor.services.evaluations import MAX_ANSWER_TOKENS
from tailor.services.inference import weights_for
from tailor.services.records import (
    Page,
    after_page,
    made_with_token,
    retried,
    unfinished,
)
from tailor.settings import Settings
from tailor.store.db import Store, utcnow
from tailor.store.evals import Eval, EvalOutputItem, EvalRun
from tailor.store.files import new_id
from tailor.store.jobs import TERMINAL, transition

MAX_CRITERIA = 32
MAX_ROWS = 10_000  # a run's rows: each becomes an output item row
ITEMS_FILE = "items.jsonl"
# What a sample holds when rows carry their own (``include_sample_schema``): the model's output.
SAMPLE_SCHEMA = {"type": "object", "properties": {
    "model": {"type": "string"}, "choices": {"type": "array"}, "output_text": {"type": "string"},
    "output_json": {"type": "object"}, "output_tools": {"type": "array"}}, "required": ["output_text"]}


@dataclass(frozen=True)
class EvalRequest:
    """``client.evals.create``, as its converter reads it."""

    name: str
    config_type: str  # custom | logs | stored_completions
    item_schema: dict | None
    include_sample_schema: bool
    criteria: tuple[dict, ...]  # grader objects, pass_threshold included
    metadata: dict | None = None


# ---------------------------------------------------------------------------------------------
# Evals


def create_eval(store: Store, settings: Settings, principal: str, request: EvalRequest) -> Eval:
    if request.config_type != "custom":
        raise InvalidInput(f"data_source_config.type: {request.config_type!r} selects stored completions, and "
                           "this server stores none (it logs no completions); describe your rows with "
                           "{\"type\": \"custom\", \"item_schema\": {...}} and send them with each run.",
                           param="data_source_config.type")
    schema = _checked_schema(request.item_schema)
    properties = {"item": schema}
    if request.include_sample_schema:
        properties["sample"] = SAMPLE_SCHEMA
    config = {"type": "custom", "schema": {"type": "object", "properties": properties,
                                           "required": sorted(properties)}}
    now = utcnow()
    row = Eval(id=new_id("eval_"), principal=principal, name=request.name, data_source_config=config,
               testing_criteria=check_criteria(request.criteria, settings), metadata_=request.metadata,
               created_at=now, updated_at=now)
    with store.session() as session:
        session.add(row)
        session.flush()
        session.expunge(row)
    return row


def check_criteria(criteria: tuple[dict, ...], settings: Settings) -> list[dict]:
    """The testing criteria, each checked as a grader (every problem named by its path) and
    normalized, with its ``pass_threshold``."""
    if not 1 <= len(criteria) <= MAX_CRITERIA:
        raise InvalidInput(f"testing_criteria: give 1 to {MAX_CRITERIA} criteria; got {len(criteria)}.",
                           param="testing_criteria")
    checked, problems, names = [], [], set()
    for position, criterion in enumerate(criteria):
        path = f"testing_criteria[{position}]"
        definition = dict(criterion)
        threshold = definition.pop("pass_threshold", None)
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int | float)
                                      or not math.isfinite(threshold)):
            problems.append((f"{path}.pass_threshold", "must be a number"))
        if definition.get("type") == "text_similarity" and threshold is None:
            problems.append((f"{path}.pass_threshold", "required for a text_similarity criterion"))
        try:
            grader = validate(definition, settings, path=path)
        except InvalidGrader as error:
            problems += error.problems
            continue
        if grader.name in names:
            problems.append((f"{path}.name", f"{grader.name!r} names another criterion too; names must differ"))
        names.add(grader.name)
        if _has_python(grader):
            from tailor.graders.sandbox import sandbox_problem

            if problem := sandbox_problem():
                problems.append((f"{path}.source", f"python graders cannot run on this server: {problem}"))
        checked.append({**to_json(grader), **({"pass_threshold": float(threshold)} if threshold is not None else {})})
    if problems:
        raise InvalidGrader(problems)
    return checked


def _has_python(grader) -> bool:
    members = grader.graders.values() if isinstance(grader, MultiGrader) else [grader]
    return any(isinstance(member, PythonGrader) for member in members)


def _checked_schema(schema: dict | None) -> dict:
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    if not isinstance(schema, dict):
        raise InvalidInput("data_source_config.item_schema: required, a JSON Schema object.",
                           param="data_source_config.item_schema")
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as error:
        where = "".join(f"[{step!r}]" if isinstance(step, int) else f".{step}" for step in error.absolute_path)
        raise InvalidInput(f"data_source_config.item_schema{where}: not a valid JSON Schema: {error.message}",
                           param="data_source_config.item_schema") from None
    if where := _pattern_in(schema, "data_source_config.item_schema"):
        # Python's re has no time limit: a caller's pattern could hold a server thread for ever
        # (catastrophic backtracking) while every row is checked. Types, enums, lengths remain.
        raise InvalidInput(f"{where}: regular expressions are not accepted in an item_schema on this server "
                           "(they would run unbounded on every row); use type, enum, const or length keywords.",
                           param="data_source_config.item_schema")
    if len(json.dumps(schema)) > 100_000:
        raise InvalidInput("data_source_config.item_schema: at most 100,000 characters of JSON.",
                           param="data_source_config.item_schema")
    return schema


def _pattern_in(value, path: str) -> str | None:
    """Where ``value`` (a JSON Schema) uses a regular expression, if anywhere."""
    if isinstance(value, dict):
        for key, member in value.items():
            if key in ("pattern", "patternProperties"):
                return f"{path}.{key}"
            if found := _pattern_in(member, f"{path}.{key}"):
                return found
    elif isinstance(value, list):
        for index, member in enumerate(value):
            if found := _pattern_in(member, f"{path}[{index}]"):
                return found
    return None


def _owned_eval(session, principal: str, eval_id: str) -> Eval:
    row = session.get(Eval, eval_id)
    if row is None or row.principal != principal:
        raise NotFound(f"Eval {eval_id} not found.", param="eval_id")
    return row


def get_eval(store: Store, principal: str, eval_id: str) -> Eval:
    with store.session() as session:
        row = _owned_eval(session, principal, eval_id)
        session.expunge(row)
        return row


def update_eval(store: Store, principal: str, eval_id: str, *, name: str | None, metadata: dict | None,
                metadata_given: bool) -> Eval:
    with store.session() as session:
        row = _owned_eval(session, principal, eval_id)
        if name is not None:
            row.name = name
        if metadata_given:
            row.metadata_ = metadata
        row.updated_at = utcnow()
        session.flush()
        session.expunge(row)
        return row


def list_evals(store: Store, principal: str, *, after: str | None, limit: int, descending: bool,
               order_by: str) -> Page:
    with store.session() as session:
        return after_page(session, Eval, [Eval.principal == principal], after=after, descending=descending,
                          limit=limit, column=order_by)


def delete_eval(store: Store, principal: str, eval_id: str) -> None:
    """The eval, its runs and their output items; refused while one of its runs is unfinished."""
    with store.session() as session:
        row = _owned_eval(session, principal, eval_id)
        runs = list(session.scalars(select(EvalRun).where(EvalRun.eval_id == eval_id)))
        if unfinished := [run for run in runs if run.status not in TERMINAL]:
            raise Conflict(f"Eval {eval_id} has a run still going (evalrun_{unfinished[0].id}); cancel it first.")
        for run in runs:
            _forget_run(session, run)
        session.delete(row)


# ---------------------------------------------------------------------------------------------
# Runs


def create_run(store: Store, settings: Settings, principal: str, request: EvalRunRequest) -> EvalRun:
    """Check the rows and the model, copy the rows into the run's folder, queue the run."""
    with store.session() as session:
        if earlier := made_with_token(EvalRun, principal, request.token)(session):
            return session.scalar(select(EvalRun).where(EvalRun.arn == earlier))
        evaluation = _owned_eval(session, principal, request.eval_id)
        session.expunge(evaluation)
    _check_quota(store, settings, principal)
    rows, where = _rows(store, settings, principal, request)
    _check_rows(rows, where, evaluation, needs_sample=request.model is None)
    model = _model(store, settings, principal, request) if request.model is not None else None
    run_id = new_resource_id()
    work_dir = settings.home / "eval_runs" / run_id
    work_dir.mkdir(parents=True, exist_ok=True)
    items_path = work_dir / ITEMS_FILE
    items_path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    spec = EvalRunSpec(criteria=tuple(evaluation.testing_criteria), items_path=str(items_path), model=model,
                       template=tuple(dict(m) for m in request.template or ()), item_reference=request.item_reference,
                       seed=request.seed)
    now = utcnow()
    echo = dict(request.data_source)
    run = EvalRun(id=run_id, arn=f"evalrun_{run_id}", name=request.name or (request.model or "jsonl"),
                  principal=principal, status="InProgress", phase="queued", role_arn="", stop_requested=False,
                  client_request_token=request.token, work_dir=str(work_dir), created_at=now,
                  last_modified_at=now, eval_id=evaluation.id, spec=spec.to_record(), data_source=echo,
                  metadata_=dict(request.metadata) if request.metadata is not None else None,
                  results=empty_results(len(rows), evaluation.testing_criteria))
    try:
        with store.session() as session:
            session.add(run)
            session.flush()
            session.expunge(run)
    except Exception:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    return run


def _check_quota(store: Store, settings: Settings, principal: str) -> None:
    """A principal's unfinished runs are bounded (``max_active_jobs``, counted apart from its
    customization jobs): one caller cannot fill the queue."""
    active = unfinished(store, EvalRun, principal)
    if active >= settings.max_active_jobs:
        raise QuotaExceeded(f"You have {active} eval runs queued or running, the most this server allows one "
                            f"caller ({settings.max_active_jobs}, max_active_jobs); wait for one to finish, or "
                            "cancel one.")


def find_retried_run(store: Store, principal: str, token_prefix: str, within: timedelta) -> EvalRun | None:
    """The caller's newest run whose idempotency token starts with ``token_prefix``, created within
    ``within``: the run a retried request (the same body, sent again by a client's retry) made."""
    with store.session() as session:
        run = retried(session, EvalRun, principal, token_prefix, within)
        if run is not None:
            session.expunge(run)
        return run


def empty_results(total: int, criteria: list[dict]) -> dict:
    return {"result_counts": {"total": total, "passed": 0, "failed": 0, "errored": 0},
            "per_testing_criteria_results": [{"testing_criteria": c["name"], "passed": 0, "failed": 0}
                                             for c in criteria],
            "per_model_usage": []}


def _rows(store: Store, settings: Settings, principal: str, request: EvalRunRequest) -> tuple[list[dict], str]:
    """The rows (``{"item": ..., "sample": ...}``) and how errors name them."""
    if request.rows is not None:
        rows = [dict(row) if isinstance(row, dict) else row for row in request.rows]
        where = "data_source.source.content[{i}]"
    else:
        field = "data_source.source.id"
        try:
            _, path = files.content_of(store, settings, principal, request.file_id)
        except NotFound:
            raise InvalidInput(f"{field}: file {request.file_id} not found; upload it with client.files.create"
                               "(file=..., purpose=\"evals\").", param=field) from None
        rows = []
        with open(path, encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                if len(rows) >= MAX_ROWS:
                    break
                try:
                    rows.append(json.loads(line))
                except ValueError as error:
                    raise InvalidInput(f"file {request.file_id}, line {number}: not JSON ({error}).",
                                       param=field) from None
        where = f"file {request.file_id}, row {{i}}"
    if not rows:
        raise InvalidInput("data_source.source: no rows to evaluate.", param="data_source.source")
    if len(rows) > MAX_ROWS:
        raise InvalidInput(f"data_source.source: at most {MAX_ROWS:,} rows in a run.", param="data_source.source")
    return rows, where


def _check_rows(rows: list, where: str, evaluation: Eval, *, needs_sample: bool) -> None:
    """Every row is ``{"item": object, "sample"?: object}``, its item valid under the eval's schema,
    and — when no model answers — it carries the sample the criteria grade. The first bad row is
    refused by its position and field."""
    from jsonschema.validators import validator_for

    schema = evaluation.data_source_config["schema"]["properties"]["item"]
    validator = validator_for(schema)(schema)
    for index, row in enumerate(rows):
        place = where.format(i=index)
        if not isinstance(row, dict) or not isinstance(row.get("item"), dict):
            raise InvalidInput(f"{place}: each row is an object with an \"item\" object "
                               "({\"item\": {...}, \"sample\": {...}}).", param="data_source.source")
        if unknown := sorted(set(row) - {"item", "sample"}):
            raise InvalidInput(f"{place}: unknown field {unknown[0]!r}; a row has \"item\" and, optionally, "
                               "\"sample\".", param="data_source.source")
        error = next(iter(sorted(validator.iter_errors(row["item"]), key=lambda e: list(e.absolute_path))), None)
        if error is not None:
            path = "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in error.absolute_path)
            raise InvalidInput(f"{place}.item{path}: {error.message} (the eval's item_schema).",
                               param="data_source.source")
        sample = row.get("sample")
        if needs_sample and not (isinstance(sample, dict) and isinstance(sample.get("output_text"), str)):
            raise InvalidInput(f"{place}.sample: a jsonl data source gives each row its sample, "
                               "{\"output_text\": \"...\"}; or use a completions data source, where a model "
                               "answers.", param="data_source.source")


def _model(store: Store, settings: Settings, principal: str, request: EvalRunRequest) -> ModelToRun:
    """The model that answers: one Tailor runs for this caller (resolved to its weights now, with
    the caller's rights) or an operator-configured remote model, by name."""
    from tailor.evaluate.backends import Generation

    generation = Generation(max_tokens=request.max_completion_tokens or Generation.max_tokens,
                            temperature=request.temperature if request.temperature is not None else 0.0,
                            top_p=request.top_p if request.top_p is not None else 1.0)
    if generation.max_tokens > MAX_ANSWER_TOKENS:
        raise InvalidInput(f"data_source.sampling_params.max_completion_tokens: at most {MAX_ANSWER_TOKENS}.",
                           param="data_source.sampling_params.max_completion_tokens")
    if request.model in settings.remote_models:
        return ModelToRun(request.model, remote=request.model, generation=generation)
    try:
        target = weights_for(store, settings, principal, request.model)
    except TailorError as error:
        raise InvalidInput(f"data_source.model: {error.message} A run's model is one this server serves: "
                           "a foundation model, your custom or ft: model, or an operator-configured remote "
                           "model; never an address.", param="data_source.model") from None
    return ModelToRun(request.model, target=target, generation=generation)


def _owned_run(session, principal: str, eval_id: str, run_id: str) -> EvalRun:
    row = session.get(EvalRun, run_id.removeprefix("evalrun_"))
    if row is None or row.principal != principal or row.eval_id != eval_id:
        raise NotFound(f"Run {run_id} of eval {eval_id} not found.", param="run_id")
    return row


def get_run(store: Store, principal: str, eval_id: str, run_id: str) -> EvalRun:
    with store.session() as session:
        row = _owned_run(session, principal, eval_id, run_id)
        session.expunge(row)
        return row


# The API's status filter, as job statuses and phases.
STATUS_FILTERS = {"queued": ("InProgress", ("queued", "starting")), "in_progress": ("InProgress", ("running",)),
                  "completed": ("Completed", None), "canceled": ("Stopped", None), "failed": ("Failed", None)}


def list_runs(store: Store, principal: str, eval_id: str, *, after: str | None, limit: int, descending: bool,
              status: str | None) -> Page:
    with store.session() as session:
        _owned_eval(session, principal, eval_id)
        conditions = [EvalRun.eval_id == eval_id, EvalRun.principal == principal]
        if status is not None:
            job_status, phases = STATUS_FILTERS[status]
            conditions.append(EvalRun.status == job_status)
            if phases:
                conditions.append(EvalRun.phase.in_(phases))
        return after_page(session, EvalRun, conditions, after=after.removeprefix("evalrun_") if after else None,
                          descending=descending, limit=limit)


def cancel_run(store: Store, principal: str, eval_id: str, run_id: str) -> EvalRun:
    """A queued run is canceled at once; a running one is asked to stop (its worker ends it)."""
    with store.session() as session:
        row = _owned_run(session, principal, eval_id, run_id)
        if row.status == "InProgress":
            transition(row, "Stopped" if row.phase == "queued" else "Stopping", stop_requested=True)
        elif row.status != "Stopping":
            ended = {"Completed": "completed", "Stopped": "was canceled", "Failed": "failed"}[row.status]
            raise Conflict(f"Run {run_id} {ended}; there is nothing to cancel.", param="run_id")
        session.flush()
        session.expunge(row)
        return row


def delete_run(store: Store, principal: str, eval_id: str, run_id: str) -> str:
    with store.session() as session:
        row = _owned_run(session, principal, eval_id, run_id)
        if row.status not in TERMINAL:
            raise Conflict(f"Run {run_id} is still going; cancel it first.", param="run_id")
        _forget_run(session, row)
        return f"evalrun_{row.id}"


def _forget_run(session, run: EvalRun) -> None:
    session.execute(delete(EvalOutputItem).where(EvalOutputItem.run_id == run.id))
    session.delete(run)
    shutil.rmtree(run.work_dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Output items


def list_output_items(store: Store, principal: str, eval_id: str, run_id: str, *, after: str | None, limit: int,
                      descending: bool, status: str | None) -> Page:
    """A run's items in the order of its rows."""
    with store.session() as session:
        run = _owned_run(session, principal, eval_id, run_id)
        query = select(EvalOutputItem).where(EvalOutputItem.run_id == run.id)
        if status is not None:
            query = query.where(EvalOutputItem.status == status)
        if after is not None:
            anchor = session.scalar(select(EvalOutputItem.datasource_item_id).where(
                EvalOutputItem.run_id == run.id, EvalOutputItem.id == after))
            if anchor is None:
                return Page([], False)
            query = query.where(EvalOutputItem.datasource_item_id < anchor if descending
                                else EvalOutputItem.datasource_item_id > anchor)
        position = EvalOutputItem.datasource_item_id
        rows = list(session.scalars(query.order_by(position.desc() if descending else position).limit(limit + 1)))
        for row in rows:
            session.expunge(row)
        return Page(rows[:limit], len(rows) > limit)


def get_output_item(store: Store, principal: str, eval_id: str, run_id: str, item_id: str) -> EvalOutputItem:
    with store.session() as session:
        run = _owned_run(session, principal, eval_id, run_id)
        row = session.get(EvalOutputItem, item_id)
        if row is None or row.run_id != run.id:
            raise NotFound(f"Output item {item_id} of run {run_id} not found.", param="output_item_id")
        session.expunge(row)
        return row
