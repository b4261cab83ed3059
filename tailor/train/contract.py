"""What a recipe's ``run(spec, settings=None, hooks=None) -> TrainOutcome`` takes besides its
``TrainSpec`` (``train/spec.py``) and what it gives back.

The job worker reports progress and asks to stop through ``Hooks``; the CLI and the worker read
the ``TrainOutcome``. Every recipe (SFT, CPT, RFT) honours the same hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tailor.trained import MODEL_DIR


@dataclass
class Hooks:
    """How a caller watches and steers a run."""

    on_training_start: Callable[[int], None] = lambda total_steps: None
    on_step: Callable[[int, int, float], None] = lambda step, epoch, loss: None
    on_validation: Callable[[int, float], None] = lambda epoch, loss: None
    should_stop: Callable[[], bool] = lambda: False
    should_pause: Callable[[], bool] = lambda: False
    # Tokens of the batch the step just took (all of it, over every process; no padding): the
    # job's throughput (/metrics: tailor_training_tokens_per_second, tailor_training_tokens_total).
    on_tokens: Callable[[int], None] = lambda tokens: None


class StopRequested(Exception):
    """A run ended because ``Hooks.should_stop`` said so; nothing was published."""


class PauseRequested(Exception):
    """A run ended because ``Hooks.should_pause`` said so, after saving a checkpoint of where it
    was; its scratch folder is kept, and the run continues with ``TrainSpec(resume=True)``."""

    def __init__(self, step: int):
        super().__init__(f"training paused at step {step}")
        self.step = step


@dataclass(frozen=True)
class TrainOutcome:
    """The published trained folder (``tailor.trained``) and its manifest."""

    output_dir: Path
    manifest: dict

    @property
    def model_dir(self) -> Path:
        return self.output_dir / MODEL_DIR
