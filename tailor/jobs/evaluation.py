"""An evaluation job in its worker: evaluate the spec into a staging folder, then publish it.

Results reach ``{output URI}/{job name}/{job id}/`` only once complete (``storage.copy_tree`` of
the staging folder ``tailor.evaluate.job.run`` wrote), so a failed or stopped job leaves nothing
half-written there.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tailor import storage
from tailor.errors import TailorError
from tailor.evaluate import job as evaluation
from tailor.evaluate.run import StopRequested
from tailor.jobs.ending import Stop, crashed, finish
from tailor.jobs.spec import EvaluationJobSpec
from tailor.settings import Settings
from tailor.store.db import Store
from tailor.store.jobs import EvaluationJob


def run_job(store: Store, settings: Settings, job_id: str, stop: Stop) -> str:
    """Run the evaluation job ``job_id``; its final status."""
    with store.session() as session:
        job = session.get(EvaluationJob, job_id)
        if job is None or job.status != "InProgress":
            return job.status if job else "missing"
        spec, name, staging = EvaluationJobSpec.from_record(job.spec), job.name, Path(job.work_dir) / "output"
    shutil.rmtree(staging, ignore_errors=True)
    prefix = spec.output_uri.rstrip("/") + f"/{name}/{job_id}"
    try:
        evaluation.run(spec.evaluation, staging, settings, should_stop=stop)
        try:
            storage.copy_tree(staging, prefix, settings)
        except (TailorError, OSError) as error:
            reason = error.message if isinstance(error, TailorError) else str(error)
            raise TailorError(f"Could not write the results to {prefix}: {reason}") from None
    except StopRequested:
        return finish(store, settings, EvaluationJob, job_id, "Stopped")
    except TailorError as error:
        return finish(store, settings, EvaluationJob, job_id, "Failed", error.message)
    except Exception as error:
        return finish(store, settings, EvaluationJob, job_id, "Failed", crashed(error, "Evaluation"))
    return finish(store, settings, EvaluationJob, job_id, "Completed")
