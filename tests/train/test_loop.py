"""The supervised loop's parts: length-grouped batches, padding, the token-weighted loss, and a
run steered through its hooks (real training of the tiny model)."""

from __future__ import annotations

import json
import random

import pytest

from tailor.data.render import IGNORE_INDEX, Example
from tailor.train.loop import collate, length_grouped_batches, mean_loss


def examples(lengths: list[int]) -> list[Example]:
    return [Example(list(range(1, n + 1)), [IGNORE_INDEX] + list(range(2, n + 1))) for n in lengths]


def test_batches_cover_every_example_once_in_groups_of_similar_length():
    data = examples([random.Random(i).randint(1, 300) for i in range(1000)])
    batches = length_grouped_batches(data, 8, random.Random(0))
    assert sorted(i for batch in batches for i in batch) == list(range(1000))
    assert all(len(batch) <= 8 for batch in batches)
    # Sorted within pools of 64 batches: a batch spans a narrow band of lengths.
    spread = sum(max(len(data[i].input_ids) for i in b) - min(len(data[i].input_ids) for i in b) for b in batches)
    assert spread / len(batches) < 20
    assert batches == length_grouped_batches(data, 8, random.Random(0))  # seeded
    assert batches != length_grouped_batches(data, 8, random.Random(1))


def test_collate_pads_on_the_right_to_the_longest_example_only():
    input_ids, attention, labels, tokens = collate(examples([3, 5]), pad_id=0, device="cpu")
    assert input_ids.tolist() == [[1, 2, 3, 0, 0], [1, 2, 3, 4, 5]]
    assert attention.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert labels[0].tolist() == [IGNORE_INDEX, 2, 3, IGNORE_INDEX, IGNORE_INDEX]
    assert tokens == 8


@pytest.mark.slow
def test_the_loss_is_weighted_by_target_tokens_not_by_batch(home):
    from tailor.catalog import resolve_model
    from tailor.settings import get_settings
    from tailor.weights import load_causal_lm

    model = load_causal_lm(resolve_model("tailor.tiny", get_settings()), get_settings(), progress=False)
    data = examples([4, 40, 9])
    alone = [mean_loss(model, [example], 1, 0, "cpu") for example in data]
    weighted = sum(loss * e.target_count for loss, e in zip(alone, data)) / sum(e.target_count for e in data)
    assert mean_loss(model, data, 2, 0, "cpu") == pytest.approx(weighted, rel=1e-5)
    assert mean_loss(model, data, 2, 0, "cpu") != pytest.approx(sum(alone) / 3, rel=1e-3)


@pytest.mark.slow
def test_hooks_see_every_step_and_a_stop_request_publishes_nothing(home, tmp_path):
    from tailor.train import sft
    from tailor.train.contract import Hooks, StopRequested
    from tailor.train.spec import TrainSpec

    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Q{i}?", "completion": f"A{i}."}) + "\n" for i in range(8)))
    seen: dict = {"steps": []}
    hooks = Hooks(on_training_start=lambda total: seen.update(total=total),
                  on_step=lambda step, epoch, loss: seen["steps"].append((step, epoch)))
    spec = TrainSpec("FINE_TUNING", "tailor.tiny", str(data), tmp_path / "run",
                     hyperparameters={"epochCount": "2", "batchSize": "4"}, progress=False)
    outcome = sft.run(spec, hooks=hooks)
    assert seen == {"total": 4, "steps": [(0, 1), (1, 1), (2, 2), (3, 2)]} and outcome.manifest["result"]["steps"] == 4

    calls = iter(range(100))
    stopping = Hooks(should_stop=lambda: next(calls) >= 2)  # stop before the third step
    with pytest.raises(StopRequested):
        sft.run(TrainSpec("FINE_TUNING", "tailor.tiny", str(data), tmp_path / "stopped",
                          hyperparameters={"epochCount": "2", "batchSize": "4"}, progress=False), hooks=stopping)
    assert not (tmp_path / "stopped").exists() and not list(tmp_path.glob(".stopped.partial-*"))


