"""GPU fine-tuning throughput: Tailor's training loop against TRL's ``SFTTrainer``, full and LoRA,
on a ~1 B Llama-shape model in bfloat16 on one GPU. Tokens/s, MFU and peak GPU memory.

How to run it on the device machine (one GPU; about 3-4 minutes, hard budget 8 minutes)
    python bench/gpu_sft.py --out $OUT/gpu_sft.json
    python bench/gpu_sft.py --smoke            # the same code paths on the CPU, tiny shape (~1 min)
    python bench/gpu_sft.py --skip-trl ...     # Tailor only; --skip-full / --skip-lora likewise
It needs no internet: the model is random-initialised from a ``LlamaConfig`` and the tokenizer is
the project's own (``tailor.tiny``'s, built locally in about a second if not cached).

What it measures
    The model: hidden 2048, 16 layers, 32 heads, 8 KV heads, MLP 8192, vocabulary 32,000 (the
    project tokenizer's 4,096 ids, the embedding padded to a Llama-size vocabulary), 1.10 B
    parameters, random init with a fixed seed, ``sdpa`` attention, built directly on the GPU.
    The data: ``batch x (warmup + steps)`` sequences of random token ids of the project tokenizer
    (no special tokens), lengths drawn uniformly from [seq/4, seq] (seq 2048 by default), loss on
    every token. The same records for every run; each run sees every record once.

    Runs, one after another in this process, each from a freshly built model:
      Tailor full   ``tailor.train.loop.train_loop`` with a ``TrainConfig`` (tuningMethod full):
                    float32 master weights and AdamW state, forward/backward under bfloat16
                    autocast (``train/precision.py``), length-grouped batches padded per batch.
      Tailor LoRA   the same loop on ``tailor.train.prepare.with_lora`` (rank 16, alpha 32, every
                    linear layer of the blocks): bfloat16 frozen base, float32 adapter.
      TRL ...       ``SFTTrainer`` on the same pre-tokenized records, same batch size, same number
                    of steps, ``bf16=True`` (float32 weights under autocast for full; for LoRA the
                    same bfloat16 base and ``peft_config`` as Tailor's), gradient checkpointing off
                    (TRL turns it on by default; it costs time and memory fits), ``report_to=[]``,
                    no saving. Two settings per method, and "TRL best" is the faster of them:
                      padded      ``train_sampling_strategy='group_by_length'`` (padded batches of
                                  similar lengths, as Tailor draws them)
                      padding-free ``padding_free=True, max_length=None`` (the batch flattened into
                                  one sequence). TRL documents it for FlashAttention 2/3; when
                                  ``flash_attn`` is installed it runs with ``flash_attention_2``,
                                  otherwise with ``sdpa`` and a block-diagonal mask (said in the
                                  output). Packing is not run: it changes what a step holds.

    Timing: the first ``--warmup`` steps are excluded; the clock runs from the end of the last
    warm-up step to the end of the last step, with ``torch.cuda.synchronize()`` at each step end
    (a Tailor ``Hooks.on_step`` hook, a TRL ``TrainerCallback.on_step_end``). Tokens are counted the
    same way for both, by a forward pre-hook on the Llama backbone: the real (non-pad) tokens of
    each training forward (attention-mask sum, or every token of a padding-free batch). Peak
    memory: ``torch.cuda.max_memory_allocated`` over the whole run (weights, optimizer state,
    activations), reset before each run.

    MFU = model FLOP/s achieved / the GPU's peak dense bfloat16 FLOP/s (``PEAK_FLOPS`` by device
    name, or ``--peak-flops``). Model FLOPs per token (useful work only; padding not counted):
      full  6 N + 12 L h S
      LoRA  4 N + 6 N_lora + 12 L h S   (no gradients for the frozen weights)
    N: the parameters of the matrix multiplies (all but the input embedding), N_lora: the adapter's,
    L layers, h hidden size, S the token-weighted mean sequence length of the data (sum len^2 /
    sum len); the attention term counts the full (not causal-halved) score matrix, as PaLM's does.

    Nothing is faked: a run that cannot be done (time budget spent, an error) is printed and
    written as skipped, with the reason. It exits 0: it is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sft_throughput import quiet_libraries  # the CPU benchmark's: one place for quiet output

SEED = 42
# Peak dense bfloat16 FLOP/s (no sparsity), by a substring of torch.cuda.get_device_name().
# The first match wins, so the more specific names come first.
PEAK_FLOPS = (
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),  # SXM
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
)
LEARNING_RATE = {"full": 1e-5, "lora": 1e-4}
BUDGET_SECONDS = 450  # stop starting runs after this (the command must finish in under 8 minutes)


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    seq_len: int


GPU_SHAPE = Shape(hidden=2048, layers=16, heads=32, kv_heads=8, intermediate=8192, vocab=32000,
                  seq_len=2048)
SMOKE_SHAPE = Shape(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=256, vocab=0,
                    seq_len=128)  # vocab 0: the tokenizer's own size


@dataclass
class Work:
    shape: Shape
    examples: list  # tailor.data.render.Example, labels = input_ids
    pad_id: int
    tokenizer: object
    batch_size: int
    warmup: int
    steps: int
    device: str  # "cuda" or "cpu"
    peak_flops: float | None
    flash_attention: bool
    scratch: Path

    @property
    def tokens(self) -> int:
        return sum(len(example.input_ids) for example in self.examples)

    @property
    def mean_attended_length(self) -> float:  # token-weighted mean sequence length
        return sum(len(e.input_ids) ** 2 for e in self.examples) / self.tokens


@dataclass
class Result:
    method: str  # full | lora
    framework: str  # Tailor | TRL padded | TRL padding-free
    setting: str
    status: str = "ok"  # ok | skipped
    reason: str = ""
    tokens_per_second: float | None = None
    mfu_percent: float | None = None
    peak_memory_gib: float | None = None
    start_memory_gib: float | None = None  # allocated when the run began: a leak would show here
    timed_steps: int = 0
    timed_tokens: int = 0
    timed_seconds: float = 0.0
    flops_per_token: float | None = None
    trainable_parameters: int = 0
    last_loss: float | None = None
    phase_seconds: float = 0.0  # the whole run: build, setup, warm-up, timed steps, clean-up
    ratio_tailor_over_this: float | None = None
    notes: list[str] = field(default_factory=list)


def say(message: str = "") -> None:
    print(message, flush=True)


# ----------------------------------------------------------------------------- measuring


class Meter:
    """Counts the real tokens of every training forward through the Llama backbone and stamps
    the end of every optimizer step (after a device synchronize)."""

    def __init__(self, backbone, device: str):
        import torch

        self.counts: list = []  # per forward: an int, or a 0-d tensor on the device (no sync)
        self.marks: list[tuple[float, int]] = []  # (time at a step's end, forwards so far)
        self.losses: list[float] = []
        self._sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        self._handle = backbone.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module, args, kwargs):
        import torch

        if not module.training or not torch.is_grad_enabled():
            return
        ids = kwargs.get("input_ids", args[0] if args else None)
        mask = kwargs.get("attention_mask")
        if isinstance(mask, torch.Tensor) and mask.dim() == 2:
            self.counts.append(mask.sum())
        elif ids is not None:
            self.counts.append(ids.numel())

    def step_end(self) -> None:
        self._sync()
        self.marks.append((time.perf_counter(), len(self.counts)))

    def window(self, warmup: int) -> tuple[int, int, float]:
        """(steps, tokens, seconds) from the end of step ``warmup`` to the end of the last."""
        if len(self.marks) <= warmup or warmup < 1:
            raise RuntimeError(f"{len(self.marks)} steps recorded, need more than {warmup}")
        (start, first), (end, last) = self.marks[warmup - 1], self.marks[-1]
        tokens = sum(int(count) for count in self.counts[first:last])
        return len(self.marks) - warmup, tokens, end - start

    def total_tokens(self) -> int:
        return sum(int(count) for count in self.counts)

    def close(self) -> None:
        self._handle.remove()


def matmul_parameters(model) -> int:
    """Parameters that take part in matrix multiplies: all but the input embedding (a lookup)."""
    embedding = model.get_input_embeddings().weight
    total = sum(p.numel() for p in model.parameters())
    tied = model.get_output_embeddings().weight is embedding
    return total if tied else total - embedding.numel()


def flops_per_token(work: Work, method: str, n_matmul: int, n_lora: int) -> float:
    shape = work.shape
    attention = 12 * shape.layers * shape.hidden * work.mean_attended_length
    if method == "full":
        return 6 * n_matmul + attention
    return 4 * n_matmul + 6 * n_lora + attention


def peak_flops_for(device_name: str) -> float | None:
    for key, value in PEAK_FLOPS:
        if key.lower() in device_name.lower():
            return value
    return None


def memory_reset(work: Work) -> None:
    import torch

    gc.collect()
    if work.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_memory_gib(work: Work) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if work.device == "cuda" else None


def finish(result: Result, meter: Meter, work: Work, flops: float) -> Result:
    steps, tokens, seconds = meter.window(work.warmup)
    result.timed_steps, result.timed_tokens, result.timed_seconds = steps, tokens, seconds
    result.tokens_per_second = tokens / seconds
    result.flops_per_token = flops
    if work.peak_flops:
        result.mfu_percent = 100 * flops * result.tokens_per_second / work.peak_flops
    result.peak_memory_gib = peak_memory_gib(work)
    counted, expected = meter.total_tokens(), work.tokens
    if counted != expected:
        result.notes.append(f"the meter counted {counted:,} tokens over the run, the data holds "
                            f"{expected:,}")
    return result


# ----------------------------------------------------------------------------- the workload


def prepare_work(args, scratch: Path) -> Work:
    import torch
    from transformers import AutoTokenizer

    from tailor.data.render import Example
    from tailor.settings import Settings
    from tailor.tiny import tokenizer_dir

    settings = Settings(home=args.home) if args.home else Settings()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir(settings.models_dir))
    base = SMOKE_SHAPE if args.smoke else GPU_SHAPE
    shape = Shape(hidden=args.hidden or base.hidden, layers=args.layers or base.layers,
                  heads=args.heads or base.heads, kv_heads=args.kv_heads or base.kv_heads,
                  intermediate=args.intermediate or base.intermediate,
                  vocab=max(args.vocab or base.vocab, len(tokenizer)),
                  seq_len=args.seq_len or base.seq_len)
    special = set(tokenizer.all_special_ids)
    ordinary = [i for i in range(len(tokenizer)) if i not in special]
    rng = random.Random(SEED)
    examples = []
    for _ in range(args.batch_size * (args.warmup + args.steps)):
        length = rng.randint(max(2, shape.seq_len // 4), shape.seq_len)
        ids = [rng.choice(ordinary) for _ in range(length)]
        examples.append(Example(input_ids=ids, labels=list(ids)))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    peak = args.peak_flops
    if peak is None and device == "cuda":
        peak = peak_flops_for(torch.cuda.get_device_name())
    flash = False
    if device == "cuda":
        from transformers.utils import is_flash_attn_2_available

        flash = is_flash_attn_2_available()
    return Work(shape=shape, examples=examples, pad_id=tokenizer.pad_token_id, tokenizer=tokenizer,
                batch_size=args.batch_size, warmup=args.warmup, steps=args.steps, device=device,
                peak_flops=peak, flash_attention=flash, scratch=scratch)


def build_model(work: Work, dtype, attention: str = "sdpa"):
    """A random-initialised Llama of ``work.shape``, built on the device in ``dtype``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    shape = work.shape
    config = LlamaConfig(
        vocab_size=shape.vocab, hidden_size=shape.hidden, num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads, num_key_value_heads=shape.kv_heads,
        intermediate_size=shape.intermediate, max_position_embeddings=max(4096, shape.seq_len),
        tie_word_embeddings=False, pad_token_id=work.pad_id, bos_token_id=None, eos_token_id=None,
    )
    torch.manual_seed(SEED)
    with torch.device(work.device):
        return LlamaForCausalLM._from_config(config, dtype=dtype, attn_implementation=attention)


