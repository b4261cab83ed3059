"""Math with ground-truth verification: reward 1 when the answer's final number equals the reference.

Record field read:
    reference_answer  the expected answer: a number; a string holding one ("42", "-3.5", "3/4",
                      "#### 1,234"); or an object with an "answer" key. A reference that holds no
                      number (a letter choice, "x = y + 1") is compared as text instead, with
                      tailor.evaluate.metrics.exact_match (case, punctuation and articles ignored).

The final answer is, in this order of preference: the last \\boxed{...}; the last "answer: X",
"answer is X" or "#### X"; else the last number anywhere in the completion. Numbers may carry
thousands separators, decimals, a sign, or be fractions (3/4, \\frac{3}{4}); they are equal within
a relative tolerance of 1e-6.

Metrics: correct (Reward), has_answer (Metric: a final answer was found at all), boxed (Metric:
it was given in \\boxed{}: a useful format signal to watch while training).

    tailor graders create math --file math_ground_truth.py
    tailor graders test math --data train.jsonl
"""

import re
from fractions import Fraction

from tailor.evaluate.metrics import exact_match
from tailor.graders.contract import completion_of, reference_of

TOLERANCE = 1e-6
NUMBER = re.compile(r"-?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:\s*/\s*\d+)?")
BOXED = re.compile(r"\\boxed\s*\{((?:[^{}]|\{[^{}]*\})*)\}")
ANSWER = re.compile(r"(?:answer\s*(?:is|:|=)|####)\s*([^\n]+)", re.IGNORECASE)
FRACTION = re.compile(r"\\d?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")


def lambda_handler(event, context):
    """event: the batch (a list of samples); returns one result per sample, aligned by id."""
    return [grade(sample) for sample in event]


def grade(sample):
    reference = reference_of(sample)
    if isinstance(reference, dict):
        reference = reference.get("answer")
    if reference is None:
        raise ValueError("the record has no reference_answer")  # this sample scores 0 with this error
    answer, boxed = final_answer(completion_of(sample))
    expected = reference if isinstance(reference, (int, float)) else final_answer(str(reference))[0]
    expected_number = to_number(expected)
    if expected_number is None:  # a textual reference: compare the texts
        correct = answer is not None and exact_match(answer, str(reference)) == 1.0
    else:
        value = to_number(answer)
        correct = value is not None and abs(value - expected_number) <= TOLERANCE * max(1.0, abs(expected_number))
    return {
        "id": sample["id"],
        "aggregate_reward_score": float(correct),
        "metrics_list": [
            {"name": "correct", "value": float(correct), "type": "Reward"},
            {"name": "has_answer", "value": float(answer is not None), "type": "Metric"},
            {"name": "boxed", "value": float(boxed), "type": "Metric"},
        ],
    }


def final_answer(text):
    """(the final answer's text or None, whether it was boxed)."""
    text = FRACTION.sub(r"\1/\2", text)  # \frac{3}{4} -> 3/4
    boxed = BOXED.findall(text)
    if boxed:
        return boxed[-1].strip(), True
    stated = ANSWER.findall(text)
    if stated:
        numbers = NUMBER.findall(stated[-1])
        return (numbers[0] if numbers else stated[-1].strip().rstrip(".")), False
    numbers = NUMBER.findall(text)
    return (numbers[-1] if numbers else None), False


def to_number(answer):
    """The number in an answer (its first one), or None."""
    if answer is None or isinstance(answer, bool):
        return None
    if isinstance(answer, (int, float)):
        return float(answer)
    numbers = NUMBER.findall(str(answer).replace("$", ""))
    if not numbers:
        return None
    try:
        return float(Fraction(numbers[0].replace(",", "").replace(" ", "")))
    except (ValueError, ZeroDivisionError):
        return None
