"""The grader contract of the original service's reinforcement fine-tuning, both halves.

A grader (an AWS Lambda function there; a registered Python file or HTTP endpoint here) receives a
*batch*: a JSON list of samples, one per generated answer (rollout)::

    [{"id": "7f3a...-0",
      "messages": [{"role": "user", "content": "What is 6 x 7?"},
                   {"role": "assistant", "content": "<the rollout>"}],
      "metadata": {"reference_answer": "42", "task_id": "t-1"},
      "reference_answer": "42"}]

Each sample is the training record with the generated assistant turn appended to ``messages`` and a
unique ``id``. Every other top-level field of the record travels in ``metadata``; the
``reference_answer`` is *also* repeated at the top level, because the original service's variants
disagree on where it lives (the Bedrock samples read ``metadata``, the open-weight and Nova ones
the top level) and a grader written for either must work unchanged.

The grader returns a list aligned by ``id``::

    [{"id": "7f3a...-0", "aggregate_reward_score": 1.0,
      "metrics_list": [{"name": "correct", "value": 1.0, "type": "Reward"}]}]

``aggregate_reward_score`` (a finite number, conventionally 0–1) is the training reward;
``metrics_list`` is optional (``type`` is ``Reward`` or ``Metric``) and extra keys such as
``reward_components`` are ignored. ``read_results`` is strict about everything else: a sample the
grader left out, a score that is not a number (or is NaN), or a malformed item scores 0.0 with an
``error`` that says what was wrong. A grader bug therefore shows up as an explained zero reward,
never as a crash of the training job and never as a made-up score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

METRIC_TYPES = ("Reward", "Metric")


@dataclass(frozen=True)
class GradeResult:
    """One sample's grade: the reward, the named metrics, and why the reward is 0 if it failed."""

    id: str
    reward: float
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict:
        return {"id": self.id, "reward": self.reward, "metrics": dict(self.metrics), "error": self.error}


def failed(sample_id: str, error: str) -> GradeResult:
    """A zero reward with its explanation."""
    return GradeResult(sample_id, 0.0, {}, error)


# ---------------------------------------------------------------------------------------------
# What a grader receives


def sample(record: dict, completion: str, sample_id: str) -> dict:
    """The batch item for one rollout of ``record`` (an RFT training record, docs/data.md)."""
    metadata = {key: value for key, value in record.items() if key != "messages"}
    messages = [dict(message) for message in record.get("messages") or []]
    return {
        "id": sample_id,
        "messages": [*messages, {"role": "assistant", "content": completion}],
        "metadata": metadata,
        "reference_answer": record.get("reference_answer"),
    }


# Readers for grader authors: the templates use them, and they accept both placements.


def text_of(content: Any) -> str:
    """A message's text: a plain string, or the text parts of an OpenAI-style content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def completion_of(sample: dict) -> str:
    """The generated answer: the last assistant turn of the sample's messages."""
    for message in reversed(sample.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "assistant":
            return text_of(message.get("content"))
    return ""


def prompt_of(sample: dict) -> list[dict]:
    """The conversation the answer replies to: every message before the last assistant turn."""
    messages = list(sample.get("messages") or [])
    for index in range(len(messages) - 1, -1, -1):
        if isinstance(messages[index], dict) and messages[index].get("role") == "assistant":
            return messages[:index]
    return messages


def reference_of(sample: dict) -> Any:
    """The reference answer, from ``metadata`` or the top level: the original's graders read either
    place, so both are accepted."""
    metadata = sample.get("metadata")
    if isinstance(metadata, dict) and metadata.get("reference_answer") is not None:
        return metadata["reference_answer"]
    return sample.get("reference_answer")


def field_of(sample: dict, name: str, default: Any = None) -> Any:
    """Any extra record field, from ``metadata`` or the top level."""
    metadata = sample.get("metadata")
    if isinstance(metadata, dict) and name in metadata:
        return metadata[name]
    return sample.get(name, default)


# ---------------------------------------------------------------------------------------------
# What a grader returns


def read_results(samples: list[dict], returned: Any) -> list[GradeResult]:
    """One ``GradeResult`` per sample, in the samples' order, from whatever the grader returned."""
    ids = [str(item["id"]) for item in samples]
    if not isinstance(returned, list):
        reason = f"the grader returned {_shown(returned)}, not a list of results"
        return [failed(sample_id, reason) for sample_id in ids]
    wanted = set(ids)
    items: dict[str, Any] = {}
    problems: dict[str, str] = {}
    stray: list[str] = []  # items that name no sample: reported on every sample left without a result
    for position, item in enumerate(returned):
        item_id = item.get("id") if isinstance(item, dict) else None
        if isinstance(item_id, (str, int)) and not isinstance(item_id, bool):
            item_id = str(item_id)
        else:
            what = "has no \"id\"" if isinstance(item, dict) else f"is {_shown(item)}, not an object"
            stray.append(f"item {position} {what}")
            continue
        if item_id not in wanted:
            stray.append(f"item {position} has id {item_id!r}, which is not in the batch")
        elif item_id in items:
            problems[item_id] = f"the grader returned more than one result for id {item_id!r}"
        else:
            items[item_id] = item
    results = []
    for sample_id in ids:
        if sample_id in problems:
            results.append(failed(sample_id, problems[sample_id]))
        elif sample_id not in items:
            reason = f"the grader returned no result for id {sample_id!r}"
            if stray:
                reason += f" ({'; '.join(stray[:3])}{'; ...' if len(stray) > 3 else ''})"
            results.append(failed(sample_id, reason))
        else:
            results.append(_read_item(sample_id, items[sample_id]))
    return results


def _read_item(sample_id: str, item: dict) -> GradeResult:
    if "aggregate_reward_score" not in item:
        return failed(sample_id, "the result has no \"aggregate_reward_score\"")
    reward = _number(item["aggregate_reward_score"])
    if reward is None:
        return failed(sample_id, f"aggregate_reward_score is {_shown(item['aggregate_reward_score'])}, "
                                 "not a finite number")
    metrics_list = item.get("metrics_list", [])
    if metrics_list is None:
        metrics_list = []
    if not isinstance(metrics_list, list):
        return failed(sample_id, f"metrics_list is {_shown(metrics_list)}, not a list")
    metrics: dict[str, float] = {}
    for position, metric in enumerate(metrics_list):
        where = f"metrics_list[{position}]"
        if not isinstance(metric, dict):
            return failed(sample_id, f"{where} is {_shown(metric)}, not an object")
        name = metric.get("name")
        if not isinstance(name, str) or not name:
            return failed(sample_id, f"{where} has no \"name\" string")
        value = _number(metric.get("value"))
        if value is None:
            return failed(sample_id, f"{where} ({name}): value is {_shown(metric.get('value'))}, "
                                     "not a finite number")
        kind = metric.get("type", "Metric")
        if kind not in METRIC_TYPES:
            return failed(sample_id, f"{where} ({name}): type is {_shown(kind)}; expected Reward or Metric")
        metrics[name] = value
    return GradeResult(sample_id, reward, metrics, None)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _shown(value: Any) -> str:
    """A short rendering of what a grader returned, for the error that rejects it."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # nan / inf
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
