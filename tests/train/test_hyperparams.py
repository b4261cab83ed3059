"""Hyperparameters are checked against the family's table, all errors at once: strings for
fine-tuning and continued pre-training, typed JSON values (or the CLI's strings) for RFT."""

import pytest

from tailor.catalog import FAMILIES, CustomizationType, resolve_model
from tailor.errors import InvalidHyperparameters, InvalidInput
from tailor.settings import Settings
from tailor.train.hyperparams import (
    FAMILY_HYPERPARAMETERS,
    KL_COEFFICIENT,
    RFT_HYPERPARAMETERS,
    RFT_WIRE_NAMES,
    RftConfig,
    parse_hyperparameters,
    parse_rft_hyperparameters,
    rft_table_for,
)

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0:200k"
COMMAND = "cohere.command-text-v14:7:4k"
NOVA = "amazon.nova-2-lite-v1:0:256k"
GPT_OSS = "openai.gpt-oss-20b"
QWEN = "qwen.qwen3-32b"
RFT = CustomizationType.REINFORCEMENT_FINE_TUNING


@pytest.fixture
def settings(tmp_path):
    aliases = {model_id: "tailor.tiny" for model_id in (HAIKU, COMMAND, NOVA, GPT_OSS, QWEN)}
    return Settings(home=tmp_path, model_aliases=aliases)


def test_every_family_has_a_table():
    supervised = {name for name, family in FAMILIES.items() if set(family.formats) - {RFT}}
    reinforcement = {name for name, family in FAMILIES.items() if RFT in family.formats}
    assert set(FAMILY_HYPERPARAMETERS) == supervised
    assert set(RFT_HYPERPARAMETERS) == reinforcement
    assert reinforcement == {"tailor", "amazon.nova-2", "openai.gpt-oss", "qwen.qwen3"}


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


def test_a_family_for_rft_only_takes_no_string_hyperparameters(settings):
    with pytest.raises(InvalidInput, match=r"^Family openai.gpt-oss takes no string hyperparameters: it "
                                           r"supports REINFORCEMENT_FINE_TUNING, whose hyperparameters are typed\.$"):
        parse_hyperparameters({}, resolve_model(GPT_OSS, settings))


# ---- reinforcement fine-tuning ---------------------------------------------------------------


def test_rft_tables_have_the_original_names_and_ranges():
    for name, table in RFT_HYPERPARAMETERS.items():
        ranges = {p.name: (p.minimum, p.maximum) for p in table}
        assert tuple(ranges) == RFT_WIRE_NAMES
        assert ranges["epochCount"] == (1, 50)
        assert ranges["batchSize"] == ((2 if name == "tailor" else 16), 512)
        assert ranges["learningRate"] == (1e-7, 1e-3)
        assert ranges["trainingSamplePerPrompt"] == (2, 16)
        assert ranges["evalInterval"] == (1, 100)
        assert ranges["maxPromptLength"] == ranges["inferenceMaxTokens"] == (1, None)
        assert table[6].choices == ("low", "medium", "high")


def test_rft_tables_match_botocore():
    import botocore.session

    shape = botocore.session.get_session().get_service_model("bedrock").shape_for("RFTHyperParameters")
    assert tuple(shape.members) == RFT_WIRE_NAMES
    for parameter in RFT_HYPERPARAMETERS["openai.gpt-oss"]:
        member = shape.members[parameter.name]
        if parameter.kind is str:
            assert tuple(member.enum) == parameter.choices
        else:
            assert member.type_name == {int: "integer", float: "float"}[parameter.kind]
            assert (member.metadata.get("min"), member.metadata.get("max")) in (
                (parameter.minimum, parameter.maximum), (None, None))


def test_rft_defaults_for_tailor_tiny(settings):
    config = parse_rft_hyperparameters({}, resolve_model("tailor.tiny", settings))
    assert config == RftConfig(
        epochs=4, batch_size=16, learning_rate=1e-4, max_prompt_length=512, samples_per_prompt=8,
        inference_max_tokens=64, reasoning_effort=None, eval_interval=10, tuning_method="full",
        lora_rank=16, lora_alpha=32.0, kl_coefficient=KL_COEFFICIENT, seed=42,
        hyperparameters={"epochCount": 4, "batchSize": 16, "learningRate": 1e-4, "maxPromptLength": 512,
                         "trainingSamplePerPrompt": 8, "inferenceMaxTokens": 64, "evalInterval": 10,
                         "tuningMethod": "full", "loraRank": 16, "loraAlpha": 32, "seed": 42},
    )
    assert config.prompts_per_step == 2 and KL_COEFFICIENT == 0.1


