"""Checkpoints of a supervised run, for an exact resume after the process dies (OOM, reboot,
kill -9): the trainable weights (the adapter, for LoRA), the optimizer and scheduler, the random
states, where in the data the run was, and what it had measured so far.

They live in the run's scratch folder (``checkpoints/step-NNNNNNNN``), each written to a temporary
name and renamed into place, so a checkpoint is whole or absent; the newest ``keep`` are kept. A
resumed run replays nothing it did not lose: batches are drawn again from the random state the
epoch started with and the ones already done are skipped, so an interrupted and resumed run ends
with the weights an uninterrupted one has (tests/train/test_checkpoints.py).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

FOLDER = Path("checkpoints")
STATE = "state.pt"


@dataclass(frozen=True)
class Checkpoints:
    folder: Path  # the run's scratch / FOLDER
    every_steps: int  # 0: at epoch ends only
    keep: int = 2

    def due(self, steps_done: int) -> bool:
        return self.every_steps > 0 and steps_done % self.every_steps == 0

    def save(self, state: dict) -> None:
        import torch

        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.folder / f"step-{state['steps']:08d}"
        temporary = self.folder / f".{final.name}.{os.getpid()}"
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir()
        torch.save(state, temporary / STATE)
        shutil.rmtree(final, ignore_errors=True)  # the same step saved again (an epoch's end)
        os.rename(temporary, final)
        for old in sorted(self.folder.glob("step-*"))[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)

    def latest(self) -> dict | None:
        """The newest whole checkpoint's state, or None."""
        import torch

        saved = sorted(self.folder.glob("step-*"))
        if not saved:
            return None
        # weights_only: tensors and plain values only, never code to run, even from a folder we wrote.
        return torch.load(saved[-1] / STATE, weights_only=True)


def last_saved(scratch: Path | None) -> int | None:
    """The step of the newest checkpoint in a run's scratch folder; None when it has none."""
    saved = sorted((scratch / FOLDER).glob("step-*")) if scratch else []
    return int(saved[-1].name.removeprefix("step-")) if saved else None


# torch's distributed state-dict API gives one format whether the model is plain, DDP-wrapped or
# FSDP-sharded: whole tensors keyed by parameter name, on the CPU, on the main process (a
# collective: every process calls it), and puts them back the same way.


def _full(**options):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **options)


def model_state(model) -> dict:
    """The weights training changes (all of them, or a LoRA adapter's), whole, on the CPU."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    names = trainable_names(model)
    state = get_model_state_dict(model, options=_full(cpu_offload=True))
    return {name: tensor for name, tensor in state.items() if name in names}


def optimizer_state(model, optimizer) -> dict:
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=_full(cpu_offload=True))


def load_training_state(model, optimizer, state: dict) -> None:
    """Put a checkpoint's weights and optimizer state back (every process reads the same file)."""
    from torch.distributed.checkpoint.state_dict import (
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    missing = set(state["model"]) - trainable_names(model)
    if missing:
        raise ValueError(f"the checkpoint does not fit this model (e.g. {sorted(missing)[0]})")
    set_model_state_dict(model, state["model"], options=_full(strict=False))
    set_optimizer_state_dict(model, optimizer, state["optimizer"], options=_full())


def trainable_names(model) -> set[str]:
    from tailor.train.distributed import unwrap

    return {name for name, parameter in unwrap(model).named_parameters() if parameter.requires_grad}
