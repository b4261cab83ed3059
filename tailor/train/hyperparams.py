"""Hyperparameters per model family: names, types, ranges, defaults -> one typed ``TrainConfig``.

On the wire (CreateModelCustomizationJob, ``tailor train --hp``) hyperparameters are a map of
strings. ``parse_hyperparameters`` checks every value against its family's table and reports all
problems at once, each naming its field. The tables follow the original service: each family
takes the names, ranges and defaults its fine-tuning documentation gives. The ``tailor`` family
uses Claude 3 Haiku's names with ranges and defaults sized for the models Tailor loads, so that a
default fine-tuning of ``tailor.tiny`` on ~50-100 Q&A pairs memorizes them.

A family names either an absolute ``learningRate`` or a ``learningRateMultiplier``; the multiplier
scales the base learning rate of the weights being trained, for the chosen tuning method
(``catalog.Weights.base_learning_rate``, documented in docs/training.md).

Tailor adds a few names every family accepts (``TAILOR_EXTENSIONS``): how to tune (full weights or
LoRA), the LoRA shape, and the seed.

Reinforcement fine-tuning is different on the wire: ``customizationConfig.rftConfig.hyperParameters``
is a typed structure (JSON numbers and strings, botocore's ``RFTHyperParameters``).
``parse_rft_hyperparameters`` checks it against ``RFT_HYPERPARAMETERS`` (the original's names and
ranges; defaults documented in docs/training.md, since the original publishes none) and returns an
``RftConfig``. It also takes the strings of ``tailor train --hp name=value``, so one function
serves the API and the CLI.

DPO (Tailor's ``CustomizationType.DPO``, OpenAI's ``method.type = "dpo"``) takes the same kind of
values: ``parse_dpo_hyperparameters`` checks them against ``DPO_HYPERPARAMETERS`` (epochCount,
batchSize, learningRateMultiplier and beta, OpenAI's range for beta) and returns a ``DpoConfig``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from tailor.catalog import CustomizationType, ResolvedModel
from tailor.errors import InvalidHyperparameters, InvalidInput


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
# The supervised recipes' own: how much of a batch one forward pass takes. ``batchSize`` stays the
# effective batch (one optimizer step); the loss is normalised over the whole batch's target
# tokens, so the result does not depend on the split (tests/train/test_loop.py).
SUPERVISED_EXTENSIONS: tuple[Hyperparameter, ...] = (
    _int("microBatchSize", 1, 256, None, "Records per forward pass; gradients accumulate over "
         "batchSize / microBatchSize passes (default: the whole batch at once)."),
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
    micro_batch_size: int | None = None  # records per forward pass; None: the whole batch


def table_for(model: ResolvedModel) -> dict[str, Hyperparameter]:
    """The hyperparameters a model accepts, its own ranges applied."""
    if model.family.name not in FAMILY_HYPERPARAMETERS:  # a family for reinforcement fine-tuning only
        supported = ", ".join(model.family.formats)
        raise InvalidInput(f"Family {model.family.name} takes no string hyperparameters: it supports "
                           f"{supported}, whose hyperparameters are typed.")
    table = {p.name: p for p in FAMILY_HYPERPARAMETERS[model.family.name] + TAILOR_EXTENSIONS + SUPERVISED_EXTENSIONS}
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
        return None, f"must be {_kind_name(parameter)}; got {text!r}"
    if parameter.kind is float and not math.isfinite(value):
        return None, f"must be a finite number; got {text!r}"
    return _in_range(parameter, value, text)


def _kind_name(parameter: Hyperparameter) -> str:
    return "an integer" if parameter.kind is int else "a number"


def _in_range(parameter: Hyperparameter, value: int | float, shown: str) -> tuple[object, str | None]:
    low, high = parameter.minimum, parameter.maximum
    if (low is not None and value < low) or (high is not None and value > high):
        if low is not None and high is not None:
            return None, f"must be between {low:g} and {high:g}; got {shown}"
        if low is not None:
            return None, f"must be at least {low:g}; got {shown}"
        return None, f"must be at most {high:g}; got {shown}"
    return value, None


def _parse_all(raw: Mapping[str, object], table: dict[str, Hyperparameter], parse_one,
               owner: str) -> tuple[dict[str, object], dict[str, str]]:
    """Each value of ``raw`` parsed by ``parse_one`` against ``table``: (values, problems by name)."""
    values: dict[str, object] = {}
    problems: dict[str, str] = {}
    for name, raw_value in raw.items():
        parameter = table.get(name)
        if parameter is None:
            problems[name] = f"unknown hyperparameter for {owner} (accepted: {', '.join(table)})"
            continue
        value, problem = parse_one(parameter, raw_value)
        if problem:
            problems[name] = problem
        else:
            values[name] = value
    return values, problems


def parse_hyperparameters(raw: Mapping[str, object], model: ResolvedModel) -> TrainConfig:
    """Validate wire-form hyperparameters against the model's family; all errors at once."""
    table = table_for(model)
    values, problems = _parse_all(raw, table, _parse_one, f"the {model.family.name} family")
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
        micro_batch_size=get("microBatchSize"),
    )


