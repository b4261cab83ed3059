"""OpenAI's fine-tuning jobs (``client.fine_tuning.jobs.*``), a pure converter both ways: a create
body (``types/fine_tuning/job_create_params.py``) to the dialect-neutral ``CustomizationRequest``,
and a stored job to the SDK's ``FineTuningJob`` (``types/fine_tuning/fine_tuning_job.py``).

What maps to what:

- ``method.type``: ``supervised`` is FINE_TUNING, ``dpo`` is DPO, ``reinforcement`` is
  REINFORCEMENT_FINE_TUNING with the grader object as given. The deprecated top-level
  ``hyperparameters`` are the supervised method's.
- Hyperparameters by Tailor's names: ``n_epochs`` epochCount, ``batch_size`` batchSize,
  ``learning_rate_multiplier`` learningRateMultiplier, ``beta`` beta, ``eval_interval``
  evalInterval, ``reasoning_effort`` reasoningEffort; ``"auto"`` is the model's default. The job
  object shows the values the run uses. ``compute_multiplier`` and ``eval_samples`` are accepted
  and echoed (the GRPO recipe has no knob they would turn); ``seed`` is the run's seed.
- ``metadata`` is the job's tags (what ``ListTagsForResource`` shows through the Bedrock door).
- ``integrations`` (Weights & Biases) are echoed: the server reaches no outside service.
- Statuses: queued before a worker starts; validating_files while the worker checks the data;
  running; succeeded, failed, cancelled (Bedrock's Stopping and Stopped); pausing, paused.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from tailor.catalog import CustomizationType
from tailor.errors import InvalidFields, show_value
from tailor.jobs.spec import CustomizationRequest, Fields, JobView
from tailor.wire.body_models import BodyModel, fail, validate


def auto_or(kind: type, low: float, high: float | None = None, *, above: bool = False) -> Any:
    """``"auto"`` or a number of ``kind`` from ``low`` (excluded when ``above``) to ``high``: one
    problem in OpenAI's terms, not one per member of a union."""
    wanted = "an integer" if kind is int else "a number"
    bounds = f"greater than {low:g}" if above else f"at least {low:g}"
    shape = f'"auto" or {wanted} {bounds}' + (f" and at most {high:g}" if high is not None else "")

    def check(value: Any) -> Any:
        if value == "auto":
            return value
        number = isinstance(value, int | float) and not isinstance(value, bool) and (
            kind is float or isinstance(value, int))
        if not number or (value <= low if above else value < low) or (high is not None and value > high):
            raise fail(f"must be {shape}; got {show_value(value)}")
        return value

    return Annotated[Any, AfterValidator(check)]


# OpenAI's ranges (its OpenAPI description): the family's own ranges apply after these.
Epochs = auto_or(int, 1, 50)
BatchSize = auto_or(int, 1, 256)
Multiplier = auto_or(float, 0, above=True)
Beta = auto_or(float, 0, 2, above=True)


class SupervisedHyperparameters(BodyModel):
    batch_size: BatchSize | None = None
    learning_rate_multiplier: Multiplier | None = None
    n_epochs: Epochs | None = None


class DpoHyperparameters(SupervisedHyperparameters):
    beta: Beta | None = None


class ReinforcementHyperparameters(SupervisedHyperparameters):
    compute_multiplier: auto_or(float, 0.00001, 10) | None = None
    eval_interval: auto_or(int, 1) | None = None
    eval_samples: auto_or(int, 1) | None = None
    reasoning_effort: Literal["default", "low", "medium", "high"] | None = None


class Supervised(BodyModel):
    hyperparameters: SupervisedHyperparameters | None = None


class Dpo(BodyModel):
    hyperparameters: DpoHyperparameters | None = None


class Reinforcement(BodyModel):
    grader: dict[str, Any]
    hyperparameters: ReinforcementHyperparameters | None = None


class Method(BodyModel):
    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: Supervised | None = None
    dpo: Dpo | None = None
    reinforcement: Reinforcement | None = None


class Wandb(BodyModel):
    project: str
    entity: str | None = None
    name: str | None = None
    tags: list[str] | None = None


class Integration(BodyModel):
    type: Literal["wandb"]
    wandb: Wandb


MetadataKey = Annotated[str, Field(max_length=64)]
MetadataValue = Annotated[str, Field(max_length=512)]


