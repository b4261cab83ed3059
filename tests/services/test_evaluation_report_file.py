"""``services.evaluations.report_file``: a completed evaluation job's side-by-side report, read
from where the job published it, for its owner only — against a real SQLite store and a local
bucket (the job row and its published folder are planted as the worker leaves them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailor.errors import NotFound
from tailor.services import evaluations
from tailor.settings import Settings
from tailor.store.db import open_store

REPORT = "<!doctype html><title>report</title><p>side by side</p>"


def plant_completed_job(home: Path, principal: str = "alice", *, name: str = "faq-eval", dataset: str = "faq",
                        status: str = "Completed", report: str = REPORT) -> str:
    """An evaluation job row of ``principal`` as a finished worker leaves it, with ``report`` at
    ``{output}/{name}/{id}/reports/{dataset}/report.html`` in a local bucket; the job's id."""
    from tailor.arns import evaluation_job_arn, new_resource_id
    from tailor.evaluate.spec import DatasetTask, EvaluationSpec, ModelToRun
    from tailor.jobs.spec import EvaluationJobSpec
    from tailor.store.db import utcnow
    from tailor.store.jobs import EvaluationJob

    settings = Settings(home=home)
    job_id = new_resource_id()
    output = f"s3://results-{principal}/evals/"
    spec = EvaluationJobSpec(EvaluationSpec(datasets=(DatasetTask(dataset, "General", ("Builtin.Accuracy",),
                                                                  f"s3://data-{principal}/eval.jsonl"),),
                                            models=(ModelToRun("answers", precomputed=True),)), output_uri=output)
    now = utcnow()
    with open_store(settings).session() as session:
        session.add(EvaluationJob(id=job_id, arn=evaluation_job_arn("us-east-1", "000000000000", job_id), name=name,
                                  principal=principal, status=status, phase="done", role_arn="",
                                  application_type="ModelEvaluation", spec=spec.to_record(), stop_requested=False,
                                  work_dir=str(home / "evaluations" / job_id), created_at=now, last_modified_at=now))
    folder = home / "buckets" / f"results-{principal}" / "evals" / name / job_id / "reports" / dataset
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.html").write_text(report)
    return job_id


@pytest.fixture
def state(tmp_path):
    settings = Settings(home=tmp_path / "home", s3_endpoint_url=None)
    return open_store(settings), settings


def test_the_owner_reads_the_report_and_nobody_else_does(state):
    store, settings = state
    plant_completed_job(settings.home)
    assert evaluations.report_file(store, settings, "alice", "faq-eval", "faq").decode() == REPORT
    arn = evaluations.get_evaluation_job(store, "alice", "faq-eval").row.arn
    assert evaluations.report_file(store, settings, "alice", arn, "faq").decode() == REPORT  # by ARN too
    for identifier in ("faq-eval", arn):
        with pytest.raises(NotFound):
            evaluations.report_file(store, settings, "bob", identifier, "faq")


def test_a_dataset_the_job_does_not_name_or_an_unfinished_job_has_no_report(state):
    store, settings = state
    plant_completed_job(settings.home)
    for name in ("other", "../faq", "faq/../../x"):
        with pytest.raises(NotFound, match="has no dataset named"):
            evaluations.report_file(store, settings, "alice", "faq-eval", name)
    plant_completed_job(settings.home, name="still-going", status="InProgress")
    with pytest.raises(NotFound, match="published only when the job completes"):
        evaluations.report_file(store, settings, "alice", "still-going", "faq")
