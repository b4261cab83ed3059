"""Grading samples with a grader: the entry points and the per-type dispatch.

``run`` grades one output as ``POST /v1/fine_tuning/alpha/graders/run`` answers; ``grade_samples``
grades an RFT batch (``registry.grade``, kind ``openai``); ``grade`` grades cases for the Evals API's
testing criteria and an evaluation job's custom metrics; ``grader_info`` is what an RFT job
snapshots. All three doors reach ``_grade``, so one definition gives one number for one answer. ``_grade`` sends each grader type to its module, and ``_grade_multi`` combines a multi
grader's members with its formula.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tailor.errors import InvalidInput
from tailor.graders.contract import GradeResult, completion_of, failed, prompt_of
from tailor.graders.counting import count_call
from tailor.graders.info import GraderInfo
from tailor.graders.openai.definitions import (
    Grader,
    InvalidGrader,
    LabelModelGrader,
    MultiGrader,
    PythonGrader,
    ScoreModelGrader,
    StringCheckGrader,
)
from tailor.graders.openai.formula import _FormulaError, evaluate_formula
from tailor.graders.openai.model_graders import _grade_model
from tailor.graders.openai.outcomes import Judges, _Context, _failure, _Outcome
from tailor.graders.openai.python_grader import (
    PYTHON_MEMORY_MB,
    PYTHON_TIMEOUT_LIMIT,
    _grade_python,
)
from tailor.graders.openai.similarity import similarity, string_check
from tailor.graders.openai.templates import _TemplateError, render, sample_namespace
from tailor.graders.openai.validation import to_json, validate
from tailor.settings import Settings

ERROR_FLAGS = ("formula_parse_error", "invalid_variable_error", "model_grader_parse_error",
               "model_grader_refusal_error", "model_grader_server_error", "other_error",
               "python_grader_runtime_error", "python_grader_server_error", "sample_parse_error",
               "truncated_observation_error", "unresponsive_reward_error")


def _grade(grader: Grader, cases: list[dict], context: _Context) -> list[_Outcome]:
    """One outcome per case (``{"sample": namespace, "item": dict}``)."""
    if not cases:
        return []
    if isinstance(grader, MultiGrader):
        return _grade_multi(grader, cases, context)
    if isinstance(grader, PythonGrader):
        return _grade_python(grader, cases, context)
    if isinstance(grader, ScoreModelGrader | LabelModelGrader):
        return _grade_model(grader, cases, context)
    outcomes: list[_Outcome] = []
    for case in cases:
        try:
            given, reference = render(grader.input, case), render(grader.reference, case)
        except _TemplateError as error:
            outcomes.append(_failure(error.flag, str(error)))
            continue
        if isinstance(grader, StringCheckGrader):
            outcomes.append(_Outcome(string_check(grader.operation, given, reference)))
        else:
            try:
                outcomes.append(_Outcome(similarity(grader.evaluation_metric, given, reference)))
            except Exception as error:  # a metric library failing (e.g. the encoder not loading)
                outcomes.append(_failure("other_error", f"{grader.evaluation_metric}: {type(error).__name__}: "
                                                        f"{error}"))
    return outcomes


def grade_samples(definition: dict, samples: list[dict], settings: Settings, *,
                  log: Callable[[str], None] | None = None, judges: Judges | None = None) -> list[GradeResult]:
    """Grade a batch of ``tailor.graders.contract`` samples: the sample's completion is
    ``sample.output_text`` and the record (its fields, its prompt as ``messages``) is the ``item``.
    A failing sample scores 0 with the reason (``contract.failed``); this never raises for a grader's
    or a sample's fault."""
    ids = [str(item["id"]) for item in samples]
    try:
        grader = validate(definition, settings)
    except InvalidInput as error:
        return [failed(sample_id, error.message) for sample_id in ids]
    cases = [{"sample": sample_namespace(completion_of(item)), "item": _item_of(item)} for item in samples]
    try:
        outcomes = _grade(grader, cases, _Context(settings, judges, log))
    except Exception as error:  # a fault of Tailor's own: still a zero with its reason, never a crashed job
        return [failed(sample_id, f"the {grader.type} grader failed: {type(error).__name__}: {error}")
                for sample_id in ids]
    results = []
    for sample_id, outcome in zip(ids, outcomes, strict=True):
        error = outcome.error()
        results.append(failed(sample_id, error) if error else GradeResult(sample_id, outcome.reward, outcome.scores))
    return results


@dataclass(frozen=True)
class Graded:
    """One grader's verdict on one case, for callers outside this package."""

    reward: float
    error: str | None = None  # why the case could not be graded (its reward is then 0)
    reasoning: str | None = None  # a model grader's reply
    scores: dict[str, float] = field(default_factory=dict)  # a multi grader's members
    flags: tuple[str, ...] = ()  # the ERROR_FLAGS raised


def grade(grader: Grader, cases: list[dict], settings: Settings, *, judges: Judges | None = None,
          log: Callable[[str], None] | None = None) -> list[Graded]:
    """Grade each case (``{"item": dict, "sample": sample_namespace(text)}``) with a validated
    ``grader``. Never raises for a grader's or a case's fault: each such case is an error with 0."""
    try:
        outcomes = _grade(grader, cases, _Context(settings, judges, log))
    except Exception as error:  # a fault of Tailor's own: still a zero with its reason
        graded = [Graded(0.0, f"the {grader.type} grader failed: {type(error).__name__}: {error}",
                         flags=("other_error",)) for _ in cases]
    else:
        graded = [Graded(outcome.reward, outcome.error(), outcome.reply, dict(outcome.scores),
                         tuple(sorted(outcome.flags))) for outcome in outcomes]
    if cases:
        count_call(settings, grader.type, (one.error for one in graded))
    return graded


