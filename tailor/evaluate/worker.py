"""One evaluation job, run to its end in a process of its own: ``python -m tailor.evaluate.worker ID``.

Started by the job runner like a training worker (``tailor.jobs.worker``): a crash here never
touches the server. The models answer in an engine inside this process. Results are written in a
staging folder first and published to the output location only when complete, so a failed or
stopped job leaves nothing half-written there. Under ``{outputDataConfig.s3Uri}/{job-name}/{job-id}/``:

- ``models/{model}/taskTypes/{task}/datasets/{dataset}/{uuid}_output.jsonl`` — SPEC §7's lines:
  ``automatedEvaluationResult.scores``, ``inputRecord``, ``modelResponses`` (answered prompts only);
- ``reports/{dataset}/`` — comparison.json, comparison.csv and report.html (all models side by side);
- ``summary.json`` — per dataset: averages per model, metric and category, and data coverage.

When a model under evaluation is a custom model trained here, its training data is known, so the
report says which questions that data barely covers.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import sys
import traceback
import uuid
from pathlib import Path

from sqlalchemy import select

from tailor import storage
from tailor.errors import TailorError, without_home
from tailor.evaluate.backends import Opener
from tailor.evaluate.dataset import load_questions
from tailor.evaluate.results import Comparison, summarize
from tailor.evaluate.run import StopRequested, compare, needs_reference, with_coverage
from tailor.jobs.store import CustomModel, EvaluationJob, Job, Store, open_store, transition
from tailor.services.evaluations import generation_of, judge_spec
from tailor.services.inference import weights_for
from tailor.settings import Settings, get_settings

FAILURE_MESSAGE_LIMIT = 2048


def run_evaluation_job(job_id: str, settings: Settings) -> str:
    """Run the job and return its final status."""
    store = open_store(settings)
    with store.session() as session:
        job = session.get(EvaluationJob, job_id)
        if job is None or job.status != "InProgress":
            return job.status if job else "missing"
        request, principal, name = dict(job.request), job.principal, job.name
    stop = {"requested": False}
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.update(requested=True))
    staging = Path(settings.home) / "evaluations" / job_id / "output"
    shutil.rmtree(staging, ignore_errors=True)
    opener = Opener(settings, lambda identifier: weights_for(store, settings, principal, identifier),
                    max_models=len(request["inferenceConfig"]["models"]) + 1)
    try:
        automated = request["evaluationConfig"]["automated"]
        model_configs = [m["bedrockModel"] for m in request["inferenceConfig"]["models"]]
        models = [opener.open(m["modelIdentifier"]) for m in model_configs]
        generations = [generation_of(m) for m in model_configs]
        judge_text = judge_spec(automated)
        judge = opener.open(judge_text) if judge_text else None
        training_uri = _training_data(store, principal, [m["modelIdentifier"] for m in model_configs])

        summary = {}
        for config in automated["datasetMetricConfigs"]:
            dataset, task, metrics = config["dataset"]["name"], config["taskType"], config["metricNames"]
            uri = config["dataset"]["datasetLocation"]["s3Uri"]
            questions = load_questions(uri, settings, reference_required=needs_reference(metrics))
            comparison = compare(questions, models, metrics, judge=judge, task_type=task, generation=generations,
                                 settings=settings, should_stop=lambda: stop["requested"])
            if training_uri:
                comparison = with_coverage(comparison, training_uri, uri, settings)
            _write_outputs(staging, comparison, model_configs, task, dataset)
            summary[dataset] = {"taskType": task, "summary": summarize(comparison),
                                "coverage": comparison.coverage}
        (staging / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
        if stop["requested"]:
            raise StopRequested("The evaluation was stopped.")
        prefix = request["outputDataConfig"]["s3Uri"].rstrip("/") + f"/{name}/{job_id}"
        try:
            storage.copy_tree(staging, prefix, settings)
        except (TailorError, OSError) as error:
            reason = error.message if isinstance(error, TailorError) else str(error)
            raise TailorError(f"Could not write the results to {prefix}: {reason}") from None
    except StopRequested:
        return _finish(store, settings, job_id, "Stopped")
    except TailorError as error:
        return _finish(store, settings, job_id, "Failed", error.message)
    except Exception as error:  # a bug or an OOM: the job fails, the server lives on
        traceback.print_exc()
        return _finish(store, settings, job_id, "Failed", f"Evaluation failed: {type(error).__name__}: {error}")
    finally:
        opener.close()
    return _finish(store, settings, job_id, "Completed")


def _finish(store: Store, settings: Settings, job_id: str, status: str, failure: str | None = None) -> str:
    with store.session() as session:
        job = session.get(EvaluationJob, job_id)
        if job.stop_requested:
            status = "Stopped"  # a stop that arrived while failing or publishing still wins
        changes = {}
        if failure and status == "Failed":
            changes["failure_message"] = without_home(failure, settings.home)[:FAILURE_MESSAGE_LIMIT]
        transition(job, status, **changes)
    return status


def _training_data(store: Store, principal: str, identifiers: list[str]) -> str | None:
    """The training data URI of the first model that is a custom model trained here."""
    with store.session() as session:
        for identifier in identifiers:
            column = CustomModel.arn if identifier.startswith("arn:") else CustomModel.name
            model = session.scalar(select(CustomModel).where(column == identifier, CustomModel.principal == principal))
            if model is not None and model.job_id and (job := session.get(Job, model.job_id)) is not None:
                return job.request["trainingDataConfig"]["s3Uri"]
    return None


def path_name(identifier: str) -> str:
    """A model identifier as one path segment: an ARN's resource id, other characters made safe."""
    if identifier.startswith("arn:"):
        identifier = identifier.rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9._:-]+", "-", identifier).strip("-") or "model"


def _write_outputs(staging: Path, comparison: Comparison, model_configs: list[dict], task: str, dataset: str) -> None:
    from tailor.evaluate.report import write_report

    for position, config in enumerate(model_configs):
        folder = staging / "models" / path_name(config["modelIdentifier"]) / "taskTypes" / task / "datasets" / dataset
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for row in comparison.rows:
            answer = row.answers[position]
            if answer.response is None:
                continue  # as in the original: only prompts that produced a response count
            scores = [{"metricName": s.metric, "result": s.value,
                       **({"evaluatorDetails": [{"explanation": s.explanation}]} if s.explanation else {})}
                      for s in answer.scores]
            lines.append(json.dumps({
                "automatedEvaluationResult": {"scores": scores}, "inputRecord": row.question.record,
                "modelResponses": [{"response": answer.response, "modelIdentifier": config["modelIdentifier"]}],
            }, ensure_ascii=False))
        (folder / f"{uuid.uuid4()}_output.jsonl").write_text("".join(line + "\n" for line in lines))
    write_report(comparison, staging / "reports" / dataset)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tailor.evaluate.worker JOB_ID", file=sys.stderr)
        return 2
    status = run_evaluation_job(args[0], get_settings())
    print(f"evaluation job {args[0]}: {status}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