def lora_shape() -> tuple[int, float]:
    """Tailor's default LoRA rank and alpha (the hyperparameter table's defaults)."""
    from tailor.train.hyperparams import TAILOR_EXTENSIONS

    table = {p.name: p.default for p in TAILOR_EXTENSIONS}
    return int(table.get("loraRank", 16)), float(table.get("loraAlpha", 32))


def train_config(work: Work, method: str):
    from tailor.train.hyperparams import TrainConfig

    rank, alpha = lora_shape()
    return TrainConfig(
        epochs=1, batch_size=work.batch_size, learning_rate=LEARNING_RATE[method], warmup_steps=1,
        early_stopping_threshold=None, early_stopping_patience=None, eval_percentage=None,
        tuning_method=method, lora_rank=rank, lora_alpha=alpha, seed=SEED,
        hyperparameters={"tuningMethod": method, "batchSize": str(work.batch_size)},
    )


def trainable_count(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------- the runs


def run_tailor(work: Work, method: str) -> Result:
    from tailor.train.contract import Hooks
    from tailor.train.loop import train_loop
    from tailor.train.metrics import LOSS_COLUMNS, MetricsWriter
    from tailor.train.precision import precision_for
    from tailor.train.prepare import with_lora

    config = train_config(work, method)
    precision = precision_for(method, work.device)
    # As load_causal_lm loads it: FlashAttention when installed, which makes the loop pack
    # padding-free rows (train/loop.packs); SDPA and length-grouped padded batches otherwise.
    attention = "flash_attention_2" if work.flash_attention else "sdpa"
    model = build_model(work, precision.torch_dtype(), attention)
    n_matmul = matmul_parameters(model)
    backbone = model.model
    if method == "lora":
        model = with_lora(model, config)
    n_trainable = trainable_count(model)
    meter = Meter(backbone, work.device)
    hooks = Hooks(on_step=lambda step, epoch, loss: (meter.step_end(), meter.losses.append(loss)))
    batches = ("padding-free packed rows (flash_attention_2)" if work.flash_attention and work.device == "cuda"
               else "length-grouped padded batches")
    setting = f"train_loop, {precision.weights} weights, autocast {precision.compute or 'off'}, {batches}"
    result = Result(method=method, framework="Tailor", setting=setting,
                    trainable_parameters=n_trainable)
    try:
        with MetricsWriter(work.scratch / f"tailor-{method}", LOSS_COLUMNS, None) as metrics:
            train_loop(model, work.examples, [], config, pad_id=work.pad_id, metrics=metrics,
                       save_best=lambda: None, progress=False, hooks=hooks)
        n_lora = n_trainable if method == "lora" else 0
        result.last_loss = meter.losses[-1] if meter.losses else None
        return finish(result, meter, work, flops_per_token(work, method, n_matmul, n_lora))
    finally:
        meter.close()


def run_trl(work: Work, method: str, variant: str) -> Result:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    cuda = work.device == "cuda"
    attention = "sdpa"
    notes = []
    if variant == "padding-free":
        if work.flash_attention:
            attention = "flash_attention_2"
        elif cuda:
            notes.append("flash_attn is not installed: padding-free runs on sdpa with a "
                         "block-diagonal mask over the flattened batch")
    # The same weights and precision as Tailor's run of this method: float32 master weights for
    # full (bf16=True autocasts), a bfloat16 frozen base for LoRA (peft keeps the adapter in fp32).
    dtype = torch.bfloat16 if (method == "lora" and cuda) else torch.float32
    model = build_model(work, dtype, attention)
    n_matmul = matmul_parameters(model)
    backbone = model.model
    meter = Meter(backbone, work.device)

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            meter.step_end()

    overrides = ({"padding_free": True, "max_length": None} if variant == "padding-free"
                 else {"train_sampling_strategy": "group_by_length",
                       "max_length": work.shape.seq_len})
    config = SFTConfig(
        output_dir=str(work.scratch / f"trl-{method}-{variant}"),
        use_cpu=not cuda,
        bf16=cuda,
        per_device_train_batch_size=work.batch_size,
        gradient_accumulation_steps=1,
        max_steps=work.warmup + work.steps,
        learning_rate=LEARNING_RATE[method],
        warmup_steps=1,
        gradient_checkpointing=False,
        seed=SEED,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        **overrides,
    )
    peft_config = None
    if method == "lora":
        from peft import LoraConfig

        rank, alpha = lora_shape()
        peft_config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0,
                                 target_modules="all-linear", task_type="CAUSAL_LM")
    dataset = Dataset.from_dict({"input_ids": [e.input_ids for e in work.examples]})
    setting = (f"SFTTrainer, {str(dtype).removeprefix('torch.')} weights, bf16={cuda}, "
               f"{'padding_free=True' if variant == 'padding-free' else 'group_by_length'}, "
               f"{attention}, no gradient checkpointing")
    result = Result(method=method, framework=f"TRL {variant}", setting=setting, notes=notes)
    try:
        trainer = SFTTrainer(model=model, args=config, train_dataset=dataset,
                             processing_class=work.tokenizer, peft_config=peft_config,
                             callbacks=[Clock()])
        trainer.remove_callback(PrinterCallback)
        result.trainable_parameters = trainable_count(trainer.model)
        output = trainer.train()
        result.last_loss = float(output.training_loss) if output else None
        result.notes.append("last_loss is TRL's mean training loss over the run")
        n_lora = result.trainable_parameters if method == "lora" else 0
        return finish(result, meter, work, flops_per_token(work, method, n_matmul, n_lora))
    finally:
        meter.close()


