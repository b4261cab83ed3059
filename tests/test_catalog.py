"""Model ids resolve to a family and weights; aliases are explicit and keep their family."""

import pytest

from tailor.catalog import (
    FAMILIES,
    FOUNDATION_MODELS,
    CustomizationType,
    DataFormat,
    DataLimits,
    resolve_model,
    resolve_registered_model,
)
from tailor.errors import ModelUnavailable, NotFound
from tailor.settings import Settings

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0:200k"
RFT = CustomizationType.REINFORCEMENT_FINE_TUNING
# The base models the original service lists for reinforcement fine-tuning.
RFT_MODELS = ("amazon.nova-2-lite-v1:0:256k", "openai.gpt-oss-20b", "qwen.qwen3-32b")


def test_tiny_is_builtin(tmp_path):
    model = resolve_model("tailor.tiny", Settings(home=tmp_path))
    assert (model.family.name, model.weights.kind, model.alias_of) == ("tailor", "builtin", None)
    assert "test model" in model.notes[0]


def test_original_id_without_alias_says_how_to_map_it(tmp_path):
    with pytest.raises(ModelUnavailable) as error:
        resolve_model(HAIKU, Settings(home=tmp_path))
    assert "TAILOR_MODEL_ALIASES" in error.value.message and HAIKU in error.value.message


def test_alias_from_environment_keeps_family(tmp_path, monkeypatch):
    monkeypatch.setenv("TAILOR_HOME", str(tmp_path))
    monkeypatch.setenv("TAILOR_MODEL_ALIASES", '{"%s": "tailor.tiny"}' % HAIKU)
    model = resolve_model(f"arn:aws:bedrock:us-east-1::foundation-model/{HAIKU}", Settings())
    assert model.model_id == HAIKU
    assert model.family.name == "anthropic.claude-3-haiku"
    assert model.weights.kind == "builtin"
    assert model.alias_of == "tailor.tiny"
    assert "alias from TAILOR_MODEL_ALIASES" in model.describe()


def test_alias_from_settings_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TAILOR_HOME", str(tmp_path))
    monkeypatch.delenv("TAILOR_MODEL_ALIASES", raising=False)
    (tmp_path / "settings.toml").write_text(f'[model_aliases]\n"{HAIKU}" = "tailor.tiny"\n')
    assert resolve_model(HAIKU, Settings()).alias_of == "tailor.tiny"


def test_local_directory_and_hub_id(tmp_path):
    settings = Settings(home=tmp_path)
    assert resolve_model(str(tmp_path), settings).weights.kind == "local"
    assert resolve_model("org/some-model", settings).weights.kind == "hub"
    with pytest.raises(NotFound):
        resolve_model("no-such-model", settings)
    with pytest.raises(NotFound):
        resolve_model(str(tmp_path / "missing"), settings)


def test_a_mistyped_id_gets_did_you_mean(tmp_path):
    settings = Settings(home=tmp_path, model_aliases={"house-model": "tailor.tiny"})
    with pytest.raises(NotFound) as error:
        resolve_model("tailor.tyny", settings)
    assert "Unknown model 'tailor.tyny'. Did you mean 'tailor.tiny'? Use a catalog id" in error.value.message
    with pytest.raises(NotFound) as error:
        resolve_registered_model("meta.llama3-8b-instruct-v1", settings)
    assert error.value.message.endswith(
        "(TAILOR_MODEL_ALIASES). Did you mean 'meta.llama3-1-8b-instruct-v1:0:128k' or "
        "'meta.llama3-1-70b-instruct-v1:0:128k'?")
    with pytest.raises(NotFound) as error:  # the operator's aliases are names a caller may use too
        resolve_registered_model("arn:aws:bedrock:us-east-1::foundation-model/house-modle", settings)
    assert "Did you mean 'house-model'?" in error.value.message
    with pytest.raises(NotFound) as error:  # nothing close: no guess
        resolve_registered_model("gpt-4o", settings)
    assert "Did you mean" not in error.value.message


def test_every_catalog_entry_fits_the_api_contract(tmp_path):
    """Every foundation model, as the API lists it, passes botocore's output shape."""
    from tailor.api.bedrock.shapes import shape_output
    from tailor.catalog import FOUNDATION_MODELS
    from tailor.services.models import foundation_model_summary

    settings = Settings(home=tmp_path)
    summaries = [foundation_model_summary(settings, model_id) for model_id in FOUNDATION_MODELS]
    shape_output("ListFoundationModels", {"modelSummaries": summaries}, strict=True)


def test_the_rft_models_of_the_original_are_catalog_ids_without_weights(tmp_path):
    rft_models = {model_id for model_id, entry in FOUNDATION_MODELS.items() if RFT in entry.customization_types}
    assert rft_models == {"tailor.tiny", *RFT_MODELS}
    for model_id in RFT_MODELS:
        entry = FOUNDATION_MODELS[model_id]
        assert entry.customization_types == (RFT,) and entry.weights is None
        assert FAMILIES[entry.family].formats == {RFT: (DataFormat.RFT_CHAT,)}
        assert FAMILIES[entry.family].limits_for(RFT).train_records == (100, 20_000)
        with pytest.raises(ModelUnavailable, match="TAILOR_MODEL_ALIASES"):
            resolve_model(model_id, Settings(home=tmp_path))
    assert FAMILIES["amazon.nova-2"].limits_for(RFT).single_turn
    assert not FAMILIES["openai.gpt-oss"].limits_for(RFT).single_turn


def test_an_aliased_rft_model_keeps_its_family_and_type(tmp_path):
    settings = Settings(home=tmp_path, model_aliases={"openai.gpt-oss-20b": "tailor.tiny"})
    model = resolve_model("arn:aws:bedrock:us-west-2::foundation-model/openai.gpt-oss-20b", settings)
    assert (model.model_id, model.family.name, model.weights.kind) == (
        "openai.gpt-oss-20b", "openai.gpt-oss", "builtin")
    assert model.customization_types == (RFT,)


def test_tailor_tiny_and_folders_support_rft_and_dpo_with_test_sized_limits(tmp_path):
    settings = Settings(home=tmp_path)
    tiny = resolve_model("tailor.tiny", settings)
    assert tiny.customization_types == (CustomizationType.FINE_TUNING, CustomizationType.CONTINUED_PRE_TRAINING, RFT,
                                        CustomizationType.DPO, CustomizationType.DISTILLATION)
    assert tiny.family.formats[CustomizationType.DPO] == (DataFormat.PREFERENCE,)
    assert resolve_model(str(tmp_path), settings).customization_types == tiny.customization_types
    assert tiny.family.formats[RFT] == (DataFormat.RFT_CHAT,)
    limits = tiny.family.limits_for(RFT)
    assert (limits.train_records, limits.validation_records, limits.total_records_max) == (
        (8, 20_000), (1, 1_000), None)
    # Other types keep the family's own limits.
    assert tiny.family.limits_for(CustomizationType.FINE_TUNING) is tiny.family.limits
    assert tiny.family.limits.train_records == (8, 10_000)


def test_limits_for_falls_back_to_the_family_limits():
    haiku = FAMILIES["anthropic.claude-3-haiku"]
    assert haiku.limits_for(RFT) is haiku.limits
    assert DataLimits().single_turn is False
