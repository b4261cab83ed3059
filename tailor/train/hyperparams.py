"""Hyperparameters per model family: names, types, ranges, defaults -> one typed ``TrainConfig``.

On the wire (CreateModelCustomizationJob, ``tailor train --hp``) hyperparameters are a map of
strings. ``parse_hyperparameters`` checks every value against its family's table and reports all
problems at once, each naming its field. The tables follow the original service (SPEC §2.1);
the ``tailor`` family uses Claude 3 Haiku's names with ranges and defaults sized for the models
Tailor loads, so that a default fine-tuning of ``tailor.tiny`` on ~50-100 Q&A pairs memorizes them.

A family names either an absolute ``learningRate`` or a ``learningRateMultiplier``; the multiplier
scales the base learning rate of the weights being trained, for the chosen tuning method
(``catalog.Weights.base_learning_rate``, documented in docs/training.md).

Tailor adds a few names every family accepts (``TAILOR_EXTENSIONS``): how to tune (full weights or
LoRA), the LoRA shape, and the seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from tailor.catalog import ResolvedModel
from tailor.errors import InvalidHyperparameters


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    kind: type  # int, float or str
    minimum: float | None
    maximum: float | None
    default: int | float | str | None
    choices: tuple[str, ...] = ()
    description: str = ""


def _int(name, minimum, maximum, default, description=""):
    return Hyperparameter(name, int, minimum, maximum, default, description=description)


def _float(name, minimum, maximum, default, description=""):
    return Hyperparameter(name, float, minimum, maximum, default, description=description)


EPOCHS = "Passes over the training data."
BATCH = "Records per optimizer step."
THRESHOLD = "Smallest drop in validation loss that counts as an improvement."
PATIENCE = "Evaluations in a row without improvement before training stops."

FAMILY_HYPERPARAMETERS: dict[str, tuple[Hyperparameter, ...]] = {
    "tailor": (
        _int("epochCount", 1, 100, 25, EPOCHS),
        _int("batchSize", 1, 256, 8, BATCH),
        _float("learningRateMultiplier", 0.01, 10, 1.0, "Scales the model's base learning rate."),
        # 0.01: on small models the validation loss keeps creeping down by ~0.001 an epoch long
        # after the answers are learned, so Haiku's 0.001 would never stop a run.
        _float("earlyStoppingThreshold", 0, 0.1, 0.01, THRESHOLD),
        _int("earlyStoppingPatience", 1, 10, 2, PATIENCE),
    ),
    "anthropic.claude-3-haiku": (
        _int("epochCount", 1, 10, 2, EPOCHS),
        _int("batchSize", 4, 256, 32, BATCH),
        _float("learningRateMultiplier", 0.1, 2, 1.0, "Scales the model's base learning rate."),
        _float("earlyStoppingThreshold", 0, 0.1, 0.001, THRESHOLD),
        _int("earlyStoppingPatience", 1, 10, 2, PATIENCE),
    ),
    "cohere.command": (
        _int("epochCount", 1, 100, 1, EPOCHS),
        _int("batchSize", 8, 32, 8, BATCH),
        _float("learningRate", 5e-6, 0.1, 1e-5),
        _float("earlyStoppingThreshold", 0, 0.1, 0.01, THRESHOLD),
        _int("earlyStoppingPatience", 1, 10, 6, PATIENCE),
        _float("evalPercentage", 5, 50, 20, "Percent of training data held out when no validation set is given."),
    ),
    "meta.llama": (
        _int("epochCount", 1, 10, 5, EPOCHS),
        _int("batchSize", 1, 1, 1, BATCH),
        _float("learningRate", 5e-6, 0.1, 1e-4),
    ),
    "amazon.titan-text": (
        _int("epochCount", 1, 10, 5, EPOCHS),
        _int("batchSize", 1, 64, 1, BATCH),
        _float("learningRate", 0.0, 1.0, 1e-5),
        _int("learningRateWarmupSteps", 0, 250, 5),
    ),
    "amazon.titan-text-premier": (
        _int("epochCount", 1, 5, 2, EPOCHS),
        _int("batchSize", 1, 1, 1, BATCH),
        _float("learningRate", 1e-7, 1e-5, 1e-6),
        _int("learningRateWarmupSteps", 0, 20, 5),
    ),
}

# Narrower ranges for single models inside a family (Command takes only batch size 8).
MODEL_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "cohere.command-text-v14:7:4k": {"batchSize": (8, 8)},
}

TAILOR_EXTENSIONS: tuple[Hyperparameter, ...] = (
    Hyperparameter("tuningMethod", str, None, None, None, choices=("full", "lora"),
                   description="Train all weights, or a LoRA adapter (default: the model's)."),
    _int("loraRank", 1, 256, 16, "LoRA rank r."),
    _float("loraAlpha", 1, 1024, 32, "LoRA scaling alpha (the update is scaled by alpha / r)."),
    _int("seed", 0, 2**31 - 1, 42, "Seed for initialization, shuffling and dropout."),
)


@dataclass(frozen=True)
class TrainConfig:
    """Typed, validated training settings; recipes read these fields and nothing else."""

    epochs: int
    batch_size: int
    learning_rate: float
    warmup_steps: int | None  # None: a short default warm-up (5 % of the steps)
    early_stopping_threshold: float | None  # None: this family has no early stopping
    early_stopping_patience: int | None
    eval_percentage: float | None  # share held out when no validation set is given
    tuning_method: Literal["full", "lora"]
    lora_rank: int
    lora_alpha: float
    seed: int
    hyperparameters: dict[str, str]  # the effective values, as strings, for manifests and the API


def table_for(model: ResolvedModel) -> dict[str, Hyperparameter]:
    """The hyperparameters a model accepts, its own ranges applied."""
    table = {p.name: p for p in FAMILY_HYPERPARAMETERS[model.family.name] + TAILOR_EXTENSIONS}
    for name, (low, high) in MODEL_RANGES.get(model.model_id, {}).items():
        parameter = table[name]
        table[name] = Hyperparameter(parameter.name, parameter.kind, low, high, parameter.default,
                                     parameter.choices, parameter.description)
    return table


def _parse_one(parameter: Hyperparameter, raw: object) -> tuple[object, str | None]:
    text = str(raw).strip()
    if parameter.kind is str:
        if text not in parameter.choices:
            return None, f"must be one of {', '.join(parameter.choices)}; got {text!r}"
        return text, None
    try:
        value = parameter.kind(text) if parameter.kind is float else int(text, 10)
    except ValueError:
        kind = "an integer" if parameter.kind is int else "a number"
        return None, f"must be {kind}; got {text!r}"
    if parameter.kind is float and not math.isfinite(value):
        return None, f"must be a finite number; got {text!r}"
    if (parameter.minimum is not None and value < parameter.minimum) or (
        parameter.maximum is not None and value > parameter.maximum
    ):
        return None, f"must be between {parameter.minimum:g} and {parameter.maximum:g}; got {text}"
    return value, None


def parse_hyperparameters(raw: Mapping[str, object], model: ResolvedModel) -> TrainConfig:
    """Validate wire-form hyperparameters against the model's family; all errors at once."""
    table = table_for(model)
    problems: dict[str, str] = {}
    values: dict[str, object] = {}
    for name, raw_value in raw.items():
        parameter = table.get(name)
        if parameter is None:
            accepted = ", ".join(table)
            problems[name] = (f"unknown hyperparameter for the {model.family.name} family "
                              f"(accepted: {accepted})")
            continue
        value, problem = _parse_one(parameter, raw_value)
        if problem:
            problems[name] = problem
        else:
            values[name] = value
    if problems:
        raise InvalidHyperparameters(problems)

    def get(name: str):
        if name in values:
            return values[name]
        return table[name].default if name in table else None

    tuning_method = get("tuningMethod") or model.weights.default_tuning
    if "learningRate" in table:
        learning_rate = float(get("learningRate"))
    else:
        base = model.weights.base_learning_rate(tuning_method)
        learning_rate = base * float(get("learningRateMultiplier"))
    effective = {name: str(get(name)) for name in table if get(name) is not None}
    effective["tuningMethod"] = tuning_method
    return TrainConfig(
        epochs=int(get("epochCount")),
        batch_size=int(get("batchSize")),
        learning_rate=learning_rate,
        warmup_steps=get("learningRateWarmupSteps"),
        early_stopping_threshold=get("earlyStoppingThreshold"),
        early_stopping_patience=get("earlyStoppingPatience"),
        eval_percentage=get("evalPercentage"),
        tuning_method=tuning_method,
        lora_rank=int(get("loraRank")),
        lora_alpha=float(get("loraAlpha")),
        seed=int(get("seed")),
        hyperparameters=effective,
    )