@pytest.mark.parametrize("model_id", [NOVA, GPT_OSS, QWEN])
def test_rft_defaults_of_the_original_families_are_the_aws_sample(settings, model_id):
    model = resolve_model(model_id, settings)
    config = parse_rft_hyperparameters({}, model)
    assert (config.epochs, config.batch_size, config.learning_rate, config.max_prompt_length,
            config.samples_per_prompt, config.inference_max_tokens, config.eval_interval,
            config.reasoning_effort) == (1, 16, 5e-5, 2_500, 2, 500, 10, None)
    assert config.prompts_per_step == 8
    assert config.tuning_method == "full"  # the alias's weights are tailor.tiny


def test_rft_defaults_for_real_models_in_the_tailor_family(settings, tmp_path):
    folder = resolve_model(str(tmp_path), settings)  # a model folder: LoRA by default
    assert RFT in folder.customization_types
    lora = parse_rft_hyperparameters({}, folder)
    assert (lora.tuning_method, lora.learning_rate, lora.max_prompt_length, lora.inference_max_tokens) == (
        "lora", 1e-5, 2_500, 500)
    full = parse_rft_hyperparameters({"tuningMethod": "full"}, resolve_model("org/model", settings))
    assert (full.tuning_method, full.learning_rate) == ("full", 1e-6)
    assert rft_table_for(folder)["learningRate"].default == 1e-5


def test_rft_values_arrive_typed(settings):
    model = resolve_model(GPT_OSS, settings)
    raw = {"epochCount": 2, "batchSize": 64, "learningRate": 1e-5, "maxPromptLength": 4096,
           "trainingSamplePerPrompt": 8, "inferenceMaxTokens": 1024, "reasoningEffort": "low", "evalInterval": 5}
    config = parse_rft_hyperparameters(raw, model)
    assert (config.epochs, config.batch_size, config.learning_rate, config.max_prompt_length,
            config.samples_per_prompt, config.inference_max_tokens, config.reasoning_effort,
            config.eval_interval) == (2, 64, 1e-5, 4096, 8, 1024, "low", 5)
    assert config.prompts_per_step == 8
    assert {name: config.hyperparameters[name] for name in RFT_WIRE_NAMES} == raw


def test_an_integer_is_a_float_value(settings):
    config = parse_rft_hyperparameters({"loraAlpha": 64}, resolve_model(QWEN, settings))
    assert config.lora_alpha == 64.0 and isinstance(config.lora_alpha, float)
    with pytest.raises(InvalidHyperparameters) as error:
        parse_rft_hyperparameters({"learningRate": 1}, resolve_model(QWEN, settings))
    assert error.value.problems == {"learningRate": "must be between 1e-07 and 0.001; got 1"}


def test_rft_values_as_cli_strings(settings):
    model = resolve_model("tailor.tiny", settings)
    config = parse_rft_hyperparameters({"epochCount": "2", "batchSize": " 8 ", "learningRate": "5e-4",
                                        "trainingSamplePerPrompt": "4", "reasoningEffort": "high",
                                        "seed": "7", "tuningMethod": "full"}, model)
    assert (config.epochs, config.batch_size, config.learning_rate, config.samples_per_prompt,
            config.reasoning_effort, config.seed) == (2, 8, 5e-4, 4, "high", 7)
    assert config.hyperparameters["batchSize"] == 8 and config.hyperparameters["reasoningEffort"] == "high"


def test_effective_hyperparameters_parse_to_the_same_config(settings):
    model = resolve_model("tailor.tiny", settings)
    config = parse_rft_hyperparameters({"batchSize": 32, "reasoningEffort": "medium"}, model)
    assert parse_rft_hyperparameters(config.hyperparameters, model) == config


