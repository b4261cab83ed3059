"""DPO (``tailor.train.dpo``): the recipe learns a preference, through the recipe table, and a bad
preference file is refused by line and field before anything trains; its hyperparameters are
checked like the other recipes', every problem at once by name.

Proof of learning, from an SFT start as in the usual SFT-then-DPO pipeline: a preference task
built here — answers about animals, where the preferred answer ends with a fixed phrase
(" Hope this helps!") and the non-preferred one is the same answer without it. ``tailor.tiny`` is
first fine-tuned with the real SFT recipe on the training prompts with their plain
(non-preferred) answers, what a first fine-tuning would teach; that SFT model finds the plain
answer more likely on every held-out pair (its preference accuracy is 0). DPO from the SFT output
folder (a custom-model start), on other animals, must make it prefer the preferred answer on at
least 30 points more of the held-out pairs, measured on the plain log likelihoods of the two
answers (``dpo.preference_accuracy``), not by the training loss.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tailor.catalog import CustomizationType, resolve_model
from tailor.data.formats import PreferenceRecord
from tailor.data.preference import preference_turns, validate_preference
from tailor.errors import InvalidHyperparameters, InvalidInput
from tailor.serve.generation import load_for_inference
from tailor.settings import Settings
from tailor.train import dpo, recipes, sft
from tailor.train.contract import Hooks, StopRequested
from tailor.train.hyperparams import parse_dpo_hyperparameters
from tailor.train.spec import TrainSpec
from tailor.trained import MODEL_DIR, TRAINING_METRICS, VALIDATION_METRICS
from tests.conftest import tiny_home

ANIMALS = ("cat dog bird fish horse cow sheep goat lion tiger bear wolf fox deer mouse rabbit frog snake "
           "owl duck swan crow hawk eagle bee ant moth crab seal whale shark eel toad bat mole newt pony "
           "lamb calf colt mule yak").split()
QUALITIES = "small quick quiet brave calm wild gentle clever".split()
PHRASE = " Hope this helps!"
TRAINING_PAIRS = 32  # the other 10 animals are held out
SFT_EPOCHS = 3
# Measured while writing this (2-core CPU): after 3 SFT epochs on the plain answers (~10 s of
# training) the SFT model puts the plain answer ~74 nats above the preferred one on every held-out
# pair (accuracy 0). 10 DPO epochs at 3x the learning rate with beta 0.02 prefer the preferred one
# on 10/10, the smallest log-likelihood margin ~11 nats, in ~20 s of training. At the default beta
# 0.1 the DPO loss saturates first (a reward margin of ~7 is ~70 nats of log ratio): the same run
# reaches a reward accuracy of 1 but leaves every plain margin at about -6.5 nats (accuracy 0).
LEARNING = {"epochCount": 10, "learningRateMultiplier": 3, "beta": 0.02}


def pair(index: int, animal: str) -> dict:
    answer = f"The {animal} is {QUALITIES[index % len(QUALITIES)]}."
    return {"input": {"messages": [{"role": "user", "content": f"Tell me about the {animal}."}]},
            "preferred_output": [{"role": "assistant", "content": answer + PHRASE}],
            "non_preferred_output": [{"role": "assistant", "content": answer}]}


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def task(tmp_path_factory, tiny_models_dir):
    root = tmp_path_factory.mktemp("dpo")
    settings = Settings(home=tiny_home(root / "home", tiny_models_dir))
    pairs = [pair(index, animal) for index, animal in enumerate(ANIMALS)]
    training = write_jsonl(root / "train.jsonl", pairs[:TRAINING_PAIRS])
    held_out = write_jsonl(root / "held_out.jsonl", pairs[TRAINING_PAIRS:])
    records = [PreferenceRecord.model_validate(row) for row in pairs[TRAINING_PAIRS:]]
    return settings, root, training, held_out, records


@pytest.fixture(scope="module")
def sft_start(task):
    """The SFT start: ``tailor.tiny`` fine-tuned by the real SFT recipe on the training prompts with
    their plain (non-preferred) answers; shared by the tests that train from it."""
    settings, root, training, _, _ = task
    rows = [json.loads(line) for line in training.read_text().splitlines()]
    plain = write_jsonl(root / "sft.jsonl", [{"messages": [*row["input"]["messages"], *row["non_preferred_output"]]}
                                            for row in rows])
    outcome = sft.run(TrainSpec("FINE_TUNING", "tailor.tiny", str(plain), root / "sft",
                                hyperparameters={"epochCount": SFT_EPOCHS}, progress=False), settings)
    return outcome.output_dir


@pytest.fixture(scope="module")
def learned(task, sft_start):
    """The SFT start's held-out accuracy, then a full-weights DPO run from the SFT output folder
    through the recipe table with the held-out pairs as its validation file."""
    settings, root, training, held_out, records = task
    start = load_for_inference(str(sft_start), settings, progress=False)
    before = dpo.preference_accuracy(start.model, start.tokenizer, records)
    steps: list[tuple[int, int, float]] = []
    validations: list[tuple[int, float]] = []
    hooks = Hooks(on_step=lambda step, epoch, loss: steps.append((step, epoch, loss)),
                  on_validation=lambda epoch, loss: validations.append((epoch, loss)))
    outcome = recipes.run(TrainSpec(customization_type="DPO", model=str(sft_start), training_uri=str(training),
                                    output_dir=root / "run", validation_uris=(str(held_out),),
                                    hyperparameters=LEARNING, progress=False), settings, hooks)
    trained = load_for_inference(str(outcome.output_dir), settings, progress=False)
    after = dpo.preference_accuracy(trained.model, trained.tokenizer, records)
    reward_accuracy = dpo.preference_accuracy(trained.model, trained.tokenizer, records, reference=start.model)
    return outcome, before, after, reward_accuracy, steps, validations


@pytest.mark.slow
def test_dpo_makes_the_model_prefer_the_preferred_answers_on_held_out_prompts(learned):
    outcome, before, after, reward_accuracy, _, _ = learned
    print(f"held-out preference accuracy: SFT start {before:.2f} -> DPO {after:.2f}; "
          f"reward accuracy {reward_accuracy:.2f}")
    assert before <= 0.1  # the SFT start prefers the plain answers it was taught
    assert after >= before + 0.30, f"held-out preference accuracy only went from {before:.2f} to {after:.2f}"
    assert reward_accuracy >= 0.9  # relative to the SFT start's weights, the DPO reward's own sign


@pytest.mark.slow
def test_dpo_writes_its_metrics_manifest_and_progress(learned):
    outcome, _, _, _, steps, validations = learned
    rows = read_csv(outcome.output_dir / TRAINING_METRICS)
    assert list(rows[0]) == ["step_number", "epoch_number", "training_loss", "rewards/chosen",
                             "rewards/rejected", "rewards/accuracies", "rewards/margins"]
    assert len(rows) == 10 * 4  # 32 pairs in batches of 8, 10 epochs
    assert [int(row["step_number"]) for row in rows] == list(range(40))
    assert [step for step, _, _ in steps] == list(range(40))
    assert float(rows[-1]["training_loss"]) < 0.5 * float(rows[0]["training_loss"])
    assert float(rows[-1]["rewards/margins"]) > 0
    held_out = read_csv(outcome.output_dir / VALIDATION_METRICS)
    assert [int(row["epoch_number"]) for row in held_out] == list(range(1, 11))
    assert [epoch for epoch, _ in validations] == list(range(1, 11))
    assert float(held_out[-1]["rewards/accuracies"]) >= 0.9
    manifest = json.loads((outcome.output_dir / "manifest.json").read_text())
    assert manifest["customization_type"] == "DPO"
    assert manifest["hyperparameters"] == {"epochCount": 10, "batchSize": 8, "learningRateMultiplier": 3.0,
                                           "beta": 0.02, "tuningMethod": "full", "loraRank": 16,
                                           "loraAlpha": 32.0, "seed": 42}
    assert manifest["data"]["training"]["records"] == TRAINING_PAIRS
    assert manifest["result"]["steps"] == 40
    assert manifest["result"]["training_tokens"] > 0 and manifest["result"]["tokens_per_second"] > 0
    assert manifest["result"]["best_validation_loss"] == min(manifest["result"]["validation_losses"])
    assert len(manifest["result"]["validation_losses"]) == 10
    assert (outcome.output_dir / "training_artifacts" / "loss.png").stat().st_size > 0


@pytest.mark.slow
def test_dpo_with_lora_publishes_the_trained_adapter_only(task):
    settings, root, training, _, _ = task
    outcome = recipes.run(TrainSpec(customization_type="DPO", model="tailor.tiny", training_uri=str(training),
                                    output_dir=root / "lora", hyperparameters={"tuningMethod": "lora", "epochCount": 1},
                                    progress=False), settings)
    model_dir = outcome.output_dir / MODEL_DIR
    assert (model_dir / "adapter_config.json").is_file()
    assert not (model_dir / "ref").exists()  # TRL's frozen reference copy of the adapter stays behind
    assert outcome.manifest["tuning_method"] == "lora"
    assert outcome.manifest["result"]["final_reward_accuracy"] is not None


@pytest.mark.slow
def test_a_stop_request_ends_the_run_and_publishes_nothing(task):
    settings, root, training, _, _ = task
    with pytest.raises(StopRequested):
        recipes.run(TrainSpec(customization_type="DPO", model="tailor.tiny", training_uri=str(training),
                              output_dir=root / "stopped", progress=False), settings, Hooks(should_stop=lambda: True))
    assert not (root / "stopped").exists() or not any((root / "stopped").iterdir())


def test_a_bad_preference_file_is_refused_by_line_and_field_before_training(task):
    settings, root, _, _, _ = task
    good = [pair(index, animal) for index, animal in enumerate(ANIMALS[:8])]
    two_answers = {**good[1], "preferred_output": good[1]["preferred_output"] * 2}
    ends_with_assistant = {**good[2], "input": {"messages": [*good[2]["input"]["messages"],
                                                             {"role": "assistant", "content": "Yes."}]}}
    same = {**good[3], "non_preferred_output": good[3]["preferred_output"]}
    wrong_role = {**good[4], "non_preferred_output": [{"role": "user", "content": "no"}]}
    late_developer = {**good[5], "input": {"messages": [*good[5]["input"]["messages"],
                                                        {"role": "developer", "content": "Be nice."}]}}
    extra_key = {**good[6], "input": {**good[6]["input"], "temperature": 0.3}}
    messages_format = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    trl_format = {"prompt": "Hi", "chosen": "Hello", "rejected": "Go away"}
    bad = write_jsonl(root / "bad.jsonl", [good[0], two_answers, ends_with_assistant, same, wrong_role,
                                           late_developer, extra_key, messages_format, "{not json", good[7],
                                           trl_format, ""])
    with pytest.raises(InvalidInput) as caught:
        recipes.run(TrainSpec(customization_type="DPO", model="tailor.tiny", training_uri=str(bad),
                              output_dir=root / "bad-run", progress=False), settings)
    message = caught.value.message
    assert "nothing was trained" in message
    for expected in (
        "line 2: preferred_output: must hold exactly 1 assistant message, got 2",
        "line 3: input.messages[1].role: the last message must be 'user'",
        "line 4: non_preferred_output[0].content: is the same as preferred_output[0].content",
        "line 5: non_preferred_output[0].role: must be 'assistant', got 'user'",
        "line 6: input.messages[1].role: a developer message may only be the first message",
        "line 7: input.temperature: unexpected key (allowed: messages, tools, parallel_tool_calls)",
        "line 8: record has keys 'messages', the messages format, but DPO takes preference records",
        "line 9: invalid JSON",
        "line 11: record has keys 'chosen' and 'rejected' (TRL's preference format)",
        "line 12: blank line",
    ):
        assert expected in message, f"{expected!r} not in:\n{message}"
    assert "line 1:" not in message and "line 10:" not in message
    assert not (root / "bad-run").exists()


def test_too_few_records_and_token_limits_are_reported(task):
    settings, root, _, _, _ = task
    model = resolve_model("tailor.tiny", settings)
    few = write_jsonl(root / "few.jsonl", [pair(0, "cat")])
    report = validate_preference(str(few), model, settings=settings)
    assert [str(problem) for problem in report.problems] == [
        f"{few}: file has 1 record; training data for family tailor needs at least 8 for DPO"]

    from tailor.weights import load_tokenizer

    long = pair(1, "dog")
    long["preferred_output"][0]["content"] = "word " * 2000
    report = validate_preference(str(write_jsonl(root / "long.jsonl", [long])), model, purpose="validation",
                                 tokenizer=load_tokenizer(model, settings, progress=False), settings=settings)
    assert report.problems[0].line == 1
    assert "with the model's tokenizer (the prompt with its longer answer); the limit is 1,024" in report.problems[0].message


def test_a_developer_message_is_rendered_as_the_system_prompt():
    record = PreferenceRecord.model_validate({
        "input": {"messages": [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Hi"}]},
        "preferred_output": [{"role": "assistant", "content": "Hello."}],
        "non_preferred_output": [{"role": "assistant", "content": "Go away."}]})
    prompt, chosen, rejected = preference_turns(record)
    assert prompt == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert chosen == {"role": "assistant", "content": "Hello."}
    assert rejected == {"role": "assistant", "content": "Go away."}


def test_tailor_trains_on_the_tokens_trl_renders(task):
    """The tokens the recipe trains on (``dpo.pair_examples``: fine-tuning's and serving's
    rendering) are those TRL's DPOTrainer renders: the prompt with its generation prompt, then the
    answer and its end of turn as the targets; so bench/dpo_preference.py compares like with like."""
    from trl import DPOConfig, DPOTrainer

    from tailor.data.render import IGNORE_INDEX

    settings, root, _, _, records = task
    start = load_for_inference("tailor.tiny", settings, progress=False)
    trainer = DPOTrainer(model=start.model, ref_model=None, processing_class=start.tokenizer,
                         train_dataset=dpo.pairs_dataset(records[:3]),
                         args=DPOConfig(output_dir=str(root / "trl-render"), use_cpu=True, bf16=False, report_to=[],
                                        max_length=None, gradient_checkpointing=False))
    for row, pair in zip(trainer.train_dataset, dpo.pair_examples(records[:3], start.tokenizer)):
        for example, answer_ids in ((pair.chosen, row["chosen_ids"]), (pair.rejected, row["rejected_ids"])):
            assert row["prompt_ids"] + answer_ids == example.input_ids
            assert answer_ids == [label for label in example.labels if label != IGNORE_INDEX]


def test_the_dpo_loss_is_the_sigmoid_loss_of_the_reward_margin():
    import math

    import torch

    loss, stats = dpo.dpo_loss(torch.tensor([-10.0, -8.0]), torch.tensor([-12.0, -7.0]),
                               torch.tensor([-11.0, -9.0]), torch.tensor([-11.0, -9.0]), beta=0.5)
    # rewards: chosen 0.5 * (1, 1) = (0.5, 0.5); rejected 0.5 * (-1, 2) = (-0.5, 1); margins (1, -0.5)
    expected = (-math.log(1 / (1 + math.exp(-1))) - math.log(1 / (1 + math.exp(0.5)))) / 2
    assert loss.item() == pytest.approx(expected)
    assert stats == pytest.approx({"rewards/chosen": 0.5, "rewards/rejected": 0.25, "rewards/accuracies": 0.5,
                                   "rewards/margins": 0.25})


# ---------------------------------------------------------------------------------------------
# Hyperparameters


@pytest.fixture
def tiny(tmp_path):
    return resolve_model("tailor.tiny", Settings(home=tmp_path))


def test_dpo_hyperparameters_have_every_default_filled_in(tiny):
    config = parse_dpo_hyperparameters({}, tiny)
    assert config.hyperparameters == {"epochCount": 3, "batchSize": 8, "learningRateMultiplier": 1.0, "beta": 0.1,
                                      "tuningMethod": "full", "loraRank": 16, "loraAlpha": 32.0, "seed": 42}
    assert (config.epochs, config.batch_size, config.beta) == (3, 8, 0.1)
    assert config.learning_rate == pytest.approx(tiny.weights.base_learning_rate("full") * 0.1)
    assert parse_dpo_hyperparameters(config.hyperparameters, tiny) == config  # the effective values parse again


def test_dpo_hyperparameters_take_json_values_cli_strings_and_auto(tiny):
    typed = parse_dpo_hyperparameters({"epochCount": 2, "batchSize": 4, "beta": 2, "learningRateMultiplier": 0.5,
                                       "tuningMethod": "lora"}, tiny)
    strings = parse_dpo_hyperparameters({"epochCount": "2", "batchSize": "4", "beta": "2",
                                         "learningRateMultiplier": "0.5", "tuningMethod": "lora"}, tiny)
    assert typed == strings
    assert (typed.epochs, typed.batch_size, typed.beta, typed.tuning_method) == (2, 4, 2.0, "lora")
    assert typed.learning_rate == pytest.approx(tiny.weights.base_learning_rate("lora") * 0.1 * 0.5)
    assert parse_dpo_hyperparameters({"beta": "auto", "epochCount": "auto"}, tiny).hyperparameters["beta"] == 0.1


def test_dpo_hyperparameter_errors_name_every_field(tiny):
    with pytest.raises(InvalidHyperparameters) as caught:
        parse_dpo_hyperparameters({"beta": 0, "epochCount": 2.5, "batchSize": 0, "learningRateMultiplier": True,
                                   "earlyStoppingPatience": 2}, tiny)
    problems = caught.value.problems
    assert problems["beta"] == "must be greater than 0 and at most 2; got 0"
    assert problems["epochCount"] == "must be an integer; got 2.5"
    assert problems["batchSize"] == "must be between 1 and 256; got 0"
    assert problems["learningRateMultiplier"] == "must be a number; got true"
    assert problems["earlyStoppingPatience"].startswith("unknown hyperparameter for DPO in the tailor family")
    with pytest.raises(InvalidHyperparameters) as caught:
        parse_dpo_hyperparameters({"beta": 2.5}, tiny)
    assert caught.value.problems == {"beta": "must be greater than 0 and at most 2; got 2.5"}


def test_a_family_without_dpo_is_refused(tmp_path):
    settings = Settings(home=tmp_path, model_aliases={"anthropic.claude-3-haiku-20240307-v1:0:200k": "tailor.tiny"})
    haiku = resolve_model("anthropic.claude-3-haiku-20240307-v1:0:200k", settings)
    with pytest.raises(InvalidInput, match="does not support DPO"):
        parse_dpo_hyperparameters({}, haiku)


def test_the_recipe_table_trains_dpo_outside_the_supervised_loop():
    assert recipes.RECIPES[CustomizationType.DPO] == "tailor.train.dpo"
    assert CustomizationType.DPO not in recipes.SUPERVISED
    assert recipes.recipe(CustomizationType.DPO) is dpo.run
