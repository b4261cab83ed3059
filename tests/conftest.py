"""Fixtures shared by the whole suite.

Every test gets its own TAILOR_HOME (``home``). The built-in tiny model takes about a minute to
build, so it is built once per session and linked into each test's home.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest

from tests.backing.postgres import *  # noqa: F401,F403  (fixtures: PostgreSQL servers)
from tests.backing.ray_cluster import *  # noqa: F401,F403  (fixtures: a local Ray cluster)
from tests.backing.s3 import *  # noqa: F401,F403  (fixtures: an S3-protocol server)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"  # beside the checkout; tests use the fixture
SEED_002_SYSTEM = ("You are a high-performance QA assistant that responds to questions concisely, "
                   "accurately, and appropriately.")


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> Path:
    """The built tiny model. ``TAILOR_TEST_MODELS`` names a folder that keeps it between runs (the
    build is deterministic and takes a minute); CI leaves it unset and builds afresh."""
    from tailor.tiny import tiny_model_dir

    kept = os.environ.get("TAILOR_TEST_MODELS")
    models = Path(kept) if kept else tmp_path_factory.mktemp("models")
    models.mkdir(parents=True, exist_ok=True)
    tiny_model_dir(models, progress=False)
    return models


def tiny_home(home: Path, tiny_models_dir: Path) -> Path:
    """Make ``home`` a TAILOR_HOME whose model cache links to the session's built tiny model."""
    (home / "models").mkdir(parents=True)
    for entry in tiny_models_dir.iterdir():
        if not entry.name.startswith("."):
            os.symlink(entry, home / "models" / entry.name)
    return home


@pytest.fixture
def home(tmp_path, monkeypatch, tiny_models_dir) -> Path:
    """A fresh TAILOR_HOME whose model cache already holds the built tiny model."""
    home = tiny_home(tmp_path / "home", tiny_models_dir)
    monkeypatch.setenv("TAILOR_HOME", str(home))
    monkeypatch.delenv("TAILOR_MODEL_ALIASES", raising=False)
    return home


