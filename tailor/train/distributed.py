"""Training on several devices: one process per device, started by torchrun, speaking
``torch.distributed`` (NCCL between GPUs, gloo on a CPU).

``launch_command`` is how a run becomes N processes: ``python -m torch.distributed.run
--standalone --nproc_per_node N`` around the same module a single-process run is (``tailor train
--processes N`` and the job runner both use it). Inside, every process trains the same loop
(``train/loop.py``) on its share of each batch:

* **data parallel** (``DistributedDataParallel``) when the model, its gradients and its optimizer
  state fit one device: every process holds all of it;
* **fully sharded** (FSDP2, ``fully_shard`` on every decoder layer and the root) when they do not:
  each process holds 1/N of the weights, gradients and AdamW state, and gathers one layer's
  weights at a time. The weights are read once, by the main process; the others build the model
  on the meta device and receive their shards (``shard_from_main``). The optimizer steps on the float32 shards (``train/precision.py``: master
  weights stay float32; on a GPU the gathered weights compute in bfloat16, reductions in float32).

Each global batch is the one a single process would draw (same seed, same order); process r takes
records r, r+N, ... of it in length order, and every process runs the same number of passes
(short shares are padded with one-token records that carry no target, because the sharded
forward pass is a collective). Each pass's summed loss is divided by the *global* batch's target
count, and the reduction sums the processes' gradients, so the update equals one process's over
the whole batch whatever N is (tests/train/test_distributed.py). With one process every function
here is a no-op and nothing is initialised.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from enum import StrEnum

from tailor.data.render import IGNORE_INDEX, Example
from tailor.weights import device


class Parallelism(StrEnum):
    """How several processes share the model: ``auto`` shards only when it does not fit one device."""

    AUTO = "auto"
    DATA_PARALLEL = "data-parallel"
    FULLY_SHARDED = "fully-sharded"


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The process that writes: files, the job's row, the progress bar."""
        return self.rank == 0


def world() -> World:
    """This process's place, from the variables torchrun sets (one process: rank 0 of 1)."""
    return World(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                 int(os.environ.get("LOCAL_RANK", 0)))


def launch_command(processes: int, module_args: list[str]) -> list[str]:
    """The command that runs ``python -m MODULE ARGS`` as ``processes`` processes on this machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
            "-m", *module_args]


def launch_environment(processes: int) -> dict[str, str]:
    """Threads per process: torchrun's default of 1 leaves most of a CPU idle; share the cores."""
    env = dict(os.environ)
    if processes > 1:
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    return env


def start(current: World) -> None:
    """Join the process group (and pin this process's GPU) when there are several processes."""
    if current.size == 1:
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(current.local_rank)
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def stop() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model, current: World, strategy: Parallelism, precision):
    """The model as this process trains it: itself (one process), DDP, or FSDP2-sharded in place."""
    if current.size == 1:
        return model
    import torch

    if strategy == Parallelism.DATA_PARALLEL:
        from torch.nn.parallel import DistributedDataParallel

        ids = [current.local_rank] if torch.cuda.is_available() else None
        return DistributedDataParallel(model, device_ids=ids)
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    policy = MixedPrecisionPolicy()
    if precision.compute is not None:  # gather weights in the compute dtype, reduce in float32
        policy = MixedPrecisionPolicy(param_dtype=getattr(torch, precision.compute), reduce_dtype=torch.float32)
    for block in decoder_layers(model):
        fully_shard(block, mp_policy=policy)
    fully_shard(model, mp_policy=policy)
    return model


def shard_from_main(load, build, current: World, precision):
    """A fully sharded model whose weights are read once, by the main process: it ``load()``s the
    model (on the CPU), the others ``build()`` the same modules on the meta device (no memory);
    every process shards its model, the others allocate their shards, and the main process's
    weights and buffers are sent to every shard (FSDP2's way to load a model no single process
    could hold N copies of). Without it, each of N processes would read the whole model first."""
    import torch
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
    )

    model = load() if current.main else build()
    weights = model.state_dict() if current.main else {}  # whole tensors, held until sent
    model = wrap(model, current, Parallelism.FULLY_SHARDED, precision)
    if not current.main:
        model.to_empty(device=device())
    set_model_state_dict(model, weights, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    del weights
    with torch.no_grad():
        for _, buffer in sorted(model.named_buffers()):  # not in a state dict (e.g. rotary frequencies)
            dist.broadcast(buffer, src=0)
    return model


def save_pretrained(model, directory, current: World) -> None:
    """Save the model as transformers (or PEFT, an adapter) saves it; a sharded model's weights
    are gathered first (every process takes part), and only the main process writes."""
    if current.size == 1 or hasattr(model, "module"):  # one process, or DDP: whole on each
        if current.main:
            unwrap(model).save_pretrained(directory)
        return
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
    )

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if current.main:
        model.save_pretrained(directory, state_dict=state)


def decoder_layers(model) -> list:
    """The repeated blocks FSDP shards one by one: the classes transformers marks as not to be split."""
    names = set(getattr(unwrap(model), "_no_split_modules", None) or [])
    base = getattr(unwrap(model), "get_base_model", lambda: None)()  # a PEFT model's transformers model
    names |= set(getattr(base, "_no_split_modules", None) or [])
    return [module for module in model.modules() if type(module).__name__ in names]


def unwrap(model):
    """The model under a DDP wrapper (FSDP2 wraps in place)."""
    return getattr(model, "module", model)


def share_of(examples: list[Example], current: World, pad_id: int) -> list[Example]:
    """This process's records of a batch: every ``size``-th in length order, padded with
    target-free one-token records so that every process has as many as the first."""
    if current.size == 1:
        return examples
    ordered = sorted(examples, key=lambda example: len(example.input_ids))
    mine = ordered[current.rank :: current.size]
    filler = Example(input_ids=[pad_id], labels=[IGNORE_INDEX])
    return mine + [filler] * (-(-len(ordered) // current.size) - len(mine))


def all_sum(values: list[float], current: World) -> list[float]:
    """The sums over every process of each value (each process's own values with one process)."""
    if current.size == 1:
        return values
    import torch
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64, device=device())
    dist.all_reduce(tensor)
    return tensor.tolist()


def any_process(flag: bool, current: World) -> bool:
    """True on every process when it is true on one (e.g. a stop request, which reaches only the
    process that polls it): all processes leave the loop at the same step."""
    return all_sum([float(flag)], current)[0] > 0


def share_object(value, current: World):
    """The main process's ``value`` on every process (e.g. the scratch folder's path)."""
    if current.size == 1:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(current: World) -> None:
    if current.size > 1:
        import torch.distributed as dist

        dist.barrier()


@contextlib.contextmanager
def gradient_sync(model, current: World, sync: bool):
    """Around one backward pass: reduce gradients across processes only when ``sync`` (the last
    pass of a batch), so accumulation costs one reduction per step, not one per pass."""
    if current.size == 1 or sync:
        if hasattr(model, "set_requires_gradient_sync"):  # FSDP2: turn it back on
            model.set_requires_gradient_sync(True)
        yield
    elif hasattr(model, "no_sync"):  # DDP
        with model.no_sync():
            yield
    else:
        model.set_requires_gradient_sync(False)
        yield
