"""A customization job in its worker: train the spec, report progress, publish the results.

Progress goes to the job's row as it happens — statusDetails per phase, the live training loss,
step and epoch — so every API shows it. A completed run publishes its metrics files under
``{output URI}/model-customization-job-{id}/`` (training_artifacts/ and validation_artifacts/, as
the original service lays them out), then registers the custom model, then says Completed.

A DISTILLATION job has a phase before training (``train/distill.py``): the teacher answers every
prompt. Its progress is the data-processing phase of statusDetails, ``progress.teacherAnswered``
of ``teacherPrompts`` and an event every tenth; the answers are published as a dataset under
``{output URI}/model-customization-job-{id}/distillation-data/teacher-responses.jsonl`` as soon as
they are written.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path

from tailor import storage, trained
from tailor.arns import custom_model_arn, new_resource_id
from tailor.catalog import CustomizationType
from tailor.errors import TailorError
from tailor.jobs.ending import Stop, crashed, finish
from tailor.jobs.results import results_csv
from tailor.jobs.spec import CustomizationJobSpec
from tailor.settings import Settings
from tailor.store import counters
from tailor.store.db import Store, utcnow
from tailor.store.files import File, content_path, new_id, write_content
from tailor.store.jobs import CustomModel, Job, JobEvent, transition
from tailor.train import distributed
from tailor.train.checkpoints import last_saved
from tailor.train.contract import Hooks, PauseRequested, StopRequested
from tailor.train.spec import TrainSpec

PROGRESS_WRITE_INTERVAL = 1.0  # seconds between progress writes: the database is shared
PUBLISHED_FOLDERS = ("training_artifacts", "validation_artifacts")


def output_prefix(job_id: str, spec: CustomizationJobSpec) -> str:
    return spec.output_uri.rstrip("/") + f"/model-customization-job-{job_id}"


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
    """Training hooks that write progress to the job row and its events, at most once a second."""

    def __init__(self, store: Store, job_id: str, stop: Stop):
        self.store, self.job_id, self.stop = store, job_id, stop
        self.total_steps = 0
        self.step = 0
        self._last_write = 0.0
        self._last_build_share = -1.0
        self._last_pause_check = 0.0
        self._pausing = False
        self.teacher_started = False  # DISTILLATION: the teacher's phase began
        self._tokens = 0  # trained on since the last progress write
        self._tokens_since = time.monotonic()

    def event(self, message: str, *, data: dict | None = None, kind: str = "message", level: str = "info") -> None:
        with self.store.session() as session:
            session.add(JobEvent(job_id=self.job_id, created_at=utcnow(), kind=kind, level=level, message=message,
                                 data=data or {}))

    def on_build_step(self, done: int, total: int) -> None:
        """The built-in model's pre-training: an event every tenth of it."""
        share = done / total
        if share - self._last_build_share >= 0.1 or done == total:
            self._last_build_share = share
            self.event(f"Building the built-in model tailor.tiny: pre-training step {done} of {total}.",
                       data={"build_step": done, "build_total_steps": total})

    def hooks(self) -> Hooks:
        return Hooks(on_training_start=self.on_training_start, on_step=self.on_step,
                     on_validation=self.on_validation, should_stop=self.stop, should_pause=self.should_pause,
                     on_tokens=self.on_tokens)

    def on_tokens(self, tokens: int) -> None:
        self._tokens += tokens

    def should_pause(self) -> bool:
        """Whether the job was asked to pause (status Pausing): read from its row, at most once a second."""
        if not self._pausing and time.monotonic() - self._last_pause_check >= PROGRESS_WRITE_INTERVAL:
            self._last_pause_check = time.monotonic()
            with self.store.session() as session:
                self._pausing = session.get(Job, self.job_id).status == "Pausing"
        return self._pausing

    def on_training_start(self, total_steps: int) -> None:
        self.total_steps = total_steps
        with self.store.session() as session:
            job = session.get(Job, self.job_id)
            job.status_details = details({"validationDetails": "Completed", "dataProcessingDetails": "Completed",
                                          "trainingDetails": "InProgress"}, job.status_details)
            job.progress = {"step": 0, "totalSteps": total_steps, "epoch": 0}
            job.last_modified_at = utcnow()
        self._tokens, self._tokens_since = 0, time.monotonic()
        self.event(f"Training started: {total_steps} step{'s' * (total_steps != 1)}.", data={"total_steps": total_steps})

    def on_step(self, step: int, epoch: int, loss: float) -> None:
        self.step = step + 1
        if time.monotonic() - self._last_write < PROGRESS_WRITE_INTERVAL:
            return
        self._last_write = now = time.monotonic()
        # Throughput since the last write (about a second's worth of steps), for /metrics.
        rate = self._tokens / (now - self._tokens_since) if now > self._tokens_since else 0.0
        with self.store.session() as session:
            job = session.get(Job, self.job_id)
            job.training_loss = loss
            job.progress = {"step": step + 1, "totalSteps": self.total_steps, "epoch": epoch,
                            "tokensPerSecond": round(rate, 1)}
            job.last_modified_at = utcnow()
            session.add(JobEvent(job_id=self.job_id, created_at=utcnow(), kind="progress", level="info",
                                 message=f"Step {step + 1} of {self.total_steps}.", data={"step": step + 1}))
            self._count_tokens(session, job)
        self._tokens_since = now

    def _count_tokens(self, session, job: Job) -> None:
        """Add the tokens trained on since the last count to the shared counter (with the progress
        it goes with, in one transaction)."""
        if self._tokens:
            counters.add(session.connection(), {"training_tokens": self._tokens},
                         customization_type=job.customization_type)
        self._tokens = 0

    def ended(self, result: dict) -> None:
        """How training really ended: every step, or early stopping at step N of M."""
        with self.store.session() as session:  # the last second's tokens
            self._count_tokens(session, session.get(Job, self.job_id))
        steps, total = result.get("steps"), self.total_steps or result.get("steps")
        if result.get("stopped_early"):
            self.event(f"Early stopping after epoch {result.get('epochs_run')} at step {steps} of {total}: the "
                       f"validation loss stopped improving. The checkpoint kept is epoch {result.get('best_epoch')}'s "
                       f"(validation loss {result.get('best_validation_loss'):.4f}).", data=_ending(result, total))
        else:
            self.event(f"Training finished: {steps} of {total} steps.", data=_ending(result, total))

    def on_validation(self, epoch: int, loss: float) -> None:
        with self.store.session() as session:
            job = session.get(Job, self.job_id)
            job.validation_losses = [*job.validation_losses, loss]

    def on_teacher(self, done: int, total: int) -> None:
        """DISTILLATION's first phase: the teacher has answered ``done`` of ``total`` prompts."""
        self.teacher_started = True
        with self.store.session() as session:
            job = session.get(Job, self.job_id)
            if done == 0:
                job.status_details = details({"validationDetails": "Completed",
                                              "dataProcessingDetails": "InProgress"}, job.status_details)
            job.progress = {**job.progress, "teacherAnswered": done, "teacherPrompts": total}
            job.last_modified_at = utcnow()
        if done == 0:
            self.event(f"The teacher is answering {total} prompts.", data={"teacher_prompts": total})
        elif done == total or done * 10 // total != (done - 1) * 10 // total:
            self.event(f"The teacher answered {done} of {total} prompts.",
                       data={"teacher_answered": done, "teacher_prompts": total})


