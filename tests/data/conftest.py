"""Fixtures for the data tests: an isolated TAILOR_HOME, JSONL writers and small families."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tailor.catalog import (
    FAMILIES,
    FOUNDATION_MODELS,
    CustomizationType,
    DataFormat,
    DataLimits,
    Family,
    ResolvedModel,
)

FT = CustomizationType.FINE_TUNING
CPT = CustomizationType.CONTINUED_PRE_TRAINING
TINY_WEIGHTS = FOUNDATION_MODELS["tailor.tiny"].weights


@pytest.fixture(autouse=True)
def tailor_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("TAILOR_HOME", str(home))
    monkeypatch.delenv("TAILOR_MODEL_ALIASES", raising=False)
    return home


def model_for(family: Family) -> ResolvedModel:
    return ResolvedModel(model_id=f"test.{family.name}", family=family, weights=TINY_WEIGHTS,
                         customization_types=tuple(family.formats))


@pytest.fixture
def make_model() -> Callable[..., ResolvedModel]:
    """A model of a test family: messages for fine-tuning, text for CPT, any limits overridden."""

    def make(formats: tuple[DataFormat, ...] = (DataFormat.MESSAGES,), **limits: Any) -> ResolvedModel:
        family = Family(
            name="test-family",
            description="a family for tests",
            formats={FT: formats, CPT: (DataFormat.TEXT,)},
            limits=replace(DataLimits(), **limits),
        )
        return model_for(family)

    return make


@pytest.fixture
def haiku() -> ResolvedModel:
    return model_for(FAMILIES["anthropic.claude-3-haiku"])


@pytest.fixture
def tailor_family_model() -> ResolvedModel:
    return model_for(FAMILIES["tailor"])


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., str]:
    """Write lines (dicts become JSON, strings are written as they are) to a JSONL file."""

    def write_lines(lines: list[Any], name: str = "data.jsonl") -> str:
        path = tmp_path / name
        text = "".join((json.dumps(line) if not isinstance(line, str) else line) + "\n"
                       for line in lines)
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write_lines

