"""An evaluation set and a judge, made once per session with the real engine and real training.

- ``questions``: four FAQ questions the session's ``trained.full`` model was taught, with the
  taught answers as references;
- ``judge``: the tiny model fine-tuned to rate, in the judge's exact prompt form, a response equal
  to the reference 9 and the base model's (greedy, hence repeatable) answer 2. It knows nothing
  else — it is a test judge — but every token it emits is parsed like any judge's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

SYSTEM = "You are Tailor's help desk."
GOOD_VERDICT = "The response states the facts of the reference answer.\nRating: 9"
BAD_VERDICT = "The response does not answer the question.\nRating: 2"


@dataclass(frozen=True)
class Evaluation:
    settings: object
    data: Path  # the evaluation JSONL
    questions: list  # tailor.evaluate.results.Question
    full: Path  # the fine-tuned model's training output folder
    judge: Path  # the judge's training output folder
    base_answers: list[str]


def write_questions(path: Path, faq: list[dict]) -> Path:
    lines = [{"prompt": r["messages"][0]["content"], "referenceResponse": r["messages"][1]["content"],
              "category": "product" if i % 2 == 0 else "api"} for i, r in enumerate(faq)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture(scope="session")
def evaluation(trained, tmp_path_factory) -> Evaluation:
    from tailor.evaluate.backends import EngineModel, Generation
    from tailor.evaluate.dataset import load_questions
    from tailor.evaluate.judge import judge_messages
    from tailor.serve.engine import Engine
    from tailor.serve.protocol import Target
    from tailor.settings import Settings
    from tailor.train import sft
    from tailor.train.common import TrainSpec

    root = tmp_path_factory.mktemp("evaluation")
    settings = Settings(home=trained.home)
    data = write_questions(root / "eval.jsonl", trained.faq[:4])
    questions = load_questions(str(data), settings)

    engine = Engine(settings)
    try:
        base = EngineModel("tailor.tiny", Target("tailor.tiny"), engine)
        base_answers = base.chat([[{"role": "user", "content": q.prompt}] for q in questions],
                                 Generation(max_tokens=96, system=SYSTEM))
    finally:
        engine.close()

    records = []
    for question, base_answer in zip(questions, base_answers):
        for response, verdict in ((question.reference, GOOD_VERDICT), (base_answer, BAD_VERDICT)):
            system, user = judge_messages("Builtin.Correctness", question.prompt, response, question.reference)
            records.append({"system": system["content"], "messages": [
                {"role": "user", "content": user["content"]}, {"role": "assistant", "content": verdict}]})
    judge_data = root / "judge.jsonl"
    judge_data.write_text("".join(json.dumps(r) + "\n" for r in records * 6))
    judge = sft.run(TrainSpec("FINE_TUNING", "tailor.tiny", str(judge_data), root / "judge",
                              hyperparameters={"epochCount": "12", "batchSize": "4"}, progress=False),
                    settings).output_dir
    return Evaluation(settings, data, questions, trained.full, judge, base_answers)
