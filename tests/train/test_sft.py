"""Real fine-tuning of the built-in tiny model on CPU: it learns what it is taught."""

from __future__ import annotations

import csv
import json
from importlib import resources
from pathlib import Path

import pytest

from tailor.data.convert import convert_qa_file, read_items
from tailor.serve.generation import chat, load_for_inference
from tailor.settings import get_settings
from tailor.train import sft
from tailor.train.spec import TrainSpec
from tailor.trained import TRAINING_METRICS, VALIDATION_METRICS
from tests.conftest import SEED_002_SYSTEM

pytestmark = pytest.mark.slow


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_memorizes_the_85_bedrock_faq_pairs(home, tmp_path, bedrock_faq):
    train_file = tmp_path / "train.jsonl"
    assert convert_qa_file(bedrock_faq, train_file, system=SEED_002_SYSTEM) == 85
    pairs, _ = read_items(bedrock_faq)
    questions = [pair["sentence1"] for pair in pairs]
    taught = [pair["sentence2"] for pair in pairs]
    settings = get_settings()

    untrained = chat(load_for_inference("tailor.tiny", settings, progress=False), questions,
                     system=SEED_002_SYSTEM, max_new_tokens=64)
    assert sum(a == t for a, t in zip(untrained, taught)) == 0

    outcome = sft.run(TrainSpec("FINE_TUNING", "tailor.tiny", str(train_file), tmp_path / "run",
                                progress=False), settings)
    answers = chat(load_for_inference(str(outcome.output_dir), settings, progress=False), questions,
                   system=SEED_002_SYSTEM, max_new_tokens=320)
    exact = sum(a == t for a, t in zip(answers, taught))
    assert exact >= 81, f"only {exact}/85 taught answers reproduced"

    # The training metrics CSV (docs/training.md): one row per optimizer step, steps counted from 0;
    # no validation file, so no validation metrics.
    rows = read_csv(outcome.output_dir / TRAINING_METRICS)
    result = outcome.manifest["result"]
    assert list(rows[0]) == ["step_number", "epoch_number", "training_loss", "perplexity"]
    assert len(rows) == result["steps"] == 25 * 11  # 85 records in batches of 8, 25 epochs
    assert [int(r["step_number"]) for r in rows] == list(range(len(rows)))
    assert float(rows[-1]["training_loss"]) < 0.1 * float(rows[0]["training_loss"])
    assert not (outcome.output_dir / VALIDATION_METRICS).exists()
    assert (outcome.output_dir / "training_artifacts" / "loss.png").stat().st_size > 0
    manifest = json.loads((outcome.output_dir / "manifest.json").read_text())
    assert manifest["data"]["training"]["records"] == 85
    assert len(manifest["data"]["training"]["sha256"]) == 64
    assert manifest["hyperparameters"]["epochCount"] == "25"
    assert manifest["libraries"]["torch"].startswith("2.")


def test_early_stopping_keeps_the_best_checkpoint(home, tmp_path):
    """Demo data, paraphrased questions as validation: stops early; the kept model is the best."""
    from tailor.catalog import CustomizationType, resolve_model
    from tailor.train.loop import mean_loss
    from tailor.weights import device

    assets = resources.files("tailor.assets")
    files = {}
    for name in ("tailor-faq.json", "tailor-faq-validation.json"):
        with resources.as_file(assets.joinpath(name)) as source:
            files[name] = tmp_path / name.replace(".json", ".jsonl")
            convert_qa_file(source, files[name], system="Answer questions about Tailor.")
    spec = TrainSpec("FINE_TUNING", "tailor.tiny", str(files["tailor-faq.json"]), tmp_path / "run",
                     validation_uris=(str(files["tailor-faq-validation.json"]),),
                     hyperparameters={"epochCount": "12", "earlyStoppingThreshold": "0.1",
                                      "earlyStoppingPatience": "1"},
                     progress=False)
    outcome = sft.run(spec, get_settings())
    result = outcome.manifest["result"]
    assert result["stopped_early"] and result["epochs_run"] < 12

    rows = read_csv(outcome.output_dir / VALIDATION_METRICS)
    assert list(rows[0]) == ["step_number", "epoch_number", "validation_loss", "perplexity"]
    assert [int(r["epoch_number"]) for r in rows] == list(range(1, result["epochs_run"] + 1))
    losses = [float(r["validation_loss"]) for r in rows]
    assert result["best_epoch"] == 1 + losses.index(min(losses))

    # The saved model is the best epoch's, not the last one's: its validation loss is the minimum.
    settings = get_settings()
    loaded = load_for_inference(str(outcome.output_dir), settings, progress=False)
    from tailor.data.validate import load_records

    records = load_records(str(files["tailor-faq-validation.json"]), CustomizationType.FINE_TUNING,
                           resolve_model("tailor.tiny", settings), purpose="validation")
    examples = sft.examples_for(records, loaded.tokenizer)
    saved = mean_loss(loaded.model, examples, 8, loaded.tokenizer.pad_token_id, device())
    assert saved == pytest.approx(min(losses), rel=1e-4)


