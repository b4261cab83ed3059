"""The one table of training recipes: which customization types Tailor trains, and with what.

The API (which types a create request may name), the CLI (``tailor train --type``) and the job
worker all read it; ``tests/train/test_recipes.py`` ties it to the API's enum. A recipe is
``run(spec, settings, hooks) -> TrainOutcome``; modules are imported only when a run starts, so
reading the table costs no torch.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from importlib import import_module
from pathlib import Path

from tailor.catalog import CustomizationType
from tailor.errors import InvalidInput, TailorError

RECIPES: dict[CustomizationType, str] = {
    CustomizationType.FINE_TUNING: "tailor.train.sft",
    CustomizationType.CONTINUED_PRE_TRAINING: "tailor.train.cpt",
    CustomizationType.REINFORCEMENT_FINE_TUNING: "tailor.train.rft",
    CustomizationType.DPO: "tailor.train.dpo",
    # The teacher answers the prompts, then the student trains with the supervised recipe.
    CustomizationType.DISTILLATION: "tailor.train.distill",
}
TRAINABLE = frozenset(RECIPES)
# The recipes of the supervised loop (train/loop.py): they train in several processes
# (train/distributed.py) and can pause at a checkpoint; reinforcement fine-tuning and DPO (each
# its own loop) do neither yet.
SUPERVISED = frozenset({CustomizationType.FINE_TUNING, CustomizationType.CONTINUED_PRE_TRAINING})
# Recipes that can pause at a checkpoint and resume from it: the supervised ones, and distillation
# (its student trains in the supervised loop; its teacher's answers, once written, are kept). It
# trains in one process: the teacher's phase is not shared out.
PAUSABLE = SUPERVISED | {CustomizationType.DISTILLATION}


def recipe(kind: CustomizationType):
    """The ``run`` function of ``kind``'s recipe."""
    return import_module(RECIPES[CustomizationType(kind)]).run


def run(spec, settings=None, hooks=None):
    """Train ``spec`` with its recipe."""
    return recipe(spec.customization_type)(spec, settings, hooks)


def launch(spec, settings, processes: int):
    """Train ``spec`` in ``processes`` processes on this machine, one per device (torchrun), and
    wait for them; with one process, right here. The ``TrainOutcome`` the main process published."""
    from tailor import trained
    from tailor.train import distributed
    from tailor.train.contract import TrainOutcome

    if processes == 1:
        return run(spec, settings)
    if spec.customization_type not in SUPERVISED:
        raise InvalidInput(f"{spec.customization_type} trains in one process; leave out --processes.")
    _build_builtin(spec, settings)  # once, here, not in every process at the same time
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "spec.json"
        path.write_text(spec.to_json())
        command = distributed.launch_command(processes, [RECIPES[spec.customization_type], str(path)])
        done = subprocess.run(command, env={**distributed.launch_environment(processes),
                                            "TAILOR_HOME": str(settings.home)})
    if done.returncode != 0:
        raise TailorError(f"Training in {processes} processes failed (exit status {done.returncode}); "
                          "the first error is above.")
    output = Path(spec.output_dir).resolve()
    return TrainOutcome(output, json.loads((output / trained.MANIFEST).read_text()))


def _build_builtin(spec, settings) -> None:
    from tailor import tiny
    from tailor.catalog import resolve_model

    if resolve_model(spec.model, settings).weights.kind == "builtin":
        tiny.tiny_model_dir(settings.models_dir, progress=spec.progress)