def _item_of(sample: dict) -> dict:
    """The training record a contract sample was built from: its fields and its prompt."""
    metadata = sample.get("metadata")
    item = dict(metadata) if isinstance(metadata, dict) else {}
    item["messages"] = prompt_of(sample)
    return item


def run(definition: Any, *, sample_text: str, item: Any, settings: Settings,
        judges: Judges | None = None) -> dict:
    """Grade one output, as ``POST /v1/fine_tuning/alpha/graders/run`` answers: the SDK's
    ``GraderRunResponse`` (reward, metadata, sub_rewards, model_grader_token_usage_per_model).
    ``InvalidGrader`` for a bad definition; everything that goes wrong while grading is reported
    in ``metadata.errors`` with a zero reward."""
    grader = validate(definition, settings)
    if item is None:
        item = {}
    if not isinstance(sample_text, str):
        raise InvalidGrader([("model_sample", "must be a string")])
    started = time.perf_counter()
    [outcome] = _grade(grader, [{"sample": sample_namespace(sample_text), "item": item}],
                       _Context(settings, judges, None))
    count_call(settings, grader.type, [outcome.error()])
    errors: dict[str, Any] = {flag: flag in outcome.flags for flag in ERROR_FLAGS}
    errors["model_grader_server_error_details"] = outcome.details.get("model_grader_server_error")
    errors["python_grader_runtime_error_details"] = outcome.details.get("python_grader_runtime_error")
    errors["python_grader_server_error_type"] = _server_error_type(outcome.details.get("python_grader_server_error"))
    other = [outcome.details[flag] for flag in sorted(outcome.flags) if flag in outcome.details
             and flag not in ("model_grader_server_error", "python_grader_runtime_error")]
    if other:
        errors["details"] = "; ".join(other)  # beyond the SDK's fields: what the flags do not say
    sub_rewards = dict(outcome.scores) if isinstance(grader, MultiGrader) else {}
    return {
        "reward": outcome.reward,
        "metadata": {"name": grader.name, "type": grader.type, "errors": errors,
                     "execution_time": time.perf_counter() - started, "scores": dict(outcome.scores),
                     "token_usage": None, "sampled_model_name": None},
        "sub_rewards": sub_rewards,
        "model_grader_token_usage_per_model": {},
    }


def _server_error_type(message: str | None) -> str | None:
    """A python grader's sandbox failure in one word (the message itself goes to ``details``)."""
    if message is None:
        return None
    for needle, kind in (("timeout", "timeout"), ("bubblewrap", "sandbox_unavailable"),
                         ("sandbox", "sandbox_unavailable"), ("larger than", "response_too_large")):
        if needle in message:
            return kind
    return "crashed"


def grader_info(definition: Any, settings: Settings) -> GraderInfo:
    """The ``GraderInfo`` an RFT job created through OpenAI's API snapshots: kind ``openai``, the
    normalized definition. ``InvalidGrader`` for a bad one (paths under ``grader``; the route puts
    them under ``method.reinforcement.grader``), and for a python grader where the sandbox cannot run
    (the job would only score zeros)."""
    from tailor.arns import new_resource_id
    from tailor.graders.sandbox import sandbox_problem

    grader = validate(definition, settings)
    members = ([(f"grader.graders.{name}", sub) for name, sub in grader.graders.items()]
               if isinstance(grader, MultiGrader) else [("grader", grader)])
    pythons = [f"{where}.source" for where, sub in members if isinstance(sub, PythonGrader)]
    problem = sandbox_problem() if pythons else None
    if problem:  # the job would score every sample 0: refuse it now, saying why
        raise InvalidGrader([(where, f"python graders cannot run on this server: {problem}") for where in pythons])
    return GraderInfo(id=new_resource_id(), arn=f"openai-grader:{grader.type}:{grader.name}", name=grader.name,
                      kind="openai", code=None, url=None, timeout_seconds=PYTHON_TIMEOUT_LIMIT,
                      memory_mb=PYTHON_MEMORY_MB, created_at=datetime.now(UTC), definition=to_json(grader))


def _grade_multi(grader: MultiGrader, cases: list[dict], context: _Context) -> list[_Outcome]:
    members = {name: _grade(sub, cases, context) for name, sub in grader.graders.items()}
    outcomes = []
    for index in range(len(cases)):
        mine = {name: results[index] for name, results in members.items()}
        outcome = _Outcome(scores={name: result.reward for name, result in mine.items()},
                           sampled=any(result.sampled for result in mine.values()))
        for name, result in mine.items():
            outcome.flags |= result.flags
            for flag, detail in result.details.items():
                outcome.details[flag] = "; ".join(filter(None, [outcome.details.get(flag), f"{name}: {detail}"]))
        if not outcome.flags:
            try:
                outcome.reward = evaluate_formula(grader.calculate_output, outcome.scores)
            except _FormulaError as error:
                outcome.flags.add("other_error")
                outcome.details["other_error"] = f"calculate_output: {error}"
        outcomes.append(outcome)
    return outcomes