class JobCreate(BodyModel):
    model: Annotated[str, Field(min_length=1)]
    training_file: Annotated[str, Field(min_length=1)]
    validation_file: str | None = None
    hyperparameters: SupervisedHyperparameters | None = None  # deprecated: the supervised method's
    method: Method | None = None
    suffix: Annotated[str, Field(max_length=64)] | None = None
    seed: Annotated[int, Field(ge=0, le=2_147_483_647)] | None = None
    metadata: Annotated[dict[MetadataKey, MetadataValue], Field(max_length=16)] | None = None
    integrations: list[Integration] | None = None


KINDS = {"supervised": CustomizationType.FINE_TUNING, "dpo": CustomizationType.DPO,
         "reinforcement": CustomizationType.REINFORCEMENT_FINE_TUNING}
TAILOR_NAMES = {"n_epochs": "epochCount", "batch_size": "batchSize",
                "learning_rate_multiplier": "learningRateMultiplier", "beta": "beta",
                "eval_interval": "evalInterval", "reasoning_effort": "reasoningEffort"}
OPENAI_NAMES = {tailor: openai for openai, tailor in TAILOR_NAMES.items()}
ECHOED_ONLY = ("compute_multiplier", "eval_samples")

FIELDS = Fields(name="suffix", model_name="suffix", kind="method.type", base_model="model",
                training_uri="training_file", validation_uri="validation_file", output_uri="",
                grader="method.reinforcement.grader")


def read_create(data: Any) -> JobCreate:
    """The create body, checked; one ``InvalidFields`` names every problem."""
    body = validate(JobCreate, data)
    method = body.method
    if method is not None:
        given = {name for name in ("supervised", "dpo", "reinforcement") if getattr(method, name) is not None}
        if given - {method.type}:
            raise InvalidFields([(f"method.{name}", f"given, but method.type is {method.type}")
                                 for name in sorted(given - {method.type})])
        if method.type == "reinforcement" and method.reinforcement is None:
            raise InvalidFields([("method.reinforcement", "required for method.type reinforcement (its grader)")])
        if body.hyperparameters is not None and method.type != "supervised":
            raise InvalidFields([("hyperparameters", f"the deprecated top-level hyperparameters are the supervised "
                                                     f"method's; give method.{method.type}.hyperparameters")])
    return body


def hyperparameter_path(body: JobCreate, tailor_name: str) -> str:
    """Where the caller wrote the hyperparameter Tailor calls ``tailor_name``."""
    name = OPENAI_NAMES.get(tailor_name, tailor_name)
    if body.method is None or (body.hyperparameters is not None and body.method.type == "supervised"):
        return f"hyperparameters.{name}"
    return f"method.{body.method.type}.hyperparameters.{name}"


def customization_request(body: JobCreate, token: str | None) -> CustomizationRequest:
    method_type = body.method.type if body.method else "supervised"
    method = getattr(body.method, method_type) if body.method else None
    given = (method.hyperparameters if method is not None else None) or body.hyperparameters
    values = given.model_dump(exclude_none=True) if given is not None else {}
    hyperparameters = {TAILOR_NAMES[name]: value for name, value in values.items()
                       if name in TAILOR_NAMES and value != "auto" and value != "default"}
    if body.seed is not None:
        hyperparameters["seed"] = body.seed
    if method_type == "supervised":  # strings, as the Bedrock wire and the family tables take them
        hyperparameters = {name: str(value) for name, value in hyperparameters.items()}
    return CustomizationRequest(
        fields=FIELDS, name="", model_name="", base_model=body.model, kind=KINDS[method_type],
        training_uri=body.training_file, output_uri="",
        validation_uris=(body.validation_file,) if body.validation_file else (),
        hyperparameters=hyperparameters,
        grader_definition=body.method.reinforcement.grader if method_type == "reinforcement" else None,
        token=token, tags=tuple((body.metadata or {}).items()),
        openai={"suffix": body.suffix, "method": method_type,
                "echoed": {name: value for name, value in values.items() if name in ECHOED_ONLY},
                "integrations": [integration.model_dump() for integration in body.integrations or []]})


# ---------------------------------------------------------------------------------------------
# The job object

_ENDED = {"Completed": "succeeded", "Failed": "failed", "Stopping": "cancelled", "Stopped": "cancelled",
          "Pausing": "pausing", "Paused": "paused"}


def openai_status(view: JobView) -> str:
    row = view.row
    if row.status in _ENDED:
        return _ENDED[row.status]
    if row.phase == "queued":
        return "queued"
    validating = (row.status_details or {}).get("validationDetails", {}).get("status") == "InProgress"
    return "validating_files" if validating else "running"


