"""The one table of training recipes: which customization types Tailor trains, and with what.

The API (which types a create request may name), the CLI (``tailor train --type``) and the job
worker all read it; ``tests/train/test_recipes.py`` ties it to the API's enum. A recipe is
``run(spec, settings, hooks) -> TrainOutcome``; modules are imported only when a run starts, so
reading the table costs no torch.
"""

from __future__ import annotations

from importlib import import_module

from tailor.catalog import CustomizationType

RECIPES: dict[CustomizationType, str] = {
    CustomizationType.FINE_TUNING: "tailor.train.sft",
    CustomizationType.CONTINUED_PRE_TRAINING: "tailor.train.cpt",
    CustomizationType.REINFORCEMENT_FINE_TUNING: "tailor.train.rft",
}
TRAINABLE = frozenset(RECIPES)


def recipe(kind: CustomizationType):
    """The ``run`` function of ``kind``'s recipe."""
    return import_module(RECIPES[CustomizationType(kind)]).run


def run(spec, settings=None, hooks=None):
    """Train ``spec`` with its recipe."""
    return recipe(spec.customization_type)(spec, settings, hooks)
