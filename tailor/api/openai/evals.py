"""OpenAI's Evals API (``client.evals.*``), a pure converter both ways: create and update bodies
(``types/eval_create_params.py``, ``eval_update_params.py``, ``evals/run_create_params.py``) to
``services.evals.EvalRequest`` and ``jobs.spec.EvalRunRequest``, and stored evals, runs and output
items to the SDK's ``Eval``, ``Run`` and ``OutputItem`` objects.

What maps to what:

- ``data_source_config``: ``custom`` (an ``item_schema``; ``include_sample_schema``) is answered
  with OpenAI's ``schema`` ``{"item": ..., "sample": ...}``. ``logs`` and ``stored_completions``
  select stored completions: refused by the service (this server stores none).
- ``testing_criteria``: OpenAI's grader objects, checked as a reinforcement job's grader is, with
  ``pass_threshold`` (required for ``text_similarity``).
- Run data sources: ``jsonl`` (``file_content`` rows or a ``file_id``; each row brings its
  ``sample``) and ``completions`` (a model Tailor serves answers each row; ``input_messages`` a
  ``template`` with ``{{item.x}}`` or an ``item_reference``; ``sampling_params``
  ``max_completion_tokens``, ``temperature``, ``top_p``, ``seed``). Refused, saying why:
  ``responses`` and ``stored_completions`` sources (nothing stored), ``tools``, a
  ``response_format`` other than text, images. Accepted and ignored: ``reasoning_effort``.
- Run statuses: queued (before its worker starts), in_progress, completed, failed, canceled, and
  canceling between a cancel and its worker's end.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from tailor.errors import InvalidFields
from tailor.jobs.spec import EvalRunRequest, EvalRunSpec
from tailor.services.evals import EvalRequest
from tailor.store.evals import Eval, EvalOutputItem, EvalRun
from tailor.wire.body_models import BodyModel, validate

MetadataKey = Annotated[str, Field(max_length=64)]
MetadataValue = Annotated[str, Field(max_length=512)]
Metadata = Annotated[dict[MetadataKey, MetadataValue], Field(max_length=16)]
Name = Annotated[str, Field(min_length=1, max_length=512)]
MAX_TEMPLATE_MESSAGES = 64


class EvalCreate(BodyModel):
    data_source_config: dict[str, Any]
    testing_criteria: Annotated[list[dict[str, Any]], Field(min_length=1)]
    name: Name | None = None
    metadata: Metadata | None = None


class EvalUpdate(BodyModel):
    name: Name | None = None
    metadata: Metadata | None = None


class CustomConfig(BodyModel):
    type: Literal["custom"]
    item_schema: dict[str, Any]
    include_sample_schema: bool = False


class StoredConfig(BodyModel):
    type: Literal["logs", "stored_completions"]
    metadata: dict[str, Any] | None = None


class RunCreate(BodyModel):
    data_source: dict[str, Any]
    name: Name | None = None
    metadata: Metadata | None = None


class FileContent(BodyModel):
    type: Literal["file_content"]
    content: Annotated[list[dict[str, Any]], Field(min_length=1)]


class FileId(BodyModel):
    type: Literal["file_id"]
    id: Annotated[str, Field(min_length=1, max_length=64)]


class SamplingParams(BodyModel):
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    seed: Annotated[int, Field(ge=0, le=2_147_483_647)] | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None


class JsonlSource(BodyModel):
    type: Literal["jsonl"]
    source: dict[str, Any]


class CompletionsSource(BodyModel):
    type: Literal["completions"]
    source: dict[str, Any]
    model: Annotated[str, Field(min_length=1, max_length=512)]
    input_messages: dict[str, Any] | None = None
    sampling_params: SamplingParams | None = None


def _under(prefix: str, check) -> Any:
    """``check()``, its problems' paths put under ``prefix``."""
    try:
        return check()
    except InvalidFields as error:
        raise InvalidFields([(prefix if path == "body" else f"{prefix}.{path}", problem)
                             for path, problem in error.problems]) from None


# ---------------------------------------------------------------------------------------------
# Requests


def eval_request(body: Any) -> EvalRequest:
    create = validate(EvalCreate, body)
    config = create.data_source_config
    kind = config.get("type")
    if kind == "custom":
        custom = _under("data_source_config", lambda: validate(CustomConfig, config))
        schema, with_sample = custom.item_schema, custom.include_sample_schema
    elif kind in ("logs", "stored_completions"):
        _under("data_source_config", lambda: validate(StoredConfig, config))
        schema, with_sample = None, True
    else:
        raise InvalidFields([("data_source_config.type", "must be \"custom\", \"logs\" or \"stored_completions\"")])
    return EvalRequest(name=create.name or "eval", config_type=kind, item_schema=schema,
                       include_sample_schema=with_sample, criteria=tuple(create.testing_criteria),
                       metadata=create.metadata)


def eval_update(body: Any) -> tuple[str | None, dict | None, bool]:
    """The new name, the new metadata, and whether metadata was given (null clears it)."""
    update = validate(EvalUpdate, body)
    return update.name, update.metadata, "metadata" in (body or {})