def test_rft_wrong_types_ranges_and_names_all_at_once(settings):
    model = resolve_model(NOVA, settings)
    with pytest.raises(InvalidHyperparameters) as error:
        parse_rft_hyperparameters({
            "epochCount": True, "batchSize": 8, "learningRate": "fast", "maxPromptLength": 0,
            "trainingSamplePerPrompt": 2.0, "inferenceMaxTokens": None, "reasoningEffort": "extreme",
            "evalInterval": 101, "learningRateMultiplier": 1, "seed": [1], "loraAlpha": float("inf"),
            "tuningMethod": 1,
        }, model)
    problems = error.value.problems
    assert problems == {
        "epochCount": "must be an integer; got true",
        "batchSize": "must be between 16 and 512; got 8",
        "learningRate": "must be a number; got 'fast'",
        "maxPromptLength": "must be at least 1; got 0",
        "trainingSamplePerPrompt": "must be an integer; got 2.0",
        "inferenceMaxTokens": "must be an integer; got null",
        "reasoningEffort": "must be one of low, medium, high; got 'extreme'",
        "evalInterval": "must be between 1 and 100; got 101",
        "learningRateMultiplier": (
            "unknown hyperparameter for REINFORCEMENT_FINE_TUNING in the amazon.nova-2 family (accepted: "
            "epochCount, batchSize, learningRate, maxPromptLength, trainingSamplePerPrompt, inferenceMaxTokens, "
            "reasoningEffort, evalInterval, tuningMethod, loraRank, loraAlpha, seed)"),
        "seed": "must be an integer; got [1]",
        "loraAlpha": "must be a finite number; got Infinity",
        "tuningMethod": "must be one of full, lora; got 1",
    }
    assert "epochCount: must be an integer; got true" in error.value.message


def test_a_boolean_is_not_a_number_for_float_fields_either(settings):
    with pytest.raises(InvalidHyperparameters) as error:
        parse_rft_hyperparameters({"learningRate": False}, resolve_model(QWEN, settings))
    assert error.value.problems == {"learningRate": "must be a number; got false"}


def test_batch_size_must_hold_whole_groups(settings):
    model = resolve_model(GPT_OSS, settings)
    why = "each optimizer step takes whole groups of one prompt's samples"
    with pytest.raises(InvalidHyperparameters) as error:
        parse_rft_hyperparameters({"batchSize": 20, "trainingSamplePerPrompt": 8}, model)
    assert error.value.problems == {"batchSize": f"must be a multiple of trainingSamplePerPrompt (8): {why}; got 20"}
    with pytest.raises(InvalidHyperparameters) as error:  # the default group size is 2
        parse_rft_hyperparameters({"batchSize": 17}, model)
    assert error.value.problems == {
        "batchSize": f"must be a multiple of trainingSamplePerPrompt (2, the default): {why}; got 17"}
    with pytest.raises(InvalidHyperparameters) as error:  # the default batch size is 16
        parse_rft_hyperparameters({"trainingSamplePerPrompt": 3}, model)
    assert error.value.problems == {"trainingSamplePerPrompt": f"must divide batchSize (16, the default): {why}; got 3"}
    # tailor.tiny: a batch smaller than a group cannot hold it
    with pytest.raises(InvalidHyperparameters) as error:
        parse_rft_hyperparameters({"batchSize": 4}, resolve_model("tailor.tiny", settings))
    assert error.value.problems == {
        "batchSize": f"must be a multiple of trainingSamplePerPrompt (8, the default): {why}; got 4"}
    assert parse_rft_hyperparameters({"batchSize": 48, "trainingSamplePerPrompt": 3}, model).prompts_per_step == 16


def test_every_rft_table_has_consistent_defaults():
    for table in RFT_HYPERPARAMETERS.values():
        defaults = {p.name: p.default for p in table}
        assert defaults["batchSize"] % defaults["trainingSamplePerPrompt"] == 0
        for parameter in table:
            if parameter.default is not None and parameter.kind is not str:
                assert parameter.minimum <= parameter.default <= (parameter.maximum or float("inf"))


def test_rft_needs_a_family_that_supports_it(settings):
    with pytest.raises(InvalidInput, match=r"^Family anthropic.claude-3-haiku does not support "
                                           r"REINFORCEMENT_FINE_TUNING \(supported: FINE_TUNING\)\.$"):
        parse_rft_hyperparameters({}, resolve_model(HAIKU, settings))
