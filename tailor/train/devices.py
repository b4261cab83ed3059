"""The devices a run trains on: their memory and their number. A CUDA device's memory comes from
torch in a process that has loaded it (a worker), else from ``nvidia-smi`` (the API server, which
does not load torch); without a GPU, this machine's available memory.

``train/plan.py`` fits a run to a device's budget; ``train/preflight.py`` (at create time) and the
worker (``train/supervised.py``) ask these for the budget and the process count.
"""

from __future__ import annotations

import functools

from tailor.train.estimate import GIB

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
