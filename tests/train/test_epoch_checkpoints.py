"""Epoch checkpoints and mean token accuracy, on real runs of the tiny model.

A supervised run keeps, in its trained folder, the model at the end of each of the last 3 epochs
before the final one (OpenAI's fine-tuning checkpoints, callable as models): each loads and
answers through the serving engine exactly as the final model does, and records the metrics the
metrics files hold at its step. The metrics files keep the original's columns; the mean token
accuracy comes beside them, through ``trained.read_metrics``.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import pytest

from tailor import trained
from tailor.settings import Settings
from tailor.train import sft
from tailor.train.contract import Hooks, PauseRequested
from tailor.train.metrics import LOSS_COLUMNS, VALIDATION_LOSS_COLUMNS
from tailor.train.spec import TrainSpec
from tests.conftest import tiny_home

pytestmark = pytest.mark.slow

SYSTEM = "Answer with the code."
# 24 training records in batches of 4: 6 steps an epoch.
FULL = {"epochCount": "5", "batchSize": "4", "tuningMethod": "full", "earlyStoppingPatience": "10"}
LORA = {"epochCount": "3", "batchSize": "4", "tuningMethod": "lora", "learningRateMultiplier": "1"}


def write_data(folder: Path) -> tuple[Path, Path]:
    """A learnable task: 24 codes to memorize; the held-out questions ask for 8 of them in other
    words, so what is learned shows on them too."""
    def record(question: str, i: int) -> dict:
        return {"system": SYSTEM, "messages": [{"role": "user", "content": question},
                                               {"role": "assistant", "content": f"Code {i} is {i * 7 % 10}."}]}

    train, valid = folder / "train.jsonl", folder / "valid.jsonl"
    train.write_text("".join(json.dumps(record(f"What is code {i}?", i)) + "\n" for i in range(24)))
    valid.write_text("".join(json.dumps(record(f"Tell me code {i}.", i)) + "\n" for i in range(0, 24, 3)))
    return train, valid


class Runs:
    def __init__(self, root: Path, tiny_models_dir: Path):
        self.root = root
        self.settings = Settings(home=tiny_home(root / "home", tiny_models_dir))
        self.train, self.valid = write_data(root)

    def spec(self, name: str, hyperparameters: dict, validation: bool = True, **extra) -> TrainSpec:
        return TrainSpec("FINE_TUNING", "tailor.tiny", str(self.train), self.root / name,
                         validation_uris=(str(self.valid),) if validation else (),
                         hyperparameters=hyperparameters, progress=False, **extra)

    def run(self, name: str, hyperparameters: dict, validation: bool = True, hooks: Hooks | None = None,
            **extra) -> Path:
        return sft.run(self.spec(name, hyperparameters, validation, **extra), self.settings, hooks=hooks).output_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_models_dir) -> Runs:
    return Runs(tmp_path_factory.mktemp("epoch-checkpoints"), tiny_models_dir)


@pytest.fixture(scope="module")
def full_run(runs) -> Path:
    return runs.run("full", FULL)


@pytest.fixture(scope="module")
def lora_run(runs) -> Path:
    return runs.run("lora", LORA, validation=False)


def header(path: Path) -> list[str]:
    with open(path, newline="") as file:
        return next(csv.reader(file))


def weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    [file] = folder.glob("*.safetensors")
    return load_file(file)


def differ(one: dict, other: dict) -> bool:
    return max(float((one[name] - other[name]).abs().max()) for name in one) > 0


def answers(target, settings: Settings) -> list:
    """What the serving engine answers with ``target`` (a ``serve.protocol.Target``)."""
    from tailor.evaluate.backends import EngineModel, Generation
    from tailor.serve.engine import Engine

    engine = Engine(settings)
    try:
        model = EngineModel("checkpoint", target, engine)
        return model.chat([[{"role": "user", "content": "What is code 3?"}]],
                          Generation(max_tokens=12, system=SYSTEM))
    finally:
        engine.close()


def test_a_full_run_keeps_the_last_three_epochs_before_the_final_one(runs, full_run):
    from tailor.services.inference import target_for_artifacts

    kept = trained.checkpoints(full_run)
    assert [(c.epoch, c.step) for c in kept] == [(2, 11), (3, 17), (4, 23)]  # epoch 1's dropped, 5 is final
    assert sorted(p.name for p in (full_run / trained.EPOCH_CHECKPOINTS).iterdir()) == [
        "step-11", "step-17", "step-23"]  # nothing temporary left
    final = trained.read(full_run)
    final_weights = weights(final.model_dir)
    timings = final.manifest["timings"]
    started, finished = (datetime.fromisoformat(timings[key]).timestamp() for key in ("started", "finished"))
    seen = []
    for checkpoint in kept:
        assert checkpoint.path == trained.checkpoint_folder(full_run, checkpoint.step).resolve()
        model = trained.read(checkpoint.path)  # a trained folder of its own, naming the same base
        assert (model.base_model_id, model.tuning_method, model.base_weights_kind) == (
            final.base_model_id, "full", final.base_weights_kind)
        assert model.manifest["checkpoint"]["epoch"] == checkpoint.epoch
        assert model.manifest["result"]["steps"] == checkpoint.step + 1
        assert started - 1 <= checkpoint.created_at <= finished + 1
        current = weights(model.model_dir)
        assert all(differ(current, other) for other in seen)  # each epoch's own model
        seen.append(current)
        # The final model is the best epoch's (early stopping's rule): that epoch's checkpoint, if kept.
        assert differ(current, final_weights) == (checkpoint.epoch != final.manifest["result"]["best_epoch"])
        target, _ = target_for_artifacts(checkpoint.path)
        assert target.base == str(model.model_dir) and target.adapter is None
        [reply] = answers(target, runs.settings)
        assert isinstance(reply, str) and reply
    assert [c.created_at for c in kept] == sorted(c.created_at for c in kept)


def test_checkpoint_metrics_are_the_metrics_files_at_their_step(full_run):
    metrics = trained.read_metrics(full_run)
    training = {int(row["step_number"]): row for row in metrics.training}
    validation = {int(row["step_number"]): row for row in metrics.validation}
    for checkpoint in trained.checkpoints(full_run):
        at = checkpoint.metrics
        assert set(at) == {"train_loss", "train_mean_token_accuracy", "valid_loss", "valid_mean_token_accuracy",
                           "full_valid_loss", "full_valid_mean_token_accuracy"}
        assert at["train_loss"] == float(training[checkpoint.step]["training_loss"])
        assert at["train_mean_token_accuracy"] == float(training[checkpoint.step]["train_mean_token_accuracy"])
        assert at["valid_loss"] == at["full_valid_loss"] == float(validation[checkpoint.step]["validation_loss"])
        assert at["valid_mean_token_accuracy"] == at["full_valid_mean_token_accuracy"] == float(
            validation[checkpoint.step]["valid_mean_token_accuracy"])
        assert int(validation[checkpoint.step]["epoch_number"]) == checkpoint.epoch


def test_mean_token_accuracy_is_recorded_beside_the_original_files_and_rises(full_run):
    # The original service's files keep exactly their columns.
    assert header(full_run / trained.TRAINING_METRICS) == list(LOSS_COLUMNS)
    assert header(full_run / trained.VALIDATION_METRICS) == list(VALIDATION_LOSS_COLUMNS)
    # ... and their folders (what a job copies to its output location) hold nothing Tailor-only.
    assert sorted(p.name for p in (full_run / "training_artifacts").iterdir()) == [
        "loss.png", "step_wise_training_metrics.csv"]
    assert [p.name for p in (full_run / trained.VALIDATION_METRICS).parent.iterdir()] == ["validation_metrics.csv"]
    assert header(full_run / trained.TRAINING_EXTRA_METRICS) == ["step_number", "epoch_number",
                                                                 "train_mean_token_accuracy"]
    metrics = trained.read_metrics(full_run)
    assert len(metrics.training) == 30 and len(metrics.validation) == 5
    train = [float(row["train_mean_token_accuracy"]) for row in metrics.training]
    valid = [float(row["valid_mean_token_accuracy"]) for row in metrics.validation]
    assert all(0.0 <= value <= 1.0 for value in train + valid)
    assert sum(train[-6:]) / 6 > sum(train[:6]) / 6 + 0.1  # the last epoch's steps against the first's
    assert valid[-1] > valid[0]
    # The rows the job events turn into OpenAI metrics events: step, losses and accuracies.
    assert set(metrics.training[0]) == {*LOSS_COLUMNS, "train_mean_token_accuracy"}
    assert set(metrics.validation[0]) == {*VALIDATION_LOSS_COLUMNS, "valid_mean_token_accuracy"}


def test_a_lora_run_keeps_adapters_that_go_on_the_same_base(runs, lora_run):
    from tailor.services.inference import target_for_artifacts

    kept = trained.checkpoints(lora_run)
    assert [(c.epoch, c.step) for c in kept] == [(1, 5), (2, 11)]  # 3 epochs: the last is the final model
    final = trained.read(lora_run)
    for checkpoint in kept:
        model = trained.read(checkpoint.path)
        assert model.is_adapter and (model.model_dir / "adapter_config.json").is_file()
        assert not (model.model_dir / "model.safetensors").exists()  # the adapter only
        target, _ = target_for_artifacts(checkpoint.path)
        assert target.base == target_for_artifacts(lora_run)[0].base == "tailor.tiny"
        assert target.adapter == str(model.model_dir) != str(final.model_dir)
        assert set(checkpoint.metrics) == {"train_loss", "train_mean_token_accuracy"}  # no held-out data
        assert 0.0 <= checkpoint.metrics["train_mean_token_accuracy"] <= 1.0
        [reply] = answers(target, runs.settings)
        assert isinstance(reply, str)


def test_a_paused_and_resumed_run_keeps_the_checkpoints_an_uninterrupted_one_keeps(runs, full_run):
    steps = []
    hooks = Hooks(on_step=lambda step, epoch, loss: steps.append(step), should_pause=lambda: len(steps) == 20)
    with pytest.raises(PauseRequested):  # in epoch 4: epochs 1-3 kept, 1 already dropped
        runs.run("paused", FULL, hooks=hooks)
    scratch = trained.in_progress(runs.root / "paused")
    assert sorted(p.name for p in (scratch / trained.EPOCH_CHECKPOINTS).iterdir()) == ["step-11", "step-17",
                                                                                        "step-5"]
    resumed = runs.run("paused", FULL, resume=True)
    whole, again = trained.checkpoints(full_run), trained.checkpoints(resumed)
    assert [(c.step, c.epoch, c.metrics) for c in again] == [(c.step, c.epoch, c.metrics) for c in whole]
    for one, other in zip(whole, again):
        first, second = weights(one.path / trained.MODEL_DIR), weights(other.path / trained.MODEL_DIR)
        assert max(float((first[name] - second[name]).abs().max()) for name in first) == 0.0


def test_early_stopping_keeps_only_epochs_that_ran_before_the_last(runs):
    out = runs.run("stopped", {**FULL, "epochCount": "12", "earlyStoppingThreshold": "0.1",
                               "earlyStoppingPatience": "1"})
    result = json.loads((out / "manifest.json").read_text())["result"]
    assert result["stopped_early"] and result["epochs_run"] < 12
    last = result["epochs_run"]
    assert [c.epoch for c in trained.checkpoints(out)] == list(range(max(1, last - 3), last))


def test_mean_token_accuracy_counts_target_tokens_predicted_by_the_argmax(home):
    """The accuracy is the share of target tokens (labels not ignored, after the shift) whose argmax
    is the label; the same whether a batch is split into micro-batches or packed, and the same in
    training (from the training pass's logits) as on held-out data."""
    import torch

    from tailor.catalog import resolve_model
    from tailor.data.render import IGNORE_INDEX, Example
    from tailor.settings import get_settings
    from tailor.train.loop import accumulate_batch, collate, evaluate
    from tailor.weights import load_causal_lm, load_tokenizer

    model_ref = resolve_model("tailor.tiny", get_settings())
    model = load_causal_lm(model_ref, get_settings(), progress=False, dtype=torch.float32)
    # Text like what the base model was pre-trained on (the Python Language Reference): it predicts some.
    text = load_tokenizer(model_ref, get_settings(), False)(
        "The following identifiers are used as reserved words, or keywords of the language, and cannot be "
        "used as ordinary identifiers. They must be spelled exactly as written here.")["input_ids"]
    batch = [Example(input_ids=text[:n], labels=[IGNORE_INDEX] * 3 + text[3:n]) for n in (20, 9, 30)]

    input_ids, attention, labels, _ = collate(batch, 0, "cpu")
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention).logits[:, :-1]
    targets = labels[:, 1:]
    mask = targets != IGNORE_INDEX
    expected = float(((logits.argmax(-1) == targets) & mask).sum() / mask.sum())
    assert 0.0 < expected < 1.0

    passes = [accumulate_batch(model, batch, micro, 0, "cpu", packed=packed)
              for micro, packed in ((3, False), (1, False), (3, True))]
    model.zero_grad()
    assert all(done.accuracy == pytest.approx(expected) for done in passes)
    assert evaluate(model, batch, 2, 0, "cpu").accuracy == pytest.approx(expected)


