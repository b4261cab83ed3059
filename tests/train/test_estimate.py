"""The pre-flight estimate (``tailor.train.estimate``): parameter counts from a config on the meta
device, the memory arithmetic, the time arithmetic, and a whole estimate of a tailor.tiny run that
trains nothing. Its agreement with measured peaks is a benchmark (bench/estimate.py), not a test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tailor.errors import InvalidInput
from tailor.train import estimate
from tailor.train.spec import TrainSpec


def llama_config(**overrides):
    from transformers import LlamaConfig

    shape = {"vocab_size": 1000, "hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 3,
             "num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": False}
    return LlamaConfig(**{**shape, **overrides})


def test_parameter_counts_match_a_real_model_without_building_one():
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    config = llama_config()
    full = estimate.model_shape(config, "full")
    model = LlamaForCausalLM(config)
    assert full.parameters == full.trainable_parameters == sum(p.numel() for p in model.parameters())
    assert full.matmul_parameters == full.parameters - 1000 * 64  # the embedding lookup is no product
    assert (full.layers, full.hidden_size, full.intermediate_size, full.vocab_size) == (3, 64, 160, 1000)
    # q 64, k 32, v 32, o 64, gate 160, up 160, down 64
    assert full.linear_outputs_per_layer == 64 + 32 + 32 + 64 + 160 + 160 + 64

    lora = estimate.model_shape(config, "lora", lora_rank=8)
    adapted = get_peft_model(model, LoraConfig(r=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    assert lora.trainable_parameters == sum(p.numel() for p in adapted.parameters() if p.requires_grad)
    assert lora.parameters == full.parameters


def test_tied_embeddings_are_counted_once():
    shape = estimate.model_shape(llama_config(tie_word_embeddings=True), "full")
    assert shape.parameters == shape.matmul_parameters == estimate.model_shape(llama_config(), "full").parameters - 64_000


def test_memory_parts():
    full = estimate.model_shape(llama_config(), "full")
    lora = estimate.model_shape(llama_config(), "lora")
    memory = estimate.estimate_memory(full, batch_size=2, sequence_length=100)
    assert memory.weights == 4 * full.parameters
    assert memory.gradients == 4 * full.parameters
    assert memory.optimizer == 8 * full.parameters  # AdamW: two float32 moments
    assert memory.peak == memory.weights + memory.gradients + memory.optimizer + memory.activations
    assert memory.activations_checkpointed < memory.activations
    assert memory.peak_checkpointed < memory.peak
    # Activations grow with the batch's tokens; LoRA keeps the weights but little optimizer state.
    assert estimate.estimate_memory(full, 4, 100).activations == 2 * memory.activations
    adapter = estimate.estimate_memory(lora, 2, 100)
    assert adapter.weights == memory.weights
    assert adapter.gradients + adapter.optimizer < (memory.gradients + memory.optimizer) / 2


def test_time_from_a_throughput_or_the_default():
    shape = estimate.model_shape(llama_config(), "full")
    probed = estimate.estimate_time(shape, training_tokens=1000, epochs=3, validation_tokens=300,
                                    tokens_per_second=100.0)
    assert probed.tokens == 3 * (1000 + 100)
    assert probed.seconds == pytest.approx(33.0)
    default = estimate.estimate_time(shape, 1000, 1)
    assert default.tokens_per_second == pytest.approx(estimate.DEFAULT_CPU_FLOPS / (6 * shape.matmul_parameters))
    assert default.throughput_source.startswith("default")


def write_chat(path: Path, records: int) -> Path:
    path.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"What is {i} + {i}?"},
        {"role": "assistant", "content": f"It is {2 * i}, which is " + "quite " * (i % 5) + "even."}]}) + "\n"
        for i in range(records)))
    return path


def test_estimates_a_tiny_run_without_training(home, tmp_path):
    train = write_chat(tmp_path / "train.jsonl", 10)
    out = tmp_path / "run"
    spec = TrainSpec("FINE_TUNING", "tailor.tiny", str(train), out,
                     hyperparameters={"epochCount": "2", "batchSize": "4"}, progress=False)
    result = estimate.estimate_run(spec)
    assert not out.exists()
    assert result.shape.tuning_method == "full"
    assert result.training_records == 10 and result.epochs == 2 and result.steps == 6 and result.batch_size == 4
    assert result.time.tokens == 2 * result.tokens_per_epoch
    assert result.longest_sequence > 10 and result.memory.peak > result.memory.weights > 0
    table = result.render()
    for label in ("peak memory", "weights", "optimizer (AdamW)", "activations", "time"):
        assert label in table


def test_refuses_invalid_data_and_reinforcement_runs(home, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\n')
    with pytest.raises(InvalidInput):
        estimate.estimate_run(TrainSpec("FINE_TUNING", "tailor.tiny", str(bad), tmp_path / "run", progress=False))
    with pytest.raises(InvalidInput, match="not estimated"):
        estimate.estimate_run(TrainSpec("REINFORCEMENT_FINE_TUNING", "tailor.tiny", str(bad), tmp_path / "r"))
