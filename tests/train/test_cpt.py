"""Real continued pre-training: the loss on the taught text falls by at least half."""

from __future__ import annotations

import json

import pytest

from tailor.catalog import CustomizationType, resolve_model
from tailor.data.convert import read_items
from tailor.data.validate import load_records
from tailor.serve.generation import load_for_inference
from tailor.settings import get_settings
from tailor.train import cpt
from tailor.train.loop import mean_loss
from tailor.train.spec import TrainSpec
from tailor.trained import TRAINING_METRICS
from tailor.weights import device

pytestmark = pytest.mark.slow


def test_cpt_loss_on_the_taught_text_halves(home, tmp_path, bedrock_faq):
    pairs, _ = read_items(bedrock_faq)
    train_file = tmp_path / "letters.jsonl"
    with open(train_file, "w") as file:
        for pair in pairs:
            file.write(json.dumps({"input": pair["sentence2"]}) + "\n")
    settings = get_settings()
    records = load_records(str(train_file), CustomizationType.CONTINUED_PRE_TRAINING, resolve_model("tailor.tiny", settings),
                           purpose="training")

    def loss_of(reference: str) -> float:
        loaded = load_for_inference(reference, settings, progress=False)
        examples = cpt.examples_for(records, loaded.tokenizer)
        assert all(e.target_count == len(e.input_ids) for e in examples)  # every token is a target
        return mean_loss(loaded.model, examples, 16, loaded.tokenizer.pad_token_id, device())

    before = loss_of("tailor.tiny")
    outcome = cpt.run(TrainSpec("CONTINUED_PRE_TRAINING", "tailor.tiny", str(train_file), tmp_path / "run",
                                hyperparameters={"epochCount": "8"}, progress=False), settings)
    after = loss_of(str(outcome.output_dir))
    assert after <= 0.5 * before, (before, after)
    assert outcome.manifest["customization_type"] == "CONTINUED_PRE_TRAINING"
    assert (outcome.output_dir / TRAINING_METRICS).is_file()


def test_cpt_rejects_chat_records(home, tmp_path):
    from tailor.errors import InvalidInput

    data = tmp_path / "chat.jsonl"
    data.write_text(json.dumps({"prompt": "a", "completion": "b"}) + "\n")
    with pytest.raises(InvalidInput) as error:
        cpt.run(TrainSpec("CONTINUED_PRE_TRAINING", "tailor.tiny", str(data), tmp_path / "run", progress=False))
    assert "line 1" in error.value.message
