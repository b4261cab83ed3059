"""What the supervised recipes share: batching, the epoch loop, early stopping, metrics, outputs.

``sft.py`` and ``cpt.py`` differ only in how records become ``Example``s (which tokens carry a
loss); everything after that — the optimizer loop, validation at the end of every epoch, early
stopping as the original service defines it, the metrics CSVs, the best checkpoint and the
manifest — lives here.

Speed on a CPU comes from wasting no compute on padding: batches are drawn from length-sorted
pools (shuffled, seeded), padded only to their longest sequence, and the loss is averaged over
the target tokens of the batch.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import platform
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tailor.data.render import IGNORE_INDEX, Example
from tailor.errors import InvalidInput
from tailor.train.hyperparams import TrainConfig

TRAINING_METRICS = Path("training_artifacts/step_wise_training_metrics.csv")
VALIDATION_METRICS = Path("validation_artifacts/post_fine_tuning_validation/validation_metrics.csv")
LOSS_PLOT = Path("training_artifacts/loss.png")
MODEL_DIR = Path("model")
MANIFEST = Path("manifest.json")
PARTIAL = ".partial-"  # a scratch folder beside the output: .{output name}.partial-{pid}


@dataclass
class EarlyStopping:
    """Early stopping exactly as the original service defines it (SPEC §B).

    An evaluation *improves* when ``best - current >= threshold``; otherwise a stall counter
    grows, and an improvement resets it. Training stops when the counter reaches ``patience``.
    ``best`` is the lowest loss seen, whether or not its drop counted as an improvement, and the
    checkpoint kept is the one with that loss.
    """

    threshold: float
    patience: int
    best: float = math.inf
    best_epoch: int | None = None
    stalls: int = 0

    def update(self, epoch: int, loss: float) -> bool:
        """Record an evaluation; True when training should stop."""
        improved = self.best - loss >= self.threshold
        if loss < self.best:
            self.best, self.best_epoch = loss, epoch
        self.stalls = 0 if improved else self.stalls + 1
        return self.stalls >= self.patience


def length_grouped_batches(examples: list[Example], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Indices in batches of similar length: shuffle, sort within pools of 64 batches, shuffle batches."""
    order = list(range(len(examples)))
    rng.shuffle(order)
    pool = batch_size * 64
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: len(examples[i].input_ids))
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(examples: list[Example], pad_id: int, device):
    """Right-padded tensors (training needs no left padding) and the batch's real token count."""
    import torch

    length = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), length), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), length), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(examples), length), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        input_ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        attention[row, :n] = 1
    tokens = int(attention.sum())
    return input_ids.to(device), attention.to(device), labels.to(device), tokens


def mean_loss(model, examples: list[Example], batch_size: int, pad_id: int, device) -> float:
    """Token-weighted mean loss over all target tokens (not a mean of batch means)."""
    import torch

    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        ordered = sorted(examples, key=lambda e: len(e.input_ids))
        for start in range(0, len(ordered), batch_size):
            batch = ordered[start : start + batch_size]
            input_ids, attention, labels, _ = collate(batch, pad_id, device)
            logits = model(input_ids=input_ids, attention_mask=attention).logits[:, :-1]
            targets = labels[:, 1:]
            losses = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1),
                ignore_index=IGNORE_INDEX, reduction="sum",
            )
            total += float(losses)
            count += int((targets != IGNORE_INDEX).sum())
    model.train()
    return total / max(count, 1)


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0))