@pytest.mark.slow
def test_a_batch_split_into_micro_batches_trains_exactly_as_the_whole_batch(home, tmp_path):
    """``batchSize`` is the effective batch: accumulating 4 passes of 2 records gives the same
    losses and the same weights as one pass of 8 (up to float summation order)."""
    import csv

    from safetensors.torch import load_file

    from tailor.train import sft
    from tailor.train.spec import TrainSpec

    data = tmp_path / "train.jsonl"
    # Different lengths, so the passes pad differently and the per-pass token counts differ.
    data.write_text("".join(json.dumps({"prompt": f"Question {i}?" + " more" * (i % 5),
                                        "completion": f"Answer {i}." + " long" * (i % 3)}) + "\n"
                            for i in range(16)))
    runs = {}
    for name, extra in (("whole", {}), ("split", {"microBatchSize": "2"})):
        spec = TrainSpec("FINE_TUNING", "tailor.tiny", str(data), tmp_path / name, progress=False,
                         hyperparameters={"epochCount": "2", "batchSize": "8", "tuningMethod": "full", **extra})
        outcome = sft.run(spec)
        with open(outcome.output_dir / "training_artifacts" / "step_wise_training_metrics.csv") as file:
            losses = [float(row["training_loss"]) for row in csv.DictReader(file)]
        runs[name] = (losses, load_file(outcome.model_dir / "model.safetensors"))
    (whole_losses, whole), (split_losses, split) = runs["whole"], runs["split"]
    assert len(whole_losses) == 4 and split_losses == pytest.approx(whole_losses, rel=1e-5)
    assert whole.keys() == split.keys()
    worst = max(float((whole[name] - split[name]).abs().max()) for name in whole)
    assert worst < 1e-4, worst


def test_a_packed_padding_free_pass_gives_the_loss_and_gradient_of_padded_rows(home):
    """What a GPU with FlashAttention trains on (records end to end, positions restarting) is the
    same step as length-grouped padded rows: run both here, on the CPU's masked attention."""
    import torch

    from tailor.catalog import resolve_model
    from tailor.settings import get_settings
    from tailor.train.loop import accumulate, collate_packed
    from tailor.weights import load_causal_lm

    model = load_causal_lm(resolve_model("tailor.tiny", get_settings()), get_settings(), progress=False,
                           dtype=torch.float32)
    batch = [Example(input_ids=list(range(3, 3 + n)), labels=[IGNORE_INDEX] * 2 + list(range(5, 3 + n)))
             for n in (9, 4, 7)]
    input_ids, labels, positions = collate_packed(batch, "cpu")
    assert positions.tolist() == [[*range(9), *range(4), *range(7)]] and input_ids.shape == (1, 20)
    assert labels[0, 9].item() == IGNORE_INDEX  # no record predicts the next one's first token

    def step(packed: bool):
        model.zero_grad()
        loss, tokens = accumulate(model, batch, 2, 0, "cpu", packed=packed)
        return loss, tokens, [p.grad.clone() for p in model.parameters()]

    (padded_loss, padded_tokens, padded), (packed_loss, packed_tokens, packed) = step(False), step(True)
    assert packed_loss == pytest.approx(padded_loss, rel=1e-5) and packed_tokens == padded_tokens == 20
    assert max(float((a - b).abs().max()) for a, b in zip(padded, packed)) < 1e-5


def test_a_run_whose_activations_do_not_fit_is_planned_into_micro_batches_with_checkpointing(home, tmp_path):
    """The plan (train/plan.py) fits a run to its device: given only the memory that one record's
    recomputed activations need, the run trains in micro-batches of 1 with activation
    checkpointing, and its losses are the unconstrained run's (neither changes the arithmetic)."""
    import csv

    from tailor.catalog import CustomizationType, resolve_model
    from tailor.data.validate import load_records
    from tailor.settings import Settings
    from tailor.train import sft
    from tailor.train.estimate import model_shape
    from tailor.train.plan import device_memory
    from tailor.train.spec import TrainSpec
    from tailor.weights import load_config, load_tokenizer

    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Question {i}?" + " more" * (i % 5),
                                        "completion": f"Answer {i}."}) + "\n" for i in range(16)))

    def run(name: str, settings: Settings):
        spec = TrainSpec("FINE_TUNING", "tailor.tiny", str(data), tmp_path / name, progress=False,
                         hyperparameters={"epochCount": "1", "batchSize": "8", "tuningMethod": "full"})
        outcome = sft.run(spec, settings)
        with open(outcome.output_dir / "training_artifacts" / "step_wise_training_metrics.csv") as file:
            return outcome.manifest["notes"], [float(row["training_loss"]) for row in csv.DictReader(file)]

    settings = Settings(home=home)
    model = resolve_model("tailor.tiny", settings)
    tokenizer = load_tokenizer(model, settings)
    records = load_records(str(data), CustomizationType.FINE_TUNING, model, purpose="training", tokenizer=tokenizer)
    longest = max(len(example.input_ids) for example in sft.examples_for(records, tokenizer))
    shape = model_shape(load_config(model, settings), "full")
    tight = device_memory(shape, 1, longest, activation_checkpointing=True).peak + 1024
    assert tight < device_memory(shape, 1, longest).peak  # checkpointing is what makes it fit
    notes, constrained = run("tight", Settings(home=home, device_memory_gib=tight / 2**30))
    assert any("micro-batch 1, activation checkpointing on" in note for note in notes), notes
    _, free = run("free", settings)
    assert constrained == pytest.approx(free, rel=1e-5)
