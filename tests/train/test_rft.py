"""Reinforcement fine-tuning runs end to end on the tiny model with real graders in their sandbox:
metrics under the original names, the held-out greedy reward, grader errors that score 0 and are
counted, and a grader that fails on every sample failing the run with its error."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from tailor.errors import InvalidInput
from tailor.train import rft
from tailor.train.metrics import REWARD_COLUMNS
from tailor.train.spec import TrainSpec

pytestmark = pytest.mark.slow

HYPERPARAMETERS = {"epochCount": 1, "batchSize": 16, "trainingSamplePerPrompt": 8, "inferenceMaxTokens": 6,
                   "evalInterval": 2}

# Rewards a completion by its length, except that it throws on completions containing a digit.
FLAKY = '''
def lambda_handler(event, context):
    results = []
    for sample in event:
        text = sample["messages"][-1]["content"]
        if any(c.isdigit() for c in text):
            raise ValueError("digits are not allowed here")
        results.append({"id": sample["id"], "aggregate_reward_score": min(len(text), 20) / 20})
    return results
'''
BROKEN = '''
def lambda_handler(event, context):
    raise RuntimeError("the grader's database is down")
'''


@pytest.fixture
def settings(home):
    from tailor.settings import Settings

    return Settings(home=home)


def register(settings, name: str, source: str, tmp_path: Path):
    from tailor.graders.registry import create_grader
    from tailor.store.db import open_store

    file = tmp_path / f"{name}.py"
    file.write_text(source)
    return create_grader(open_store(settings), settings, name, file=file)


def prompts(path: Path, count: int = 20) -> Path:
    rng = random.Random(0)
    lines = []
    for _ in range(count):
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        lines.append({"messages": [{"role": "user", "content": f"What is {a} + {b}?"}], "reference_answer": a + b,
                      "task_id": f"add-{a}-{b}"})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_a_run_records_rewards_and_counts_grader_errors(settings, tmp_path):
    grader = register(settings, "flaky", FLAKY, tmp_path)
    spec = TrainSpec("REINFORCEMENT_FINE_TUNING", "tailor.tiny", str(prompts(tmp_path / "train.jsonl")),
                     tmp_path / "out", hyperparameters=HYPERPARAMETERS, progress=False, grader=grader)
    outcome = rft.run(spec, settings)

    with open(outcome.output_dir / "training_artifacts" / "step_wise_training_metrics.csv") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == list(REWARD_COLUMNS)
    assert len(rows) == outcome.manifest["result"]["steps"] == 18 * 8 // 16  # 2 held out of 20
    for row in rows:
        assert 0.0 <= float(row["critic/rewards/min"]) <= float(row["critic/rewards/mean"]) <= \
            float(row["critic/rewards/max"]) <= 1.0
        assert float(row["response_length/mean"]) > 0
    assert sum(int(row["grader/error_count"]) for row in rows) > 0  # the tiny model does write digits
    with open(outcome.output_dir / "validation_artifacts" / "post_fine_tuning_validation" /
              "validation_metrics.csv") as file:
        held_out = list(csv.DictReader(file))
    assert [int(row["step"]) for row in held_out] == [0, 2, 4, 6, 8, 9]  # before, every 2 steps, after
    assert outcome.manifest["result"]["held_out_rewards"] == [float(row["val-score/rewards/mean@1"])
                                                              for row in held_out]
    assert (outcome.output_dir / "training_artifacts" / "rewards.png").stat().st_size > 0
    assert (outcome.output_dir / "model" / "config.json").is_file()


def test_a_grader_failing_on_every_sample_fails_the_run_and_publishes_nothing(settings, tmp_path):
    grader = register(settings, "broken", BROKEN, tmp_path)
    spec = TrainSpec("REINFORCEMENT_FINE_TUNING", "tailor.tiny", str(prompts(tmp_path / "train.jsonl")),
                     tmp_path / "out", hyperparameters=HYPERPARAMETERS, progress=False, grader=grader)
    with pytest.raises(InvalidInput) as caught:
        rft.run(spec, settings)
    assert "failed on every sample" in caught.value.message and "the grader's database is down" in caught.value.message
    assert not (tmp_path / "out").exists()


def test_the_cli_registers_a_grader_and_trains_with_it(home, tmp_path):
    from typer.testing import CliRunner

    from tailor.cli import app

    grader = tmp_path / "flaky.py"
    grader.write_text(FLAKY)
    created = CliRunner().invoke(app, ["graders", "create", "flaky", "--file", str(grader)])
    assert created.exit_code == 0, created.output
    assert created.stdout.strip() == "arn:aws:lambda:us-east-1:000000000000:function:flaky"
    hp = [f"--hp={name}={value}" for name, value in HYPERPARAMETERS.items()]
    trained = CliRunner().invoke(app, ["train", "--type", "REINFORCEMENT_FINE_TUNING", "--model", "tailor.tiny",
                                       "--train", str(prompts(tmp_path / "train.jsonl")), "--out",
                                       str(tmp_path / "out"), "--grader", "flaky", *hp])
    assert trained.exit_code == 0, trained.output
    assert "held-out greedy reward" in trained.output and (tmp_path / "out" / "model").is_dir()


def test_a_default_prompt_length_shrinks_to_the_context_and_a_chosen_one_is_refused(settings):
    """tailor.tiny's weights named by folder get a real model's defaults (maxPromptLength 2,500),
    which do not fit its 1,024-token context."""
    from tailor.catalog import resolve_model
    from tailor.tiny import tiny_model_dir
    from tailor.train.hyperparams import parse_rft_hyperparameters
    from tailor.weights import load_tokenizer

    model = resolve_model(str(tiny_model_dir(settings.models_dir, progress=False)), settings)
    tokenizer = load_tokenizer(model, settings)
    config, notes = rft._fit_context(parse_rft_hyperparameters({}, model), tokenizer, given={})
    assert config.max_prompt_length + config.inference_max_tokens == tokenizer.model_max_length == 1024
    assert config.hyperparameters["maxPromptLength"] == config.max_prompt_length
    assert "lowered to" in notes[0]
    chosen = {"maxPromptLength": 1000}
    with pytest.raises(InvalidInput, match="exceeds the model's context of 1024 tokens"):
        rft._fit_context(parse_rft_hyperparameters(chosen, model), tokenizer, given=chosen)


def test_held_out_prompts_render_as_serving_and_as_trl_does(settings):
    """The held-out reward is measured on prompts rendered by serving's code
    (``data.render.prompt_ids``); TRL samples the training completions from its own rendering of
    the same turns. Both must be the same tokens, or the held-out reward would measure a different
    input than the one training learns from."""
    from tailor.catalog import resolve_model
    from tailor.data.render import prompt_ids
    from tailor.weights import load_tokenizer

    tokenizer = load_tokenizer(resolve_model("tailor.tiny", settings), settings)
    for turns in ([{"role": "user", "content": "What is 2 + 3?"}],
                  [{"role": "system", "content": "Answer with a number."}, {"role": "user", "content": "7 + 1?"}]):
        trl_rendering = tokenizer.apply_chat_template(conversation=[turns], add_generation_prompt=True, tokenize=True,
                                                      return_dict=True)["input_ids"][0]
        assert prompt_ids(tokenizer, turns) == list(trl_rendering)
