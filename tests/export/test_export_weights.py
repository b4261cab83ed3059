"""Exported weights against Tailor's own serving: a merged Hugging Face folder loads in plain
transformers and answers greedily exactly as Tailor does; a GGUF file reads back tensor for tensor
equal to the merged weights, and a forward pass written here from llama.cpp's conventions (ggml's
adjacent-pair rope, the names and layout the file declares) decodes the same answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tailor.errors import InvalidInput
from tailor.export import gguf as gguf_export
from tailor.export.hf import Source
from tailor.export.model import export
from tailor.services.inference import target_for_artifacts
from tailor.settings import Settings

pytestmark = pytest.mark.slow
ANSWER_TOKENS = 24


def _source(folder: Path, name: str) -> Source:
    target, _ = target_for_artifacts(folder)
    return Source(base=target.base, adapter=target.adapter, name=name)


def _tailor_answers(folder: Path, settings: Settings, conversations: list[list[dict]]) -> list[str]:
    """What Tailor's serving answers: the trained folder loaded as the engine loads it, decoded by
    serving's own path (``serve.decoding``), greedy."""
    from tailor.serve.generation import generate, load_target

    target, _ = target_for_artifacts(folder)
    return generate(load_target(target, settings), conversations, max_new_tokens=ANSWER_TOKENS)


