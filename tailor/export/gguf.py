"""A Hugging Face folder (``export.hf``'s, a plain merged model) written as one GGUF file, the format
llama.cpp and the tools built on it (Ollama, LM Studio) load, with the maintained ``gguf`` package.

Tailor follows llama.cpp's own converter (``convert_hf_to_gguf.py``) for the Llama architecture,
which covers Llama 2 / 3.x, Mistral and the built-in ``tailor.tiny``:

- tensor names from the ``gguf`` package's map (``token_embd``, ``blk.N.attn_q``, ``output_norm`` ...);
- the rows of Q and K (weights and biases) permuted per head: Hugging Face's Llama applies rotary
  position to the two halves of each head (``rotate_half``), ggml's ``llama`` rope to adjacent
  pairs, so llama.cpp reorders each head's rows from [first half, second half] to interleaved
  pairs (K with the KV head count, for grouped-query attention);
- one-dimensional tensors (the norms) in F32, the matrices in F16 (default), F32 or Q8_0;
- metadata ``llama.*`` from config.json (context, sizes, heads, rms eps, rope base and scaling;
  Llama 3.1's frequency factors as the ``rope_freqs`` tensor), ``general.*`` and the tokenizer as
  ``tokenizer.ggml.*``: every token with its type, merges, special token ids, the chat template.

Only a byte-level BPE tokenizer (GPT-2 style, or Llama 3's) is written; a SentencePiece-style one,
and every other architecture (Qwen, Gemma, Phi), is refused with the reason before anything is
written — a GGUF llama.cpp would misread is worse than none. ``check`` reads the file back with
``gguf.GGUFReader`` and compares every tensor, byte for byte, with the same transformation of the
folder's weights, and the metadata with config.json.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

from tailor.errors import InvalidInput
from tailor.export.hf import WEIGHTS_SUFFIX, Exported, Progress

# config.json model_type -> what llama.cpp converts it as (its LlamaModel class covers these).
ARCHITECTURES = {"llama": "llama", "mistral": "llama"}
TENSOR_TYPES = ("f16", "f32", "q8_0")
# Hugging Face tensors llama.cpp does not keep (rotary tables it recomputes).
SKIPPED_SUFFIXES = (".rotary_emb.inv_freq", ".attention.masked_bias", ".attention.bias")
# The pre-tokenizer regular expression of Llama 3's tokenizer.json (llama.cpp's "llama-bpe").
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def supported(config: dict) -> str | None:
    """Why a model with this config.json cannot be written as GGUF; None when it can."""
    model_type = config.get("model_type")
    if model_type not in ARCHITECTURES:
        return (f"GGUF export supports the Llama architecture (model_type {', '.join(sorted(ARCHITECTURES))}); "
                f"this model is {model_type!r}. Export it as a Hugging Face folder (--format hf) and convert "
                "that with llama.cpp's convert_hf_to_gguf.py.")
    scaling = rope_parameters(config)
    kind = scaling.get("rope_type") or scaling.get("type") or "default"
    if kind not in ("default", "linear", "llama3"):
        return f"GGUF export does not write rope scaling of type {kind!r}."
    return None


def rope_parameters(config: dict) -> dict:
    """The rope settings, whichever way transformers wrote them (``rope_parameters`` since v5,
    ``rope_theta`` + ``rope_scaling`` before)."""
    values = dict(config.get("rope_scaling") or {})
    values.update(config.get("rope_parameters") or {})
    values.setdefault("rope_theta", config.get("rope_theta", 10000.0))
    return values


class Shape:
    """The sizes of a Llama-architecture config.json."""

    def __init__(self, config: dict):
        self.blocks = int(config["num_hidden_layers"])
        self.embedding = int(config["hidden_size"])
        self.feed_forward = int(config["intermediate_size"])
        self.heads = int(config["num_attention_heads"])
        self.kv_heads = int(config.get("num_key_value_heads") or self.heads)
        self.head_dim = int(config.get("head_dim") or self.embedding // self.heads)
        self.context = int(config.get("max_position_embeddings") or 2048)
        self.rms_eps = float(config.get("rms_norm_eps", 1e-5))
        self.vocab = int(config["vocab_size"])
        self.rope = rope_parameters(config)


def permute(weights, heads: int):
    """Reorder each head's rows from Hugging Face's halves to ggml's adjacent pairs (a Q or K
    projection's weight, or its bias)."""
    rows = weights.shape[0]
    return (weights.reshape(heads, 2, rows // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def gguf_tensors(folder: Path, config: dict) -> Iterator[tuple[str, object]]:
    """``(gguf name, float32 numpy array)`` for every tensor llama.cpp wants, in file order, the Q
    and K projections permuted; the Llama 3.1 rope frequency factors first when the config has them."""
    import gguf
    import torch
    from safetensors import safe_open

    shape = Shape(config)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, shape.blocks)
    factors = rope_factors(shape)
    if factors is not None:
        yield gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight", factors
    files = sorted(Path(folder).glob("*" + WEIGHTS_SUFFIX))
    if not files:
        raise InvalidInput(f"No safetensors weights in {folder}.")
    for path in files:
        with safe_open(str(path), framework="pt") as file:
            for name in file.keys():  # noqa: SIM118 (safe_open is not a mapping)
                if name.endswith(SKIPPED_SUFFIXES):
                    continue
                data = file.get_tensor(name).to(torch.float32).numpy()
                if name.endswith(("q_proj.weight", "q_proj.bias")):
                    data = permute(data, shape.heads)
                elif name.endswith(("k_proj.weight", "k_proj.bias")):
                    data = permute(data, shape.kv_heads)
                mapped = names.get_name(name, try_suffixes=(".weight", ".bias"))
                if mapped is None:
                    raise InvalidInput(f"GGUF export does not know where the tensor {name} goes.")
                yield mapped, data


def rope_factors(shape: Shape):
    """Llama 3.1's rope scaling as llama.cpp stores it: one factor per rotary frequency (1 for
    high frequencies, ``factor`` for low ones, a smooth blend between); None for other ropes."""
    import numpy as np

    rope = shape.rope
    if (rope.get("rope_type") or rope.get("type")) != "llama3":
        return None
    base = float(rope.get("rope_theta", 10000.0))
    factor = float(rope.get("factor", 8.0))
    low, high = float(rope.get("low_freq_factor", 1.0)), float(rope.get("high_freq_factor", 4.0))
    original = float(rope.get("original_max_position_embeddings", 8192))
    values = []
    for index in range(0, shape.head_dim, 2):
        wavelength = 2 * math.pi * base ** (index / shape.head_dim)
        if wavelength < original / high:
            values.append(1.0)
        elif wavelength > original / low:
            values.append(factor)
        else:
            smooth = (original / wavelength - low) / (high - low)
            values.append(1 / ((1 - smooth) / factor + smooth))
    return np.asarray(values, dtype=np.float32)


def encoded(name: str, data, tensor_type: str):
    """``(numpy data as stored, ggml type)``: norms and other 1-D tensors in F32, matrices in the
    chosen type (Q8_0 falls back to F16 for a row length it cannot block, as llama.cpp does)."""
    import gguf
    import numpy as np

    types = gguf.GGMLQuantizationType
    if data.ndim <= 1 or name.endswith("_norm.weight") or tensor_type == "f32":
        return data.astype(np.float32), types.F32
    if tensor_type == "q8_0":
        try:
            return gguf.quants.quantize(data, types.Q8_0), types.Q8_0
        except gguf.QuantError:
            pass
    return data.astype(np.float16), types.F16


def tokenizer_model(folder: Path) -> str:
    """llama.cpp's pre-tokenizer name for the folder's tokenizer.json; ``InvalidInput`` for a kind
    it would misread."""
    try:
        content = json.loads((Path(folder) / "tokenizer.json").read_text())
    except (OSError, ValueError):
        raise InvalidInput("GGUF export needs a fast tokenizer (tokenizer.json) beside the weights.") from None
    model = content.get("model") or {}
    pre = content.get("pre_tokenizer") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback") or (content.get("decoder") or {}).get("type") != "ByteLevel":
        raise InvalidInput("GGUF export writes byte-level BPE tokenizers (GPT-2 style, Llama 3); this model's "
                           "tokenizer is another kind (SentencePiece-style). Export it as a Hugging Face folder "
                           "(--format hf) and convert that with llama.cpp's convert_hf_to_gguf.py.")
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "gpt-2"
    steps = pre.get("pretokenizers") or []
    if (pre.get("type") == "Sequence" and len(steps) == 2 and steps[0].get("type") == "Split"
            and (steps[0].get("pattern") or {}).get("Regex") == LLAMA3_SPLIT and steps[1].get("type") == "ByteLevel"):
        return "llama-bpe"
    raise InvalidInput("GGUF export does not recognize this tokenizer's pre-tokenizer (neither GPT-2's nor "
                       "Llama 3's), so llama.cpp would split text differently than the model was trained on.")


def vocabulary(folder: Path, vocab_size: int) -> tuple[list[str], list[int]]:
    """Every token id's text and llama.cpp token type, ``vocab_size`` of them (ids the tokenizer
    lacks are unused padding), as llama.cpp's converter lists a BPE vocabulary."""
    import gguf
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    by_id = {index: text for text, index in tokenizer.get_vocab().items()}
    added = tokenizer.get_added_vocab()
    decoders = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for index in range(vocab_size):
        text = by_id.get(index)
        if text is None:
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
        elif text in added:
            special = decoders[index].special if index in decoders else False
            looks_special = text.startswith("<|") and text.endswith("|>")
            tokens.append(text)
            types.append(gguf.TokenType.CONTROL if special or looks_special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(text)
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def file_type(tensor_type: str):
    import gguf

    return {"f16": gguf.LlamaFileType.MOSTLY_F16, "f32": gguf.LlamaFileType.ALL_F32,
            "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[tensor_type]


def read_config(folder: Path) -> dict:
    try:
        return json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError) as error:
        raise InvalidInput(f"No readable config.json in {folder} ({error}).") from None


def refuse_unsupported(folder: Path) -> dict:
    """The folder's config.json when GGUF can be written from it; ``InvalidInput`` saying why not."""
    config = read_config(folder)
    reason = supported(config)
    if reason:
        raise InvalidInput(reason)
    tokenizer_model(folder)
    return config


def write(folder: Path, out_file: Path, *, name: str, tensor_type: str = "f16",
          progress: Progress = lambda note: None) -> Exported:
    """Write the Hugging Face folder ``folder`` as the GGUF file ``out_file`` (whole or not at all)
    and check it reads back equal."""
    import gguf

    if tensor_type not in TENSOR_TYPES:
        raise InvalidInput(f"tensor type: one of {', '.join(TENSOR_TYPES)}, not {tensor_type!r}.")
    config = refuse_unsupported(folder)
    shape = Shape(config)
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    scratch = out_file.with_name(f".{out_file.name}.partial-{os.getpid()}")
    writer = gguf.GGUFWriter(scratch, ARCHITECTURES[config["model_type"]])
    try:
        _metadata(writer, folder, config, shape, name, tensor_type)
        progress(f"converting tensors to {tensor_type.upper()}")
        for tensor_name, data in gguf_tensors(folder, config):
            stored, kind = encoded(tensor_name, data, tensor_type)
            writer.add_tensor(tensor_name, stored, raw_dtype=kind)
        progress(f"writing {out_file.name}")
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(scratch, out_file)
    except BaseException:
        writer.close()
        scratch.unlink(missing_ok=True)
        raise
    exported = Exported(out_file.resolve(), "gguf", {out_file.name: out_file.stat().st_size})
    progress("reading the GGUF file back")
    exported.checks += check(out_file, folder, tensor_type)
    return exported


def _metadata(writer, folder: Path, config: dict, shape: Shape, name: str, tensor_type: str) -> None:
    import gguf

    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    writer.add_vocab_size(shape.vocab)
    writer.add_context_length(shape.context)
    writer.add_embedding_length(shape.embedding)
    writer.add_feed_forward_length(shape.feed_forward)
    writer.add_block_count(shape.blocks)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.kv_heads)
    writer.add_key_length(shape.head_dim)
    writer.add_value_length(shape.head_dim)
    writer.add_rope_dimension_count(shape.head_dim)
    writer.add_rope_freq_base(float(shape.rope["rope_theta"]))
    if (shape.rope.get("rope_type") or shape.rope.get("type")) == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(shape.rope["factor"]))
    writer.add_layer_norm_rms_eps(shape.rms_eps)
    writer.add_file_type(file_type(tensor_type))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    tokens, types = vocabulary(folder, shape.vocab)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(tokenizer_model(folder))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    # Merges, bos/eos/pad ids, add_bos and the chat template, as the gguf package reads them from
    # tokenizer.json, tokenizer_config.json, chat_template.jinja and config.json.
    gguf.SpecialVocab(folder, load_merges=True, n_vocab=len(tokens)).add_to_gguf(writer, quiet=True)


