"""The common architectures (``tailor.architectures``) through Tailor's real paths: rendering,
the SFT recipe (full and LoRA), serving's rendering and decoding, and merging a LoRA output.

Each family is a small random-initialised model built here with transformers' own classes, a
byte-level BPE tokenizer and the family's chat template (about a second each), so nothing needs
a hub.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tailor.architectures import ARCHITECTURES, build_small
from tailor.data.render import IGNORE_INDEX, chat_example, prompt_ids
from tailor.settings import get_settings
from tailor.train import sft
from tailor.train.spec import TrainSpec

pytestmark = pytest.mark.slow

FAMILIES = sorted(ARCHITECTURES)
CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is Tailor?"},
    {"role": "assistant", "content": "A platform."},
    {"role": "user", "content": "Where does it run?"},
    {"role": "assistant", "content": "On your machines."},
]


def test_the_module_imports_without_the_model_stack():
    import subprocess
    import sys

    code = ("import sys, tailor.architectures; "
            "print(sorted(m for m in ('torch', 'transformers', 'tokenizers', 'peft') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These models are so small that torch's intra-op threads cost more than they give: on a
    busy two-core machine, 20 training steps of the Gemma 2 model took 6-14 s with 2 threads and
    0.25-0.4 s with 1 (measured)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Each family's small model folder, built once for the module, on first use."""
    folders: dict[str, Path] = {}

    def folder(name: str) -> Path:
        if name not in folders:
            folders[name] = build_small(name, tmp_path_factory.mktemp(name.replace(".", "-")) / "model")
        return folders[name]

    return folder


def load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


@pytest.mark.parametrize("name", FAMILIES)
def test_loss_is_on_the_assistant_turns_and_prompts_are_training_prefixes(built, name):
    architecture = ARCHITECTURES[name]
    tokenizer = load_tokenizer(built(name))
    example = chat_example(tokenizer, CHAT)
    labelled = [token for token, label in zip(example.input_ids, example.labels) if label != IGNORE_INDEX]
    expected = "".join(architecture.answer_prefix + turn["content"] + architecture.end_of_turn
                       for turn in CHAT if turn["role"] == "assistant")
    assert tokenizer.decode(labelled) == expected
    end = tokenizer.convert_tokens_to_ids(architecture.end_of_turn)
    assert labelled.count(end) == 2  # each answer's end-of-turn is one token, and a target
    # The whole rendering is the family's format (one spot check each) and, whatever the
    # family, an inference prompt is exactly the prefix of the conversation trained on.
    assert architecture.end_of_turn in tokenizer.decode(example.input_ids)
    for turns in (2, 4):
        prompt = prompt_ids(tokenizer, CHAT[:turns])
        assert example.input_ids[: len(prompt)] == prompt
        assert example.labels[len(prompt)] != IGNORE_INDEX  # the answer starts right after it


# A prompt as each family's documentation shows it (system message, one user turn, ready for the
# answer): the templates are the project's own, so this pins them to the families' formats.
DOCUMENTED_PROMPTS = {
    "llama3": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nWhat is Tailor?<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "qwen2.5": "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is Tailor?<|im_end|>\n"
               "<|im_start|>assistant\n",
    "mistral": "<s>[INST] Be brief.\n\nWhat is Tailor?[/INST]",
    "gemma2": "<bos><start_of_turn>user\nBe brief.\n\nWhat is Tailor?<end_of_turn>\n<start_of_turn>model\n",
    "phi3": "<|system|>\nBe brief.<|end|>\n<|user|>\nWhat is Tailor?<|end|>\n<|assistant|>\n",
    "qwen3": "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is Tailor?<|im_end|>\n"
             "<|im_start|>assistant\n",
    "gemma3": "<bos><start_of_turn>user\nBe brief.\n\nWhat is Tailor?<end_of_turn>\n<start_of_turn>model\n",
    "phi4": "<|im_start|>system<|im_sep|>Be brief.<|im_end|><|im_start|>user<|im_sep|>What is Tailor?<|im_end|>"
            "<|im_start|>assistant<|im_sep|>",
}


def test_every_family_names_its_model_types_and_system_role():
    """What the catalog checks a hub model's folder against (config.json ``model_type``), and
    whether the format has a system turn (Gemma and Mistral fold it into the first user turn)."""
    for architecture in ARCHITECTURES.values():
        assert architecture.model_types, architecture.name
        assert architecture.system_role == (architecture.name not in ("gemma2", "gemma3", "mistral"))
        assert architecture.end_of_turn in architecture.special_tokens + (architecture.eos,)


