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
reinforcement fine-tuning samples completions and is not estimated yet.

Per device and per process count (``device_memory``): data parallel or fully sharded, bfloat16
activations on a GPU; ``plan`` chooses the micro-batch, activation checkpointing and sharding that
fit a device's budget (``device_budget``, ``processes_for``), or says what would. ``preflight`` is
the cheap estimate the server makes when a job is created (no torch, no weights: the shape from
``config.json`` by arithmetic, ``shape_from_config``), refusing a job that cannot fit.
"""

from __future__ import annotations

import functools
import json
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


def read_config(model_ref, settings):
    """The model's transformers config, without its weights (the base's, for a LoRA custom model)."""
    from transformers import AutoConfig

    from tailor.weights import _from_pretrained, weights_location

    return _from_pretrained(AutoConfig, model_ref, weights_location(model_ref.weights, settings, progress=False))


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

    settings = settings or get_settings()
    kind = CustomizationType(spec.customization_type)
    if kind == CustomizationType.REINFORCEMENT_FINE_TUNING:
        raise InvalidInput("The pre-flight estimate covers FINE_TUNING and CONTINUED_PRE_TRAINING; "
                           "reinforcement fine-tuning is not estimated yet.")
    model_ref, config, tokenizer = prepare(spec, settings)
    train_records, validation_records, _, _ = load_data(spec, model_ref, config, tokenizer, settings)
    examples_for = import_module(RECIPES[kind]).examples_for
    train = examples_for(train_records, tokenizer)
    validation = examples_for(validation_records, tokenizer)
    shape = model_shape(read_config(model_ref, settings), config.tuning_method, config.lora_rank)
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


# ---------------------------------------------------------------------------------------------
# Per device, per process count, and the plan a run follows (issue 14).
#
# The loop keeps float32 master weights, gradients and AdamW's moments on every device it runs
# on; on a GPU it computes in bfloat16 under autocast, so the activations it keeps are bfloat16
# (2 bytes an element; 4 on a CPU) and autocast caches a bfloat16 copy of each trainable weight for
# the step; a LoRA run's frozen base is held in bfloat16 there (train/precision.py). The loss
# upcasts the logits to float32 (transformers' ForCausalLMLoss), so the logits'
# part stays at 4 bytes an element on every device.
#
# With N processes (one per device), data parallel: every device holds the weights, gradients
# and optimizer state, and runs batchSize / N of each batch. Fully sharded (FSDP's full shard):
# weights, gradients and optimizer state are divided by N, and each device gathers one decoder
# layer's full weights at a time (and, in the backward pass, that layer's full gradients before
# they are reduced and scattered).

COMPUTE_BYTES_GPU = 2  # bfloat16 autocast
LOGITS_BYTES = 4  # the loss upcasts the logits to float32
# An effective bfloat16 training rate of one data-centre GPU, assumed (not measured here): about
# a third of a recent GPU's dense peak. Only for the time shown at create time.
DEFAULT_GPU_FLOPS = 100e12
# Data files up to this size are read at create time to bound the sequence length and count the
# tokens; a larger one is not read there (its records' length is bounded by the model's context
# and the family's per-record limit instead).
PREFLIGHT_READ_BYTES_MAX = 16 * 1024**2
CHARACTERS_PER_TOKEN = 3  # without a tokenizer, as the data validator estimates (and AWS's)
TEMPLATE_TOKENS_PER_MESSAGE = 4  # role markers and end of turn, per message, in chat templates
CPT_WINDOW = 1024  # train/cpt.py's MAX_WINDOW: continued pre-training cuts text into such windows
MAX_ADVISED_PROCESSES = 1024


@dataclass(frozen=True)
class DeviceMemory:
    """Bytes one device holds at the peak of a training step, by part."""

    weights: int  # float32 master weights (1/N of them fully sharded); a LoRA base on a GPU: bfloat16
    gradients: int
    optimizer: int
    compute_copies: int  # autocast's bfloat16 copies of the trainable weights (GPU, data parallel)
    gathered: int  # fully sharded: one layer's full weights and gradients, gathered at a time
    activations: int  # for one micro-batch, with or without activation checkpointing

    @property
    def states(self) -> int:
        """What does not depend on the batch."""
        return self.weights + self.gradients + self.optimizer + self.compute_copies + self.gathered

    @property
    def peak(self) -> int:
        return self.states + self.activations


def as_tuning(shape: ModelShape, tuning_method: TuningMethod, lora_rank: int | None = None) -> ModelShape:
    """The same model trained the other way: full, or a LoRA adapter of ``lora_rank``."""
    from dataclasses import replace

    rank = lora_rank or shape.lora_rank
    base_matmul = shape.matmul_parameters - (shape.trainable_parameters if shape.tuning_method == "lora" else 0)
    adapter = rank * shape.adapter_parameters_per_rank
    if tuning_method == "full":
        return replace(shape, tuning_method="full", trainable_parameters=shape.parameters,
                       matmul_parameters=base_matmul, lora_rank=rank)
    return replace(shape, tuning_method="lora", trainable_parameters=adapter,
                   matmul_parameters=base_matmul + adapter, lora_rank=rank)


def _activation_elements(shape: ModelShape, tokens: int, checkpointing: bool) -> tuple[int, int]:
    """(elements kept by the decoder layers, elements of the loss on the logits) for ``tokens``."""
    per_layer = ACTIVATION_HIDDEN_FACTOR * shape.hidden_size + ACTIVATION_MLP_FACTOR * shape.intermediate_size
    if shape.tuning_method == "lora":
        per_layer += LORA_TRANSIENT_FACTOR * shape.linear_outputs_per_layer
    layers = shape.layers * shape.hidden_size + per_layer if checkpointing else shape.layers * per_layer
    return tokens * layers, tokens * LOGITS_FACTOR * shape.vocab_size


def device_memory(shape: ModelShape, micro_batch_size: int, sequence_length: int, *, processes: int = 1,
                  sharded: bool = False, activation_checkpointing: bool = False,
                  activation_bytes: int = BYTES_PER_PARAMETER) -> DeviceMemory:
    """Peak bytes on one of ``processes`` devices, each running micro-batches of
    ``micro_batch_size`` sequences of ``sequence_length`` tokens; ``activation_bytes`` 2 on a GPU
    (bfloat16 autocast), 4 on a CPU. On a CPU with ``activation_bytes`` 4 and one process this is
    ``estimate_memory``'s peak (the constants validated against measured peaks)."""
    processes = max(1, processes)
    sharded = sharded and processes > 1
    layer_elements, logit_elements = _activation_elements(shape, micro_batch_size * sequence_length,
                                                         activation_checkpointing)
    activations = layer_elements * activation_bytes + logit_elements * LOGITS_BYTES
    on_gpu = activation_bytes < BYTES_PER_PARAMETER
    trainable = shape.trainable_parameters
    # On a GPU a LoRA run's frozen base is held in bfloat16 (train/precision.py), its adapter in
    # float32; everything else is float32.
    frozen_bytes = activation_bytes if on_gpu and shape.tuning_method == "lora" else BYTES_PER_PARAMETER
    adapter = trainable * BYTES_PER_PARAMETER if frozen_bytes < BYTES_PER_PARAMETER else 0
    if not sharded:
        return DeviceMemory(
            weights=shape.parameters * frozen_bytes + adapter,
            gradients=trainable * BYTES_PER_PARAMETER,
            optimizer=ADAMW_STATES * trainable * BYTES_PER_PARAMETER,
            compute_copies=trainable * activation_bytes if on_gpu else 0,
            gathered=0,
            activations=activations,
        )
    share = -(-trainable // processes)
    layer_trainable = shape.layer_parameters if shape.tuning_method == "full" else trainable // max(1, shape.layers)
    # FSDP2 gathers a layer's weights in the compute dtype (bfloat16 on a GPU) and reduces its
    # gradients in float32.
    return DeviceMemory(
        weights=-(-shape.parameters // processes) * frozen_bytes + -(-adapter // processes),
        gradients=share * BYTES_PER_PARAMETER,
        optimizer=ADAMW_STATES * share * BYTES_PER_PARAMETER,
        compute_copies=0,
        gathered=shape.layer_parameters * activation_bytes + layer_trainable * BYTES_PER_PARAMETER,
        activations=activations,
    )


@dataclass(frozen=True)
class Plan:
    """How a run trains on its devices: the micro-batch (gradients accumulate over the batch's
    micro-batches), activation checkpointing, data parallel or fully sharded, the peak bytes per
    device that follow, whether that fits the budget, and — when it does not — what would."""

    micro_batch_size: int
    activation_checkpointing: bool
    sharded: bool
    peak_bytes: int
    fits: bool
    advice: tuple[str, ...] = ()


def per_process_batch(batch_size: int, processes: int) -> int:
    """The most sequences one of ``processes`` processes runs of a batch of ``batch_size``."""
    return max(1, -(-batch_size // max(1, processes)))


def plan(shape: ModelShape, batch_size: int, sequence_length: int, budget_bytes: int, processes: int,
         micro_batch_size: int | None = None, activation_checkpointing: bool | None = None, *,
         activation_bytes: int = BYTES_PER_PARAMETER, sharded: bool | None = None) -> Plan:
    """Choose how to train ``shape`` on ``processes`` devices of ``budget_bytes`` each.

    Fully sharded only when the weights, gradients and optimizer state do not fit one device
    under data parallel (and there is more than one process); then the largest micro-batch that
    divides the per-process batch and fits, without activation checkpointing first, then with.
    A given ``micro_batch_size``, ``activation_checkpointing`` or ``sharded`` (the job's
    parallelism, when not "auto") is kept as given. When nothing
    fits: ``fits`` False, the smallest configuration's peak, and advice computed from the same
    formulas (LoRA, checkpointing, more processes, shorter sequences, a smaller micro-batch)."""
    chosen = _choose(shape, batch_size, sequence_length, budget_bytes, processes, micro_batch_size,
                     activation_checkpointing, activation_bytes, sharded)
    if chosen.fits:
        return chosen
    from dataclasses import replace

    return replace(chosen, advice=_advice(shape, batch_size, sequence_length, budget_bytes, max(1, processes),
                                          micro_batch_size, activation_checkpointing, activation_bytes,
                                          chosen.peak_bytes, sharded))


def _choose(shape: ModelShape, batch_size: int, sequence_length: int, budget_bytes: int, processes: int,
            micro_batch_size: int | None, activation_checkpointing: bool | None, activation_bytes: int,
            sharded: bool | None) -> Plan:
    """``plan`` without the advice."""
    processes = max(1, processes)
    local = per_process_batch(batch_size, processes)

    def memory(micro: int, checkpointing: bool, sharded: bool) -> DeviceMemory:
        return device_memory(shape, micro, sequence_length, processes=processes, sharded=sharded,
                             activation_checkpointing=checkpointing, activation_bytes=activation_bytes)

    if processes == 1:
        layouts = [False]  # one process has nothing to shard across
    elif sharded is not None:
        layouts = [sharded]
    elif memory(1, False, False).states > budget_bytes:
        layouts = [True]
    else:
        layouts = [False, True]  # sharded only when no data-parallel configuration fits
    micros = ([micro_batch_size] if micro_batch_size is not None
              else [size for size in range(local, 0, -1) if local % size == 0])
    checkpointings = [activation_checkpointing] if activation_checkpointing is not None else [False, True]
    for sharded in layouts:
        for checkpointing in checkpointings:
            for micro in micros:
                peak = memory(micro, checkpointing, sharded).peak
                if peak <= budget_bytes:
                    return Plan(micro, checkpointing, sharded, peak, True)
    micro, checkpointing = micros[-1], checkpointings[-1]
    return Plan(micro, checkpointing, sharded, memory(micro, checkpointing, sharded).peak, False)


def _advice(shape: ModelShape, batch_size: int, sequence_length: int, budget: int, processes: int,
            micro_batch_size: int | None, activation_checkpointing: bool | None, activation_bytes: int,
            peak: int, sharded: bool | None) -> tuple[str, ...]:
    """What would make a run that does not fit fit, each change alone, by the same arithmetic."""
    def fitting(shape=shape, sequence_length=sequence_length, processes=processes, micro=micro_batch_size,
                checkpointing=activation_checkpointing, layout: bool | None = sharded) -> Plan | None:
        chosen = _choose(shape, batch_size, sequence_length, budget, processes, micro, checkpointing,
                         activation_bytes, layout)
        return chosen if chosen.fits else None

    def how(chosen: Plan, processes: int = processes) -> str:
        parts = [f"peak {_size(chosen.peak_bytes)}"]
        if chosen.activation_checkpointing:
            parts.append("with activation checkpointing")
        if chosen.micro_batch_size < per_process_batch(batch_size, processes):
            parts.append(f"micro-batch {chosen.micro_batch_size}")
        return ", ".join(parts)

    advice = []
    if micro_batch_size is not None and (chosen := fitting(micro=None)):
        advice.append(f"a smaller microBatchSize: {chosen.micro_batch_size} ({how(chosen)})")
    if activation_checkpointing is False and (chosen := fitting(checkpointing=None)):
        advice.append(f"activation checkpointing ({how(chosen)})")
    if shape.tuning_method == "full" and shape.adapter_parameters_per_rank:
        if chosen := fitting(shape=as_tuning(shape, "lora")):
            advice.append(f"LoRA instead of full training: tuningMethod lora, rank {shape.lora_rank} "
                          f"({how(chosen)})")
    if processes > 1 and not sharded and (chosen := fitting(layout=True)):
        advice.append(f"fully sharded training instead of data parallel ({how(chosen)})")
    more = next(((count, chosen) for count in range(processes + 1, MAX_ADVISED_PROCESSES + 1)
                 if (chosen := fitting(processes=count, layout=None))), None)
    if more:
        count, chosen = more
        layout = "fully sharded" if chosen.sharded else "data parallel"
        advice.append(f"{count} processes, one per device, {layout} ({how(chosen, count)}; "
                      "TAILOR_TRAINING_PROCESSES)")
    low, high = 0, sequence_length - 1  # the longest sequence length that fits, if any
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fitting(sequence_length=middle) else (low, middle - 1)
    if low >= 1:
        advice.append(f"shorter sequences: records of at most {low:,} tokens")
    if not advice:
        advice.append(f"a device with more memory: this run needs {_size(peak)} per device")
    return tuple(advice)


# ---------------------------------------------------------------------------------------------
# The devices: their memory and their number.


def _cuda_memories() -> list[int]:
    """Total bytes of each visible CUDA device: from torch if this process has already imported it
    (a worker), else from ``nvidia-smi`` (the API server, which does not load torch); [] without."""
    import sys

    if "torch" in sys.modules:
        import torch

        if not torch.cuda.is_available():
            return []
        return [torch.cuda.get_device_properties(index).total_memory for index in range(torch.cuda.device_count())]
    return list(_nvidia_smi_memories())


@functools.cache
def _nvidia_smi_memories() -> list[int]:
    """Asked once per process: a server's GPUs do not change while it runs."""
    import os
    import shutil
    import subprocess

    if not shutil.which("nvidia-smi") or os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return []
    try:
        result = subprocess.run(["nvidia-smi", "--query-gpu=index,memory.total", "--format=csv,noheader,nounits"],
                                capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return []
    memories = {}
    for line in result.stdout.splitlines():
        index, _, mib = line.partition(",")
        if index.strip().isdigit() and mib.strip().isdigit():
            memories[index.strip()] = int(mib.strip()) * 1024**2
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        return [memories[item.strip()] for item in visible.split(",") if item.strip() in memories]
    return list(memories.values())


def on_gpu(settings) -> bool:
    """Whether training runs on CUDA devices (bfloat16 activations)."""
    return bool(_cuda_memories())


def processes_for(settings) -> int:
    """Processes that train each job: ``training_processes``, else every visible GPU, else 1."""
    if settings.training_processes:
        return settings.training_processes
    return len(_cuda_memories()) or 1


def budget_source(settings) -> str:
    """Where ``device_budget`` comes from, in words for messages."""
    if settings.device_memory_gib:
        return "TAILOR_DEVICE_MEMORY_GIB"
    return "the GPU's memory" if _cuda_memories() else "this machine's available memory"


def device_budget(settings) -> int:
    """Bytes one training device may use: ``device_memory_gib``, else the first GPU's memory, else
    the machine's available RAM shared by the processes that train (all on this one memory)."""
    if settings.device_memory_gib:
        return int(settings.device_memory_gib * GIB)
    if memories := _cuda_memories():
        return memories[0]
    import psutil

    return psutil.virtual_memory().available // processes_for(settings)


# ---------------------------------------------------------------------------------------------
# The create-time estimate: cheap, no torch, no weights, no download.

KNOWN_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3")


def shape_from_config(config: dict, tuning_method: TuningMethod, lora_rank: int = 16) -> ModelShape | None:
    """``model_shape`` from a model's ``config.json`` alone, by arithmetic (no torch): for the
    decoder-only families Tailor trains (``KNOWN_MODEL_TYPES``); None for any other model."""
    text = config.get("text_config") or config
    model_type = text.get("model_type") or config.get("model_type")
    if model_type not in KNOWN_MODEL_TYPES:
        return None
    try:
        hidden, layers = int(text["hidden_size"]), int(text["num_hidden_layers"])
        vocab, heads = int(text["vocab_size"]), int(text["num_attention_heads"])
        intermediate = int(text.get("intermediate_size") or 4 * hidden)
    except (KeyError, TypeError, ValueError):
        return None
    kv_heads = int(text.get("num_key_value_heads") or heads)
    head_dim = int(text.get("head_dim") or hidden // heads)
    q, kv = heads * head_dim, kv_heads * head_dim
    attention_bias = bool(text.get("attention_bias", False))
    mlp_bias = bool(text.get("mlp_bias", False))
    if model_type == "phi3":  # fused projections
        linears = [(hidden, q + 2 * kv, False), (q, hidden, False), (hidden, 2 * intermediate, False),
                   (intermediate, hidden, False)]
    else:
        qkv_bias = attention_bias or model_type == "qwen2"
        linears = [(hidden, q, qkv_bias), (hidden, kv, qkv_bias), (hidden, kv, qkv_bias), (q, hidden, attention_bias),
                   (hidden, intermediate, mlp_bias), (hidden, intermediate, mlp_bias), (intermediate, hidden, mlp_bias)]
    norms = 4 * hidden if model_type in ("gemma2", "gemma3_text") else 2 * hidden
    if model_type in ("qwen3", "gemma3_text"):
        norms += 2 * head_dim  # q_norm, k_norm
    layer = sum(inputs * outputs + (outputs if bias else 0) for inputs, outputs, bias in linears) + norms
    tied = bool(text.get("tie_word_embeddings", config.get("tie_word_embeddings", True)))
    embedding = vocab * hidden
    parameters = embedding + layers * layer + hidden + (0 if tied else embedding)
    per_rank = layers * sum(inputs + outputs for inputs, outputs, _ in linears)
    lora = lora_rank * per_rank
    matmul = parameters - (0 if tied else embedding)
    return ModelShape(
        parameters=parameters,
        trainable_parameters=parameters if tuning_method == "full" else lora,
        matmul_parameters=matmul + (lora if tuning_method == "lora" else 0),
        layers=layers, hidden_size=hidden, intermediate_size=intermediate, vocab_size=vocab,
        linear_outputs_per_layer=sum(outputs for _, outputs, _ in linears),
        tuning_method=tuning_method, layer_parameters=(layers * layer + hidden) // layers,
        adapter_parameters_per_rank=per_rank,
        lora_rank=lora_rank,
    )


def config_json(model, settings) -> dict | None:
    """A resolved model's ``config.json``, if it can be had without building or downloading
    anything: the built-in model's (from its recipe when it is not built yet), a folder's, or a hub
    model's from the local cache; None otherwise."""
    from pathlib import Path

    weights = model.weights
    if weights.kind == "builtin":
        from tailor import tiny

        built = settings.models_dir / f"tailor.tiny-v{tiny.BUILD_VERSION}" / "config.json"
        if built.is_file():
            return json.loads(built.read_text())
        recipe = tiny.RECIPE
        return {"model_type": "llama", "vocab_size": recipe.vocab_size, "hidden_size": recipe.hidden_size,
                "intermediate_size": recipe.intermediate_size, "num_hidden_layers": recipe.num_layers,
                "num_attention_heads": recipe.num_heads, "num_key_value_heads": recipe.num_heads,
                "max_position_embeddings": recipe.max_positions, "tie_word_embeddings": False}
    if weights.kind == "local":
        path = Path(weights.location) / "config.json"
        return json.loads(path.read_text()) if path.is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(weights.location, "config.json")
    except Exception:  # an id the hub library refuses: no estimate, the worker says what is wrong
        return None
    return json.loads(Path(cached).read_text()) if isinstance(cached, str) else None


@dataclass(frozen=True)
class DataSummary:
    """What a data file says about a run's shape, cheaply: the longest record's tokens (estimated
    as characters / 3 plus the template's per message, or None when the file was too big to read
    at create time), its records and its tokens (estimated from its size when not read)."""

    longest: int | None
    records: int | None
    tokens: int


def summarize_data(uri: str, settings, continued_pre_training: bool = False) -> DataSummary | None:
    """Read a data file at create time if it is small enough; None if it cannot be read."""
    from tailor import storage

    try:
        size = storage.size(uri, settings)
        if size > PREFLIGHT_READ_BYTES_MAX:
            return DataSummary(None, None, size // CHARACTERS_PER_TOKEN)
        text = storage.read_bytes(uri, settings).decode("utf-8", errors="replace")
    except Exception:  # the worker's validation reports an unreadable file; the estimate skips it
        return None
    lengths = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            lengths.append(_record_tokens(record))
    if not lengths:
        return None
    longest = max(lengths)
    if continued_pre_training:
        longest = min(longest, CPT_WINDOW)
    return DataSummary(longest, len(lengths), sum(lengths))


def _record_tokens(record: dict) -> int:
    texts, messages = [], 0
    for key, value in record.items():
        if isinstance(value, str):
            texts.append(value)
            messages += key in ("system", "prompt", "completion")
        elif key == "messages" and isinstance(value, list):
            for message in value:
                if isinstance(message, dict):
                    messages += 1
                    content = message.get("content")
                    texts.append(content if isinstance(content, str) else json.dumps(content))
    return sum(len(text) // CHARACTERS_PER_TOKEN + 1 for text in texts) + TEMPLATE_TOKENS_PER_MESSAGE * messages


@dataclass(frozen=True)
class Preflight:
    """A job's estimate at create time: the plan on this server's devices and the time."""

    plan: Plan
    processes: int
    budget_bytes: int
    budget_source: str  # TAILOR_DEVICE_MEMORY_GIB, the GPU's memory, or available RAM
    batch_size: int
    sequence_length: int
    sequence_source: str  # "data" or "context"
    tuning_method: TuningMethod
    parameters: int
    seconds: float

    def describe(self) -> str:
        plan = self.plan
        layout = "fully sharded" if plan.sharded else "data parallel"
        processes = f"{self.processes} process{'es' * (self.processes != 1)}"
        checkpointing = "activation checkpointing" if plan.activation_checkpointing else "no activation checkpointing"
        return (f"Estimated peak memory {_size(plan.peak_bytes)} per device of {_size(self.budget_bytes)} "
                f"({processes}, {layout}, micro-batch {plan.micro_batch_size}, {checkpointing}); "
                f"about {_duration(self.seconds)}.")

    def refusal(self) -> str:
        processes = f"{self.processes} process{'es' * (self.processes != 1)}"
        return (f"This job does not fit: its estimated peak memory is {_size(self.plan.peak_bytes)} per device "
                f"({self.tuning_method} training of {_count(self.parameters)} parameters, batch {self.batch_size}, "
                f"sequences of {self.sequence_length:,} tokens, {processes}), and a device has "
                f"{_size(self.budget_bytes)} ({self.budget_source}). What would make it fit: "
                + "; or ".join(self.plan.advice) + ".")

    def data(self) -> dict:
        plan = self.plan
        return {"peak_bytes": plan.peak_bytes, "budget_bytes": self.budget_bytes, "fits": plan.fits,
                "processes": self.processes, "sharded": plan.sharded, "micro_batch_size": plan.micro_batch_size,
                "activation_checkpointing": plan.activation_checkpointing, "batch_size": self.batch_size,
                "sequence_length": self.sequence_length, "sequence_length_from": self.sequence_source,
                "tuning_method": self.tuning_method, "parameters": self.parameters,
                "seconds": round(self.seconds, 1), "advice": list(plan.advice)}


def preflight(model, config, customization_type, training_uri: str, settings,
              parallelism: str = "auto") -> Preflight | None:
    """The create-time estimate of a supervised job: ``model`` a ``catalog.ResolvedModel``,
    ``config`` its ``hyperparams.TrainConfig``. Reads the model's config.json and, if small, the
    training data; never torch, weights or a download. None when the model's config is not
    available here (a hub model not downloaded yet) or its architecture is not one it knows."""
    kind = CustomizationType(customization_type)
    if kind == CustomizationType.REINFORCEMENT_FINE_TUNING:
        return None
    raw = config_json(model, settings)
    shape = shape_from_config(raw, config.tuning_method, config.lora_rank) if raw else None
    if shape is None:
        return None
    text = raw.get("text_config") or raw
    bounds = [int(text.get("max_position_embeddings") or 0) or None,
              model.family.limits_for(kind).record_tokens_max,
              CPT_WINDOW if kind == CustomizationType.CONTINUED_PRE_TRAINING else None]
    context = min(bound for bound in bounds if bound) if any(bounds) else CPT_WINDOW
    data = summarize_data(training_uri, settings, kind == CustomizationType.CONTINUED_PRE_TRAINING)
    if data is not None and data.longest is not None:
        sequence, source = min(data.longest, context), "data"
    else:
        sequence, source = context, "context"
    batch = min(config.batch_size, data.records) if data and data.records else config.batch_size
    processes, budget = processes_for(settings), device_budget(settings)
    gpu = on_gpu(settings)
    chosen = plan(shape, batch, sequence, budget, processes, config.micro_batch_size,
                  getattr(config, "activation_checkpointing", None),
                  activation_bytes=COMPUTE_BYTES_GPU if gpu else BYTES_PER_PARAMETER,
                  sharded={"data-parallel": False, "fully-sharded": True}.get(parallelism))
    tokens = data.tokens if data else batch * sequence
    flops = (DEFAULT_GPU_FLOPS if gpu else DEFAULT_CPU_FLOPS) * (processes if gpu else 1)
    seconds = estimate_time(shape, tokens, config.epochs,
                            tokens_per_second=default_tokens_per_second(shape, flops)).seconds
    if chosen.activation_checkpointing:
        seconds *= 4 / 3  # the forward pass runs twice: about a third more compute
    return Preflight(plan=chosen, processes=processes, budget_bytes=budget, budget_source=budget_source(settings),
                     batch_size=batch,
                     sequence_length=sequence, sequence_source=source, tuning_method=shape.tuning_method,
                     parameters=shape.parameters, seconds=seconds)


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
