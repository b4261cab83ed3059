"""One job, run to its end in a process of its own: ``python -m tailor.jobs.worker KIND ID``.

The runner starts this process in a new session, so a crash, an OOM or a server killed with
SIGKILL never takes a job down with it, nor the other way round. The worker reads the job's spec
(never its request), runs it — ``tailor.jobs.customization`` trains, ``tailor.jobs.evaluation``
evaluates, ``tailor.jobs.eval_run`` runs an OpenAI eval — and writes every change straight to the
database, ending in Completed, Failed with a reason, or Stopped after SIGTERM (``tailor.jobs.ending``).

Under the ray executor the same command is a Ray job's entrypoint (``jobs/executors/ray.py``); a
job trained there by several processes runs its loop in Ray Train's workers (``run_on_ray_train``)
where a local one would run under torchrun.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from importlib import import_module
from pathlib import Path

from tailor.jobs.ending import Stop, stopping
from tailor.jobs.executors.ray import (
    RAY_TRAIN_GPUS,
    RAY_TRAIN_MEMORY,
    RAY_TRAIN_WORKERS,
)
from tailor.jobs.runner import WORKERS
from tailor.settings import Settings, get_settings
from tailor.store.db import open_store

# The runner's KIND argument -> the module whose ``run_job`` runs that kind (imported only then:
# training pulls in torch, evaluation an engine).
KINDS = {"customization": "tailor.jobs.customization", "evaluation": "tailor.jobs.evaluation",
         "eval_run": "tailor.jobs.eval_run", "invocation": "tailor.jobs.invocation",
         "model_import": "tailor.jobs.model_import", "model_export": "tailor.jobs.model_export"}


TABLES = {kind: table for table, kind in WORKERS.items()}  # KIND -> the table its job's row is in


def run(kind: str, job_id: str, settings: Settings) -> str:
    """Run the job and return its final status."""
    store = open_store(settings)
    return import_module(KINDS[kind]).run_job(store, settings, job_id, Stop(stopping(store, TABLES[kind], job_id)))


def run_on_ray_train(kind: str, job_id: str, workers: int) -> str:
    """The job's worker on a Ray cluster, training in ``workers`` processes: Ray Train runs ``run``
    in each (``train/ray_train.py``); rank 0 records the job as a single worker would. A stop
    reaches the loops through the job's row (they run in threads, where no signal is caught), so
    this driver ignores Ray's SIGTERM and lets them end the job Stopped."""
    from tailor.train import ray_train

    settings = get_settings()
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    with open_store(settings).session() as session:
        work_dir = Path(session.get(TABLES[kind], job_id).work_dir)
    try:
        ray_train.fit(lambda: run(kind, job_id, get_settings()), workers, work_dir / "ray-train", job_id,
                      memory_bytes=int(os.environ.get(RAY_TRAIN_MEMORY) or 0),
                      gpus=int(os.environ.get(RAY_TRAIN_GPUS) or 0))
    finally:
        shutil.rmtree(work_dir / "ray-train", ignore_errors=True)  # Ray Train's run state: the row has the job's
    with open_store(settings).session() as session:
        return session.get(TABLES[kind], job_id).status


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in KINDS:
        print(f"usage: python -m tailor.jobs.worker {{{'|'.join(KINDS)}}} JOB_ID", file=sys.stderr)
        return 2
    workers = int(os.environ.get(RAY_TRAIN_WORKERS) or 1)  # set by the ray executor (executors/ray.py)
    if workers > 1 and args[0] == "customization":
        status = run_on_ray_train(args[0], args[1], workers)
    else:
        status = run(args[0], args[1], get_settings())
    print(f"{args[0]} job {args[1]}: {status}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