# ----------------------------------------------------------------------------- the report


def report(results: list[Result], work: Work) -> None:
    say()
    header = (f"{'method':<6} {'framework':<17} {'tokens/s':>10} {'MFU %':>6} {'peak GiB':>9} "
              f"{'Tailor/this':>11}  setting")
    say(header)
    say("-" * len(header))
    for r in results:
        if r.status != "ok":
            say(f"{r.method:<6} {r.framework:<17} {'skipped: ' + r.reason}")
            continue
        mfu = f"{r.mfu_percent:.1f}" if r.mfu_percent is not None else "-"
        memory = f"{r.peak_memory_gib:.1f}" if r.peak_memory_gib is not None else "-"
        ratio = f"{r.ratio_tailor_over_this:.2f}x" if r.ratio_tailor_over_this else "-"
        say(f"{r.method:<6} {r.framework:<17} {r.tokens_per_second:>10,.0f} {mfu:>6} "
            f"{memory:>9} {ratio:>11}  {r.setting}")
    say()
    for method in ("full", "lora"):
        tailor = next((r for r in results if r.method == method and r.framework == "Tailor"
                       and r.status == "ok"), None)
        trl = [r for r in results if r.method == method and r.framework.startswith("TRL")
               and r.status == "ok"]
        if tailor and trl:
            best = max(trl, key=lambda r: r.tokens_per_second)
            say(f"{method}: Tailor {tailor.tokens_per_second:,.0f} tokens/s, TRL best "
                f"({best.framework.removeprefix('TRL ')}) {best.tokens_per_second:,.0f}: "
                f"Tailor/TRL best = {tailor.tokens_per_second / best.tokens_per_second:.2f}x")
    if work.peak_flops is None:
        say("MFU: no peak FLOP/s known for this device (pass --peak-flops)")