class MetricsWriter:
    """The two CSV files of SPEC §4, flushed as rows arrive so a running job can be watched."""

    def __init__(self, root: Path, with_validation: bool):
        self.training_path = root / TRAINING_METRICS
        self.training_path.parent.mkdir(parents=True, exist_ok=True)
        self._training = open(self.training_path, "w", newline="")
        self._training_csv = csv.writer(self._training)
        self._training_csv.writerow(["step_number", "epoch_number", "training_loss", "perplexity"])
        self._validation = None
        if with_validation:
            self.validation_path = root / VALIDATION_METRICS
            self.validation_path.parent.mkdir(parents=True, exist_ok=True)
            self._validation = open(self.validation_path, "w", newline="")
            self._validation_csv = csv.writer(self._validation)
            self._validation_csv.writerow(["step_number", "epoch_number", "validation_loss", "perplexity"])
        self.training_rows: list[tuple[int, int, float]] = []
        self.validation_rows: list[tuple[int, int, float]] = []

    def training(self, step: int, epoch: int, loss: float) -> None:
        self._training_csv.writerow([step, epoch, f"{loss:.6f}", f"{perplexity(loss):.6f}"])
        self._training.flush()
        self.training_rows.append((step, epoch, loss))

    def validation(self, step: int, epoch: int, loss: float) -> None:
        self._validation_csv.writerow([step, epoch, f"{loss:.6f}", f"{perplexity(loss):.6f}"])
        self._validation.flush()
        self.validation_rows.append((step, epoch, loss))

    def close(self) -> None:
        self._training.close()
        if self._validation:
            self._validation.close()


@dataclass
class LoopResult:
    steps: int = 0
    epochs_run: int = 0
    stopped_early: bool = False
    best_epoch: int | None = None
    best_validation_loss: float | None = None
    final_training_loss: float | None = None
    tokens: int = 0
    seconds: float = 0.0
    validation_losses: list[float] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


@dataclass
class Hooks:
    """How a caller watches and steers a run (the job worker reports progress and stops with these)."""

    on_training_start: Callable[[int], None] = lambda total_steps: None
    on_step: Callable[[int, int, float], None] = lambda step, epoch, loss: None
    on_validation: Callable[[int, float], None] = lambda epoch, loss: None
    should_stop: Callable[[], bool] = lambda: False


class StopRequested(Exception):
    """Raised inside the loop when ``Hooks.should_stop`` says so; nothing is published."""


