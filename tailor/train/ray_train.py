"""Training in several processes on a Ray cluster: Ray Train's ``TorchTrainer`` starts them.

Under the ray executor a job trained by N processes is one Ray job whose driver (the job's
worker, ``jobs/worker.py``) calls ``fit``: ``TorchTrainer`` places N Ray Train workers, each
holding one process's resources (a CPU, its GPUs, the estimate's memory), on any nodes that have
them, joins them in one ``torch.distributed`` group (gloo on CPUs, NCCL on GPUs) and sets RANK,
WORLD_SIZE and LOCAL_RANK as torchrun would — so every worker runs the *same* per-process loop a
torchrun process runs (``train/distributed.py`` finds the group already made and uses it).

Ray Train retries nothing here (``max_failures=0``): a lost worker fails the Ray job, and the
job runner resumes the job from its checkpoint like any lost worker.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def fit(loop: Callable[[], None], workers: int, storage: Path, name: str, *, memory_bytes: int = 0,
        gpus: int = 0) -> None:
    """Run ``loop`` in ``workers`` Ray Train workers as one distributed run; raises when a worker
    failed (its error)."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    resources: dict[str, float] = {"CPU": 1}
    if memory_bytes:
        resources["memory"] = memory_bytes
    if gpus:
        resources["GPU"] = gpus
    trainer = TorchTrainer(
        lambda: loop(),
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=gpus > 0, resources_per_worker=resources),
        torch_config=TorchConfig(backend="nccl" if gpus else "gloo"),
        # Ray Train's own files (its run's state) beside the job's: storage every node shares.
        run_config=RunConfig(name=name, storage_path=str(storage), failure_config=FailureConfig(max_failures=0)),
    )
    trainer.fit()
