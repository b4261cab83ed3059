"""One customization job, run to its end in a process of its own: ``python -m tailor.jobs.worker ID``.

The runner starts this process in a new session, so a crash, an OOM or a server killed with
SIGKILL never takes a training run down with it, nor the other way round. The worker writes every
change straight to the database: statusDetails per phase, live training loss and progress, and
finally Completed (with the custom model registered and SPEC §4's files under the output URI),
Failed with a reason, or Stopped after SIGTERM.
"""

from __future__ import annotations

import shutil
import signal
import sys
import time
import traceback
from pathlib import Path

from tailor import storage
from tailor.errors import TailorError, without_home
from tailor.jobs.store import CustomModel, Job, Store, open_store, transition, utcnow
from tailor.settings import Settings, get_settings

FAILURE_MESSAGE_LIMIT = 2048  # the API's maximum
PROGRESS_WRITE_INTERVAL = 1.0  # seconds between progress writes: the database is shared


def output_prefix(job: Job) -> str:
    """Where SPEC §4's files go: ``{outputDataConfig.s3Uri}/model-customization-job-{id}``."""
    return job.request["outputDataConfig"]["s3Uri"].rstrip("/") + f"/model-customization-job-{job.id}"


def details(phase_statuses: dict[str, str], previous: dict) -> dict:
    """statusDetails with the given phases changed and the others kept."""
    now = utcnow().isoformat()
    result = dict(previous)
    for phase, status in phase_statuses.items():
        entry = dict(result.get(phase) or {"creationTime": now})
        entry.update(status=status, lastModifiedTime=now)
        result[phase] = entry
    return result


class _Reporter:
    """Training hooks that write progress to the job row, at most once a second."""

    def __init__(self, store: Store, job_id: str):
        self.store, self.job_id = store, job_id
        self.stop = False
        self.total_steps = 0
        self._last_write = 0.0

    def _update(self, force: bool = False, **changes) -> None:
        if not force and time.monotonic() - self._last_write < PROGRESS_WRITE_INTERVAL:
            return
        self._last_write = time.monotonic()
        with self.store.session() as session:
            job = session.get(Job, self.job_id)
            for name, value in changes.items():
                setattr(job, name, value)
            job.last_modified_at = utcnow()

    def on_training_start(self, total_steps: int) -> None:
        self.total_steps = total_steps
        with self.store.session() as session:
            job = session.get(Job, self.job_id)
            job.status_details = details({"validationDetails": "Completed", "dataProcessingDetails": "Completed",
                                          "trainingDetails": "InProgress"}, job.status_details)
            job.progress = {"step": 0, "totalSteps": total_steps, "epoch": 0}
            job.last_modified_at = utcnow()

    def on_step(self, step: int, epoch: int, loss: float) -> None:
        self._update(training_loss=loss, progress={"step": step + 1, "totalSteps": self.total_steps, "epoch": epoch})

    def on_validation(self, epoch: int, loss: float) -> None:
        with self.store.session() as session:
            job = session.get(Job, self.job_id)
            job.validation_losses = [*job.validation_losses, loss]

    def should_stop(self) -> bool:
        return self.stop


