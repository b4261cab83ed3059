"""Fixtures shared by the whole suite.

Every test gets its own TAILOR_HOME (``home``). The built-in tiny model takes about a minute to
build, so it is built once per session and linked into each test's home.
"""

from __future__ import annotations

import os
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