def job_object(view: JobView, metadata: dict[str, str], model_name: str | None, now: datetime) -> dict:
    """The SDK's ``FineTuningJob`` for a stored job (``model_name``: its ``ft:`` model, once trained)."""
    row, spec = view.row, view.spec
    train, openai = spec.train, spec.openai or {}
    status = openai_status(view)
    method_type = openai.get("method") or _method_of(train.customization_type)
    hyperparameters = {OPENAI_NAMES[name]: _number(value) for name, value in train.hyperparameters.items()
                       if name in OPENAI_NAMES}
    hyperparameters.update(openai.get("echoed") or {})
    progress = row.progress or {}
    return {
        "object": "fine_tuning.job",
        "id": row.id,
        "model": row.base_model_id,
        "created_at": int(row.created_at.timestamp()),
        "finished_at": int(row.end_time.timestamp()) if row.end_time else None,
        "status": status,
        "fine_tuned_model": model_name,
        "organization_id": row.principal,
        # A job trained on invocation logs names their source, never the converted file on the server.
        "training_file": openai.get("training_file") or (spec.invocation_logs["invocationLogSource"]["s3Uri"]
                                                         if spec.invocation_logs else train.training_uri),
        "validation_file": openai.get("validation_file") or (train.validation_uris[0] if train.validation_uris
                                                             else None),
        "hyperparameters": {name: hyperparameters[name] for name in
                            ("batch_size", "learning_rate_multiplier", "n_epochs") if name in hyperparameters},
        "method": {"type": method_type, method_type: {"hyperparameters": hyperparameters,
                                                      **_grader_of(train, method_type)}},
        "error": _error(view) if status == "failed" else None,
        "result_files": list(progress.get("resultFiles") or []),
        "trained_tokens": progress.get("trainedTokens") if status == "succeeded" else None,
        "estimated_finish": estimated_finish(view, now) if status == "running" else None,
        "integrations": openai.get("integrations") or [],
        "metadata": metadata or None,
        "seed": int(train.hyperparameters.get("seed", 0) or 0),
        "user_provided_suffix": openai.get("suffix"),
    }


def _method_of(kind: CustomizationType) -> str:
    return {kind: name for name, kind in KINDS.items()}.get(kind, "supervised")


def _grader_of(train, method_type: str) -> dict:
    if method_type != "reinforcement" or train.grader is None:
        return {}
    return {"grader": train.grader.definition or {"type": "lambda", "name": train.grader.name}}


def _number(value):
    """A hyperparameter as stored (the Bedrock wire's strings for supervised jobs) as a JSON number."""
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return value
    return value


def _error(view: JobView) -> dict:
    """OpenAI's ``error``: the failure message, with the server's path of a data file (a file's
    bytes are kept under its id) written as the file id the caller knows, and ``param`` the file at
    fault when the message names one."""
    message = view.row.failure_message or "The job failed."
    openai = view.spec.openai or {}
    param = None
    for field in ("training_file", "validation_file"):
        file_id = openai.get(field)
        if file_id and re.search(rf"\S*/{re.escape(file_id)}\b", message):
            message = re.sub(rf"\S*/{re.escape(file_id)}\b", file_id, message)
            param = param or field
    return {"code": "invalid_training_file" if param else "job_failed", "message": message, "param": param}


def estimated_finish(view: JobView, now: datetime) -> int | None:
    """When the steps left will be done at the pace of the steps so far (None before the first)."""
    progress = view.row.progress or {}
    step, total = progress.get("step") or 0, progress.get("totalSteps") or 0
    training = (view.row.status_details or {}).get("trainingDetails") or {}
    if not step or not total or training.get("status") != "InProgress" or not training.get("lastModifiedTime"):
        return None
    started = datetime.fromisoformat(training["lastModifiedTime"])
    elapsed = (now - started).total_seconds()
    return int(now.timestamp() + elapsed / step * (total - step))


def checkpoint_object(job_id: str, checkpoint_model: str, step: int, created_at: int, metrics: dict) -> dict:
    return {"object": "fine_tuning.job.checkpoint", "id": f"ftckpt-{job_id}-{step}", "created_at": created_at,
            "fine_tuned_model_checkpoint": checkpoint_model, "fine_tuning_job_id": job_id,
            "step_number": step, "metrics": {"step": step, **metrics}}
