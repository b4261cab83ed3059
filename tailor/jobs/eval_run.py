"""An OpenAI eval run in its worker: sample each row (or take the sample it brings), grade it with
every testing criterion, and write its output item.

Rows go in batches (``BATCH``): the model answers a batch through the engine's batching, every
criterion grades it (``tailor.graders.openai.grade``: the grader layer RFT rewards and evaluation
custom metrics use too), and the batch's items and the run's running counts are written in one
transaction — so ``runs.retrieve`` shows progress while the run goes, and a stop (between batches)
or a lost worker leaves exactly the items that were graded. The judges of model graders run in the
same engine as the model under evaluation.

A criterion passes by its own rule (``passed``); an item passes when every criterion passes, and is
an ``error`` when its sample could not be made or a criterion could not grade it.
"""

from __future__ import annotations

import json
from pathlib import Path

from tailor.catalog import resolve_registered_model
from tailor.evaluate.backends import EngineModel, Failure, Opener
from tailor.evaluate.run import StopRequested
from tailor.graders.openai import (
    Graded,
    LabelModelGrader,
    StringCheckGrader,
    grade,
    render,
    sample_namespace,
    validate,
)
from tailor.jobs.ending import Stop, run_to_end
from tailor.jobs.spec import DEFAULT_PASS_THRESHOLD, EvalRunSpec
from tailor.serve.protocol import Target
from tailor.settings import Settings
from tailor.store.db import Store, utcnow
from tailor.store.evals import EvalOutputItem, EvalRun
from tailor.store.files import new_id

BATCH = 16


def run_job(store: Store, settings: Settings, job_id: str, stop: Stop) -> str:
    """Run the eval run ``job_id``; its final status."""
    with store.session() as session:
        run = session.get(EvalRun, job_id)
        if run is None or run.status != "InProgress":
            return run.status if run else "missing"
        spec, results = EvalRunSpec.from_record(run.spec), run.results
    return run_to_end(store, settings, EvalRun, job_id, lambda: _run(store, settings, job_id, spec, results, stop),
                      "The eval run")


def _run(store: Store, settings: Settings, job_id: str, spec: EvalRunSpec, results: dict, stop: Stop) -> None:
    rows = [json.loads(line) for line in Path(spec.items_path).read_text().splitlines() if line.strip()]
    criteria = [(c, validate({k: v for k, v in c.items() if k != "pass_threshold"}, settings)) for c in spec.criteria]

    def resolve(name: str) -> Target:  # a judge: a catalog id or alias, as model graders accept
        resolve_registered_model(name, settings)
        return Target(base=name)

    with Opener(settings, resolve, max_models=2) as opener:
        model = opener.open_model(spec.model) if spec.model else None
        for start in range(0, len(rows), BATCH):
            if stop():
                raise StopRequested("The run was canceled.")
            batch = list(enumerate(rows[start:start + BATCH], start=start))
            samples = _samples(model, spec, [row for _, row in batch]) if model else [_given(row) for _, row in batch]
            cases = [{"item": row["item"], "sample": sample_namespace(sample["output"][0]["content"])}
                     if not sample.get("error") else None for (_, row), sample in zip(batch, samples)]
            graded = []
            for criterion, grader in criteria:
                wanted = [case for case in cases if case is not None]
                verdicts = iter(grade(grader, wanted, settings, judges=opener.open))
                graded.append([next(verdicts) if case is not None else None for case in cases])
            items = [_item(position, row, sample, [(c, g, per[i]) for (c, g), per in zip(criteria, graded)])
                     for i, ((position, row), sample) in enumerate(zip(batch, samples))]
            _record(store, job_id, items, results, spec, samples)
    if stop():
        raise StopRequested("The run was canceled.")


def _samples(model, spec: EvalRunSpec, rows: list[dict]) -> list[dict]:
    """Each row's conversation, sent to the model as one batch; a sample per row (its ``error`` set
    when the conversation could not be made or the model gave no answer)."""
    generation = spec.model.generation
    conversations, problems = [], []
    for row in rows:
        try:
            conversations.append(_conversation(spec, row["item"]))
            problems.append(None)
        except (ValueError, TypeError, KeyError) as error:
            conversations.append(None)
            problems.append(str(error))
    asked = [c for c in conversations if c is not None]
    completions: list = []
    if isinstance(model, EngineModel):  # Tailor's engine reports token counts and why each answer stopped
        replies = iter(model.chat(asked, generation, completions=completions, seed=spec.seed or 0))
    else:
        replies = iter(model.chat(asked, generation))
    finished = iter(completions)
    samples = []
    for conversation, problem in zip(conversations, problems):
        base = {"input": conversation or [], "model": spec.model.identifier, "seed": spec.seed,
                "max_completion_tokens": generation.max_tokens, "temperature": generation.temperature,
                "top_p": generation.top_p, "output": [], "finish_reason": "",
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "cached_tokens": 0}}
        if conversation is None:
            samples.append({**base, "error": {"code": "invalid_input", "message": problem}})
            continue
        reply, completion = next(replies), next(finished, None)
        if isinstance(reply, Failure) or reply is None:
            message = reply.message if isinstance(reply, Failure) else "no answer"
            samples.append({**base, "error": {"code": "sampling_error", "message": message}})
            continue
        if completion is not None:
            base["usage"] = {"prompt_tokens": completion.input_tokens, "completion_tokens": completion.output_tokens,
                             "total_tokens": completion.input_tokens + completion.output_tokens, "cached_tokens": 0}
            base["finish_reason"] = "length" if completion.stop_reason == "max_tokens" else "stop"
        samples.append({**base, "output": [{"role": "assistant", "content": reply}], "error": None})
    return samples


