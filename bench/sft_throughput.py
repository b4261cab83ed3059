"""SFT throughput: Tailor's fine-tuning loop against TRL's ``SFTTrainer``, on one CPU process.

What it measures
    The same built-in model (``tailor.tiny``, loaded fresh from the same folder for every run),
    the same records (the 85 Bedrock FAQ pairs with seed 002's system prompt), the same epochs,
    batch size, learning rate and schedule (linear warm-up over 5 % of the steps, then cosine to
    10 % of the peak), AdamW without weight decay, gradient clipping at 1.0, seed 42, loss on the
    assistant tokens only. Three runs, one after another in this process:

    1. Tailor     ``tailor.train.sft.run`` with ``epochCount`` and ``batchSize`` set, nothing else.
    2. TRL default ``SFTTrainer`` with ``SFTConfig``'s defaults, except what it needs to run here
                   and to train the same thing (see ``trl_config``). TRL's default learning rate
                   (2e-5) teaches a tiny model trained from scratch almost nothing, so all runs
                   use Tailor's (3e-3).
    3. TRL best    the same, plus TRL's fastest correct padding setting on a CPU (see
                   ``TRL_BEST``).

    Throughput is counted the same way for every run: the non-pad tokens of one epoch of the
    tokenized data (prompt included, counted with Tailor's own tokenization) times the epochs
    run, divided by the wall time of the training call alone (no model loading, no tokenization,
    no saving). The loss compared is measured after training, with one function for all runs:
    the token-weighted mean loss over every assistant token of the training set, model in eval
    mode. The last logged training loss of each run is printed beside it.

    Targets (from the issue): Tailor ≥ 2.0× TRL default and ≥ 1.0× TRL best in tokens/s, and a
    post-training loss no more than 5 % above each TRL run's. It is a measurement, not a test:
    it exits 0 whether or not the targets are met.

How to run it (several minutes with the defaults, on two CPU cores)
    cd /work/main && PYTHONPATH=. python bench/sft_throughput.py
    ... --epochs 2 --skip-trl-best          # a quick look
    ... --home DIR --out-json results.json  # model cache under DIR; results also as JSON
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_DATA = Path("/work/shared/datasets/bedrock-faq/training.json")
SYSTEM_PROMPT = ("You are a high-performance QA assistant that responds to questions concisely, "
                 "accurately, and appropriately.")
MODEL_ID = "tailor.tiny"
SEED = 42
TARGET_VS_DEFAULT = 2.0
TARGET_VS_BEST = 1.0
LOSS_TOLERANCE = 0.05

# TRL's fastest correct padding setting on a CPU, chosen by measuring (see bench/README.md).
# Padding-free flattens each batch of 8 records into one sequence; transformers then builds a
# block-diagonal causal mask from the position ids, so no attention crosses records (this needs
# no KV cache in the forward pass: TRL passes use_cache=False, and the model config says so too).
# Gradient checkpointing, on by default in TRL, only trades time for memory; it is off here.
TRL_BEST = {"padding_free": True, "max_length": None, "gradient_checkpointing": False}
TRL_BEST_LABEL = "padding_free=True, gradient_checkpointing=False"


@dataclass
class Workload:
    """What every run trains on, and the yardsticks computed once from Tailor's tokenization."""

    data_file: Path  # messages JSONL, for Tailor
    conversations: list[list[dict]]  # the same records as chat turns, system first, for TRL
    examples: list  # tailor.data.render.Example, for counting tokens and measuring the loss
    model_dir: str
    pad_id: int
    epochs: int
    batch_size: int
    learning_rate: float

    @property
    def tokens_per_epoch(self) -> int:
        return sum(len(example.input_ids) for example in self.examples)

    @property
    def steps(self) -> int:
        return math.ceil(len(self.examples) / self.batch_size) * self.epochs

    @property
    def warmup_steps(self) -> int:  # Tailor's default: 5 % of the steps, at least one
        return max(1, self.steps // 20)


@dataclass
class RunResult:
    name: str
    setting: str
    seconds: float
    epochs_run: float
    tokens: int
    last_logged_loss: float
    post_training_loss: float
    notes: list[str] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds


def say(message: str) -> None:
    print(message, flush=True)


def prepare_workload(data: Path, scratch: Path, settings, epochs: int, batch_size: int) -> Workload:
    """Convert the Q&A file, resolve (building if needed) the model and tokenize with Tailor."""
    from tailor.catalog import CustomizationType, resolve_model
    from tailor.data.convert import convert_qa_file
    from tailor.data.formats import chat_messages
    from tailor.data.validate import load_records
    from tailor.train import sft
    from tailor.train.hyperparams import parse_hyperparameters
    from tailor.weights import load_tokenizer, weights_location

    data_file = scratch / "training.jsonl"
    convert_qa_file(data, data_file, system=SYSTEM_PROMPT)
    model_ref = resolve_model(MODEL_ID, settings)
    started = time.perf_counter()
    model_dir = weights_location(model_ref.weights, settings, progress=False)
    say(f"model     {MODEL_ID} at {model_dir} ({time.perf_counter() - started:.1f} s to locate or build)")
    tokenizer = load_tokenizer(model_ref, settings, progress=False)
    records = load_records(str(data_file), CustomizationType.FINE_TUNING, model_ref,
                           purpose="training", tokenizer=tokenizer, settings=settings)
    config = parse_hyperparameters(tailor_hyperparameters(epochs, batch_size), model_ref)
    return Workload(
        data_file=data_file,
        conversations=[chat_messages(record) for record in records],
        examples=sft.examples_for(records, tokenizer),
        model_dir=model_dir,
        pad_id=tokenizer.pad_token_id,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=config.learning_rate,
    )


def tailor_hyperparameters(epochs: int, batch_size: int) -> dict[str, str]:
    return {"epochCount": str(epochs), "batchSize": str(batch_size)}


def load_model(folder: str | Path):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)