def field_value(reader, key: str):
    found = reader.fields.get(key)
    return None if found is None else found.contents()


def check(path: Path, folder: Path, tensor_type: str) -> list[str]:
    """Read ``path`` back and compare it with the folder it came from: every tensor byte for byte
    with the folder's weights after the same permutation and encoding, none missing or extra, and
    the metadata with config.json and the tokenizer. ``InvalidInput`` names the first difference."""
    import gguf
    import numpy as np

    reader = gguf.GGUFReader(path)
    config = read_config(folder)
    shape = Shape(config)
    stored = {tensor.name: tensor for tensor in reader.tensors}
    expected = 0
    for name, data in gguf_tensors(folder, config):
        tensor = stored.get(name)
        if tensor is None:
            raise InvalidInput(f"The GGUF file lacks the tensor {name}.")
        want, kind = encoded(name, data, tensor_type)
        if tensor.tensor_type != kind or not np.array_equal(
                np.asarray(tensor.data).view(np.uint8).ravel(), np.ascontiguousarray(want).view(np.uint8).ravel()):
            raise InvalidInput(f"The GGUF tensor {name} differs from the model's weights.")
        expected += 1
    if expected != len(stored):
        raise InvalidInput(f"The GGUF file holds {len(stored)} tensors; the model has {expected}.")
    arch = ARCHITECTURES[config["model_type"]]
    wanted = {f"{arch}.block_count": shape.blocks, f"{arch}.context_length": shape.context,
              f"{arch}.embedding_length": shape.embedding, f"{arch}.feed_forward_length": shape.feed_forward,
              f"{arch}.attention.head_count": shape.heads, f"{arch}.attention.head_count_kv": shape.kv_heads,
              f"{arch}.rope.dimension_count": shape.head_dim, "general.architecture": arch}
    for key, value in wanted.items():
        if field_value(reader, key) != value:
            raise InvalidInput(f"GGUF metadata {key} is {field_value(reader, key)!r}, not {value!r}.")
    eps = field_value(reader, f"{arch}.attention.layer_norm_rms_epsilon")
    if not math.isclose(eps, shape.rms_eps, rel_tol=1e-6):
        raise InvalidInput(f"GGUF metadata rms epsilon is {eps}, not {shape.rms_eps}.")
    tokens = field_value(reader, "tokenizer.ggml.tokens")
    if len(tokens) != shape.vocab:
        raise InvalidInput(f"The GGUF file lists {len(tokens)} tokens; the model has {shape.vocab}.")
    template = field_value(reader, "tokenizer.chat_template")
    return [(f"{expected} tensors read back equal to the merged weights ({tensor_type.upper()}, Q/K permuted "
             "for ggml's rope)"),
            f"metadata: {arch}, {shape.blocks} blocks, {shape.heads}/{shape.kv_heads} heads, context {shape.context}",
            (f"tokenizer: {len(tokens)} tokens ({field_value(reader, 'tokenizer.ggml.pre')}), eos "
             f"{field_value(reader, 'tokenizer.ggml.eos_token_id')}" + (", chat template" if template else ""))]
