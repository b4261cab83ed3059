"""Several processes train as one: two gloo processes on this CPU, launched by torchrun as
``tailor train --processes 2`` launches them (``recipes.launch``), follow the one-process run's loss
curve step by step (same global batch) and save one model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tailor.data.render import IGNORE_INDEX, Example
from tailor.settings import Settings
from tailor.train import recipes, sft
from tailor.train.distributed import World, share_of
from tailor.train.spec import TrainSpec
from tailor.trained import TRAINING_METRICS, VALIDATION_METRICS

# Measured on this CPU: the two-process losses differ from the one-process ones by at most ~1e-6
# (float sums in another order); anything from a wrong split or normalisation is orders larger.
TOLERANCE = 1e-4


def write_data(folder: Path) -> tuple[Path, Path]:
    pairs = [{"prompt": f"What is code {i}?" + " please" * (i % 5), "completion": f"Code {i} is {i * 7 % 10}."}
             for i in range(28)]
    train, valid = folder / "train.jsonl", folder / "valid.jsonl"
    train.write_text("".join(json.dumps(p) + "\n" for p in pairs[:23]))  # 23: the last batch is odd
    valid.write_text("".join(json.dumps(p) + "\n" for p in pairs[23:]))
    return train, valid


def losses(folder: Path, name: Path = TRAINING_METRICS, column: str = "training_loss") -> list[float]:
    with open(folder / name) as file:
        return [float(row[column]) for row in csv.DictReader(file)]


def test_each_process_takes_every_nth_record_by_length_and_short_shares_are_padded_without_targets():
    batch = [Example(input_ids=[1] * n, labels=[2] * n) for n in (5, 1, 4, 2, 3)]
    first, second = share_of(batch, World(0, 2), pad_id=0), share_of(batch, World(1, 2), pad_id=0)
    assert [len(e.input_ids) for e in first] == [1, 3, 5]
    assert [len(e.input_ids) for e in second] == [2, 4, 1]  # padded: every process runs as many passes
    assert second[-1].labels == [IGNORE_INDEX]
    assert share_of(batch, World(), pad_id=0) is batch


@pytest.mark.slow
@pytest.mark.parametrize("tuning, parallelism", [("full", "data-parallel"), ("lora", "data-parallel"),
                                                 ("full", "fully-sharded"), ("lora", "fully-sharded")])
def test_two_processes_follow_the_one_process_loss_curve_and_save_one_model(home, tmp_path, tuning, parallelism):
    train, valid = write_data(tmp_path)
    hyperparameters = {"epochCount": "2", "batchSize": "4", "microBatchSize": "1", "tuningMethod": tuning}

    def spec(out: str, **extra) -> TrainSpec:
        return TrainSpec("FINE_TUNING", "tailor.tiny", str(train), tmp_path / out, validation_uris=(str(valid),),
                         hyperparameters=hyperparameters, progress=False, **extra)

    sft.run(spec("one"), Settings(home=home))
    outcome = recipes.launch(spec("two", parallelism=parallelism), Settings(home=home), processes=2)  # torchrun

    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) == len(two) == 12  # 2 epochs of 6 batches
    print(f"{tuning} {parallelism}: largest loss difference {max(abs(a - b) for a, b in zip(one, two)):.2e}")
    assert max(abs(a - b) for a, b in zip(one, two)) < TOLERANCE, (one, two)
    assert one[-1] < one[0]  # it learned
    validation = losses(tmp_path / "two", VALIDATION_METRICS, "validation_loss")
    assert max(abs(a - b) for a, b in zip(validation, losses(tmp_path / "one", VALIDATION_METRICS,
                                                              "validation_loss"))) < TOLERANCE

    # One model, saved once, loadable: the folder holds exactly what a one-process run's does.
    assert sorted(p.name for p in (tmp_path / "two" / "model").iterdir()) == sorted(
        p.name for p in (tmp_path / "one" / "model").iterdir())
    assert not list(tmp_path.glob(".two.partial-*"))
    assert outcome.manifest == json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert outcome.manifest["result"]["steps"] == 12
    assert any(note.startswith("Trained in 2 processes") for note in outcome.manifest["notes"])