def run_request(eval_id: str, body: Any, token: str | None) -> EvalRunRequest:
    create = validate(RunCreate, body)
    source = create.data_source
    kind = source.get("type")
    common = {"eval_id": eval_id, "name": create.name, "data_source": source, "metadata": create.metadata,
              "token": token}
    if kind == "jsonl":
        jsonl = _under("data_source", lambda: validate(JsonlSource, source))
        return EvalRunRequest(**common, **_rows(jsonl.source))
    if kind == "completions":
        completions = _under("data_source", lambda: validate(CompletionsSource, source))
        params = completions.sampling_params or SamplingParams()
        _check_sampling(params)
        template, reference = _input_messages(completions.input_messages)
        return EvalRunRequest(**common, **_rows(completions.source), model=completions.model, template=template,
                              item_reference=reference, max_completion_tokens=params.max_completion_tokens,
                              temperature=params.temperature, top_p=params.top_p, seed=params.seed)
    if kind == "responses":
        raise InvalidFields([("data_source.type", "\"responses\" samples through the Responses API, which this "
                                                  "server does not serve; use \"completions\"")])
    raise InvalidFields([("data_source.type", "must be \"jsonl\" or \"completions\"")])


def _rows(source: dict) -> dict:
    kind = source.get("type")
    if kind == "file_content":
        content = _under("data_source.source", lambda: validate(FileContent, source))
        return {"rows": tuple(content.content)}
    if kind == "file_id":
        return {"file_id": _under("data_source.source", lambda: validate(FileId, source)).id}
    if kind in ("stored_completions", "responses"):
        raise InvalidFields([("data_source.source.type", f"{kind!r} reads stored completions, and this server "
                                                         "stores none; give the rows (file_content or file_id)")])
    raise InvalidFields([("data_source.source.type", "must be \"file_content\" or \"file_id\"")])


def _check_sampling(params: SamplingParams) -> None:
    problems = []
    if params.tools:
        problems.append(("data_source.sampling_params.tools", "tools are not supported: Tailor's models answer "
                                                              "with text only"))
    if params.response_format and params.response_format.get("type") != "text":
        problems.append(("data_source.sampling_params.response_format.type",
                         "only \"text\": Tailor's engine does not constrain answers to a JSON schema"))
    if problems:
        raise InvalidFields(problems)


def _input_messages(given: dict | None) -> tuple[tuple[dict, ...] | None, str | None]:
    """(template messages, None) or (None, item reference)."""
    where = "data_source.input_messages"
    if given is None:
        raise InvalidFields([(where, "required: a template ({\"type\": \"template\", \"template\": [...]}) or "
                                     "an item_reference")])
    kind = given.get("type")
    if kind == "item_reference":
        reference = given.get("item_reference")
        if not isinstance(reference, str) or not reference.startswith("item.") or len(reference) > 256:
            raise InvalidFields([(f"{where}.item_reference", "must name a field of the item, like \"item.messages\"")])
        return None, reference
    if kind != "template":
        raise InvalidFields([(f"{where}.type", "must be \"template\" or \"item_reference\"")])
    template = given.get("template")
    if not isinstance(template, list) or not 1 <= len(template) <= MAX_TEMPLATE_MESSAGES:
        raise InvalidFields([(f"{where}.template", f"must be a list of 1 to {MAX_TEMPLATE_MESSAGES} messages")])
    messages, problems = [], []
    for position, message in enumerate(template):
        path = f"{where}.template[{position}]"
        if not isinstance(message, dict):
            problems.append((path, "must be a message object {role, content}"))
            continue
        if unknown := sorted(set(message) - {"role", "content", "type"}):
            problems.append((f"{path}.{unknown[0]}", "unknown field (a message has role, content and type)"))
        if message.get("role") not in ("user", "assistant", "system", "developer"):
            problems.append((f"{path}.role", "must be \"user\", \"assistant\", \"system\" or \"developer\""))
        text = _text(message.get("content"))
        if text is None:
            problems.append((f"{path}.content", "must be text: a string, or input_text / output_text parts "
                                                "(Tailor's models take text only)"))
        messages.append({"role": message.get("role"), "content": text})
    if problems:
        raise InvalidFields(problems)
    return tuple(messages), None


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else [content]
    texts = [part.get("text") for part in parts if isinstance(part, dict)
             and part.get("type") in ("input_text", "output_text")]
    if not parts or len(texts) != len(parts) or not all(isinstance(text, str) for text in texts):
        return None
    return "".join(texts)


# ---------------------------------------------------------------------------------------------
# Objects


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def eval_object(row: Eval) -> dict:
    return {"object": "eval", "id": row.id, "name": row.name, "created_at": _seconds(row.created_at),
            "data_source_config": row.data_source_config, "testing_criteria": row.testing_criteria,
            "metadata": row.metadata_}


def run_status(row: EvalRun) -> str:
    if row.status == "InProgress":
        return "in_progress" if row.phase == "running" else "queued"
    return {"Completed": "completed", "Stopped": "canceled", "Stopping": "canceling",
            "Failed": "failed"}.get(row.status, row.status.lower())


def run_object(row: EvalRun, report_url: str) -> dict:
    model = EvalRunSpec.from_record(row.spec).model
    error = {"code": "run_failed", "message": row.failure_message or ""} if row.status == "Failed" else None
    return {"object": "eval.run", "id": f"evalrun_{row.id}", "eval_id": row.eval_id, "name": row.name,
            "created_at": _seconds(row.created_at), "status": run_status(row),
            "model": model.identifier if model else None, "data_source": row.data_source, "metadata": row.metadata_,
            "error": error, **row.results, "report_url": report_url}


def output_item_object(row: EvalOutputItem, eval_id: str) -> dict:
    return {"object": "eval.run.output_item", "id": row.id, "created_at": _seconds(row.created_at),
            "eval_id": eval_id, "run_id": f"evalrun_{row.run_id}", "status": row.status,
            "datasource_item_id": row.datasource_item_id, **row.body}