def post_training_loss(model, work: Workload) -> float:
    """Mean loss over every assistant token of the training set; the same function for all runs."""
    import torch

    from tailor.train.common import mean_loss

    return mean_loss(model, work.examples, work.batch_size, work.pad_id, torch.device("cpu"))


def run_tailor(work: Workload, scratch: Path, settings) -> RunResult:
    from tailor.train import sft
    from tailor.train.common import TrainSpec

    spec = TrainSpec(customization_type="FINE_TUNING", model=MODEL_ID,
                     training_uri=str(work.data_file), output_dir=scratch / "tailor-output",
                     hyperparameters=tailor_hyperparameters(work.epochs, work.batch_size),
                     progress=False)
    outcome = sft.run(spec, settings)
    result = outcome.manifest["result"]
    seconds = outcome.manifest["timings"]["train_seconds"]
    tokens = work.tokens_per_epoch * result["epochs_run"]
    notes = []
    if result["training_tokens"] != tokens:
        notes.append(f"Tailor counted {result['training_tokens']} tokens, the yardstick {tokens}.")
    return RunResult("Tailor", "defaults (length-grouped batches)", seconds, result["epochs_run"],
                     tokens, result["final_training_loss"],
                     post_training_loss(load_model(outcome.model_dir), work), notes)


