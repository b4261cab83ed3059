"""Exact resume: a run killed with SIGKILL mid-training and resumed from its last checkpoint ends
with the weights, metrics and validation losses of a run that was never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tailor.settings import Settings
from tailor.train import sft
from tailor.train.spec import TrainSpec

HYPERPARAMETERS = {"epochCount": "3", "batchSize": "2", "tuningMethod": "full", "earlyStoppingPatience": "10"}


def write_data(folder: Path) -> tuple[Path, Path]:
    pairs = [{"prompt": f"What is code {i}?" + " please" * (i % 4), "completion": f"Code {i} is {i * 7 % 10}."}
             for i in range(72)]
    train, valid = folder / "train.jsonl", folder / "valid.jsonl"
    train.write_text("".join(json.dumps(p) + "\n" for p in pairs[:64]))
    valid.write_text("".join(json.dumps(p) + "\n" for p in pairs[64:]))
    return train, valid


def read_run(folder: Path):
    from safetensors.torch import load_file

    metrics = (folder / "training_artifacts" / "step_wise_training_metrics.csv").read_text()
    return load_file(folder / "model" / "model.safetensors"), metrics, json.loads((folder / "manifest.json").read_text())


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_one(home, tmp_path):
    train, valid = write_data(tmp_path)
    settings = Settings(home=home, checkpoint_steps=4)

    def spec(out: Path, **extra) -> TrainSpec:
        return TrainSpec("FINE_TUNING", "tailor.tiny", str(train), out, validation_uris=(str(valid),),
                         hyperparameters=HYPERPARAMETERS, progress=False, **extra)

    sft.run(spec(tmp_path / "whole"), settings)

    # The same run in a process of its own, killed (SIGKILL: no cleanup) once it has checkpointed.
    (tmp_path / "spec.json").write_text(spec(tmp_path / "killed").to_json())
    child = subprocess.Popen([sys.executable, "-m", "tailor.train.sft", str(tmp_path / "spec.json")],
                             env={**os.environ, "TAILOR_HOME": str(home), "TAILOR_CHECKPOINT_STEPS": "4"},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list(tmp_path.glob(".killed.partial-*/checkpoints/step-*")):
        assert child.poll() is None and time.monotonic() < deadline, "the run ended before a checkpoint"
        time.sleep(0.005)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert not (tmp_path / "killed").exists()
    [checkpoint] = tmp_path.glob(".killed.partial-*/checkpoints/step-*")
    lost_at = int(checkpoint.name.removeprefix("step-"))
    assert 0 < lost_at < 96  # 3 epochs of 32 batches: killed mid-run

    resumed = sft.run(spec(tmp_path / "killed", resume=True), settings)
    assert not list(tmp_path.glob(".killed.partial-*")) and not (resumed.output_dir / "checkpoints").exists()

    (whole_weights, whole_metrics, whole_manifest), (weights, metrics, manifest) = (
        read_run(tmp_path / "whole"), read_run(tmp_path / "killed"))
    assert metrics == whole_metrics  # every step's loss, the resumed ones included
    assert manifest["result"]["validation_losses"] == whole_manifest["result"]["validation_losses"]
    assert max(float((weights[name] - whole_weights[name]).abs().max()) for name in whole_weights) == 0.0


def test_resuming_a_run_that_left_nothing_says_so(home, tmp_path):
    from tailor.errors import InvalidInput

    train, _ = write_data(tmp_path)
    with pytest.raises(InvalidInput, match="Nothing to resume"):
        sft.run(TrainSpec("FINE_TUNING", "tailor.tiny", str(train), tmp_path / "never", progress=False,
                          resume=True), Settings(home=home))