def run_job(store: Store, settings: Settings, job_id: str, stop: Stop) -> str:
    """Run the customization job ``job_id``; its final status.

    A job trained by several processes runs this in each (torchrun starts them: ``jobs/runner.py``).
    The main process does everything below and hands the spec it resolved to the others, which
    train their share (``train/distributed.py``) and write nothing.
    """
    current = distributed.world()
    distributed.start(current)
    if not current.main:
        return _train_share(settings, stop, current)
    started = None
    try:
        started = _start(store, settings, job_id, stop)
    finally:  # the others wait for the spec; None (this job will not train) sends them home
        distributed.share_object(None if isinstance(started, str) else started[1], current)
    if isinstance(started, str):
        return started
    return _train(store, settings, job_id, *started)


def _train_share(settings: Settings, stop: Stop, current: distributed.World) -> str:
    """A process other than the main one: train what the main process resolved, on its share."""
    from tailor.train import recipes

    train = distributed.share_object(None, current)
    if train is None:
        return "nothing to train"
    try:
        recipes.run(train, settings, Hooks(should_stop=stop))
    except StopRequested:
        return "Stopped"
    except PauseRequested:
        return "Paused"
    return f"trained (process {current.rank} of {current.size})"


def _start(store: Store, settings: Settings, job_id: str,
           stop: Stop) -> tuple[CustomizationJobSpec, TrainSpec, _Reporter] | str:
    """The job's spec and what this start of it trains (resuming when an earlier worker was lost),
    with the reporter of its progress; or the status it ends in without training."""
    with store.session() as session:
        job = session.get(Job, job_id)
        if job is not None and job.status == "Pausing":  # asked to pause before this worker began
            transition(job, "Paused", phase="paused", pid=None, pid_started=None, attempts=job.attempts - 1)
            return "Paused"
        if job is None or job.status != "InProgress":
            return job.status if job else "missing"
        job.status_details = details({"validationDetails": "InProgress", "dataProcessingDetails": "NotStarted",
                                      "trainingDetails": "NotStarted"}, job.status_details)
        spec = CustomizationJobSpec.from_record(job.spec)
    reporter = _Reporter(store, job_id, stop)
    train = spec.train
    resumed_at = last_saved(trained.in_progress(train.output_dir))
    if resumed_at is not None:  # an earlier worker of this job was lost, or paused
        train = replace(train, resume=True)
        reporter.event(f"Resuming from the checkpoint at step {resumed_at}.", data={"resumed_at_step": resumed_at})
    if distributed.world().size > 1:
        reporter.event(f"Training in {distributed.world().size} processes.",
                       data={"processes": distributed.world().size})
    try:
        _build_builtin_model(spec, settings, reporter)
    except Exception as error:
        return _failed(store, settings, job_id, crashed(error, "Building the built-in model"), "validationDetails")
    return spec, train, reporter