def trl_config(work: Workload, output_dir: Path, **overrides):
    """SFTConfig's defaults, changed only where needed to run on this CPU and train the same thing."""
    from trl import SFTConfig

    longest = max(len(example.input_ids) for example in work.examples)
    settings = dict(
        output_dir=str(output_dir),
        use_cpu=True,
        bf16=False,  # Tailor trains in float32 on a CPU; TRL's bf16 default would autocast
        assistant_only_loss=True,  # Tailor's loss covers the assistant tokens only
        num_train_epochs=work.epochs,
        per_device_train_batch_size=work.batch_size,
        learning_rate=work.learning_rate,  # TRL's 2e-5 barely moves a tiny from-scratch model
        lr_scheduler_type="cosine_with_min_lr",  # Tailor: warm-up, then cosine to 10 %
        lr_scheduler_kwargs={"min_lr_rate": 0.1},
        warmup_steps=work.warmup_steps,
        max_length=max(1024, longest),  # TRL's default 1024 already truncates nothing here
        seed=SEED,
        data_seed=SEED,
        logging_steps=1,  # so the last logged loss is the last step's, like Tailor's
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
    )
    settings.update(overrides)
    return SFTConfig(**settings)


def run_trl(name: str, setting: str, work: Workload, scratch: Path, **overrides) -> RunResult:
    from datasets import Dataset
    from transformers import AutoTokenizer
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTTrainer

    model = load_model(work.model_dir)
    model.config.use_cache = False  # no KV cache while training: packed masks need none
    tokenizer = AutoTokenizer.from_pretrained(work.model_dir)
    dataset = Dataset.from_dict({"messages": work.conversations})
    config = trl_config(work, scratch / name.replace(" ", "-"), **overrides)
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)  # a printed dict per logged step, otherwise
    notes = compare_tokenization(trainer.train_dataset, work)

    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started

    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    epochs_run = trainer.state.epoch or 0.0
    tokens = round(work.tokens_per_epoch * epochs_run)
    counted = logs[-1].get("num_tokens") if logs else None
    if counted is not None and round(counted) != tokens:
        notes.append(f"TRL counted {round(counted)} tokens, the yardstick {tokens}.")
    return RunResult(name, setting, seconds, epochs_run, tokens, logs[-1]["loss"] if logs else math.nan,
                     post_training_loss(trainer.model, work), notes)


def compare_tokenization(dataset, work: Workload) -> list[str]:
    """Whether TRL tokenized the records exactly as Tailor did: the same ids, the same loss mask."""
    if "seq_lengths" in dataset.column_names:  # packed: records are no longer rows
        tokens = sum(len(ids) for ids in dataset["input_ids"])
        same = "the same" if tokens == work.tokens_per_epoch else f"{tokens} tokens, not the"
        return [f"TRL packed {len(work.examples)} records into {len(dataset)} rows: {same} "
                f"token count per epoch as Tailor's ({work.tokens_per_epoch})."]
    theirs = [(list(ids), list(labels)) for ids, labels in zip(dataset["input_ids"], dataset["labels"])]
    ours = [(example.input_ids, example.labels) for example in work.examples]
    if theirs == ours:
        return ["TRL tokenized every record exactly as Tailor did (the same ids, the same loss mask)."]
    same_ids = sum(a[0] == b[0] for a, b in zip(theirs, ours))
    same_labels = sum(a[1] == b[1] for a, b in zip(theirs, ours))
    their_tokens = sum(len(ids) for ids, _ in theirs)
    return [f"TRL's tokenization differs from Tailor's: {same_ids}/{len(ours)} records with the same "
            f"ids, {same_labels}/{len(ours)} with the same loss mask, {their_tokens} tokens per epoch "
            f"against {work.tokens_per_epoch}."]


def timed(name: str, run):
    say(f"run       {name} ...")
    started = time.perf_counter()
    result = run()
    say(f"          {name}: trained in {result.seconds:.1f} s "
        f"({time.perf_counter() - started:.1f} s with loading and evaluation), "
        f"{result.tokens_per_second:,.0f} tokens/s, post-training loss {result.post_training_loss:.4f}")
    for note in result.notes:
        say(f"          note: {note}")
    return result


