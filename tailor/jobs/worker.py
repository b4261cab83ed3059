"""One job, run to its end in a process of its own: ``python -m tailor.jobs.worker KIND ID``.

The runner starts this process in a new session, so a crash, an OOM or a server killed with
SIGKILL never takes a job down with it, nor the other way round. The worker reads the job's spec
(never its request), runs it — ``tailor.jobs.customization`` trains, ``tailor.jobs.evaluation``
evaluates, ``tailor.jobs.eval_run`` runs an OpenAI eval — and writes every change straight to the
database, ending in Completed, Failed with a reason, or Stopped after SIGTERM (``tailor.jobs.ending``).
"""

from __future__ import annotations

import sys
from importlib import import_module

from tailor.jobs.ending import Stop
from tailor.settings import Settings, get_settings
from tailor.store.db import open_store

# The runner's KIND argument -> the module whose ``run_job`` runs that kind (imported only then:
# training pulls in torch, evaluation an engine).
KINDS = {"customization": "tailor.jobs.customization", "evaluation": "tailor.jobs.evaluation",
         "eval_run": "tailor.jobs.eval_run", "invocation": "tailor.jobs.invocation",
         "model_import": "tailor.jobs.model_import", "model_export": "tailor.jobs.model_export"}


def run(kind: str, job_id: str, settings: Settings) -> str:
    """Run the job and return its final status."""
    return import_module(KINDS[kind]).run_job(open_store(settings), settings, job_id, Stop())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in KINDS:
        print(f"usage: python -m tailor.jobs.worker {{{'|'.join(KINDS)}}} JOB_ID", file=sys.stderr)
        return 2
    status = run(args[0], args[1], get_settings())
    print(f"{args[0]} job {args[1]}: {status}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
