"""The pre-flight estimate (``tailor.train.estimate``): parameter counts from a config on the meta
device, the memory arithmetic, the time arithmetic, and a whole estimate of a tailor.tiny run that
trains nothing; then the plan on a run's devices (``tailor.train.plan``, ``tailor.train.devices``)
and the create-time estimate (``tailor.train.preflight``). Its agreement with measured peaks is a
benchmark (bench/estimate.py), not a test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tailor.errors import InvalidInput
from tailor.train import devices, estimate, plan, preflight
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


# ---------------------------------------------------------------------------------------------
# Per device, per process count, and the plan (issue 14).

MIB = 1024**2


def small_config(name: str):
    """The family's small test config (tailor.architectures' sizes), without training a tokenizer."""
    import transformers

    from tailor.architectures import ARCHITECTURES, SMALL

    architecture = ARCHITECTURES[name]
    values = {"vocab_size": SMALL.vocab_size, "hidden_size": SMALL.hidden_size,
              "intermediate_size": SMALL.intermediate_size, "num_hidden_layers": SMALL.num_layers,
              "num_attention_heads": SMALL.num_heads, "num_key_value_heads": SMALL.num_key_value_heads,
              "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, **architecture.small_config}
    return getattr(transformers, architecture.config_class)(**values)


@pytest.mark.parametrize("name", ["llama3", "qwen2.5", "mistral", "gemma2", "phi3"])
def test_the_shape_from_config_json_alone_matches_the_meta_device_count(name, tmp_path):
    config = small_config(name)
    config.save_pretrained(tmp_path)  # what a model folder holds: only values that differ from defaults
    saved = json.loads((tmp_path / "config.json").read_text())
    for method in ("full", "lora"):
        assert preflight.shape_from_config(saved, method, lora_rank=8) == estimate.model_shape(config, method, 8)


def test_an_unknown_architecture_has_no_create_time_shape():
    assert preflight.shape_from_config({"model_type": "mixtral", "hidden_size": 64}, "full") is None
    assert preflight.shape_from_config({"model_type": "llama"}, "full") is None  # sizes missing


def test_lora_and_full_convert_into_each_other():
    full = estimate.model_shape(llama_config(), "full", lora_rank=8)
    lora = estimate.model_shape(llama_config(), "lora", lora_rank=8)
    assert plan.as_tuning(full, "lora", 8) == lora
    assert plan.as_tuning(lora, "full") == full


def test_one_cpu_process_is_the_validated_estimate():
    for method in ("full", "lora"):
        shape = estimate.model_shape(llama_config(), method)
        for checkpointing in (False, True):
            memory = estimate.estimate_memory(shape, 4, 100)
            device = plan.device_memory(shape, 4, 100, activation_checkpointing=checkpointing)
            assert device.peak == (memory.peak_checkpointed if checkpointing else memory.peak)


def test_memory_per_device_by_process_count():
    shape = estimate.model_shape(llama_config(), "full")
    one = plan.device_memory(shape, 2, 100)
    # Data parallel: every device holds everything; the batch's share sets the activations.
    replicated = plan.device_memory(shape, 2, 100, processes=4)
    assert replicated == one
    # Fully sharded: weights, gradients and optimizer state divided, plus one layer gathered.
    sharded = plan.device_memory(shape, 2, 100, processes=4, sharded=True)
    assert sharded.weights == -(-shape.parameters // 4) * 4
    assert sharded.optimizer == 2 * sharded.gradients == 2 * -(-shape.parameters // 4) * 4
    assert sharded.gathered == 2 * shape.layer_parameters * 4  # the layer's weights and its gradients
    assert sharded.activations == one.activations
    assert sharded.states < one.states / 2
    # One process has nothing to shard across.
    assert plan.device_memory(shape, 2, 100, processes=1, sharded=True) == one


def test_bfloat16_activations_on_a_gpu():
    shape = estimate.model_shape(llama_config(), "full")
    cpu = plan.device_memory(shape, 2, 100)
    gpu = plan.device_memory(shape, 2, 100, activation_bytes=2)
    tokens = 2 * 100
    logits = tokens * estimate.LOGITS_FACTOR * shape.vocab_size * 4  # the loss upcasts them to float32
    assert gpu.activations - logits == (cpu.activations - logits) // 2
    assert (gpu.weights, gpu.gradients, gpu.optimizer) == (cpu.weights, cpu.gradients, cpu.optimizer)  # float32
    assert gpu.compute_copies == 2 * shape.trainable_parameters and cpu.compute_copies == 0
    # A LoRA run's frozen base is bfloat16 on a GPU; its adapter float32.
    lora = estimate.model_shape(llama_config(), "lora")
    assert plan.device_memory(lora, 2, 100, activation_bytes=2).weights == \
        2 * lora.parameters + 4 * lora.trainable_parameters
    # Fully sharded on a GPU: a layer is gathered in bfloat16, its gradients reduced in float32.
    sharded = plan.device_memory(shape, 2, 100, processes=4, sharded=True, activation_bytes=2)
    assert sharded.gathered == (2 + 4) * shape.layer_parameters and sharded.compute_copies == 0


def peak(shape, micro, length=100, **options):
    return plan.device_memory(shape, micro, length, **options).peak


def test_the_plan_takes_the_largest_micro_batch_that_fits_then_checkpointing_then_sharding():
    shape = estimate.model_shape(llama_config(num_hidden_layers=12, vocab_size=256), "full")  # layers dominate
    roomy = plan.plan(shape, 8, 100, peak(shape, 8) + 1, processes=1)
    assert (roomy.micro_batch_size, roomy.activation_checkpointing, roomy.sharded) == (8, False, False) and roomy.fits
    assert roomy.peak_bytes == peak(shape, 8) and roomy.advice == ()

    # A micro-batch of 4 fits, 8 does not: gradients accumulate over two passes.
    smaller = plan.plan(shape, 8, 100, peak(shape, 4), processes=1)
    assert (smaller.micro_batch_size, smaller.activation_checkpointing, smaller.fits) == (4, False, True)

    # Not even one sequence fits without checkpointing: the largest micro-batch that fits with it.
    budget = peak(shape, 1) - 1
    assert peak(shape, 2, activation_checkpointing=True) <= budget
    checkpointed = plan.plan(shape, 8, 100, budget, processes=1)
    assert checkpointed.activation_checkpointing and checkpointed.fits and not checkpointed.sharded
    assert checkpointed.micro_batch_size >= 2
    assert checkpointed.peak_bytes == peak(shape, checkpointed.micro_batch_size, activation_checkpointing=True)

    # The weights, gradients and optimizer state do not fit one device: fully sharded over four.
    states = plan.device_memory(shape, 1, 100).states
    sharded = plan.plan(shape, 8, 100, states - 1, processes=4)
    assert sharded.sharded and sharded.fits
    assert sharded.micro_batch_size in (1, 2)  # divides the per-process batch of 2
    assert sharded.peak_bytes <= states - 1
    # ... but with room for them, four processes stay data parallel.
    assert not plan.plan(shape, 8, 100, peak(shape, 2), processes=4).sharded


def test_a_given_micro_batch_or_checkpointing_is_kept():
    shape = estimate.model_shape(llama_config(), "full")
    kept = plan.plan(shape, 8, 100, 10**12, processes=1, micro_batch_size=2, activation_checkpointing=True)
    assert (kept.micro_batch_size, kept.activation_checkpointing, kept.fits) == (2, True, True)
    refused = plan.plan(shape, 8, 100, peak(shape, 4), processes=1, micro_batch_size=8)
    assert not refused.fits and refused.micro_batch_size == 8
    assert any(line.startswith("a smaller microBatchSize: 4") for line in refused.advice)
    unchecked = plan.plan(shape, 8, 100, peak(shape, 1) - 1, processes=1, activation_checkpointing=False)
    assert not unchecked.fits
    assert any(line.startswith("activation checkpointing") for line in unchecked.advice)


def test_nothing_fits_and_the_advice_is_computed_not_guessed():
    shape = estimate.model_shape(llama_config(vocab_size=32000, hidden_size=256, intermediate_size=688), "full")
    lora = plan.as_tuning(shape, "lora")
    smallest = peak(shape, 1, activation_checkpointing=True)
    budget = (smallest + peak(lora, 1, activation_checkpointing=True)) // 2  # LoRA fits, full does not
    result = plan.plan(shape, 8, 100, budget, processes=1)
    assert not result.fits and result.peak_bytes == smallest
    assert result.micro_batch_size == 1 and result.activation_checkpointing
    text = " | ".join(result.advice)
    assert "LoRA instead of full training" in text
    processes = next(line for line in result.advice if " processes, one per device, fully sharded" in line)
    count = int(processes.split()[0])
    assert plan.plan(shape, 8, 100, budget, processes=count).fits
    assert not plan.plan(shape, 8, 100, budget, processes=count - 1).fits
    assert not any(line.startswith("shorter sequences") for line in result.advice)  # the states alone do not fit
    # The states fit but not one sequence's activations: shorter sequences would.
    states = plan.device_memory(shape, 1, 100).states
    tight = plan.plan(shape, 8, 100, states + (smallest - states) // 2, processes=1)
    shorter = next(line for line in tight.advice if line.startswith("shorter sequences"))
    length = int(shorter.rsplit(" ", 2)[-2].replace(",", ""))
    assert plan.plan(shape, 8, length, states + (smallest - states) // 2, processes=1).fits
    assert not plan.plan(shape, 8, length + 1, states + (smallest - states) // 2, processes=1).fits
    # Far too small a device: nothing helps but a bigger one, and the advice says how big.
    hopeless = plan.plan(shape, 8, 100, 1024, processes=1)
    assert hopeless.advice == (f"a device with more memory: this run needs {estimate._size(smallest)} per device",)


def test_budget_and_processes_from_settings(home):
    from tailor.settings import Settings

    assert devices.device_budget(Settings(home=home, device_memory_gib=1.5)) == int(1.5 * 1024**3)
    assert devices.processes_for(Settings(home=home, training_processes=3)) == 3
    if not devices.on_gpu(Settings(home=home)):  # this machine: the CPU path
        import psutil

        assert devices.processes_for(Settings(home=home)) == 1
        assert 0 < devices.device_budget(Settings(home=home)) <= psutil.virtual_memory().total


def test_the_create_time_estimate_reads_no_weights(home, tmp_path):
    from tailor.catalog import resolve_model
    from tailor.settings import Settings
    from tailor.train.hyperparams import parse_hyperparameters

    settings = Settings(home=home, device_memory_gib=2)
    model = resolve_model("tailor.tiny", settings)
    config = parse_hyperparameters({"batchSize": "4"}, model)
    train = write_chat(tmp_path / "train.jsonl", 10)
    result = preflight.preflight(model, config, "FINE_TUNING", str(train), settings)
    assert result.plan.fits and result.processes == 1 and result.budget_bytes == 2 * 1024**3
    assert result.sequence_source == "data" and 10 < result.sequence_length < 100 and result.batch_size == 4
    assert result.describe().startswith("Estimated peak memory ")
    assert "per device of 2.00 GiB (1 process, data parallel, micro-batch 4, no activation checkpointing)" \
        in result.describe()
    assert result.data()["peak_bytes"] == result.plan.peak_bytes
    # The tiny model's shape is known before it is built (its recipe), the same as after.
    unbuilt = Settings(home=tmp_path / "empty", device_memory_gib=2)
    assert preflight.shape_from_config(preflight.config_json(model, unbuilt), "full") == \
        preflight.shape_from_config(preflight.config_json(model, settings), "full")
    # A file too big to read at create time: bounded by the model's context instead.
    big = tmp_path / "big.jsonl"
    big.write_bytes(b" " * (preflight.PREFLIGHT_READ_BYTES_MAX + 1))
    bounded = preflight.preflight(model, config, "FINE_TUNING", str(big), settings)
    assert bounded.sequence_source == "context" and bounded.sequence_length == 1024
    assert preflight.preflight(model, config, "REINFORCEMENT_FINE_TUNING", str(train), settings) is None
