"""A verifiable task on which reinforcement fine-tuning measurably teaches ``tailor.tiny``.

The task: "Which fruit is in this sentence? Ana ate a plum on Monday." — answer with the fruit's
name and nothing else. The supervised data answers it in two styles, as data gathered from two
sources does: 30 % the bare name ("plum"), 70 % a sentence ("The fruit is plum."). The product
needs the bare name, and a strict code grader rewards exactly that (1 when the answer, stripped,
equals the reference; else 0).

After supervised fine-tuning (SFT) on that data the model greedily answers every held-out prompt
in the majority style: held-out accuracy 0. The strict style is in its distribution, only never
its first choice — which is what reinforcement fine-tuning is for: among the 8 answers it samples
per prompt some are bare names, the grader rewards them, GRPO makes them more likely, and the
greedy answer flips. More SFT on the same data cannot do that: it fits the 70/30 mix ever better.
Learning is measured where reward hacking cannot hide it: greedy answers to held-out prompts
(sentences with name/day combinations never trained on), scored by the same strict rule.

Used by the proof-of-learning test (``tests/train/test_rft_learning.py``), the boto3 job test and
``bench/rft.py``; numbers in docs/performance.md.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

FRUITS = ("apple", "banana", "cherry", "grape", "lemon", "mango", "orange", "peach", "pear", "plum")
NAMES = ("Tom", "Ana", "Li", "Sam", "Eva", "Raj", "Kim", "Max", "Zoe", "Ben", "Ida", "Leo")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# Measured (docs/performance.md): 10 epochs of SFT put the strict style in the model's samples
# without making it greedy; then one RFT epoch at 3e-4 (full) or 1e-3 (LoRA) flips most answers.
SFT_HYPERPARAMETERS = {"epochCount": "10", "batchSize": "8", "learningRateMultiplier": "1"}
RFT_HYPERPARAMETERS = {"epochCount": 1, "batchSize": 16, "learningRate": 3e-4, "trainingSamplePerPrompt": 8,
                       "inferenceMaxTokens": 8, "evalInterval": 10}
RFT_LORA_HYPERPARAMETERS = {**RFT_HYPERPARAMETERS, "learningRate": 1e-3, "tuningMethod": "lora"}
MAX_ANSWER_TOKENS = 8

# The strict grader, on the Lambda contract: what a user writes and registers
# (`tailor graders create exact-answer --file exact_answer.py`).
STRICT_GRADER = '''"""Exact answer: reward 1 when the answer, stripped, is exactly the reference; else 0."""


def lambda_handler(event, context):
    results = []
    for sample in event:
        answer = sample["messages"][-1]["content"].strip()
        reference = (sample.get("metadata") or {}).get("reference_answer", sample.get("reference_answer"))
        correct = float(answer == str(reference).strip())
        results.append({"id": sample["id"], "aggregate_reward_score": correct,
                        "metrics_list": [{"name": "exact", "value": correct, "type": "Reward"},
                                         {"name": "length", "value": len(answer), "type": "Metric"}]})
    return results
'''


@dataclass(frozen=True)
class Question:
    prompt: str
    fruit: str


@dataclass(frozen=True)
class TaskFiles:
    sft: Path  # chat examples in both answer styles (FINE_TUNING)
    rft: Path  # the same prompts with reference_answer (REINFORCEMENT_FINE_TUNING)
    held_out: Path  # unseen prompts with reference_answer: the validation file of the RFT run
    grader: Path  # STRICT_GRADER as a file to register


def questions(count: int = 200, seed: int = 0) -> list[Question]:
    """``count`` distinct questions (fruit, name and day drawn without repeats), seeded."""
    combos = [(fruit, name, day) for fruit in FRUITS for name in NAMES for day in DAYS]
    random.Random(seed).shuffle(combos)
    return [Question(f"Which fruit is in this sentence? {name} ate a {fruit} on {day}.", fruit)
            for fruit, name, day in combos[:count]]


def split(items: list[Question], held_out_share: float = 0.2) -> tuple[list[Question], list[Question]]:
    cut = round(len(items) * (1 - held_out_share))
    return items[:cut], items[cut:]


def sft_record(question: Question, rng: random.Random, strict_share: float) -> dict:
    answer = question.fruit if rng.random() < strict_share else f"The fruit is {question.fruit}."
    return {"messages": [{"role": "user", "content": question.prompt}, {"role": "assistant", "content": answer}]}


def rft_record(question: Question) -> dict:
    return {"messages": [{"role": "user", "content": question.prompt}], "reference_answer": question.fruit}


def write_task(folder: Path, *, count: int = 200, strict_share: float = 0.3, seed: int = 0) -> TaskFiles:
    """Write the task's data files and the grader into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    train, held_out = split(questions(count, seed))
    rng = random.Random(seed)
    files = TaskFiles(folder / "sft.jsonl", folder / "rft.jsonl", folder / "held_out.jsonl", folder / "exact_answer.py")
    _write_lines(files.sft, [sft_record(q, rng, strict_share) for q in train])
    _write_lines(files.rft, [rft_record(q) for q in train])
    _write_lines(files.held_out, [rft_record(q) for q in held_out])
    files.grader.write_text(STRICT_GRADER)
    return files


def _write_lines(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))


def held_out_accuracy(model: str, held_out: Path, settings) -> tuple[float, list[str]]:
    """Greedy answers of ``model`` (an id or a training output folder) to the held-out prompts,
    through Tailor's inference code, and the share that are exactly the fruit's name."""
    from tailor.serve.generation import chat, load_for_inference

    records = [json.loads(line) for line in held_out.read_text().splitlines()]
    loaded = load_for_inference(model, settings, progress=False)
    answers = chat(loaded, [r["messages"][0]["content"] for r in records], max_new_tokens=MAX_ANSWER_TOKENS)
    correct = sum(answer.strip() == record["reference_answer"] for answer, record in zip(answers, records))
    return correct / len(records), answers
