"""Everything a run reads before it trains, checked at the edge so no compute is spent on a run
that cannot succeed: the model reference, the typed hyperparameters, the tokenizer, the data
(every file validated first, every problem reported at once), and then the trainable model.
Shared by every recipe; the reinforcement recipe reads prompts where the supervised ones read
records, with the same validation and the same data description in the manifest.
"""

from __future__ import annotations

import random

from tailor.catalog import CustomizationType
from tailor.errors import InvalidInput
from tailor.train.hyperparams import TrainConfig
from tailor.train.spec import TrainSpec


def prepare(spec: TrainSpec, settings, parse_hyperparameters=None):
    """Resolve the model, check the hyperparameters (with the recipe's parser; the supervised one
    by default) and load the tokenizer: ``(model_ref, config, tokenizer)``."""
    from tailor.catalog import resolve_model
    from tailor.weights import load_tokenizer

    if parse_hyperparameters is None:
        from tailor.train.hyperparams import parse_hyperparameters

    model_ref = resolve_model(spec.model, settings)
    customization_type = CustomizationType(spec.customization_type)
    if customization_type not in model_ref.customization_types:
        supported = ", ".join(model_ref.customization_types)
        raise InvalidInput(f"{model_ref.model_id} does not support {customization_type}; it supports {supported}.")
    config = parse_hyperparameters(spec.hyperparameters, model_ref)
    tokenizer = load_tokenizer(model_ref, settings, progress=spec.progress)
    return model_ref, config, tokenizer


def validate_files(spec: TrainSpec, model_ref, tokenizer, settings) -> list:
    """One validation report per file (training first); raises with every problem of every file."""
    from tailor.data.datasets import validate_dataset

    reports = validate_dataset(spec.training_uri, list(spec.validation_uris), CustomizationType(spec.customization_type),
                               model_ref, tokenizer=tokenizer, settings=settings,
                               reference_required=reference_required(spec))
    failed = [report for report in reports if not report.ok]
    if failed:
        raise InvalidInput("The data is invalid; nothing was trained.\n" +
                           "\n".join(report.render() for report in failed))
    return reports


def read_records(spec: TrainSpec, uri: str, purpose: str, model_ref, tokenizer, settings) -> list:
    """The typed records of one (validated) file."""
    from tailor.data.datasets import load_records

    return load_records(uri, CustomizationType(spec.customization_type), model_ref, purpose=purpose,
                        tokenizer=tokenizer, settings=settings, reference_required=reference_required(spec))


def reference_required(spec: TrainSpec) -> bool:
    """Whether RFT prompts must carry a reference answer: a Lambda-contract grader reads it; an
    OpenAI grader object reads whatever fields of the item its templates name."""
    return spec.grader is None or spec.grader.kind != "openai"


def describe_data(spec: TrainSpec, training_records: int, reports: list, settings) -> dict:
    """The manifest's ``data``: every file with its record count and sha256."""
    return {"training": _describe_file(spec.training_uri, training_records, settings),
            "validation": [_describe_file(uri, report.record_count, settings)
                           for uri, report in zip(spec.validation_uris, reports[1:])]}


def hold_out(items: list, count: int, seed: int) -> tuple[list, list]:
    """``count`` items drawn with ``seed`` (the same on every run) and the rest: held-out data for
    a run given no validation file."""
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    return shuffled[:count], shuffled[count:]


def load_data(spec: TrainSpec, model_ref, config: TrainConfig, tokenizer, settings):
    """The supervised records: ``(train, validation, data description, notes)``.

    Without a validation file, families that define ``evalPercentage`` hold out that share of
    the training records (seeded) to measure validation loss on.
    """
    reports = validate_files(spec, model_ref, tokenizer, settings)
    train = read_records(spec, spec.training_uri, "training", model_ref, tokenizer, settings)
    validation = [record for uri in spec.validation_uris
                  for record in read_records(spec, uri, "validation", model_ref, tokenizer, settings)]
    data = describe_data(spec, len(train), reports, settings)
    notes: tuple[str, ...] = ()
    if not validation and config.eval_percentage:
        count = max(1, round(len(train) * config.eval_percentage / 100))
        validation, train = hold_out(train, count, config.seed)
        note = (f"No validation file: {count} training records ({config.eval_percentage:g} %, "
                "evalPercentage) were held out to measure validation loss.")
        notes = (note,)
        data["validation_held_out"] = count
    return train, validation, data, notes


