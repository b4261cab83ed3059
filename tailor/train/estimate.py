"""A pre-flight estimate of a supervised training run: its peak memory and its time, before any
compute is spent (``tailor train ... --dry-run``; issue 14).

Everything here is read, not trained: the model is resolved (``tailor.catalog.resolve_model``),
its config read with ``AutoConfig`` and the model built on torch's *meta* device to count its
parameters without allocating weights; the data is validated and tokenized exactly as the recipe
would, to know the longest sequence and the token count.

Memory, in the loop's terms (``train/loop.py``: float32 on CPU, AdamW, no gradient checkpointing):

* weights: every parameter, 4 bytes;
* gradients and AdamW's two moments: the trainable parameters (all of them, or the LoRA
  adapter's), 4 bytes each — 12 bytes per trainable parameter;
* activations: what the forward pass keeps for the backward pass, for one batch of
  ``batch_size`` sequences padded to the data's longest sequence (the worst batch). Per token
  and per decoder layer, a Llama-style block keeps about ``ACTIVATION_HIDDEN_FACTOR`` vectors of
  the hidden size and ``ACTIVATION_MLP_FACTOR`` of the MLP's intermediate size; the loss keeps
  ``LOGITS_FACTOR`` float32 copies of the logits (logits, log-softmax, their gradients). With
  activation checkpointing only each layer's input is kept, plus one layer's activations
  recomputed during the backward pass. The factors come from counting the tensors autograd
  saves and were checked against measured peaks (``bench/estimate.py``, docs/performance.md).

Time: tokens (every record's tokens, times the epochs; validation passes count a third, being
forward only) over a throughput in tokens per second. The throughput is either measured here by
``probe_throughput`` (a few optimizer steps of the real model on a batch of the run's shape) or
derived from ``DEFAULT_CPU_FLOPS``, a documented effective floating-point rate of a small CPU,
through the usual 6 (full) or 4 (LoRA: no weight gradients for the frozen base) floating-point
operations per parameter per token.

The estimate covers the supervised recipes (FINE_TUNING, CONTINUED_PRE_TRAINING);
reinforcement fine-tuning samples completions and DPO scores pairs; neither is estimated yet.

Per device and per process count (``device_memory``, ``train/plan.py``): data parallel or fully
sharded, bfloat16 activations on a GPU; ``plan`` chooses the micro-batch, activation checkpointing
and sharding that fit a device's budget (``device_budget``, ``processes_for``: ``train/devices.py``),
or says what would. ``preflight`` (``train/preflight.py``) is the cheap estimate the server makes
when a job is created (no torch, no weights: the shape from ``config.json`` by arithmetic,
``shape_from_config``), refusing a job that cannot fit. The constants and the formatting helpers
(``_size``, ``_count``, ``_duration``) live here, the lowest of these modules; the others import
them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from tailor.catalog import CustomizationType
from tailor.errors import InvalidInput

BYTES_PER_PARAMETER = 4  # float32 on CPU (train/loop.py; weights.load_causal_lm)
ADAMW_STATES = 2  # exp_avg and exp_avg_sq, one float32 each per trainable parameter
# Activations per token per decoder layer (float32 elements) for a Llama block with SDPA
# attention: two RMSNorms, q/k/v and their rotary embeddings, the attention output and its
# projection, residual sums (hidden-sized); the SwiGLU MLP's gate, up, silu(gate) and their
# product (intermediate-sized). Counting what autograd saves gave ~21 hidden sizes per token-layer
# for bench/estimate.py's 10 M shape (intermediate = 2.7 x hidden); 16 h + 4 i (27 h there) rounds
# that up for the step's temporaries, which glibc's allocator keeps in its heap, so they count in
# the peak RSS. Checked against measured peaks within 15 % (docs/performance.md).
ACTIVATION_HIDDEN_FACTOR = 16
ACTIVATION_MLP_FACTOR = 4
# The loss on the logits: the float32 logits, their log-softmax, and during the backward pass the
# log-softmax's gradient and the logits' gradient; about three alive at the peak.
LOGITS_FACTOR = 3
# LoRA: every adapted linear layer also computes its adapter's output, scales it and adds it to
# the frozen layer's output: about two more tensors of the layer's output size per token, which
# are freed within the step but stay in the C allocator's heap, so they count in the peak RSS
# (measured: LoRA's peak exceeded full training's despite far less optimizer state).
LORA_TRANSIENT_FACTOR = 2
# An effective float32 rate for training on a small, shared CPU (2 cores): bench/estimate.py
# measured 11-14 GFLOP/s for the 50 M and 150 M models (docs/performance.md). Machines differ by
# an order of magnitude; ``probe_throughput`` measures the one at hand.
DEFAULT_CPU_FLOPS = 12e9
GIB = 1024**3

TuningMethod = Literal["full", "lora"]


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs to know about a model, read from its config (no weights)."""

    parameters: int  # every parameter (tied embeddings counted once)
    trainable_parameters: int  # all of them (full), or the LoRA adapter's
    matmul_parameters: int  # parameters that take part in matrix products (not the embedding lookup)
    layers: int
    hidden_size: int
    intermediate_size: int
    vocab_size: int
    linear_outputs_per_layer: int  # the out-features of a decoder layer's linear layers, summed
    tuning_method: TuningMethod
    # One decoder layer's parameters (what fully sharded training gathers at a time), and the
    # LoRA adapter's parameters per unit of rank (``rank x (in + out)`` over the adapted linear
    # layers, divided by the rank): what ``as_tuning`` needs to weigh LoRA against full training.
    layer_parameters: int = 0
    adapter_parameters_per_rank: int = 0
    lora_rank: int = 16


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes at the peak of a training step, by part."""

    weights: int
    gradients: int
    optimizer: int
    activations: int  # without activation checkpointing (what Tailor's loop does)
    activations_checkpointed: int  # with activation checkpointing, for comparison

    @property
    def peak(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations

    @property
    def peak_checkpointed(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations_checkpointed


@dataclass(frozen=True)
class TimeEstimate:
    tokens: int  # training tokens over all epochs, plus validation tokens weighted as forward-only
    tokens_per_second: float
    throughput_source: str  # "probe: ..." or "default: ..."

    @property
    def seconds(self) -> float:
        return self.tokens / self.tokens_per_second if self.tokens_per_second else float("inf")


@dataclass(frozen=True)
class RunEstimate:
    """A training run's pre-flight estimate; ``render()`` is the short table the CLI prints."""

    model_id: str
    shape: ModelShape
    batch_size: int
    longest_sequence: int
    training_records: int
    tokens_per_epoch: int
    epochs: int
    steps: int
    memory: MemoryEstimate
    time: TimeEstimate

    def render(self) -> str:
        shape, memory = self.shape, self.memory
        rows = [
            ("model", f"{self.model_id} ({_count(shape.parameters)} parameters, {shape.layers} layers)"),
            ("tuning", f"{shape.tuning_method}: {_count(shape.trainable_parameters)} trainable parameters"),
            ("data", (f"{self.training_records} records, {self.tokens_per_epoch:,} tokens per epoch, "
                     f"longest {self.longest_sequence} tokens")),
            ("steps", f"{self.steps} ({self.epochs} epochs x batches of {self.batch_size})"),
            ("weights", _size(memory.weights)),
            ("gradients", _size(memory.gradients)),
            ("optimizer (AdamW)", _size(memory.optimizer)),
            ("activations", f"{_size(memory.activations)} (checkpointed: {_size(memory.activations_checkpointed)})"),
            ("peak memory", (f"{_size(memory.peak)} (with activation checkpointing: "
                            f"{_size(memory.peak_checkpointed)})")),
            ("time", (f"{_duration(self.time.seconds)} at {self.time.tokens_per_second:,.0f} tokens/s "
                     f"({self.time.throughput_source}); at most, early stopping may end sooner")),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def model_shape(config, tuning_method: TuningMethod, lora_rank: int = 16) -> ModelShape:
    """Count a model's parameters from its transformers config, building it on the meta device
    (no memory is allocated for weights). LoRA's adapter is counted as peft's ``all-linear``
    places it: ``rank x (in + out)`` on every linear layer but the output head."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    parameters = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight
    output = model.get_output_embeddings()
    tied = output is not None and output.weight is embedding
    matmul = parameters - (0 if tied else embedding.numel())
    linears = [module for module in model.modules() if isinstance(module, torch.nn.Linear) and module is not output]
    lora = sum(lora_rank * (module.in_features + module.out_features) for module in linears)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden = text.hidden_size
    outside_layers = embedding.numel() + (0 if tied or output is None else output.weight.numel())
    return ModelShape(
        parameters=parameters,
        trainable_parameters=parameters if tuning_method == "full" else lora,
        matmul_parameters=matmul + (lora if tuning_method == "lora" else 0),
        layers=text.num_hidden_layers,
        hidden_size=hidden,
        intermediate_size=getattr(text, "intermediate_size", None) or 4 * hidden,
        vocab_size=text.vocab_size,
        linear_outputs_per_layer=sum(module.out_features for module in linears) // text.num_hidden_layers,
        tuning_method=tuning_method,
        layer_parameters=(parameters - outside_layers) // text.num_hidden_layers,
        adapter_parameters_per_rank=lora // lora_rank,
        lora_rank=lora_rank,
    )


def estimate_memory(shape: ModelShape, batch_size: int, sequence_length: int) -> MemoryEstimate:
    """Peak bytes of one training step on a batch of ``batch_size`` sequences of ``sequence_length``."""
    tokens = batch_size * sequence_length
    per_layer = ACTIVATION_HIDDEN_FACTOR * shape.hidden_size + ACTIVATION_MLP_FACTOR * shape.intermediate_size
    if shape.tuning_method == "lora":
        per_layer += LORA_TRANSIENT_FACTOR * shape.linear_outputs_per_layer
    logits = LOGITS_FACTOR * shape.vocab_size
    activations = tokens * (shape.layers * per_layer + logits) * BYTES_PER_PARAMETER
    checkpointed = tokens * (shape.layers * shape.hidden_size + per_layer + logits) * BYTES_PER_PARAMETER
    return MemoryEstimate(
        weights=shape.parameters * BYTES_PER_PARAMETER,
        gradients=shape.trainable_parameters * BYTES_PER_PARAMETER,
        optimizer=ADAMW_STATES * shape.trainable_parameters * BYTES_PER_PARAMETER,
        activations=activations,
        activations_checkpointed=checkpointed,
    )


def default_tokens_per_second(shape: ModelShape, flops: float = DEFAULT_CPU_FLOPS) -> float:
    """Tokens/s from an effective floating-point rate: 6 operations per parameter per token for
    full training (forward 2, backward 4), 4 for LoRA (the frozen weights get no gradient)."""
    per_token = (6 if shape.tuning_method == "full" else 4) * shape.matmul_parameters
    return flops / per_token


def estimate_time(shape: ModelShape, training_tokens: int, epochs: int, validation_tokens: int = 0,
                  tokens_per_second: float | None = None) -> TimeEstimate:
    """Seconds for ``epochs`` passes over ``training_tokens`` (and a validation pass after each
    epoch, forward only: a third of a training token's cost)."""
    tokens = epochs * (training_tokens + validation_tokens // 3)
    if tokens_per_second is None:
        rate = default_tokens_per_second(shape)
        source = f"default: {DEFAULT_CPU_FLOPS / 1e9:g} GFLOP/s"
    else:
        rate, source = tokens_per_second, "probe on this machine"
    return TimeEstimate(tokens=tokens, tokens_per_second=rate, throughput_source=source)


def probe_throughput(model_ref, config, settings, batch_size: int, sequence_length: int, steps: int = 3) -> float:
    """Tokens/s of this machine for this run: ``steps`` optimizer steps (after one warm-up step)
    of the real model, full or LoRA as configured, on random tokens of the run's batch shape.
    This loads the weights and computes: the one part of the estimate that does."""
    import torch

    from tailor.train.prepare import load_trainable

    model = load_trainable(model_ref, config, settings, progress=False)
    model.train()
    vocab = model.get_input_embeddings().weight.shape[0]
    input_ids = torch.randint(0, vocab, (batch_size, sequence_length))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-6, weight_decay=0.0)
    started = 0.0
    for step in range(steps + 1):
        if step == 1:
            started = time.perf_counter()
        model(input_ids=input_ids, labels=input_ids).loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return steps * batch_size * sequence_length / (time.perf_counter() - started)


def estimate_run(spec, settings=None, probe_steps: int = 0) -> RunEstimate:
    """Resolve the model, check the hyperparameters, validate and tokenize the data, and estimate
    ``spec``'s peak memory and time. Nothing is trained; with ``probe_steps`` > 0 the weights are
    loaded for a short throughput probe (``probe_throughput``)."""
    from importlib import import_module

    from tailor.settings import get_settings
    from tailor.train.prepare import load_data, prepare
    from tailor.train.recipes import RECIPES
    from tailor.weights import load_config

    settings = settings or get_settings()
    kind = CustomizationType(spec.customization_type)
    if kind in (CustomizationType.REINFORCEMENT_FINE_TUNING, CustomizationType.DPO):
        raise InvalidInput("The pre-flight estimate covers FINE_TUNING and CONTINUED_PRE_TRAINING; "
                           f"{kind.value} is not estimated yet.")
    model_ref, config, tokenizer = prepare(spec, settings)
    train_records, validation_records, _, _ = load_data(spec, model_ref, config, tokenizer, settings)
    examples_for = import_module(RECIPES[kind]).examples_for
    train = examples_for(train_records, tokenizer)
    validation = examples_for(validation_records, tokenizer)
    shape = model_shape(load_config(model_ref, settings), config.tuning_method, config.lora_rank)
    longest = max(len(example.input_ids) for example in train)
    batch_size = min(config.batch_size, len(train))
    tokens_per_epoch = sum(len(example.input_ids) for example in train)
    rate = (probe_throughput(model_ref, config, settings, batch_size, longest, probe_steps)
            if probe_steps > 0 else None)
    steps_per_epoch = -(-len(train) // config.batch_size)
    return RunEstimate(
        model_id=model_ref.model_id,
        shape=shape,
        batch_size=batch_size,
        longest_sequence=longest,
        training_records=len(train),
        tokens_per_epoch=tokens_per_epoch,
        epochs=config.epochs,
        steps=steps_per_epoch * config.epochs,
        memory=estimate_memory(shape, batch_size, longest),
        time=estimate_time(shape, tokens_per_epoch, config.epochs,
                           sum(len(example.input_ids) for example in validation), rate),
    )


def _size(count: int) -> str:
    if count >= GIB:
        return f"{count / GIB:.2f} GiB"
    return f"{count / 1024**2:.1f} MiB" if count < 10 * 1024**2 else f"{count / 1024**2:.0f} MiB"


def _count(count: int) -> str:
    if count >= 1e9:
        return f"{count / 1e9:.2f} B"
    if count >= 1e6:
        return f"{count / 1e6:.1f} M"
    return f"{count / 1e3:.1f} K"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
