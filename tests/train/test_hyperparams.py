"""Hyperparameters arrive as strings, are checked against the family's table, all errors at once."""

import pytest

from tailor.catalog import resolve_model
from tailor.errors import InvalidHyperparameters
from tailor.settings import Settings
from tailor.train.hyperparams import FAMILY_HYPERPARAMETERS, parse_hyperparameters

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0:200k"
COMMAND = "cohere.command-text-v14:7:4k"


@pytest.fixture
def settings(tmp_path):
    return Settings(home=tmp_path, model_aliases={HAIKU: "tailor.tiny", COMMAND: "tailor.tiny"})


def test_every_family_has_a_table():
    from tailor.catalog import FAMILIES

    assert set(FAMILY_HYPERPARAMETERS) == set(FAMILIES)


def test_tiny_defaults_and_multiplier(settings):
    model = resolve_model("tailor.tiny", settings)
    config = parse_hyperparameters({}, model)
    assert (config.epochs, config.batch_size, config.tuning_method) == (25, 8, "full")
    doubled = parse_hyperparameters({"learningRateMultiplier": "2"}, model)
    assert doubled.learning_rate == pytest.approx(2 * model.weights.full_learning_rate)
    lora = parse_hyperparameters({"tuningMethod": "lora"}, model)
    assert lora.learning_rate == pytest.approx(model.weights.lora_learning_rate)


def test_alias_keeps_the_haiku_family_ranges(settings):
    model = resolve_model(HAIKU, settings)
    config = parse_hyperparameters({"epochCount": "10", "batchSize": "4",
                                    "earlyStoppingThreshold": "0.01", "earlyStoppingPatience": "1"}, model)
    assert (config.epochs, config.batch_size, config.early_stopping_patience) == (10, 4, 1)
    with pytest.raises(InvalidHyperparameters) as error:
        parse_hyperparameters({"epochCount": "11"}, model)
    assert error.value.problems == {"epochCount": "must be between 1 and 10; got 11"}


def test_all_problems_reported_at_once_with_field_names(settings):
    model = resolve_model(HAIKU, settings)
    with pytest.raises(InvalidHyperparameters) as error:
        parse_hyperparameters({"epochCount": "two", "batchSize": "2", "learningRate": "0.1",
                               "earlyStoppingThreshold": "nan", "tuningMethod": "qlora"}, model)
    problems = error.value.problems
    assert problems["epochCount"] == "must be an integer; got 'two'"
    assert problems["batchSize"] == "must be between 4 and 256; got 2"
    assert problems["learningRate"].startswith("unknown hyperparameter for the anthropic.claude-3-haiku family")
    assert problems["earlyStoppingThreshold"] == "must be a finite number; got 'nan'"
    assert problems["tuningMethod"] == "must be one of full, lora; got 'qlora'"
    assert "epochCount: must be an integer" in error.value.message


def test_seed_001_cohere_strings(settings):
    config = parse_hyperparameters({"epochCount": "1", "batchSize": "8", "learningRate": "0.00001"},
                                   resolve_model(COMMAND, settings))
    assert (config.epochs, config.batch_size, config.learning_rate) == (1, 8, 1e-5)
    assert config.eval_percentage == 20  # Cohere holds out 20 % when no validation set is given
    with pytest.raises(InvalidHyperparameters) as error:  # Command (not Light) takes batch size 8 only
        parse_hyperparameters({"batchSize": "16"}, resolve_model(COMMAND, settings))
    assert error.value.problems == {"batchSize": "must be between 8 and 8; got 16"}
