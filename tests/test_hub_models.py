"""Open models by hub id (``tailor.hub_models``): found on this machine (an operator's folder or the
Hugging Face cache, never downloaded), refused when the folder holds another architecture, and
loaded with their family's chat rules (``tailor.architectures``).

The weights are small random models of the real architectures (``architectures.build_small``),
laid out as the hub cache lays them out: ``models--ORG--NAME/refs/main`` naming a revision under
``snapshots/``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tailor.architectures import ARCHITECTURES, build_small
from tailor.catalog import CustomizationType, hub_cache_dir, resolve_model
from tailor.errors import InvalidInput, ModelUnavailable
from tailor.hub_models import HUB_MODELS, find
from tailor.settings import Settings

QWEN = "Qwen/Qwen2.5-0.5B-Instruct"


def cache_snapshot(cache: Path, hub_id: str, revision: str = "abc") -> Path:
    """An empty snapshot folder in a hub cache, with ``refs/main`` pointing at it."""
    repo = cache / ("models--" + hub_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    return snapshot


def write_config(folder: Path, model_type: str, architecture: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": model_type, "architectures": [architecture]}))
    return folder


@pytest.fixture
def hf_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.fixture
def one_thread():
    """One torch thread for the small models (as tests/test_architectures.py: faster on a busy
    machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_every_table_entry_is_well_formed():
    ids = [model.hub_id.lower() for model in HUB_MODELS]
    assert len(ids) == len(set(ids))
    for model in HUB_MODELS:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", model.hub_id), model
        assert model.architecture in ARCHITECTURES, model
        assert ARCHITECTURES[model.architecture].model_types, model.architecture
        assert model.context_length > 0 and model.parameters_b > 0, model
        assert model.customization_types and all(CustomizationType(t) for t in model.customization_types)
        assert find(model.hub_id.upper()) is model
    # The families the brief names, instruct and base.
    for hub_id in ("meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.3-70B-Instruct",
                   "Qwen/Qwen2.5-72B-Instruct", "Qwen/Qwen3-0.6B", "Qwen/Qwen3-32B",
                   "mistralai/Mistral-7B-Instruct-v0.3", "google/gemma-2-27b-it", "google/gemma-3-12b-it",
                   "microsoft/Phi-3.5-mini-instruct", "microsoft/phi-4"):
        assert find(hub_id) is not None, hub_id
    assert not ARCHITECTURES[find("google/gemma-2-9b-it").architecture].system_role


def test_a_hub_id_resolves_to_the_hf_cache_case_insensitively(tmp_path, hf_cache):
    snapshot = write_config(cache_snapshot(hf_cache, QWEN), "qwen2", "Qwen2ForCausalLM")
    model = resolve_model("qwen/qwen2.5-0.5b-INSTRUCT", Settings(home=tmp_path))
    assert model.model_id == QWEN
    assert (model.weights.kind, model.weights.location) == ("local", str(snapshot.resolve()))
    assert model.hub_model is find(QWEN) and model.context_length == 32 * 1024
    assert model.lora_target_modules == "all-linear"
    assert "the Hugging Face cache" in model.notes[0] and "<|im_end|>" in model.notes[0]
    assert hub_cache_dir() == hf_cache


def test_hf_home_is_read_at_call_time(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hfhome"))
    write_config(cache_snapshot(tmp_path / "hfhome" / "hub", "google/gemma-2-2b-it"), "gemma2", "Gemma2ForCausalLM")
    model = resolve_model("google/gemma-2-2b-it", Settings(home=tmp_path))
    assert model.weights.location.startswith(str((tmp_path / "hfhome").resolve()))
    assert "no system role" in model.notes[0]


def test_an_operator_folder_comes_first(tmp_path, hf_cache):
    write_config(cache_snapshot(hf_cache, QWEN), "qwen2", "Qwen2ForCausalLM")
    settings = Settings(home=tmp_path)
    dropped = write_config(settings.models_dir / QWEN, "qwen2", "Qwen2ForCausalLM")
    assert resolve_model(QWEN, settings).weights.location == str(dropped.resolve())
    # ... and an alias from the hub id to a folder anywhere keeps the table's rules.
    folder = write_config(tmp_path / "weights" / "qwen", "qwen2", "Qwen2ForCausalLM")
    aliased = resolve_model(QWEN, Settings(home=tmp_path, model_aliases={QWEN: str(folder)}))
    assert (aliased.model_id, aliased.weights.location, aliased.alias_of) == (QWEN, str(folder.resolve()), str(folder))
    assert aliased.hub_model is find(QWEN)
    # A catalog id aliased to a hub-table id keeps its own family, and gets the table's rules.
    llama = "meta.llama3-1-8b-instruct-v1:0:128k"
    write_config(cache_snapshot(hf_cache, "meta-llama/Llama-3.1-8B-Instruct"), "llama", "LlamaForCausalLM")
    mapped = resolve_model(llama, Settings(home=tmp_path, model_aliases={llama: "meta-llama/Llama-3.1-8B-Instruct"}))
    assert mapped.family.name == "meta.llama" and mapped.hub_model.architecture == "llama3"


def test_missing_weights_say_where_tailor_looked_and_how_to_put_them_there(tmp_path, hf_cache):
    settings = Settings(home=tmp_path)
    with pytest.raises(ModelUnavailable) as error:
        resolve_model("microsoft/phi-4", settings)
    message = error.value.message
    assert "Tailor does not download weights" in message
    assert str(settings.models_dir / "microsoft" / "phi-4") in message
    assert str(hf_cache / "models--microsoft--phi-4") in message
    assert "TAILOR_MODEL_ALIASES" in message and "hf download microsoft/phi-4" in message
    # A snapshot without config.json is an unfinished download, said as such.
    cache_snapshot(hf_cache, "microsoft/phi-4")
    with pytest.raises(ModelUnavailable, match="without config.json"):
        resolve_model("microsoft/phi-4", settings)


def test_a_folder_of_another_architecture_is_refused(tmp_path, hf_cache):
    write_config(cache_snapshot(hf_cache, QWEN), "llama", "LlamaForCausalLM")
    with pytest.raises(InvalidInput) as error:
        resolve_model(QWEN, Settings(home=tmp_path))
    message = error.value.message
    assert "'llama' model (LlamaForCausalLM)" in message and f"{QWEN} is a qwen2.5 model" in message
    folder = write_config(tmp_path / "gemma", "gemma2", "Gemma2ForCausalLM")
    with pytest.raises(InvalidInput, match="'gemma2' model"):
        resolve_model(QWEN, Settings(home=tmp_path, model_aliases={QWEN: str(folder)}))


def as_base_checkpoint(folder: Path, end_of_text: str = "<|endoftext|>") -> None:
    """Make a saved Qwen 2.5 folder look like a base checkpoint's: no chat template, the end of
    text as eos everywhere, and no context limit in the tokenizer."""
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.pop("chat_template", None)
    config.update(eos_token=end_of_text, model_max_length=1_000_000_000_000)
    config_path.write_text(json.dumps(config))
    generation_path = folder / "generation_config.json"
    generation = json.loads(generation_path.read_text())
    vocabulary = json.loads((folder / "tokenizer.json").read_text())["added_tokens"]
    generation["eos_token_id"] = next(t["id"] for t in vocabulary if t["content"] == end_of_text)
    generation_path.write_text(json.dumps(generation))


@pytest.mark.slow
def test_a_cached_hub_model_loads_with_its_family_rules_and_stops_on_its_end_of_turn(home, tmp_path, hf_cache,
                                                                                   one_thread):
    from test_architectures import teach_one_answer

    from tailor.serve.decoding import stop_ids
    from tailor.serve.generation import chat, load_for_inference
    from tailor.settings import get_settings
    from tailor.weights import load_tokenizer

    family = ARCHITECTURES["qwen2.5"]
    answer = "The code is 42."
    built = build_small("qwen2.5", tmp_path / "built")
    snapshot = teach_one_answer(built, cache_snapshot(hf_cache, QWEN), [
        {"role": "user", "content": "What is the code?"}, {"role": "assistant", "content": answer}])
    as_base_checkpoint(snapshot)
    settings = get_settings()
    # The folder by itself has no chat template and does not stop on <|im_end|>.
    plain = load_tokenizer(resolve_model(str(snapshot), settings), settings)
    assert plain.chat_template is None and plain.eos_token == "<|endoftext|>"

    loaded = load_for_inference(QWEN, settings, progress=False)
    assert loaded.tokenizer.chat_template == family.chat_template
    assert loaded.tokenizer.model_max_length == find(QWEN).context_length
    end = loaded.tokenizer.convert_tokens_to_ids(family.end_of_turn)
    assert end in stop_ids(loaded.model, loaded.tokenizer)
    assert chat(loaded, ["What is the code?"], max_new_tokens=40) == [answer]


def test_a_tokenizer_without_the_family_tokens_is_refused(tmp_path, hf_cache):
    """A folder that declares the right model type but whose vocabulary lacks the family's
    end-of-turn token cannot take the family's template: said, not rendered wrongly."""
    from tailor.weights import load_tokenizer

    snapshot = cache_snapshot(hf_cache, QWEN)
    build_small("llama3", snapshot)
    config = json.loads((snapshot / "config.json").read_text())
    (snapshot / "config.json").write_text(json.dumps({**config, "model_type": "qwen2"}))
    as_base_checkpoint(snapshot, "<|end_of_text|>")
    with pytest.raises(InvalidInput, match="no chat template and no '<\\|im_end\\|>' token"):
        load_tokenizer(resolve_model(QWEN, Settings(home=tmp_path)), Settings(home=tmp_path))


@pytest.mark.slow
def test_training_from_a_hub_id_uses_the_family_template_and_its_output_keeps_the_rules(home, tmp_path, hf_cache,
                                                                                       one_thread):
    """Fine-tuning a base checkpoint named by hub id trains on the family's chat format (the
    tokenizer saved with the output carries it), and the custom model resolves back to the table's
    rules: LoRA output on the same base, re-customized, keeps its hub model."""
    from test_architectures import train
    from transformers import AutoTokenizer

    from tailor.trained import is_trained

    snapshot = cache_snapshot(hf_cache, QWEN)
    build_small("qwen2.5", snapshot)
    as_base_checkpoint(snapshot)
    outcome = train(Path(QWEN), tmp_path, "lora")
    assert outcome.manifest["tuning_method"] == "lora"
    output = next(path for path in (outcome.model_dir, outcome.model_dir.parent) if is_trained(path))
    again = resolve_model(str(output), Settings(home=home))
    assert again.hub_model is find(QWEN) and again.adapter
    assert again.weights.location == str(snapshot.resolve())
    saved = AutoTokenizer.from_pretrained(outcome.model_dir)
    assert saved.chat_template == ARCHITECTURES["qwen2.5"].chat_template