# ---------------------------------------------------------------------------------------------
# Reinforcement fine-tuning: typed values on the wire (botocore's RFTHyperParameters: JSON numbers
# and strings, not the string map of fine-tuning).

REASONING_EFFORTS = ("low", "medium", "high")
# The names of botocore's RFTHyperParameters, in its order: what the API may echo. Tailor's
# extensions (tuningMethod, loraRank, loraAlpha, seed) are accepted too but are not on that wire.
RFT_WIRE_NAMES = ("epochCount", "batchSize", "learningRate", "maxPromptLength",
                  "trainingSamplePerPrompt", "inferenceMaxTokens", "reasoningEffort", "evalInterval")
# The KL penalty's weight (beta) against the base model. Not a hyperparameter of the original:
# beta 0.1 at learning rate 1e-4 was measured stable on tailor.tiny, where no KL term let
# the reward rise while greedy answers collapsed (reward hacking).
KL_COEFFICIENT = 0.1


def _rft_table(
    *, epochs: int, batch_size: int, learning_rate: float, max_prompt_length: int, samples: int,
    inference_max_tokens: int, eval_interval: int, batch_minimum: int = 16,
) -> tuple[Hyperparameter, ...]:
    """The original's names and ranges (botocore), with a family's defaults."""
    return (
        _int("epochCount", 1, 50, epochs, EPOCHS),
        _int("batchSize", batch_minimum, 512, batch_size,
             "Sampled completions per optimizer step; a multiple of trainingSamplePerPrompt, so a "
             "step takes batchSize / trainingSamplePerPrompt prompts."),
        _float("learningRate", 1e-7, 1e-3, learning_rate, "Peak learning rate."),
        _int("maxPromptLength", 1, None, max_prompt_length,
             "Most tokens of a prompt (chat template applied)."),
        _int("trainingSamplePerPrompt", 2, 16, samples,
             "Completions sampled per prompt: the group whose rewards are compared (GRPO)."),
        _int("inferenceMaxTokens", 1, None, inference_max_tokens, "Most tokens a sampled completion has."),
        Hyperparameter("reasoningEffort", str, None, None, None, choices=REASONING_EFFORTS,
                       description="Recorded; changes nothing for models without a reasoning mode."),
        _int("evalInterval", 1, 100, eval_interval, "Optimizer steps between evaluations."),
    )


# The original documents names and ranges for reinforcement fine-tuning but no defaults; these are
# the values of AWS's RLAIF sample, except reasoningEffort (the sample's "high"), left unset:
# Nova's SageMaker recipe turns reasoning off when the field is omitted.
AWS_SAMPLE_RFT = _rft_table(epochs=1, batch_size=16, learning_rate=5e-5, max_prompt_length=2_500,
                            samples=2, inference_max_tokens=500, eval_interval=10)

