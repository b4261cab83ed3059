"""What one evaluation job does, resolved: its unit of work.

Built by ``tailor.services.evaluations`` from a create request (through its API dialect's
converter), with every model already resolved to the weights that answer — a caller's custom
model is looked up once, at create time, with the caller's rights — or to the name of a remote
model the operator configured (whose address and credentials stay in the server's settings, never
in the job). The job's row stores it as JSON; the worker runs it without reading the request.

A model may also be a *precomputed inference source* (``ModelToRun.precomputed``): its answers are
in the dataset (each line's ``modelResponses``), so nothing is loaded or asked for it. A job's
*custom metrics* (``CustomMetric``) are rated by ``custom_judge`` through Tailor's one grader layer
(``tailor.jobs.evaluation`` converts each to an OpenAI grader definition, ``judge.custom_grader``).
"""

from __future__ import annotations

from dataclasses import dataclass

from tailor.evaluate.backends import Generation
from tailor.serialized import Serialized
from tailor.serve.protocol import Target


@dataclass(frozen=True)
class ModelToRun:
    identifier: str  # as the request named it: labels, output paths, echoes
    target: Target | None = None  # weights Tailor runs itself
    remote: str | None = None  # or the name of an operator-configured remote model
    generation: Generation = Generation()
    inference_params: str | None = None  # the request's inferenceParams text, echoed as given
    precomputed: bool = False  # a precomputed inference source: its answers are in the dataset


@dataclass(frozen=True)
class DatasetTask:
    name: str
    task_type: str
    metrics: tuple[str, ...]
    uri: str


@dataclass(frozen=True)
class RatingScaleItem:
    definition: str  # what the value means, shown to the judge
    value: float | str  # all items of one scale hold numbers, or all hold strings


@dataclass(frozen=True)
class CustomMetric:
    """A metric the caller defined: the judge's ``instructions`` (with ``{{prompt}}``,
    ``{{prediction}}``, ``{{ground_truth}}``) and an optional rating scale."""

    name: str
    instructions: str
    rating_scale: tuple[RatingScaleItem, ...] = ()


@dataclass(frozen=True)
class EvaluationSpec(Serialized):
    datasets: tuple[DatasetTask, ...]
    models: tuple[ModelToRun, ...]
    judge: ModelToRun | None = None
    # The training data of the first model under evaluation that was trained here: the report
    # says which questions it barely covers.
    training_uri: str | None = None
    custom_metrics: tuple[CustomMetric, ...] = ()
    custom_judge: ModelToRun | None = None  # the model that rates the custom metrics