def load_cached_data(spec: TrainSpec, model_ref, config: TrainConfig, tokenizer, settings, cached, examples_for):
    """``load_data`` for training files that may not fit in memory: the training file is validated
    streaming and tokenized once into an on-disk cache (``cached(uri, tokenizer, settings)``, e.g.
    ``data/token_cache.py``), which the loop reads batch by batch; validation files are small and
    read as records. ``(train, validation, data description, notes)`` as ``load_data`` gives.

    Without a validation file, ``evalPercentage`` holds out that share of the training *examples*
    (a seeded sample of the cache, read lazily)."""
    reports = validate_files(spec, model_ref, tokenizer, settings)
    data = describe_data(spec, reports[0].record_count, reports, settings)
    train = cached(spec.training_uri, tokenizer, settings, data["training"]["sha256"])
    validation = examples_for([record for uri in spec.validation_uris
                               for record in read_records(spec, uri, "validation", model_ref, tokenizer, settings)],
                              tokenizer)
    notes: tuple[str, ...] = ()
    if not validation and config.eval_percentage:
        count = max(1, round(len(train) * config.eval_percentage / 100))
        held, kept = hold_out(range(len(train)), count, config.seed)
        validation, train = train.select(sorted(held)), train.select(sorted(kept))
        notes = (f"No validation file: {count} training examples ({config.eval_percentage:g} %, evalPercentage) "
                 "were held out to measure validation loss.",)
        data["validation_held_out"] = count
    return train, validation, data, notes


def load_trainable(model_ref, config, settings, progress: bool = True, on=None, activation_checkpointing: bool = False):
    """The model a run trains: the base, wrapped in a new LoRA adapter for LoRA runs.

    A run that continues from a LoRA custom model (``model_ref.adapter``) trains that adapter
    further when it tunes LoRA (its rank is the adapter's), or starts full training from the base
    with the adapter merged in. ``on``: the device to load to (a model to be sharded loads on the
    CPU; sharding moves each process's part to its GPU).
    """
    from tailor.train.precision import precision_for
    from tailor.weights import device, load_causal_lm

    precision = precision_for(config.tuning_method, device().type)
    model = load_causal_lm(model_ref, settings, progress=progress, dtype=precision.torch_dtype(), on=on)
    return _made_trainable(model, model_ref, config, activation_checkpointing)


def trainable_structure(model_ref, config, settings, activation_checkpointing: bool = False):
    """``load_trainable``'s model without its weights, on torch's meta device (no memory): what the
    processes of a sharded run other than the main one build, before the main process's weights
    reach their shards (``distributed.shard_from_main``)."""
    import torch
    from transformers import AutoModelForCausalLM

    from tailor.train.precision import precision_for
    from tailor.weights import attention_options, device, load_config

    precision = precision_for(config.tuning_method, device().type)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(load_config(model_ref, settings), dtype=precision.torch_dtype(),
                                                 **attention_options())
        return _made_trainable(model, model_ref, config, activation_checkpointing)


def _made_trainable(model, model_ref, config, activation_checkpointing: bool):
    if activation_checkpointing:  # recompute each layer's activations in the backward pass
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if model_ref.adapter:
        from peft import PeftModel

        if config.tuning_method == "lora":
            return PeftModel.from_pretrained(model, model_ref.adapter, is_trainable=True)
        return PeftModel.from_pretrained(model, model_ref.adapter).merge_and_unload()
    if config.tuning_method == "lora":
        return with_lora(model, config, model_ref.lora_target_modules)
    return model


def with_lora(model, config, target_modules: str | tuple[str, ...] = "all-linear"):
    """Wrap the model with a LoRA adapter on ``target_modules`` (every linear layer of its blocks,
    unless the model's table entry says otherwise), initialised from the run's seed (so a run, and
    each of its processes, starts from the same adapter)."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(config.seed)

    lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=0.0,
                      target_modules=target_modules if isinstance(target_modules, str) else list(target_modules),
                      task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def _describe_file(uri: str, records: int, settings) -> dict:
    from tailor.storage import local_path, sha256_of

    return {"uri": uri, "records": records, "sha256": sha256_of(local_path(uri, settings))}