RFT_HYPERPARAMETERS: dict[str, tuple[Hyperparameter, ...]] = {
    # Sized for tailor.tiny on a CPU: 8 samples per prompt and 2 prompts a step, measured at
    # 0.25-0.5 s a step; learning rate 1e-4 with KL 0.1 was stable there; prompts and answers
    # fit its 1,024-token context. Batch sizes below 16 are allowed for small runs.
    "tailor": _rft_table(epochs=4, batch_size=16, learning_rate=1e-4, max_prompt_length=512, samples=8,
                         inference_max_tokens=64, eval_interval=10, batch_minimum=2),
    "amazon.nova-2": AWS_SAMPLE_RFT,
    "openai.gpt-oss": AWS_SAMPLE_RFT,
    "qwen.qwen3": AWS_SAMPLE_RFT,
}

# The tailor family's defaults for real models (named by folder or hub id) instead of tailor.tiny:
# the AWS sample's lengths, and the usual GRPO learning rates (full ~1e-6; LoRA about 10x that).
REAL_MODEL_RFT_DEFAULTS: dict[str, int] = {"maxPromptLength": 2_500, "inferenceMaxTokens": 500}
REAL_MODEL_RFT_LEARNING_RATES: dict[str, float] = {"full": 1e-6, "lora": 1e-5}


@dataclass(frozen=True)
class RftConfig:
    """Typed, validated reinforcement fine-tuning settings; the RFT recipe reads these fields."""

    epochs: int
    batch_size: int  # sampled completions per optimizer step: whole groups of samples_per_prompt
    learning_rate: float
    max_prompt_length: int  # tokens, chat template applied
    samples_per_prompt: int  # the GRPO group size
    inference_max_tokens: int  # most new tokens per sampled completion
    reasoning_effort: Literal["low", "medium", "high"] | None  # None: not set (the model's own)
    eval_interval: int  # optimizer steps between evaluations
    tuning_method: Literal["full", "lora"]
    lora_rank: int
    lora_alpha: float
    kl_coefficient: float  # beta, KL_COEFFICIENT: not settable
    seed: int
    # The effective values by name (typed; Tailor's extensions included), for manifests; parsing
    # them again gives the same config. The API echoes only RFT_WIRE_NAMES.
    hyperparameters: dict[str, int | float | str]

    @property
    def prompts_per_step(self) -> int:
        return self.batch_size // self.samples_per_prompt


def rft_table_for(model: ResolvedModel, tuning_method: str | None = None) -> dict[str, Hyperparameter]:
    """The RFT hyperparameters a model accepts, with its defaults (which, in the tailor family,
    depend on the weights and the tuning method)."""
    if model.family.name not in RFT_HYPERPARAMETERS:
        supported = ", ".join(model.family.formats) or "none"
        raise InvalidInput(f"Family {model.family.name} does not support "
                           f"{CustomizationType.REINFORCEMENT_FINE_TUNING.value} (supported: {supported}).")
    table = {p.name: p for p in RFT_HYPERPARAMETERS[model.family.name] + TAILOR_EXTENSIONS}
    if model.family.name == "tailor" and not model.weights.test_model:
        method = tuning_method or model.weights.default_tuning
        defaults = {**REAL_MODEL_RFT_DEFAULTS, "learningRate": REAL_MODEL_RFT_LEARNING_RATES[method]}
        for name, default in defaults.items():
            parameter = table[name]
            table[name] = Hyperparameter(parameter.name, parameter.kind, parameter.minimum, parameter.maximum,
                                         default, parameter.choices, parameter.description)
    return table