def _plain_answers(folder: Path, conversations: list[list[dict]]) -> list[str]:
    """What plain transformers answers from the exported folder, greedy, nothing of Tailor's."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    answers = []
    for conversation in conversations:
        ids = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, return_tensors="pt",
                                            return_dict=True)["input_ids"]
        out = model.generate(ids, do_sample=False, max_new_tokens=ANSWER_TOKENS)
        answers.append(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip())
    return answers


def _faq(trained) -> list[list[dict]]:
    return [[m for m in record["messages"] if m["role"] != "assistant"][:1] for record in trained.faq[:3]]


def _codes() -> list[list[dict]]:
    return [[{"role": "user", "content": f"Code {i}?"}] for i in (2, 5, 11)]


@pytest.mark.parametrize("kind", ["full", "lora_a"])
def test_merged_folder_answers_as_serving_does(trained, tmp_path, kind):
    settings = Settings(home=trained.home)
    folder = getattr(trained, kind)
    conversations = _faq(trained) if kind == "full" else _codes()
    exported = export(_source(folder, kind), "hf", tmp_path / "hf", settings)

    names = set(exported.files)
    assert {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
            "chat_template.jinja", "model.safetensors"} <= names
    assert not any(name.startswith("adapter") for name in names)  # merged: no peft files left
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]

    served = _tailor_answers(folder, settings, conversations)
    assert all(served), served
    assert _plain_answers(tmp_path / "hf", conversations) == served
    if kind == "lora_a":  # the adapter changed the answers: the merge carried it
        assert any(answer.startswith("The code is") for answer in served), served


def test_gguf_reads_back_equal_and_decodes_as_serving_does(trained, tmp_path):
    import gguf
    import torch
    from safetensors.torch import load_file

    settings = Settings(home=trained.home)
    source = _source(trained.lora_a, "codes")
    hf = export(source, "hf", tmp_path / "hf", settings)
    config = json.loads((hf.path / "config.json").read_text())
    weights = {name: tensor.to(torch.float32).numpy() for name, tensor in load_file(hf.path / "model.safetensors").items()}

    for tensor_type in ("f16", "f32"):
        out = export(source, "gguf", tmp_path / f"codes-{tensor_type}.gguf", settings, tensor_type=tensor_type)
        reader = gguf.GGUFReader(out.path)
        tensors = {t.name: t for t in reader.tensors}
        assert len(tensors) == len(weights)
        heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
        layout = np.float16 if tensor_type == "f16" else np.float32
        for name, value in weights.items():
            stored = _gguf_name(name)
            expected = value
            if name.endswith("q_proj.weight"):
                expected = _interleave(value, heads)
            elif name.endswith("k_proj.weight"):
                expected = _interleave(value, kv_heads)
            dtype = np.float32 if value.ndim == 1 else layout
            assert np.array_equal(np.asarray(tensors[stored].data), expected.astype(dtype)), name
        fields = {key: field.contents() for key, field in reader.fields.items() if not key.startswith("tokenizer.ggml.t")}
        assert fields["general.architecture"] == "llama"
        assert fields["llama.block_count"] == config["num_hidden_layers"]
        assert fields["llama.embedding_length"] == config["hidden_size"]
        assert fields["llama.attention.head_count"] == heads
        assert fields["llama.attention.head_count_kv"] == kv_heads
        assert fields["llama.context_length"] == config["max_position_embeddings"]
        assert fields["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(config["rms_norm_eps"])
        assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "gpt-2"
        assert fields["tokenizer.ggml.eos_token_id"] == 1
        assert "<|assistant|>" in fields["tokenizer.chat_template"]
        assert len(reader.fields["tokenizer.ggml.tokens"].contents()) == config["vocab_size"]

    # The float32 file, run as llama.cpp would read it, decodes what Tailor serves.
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hf.path)
    served = _tailor_answers(trained.lora_a, settings, _codes())
    reader = gguf.GGUFReader(tmp_path / "codes-f32.gguf")
    for conversation, answer in zip(_codes(), served):
        ids = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, return_dict=True)["input_ids"]
        produced = _ggml_greedy(reader, list(ids), eos=1, steps=ANSWER_TOKENS)
        assert tokenizer.decode(produced, skip_special_tokens=True).strip() == answer


def test_grouped_query_llama3_gguf_decodes_as_transformers_does(tmp_path):
    """Llama 3's layout: grouped-query attention (K permuted with the KV head count) and its
    pre-tokenizer, on a small random model of the family (``architectures.build_small``)."""
    import gguf
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tailor.architectures import build_small

    folder = build_small("llama3", tmp_path / "llama3", seed=5)
    settings = Settings(home=tmp_path / "home")
    out = export(Source(str(folder), name="llama3"), "gguf", tmp_path / "llama3.gguf", settings, tensor_type="f32")
    reader = gguf.GGUFReader(out.path)
    assert reader.fields["tokenizer.ggml.pre"].contents() == "llama-bpe"
    assert reader.fields["llama.attention.head_count_kv"].contents() < reader.fields["llama.attention.head_count"].contents()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "Hello there"}], add_generation_prompt=True,
                                        return_dict=True)["input_ids"]
    expected = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=8, min_new_tokens=8)[0, len(ids):]
    assert _ggml_greedy(reader, list(ids), eos=-1, steps=8) == expected.tolist()


def test_other_architectures_export_as_hf_and_gguf_refuses_them(tmp_path):
    from tailor.architectures import build_small
    from tailor.serve.generation import generate, load_target
    from tailor.serve.protocol import Target

    folder = build_small("qwen2.5", tmp_path / "qwen", seed=5)
    settings = Settings(home=tmp_path / "home")
    exported = export(Source(str(folder), name="qwen"), "hf", tmp_path / "hf", settings)
    conversations = [[{"role": "user", "content": "Hello there"}]]
    served = generate(load_target(Target(base=str(folder)), settings), conversations, max_new_tokens=8)
    assert _plain_answers(exported.path, conversations) == served
    with pytest.raises(InvalidInput, match="qwen2"):
        export(Source(str(folder), name="qwen"), "gguf", tmp_path / "qwen.gguf", settings)
    assert not (tmp_path / "qwen.gguf").exists()


def test_gguf_refuses_what_llama_cpp_would_misread(tmp_path):
    folder = tmp_path / "qwen"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen2", "num_hidden_layers": 1}))
    with pytest.raises(InvalidInput, match="qwen2"):
        gguf_export.refuse_unsupported(folder)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (folder / "tokenizer.json").write_text(json.dumps({"model": {"type": "Unigram"}, "decoder": {}}))
    with pytest.raises(InvalidInput, match="SentencePiece"):
        gguf_export.refuse_unsupported(folder)


# ---------------------------------------------------------------------------------------------
# llama.cpp's reading of a GGUF file, in numpy (llama-cpp-python has no wheel for this machine)


def _gguf_name(name: str) -> str:
    parts = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    if name in parts:
        return parts[name]
    layer, rest = name.removeprefix("model.layers.").split(".", 1)
    short = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    return f"blk.{layer}.{short[rest.removesuffix('.weight')]}.weight"


def _interleave(weight: np.ndarray, heads: int) -> np.ndarray:
    """Each head's rows [r0 .. r(d/2-1), s0 .. s(d/2-1)] as [r0, s0, r1, s1, ...]."""
    rows = weight.shape[0] // heads
    out = np.empty_like(weight)
    for head in range(heads):
        block = weight[head * rows:(head + 1) * rows]
        out[head * rows:(head + 1) * rows][0::2] = block[:rows // 2]
        out[head * rows:(head + 1) * rows][1::2] = block[rows // 2:]
    return out


def _ggml_greedy(reader, ids: list[int], *, eos: int, steps: int) -> list[int]:
    """Greedy decoding with a Llama forward pass over the file's tensors: RMS norm, attention with
    rope rotating adjacent pairs (ggml's LLAMA_ROPE_TYPE_NORM), SwiGLU."""
    fields = {key: field.contents() for key, field in reader.fields.items() if key.startswith("llama.")}
    w = {t.name: np.asarray(t.data, dtype=np.float32) for t in reader.tensors}
    heads, kv_heads = fields["llama.attention.head_count"], fields["llama.attention.head_count_kv"]
    dim, eps = fields["llama.rope.dimension_count"], fields["llama.attention.layer_norm_rms_epsilon"]
    base = fields["llama.rope.freq_base"]

    def norm(x, weight):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * weight

    def rope(x):  # x: (tokens, heads, dim); pairs (2i, 2i+1) turn by position * base^(-2i/dim)
        positions = np.arange(x.shape[0])[:, None]
        angles = positions * base ** (-np.arange(0, dim, 2) / dim)[None, :]
        cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]
        even, odd = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2], out[..., 1::2] = even * cos - odd * sin, even * sin + odd * cos
        return out

    produced: list[int] = []
    for _ in range(steps):
        tokens = ids + produced
        x = w["token_embd.weight"][tokens]
        n = len(tokens)
        mask = np.triu(np.full((n, n), -np.inf), 1)
        for block in range(fields["llama.block_count"]):
            p = f"blk.{block}."
            h = norm(x, w[p + "attn_norm.weight"])
            q = rope((h @ w[p + "attn_q.weight"].T).reshape(n, heads, dim))
            k = rope((h @ w[p + "attn_k.weight"].T).reshape(n, kv_heads, dim))
            v = (h @ w[p + "attn_v.weight"].T).reshape(n, kv_heads, dim)
            k, v = np.repeat(k, heads // kv_heads, axis=1), np.repeat(v, heads // kv_heads, axis=1)
            scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(dim) + mask
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            x = x + np.einsum("hqk,khd->qhd", scores, v).reshape(n, heads * dim) @ w[p + "attn_output.weight"].T
            h = norm(x, w[p + "ffn_norm.weight"])
            gate = h @ w[p + "ffn_gate.weight"].T
            x = x + ((gate / (1 + np.exp(-gate))) * (h @ w[p + "ffn_up.weight"].T)) @ w[p + "ffn_down.weight"].T
        output = w.get("output.weight", w["token_embd.weight"])  # tied embeddings: llama.cpp reuses token_embd
        logits = norm(x[-1], w["output_norm.weight"]) @ output.T
        token = int(np.argmax(logits))
        if token == eos:
            break
        produced.append(token)
    return produced
