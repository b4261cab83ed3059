"""Proof of learning: ``tailor.tiny`` fine-tuned part of the way (SFT), then reinforcement-fine-tuned
with a strict code grader, answers held-out prompts correctly far more often than its SFT start —
measured on greedy answers through Tailor's inference code, not by the training reward. A LoRA run,
continuing from the SFT model's output folder (iterative customization); the same claim for full
weights is tests/api/test_rft_jobs.py::test_an_rft_job_from_an_sft_custom_model_beats_it_on_held_out_prompts,
through a job."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tailor import rft_demo
from tailor.graders.registry import get_grader
from tailor.store.db import open_store
from tailor.train import rft, sft
from tailor.train.spec import TrainSpec
from tests.conftest import tiny_home

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def start(tmp_path_factory, tiny_models_dir):
    """The task's files, a home with the strict grader registered, and the SFT starting point."""
    from tailor.graders.registry import create_grader
    from tailor.settings import Settings
    from tailor.store.db import open_store

    root = tmp_path_factory.mktemp("rft-learning")
    settings = Settings(home=tiny_home(root / "home", tiny_models_dir))
    files = rft_demo.write_task(root / "task")
    create_grader(open_store(settings), settings, "exact-answer", file=files.grader)
    outcome = sft.run(TrainSpec("FINE_TUNING", "tailor.tiny", str(files.sft), root / "sft",
                                hyperparameters=rft_demo.SFT_HYPERPARAMETERS, progress=False), settings)
    accuracy, answers = rft_demo.held_out_accuracy(str(outcome.output_dir), files.held_out, settings)
    return settings, files, outcome.output_dir, accuracy, answers


def test_the_sft_start_answers_in_the_majority_style(start):
    _, _, _, accuracy, answers = start
    assert accuracy <= 0.1
    assert sum(answer.startswith("The fruit is") for answer in answers) >= 0.85 * len(answers)


def test_lora_rft_raises_held_out_accuracy_by_20_points_over_its_sft_start(start, tmp_path):
    settings, files, sft_output, before, _ = start
    hyperparameters = rft_demo.RFT_LORA_HYPERPARAMETERS
    spec = TrainSpec("REINFORCEMENT_FINE_TUNING", str(sft_output), str(files.rft), tmp_path / "rft",
                     validation_uris=(str(files.held_out),), hyperparameters=hyperparameters, progress=False,
                     grader=get_grader(open_store(settings), "exact-answer"))
    outcome = rft.run(spec, settings)

    after, answers = rft_demo.held_out_accuracy(str(outcome.output_dir), files.held_out, settings)
    assert after - before >= 0.20, answers
    # The right fruit, not one memorized name: the bare answers name several different fruits.
    assert len({answer.strip() for answer in answers if answer.strip() in rft_demo.FRUITS}) >= 5

    result = outcome.manifest["result"]
    # The recipe's own held-out measure (greedy, graded in the sandbox) agrees with the independent one.
    assert result["start_held_out_reward"] == pytest.approx(before)
    assert result["final_held_out_reward"] == pytest.approx(after)
    assert outcome.manifest["base_model"]["trained"] == str(sft_output)
    assert outcome.manifest["tuning_method"] == "lora"

    rows = _rows(outcome.output_dir / "training_artifacts" / "step_wise_training_metrics.csv")
    rewards = [float(row["critic/rewards/mean"]) for row in rows]
    assert sum(rewards[-10:]) / 10 > sum(rewards[:10]) / 10  # the sampled reward rises too
    assert any(float(row["actor/kl_loss"]) > 0 for row in rows)  # the KL term against the start is on
    assert (outcome.output_dir / "training_artifacts" / "rewards.png").stat().st_size > 0


def _rows(path: Path) -> list[dict]:
    with open(path) as file:
        return list(csv.DictReader(file))