def _parse_typed(parameter: Hyperparameter, raw: object) -> tuple[object, str | None]:
    """A JSON value as the API gives it; a string (the CLI's) is parsed as for FINE_TUNING."""
    if isinstance(raw, str):
        return _parse_one(parameter, raw)
    shown = json.dumps(raw) if isinstance(raw, (bool, int, float, type(None))) else repr(raw)
    if parameter.kind is str:
        return None, f"must be one of {', '.join(parameter.choices)}; got {shown}"
    # A boolean is not a number (though Python says it is an int); an integer is a float's value.
    wrong = isinstance(raw, bool) or not isinstance(raw, (int, float))
    if wrong or (parameter.kind is int and isinstance(raw, float)):
        return None, f"must be {_kind_name(parameter)}; got {shown}"
    if not math.isfinite(raw):
        return None, f"must be a finite number; got {shown}"
    return _in_range(parameter, float(raw) if parameter.kind is float else raw, shown)


def parse_rft_hyperparameters(raw: Mapping[str, object], model: ResolvedModel) -> RftConfig:
    """Validate RFT hyperparameters (typed JSON values, or strings from the CLI) against the
    model's family; every problem at once, by field. Raises ``InvalidInput`` when the family
    does not support reinforcement fine-tuning."""
    tuning = raw.get("tuningMethod")
    tuning = tuning.strip() if isinstance(tuning, str) else None
    table = rft_table_for(model, tuning if tuning in ("full", "lora") else None)
    values, problems = _parse_all(raw, table, _parse_typed, f"{CustomizationType.REINFORCEMENT_FINE_TUNING.value} "
                                  f"in the {model.family.name} family")

    def get(name: str):
        return values[name] if name in values else table[name].default

    batch, samples = get("batchSize"), get("trainingSamplePerPrompt")
    if "batchSize" not in problems and "trainingSamplePerPrompt" not in problems and batch % samples:
        why = "each optimizer step takes whole groups of one prompt's samples"
        if "batchSize" in values or "trainingSamplePerPrompt" not in values:
            given = "" if "trainingSamplePerPrompt" in values else ", the default"
            problems["batchSize"] = (f"must be a multiple of trainingSamplePerPrompt ({samples}{given}): "
                                     f"{why}; got {batch}")
        else:
            problems["trainingSamplePerPrompt"] = (f"must divide batchSize ({batch}, the default): {why}; "
                                                   f"got {samples}")
    if problems:
        raise InvalidHyperparameters(problems)

    tuning_method = get("tuningMethod") or model.weights.default_tuning
    effective = {name: get(name) for name in table if get(name) is not None}
    effective["tuningMethod"] = tuning_method
    return RftConfig(
        epochs=get("epochCount"),
        batch_size=batch,
        learning_rate=float(get("learningRate")),
        max_prompt_length=get("maxPromptLength"),
        samples_per_prompt=samples,
        inference_max_tokens=get("inferenceMaxTokens"),
        reasoning_effort=get("reasoningEffort"),
        eval_interval=get("evalInterval"),
        tuning_method=tuning_method,
        lora_rank=get("loraRank"),
        lora_alpha=float(get("loraAlpha")),
        kl_coefficient=KL_COEFFICIENT,
        seed=get("seed"),
        hyperparameters=effective,
    )


# ---------------------------------------------------------------------------------------------
# Direct preference optimization (DPO): OpenAI's fine-tuning ``method: {"type": "dpo"}``, whose
# hyperparameters (n_epochs, batch_size, learning_rate_multiplier, beta) the OpenAI door renames
# to these. Values are typed JSON numbers there and strings on ``tailor train --hp``; one parser
# takes both. OpenAI's "auto" means the default.

DPO_BETA_MAXIMUM = 2.0  # OpenAI's range for beta: greater than 0, at most 2
DPO_BETA_DEFAULT = 0.1  # OpenAI's default, and TRL's
# DPO moves a model with a smaller step than supervised fine-tuning: its gradient pushes the log
# ratio of whole answers, and the usual rates for real models are about a tenth of SFT's. The
# multiplier scales this share of the weights' base rate (catalog.Weights.base_learning_rate).
DPO_LEARNING_RATE_SCALE = 0.1

