"""What one training run does, resolved: the unit of work of a customization job.

Every door builds one: a create request through its API dialect's converter and
``tailor.services.customization`` (which resolves the start weights, fills in the hyperparameters'
defaults and snapshots the grader before the job is queued), and ``tailor train`` on the command
line. The job's row stores it as JSON; the worker reads it back and runs it, never the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tailor.catalog import CustomizationType
from tailor.evaluate.spec import ModelToRun
from tailor.graders.info import GraderInfo
from tailor.serialized import Serialized
from tailor.train.distributed import Parallelism

Hyperparameters = Mapping[str, int | float | str]


@dataclass(frozen=True)
class TrainSpec(Serialized):
    customization_type: CustomizationType
    model: str  # what training loads: a catalog id or alias, a trained output folder, a hub id
    training_uri: str
    output_dir: Path  # where the trained folder is published (atomically)
    validation_uris: tuple[str, ...] = ()
    # Strings as on the Bedrock wire, or typed values (RFT); a job's hold every value, defaults
    # filled in, so what ran is what the API shows.
    hyperparameters: Hyperparameters = field(default_factory=dict)
    progress: bool = True  # draw progress bars on the terminal
    grader: GraderInfo | None = None  # REINFORCEMENT_FINE_TUNING: the grader, as it was at create time
    resume: bool = False  # continue the interrupted run writing to output_dir from its last checkpoint
    # With several processes (train/distributed.py): replicate the model on each, shard it across
    # them, or "auto": shard only when it does not fit one device.
    parallelism: Parallelism = Parallelism.AUTO
    # DISTILLATION (train/distill.py): the teacher that answers the training file's prompts, resolved
    # at create time with the caller's rights (weights Tailor runs, or an operator's remote model),
    # and the most tokens it may answer with. None: the file's answers are used as they are (invocation
    # logs read with usePromptResponse).
    teacher: ModelToRun | None = None
    teacher_max_tokens: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "customization_type", CustomizationType(self.customization_type))
        object.__setattr__(self, "validation_uris", tuple(self.validation_uris))
        object.__setattr__(self, "parallelism", Parallelism(self.parallelism))
