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


def test_cpt_trains_from_its_on_disk_token_cache_exactly_as_from_lists(home, tmp_path):
    """The training file is tokenized once into an on-disk cache the loop reads batch by batch
    (files bigger than memory); the run is step for step the one in-memory examples give, and a
    second run on the same file reuses the cache."""
    from tailor.train.supervised import run_recipe

    text = tmp_path / "notes.jsonl"
    text.write_text("".join(json.dumps({"input": f"Note {i}: the harbour tide turns at {i % 12} o'clock."
                                        + " And the boats wait." * (i % 4)}) + "\n" for i in range(40)))
    settings = get_settings()

    def spec(name: str) -> TrainSpec:
        return TrainSpec("CONTINUED_PRE_TRAINING", "tailor.tiny", str(text), tmp_path / name,
                         hyperparameters={"epochCount": "2", "batchSize": "8"}, progress=False)

    def caches() -> list:
        return [path for path in (home / "cache" / "tokens").iterdir() if path.is_dir()]

    cached = cpt.run(spec("cached"), settings)
    [cache] = caches()
    in_memory = run_recipe(spec("lists"), settings, cpt.examples_for)  # the records read as lists
    assert (cached.output_dir / TRAINING_METRICS).read_text() == (in_memory.output_dir / TRAINING_METRICS).read_text()
    assert cached.manifest["data"]["training"]["records"] == 40

    built = cache.stat().st_mtime_ns
    cpt.run(spec("again"), settings)
    assert caches() == [cache]
    assert cache.stat().st_mtime_ns == built
