"""What one evaluation job does, resolved: its unit of work.

Built by ``tailor.services.evaluations`` from a create request (through its API dialect's
converter), with every model already resolved to the weights that answer — a caller's custom
model is looked up once, at create time, with the caller's rights — or to the name of a remote
model the operator configured (whose address and credentials stay in the server's settings, never
in the job). The job's row stores it as JSON; the worker runs it without reading the request.
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


@dataclass(frozen=True)
class DatasetTask:
    name: str
    task_type: str
    metrics: tuple[str, ...]
    uri: str


@dataclass(frozen=True)
class EvaluationSpec(Serialized):
    datasets: tuple[DatasetTask, ...]
    models: tuple[ModelToRun, ...]
    judge: ModelToRun | None = None
    # The training data of the first model under evaluation that was trained here: the report
    # says which questions it barely covers.
    training_uri: str | None = None
