"""The edge of a run: every file validated before anything loads, and held-out data drawn the same
way on every run when no validation file is given. Tokenizer only, no model."""

from __future__ import annotations

import json

import pytest

from tailor.errors import InvalidInput
from tailor.settings import Settings
from tailor.train.prepare import load_data, prepare
from tailor.train.spec import TrainSpec

COHERE = "cohere.command-light-text-v14:7:4k"  # its family holds out evalPercentage (20 %) of the records


def write(path, count: int):
    path.write_text("".join(json.dumps({"prompt": f"Q{i}?", "completion": f"A{i}."}) + "\n" for i in range(count)))
    return path


def test_a_family_with_eval_percentage_holds_out_the_same_records_on_every_run(home, tmp_path):
    settings = Settings(home=home, model_aliases={COHERE: "tailor.tiny"})
    spec = TrainSpec("FINE_TUNING", COHERE, str(write(tmp_path / "train.jsonl", 40)), tmp_path / "run",
                     progress=False)
    model_ref, config, tokenizer = prepare(spec, settings)
    train, validation, data, notes = load_data(spec, model_ref, config, tokenizer, settings)
    assert (len(train), len(validation), data["validation_held_out"]) == (32, 8, 8)
    assert data["training"]["records"] == 40 and len(data["training"]["sha256"]) == 64
    assert "8 training records (20 %, evalPercentage) were held out" in notes[0]
    again = load_data(spec, model_ref, config, tokenizer, settings)
    assert [r.prompt for r in again[1]] == [r.prompt for r in validation]


def test_every_file_is_checked_before_anything_is_trained(home, tmp_path):
    settings = Settings(home=home)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a"}\n')
    spec = TrainSpec("FINE_TUNING", "tailor.tiny", str(write(tmp_path / "train.jsonl", 4)), tmp_path / "run",
                     validation_uris=(str(bad),), progress=False)
    model_ref, config, tokenizer = prepare(spec, settings)
    with pytest.raises(InvalidInput, match="nothing was trained") as error:
        load_data(spec, model_ref, config, tokenizer, settings)
    assert "bad.jsonl" in error.value.message