DPO_HYPERPARAMETERS: dict[str, tuple[Hyperparameter, ...]] = {
    "tailor": (
        _int("epochCount", 1, 100, 3, EPOCHS),
        _int("batchSize", 1, 256, 8, "Preference pairs per optimizer step."),
        _float("learningRateMultiplier", 0.01, 10, 1.0,
               f"Scales the model's base learning rate (times {DPO_LEARNING_RATE_SCALE:g} for DPO)."),
        _float("beta", 0, DPO_BETA_MAXIMUM, DPO_BETA_DEFAULT,
               "How far the model may move from the reference (the start weights): higher stays closer."),
    ),
}


@dataclass(frozen=True)
class DpoConfig:
    """Typed, validated DPO settings; the DPO recipe reads these fields."""

    epochs: int
    batch_size: int  # preference pairs per optimizer step
    learning_rate: float
    beta: float
    tuning_method: Literal["full", "lora"]
    lora_rank: int
    lora_alpha: float
    seed: int
    # The effective values by name, typed, every default filled in: what manifests record and the
    # API echoes; parsing them again gives the same config.
    hyperparameters: dict[str, int | float | str]


def dpo_table_for(model: ResolvedModel) -> dict[str, Hyperparameter]:
    """The DPO hyperparameters a model accepts; ``InvalidInput`` when its family has no DPO."""
    if model.family.name not in DPO_HYPERPARAMETERS or CustomizationType.DPO not in model.family.formats:
        supported = ", ".join(model.family.formats) or "none"
        raise InvalidInput(f"Family {model.family.name} does not support {CustomizationType.DPO.value} "
                           f"(supported: {supported}).")
    return {p.name: p for p in DPO_HYPERPARAMETERS[model.family.name] + TAILOR_EXTENSIONS}


def parse_dpo_hyperparameters(given: Mapping[str, object], model: ResolvedModel) -> DpoConfig:
    """Validate DPO hyperparameters (typed JSON values, or strings from the CLI; "auto" for the
    default) against the model's family; every problem at once, by field (``InvalidHyperparameters``,
    an ``InvalidInput``)."""
    table = dpo_table_for(model)
    chosen = {name: value for name, value in given.items()
              if not (isinstance(value, str) and value.strip() == "auto")}
    values, problems = _parse_all(chosen, table, _parse_typed,
                                  f"{CustomizationType.DPO.value} in the {model.family.name} family")
    # The one range open at its low end: 0 passes the table's bounds and is refused here.
    out_of_range = problems.get("beta", "").startswith("must be between")
    if out_of_range or ("beta" in values and values["beta"] <= 0):
        raw = chosen["beta"]
        shown = raw.strip() if isinstance(raw, str) else json.dumps(raw)
        problems["beta"] = f"must be greater than 0 and at most {DPO_BETA_MAXIMUM:g}; got {shown}"
    if problems:
        raise InvalidHyperparameters(problems)

    def get(name: str):
        return values[name] if name in values else table[name].default

    tuning_method = get("tuningMethod") or model.weights.default_tuning
    if "learningRate" in table:
        learning_rate = float(get("learningRate"))
    else:
        base = model.weights.base_learning_rate(tuning_method) * DPO_LEARNING_RATE_SCALE
        learning_rate = base * float(get("learningRateMultiplier"))
    effective = {name: get(name) for name in table if get(name) is not None}
    effective["tuningMethod"] = tuning_method
    return DpoConfig(
        epochs=int(get("epochCount")),
        batch_size=int(get("batchSize")),
        learning_rate=learning_rate,
        beta=float(get("beta")),
        tuning_method=tuning_method,
        lora_rank=int(get("loraRank")),
        lora_alpha=float(get("loraAlpha")),
        seed=int(get("seed")),
        hyperparameters=effective,
    )