def _failed(store: Store, settings: Settings, job_id: str, message: str, phase: str) -> str:
    with store.session() as session:
        status_details = details({phase: "Failed"}, session.get(Job, job_id).status_details)
    return finish(store, settings, Job, job_id, "Failed", message, status_details=status_details)


def _train(store: Store, settings: Settings, job_id: str, spec: CustomizationJobSpec, train: TrainSpec,
           reporter: _Reporter) -> str:
    from tailor.train import recipes

    def failed(message: str, phase: str) -> str:
        return _failed(store, settings, job_id, message, phase)

    try:
        if train.customization_type is CustomizationType.DISTILLATION:
            outcome = _distill(settings, job_id, spec, train, reporter)
        else:
            outcome = recipes.run(train, settings, reporter.hooks())
        reporter.ended(outcome.manifest["result"])
    except PauseRequested as pause:
        return _paused(store, job_id, pause.step, reporter)
    except StopRequested:
        reporter.event(f"Stopped on request at step {reporter.step} of {reporter.total_steps}.")
        with store.session() as session:
            status_details = details({"trainingDetails": "Stopped"}, session.get(Job, job_id).status_details)
        return finish(store, settings, Job, job_id, "Stopped", status_details=status_details)
    except TailorError as error:
        return failed(error.message, "trainingDetails" if reporter.total_steps else
                      "dataProcessingDetails" if reporter.teacher_started else "validationDetails")
    except Exception as error:
        return failed(crashed(error, "Training"), "trainingDetails")

    prefix = output_prefix(job_id, spec)
    try:
        for folder in PUBLISHED_FOLDERS:
            if (outcome.output_dir / folder).is_dir():
                storage.copy_tree(outcome.output_dir / folder, f"{prefix}/{folder}", settings)
    except (TailorError, OSError) as error:  # e.g. the output bucket does not exist
        reason = error.message if isinstance(error, TailorError) else str(error)
        return failed(f"Could not write the output files to {prefix}: {reason}", "trainingDetails")
    return _register(store, settings, job_id, spec, outcome.output_dir, outcome.manifest["result"])


def _distill(settings: Settings, job_id: str, spec: CustomizationJobSpec, train: TrainSpec, reporter: _Reporter):
    """A DISTILLATION run: the teacher's answers reported as they come and published as a dataset
    once written, then the student's training reported as any run's."""
    from tailor.train import distill

    def published(answers, path: Path) -> None:
        if answers is not None:
            reporter.event(answers.describe(), data={"teacher_prompts": answers.prompts,
                                                     "teacher_answers": answers.written,
                                                     "teacher_failures": answers.failed,
                                                     "empty_answers": answers.empty})
        destination = f"{output_prefix(job_id, spec)}/{distill.DATA_FOLDER}"
        try:
            storage.copy_tree(path.parent, destination, settings)
        except (TailorError, OSError) as error:
            reason = error.message if isinstance(error, TailorError) else str(error)
            raise TailorError(f"Could not write the distillation data to {destination}: {reason}") from None
        reporter.event(f"The student's training data: {destination}/{distill.RESPONSES_FILE}.",
                       data={"distillation_data": f"{destination}/{distill.RESPONSES_FILE}"})

    return distill.run(train, settings, reporter.hooks(), on_teacher=reporter.on_teacher, on_answers=published)