@pytest.mark.parametrize("name", FAMILIES)
def test_the_template_writes_the_family_format(built, name):
    tokenizer = load_tokenizer(built(name))
    rendered = tokenizer.apply_chat_template(CHAT[:2], tokenize=False, add_generation_prompt=True)
    assert rendered == DOCUMENTED_PROMPTS[name]
    assert tokenizer.decode(prompt_ids(tokenizer, CHAT[:2])) == DOCUMENTED_PROMPTS[name]


def write_records(path: Path, count: int = 8) -> Path:
    with open(path, "w") as file:
        file.writelines(json.dumps({"prompt": f"Code {i}?", "completion": f"The code is {i * 7}."}) + "\n" for i in range(count))
    return path


def train(folder: Path, tmp_path: Path, tuning_method: str):
    spec = TrainSpec("FINE_TUNING", str(folder), str(write_records(tmp_path / "train.jsonl")),
                     tmp_path / f"run-{tuning_method}",
                     hyperparameters={"epochCount": "1", "batchSize": "4", "tuningMethod": tuning_method,
                                      "learningRateMultiplier": "10"},
                     progress=False)
    return sft.run(spec, get_settings())


@pytest.mark.parametrize("name", FAMILIES)
def test_full_fine_tuning_through_the_recipe(home, built, tmp_path, name):
    from transformers import AutoModelForCausalLM

    from tailor.serve.decoding import stop_ids

    outcome = train(built(name), tmp_path, "full")
    result = outcome.manifest["result"]
    assert outcome.manifest["tuning_method"] == "full"
    assert result["steps"] == 2 and result["final_training_loss"] > 0
    model = AutoModelForCausalLM.from_pretrained(outcome.model_dir)
    assert type(model).__name__ == ARCHITECTURES[name].model_class
    base = AutoModelForCausalLM.from_pretrained(built(name)).state_dict()
    changed = [key for key, value in model.state_dict().items() if not value.equal(base[key])]
    assert any("layers.0." in key for key in changed)  # every block trains, the first one too
    # The family's stop tokens survive training: the saved generation config still holds them.
    tokenizer = load_tokenizer(outcome.model_dir)
    assert tokenizer.convert_tokens_to_ids(ARCHITECTURES[name].end_of_turn) in stop_ids(model, tokenizer)


@pytest.mark.parametrize("name", FAMILIES)
def test_continued_pre_training_through_the_recipe(home, built, tmp_path, name):
    """Unlabeled text: every token of every window is a target, and the loss on it falls."""
    from transformers import AutoModelForCausalLM

    from tailor.train import cpt

    text = tmp_path / "text.jsonl"
    text.write_text("".join(json.dumps({"input": f"Tailor note {i}: the tide rises twice a day at the harbour."})
                            + "\n" for i in range(8)))
    spec = TrainSpec("CONTINUED_PRE_TRAINING", str(built(name)), str(text), tmp_path / "run-cpt",
                     hyperparameters={"epochCount": "3", "batchSize": "4", "learningRateMultiplier": "10"},
                     progress=False)
    outcome = cpt.run(spec, get_settings())
    result = outcome.manifest["result"]
    assert result["steps"] == 6 and outcome.manifest["customization_type"] == "CONTINUED_PRE_TRAINING"
    tokenizer = load_tokenizer(built(name))
    assert result["training_tokens"] >= 3 * 8 * len(tokenizer("Tailor note 0: the tide rises twice a day.")["input_ids"])
    losses = [float(line.split(",")[2]) for line in
              (outcome.output_dir / "training_artifacts" / "step_wise_training_metrics.csv").read_text().splitlines()[1:]]
    assert losses[-1] < losses[0]
    assert type(AutoModelForCausalLM.from_pretrained(outcome.model_dir)).__name__ == ARCHITECTURES[name].model_class