def train_loop(
    model,
    train: list[Example],
    validation: list[Example],
    config: TrainConfig,
    *,
    pad_id: int,
    metrics: MetricsWriter,
    save_best: Callable[[], None],
    progress: bool = True,
    hooks: Hooks | None = None,
) -> LoopResult:
    """Train for ``config.epochs`` epochs with validation and early stopping after each epoch.

    ``save_best`` is called whenever the validation loss reaches a new low (or, without
    validation data, after the last epoch), so the kept checkpoint is the best one.
    """
    import torch

    from tailor.progress import progress_bar
    from tailor.weights import device as current_device

    hooks = hooks or Hooks()
    device = current_device()
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    batches_per_epoch = math.ceil(len(train) / config.batch_size)
    total_steps = batches_per_epoch * config.epochs
    warmup = config.warmup_steps if config.warmup_steps is not None else max(1, total_steps // 20)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=0.0)

    def factor(step: int) -> float:  # linear warm-up, then cosine decay to 10 %
        if step < warmup:
            return (step + 1) / (warmup + 1)
        done = (step - warmup) / max(1, total_steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    stopper = (
        EarlyStopping(config.early_stopping_threshold, config.early_stopping_patience)
        if validation and config.early_stopping_patience is not None
        else None
    )
    result = LoopResult()
    model.train()
    hooks.on_training_start(total_steps)
    started = time.perf_counter()
    with progress_bar("Training", total_steps, enabled=progress) as bar:
        for epoch in range(1, config.epochs + 1):
            for indices in length_grouped_batches(train, config.batch_size, rng):
                if hooks.should_stop():
                    raise StopRequested("training stopped on request")
                input_ids, attention, labels, tokens = collate([train[i] for i in indices], pad_id, device)
                loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                value = loss.item()
                metrics.training(result.steps, epoch, value)
                hooks.on_step(result.steps, epoch, value)
                result.steps += 1
                result.tokens += tokens
                result.final_training_loss = value
                bar.advance(loss=value)
            result.epochs_run = epoch
            if validation:
                loss_value = mean_loss(model, validation, config.batch_size, pad_id, device)
                metrics.validation(result.steps - 1, epoch, loss_value)
                result.validation_losses.append(loss_value)
                hooks.on_validation(epoch, loss_value)
                bar.note(f"epoch {epoch}: validation loss {loss_value:.4f}")
                lowest = min(result.validation_losses)
                stop = stopper.update(epoch, loss_value) if stopper else False
                if loss_value == lowest:
                    result.best_epoch, result.best_validation_loss = epoch, loss_value
                    save_best()
                if stop:
                    result.stopped_early = epoch < config.epochs
                    bar.note(f"early stopping after epoch {epoch}: best epoch {result.best_epoch}")
                    break
    result.seconds = time.perf_counter() - started
    if not validation:
        save_best()
    return result


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for name in ("tailor", "torch", "transformers", "peft", "tokenizers", "safetensors"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def new_plot():
    """A figure and axes for a metrics plot, drawn off-screen (jobs run without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(7, 4))


def save_plot(figure, axes, path: Path, ylabel: str, log_scale: bool = False) -> None:
    import matplotlib.pyplot as plt

    axes.set_xlabel("step")
    axes.set_ylabel(ylabel)
    if log_scale:
        axes.set_yscale("log")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_losses(metrics: MetricsWriter, path: Path) -> None:
    """Training loss per step and validation loss per epoch, for people to look at."""
    figure, axes = new_plot()
    steps = [row[0] for row in metrics.training_rows]
    axes.plot(steps, [row[2] for row in metrics.training_rows], label="training loss", linewidth=1)
    if metrics.validation_rows:
        axes.plot([row[0] for row in metrics.validation_rows], [row[2] for row in metrics.validation_rows],
                  "o-", label="validation loss (end of epoch)")
    save_plot(figure, axes, path, "loss", log_scale=True)


def prepare_output(out_dir: Path) -> Path:
    """A scratch folder beside ``out_dir``; ``publish_output`` renames it into place when done.

    A failed or interrupted run therefore never leaves a half-written result at ``out_dir``.
    """
    out_dir = out_dir.resolve()
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InvalidInput(f"Output folder {out_dir} already exists and is not empty.")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = out_dir.parent / f".{out_dir.name}{PARTIAL}{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    return scratch


def output_in_progress(out_dir: Path) -> Path | None:
    """The newest scratch folder ``prepare_output`` made for ``out_dir``, where a running training
    writes (and flushes) its metrics; None when there is none."""
    partial = sorted(out_dir.parent.glob(f".{out_dir.name}{PARTIAL}*"), key=lambda path: path.stat().st_mtime)
    return partial[-1] if partial else None


def publish_output(scratch: Path, out_dir: Path) -> None:
    out_dir = out_dir.resolve()
    if out_dir.exists():
        out_dir.rmdir()  # empty, checked by prepare_output
    os.rename(scratch, out_dir)


def write_manifest(path: Path, manifest: dict) -> None:
    path.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")


@dataclass(frozen=True)
class TrainSpec:
    """What a training run needs; the CLI, the job runner and tests all build one of these."""

    customization_type: str
    model: str  # catalog id, aliased original id, local directory or hub id
    training_uri: str
    output_dir: Path
    validation_uris: tuple[str, ...] = ()
    hyperparameters: dict[str, str] = field(default_factory=dict)  # typed values for RFT
    progress: bool = True
    grader: str | None = None  # REINFORCEMENT_FINE_TUNING: the grader's ARN or name

    def to_json(self) -> str:
        return json.dumps({**self.__dict__, "output_dir": str(self.output_dir),
                           "validation_uris": list(self.validation_uris)}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> TrainSpec:
        values = json.loads(text)
        return cls(**{**values, "output_dir": Path(values["output_dir"]),
                      "validation_uris": tuple(values.get("validation_uris", ()))})


@dataclass(frozen=True)
class TrainOutcome:
    output_dir: Path
    manifest: dict

    @property
    def model_dir(self) -> Path:
        return self.output_dir / MODEL_DIR


def describe_data(uri: str, records: int, settings) -> dict:
    from tailor.storage import local_path

    return {"uri": uri, "records": records, "sha256": file_sha256(local_path(uri, settings))}


def fit(spec: TrainSpec, model_ref, config: TrainConfig, tokenizer, train: list[Example],
        validation: list[Example], data: dict, settings, notes: tuple[str, ...] = (),
        hooks: Hooks | None = None) -> TrainOutcome:
    """Load the model, train it, keep the best checkpoint and publish the output folder."""
    from datetime import datetime, timezone

    started_at = datetime.now(timezone.utc)
    started = time.perf_counter()
    scratch = prepare_output(spec.output_dir)
    try:
        model = load_trainable(model_ref, config, settings, progress=spec.progress)
        load_seconds = time.perf_counter() - started
        metrics = MetricsWriter(scratch, with_validation=bool(validation))
        model_dir = scratch / MODEL_DIR

        def save_best() -> None:
            model.save_pretrained(model_dir)
            tokenizer.save_pretrained(model_dir)

        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        try:
            result = train_loop(model, train, validation, config, pad_id=pad_id, metrics=metrics,
                                save_best=save_best, progress=spec.progress, hooks=hooks)
        finally:
            metrics.close()
        plot_losses(metrics, scratch / LOSS_PLOT)
        manifest = manifest_for(
            spec, model_ref, config.tuning_method, data, tuple(model_ref.notes + notes), config.hyperparameters,
            config.learning_rate, config.seed, started_at, started,
            result={
                "epochs_run": result.epochs_run,
                "steps": result.steps,
                "stopped_early": result.stopped_early,
                "best_epoch": result.best_epoch,
                "best_validation_loss": result.best_validation_loss,
                "validation_losses": result.validation_losses,
                "final_training_loss": result.final_training_loss,
                "training_tokens": result.tokens,
                "tokens_per_second": round(result.tokens_per_second, 1),
            },
            timings={"load_seconds": round(load_seconds, 2), "train_seconds": round(result.seconds, 2)},
        )
        write_manifest(scratch / MANIFEST, manifest)
        publish_output(scratch, spec.output_dir)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return TrainOutcome(spec.output_dir.resolve(), manifest)


def manifest_for(spec: TrainSpec, model_ref, tuning_method: str, data: dict, notes: tuple[str, ...],
                 hyperparameters: dict, learning_rate: float, seed: int, started_at, started: float,
                 result: dict, timings: dict | None = None) -> dict:
    """The training output's manifest.json: what was trained from what, how, and how it went."""
    from datetime import datetime, timezone

    return {
        "tailor_manifest_version": 1,
        "customization_type": spec.customization_type,
        "base_model": {
            "model_id": model_ref.model_id,
            "family": model_ref.family.name,
            "weights": {"kind": model_ref.weights.kind, "location": model_ref.weights.location},
            "alias_of": model_ref.alias_of,
            "resolved": model_ref.describe(),
            **({"trained": model_ref.trained, "adapter": model_ref.adapter} if model_ref.trained else {}),
        },
        "notes": list(notes),
        "tuning_method": tuning_method,
        "model_path": str(MODEL_DIR),
        "data": data,
        "hyperparameters": hyperparameters,
        "learning_rate": learning_rate,
        "seed": seed,
        "libraries": library_versions(),
        "result": result,
        "timings": {
            "started": started_at.isoformat(),
            "finished": datetime.now(timezone.utc).isoformat(),
            **(timings or {}),
            "total_seconds": round(time.perf_counter() - started, 2),
        },
    }


def load_trainable(model_ref, config, settings, progress: bool = True):
    """The model a run trains: the base, wrapped in a new LoRA adapter for LoRA runs.

    A run that continues from a LoRA custom model (``model_ref.adapter``) trains that adapter
    further when it tunes LoRA (its rank is the adapter's), or starts full training from the base
    with the adapter merged in.
    """
    from tailor.weights import load_causal_lm

    model = load_causal_lm(model_ref, settings, progress=progress)
    if model_ref.adapter:
        from peft import PeftModel

        if config.tuning_method == "lora":
            return PeftModel.from_pretrained(model, model_ref.adapter, is_trainable=True)
        return PeftModel.from_pretrained(model, model_ref.adapter).merge_and_unload()
    return with_lora(model, config) if config.tuning_method == "lora" else model


def with_lora(model, config: TrainConfig):
    """Wrap the model with a LoRA adapter on every linear layer of its blocks."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=0.0,
                      target_modules="all-linear", task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def run_recipe(spec: TrainSpec, settings, examples_for, hooks: Hooks | None = None) -> TrainOutcome:
    """A supervised recipe: ``examples_for(records, tokenizer)`` is what tells SFT and CPT apart."""
    model_ref, config, tokenizer = prepare(spec, settings)
    train_records, validation_records, data, notes = load_data(spec, model_ref, config, tokenizer, settings)
    train = examples_for(train_records, tokenizer)
    validation = examples_for(validation_records, tokenizer)
    return fit(spec, model_ref, config, tokenizer, train, validation, data, settings, notes, hooks)


def main(run, argv: list[str] | None = None) -> int:
    """``python -m tailor.train.<recipe> SPEC.json``: one training run in its own process.

    Exit 0 on success, 2 with the message on stderr when the request or data is wrong.
    """
    import sys

    from tailor.errors import TailorError

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tailor.train.<recipe> SPEC.json", file=sys.stderr)
        return 2
    try:
        run(TrainSpec.from_json(Path(args[0]).read_text()))
    except TailorError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    return 0


def prepare(spec: TrainSpec, settings, parse_hyperparameters=None):
    """The edge of every recipe: resolve the model, check hyperparameters (with the recipe's
    parser; the supervised one by default), load the tokenizer."""
    from tailor.catalog import CustomizationType, resolve_model
    from tailor.weights import load_tokenizer

    if parse_hyperparameters is None:
        from tailor.train.hyperparams import parse_hyperparameters

    model_ref = resolve_model(spec.model, settings)
    customization_type = CustomizationType(spec.customization_type)
    if customization_type not in model_ref.customization_types:
        supported = ", ".join(model_ref.customization_types)
        raise InvalidInput(f"{model_ref.model_id} does not support {customization_type}; it supports {supported}.")
    config = parse_hyperparameters(spec.hyperparameters, model_ref)
    tokenizer = load_tokenizer(model_ref, settings, progress=spec.progress)
    return model_ref, config, tokenizer


def load_data(spec: TrainSpec, model_ref, config: TrainConfig, tokenizer, settings):
    """Validate every file first (all problems reported at once), then read typed records.

    Without a validation file, families that define ``evalPercentage`` hold out that share of
    the training records (seeded) to measure validation loss on.
    """
    from tailor.catalog import CustomizationType
    from tailor.data.validate import load_records, validate_dataset

    kind = CustomizationType(spec.customization_type)
    reports = validate_dataset(spec.training_uri, list(spec.validation_uris), kind,
                               model_ref, tokenizer=tokenizer, settings=settings)
    failed = [report for report in reports if not report.ok]
    if failed:
        raise InvalidInput("The data is invalid; nothing was trained.\n" +
                           "\n".join(report.render() for report in failed))
    train = load_records(spec.training_uri, kind, model_ref, purpose="training",
                         tokenizer=tokenizer, settings=settings)
    validation = [record for uri in spec.validation_uris for record in
                  load_records(uri, kind, model_ref, purpose="validation",
                               tokenizer=tokenizer, settings=settings)]
    data = {"training": describe_data(spec.training_uri, len(train), settings),
            "validation": [describe_data(uri, r.record_count, settings)
                           for uri, r in zip(spec.validation_uris, reports[1:])]}
    notes: tuple[str, ...] = ()
    if not validation and config.eval_percentage:
        held_out = max(1, round(len(train) * config.eval_percentage / 100))
        shuffled = list(train)
        random.Random(config.seed).shuffle(shuffled)
        validation, train = shuffled[:held_out], shuffled[held_out:]
        notes = (f"No validation file: {held_out} training records ({config.eval_percentage:g} %, "
                 "evalPercentage) were held out to measure validation loss.",)
        data["validation_held_out"] = held_out
    return train, validation, data, notes
