"""The job model under every API.

A create request reaches the services as one of the *requests* here, whatever dialect it came in:
each API dialect has a pure converter from its wire shape to these (``tailor/api/bedrock/jobs.py``
for Bedrock). The services check and resolve a request — the caller's rights on every URI, the
start weights, every hyperparameter with its default filled in, the grader's snapshot, the models
an evaluation runs — and store the *job spec* that comes out. The worker runs that spec and never
sees a request. ``Fields`` carries the dialect's own names for the fields, so that an error found
while resolving names the field the caller actually wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tailor.catalog import CustomizationType
from tailor.evaluate.spec import CustomMetric, EvaluationSpec, ModelToRun
from tailor.serialized import Serialized
from tailor.store.jobs import Job
from tailor.train.spec import TrainSpec


@dataclass(frozen=True)
class Fields:
    """A dialect's names for the request fields that errors may point at. ``{i}`` is a position."""

    name: str
    model_name: str
    kind: str
    base_model: str
    training_uri: str
    validation_uri: str
    output_uri: str
    grader: str = ""
    dataset_uri: str = ""
    metrics: str = ""
    model: str = ""
    judge: str = ""
    teacher: str = ""  # DISTILLATION: the teacher model's identifier
    teacher_max_tokens: str = ""  # ... and the longest answer it gives
    invocation_logs: str = ""  # training data read from invocation logs (its config's field)


@dataclass(frozen=True)
class CustomizationRequest:
    fields: Fields
    name: str
    model_name: str
    base_model: str  # a foundation model's id, alias or ARN, or one of the caller's custom models
    kind: CustomizationType
    training_uri: str
    output_uri: str
    validation_uris: tuple[str, ...] = ()
    hyperparameters: Mapping[str, object] = field(default_factory=dict)  # as given
    grader: str | None = None  # REINFORCEMENT_FINE_TUNING: a registered grader's ARN
    # ... or an OpenAI grader object (graders/openai/), checked and snapshotted as given
    grader_definition: Mapping | None = None
    role: str = ""
    token: str | None = None  # idempotency: a retry with the same token is the same job
    tags: tuple[tuple[str, str], ...] = ()
    vpc: Mapping | None = None  # accepted and echoed; training runs on this machine
    # The OpenAI door: training_uri and validation_uris are the caller's file ids (services/files.py);
    # what only that door asks for (suffix, integrations, method as given) is echoed back from here.
    openai: Mapping | None = None
    # DISTILLATION: the teacher (any model Tailor serves the caller, or an operator's remote model by
    # name) and the most tokens it answers with.
    teacher: str | None = None
    teacher_max_tokens: int | None = None
    # Training data read from invocation logs instead of training_uri (then empty).
    invocation_logs: InvocationLogsRequest | None = None


@dataclass(frozen=True)
class InvocationLogsRequest:
    """Bedrock's ``trainingDataConfig.invocationLogsConfig``: the logs under ``source_uri`` become the
    training file (``tailor.wire.invocation_logs``), the records ``filters`` keep, with their
    logged answers when ``use_prompt_response``."""

    source_uri: str
    use_prompt_response: bool = False
    filters: Mapping | None = None  # requestMetadataFilters, as given


@dataclass(frozen=True)
class CustomizationJobSpec(Serialized):
    """What a customization job runs (``train``) and where its results go (``output_uri``)."""

    train: TrainSpec
    output_uri: str
    vpc: dict | None = None
    openai: dict | None = None  # CustomizationRequest.openai, with training_file / validation_file ids
    # DISTILLATION: {"teacherModelIdentifier", "maxResponseLengthForInference"} as resolved, echoed.
    distillation: dict | None = None
    # Invocation logs as training data: {"invocationLogSource", "usePromptResponse",
    # "requestMetadataFilters"} as given, and "counts" {files, records, matched, written, skipped}.
    invocation_logs: dict | None = None


@dataclass(frozen=True)
class JobView:
    """A customization job as stored: its row (status, progress, losses) and the spec it runs."""

    row: Job
    spec: CustomizationJobSpec


def view(row: Job) -> JobView:
    return JobView(row, CustomizationJobSpec.from_record(row.spec))


@dataclass(frozen=True)
class DatasetRequest:
    name: str
    task_type: str
    metrics: tuple[str, ...]
    uri: str


@dataclass(frozen=True)
class ModelRequest:
    identifier: str  # a model to run, or (precomputed) the name of a source whose answers the dataset holds
    inference_params: str | None = None  # JSON text: {"inferenceConfig": {...}, "system": ...}
    precomputed: bool = False  # a precomputed inference source: nothing is run, answers are in modelResponses


@dataclass(frozen=True)
class EvaluationRequest:
    fields: Fields
    name: str
    output_uri: str
    datasets: tuple[DatasetRequest, ...]
    models: tuple[ModelRequest, ...]
    judge: str | None = None
    description: str | None = None
    encryption_key: str | None = None
    role: str = ""
    token: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    custom_metrics: tuple[CustomMetric, ...] = ()  # checked in their shape by the dialect's converter
    custom_judge: str | None = None  # the model that rates the custom metrics
    # The dialect's names of the custom metrics' fields, for errors found while resolving ({i}: position).
    custom_metric_field: str = ""
    custom_judge_field: str = ""


@dataclass(frozen=True)
class EvaluationJobSpec(Serialized):
    """What an evaluation job runs and where its results go."""

    evaluation: EvaluationSpec
    output_uri: str
    description: str | None = None
    encryption_key: str | None = None



@dataclass(frozen=True)
class EvalRunRequest:
    """A run of an OpenAI eval (``client.evals.runs.create``), as its converter reads it: the rows
    (inline, or a file of the caller's) and, for a ``completions`` data source, the model that
    answers, how (``input_messages`` as a template or an item reference) and with what sampling."""

    eval_id: str
    name: str | None
    data_source: Mapping  # as given, echoed back (inline rows left out of the echo)
    rows: tuple[Mapping, ...] | None = None  # file_content: {"item": {...}, "sample": {...}?}
    file_id: str | None = None  # or file_id
    model: str | None = None  # completions: a model Tailor serves
    template: tuple[Mapping, ...] | None = None  # {"role", "content"} messages with {{item.x}}
    item_reference: str | None = None  # or "item.FIELD": each row's own messages
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    metadata: Mapping | None = None
    token: str | None = None  # idempotency (a retried create)


# A python, score_model or multi criterion given no pass_threshold passes from this score.
DEFAULT_PASS_THRESHOLD = 0.5


@dataclass(frozen=True)
class EvalRunSpec(Serialized):
    """What an eval run does: grade every row with the eval's testing criteria (as they were when
    the run was created), on samples its ``model`` generates or the rows carry."""

    criteria: tuple[dict, ...]  # the grader objects, each with its pass_threshold
    items_path: str  # the rows, one JSON line each, copied into the run's folder at creation
    model: ModelToRun | None = None  # None: each row brings its sample
    template: tuple[dict, ...] = ()
    item_reference: str | None = None
    seed: int | None = None