@pytest.mark.parametrize("name", FAMILIES)
def test_lora_wraps_the_family_modules_and_merges_into_plain_weights(home, built, tmp_path, name):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    architecture = ARCHITECTURES[name]
    folder = built(name)
    outcome = train(folder, tmp_path, "lora")
    assert outcome.manifest["tuning_method"] == "lora"
    assert not (outcome.model_dir / "model.safetensors").exists()

    base = AutoModelForCausalLM.from_pretrained(folder)
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(folder), outcome.model_dir)
    targeted = {name.rsplit(".", 1)[-1] for name in tuned.targeted_module_names}
    assert targeted == set(architecture.lora_target_modules)
    layers = base.config.num_hidden_layers
    assert len(tuned.targeted_module_names) == layers * len(architecture.lora_target_modules)

    prompt = torch.tensor([prompt_ids(load_tokenizer(folder), CHAT[:2])])
    with torch.no_grad():
        adapted = tuned(prompt).logits
        merged = tuned.merge_and_unload()
        merged.save_pretrained(tmp_path / "merged")
        plain = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
        assert type(plain).__name__ == architecture.model_class
        assert not any("lora" in key for key in plain.state_dict())
        reloaded = plain(prompt).logits
        assert (adapted - base(prompt).logits).abs().max() > 1e-4  # the adapter learned something
    torch.testing.assert_close(reloaded, adapted, rtol=1e-4, atol=1e-4)


def teach_one_answer(folder: Path, out: Path, turns: list[dict], max_steps: int = 80) -> Path:
    """Train the model on one conversation (labels from Tailor's rendering) until it says it,
    end-of-turn token included; save it with its tokenizer. (Measured: the loss falls below 0.05
    within 30-40 steps for every family.)"""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    example = chat_example(tokenizer, turns)
    ids = torch.tensor([example.input_ids])
    labels = torch.tensor([example.labels])
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    model.train()
    for _ in range(max_steps):
        loss = model(input_ids=ids, labels=labels).loss
        if loss.item() < 0.05:
            break
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.mark.parametrize("name", FAMILIES)
def test_generation_stops_at_the_end_of_turn_token(home, built, tmp_path, name):
    from tailor.serve.decoding import stop_ids
    from tailor.serve.generation import chat, load_for_inference

    architecture = ARCHITECTURES[name]
    answer = "The code is 42."
    taught = teach_one_answer(built(name), tmp_path / "taught", [
        {"role": "user", "content": "What is the code?"}, {"role": "assistant", "content": answer}])
    loaded = load_for_inference(str(taught), get_settings(), progress=False)
    end = loaded.tokenizer.convert_tokens_to_ids(architecture.end_of_turn)
    assert end in stop_ids(loaded.model, loaded.tokenizer)
    # The model emits the end-of-turn token right after the answer, as it was taught...
    import torch

    example = chat_example(loaded.tokenizer, [{"role": "user", "content": "What is the code?"},
                                              {"role": "assistant", "content": answer}])
    answer_end = next(i for i, (token, label) in enumerate(zip(example.input_ids, example.labels))
                      if token == end and label != IGNORE_INDEX)  # not the user turn's end
    until_end = example.input_ids[:answer_end]
    with torch.no_grad():
        assert loaded.model(torch.tensor([until_end])).logits[0, -1].argmax().item() == end
    # ...and serving's decoding stops there, far before the token limit, nothing after the answer.
    assert chat(loaded, ["What is the code?"], max_new_tokens=40) == [answer]


@pytest.mark.parametrize("name", FAMILIES)
def test_serving_decoding_matches_transformers_generate(built, name):
    """Serving's own decoding (a left-padded batch over a KV cache) answers as transformers'
    ``generate`` does, for each family's attention — Gemma 2's sliding window included: the long
    prompt is several windows (64 tokens in the small model) long."""
    import torch
    from transformers import AutoModelForCausalLM

    from tailor.serve.decoding import complete, stop_ids
    from tailor.serve.protocol import Sampling

    folder = built(name)
    tokenizer = load_tokenizer(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    long_question = " ".join(f"word{i}" for i in range(60))
    prompts = [prompt_ids(tokenizer, [{"role": "user", "content": long_question}]),
               prompt_ids(tokenizer, [{"role": "user", "content": "hi"}])]
    assert len(prompts[0]) > 3 * 64 > len(prompts[1])
    ours = complete(model, tokenizer, prompts, Sampling(max_tokens=20, temperature=0.0))
    theirs = []
    with torch.no_grad():
        for prompt in prompts:
            output = model.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False,
                                    eos_token_id=sorted(stop_ids(model, tokenizer)))
            theirs.append(tokenizer.decode(output[0, len(prompt):], skip_special_tokens=True))
    assert ours == theirs
