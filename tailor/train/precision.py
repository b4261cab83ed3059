"""Which dtypes a training run holds its weights in and computes in.

Updates are applied to float32 master weights with float32 optimizer state, always: AdamW's small
steps vanish when added to bfloat16 weights (bfloat16 keeps 8 bits of mantissa, so an update below
1/256 of a weight is rounded away), which loses updates and quality on real models. On a CUDA
device the forward and backward passes run in bfloat16 under autocast (its tensor cores' speed;
activations half the size); on a CPU everything stays float32, measured faster there for the small
models Tailor trains on CPUs (docs/performance.md). A LoRA run keeps its frozen base in the compute
dtype — it is never updated — and its adapter in float32 (peft's ``autocast_adapter_dtype``).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Literal

DType = Literal["float32", "bfloat16"]


@dataclass(frozen=True)
class Precision:
    weights: DType  # what the model loads in (for LoRA: the frozen base)
    compute: DType | None  # autocast's dtype for forward and backward; None: no autocast

    def torch_dtype(self):
        import torch

        return getattr(torch, self.weights)


def precision_for(tuning_method: str, device_type: str) -> Precision:
    """The precision of a run on ``device_type`` ("cpu", "cuda")."""
    if device_type != "cuda":
        return Precision("float32", None)
    return Precision("bfloat16" if tuning_method == "lora" else "float32", "bfloat16")


def autocast(precision: Precision, device_type: str):
    """The context a forward (and its backward) runs in."""
    if precision.compute is None:
        return nullcontext()
    import torch

    return torch.autocast(device_type=device_type, dtype=getattr(torch, precision.compute))
