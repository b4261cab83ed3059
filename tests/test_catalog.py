"""Model ids resolve to a family and weights; aliases are explicit and keep their family."""

import pytest

from tailor.catalog import resolve_model
from tailor.errors import ModelUnavailable, NotFound
from tailor.settings import Settings

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0:200k"


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


def test_every_catalog_entry_fits_the_api_contract(tmp_path):
    """Every foundation model, as the API lists it, passes botocore's output shape."""
    from tailor.api.bedrock.shapes import shape_output
    from tailor.catalog import FOUNDATION_MODELS
    from tailor.services.customization import foundation_model_summary

    settings = Settings(home=tmp_path)
    summaries = [foundation_model_summary(settings, model_id) for model_id in FOUNDATION_MODELS]
    shape_output("ListFoundationModels", {"modelSummaries": summaries}, strict=True)