def summarize(results: list[Result], work: Work, phases: dict, args) -> dict:
    from importlib.metadata import version

    import torch

    best = {}
    for method in ("full", "lora"):
        tailor = next((r for r in results if r.method == method and r.framework == "Tailor"
                       and r.status == "ok"), None)
        trl = [r for r in results if r.method == method and r.framework.startswith("TRL")
               and r.status == "ok"]
        if tailor and trl:
            top = max(trl, key=lambda r: r.tokens_per_second)
            best[method] = {"trl_best": top.framework,
                            "ratio_tailor_over_trl_best": tailor.tokens_per_second
                            / top.tokens_per_second}
    return {
        "versions": {name: version(name) for name in
                     ("torch", "transformers", "trl", "peft", "datasets")},
        "device": torch.cuda.get_device_name() if work.device == "cuda" else "cpu",
        "smoke": args.smoke,
        "peak_flops": work.peak_flops,
        "flash_attention_2": work.flash_attention,
        "shape": asdict(work.shape),
        "workload": {"records": len(work.examples), "tokens": work.tokens,
                     "batch_size": work.batch_size, "warmup_steps": work.warmup,
                     "timed_steps": work.steps,
                     "mean_attended_length": work.mean_attended_length},
        "mfu_flops_per_token": "full: 6N + 12*L*h*S; lora: 4N + 6*N_lora + 12*L*h*S "
                               "(N: all parameters but the input embedding; S: token-weighted "
                               "mean sequence length; useful tokens only)",
        "runs": [asdict(r) for r in results],
        "tailor_vs_trl_best": best,
        "phase_seconds": phases,
    }