def _conversation(spec: EvalRunSpec, item: dict) -> list[dict]:
    """The messages the model is sent for ``item``: the template rendered with it, or the messages
    the item holds at ``item_reference``."""
    if spec.item_reference is not None:
        value = item
        for step in spec.item_reference.removeprefix("item.").split("."):
            if not isinstance(value, dict) or step not in value:
                raise KeyError(f"{spec.item_reference}: the item has no {step!r}")
            value = value[step]
        if isinstance(value, str):
            return [{"role": "user", "content": value}]
        if not isinstance(value, list) or not all(isinstance(m, dict) and isinstance(m.get("content"), str)
                                                  and m.get("role") in ("system", "developer", "user", "assistant")
                                                  for m in value):
            raise ValueError(f"{spec.item_reference}: expected a string or a list of {{role, content}} messages")
        return [{"role": "system" if m["role"] == "developer" else m["role"], "content": m["content"]} for m in value]
    try:
        return [{"role": "system" if m["role"] == "developer" else m["role"],
                 "content": render(m["content"], {"item": item})} for m in spec.template]
    except Exception as error:  # a variable the item lacks: this row's sample is an error
        raise ValueError(str(error)) from None


def _given(row: dict) -> dict:
    """A jsonl row's own sample."""
    sample = row.get("sample") or {}
    return {"input": [], "output": [{"role": "assistant", "content": sample.get("output_text", "")}],
            "model": sample.get("model", ""), "finish_reason": "stop", "error": None,
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "cached_tokens": 0}}


def passed(criterion: dict, grader, verdict: Graded) -> bool:
    """A criterion's verdict: string_check and label_model pass on a reward of 1; the others when
    their score reaches ``pass_threshold`` (``DEFAULT_PASS_THRESHOLD`` when none is given)."""
    if verdict.error:
        return False
    if isinstance(grader, StringCheckGrader | LabelModelGrader):
        return verdict.reward >= 1.0
    return verdict.reward >= criterion.get("pass_threshold", DEFAULT_PASS_THRESHOLD)


def _item(position: int, row: dict, sample: dict, verdicts: list) -> dict:
    results = []
    for criterion, grader, verdict in verdicts:
        if verdict is None:
            continue
        result = {"name": grader.name, "type": grader.type, "score": verdict.reward,
                  "passed": passed(criterion, grader, verdict), "sample": None}
        if verdict.reasoning:  # a judge's reply: what it was asked is the grader's own input
            result["sample"] = {"output": [{"role": "assistant", "content": verdict.reasoning}]}
        if verdict.error:
            result["error"] = verdict.error
        if verdict.scores:
            result["sub_scores"] = verdict.scores
        results.append(result)
    errored = bool(sample.get("error")) or any("error" in result for result in results)
    status = "error" if errored else "pass" if all(result["passed"] for result in results) else "fail"
    return {"position": position, "status": status,
            "body": {"datasource_item": row["item"], "results": results, "sample": sample}}


def _record(store: Store, job_id: str, items: list[dict], results: dict, spec: EvalRunSpec,
            samples: list[dict]) -> None:
    """The batch's output items and the run's counts, in one transaction."""
    counts = results["result_counts"]
    per_criterion = {entry["testing_criteria"]: entry for entry in results["per_testing_criteria_results"]}
    now = utcnow()
    for item in items:
        counts[{"pass": "passed", "fail": "failed", "error": "errored"}[item["status"]]] += 1
        for result in item["body"]["results"]:
            per_criterion[result["name"]]["passed" if result["passed"] else "failed"] += 1
    if spec.model is not None:
        usage = next((u for u in results["per_model_usage"] if u["model_name"] == spec.model.identifier), None)
        if usage is None:
            usage = {"model_name": spec.model.identifier, "invocation_count": 0, "prompt_tokens": 0,
                     "completion_tokens": 0, "total_tokens": 0, "cached_tokens": 0}
            results["per_model_usage"].append(usage)
        for sample in samples:
            if sample.get("input"):
                usage["invocation_count"] += 1
            for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
                usage[key] += sample["usage"][key]
    with store.session() as session:
        for item in items:
            session.add(EvalOutputItem(id=new_id("outputitem_"), run_id=job_id, datasource_item_id=item["position"],
                                       status=item["status"], created_at=now, body=item["body"]))
        run = session.get(EvalRun, job_id)
        run.results = json.loads(json.dumps(results))  # a new value: the JSON column sees the change
        run.last_modified_at = now
