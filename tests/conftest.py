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

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"
BEDROCK_FAQ = SHARED_DATASETS / "bedrock-faq" / "training.json"
SEED_002_SYSTEM = ("You are a high-performance QA assistant that responds to questions concisely, "
                   "accurately, and appropriately.")


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> Path:
    from tailor.tiny import tiny_model_dir

    models = tmp_path_factory.mktemp("models")
    tiny_model_dir(models, progress=False)
    return models


@pytest.fixture
def home(tmp_path, monkeypatch, tiny_models_dir) -> Path:
    """A fresh TAILOR_HOME whose model cache already holds the built tiny model."""
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    for entry in tiny_models_dir.iterdir():
        if not entry.name.startswith("."):
            os.symlink(entry, home / "models" / entry.name)
    monkeypatch.setenv("TAILOR_HOME", str(home))
    monkeypatch.delenv("TAILOR_MODEL_ALIASES", raising=False)
    return home


@pytest.fixture
def bedrock_faq() -> Path:
    """The 85 Q&A pairs of ``shared/datasets`` (beside the checkout). CI must have them."""
    if not BEDROCK_FAQ.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"shared dataset not found at {BEDROCK_FAQ}; CI runs with shared/ beside the clone")
        pytest.skip(f"shared dataset not found at {BEDROCK_FAQ}")
    return BEDROCK_FAQ


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
    from tailor.train.common import TrainSpec

    root = tmp_path_factory.mktemp("serving")
    home = root / "home"
    (home / "models").mkdir(parents=True)
    for entry in tiny_models_dir.iterdir():
        if not entry.name.startswith("."):
            os.symlink(entry, home / "models" / entry.name)
    settings = Settings(home=home)

    faq_file = root / "faq.jsonl"
    with resources.as_file(resources.files(assets).joinpath("tailor-faq.json")) as source:
        convert_qa_file(source, faq_file, system="You are Tailor's help desk.")
    faq = [json.loads(line) for line in faq_file.read_text().splitlines()][:16]
    faq_file.write_text("".join(json.dumps(record) + "\n" for record in faq))
    full = sft.run(TrainSpec("FINE_TUNING", "tailor.tiny", str(faq_file), root / "full", progress=False),
                   settings).output_dir
    lora = {"tuningMethod": "lora", "epochCount": "3", "learningRateMultiplier": "10"}
    lora_a = sft.run(TrainSpec("FINE_TUNING", "tailor.tiny", str(_codes(root / "a.jsonl", 7)), root / "lora_a",
                               hyperparameters=lora, progress=False), settings).output_dir
    lora_b = sft.run(TrainSpec("FINE_TUNING", "tailor.tiny", str(_codes(root / "b.jsonl", 3)), root / "lora_b",
                               hyperparameters={**lora, "seed": "7"}, progress=False), settings).output_dir
    return Trained(home, full, lora_a, lora_b, faq)