def _paused(store: Store, job_id: str, step: int, reporter: _Reporter) -> str:
    """Paused at ``step``: the checkpoint stays in the job's folder; resumed, the job is queued
    again and its next worker continues from there. A pause is not a lost start: it does not
    count against ``max_job_attempts``. A stop that arrived meanwhile wins."""
    with store.session() as session:
        job = session.get(Job, job_id)
        if job.status == "Stopping":
            return "Stopping"  # the runner ends it Stopped and removes the scratch
        transition(job, "Paused", phase="paused", pid=None, pid_started=None, attempts=job.attempts - 1,
                   status_details=details({"trainingDetails": "Stopped"}, job.status_details))
    reporter.event(f"Paused at step {step} of {reporter.total_steps}; the checkpoint is kept. Resume the job to "
                   "continue from it.", data={"paused_at_step": step})
    return "Paused"


def _ending(result: dict, total_steps: int | None) -> dict:
    return {"steps": result.get("steps"), "total_steps": total_steps, "stopped_early": bool(result.get("stopped_early")),
            "best_epoch": result.get("best_epoch")}


def _build_builtin_model(spec: CustomizationJobSpec, settings: Settings, reporter: _Reporter) -> None:
    """The first job of a fresh install builds ``tailor.tiny`` (about a minute on a laptop): do it
    here, before the recipe would, so the job's events show the build and its progress."""
    from tailor import tiny
    from tailor.catalog import resolve_model

    try:
        builtin = resolve_model(spec.train.model, settings).weights.kind == "builtin"
    except TailorError:
        return  # the recipe reports what is wrong with the model
    if builtin and not tiny.is_built(settings.models_dir):
        reporter.event("Building the built-in model tailor.tiny: its first use on this server.")
        tiny.tiny_model_dir(settings.models_dir, progress=spec.train.progress, on_step=reporter.on_build_step)


def _register(store: Store, settings: Settings, job_id: str, spec: CustomizationJobSpec, output_dir: Path,
              result: dict) -> str:
    """The custom model, then Completed — unless a stop arrived while publishing, which wins. A job
    of the OpenAI door also gets its results CSV, a file of its owner's."""
    results = _results_file(settings, output_dir) if spec.openai is not None else None
    with store.session() as session:
        job = session.get(Job, job_id)
        if job.stop_requested:
            shutil.rmtree(output_dir, ignore_errors=True)
            transition(job, "Stopped", status_details=details({"trainingDetails": "Stopped"}, job.status_details))
            return "Stopped"
        model_id = new_resource_id()
        model_arn = custom_model_arn(settings.region, settings.account_id, job.base_model_id, model_id)
        session.add(CustomModel(
            id=model_id, arn=model_arn, name=job.output_model_name, principal=job.principal, job_id=job.id,
            base_model_id=job.base_model_id, base_model_arn=job.base_model_arn, source_model_arn=job.source_model_arn,
            customization_type=job.customization_type, status="Active", artifacts_dir=str(output_dir),
            created_at=utcnow(), openai_name=(spec.openai or {}).get("fine_tuned_model"),
        ))
        if results is not None:
            session.add(File(id=results, principal=job.principal, purpose="fine-tune-results",
                             filename=f"step_metrics-{job.id}.csv",
                             bytes=content_path(settings.home, results).stat().st_size, created_at=utcnow(),
                             expires_at=None))
        # The last step written may be up to a second old (progress is written at most once a second).
        progress = {**job.progress, **({"step": result["steps"]} if result.get("steps") else {}),
                    "trainedTokens": result.get("training_tokens"),
                    "resultFiles": [results] if results else []}
        transition(job, "Completed", output_model_arn=model_arn, training_loss=result.get("final_training_loss"),
                   validation_losses=result.get("validation_losses") or [], progress=progress,
                   status_details=details({"trainingDetails": "Completed"}, job.status_details))
    return "Completed"


def _results_file(settings: Settings, output_dir: Path) -> str:
    """The run's metrics as OpenAI's results CSV, kept as a file; its id."""
    file_id = new_id("file-")
    write_content(content_path(settings.home, file_id), results_csv(output_dir))
    return file_id