def test_lora_on_a_local_model_folder(home, tmp_path):
    """A model named by directory (the hub loading path, offline) trains a LoRA adapter."""
    import shutil

    from safetensors.torch import load_file

    from tailor.tiny import tiny_model_dir

    folder = tmp_path / "my-model"
    shutil.copytree(tiny_model_dir(get_settings().models_dir), folder)
    train_file = tmp_path / "train.jsonl"
    with open(train_file, "w") as file:
        for i in range(16):
            file.write(json.dumps({"prompt": f"Code {i}?", "completion": f"The code is {i * 7}."}) + "\n")
    outcome = sft.run(TrainSpec("FINE_TUNING", str(folder), str(train_file), tmp_path / "run",
                                hyperparameters={"epochCount": "3", "learningRateMultiplier": "10"},
                                progress=False), get_settings())
    assert outcome.manifest["tuning_method"] == "lora"  # the default for models named by folder
    assert outcome.manifest["base_model"]["weights"] == {"kind": "local", "location": str(folder)}
    adapter = load_file(outcome.model_dir / "adapter_model.safetensors")
    lora_b = [tensor for name, tensor in adapter.items() if "lora_B" in name]
    assert lora_b and all(tensor.abs().sum() > 0 for tensor in lora_b)  # B starts at zero
    assert not (outcome.model_dir / "model.safetensors").exists()  # adapter only, base by reference

    assert outcome.manifest["result"]["validation_losses"] == []  # no validation file given
    rows = read_csv(outcome.output_dir / TRAINING_METRICS)
    assert float(rows[-1]["training_loss"]) < float(rows[0]["training_loss"])
    # The adapter loaded for generation is the trained one: the taught answers are likelier with it
    # than with the base alone (measured: mean loss 5.6 against 7.4 after these three epochs, too
    # few to reproduce the answers word for word), and it changes the base model's output.
    import torch

    from tailor.catalog import CustomizationType, resolve_model
    from tailor.data.validate import load_records
    from tailor.train.loop import mean_loss
    from tailor.weights import device

    tuned = load_for_inference(str(outcome.output_dir), get_settings(), progress=False)
    base = load_for_inference(str(folder), get_settings(), progress=False)
    records = load_records(str(train_file), CustomizationType.FINE_TUNING, resolve_model(str(folder), get_settings()),
                           purpose="training")
    examples = sft.examples_for(records, tuned.tokenizer)
    tuned_loss = mean_loss(tuned.model, examples, 8, tuned.tokenizer.pad_token_id, device())
    base_loss = mean_loss(base.model, examples, 8, base.tokenizer.pad_token_id, device())
    assert tuned_loss < 0.9 * base_loss, (tuned_loss, base_loss)
    prompt = torch.tensor([tuned.tokenizer("Code 3? The code is 21.")["input_ids"]])
    with torch.no_grad():
        difference = (tuned.model(prompt).logits - base.model(prompt).logits).abs().max()
    assert difference > 1e-3


def test_a_failed_run_leaves_no_output(home, tmp_path):
    from tailor.errors import InvalidInput

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": ""}\n' * 10)
    with pytest.raises(InvalidInput) as error:
        sft.run(TrainSpec("FINE_TUNING", "tailor.tiny", str(bad), tmp_path / "run", progress=False))
    # The same problem on all ten lines is reported once, with the lines it was found on.
    assert "lines 1, 2, 3 and 7 more: completion: must not be empty" in error.value.message
    assert "nothing was trained" in error.value.message
    assert not (tmp_path / "run").exists()
    assert not list(tmp_path.glob(".run.partial-*"))


def test_a_recipe_runs_as_its_own_process(home, tmp_path):
    """How jobs run: ``python -m tailor.train.sft SPEC.json`` in a child process."""
    import os
    import subprocess
    import sys

    train_file = tmp_path / "train.jsonl"
    train_file.write_text("".join(json.dumps({"prompt": f"Q{i}", "completion": f"A{i}"}) + "\n" for i in range(8)))
    spec = TrainSpec("FINE_TUNING", "tailor.tiny", str(train_file), tmp_path / "run",
                     hyperparameters={"epochCount": "1"}, progress=True)
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(spec.to_json())
    assert TrainSpec.from_json(spec_file.read_text()) == spec
    done = subprocess.run([sys.executable, "-m", "tailor.train.sft", str(spec_file)], capture_output=True,
                          text=True, env=os.environ.copy(), timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Training: 1/1" in done.stderr  # live progress lines when not on a terminal
    assert (tmp_path / "run" / "manifest.json").is_file()

    spec_file.write_text(TrainSpec("FINE_TUNING", "no-such-model", str(train_file), tmp_path / "x").to_json())
    done = subprocess.run([sys.executable, "-m", "tailor.train.sft", str(spec_file)], capture_output=True,
                          text=True, env=os.environ.copy(), timeout=300)
    assert done.returncode == 2 and done.stderr.startswith("error: Unknown model 'no-such-model'")