def test_continued_pre_training_keeps_epoch_checkpoints_too(runs):
    from tailor.train import cpt

    data = runs.root / "text.jsonl"
    data.write_text("".join(json.dumps({"input": f"Code {i} is {i * 7 % 10}. " * 3}) + "\n" for i in range(8)))
    out = cpt.run(TrainSpec("CONTINUED_PRE_TRAINING", "tailor.tiny", str(data), runs.root / "cpt",
                            hyperparameters={"epochCount": "2", "batchSize": "4"}, progress=False),
                  runs.settings).output_dir
    [checkpoint] = trained.checkpoints(out)
    assert (checkpoint.epoch, checkpoint.step) == (1, 1)
    assert trained.read(checkpoint.path).customization_type == "CONTINUED_PRE_TRAINING"
    rows = trained.read_metrics(out).training
    assert checkpoint.metrics == {"train_loss": float(rows[1]["training_loss"]),
                                  "train_mean_token_accuracy": float(rows[1]["train_mean_token_accuracy"])}


@pytest.mark.parametrize("tuning", ["full", "lora"])
def test_two_processes_keep_the_checkpoints_and_accuracies_of_one(runs, tuning):
    """Sharded over two gloo processes (saving is then a collective): the main process writes each
    checkpoint once, and the accuracies, summed over the processes' shares, are the one-process
    run's."""
    from tailor.train import recipes

    hyperparameters = {**FULL, "epochCount": "3", "batchSize": "8", "tuningMethod": tuning}
    one = runs.run(f"one-{tuning}", hyperparameters)
    two = recipes.launch(runs.spec(f"two-{tuning}", hyperparameters, parallelism="fully-sharded"), runs.settings,
                         processes=2).output_dir
    alone, shared = trained.checkpoints(one), trained.checkpoints(two)
    assert [(c.step, c.epoch) for c in shared] == [(c.step, c.epoch) for c in alone] == [(2, 1), (5, 2)]
    for a, b in zip(alone, shared):
        assert a.metrics.keys() == b.metrics.keys()
        assert all(b.metrics[name] == pytest.approx(value, abs=1e-4) for name, value in a.metrics.items())
        assert sorted(p.name for p in (b.path / trained.MODEL_DIR).iterdir()) == sorted(
            p.name for p in (a.path / trained.MODEL_DIR).iterdir())
        assert trained.read(b.path).tuning_method == tuning
    assert not list(runs.root.glob(f".two-{tuning}.partial-*"))
    rows = trained.read_metrics(two)
    assert all(0.0 <= float(row["train_mean_token_accuracy"]) <= 1.0 for row in rows.training)
    assert all(0.0 <= float(row["valid_mean_token_accuracy"]) <= 1.0 for row in rows.validation)
