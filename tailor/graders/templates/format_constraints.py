"""Format and constraint checking: the answer must be a JSON object with the required keys, short enough.

Record fields read (all optional; the constants below are the defaults):
    required_keys     the keys the JSON object must have, e.g. ["name", "category"]
    max_length        the longest allowed answer, in characters
    reference_answer  an object: each of its keys is compared with the answer's value
                      (tailor.evaluate.metrics.exact_match) and reported as field_accuracy

One metric per constraint, so a training run shows which one the model keeps breaking:
    valid_json     (Reward) the answer is a JSON object (a ```json fence around it is allowed)
    required_keys  (Reward) the share of required keys present
    within_length  (Reward) 1 when the answer is at most max_length characters
    field_accuracy (Metric) the share of reference fields matched; reported only, change
                   WEIGHTS to reward it
The reward is the weighted mean of the Reward metrics.

    tailor graders create json-format --file format_constraints.py
"""

import json
import re

from tailor.evaluate.metrics import exact_match
from tailor.graders.contract import completion_of, field_of, reference_of

REQUIRED_KEYS = ["answer"]
MAX_LENGTH = 2000
WEIGHTS = {"valid_json": 1.0, "required_keys": 1.0, "within_length": 1.0}
FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n\s*```\s*$", re.DOTALL)


def lambda_handler(event, context):
    return [grade(sample) for sample in event]


def grade(sample):
    text = completion_of(sample)
    required = field_of(sample, "required_keys") or REQUIRED_KEYS
    max_length = field_of(sample, "max_length") or MAX_LENGTH
    parsed = parse_object(text)
    checks = {
        "valid_json": float(parsed is not None),
        "required_keys": sum(key in parsed for key in required) / len(required) if parsed is not None else 0.0,
        "within_length": float(len(text) <= max_length),
    }
    reward = sum(WEIGHTS[name] * value for name, value in checks.items()) / sum(WEIGHTS.values())
    metrics = [{"name": name, "value": value, "type": "Reward"} for name, value in checks.items()]
    reference = reference_of(sample)
    if isinstance(reference, dict) and reference:
        matched = sum(exact_match(str((parsed or {}).get(key, "")), str(value)) for key, value in reference.items())
        metrics.append({"name": "field_accuracy", "value": matched / len(reference), "type": "Metric"})
    return {"id": sample["id"], "aggregate_reward_score": reward, "metrics_list": metrics}


def parse_object(text):
    """The JSON object the answer is, or None."""
    fenced = FENCE.match(text)
    try:
        value = json.loads(fenced.group(1) if fenced else text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
