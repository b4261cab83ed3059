"""An evaluation job in its worker: evaluate the spec into a staging folder, then publish it.

Results reach ``{output URI}/{job name}/{job id}/`` only once complete (``storage.copy_tree`` of
the staging folder ``tailor.evaluate.job.run`` wrote), so a failed or stopped job leaves nothing
half-written there.

A job's custom metrics are graded here, by Tailor's one grader layer: each is converted to an
OpenAI grader definition (``tailor.evaluate.judge.custom_grader``) and graded with
``tailor.graders.openai.grade``, its judge being the backend the evaluation opened for the job's
custom-metric evaluator model — so a custom metric, an Evals testing criterion and an RFT reward
with the same definition give the same number. ``tailor.evaluate`` sits below ``tailor.graders``
and cannot import it; the scorers are injected (``custom_scorers``).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from tailor import storage
from tailor.errors import TailorError
from tailor.evaluate import job as evaluation
from tailor.evaluate.backends import Backend
from tailor.evaluate.judge import custom_grader, custom_result
from tailor.evaluate.results import Score
from tailor.evaluate.run import CustomScorer
from tailor.evaluate.spec import CustomMetric, EvaluationSpec
from tailor.graders import openai as graders
from tailor.jobs.ending import Stop, run_to_end
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

    def work() -> None:
        evaluation.run(spec.evaluation, staging, settings, should_stop=stop,
                       custom_scorers=custom_scorers(spec.evaluation, settings))
        try:
            storage.copy_tree(staging, prefix, settings)
        except (TailorError, OSError) as error:
            reason = error.message if isinstance(error, TailorError) else str(error)
            raise TailorError(f"Could not write the results to {prefix}: {reason}") from None

    return run_to_end(store, settings, EvaluationJob, job_id, work, "Evaluation")

def custom_scorers(spec: EvaluationSpec, settings: Settings):
    """For ``tailor.evaluate.job.run``: given the opened judge of the custom metrics, one scorer per
    custom metric of ``spec``, grading through ``tailor.graders.openai``."""
    def scorers(judge: Backend) -> Mapping[str, CustomScorer]:
        made = {}
        for metric in spec.custom_metrics:
            grader = graders.validate(custom_grader(metric, spec.custom_judge.identifier), settings)
            made[metric.name] = _scorer(metric, grader, judge, settings)
        return made
    return scorers


def _scorer(metric: CustomMetric, grader, judge: Backend, settings: Settings) -> CustomScorer:
    def score(items: list[tuple[str, str, str | None]]) -> list[Score]:
        cases = [{"item": {"prompt": prompt, **({"referenceResponse": reference} if reference is not None else {})},
                  "sample": graders.sample_namespace(response)} for prompt, response, reference in items]
        return [custom_score(metric, grader, graded)
                for graded in graders.grade(grader, cases, settings, judges=lambda name: judge)]
    return score


def custom_score(metric: CustomMetric, grader, graded) -> Score:
    """A grader's verdict (``tailor.graders.openai.Graded``) as the custom metric's score: missing,
    with the reason, when the judge gave nothing usable; else ``custom_result`` with the judge's reply
    as the explanation (a word scale's chosen value first)."""
    if graded.error:
        return Score(metric.name, None, explanation=graded.error)
    reply = graded.reasoning or "(the judge gave no reasoning)"
    if grader.type == "label_model":
        label = graders.parse_label(graded.reasoning or "", list(grader.labels))
        if label is None:
            return Score(metric.name, None, explanation=f"No label from the scale in the judge's reply: {reply}")
        return Score(metric.name, custom_result(metric, graded.reward, label), explanation=f"{label}: {reply}")
    return Score(metric.name, custom_result(metric, graded.reward), explanation=reply)