# ----------------------------------------------------------------------------- main


def default_out() -> Path:
    return Path(os.environ.get("OUT") or tempfile.gettempdir()) / "gpu_sft.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("``", ""))
    parser.add_argument("--smoke", action="store_true",
                        help="the same code paths on the CPU: tiny shape, float32, a few steps")
    parser.add_argument("--out", type=Path, default=None,
                        help="results JSON (default $OUT/gpu_sft.json, else /tmp/gpu_sft.json)")
    parser.add_argument("--batch-size", type=int, default=None, help="records a step (8; smoke 4)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (5; smoke 2)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (30; smoke 4)")
    for name in ("hidden", "layers", "heads", "kv-heads", "intermediate", "vocab", "seq-len"):
        parser.add_argument(f"--{name}", type=int, default=None,
                            help="model/data shape override (default: the 1 B shape, or smoke's)")
    parser.add_argument("--peak-flops", type=float, default=None,
                        help="peak dense bf16 FLOP/s for MFU (default: by GPU name)")
    parser.add_argument("--budget", type=float, default=BUDGET_SECONDS,
                        help=f"start no run after this many seconds (default {BUDGET_SECONDS})")
    parser.add_argument("--skip-trl", action="store_true")
    parser.add_argument("--skip-full", action="store_true")
    parser.add_argument("--skip-lora", action="store_true")
    parser.add_argument("--trl-variants", default="padded,padding-free",
                        help="comma-separated TRL settings to run (default padded,padding-free)")
    parser.add_argument("--home", type=Path, default=None,
                        help="Tailor home holding the tokenizer cache (default $TAILOR_HOME or "
                             "~/.tailor)")
    args = parser.parse_args(argv)
    args.batch_size = args.batch_size or (4 if args.smoke else 8)
    args.warmup = args.warmup if args.warmup is not None else (2 if args.smoke else 5)
    args.steps = args.steps or (4 if args.smoke else 30)
    args.trl_variants = [v.strip() for v in args.trl_variants.split(",") if v.strip()]
    if unknown := sorted(set(args.trl_variants) - {"padded", "padding-free"}):
        parser.error(f"--trl-variants: unknown {', '.join(unknown)} (padded, padding-free)")
    if args.warmup < 1:
        parser.error("--warmup must be at least 1 (the clock starts at the end of a step)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.smoke:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the CPU, even on a machine with a GPU
    started = time.perf_counter()
    import torch

    quiet_libraries()
    phases: dict[str, float] = {"imports": time.perf_counter() - started}
    out = args.out or default_out()
    with tempfile.TemporaryDirectory(prefix="tailor-gpu-sft-") as folder:
        mark = time.perf_counter()
        work = prepare_work(args, Path(folder))
        phases["data"] = time.perf_counter() - mark
        if work.device != "cuda" and not args.smoke:
            say("no CUDA device: running anyway on the CPU (use --smoke for the tiny shape)")
        device_name = torch.cuda.get_device_name() if work.device == "cuda" else "CPU"
        say(f"torch {torch.__version__}; {device_name}; peak "
            f"{work.peak_flops / 1e12:.0f} TFLOP/s" if work.peak_flops else
            f"torch {torch.__version__}; {device_name}; no peak FLOP/s (MFU not computed)")
        probe = build_model(work, torch.float32 if work.device == "cpu" else torch.bfloat16)
        total = sum(p.numel() for p in probe.parameters())
        del probe
        s = work.shape
        say(f"model   Llama h{s.hidden} L{s.layers} heads {s.heads}/{s.kv_heads} mlp "
            f"{s.intermediate} vocab {s.vocab:,}: {total / 1e9:.3f} B parameters")
        say(f"data    {len(work.examples)} records, {work.tokens:,} tokens, lengths "
            f"{s.seq_len // 4}-{s.seq_len}, batch {work.batch_size}, {work.warmup} warm-up + "
            f"{work.steps} timed steps")

        plan = []
        for method in ("full", "lora"):
            if getattr(args, f"skip_{method}"):
                continue
            plan.append((method, "Tailor", lambda m=method: run_tailor(work, m)))
            if not args.skip_trl:
                for variant in args.trl_variants:
                    plan.append((method, f"TRL {variant}",
                                 lambda m=method, v=variant: run_trl(work, m, v)))
        results: list[Result] = []
        for method, framework, run in plan:
            elapsed = time.perf_counter() - started
            if elapsed > args.budget:
                results.append(Result(method, framework, "", status="skipped",
                                      reason=f"time budget: {elapsed:.0f} s > {args.budget:.0f} s"))
                say(f"skip    {method} {framework}: time budget spent")
                continue
            memory_reset(work)
            start_memory = torch.cuda.memory_allocated() / 2**30 if work.device == "cuda" else None
            say(f"run     {method} {framework} ...")
            mark = time.perf_counter()
            try:
                result = run()
            except Exception as error:  # noqa: BLE001 - a measurement: report it, go on
                traceback.print_exc()
                result = Result(method, framework, "", status="skipped",
                                reason=f"{type(error).__name__}: {str(error).splitlines()[0]}"
                                if str(error) else type(error).__name__)
            result.phase_seconds = time.perf_counter() - mark
            result.start_memory_gib = start_memory
            phases[f"{method} {framework}"] = result.phase_seconds
            results.append(result)
            if result.status == "ok":
                memory = (f", peak {result.peak_memory_gib:.1f} GiB"
                          if result.peak_memory_gib is not None else "")
                mfu = f", MFU {result.mfu_percent:.1f} %" if result.mfu_percent is not None else ""
                loss = f"{result.last_loss:.3f}" if result.last_loss is not None else "-"
                say(f"        {result.tokens_per_second:,.0f} tokens/s ({result.timed_tokens:,} "
                    f"tokens in {result.timed_seconds:.2f} s, {result.timed_steps} steps){mfu}"
                    f"{memory}; loss {loss}; {result.phase_seconds:.1f} s in all")
                for note in result.notes:
                    say(f"        note: {note}")
            else:
                say(f"        skipped: {result.reason}")
            memory_reset(work)
            set_ratios(results)
            # Written after every run: a device run cut short still brings back what it measured.
            write(out, summarize(results, work, phases | {"total": time.perf_counter() - started},
                                 args))
        report(results, work)
        phases["total"] = time.perf_counter() - started
        say("phases  " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in phases.items()))
        write(out, summarize(results, work, phases, args))
    say(f"results written to {out}")
    return 0


def set_ratios(results: list[Result]) -> None:
    for method in ("full", "lora"):
        tailor = next((r for r in results if r.method == method and r.framework == "Tailor"
                       and r.status == "ok"), None)
        for r in results:
            if tailor and r.method == method and r.status == "ok":
                r.ratio_tailor_over_this = tailor.tokens_per_second / r.tokens_per_second


def write(out: Path, summary: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
