"""How a run uses its devices: the bytes one device holds at a step's peak (``device_memory``)
for N processes, data parallel or fully sharded, with bfloat16 activations on a GPU, and the
``plan`` a run follows: the micro-batch, activation checkpointing and sharding that fit a device's
budget, or what would make it fit.

The constants and the single-device formulas are the run estimate's (``train/estimate.py``); the
devices' memory and number are ``train/devices.py``'s; the create-time estimate that refuses a job
that cannot fit is ``train/preflight.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tailor.train.estimate import (
    ACTIVATION_HIDDEN_FACTOR,
    ACTIVATION_MLP_FACTOR,
    ADAMW_STATES,
    BYTES_PER_PARAMETER,
    LOGITS_FACTOR,
    LORA_TRANSIENT_FACTOR,
    ModelShape,
    TuningMethod,
    _size,
)

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