def _shared(path: Path) -> Path:
    """``path`` when it exists; otherwise the test is skipped, saying where the data was looked
    for, and under CI (``CI`` set), where shared/ is always checked out beside the clone, it fails."""
    if not path.exists():
        reason = (f"shared dataset not found at {path}: the shared datasets are read from "
                  f"../shared/datasets beside the checkout ({REPO})")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The folder of the shared datasets (``../shared/datasets``, beside the checkout): the one
    place tests find them, so no test hard-codes where a checkout lives."""
    return _shared(SHARED_DATASETS)


@pytest.fixture
def bedrock_faq(shared_datasets) -> Path:
    """The 85 Q&A pairs of the shared bedrock-faq dataset."""
    return _shared(shared_datasets / "bedrock-faq" / "training.json")


# ---------------------------------------------------------------------------------------------
# Trained models, made once per session by the real training code (serving and evaluation tests):
# - ``full``: the tiny model fully fine-tuned on Tailor's own FAQ (it answers taught questions exactly);
# - ``lora_a`` / ``lora_b``: two LoRA adapters on the tiny base, taught different answers to the same
#   prompts, so one batch can prove that each row got its own adapter.


@dataclass(frozen=True)
class Trained:
    home: Path
    full: Path  # training output folders (manifest.json + model/)
    lora_a: Path
    lora_b: Path
    faq: list[dict]  # the records the full model was taught


def _codes(path: Path, multiplier: int) -> Path:
    with open(path, "w") as file:
        for i in range(16):
            file.write(json.dumps({"prompt": f"Code {i}?", "completion": f"The code is {i * multiplier}."}) + "\n")
    return path


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_models_dir) -> Trained:
    from tailor import assets
    from tailor.data.convert import convert_qa_file
    from tailor.settings import Settings
    from tailor.train import sft
    from tailor.train.spec import TrainSpec

    root = tmp_path_factory.mktemp("serving")
    home = tiny_home(root / "home", tiny_models_dir)
    settings = Settings(home=home)

    faq_file = root / "faq.jsonl"
    with resources.as_file(resources.files(assets).joinpath("tailor-faq.json")) as source:
        convert_qa_file(source, faq_file, system="You are Tailor's help desk.")
    faq = [json.loads(line) for line in faq_file.read_text().splitlines()][:16]
    faq_file.write_text("".join(json.dumps(record) + "\n" for record in faq))
    full = sft.run(TrainSpec("FINE_TUNING", "tailor.tiny", str(faq_file), root / "full", progress=False),
                   settings).output_dir
    # Enough to tell the two adapters apart (at a higher rate LoRA on the tiny model collapses to "...").
    lora = {"tuningMethod": "lora", "epochCount": "20", "batchSize": "4", "learningRateMultiplier": "1"}
    lora_a = sft.run(TrainSpec("FINE_TUNING", "tailor.tiny", str(_codes(root / "a.jsonl", 7)), root / "lora_a",
                               hyperparameters=lora, progress=False), settings).output_dir
    lora_b = sft.run(TrainSpec("FINE_TUNING", "tailor.tiny", str(_codes(root / "b.jsonl", 3)), root / "lora_b",
                               hyperparameters={**lora, "seed": "7"}, progress=False), settings).output_dir
    return Trained(home, full, lora_a, lora_b, faq)

# ---------------------------------------------------------------------------------------------
# An evaluation set and a judge, made once per session with the real engine and real training
# (evaluation tests, and the evaluation job through the API):
# - ``questions``: four FAQ questions the session's ``trained.full`` model was taught, with the
#   taught answers as references;
# - ``judge``: the tiny model fine-tuned to rate, in the judge's exact prompt form, a response equal
#   to the reference 9 and the base model's (greedy, hence repeatable) answer 2. It knows nothing
#   else — it is a test judge — but every token it emits is parsed like any judge's.

HELP_DESK_SYSTEM = "You are Tailor's help desk."
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
    from tailor.train.spec import TrainSpec

    root = tmp_path_factory.mktemp("evaluation")
    settings = Settings(home=trained.home)
    data = write_questions(root / "eval.jsonl", trained.faq[:4])
    questions = load_questions(str(data), settings)

    engine = Engine(settings)
    try:
        base = EngineModel("tailor.tiny", Target("tailor.tiny"), engine)
        base_answers = base.chat([[{"role": "user", "content": q.prompt}] for q in questions],
                                 Generation(max_tokens=96, system=HELP_DESK_SYSTEM))
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


# ---------------------------------------------------------------------------------------------
# One grader definition through three doors: a Bedrock evaluation's custom metric (FACTUAL, as
# customMetricConfig defines it), the OpenAI grader object it becomes (``factual_grader``), used as
# an Evals testing criterion and as an RFT grader. ``factual_judge`` is the tiny model fine-tuned
# to answer that grader's conversation — rendered exactly as the grader layer sends it, with its
# reply form — with 1 for a taught answer and 0 for the base model's answer to the four questions of
# ``evaluation``. It knows nothing else (a test judge), but every token it emits is parsed as any
# judge's. Servers serve it under JUDGE_ALIAS.

JUDGE_ALIAS = "tailor-judge"
FACTUAL = {"name": "Factual",
           "instructions": "Question: {{prompt}}\nReference: {{ground_truth}}\nAnswer: {{prediction}}\n"
                           "Does the answer state what the reference states?",
           "ratingScale": [{"definition": "it does not", "value": {"floatValue": 0}},
                           {"definition": "it does", "value": {"floatValue": 1}}]}
STATES, DIFFERS = "The answer states the reference.\nScore: 1", "The answer does not state the reference.\nScore: 0"


def factual_grader() -> dict:
    """FACTUAL as the grader layer grades it: an OpenAI ``score_model`` definition."""
    from tailor.evaluate.judge import custom_grader
    from tailor.evaluate.spec import CustomMetric, RatingScaleItem

    scale = tuple(RatingScaleItem(item["definition"], item["value"]["floatValue"]) for item in FACTUAL["ratingScale"])
    return custom_grader(CustomMetric(FACTUAL["name"], FACTUAL["instructions"], scale), JUDGE_ALIAS)


@pytest.fixture(scope="session")
def factual_judge(evaluation, tmp_path_factory) -> Path:
    from tailor.graders.openai import sample_namespace, validate
    from tailor.graders.openai.model_graders import SCORE_FORM, _conversation
    from tailor.settings import Settings
    from tailor.train import sft
    from tailor.train.spec import TrainSpec

    settings = Settings(home=evaluation.settings.home, model_aliases={JUDGE_ALIAS: "tailor.tiny"})
    grader = validate(factual_grader(), settings)
    low, high = grader.range
    records = []
    for question, base_answer in zip(evaluation.questions, evaluation.base_answers):
        for answer, verdict in ((question.reference, STATES), (base_answer, DIFFERS)):
            case = {"item": {"prompt": question.prompt, "referenceResponse": question.reference},
                    "sample": sample_namespace(answer)}
            conversation = _conversation(grader, case, SCORE_FORM.format(low=low, high=high))
            records.append({"messages": [*conversation, {"role": "assistant", "content": verdict}]})
    root = tmp_path_factory.mktemp("factual-judge")
    (root / "judge.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records * 6))
    return sft.run(TrainSpec("FINE_TUNING", "tailor.tiny", str(root / "judge.jsonl"), root / "judge",
                             hyperparameters={"epochCount": "12", "batchSize": "4"}, progress=False),
                   evaluation.settings).output_dir