def run_job(job_id: str, settings: Settings) -> str:
    """Run the job and return its final status."""
    from tailor.arns import custom_model_arn, new_resource_id
    from tailor.services.customization import training_start
    from tailor.train import common, cpt, rft, sft

    store = open_store(settings)
    with store.session() as session:
        job = session.get(Job, job_id)
        if job is None or job.status != "InProgress":
            return job.status if job else "missing"
        job.status_details = details({"validationDetails": "InProgress", "dataProcessingDetails": "NotStarted",
                                      "trainingDetails": "NotStarted"}, job.status_details)
        request, work_dir = dict(job.request), Path(job.work_dir)

    reporter = _Reporter(store, job_id)
    signal.signal(signal.SIGTERM, lambda signum, frame: setattr(reporter, "stop", True))
    recipe = {"FINE_TUNING": sft.run, "CONTINUED_PRE_TRAINING": cpt.run,
              "REINFORCEMENT_FINE_TUNING": rft.run}[job.customization_type]
    validators = (request.get("validationDataConfig") or {}).get("validators") or []
    rft_config = (request.get("customizationConfig") or {}).get("rftConfig") or {}
    try:
        start = training_start(store, job)
    except TailorError as error:
        return _finish(store, settings, job_id, "Failed", failure=error.message, phase="validationDetails",
                       phase_status="Failed")
    spec = common.TrainSpec(
        customization_type=job.customization_type, model=start,
        training_uri=request["trainingDataConfig"]["s3Uri"], output_dir=work_dir / "output",
        validation_uris=tuple(v["s3Uri"] for v in validators),
        hyperparameters=dict(request.get("hyperParameters") or rft_config.get("hyperParameters") or {}),
        progress=True, grader=(rft_config.get("graderConfig") or {}).get("lambdaGrader", {}).get("lambdaArn"),
    )
    hooks = common.Hooks(on_training_start=reporter.on_training_start, on_step=reporter.on_step,
                         on_validation=reporter.on_validation, should_stop=reporter.should_stop)
    try:
        outcome = recipe(spec, settings, hooks)
    except common.StopRequested:
        return _finish(store, settings, job_id, "Stopped", phase="trainingDetails", phase_status="Stopped")
    except TailorError as error:
        training = reporter.total_steps > 0
        return _finish(store, settings, job_id, "Failed", failure=error.message,
                       phase="trainingDetails" if training else "validationDetails", phase_status="Failed")
    except Exception as error:  # a bug or an OOM in training: the job fails, the server lives on
        traceback.print_exc()
        return _finish(store, settings, job_id, "Failed", phase="trainingDetails", phase_status="Failed",
                       failure=f"Training failed: {type(error).__name__}: {error}")

    # Publish: metrics to the output location, then the custom model, then Completed.
    prefix = output_prefix(job)
    try:
        for folder in ("training_artifacts", "validation_artifacts"):
            if (outcome.output_dir / folder).is_dir():
                storage.copy_tree(outcome.output_dir / folder, f"{prefix}/{folder}", settings)
    except (TailorError, OSError) as error:  # e.g. the output bucket does not exist
        reason = error.message if isinstance(error, TailorError) else str(error)
        return _finish(store, settings, job_id, "Failed", phase="trainingDetails", phase_status="Failed",
                       failure=f"Could not write the output files to {prefix}: {reason}")
    with store.session() as session:
        job = session.get(Job, job_id)
        if job.stop_requested:  # a stop that arrived while publishing still wins
            shutil.rmtree(outcome.output_dir, ignore_errors=True)
            transition(job, "Stopped", status_details=details({"trainingDetails": "Stopped"}, job.status_details))
            return "Stopped"
        model_id = new_resource_id()
        model_arn = custom_model_arn(settings.region, settings.account_id, job.base_model_id, model_id)
        session.add(CustomModel(
            id=model_id, arn=model_arn, name=job.output_model_name, principal=job.principal, job_id=job.id,
            base_model_id=job.base_model_id, base_model_arn=job.base_model_arn, source_model_arn=job.source_model_arn,
            customization_type=job.customization_type, status="Active", artifacts_dir=str(outcome.output_dir),
            created_at=utcnow(),
        ))
        result = outcome.manifest["result"]
        transition(job, "Completed", output_model_arn=model_arn, training_loss=result["final_training_loss"],
                   validation_losses=result["validation_losses"],
                   status_details=details({"trainingDetails": "Completed"}, job.status_details))
    return "Completed"


def _finish(store: Store, settings: Settings, job_id: str, status: str, *, phase: str, phase_status: str,
            failure: str | None = None) -> str:
    with store.session() as session:
        job = session.get(Job, job_id)
        if job.status == "Stopping" and status == "Failed" and job.stop_requested:
            status = "Stopped"  # stopped while failing: the user asked for a stop
        changes = {"status_details": details({phase: phase_status}, job.status_details)}
        if failure:
            changes["failure_message"] = without_home(failure, settings.home)[:FAILURE_MESSAGE_LIMIT]
        transition(job, status, **changes)
    return status


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tailor.jobs.worker JOB_ID", file=sys.stderr)
        return 2
    status = run_job(args[0], get_settings())
    print(f"job {args[0]}: {status}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