def report(results: list[RunResult], work: Workload) -> dict:
    """Print the table and the ratios against the targets; return the same as a dict."""
    tailor = results[0]
    say("")
    say(f"{len(work.examples)} records, {work.tokens_per_epoch} tokens per epoch (prompt included, "
        f"no padding), {work.epochs} epochs, batch size {work.batch_size}, "
        f"learning rate {work.learning_rate:g}, {work.steps} steps")
    header = (f"{'run':<12} {'seconds':>8} {'tokens/s':>9} {'Tailor ×':>9} "
              f"{'last loss':>10} {'post-training loss':>19}  setting")
    say(header)
    say("-" * len(header))
    for result in results:
        speedup = tailor.tokens_per_second / result.tokens_per_second
        say(f"{result.name:<12} {result.seconds:>8.1f} {result.tokens_per_second:>9,.0f} {speedup:>8.2f}× "
            f"{result.last_logged_loss:>10.4f} {result.post_training_loss:>19.4f}  {result.setting}")
    say("")
    verdicts = []
    for result, target in zip(results[1:], (TARGET_VS_DEFAULT, TARGET_VS_BEST)):
        speedup = tailor.tokens_per_second / result.tokens_per_second
        loss_change = tailor.post_training_loss / result.post_training_loss - 1
        verdicts.append({"against": result.name, "speedup": speedup, "speedup_target": target,
                         "speedup_met": speedup >= target, "loss_change": loss_change,
                         "loss_met": loss_change <= LOSS_TOLERANCE})
        say(f"Tailor vs {result.name:<11}: {speedup:.2f}× the tokens/s (target ≥ {target:.1f}×: "
            f"{'met' if speedup >= target else 'NOT met'}); post-training loss {loss_change:+.1%} "
            f"(target ≤ +{LOSS_TOLERANCE:.0%}: {'met' if loss_change <= LOSS_TOLERANCE else 'NOT met'})")
    return {"workload": {"records": len(work.examples), "tokens_per_epoch": work.tokens_per_epoch,
                         "epochs": work.epochs, "batch_size": work.batch_size,
                         "learning_rate": work.learning_rate, "steps": work.steps},
            "runs": [asdict(result) | {"tokens_per_second": result.tokens_per_second}
                     for result in results],
            "verdicts": verdicts}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=25, help="epochs for every run (default 25)")
    parser.add_argument("--batch-size", type=int, default=8, help="records per step (default 8)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help=f"Q&A JSON file (sentence1/sentence2 or question/answer; default {DEFAULT_DATA})")
    parser.add_argument("--home", type=Path, default=None,
                        help="TAILOR_HOME holding the model cache (default: $TAILOR_HOME or ~/.tailor)")
    parser.add_argument("--skip-trl-best", action="store_true", help="run Tailor and TRL default only")
    parser.add_argument("--out-json", type=Path, default=None, help="also write the results to this file")
    return parser.parse_args(argv)


def quiet_libraries() -> None:
    """No progress bars and no deprecation chatter between the lines this script prints."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*is deprecated and will be removed in v6", category=FutureWarning)
    warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True to a scalar")


def main(argv: list[str] | None = None) -> int:
    import torch

    from tailor.settings import Settings

    args = parse_args(argv)
    quiet_libraries()
    settings = Settings(home=args.home) if args.home else Settings()
    say(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU only")
    with tempfile.TemporaryDirectory(prefix="tailor-bench-") as folder:
        scratch = Path(folder)
        work = prepare_workload(args.data, scratch, settings, args.epochs, args.batch_size)
        results = [timed("Tailor", lambda: run_tailor(work, scratch, settings)),
                   timed("TRL default", lambda: run_trl(
                       "TRL default", "SFTConfig defaults (gradient checkpointing, padded batches)",
                       work, scratch))]
        if not args.skip_trl_best:
            results.append(timed("TRL best", lambda: run_trl("TRL best", TRL_BEST_LABEL, work, scratch,
                                                             **TRL_BEST)))
        summary = report(results, work)
    if args.out_json:
        args.out_json.write_text(json.dumps(summary, indent=2) + "\n")
        say(f"\nresults written to {args.out_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
