"""The supervised training loop: batches of ``Example``s, the optimizer, validation after every
epoch, early stopping.

Speed on a CPU comes from wasting no compute on padding: batches are drawn from length-sorted
pools (shuffled, seeded), padded only to their longest sequence, and the loss is averaged over
the target tokens of the batch. On a GPU with FlashAttention the records of a pass are packed
end to end instead (padding-free). A batch may be split into micro-batches (``microBatchSize``) whose
gradients accumulate to exactly the whole batch's. ``bench/sft_throughput.py`` measures it against TRL's trainer.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tailor.data.render import IGNORE_INDEX, Example
from tailor.train.checkpoints import (
    Checkpoints,
    load_training_state,
    model_state,
    optimizer_state,
)
from tailor.train.contract import Hooks, PauseRequested, StopRequested
from tailor.train.distributed import (
    World,
    all_sum,
    any_process,
    gradient_sync,
    share_of,
)
from tailor.train.early_stopping import EarlyStopping
from tailor.train.hyperparams import TrainConfig
from tailor.train.metrics import MetricsWriter, loss_row, validation_loss_row
from tailor.train.precision import Precision, autocast, precision_for

FLOAT32 = Precision("float32", None)


def lengths_of(examples: Sequence[Example]) -> Sequence[int]:
    """Every example's token count: an on-disk cache (``data/token_cache.py``) has them without
    reading its examples; a list is measured."""
    lengths = getattr(examples, "lengths", None)
    return lengths if lengths is not None else [len(example.input_ids) for example in examples]


def batch_of(examples: Sequence[Example], indices: list[int]) -> list[Example]:
    """The examples at ``indices`` (an on-disk cache reads them in one go)."""
    take = getattr(examples, "take", None)
    return take(indices) if take is not None else [examples[i] for i in indices]


def length_grouped_batches(examples: Sequence[Example], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Indices in batches of similar length: shuffle, sort within pools of 64 batches, shuffle batches."""
    lengths = lengths_of(examples)
    order = list(range(len(examples)))
    rng.shuffle(order)
    pool = batch_size * 64
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: lengths[i])
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


def collate_packed(examples: list[Example], device):
    """The records end to end in one row, positions restarting at each: a padding-free batch.
    transformers reads the records' boundaries from ``position_ids`` (varlen kernels under
    FlashAttention, a block-diagonal mask otherwise); a record's first token is no target, as
    it would not be after the shift in a padded row."""
    import torch

    input_ids, labels, positions = [], [], []
    for example in examples:
        input_ids += example.input_ids
        labels += [IGNORE_INDEX, *example.labels[1:]]
        positions += range(len(example.input_ids))
    row = [torch.tensor([values], dtype=torch.long, device=device) for values in (input_ids, labels, positions)]
    return row[0], row[1], row[2]


def packs(model, device) -> bool:
    """Padding-free batches where they are faster: on a GPU whose attention kernel takes packed
    records as they are (FlashAttention's varlen). Elsewhere — CPUs, GPUs with SDPA's masked
    attention — length-grouped padded batches waste less (docs/performance.md)."""
    implementation = getattr(getattr(model, "config", None), "_attn_implementation", None) or ""
    return device.type == "cuda" and implementation.startswith("flash_attention")


@dataclass(frozen=True)
class Evaluation:
    """A model's measure on held-out examples, over all their target tokens: the mean loss, and the
    mean token accuracy (the share of targets whose most likely prediction is the label)."""

    loss: float
    accuracy: float


def evaluate(model, examples: Sequence[Example], batch_size: int, pad_id: int, device,
             current: World = World()) -> Evaluation:
    """Token-weighted mean loss and accuracy over all target tokens (not a mean of batch means), in
    batches of similar length read one at a time; with several processes each computes its share
    of every batch and the sums are added up."""
    import torch

    total, correct, count = 0.0, 0, 0
    lengths = lengths_of(examples)
    order = sorted(range(len(examples)), key=lengths.__getitem__)
    model.eval()
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            batch = share_of(batch_of(examples, order[start : start + batch_size]), current, pad_id)
            input_ids, attention, labels, _ = collate(batch, pad_id, device)
            logits = model(input_ids=input_ids, attention_mask=attention).logits[:, :-1]
            targets = labels[:, 1:]
            losses = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1),
                ignore_index=IGNORE_INDEX, reduction="sum",
            )
            total += float(losses)
            correct += correct_predictions(logits, targets)
            count += int((targets != IGNORE_INDEX).sum())
    model.train()
    total, correct, count = all_sum([total, correct, count], current)
    return Evaluation(total / max(count, 1), correct / max(count, 1))


def mean_loss(model, examples: Sequence[Example], batch_size: int, pad_id: int, device,
              current: World = World()) -> float:
    """The token-weighted mean loss of ``evaluate``."""
    return evaluate(model, examples, batch_size, pad_id, device, current).loss


def correct_predictions(logits, targets) -> int:
    """How many target tokens (labels not ignored) are the logits' argmax: what mean token accuracy
    counts. ``logits`` and ``targets`` are aligned (already shifted for next-token prediction)."""
    import torch

    with torch.no_grad():
        mask = targets != IGNORE_INDEX
        return int((logits.detach().argmax(dim=-1).eq(targets) & mask).sum())


def target_tokens(examples: list[Example]) -> int:
    """The tokens a batch's loss is taken on: each label that is not ignored, after the one-token
    shift of next-token prediction."""
    return sum(sum(label != IGNORE_INDEX for label in example.labels[1:]) for example in examples)


@dataclass(frozen=True)
class BatchPass:
    """One optimizer step's forward and backward: the batch's mean loss per target token, its real
    tokens, and its mean token accuracy (from the logits the loss was taken on)."""

    loss: float
    tokens: int
    accuracy: float


def accumulate(model, batch: list[Example], micro_batch: int, pad_id: int, device,
               precision: Precision = FLOAT32, current: World = World(), packed: bool = False) -> tuple[float, int]:
    """(the batch's mean loss, its real tokens) of ``accumulate_batch``."""
    done = accumulate_batch(model, batch, micro_batch, pad_id, device, precision, current, packed)
    return done.loss, done.tokens


def accumulate_batch(model, batch: list[Example], micro_batch: int, pad_id: int, device,
                     precision: Precision = FLOAT32, current: World = World(), packed: bool = False) -> BatchPass:
    """Forward and backward over ``batch`` in passes of ``micro_batch`` records, accumulating the
    gradient of the batch's mean loss per target token.

    Each pass's summed loss is divided by the whole batch's target count (transformers'
    ``num_items_in_batch``), so the gradient equals one pass over the batch whatever the split.
    Records go to passes in length order: each pass pads only to its own longest record. With
    several processes each takes its share of the batch (``train/distributed.py``); the
    reduction averages gradients over processes, so each scales its loss by their number to sum.
    ``packed``: each pass is one padding-free row (``collate_packed``) instead of padded rows.
    The accuracy costs an argmax over logits the forward pass computed anyway.
    """
    import torch

    targets = max(target_tokens(batch), 1)
    count = torch.tensor(targets, device=device)
    ordered = sorted(share_of(batch, current, pad_id), key=lambda example: len(example.input_ids))
    starts = range(0, len(ordered), micro_batch)
    loss_sum, correct = 0.0, 0
    for start in starts:
        records = ordered[start : start + micro_batch]
        if packed:
            input_ids, labels, positions = collate_packed(records, device)
            inputs = {"input_ids": input_ids, "position_ids": positions, "labels": labels}
        else:
            input_ids, attention, labels, _ = collate(records, pad_id, device)
            inputs = {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
        with gradient_sync(model, current, sync=start == starts[-1]):
            with autocast(precision, torch.device(device).type):
                # No KV cache: training never reads it, and with one transformers would not see
                # the packed records' boundaries in position_ids.
                output = model(**inputs, num_items_in_batch=count, use_cache=False)
            loss = output.loss
            correct += correct_predictions(output.logits[:, :-1], labels[:, 1:])
            del output  # the logits: backward frees what it no longer needs
            (loss * current.size).backward()
        loss_sum += loss.item()
    loss_sum, correct = all_sum([loss_sum, correct], current)
    return BatchPass(loss_sum, sum(len(example.input_ids) for example in batch), correct / targets)


def _restore(state: dict, model, optimizer, scheduler, rng, result, stopper, metrics) -> tuple[int, int]:
    """Put a saved state back; (the epoch to continue, the batches of it already done)."""
    import torch

    load_training_state(model, optimizer, state)
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    rng.setstate(state["epoch_rng"])
    vars(result).update(state["result"])
    if stopper is not None and state["stopper"] is not None:
        vars(stopper).update(state["stopper"])
    for row in state["metrics"]["training"]:
        metrics.training(row)
    for row in state["metrics"]["validation"]:
        metrics.validation(row)
    return state["epoch"], state["done_in_epoch"]


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


def train_loop(
    model,
    train: Sequence[Example],
    validation: list[Example],
    config: TrainConfig,
    *,
    pad_id: int,
    metrics: MetricsWriter,
    save_best: Callable[[], None],
    keep_epoch: Callable[[int, int], None] | None = None,
    progress: bool = True,
    hooks: Hooks | None = None,
    precision: Precision | None = None,
    checkpoints: Checkpoints | None = None,
    resume: dict | None = None,
    current: World = World(),
) -> LoopResult:
    """Train for ``config.epochs`` epochs with validation and early stopping after each epoch;
    the optimizer updates the float32 weights ``model`` holds, computing in ``precision``'s dtype
    (by default the device's: ``train/precision.py``).

    ``save_best`` is called whenever the validation loss reaches a new low (or, without
    validation data, after the last epoch), so the kept checkpoint is the best one.
    ``keep_epoch(step_number, epoch)`` is called at the end of every epoch but the run's last (the
    last of ``config.epochs``, or the one early stopping ends), after that epoch's metrics rows are
    written: what ``train/supervised.py`` keeps as the trained folder's epoch checkpoints. Like
    ``save_best``, every process calls it (saving a sharded model is a collective).
    ``checkpoints`` saves the run's state every so many steps, at epoch ends and when
    ``hooks.should_pause`` (then ``PauseRequested`` ends the run); ``resume`` (a state it saved)
    continues a run exactly where that state left it. ``current``: this
    process's place when several train together (``train/distributed.py``; ``model`` is then
    wrapped, and only the main process saves checkpoints and draws progress).
    """
    import torch

    from tailor.progress import progress_bar
    from tailor.weights import device as current_device

    hooks = hooks or Hooks()
    device = current_device()
    micro_batch = min(config.micro_batch_size or config.batch_size, config.batch_size)
    packed = packs(model, device)
    precision = precision or precision_for(config.tuning_method, device.type)
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
    first_epoch, done_in_epoch = 1, 0
    if resume is not None:
        first_epoch, done_in_epoch = _restore(resume, model, optimizer, scheduler, rng, result, stopper, metrics)
    model.train()
    hooks.on_training_start(total_steps)
    started = time.perf_counter()

    def checkpoint(epoch: int, done: int, epoch_rng) -> None:
        state = {  # every process gathers (a collective); the main one writes
            "steps": result.steps, "epoch": epoch, "done_in_epoch": done, "epoch_rng": epoch_rng,
            "torch_rng": torch.get_rng_state(), "model": model_state(model),
            "optimizer": optimizer_state(model, optimizer), "scheduler": scheduler.state_dict(),
            "result": {k: v for k, v in vars(result).items() if k != "seconds"},
            "stopper": vars(stopper).copy() if stopper else None,
            "metrics": {"training": metrics.training_rows, "validation": metrics.validation_rows},
        }
        if current.main:
            checkpoints.save(state)

    with progress_bar("Training", total_steps, enabled=progress and current.main) as bar:
        if result.steps:
            bar.advance(result.steps)  # resumed
        for epoch in range(first_epoch, config.epochs + 1):
            epoch_rng = rng.getstate()
            batches = length_grouped_batches(train, config.batch_size, rng)
            for position, indices in enumerate(batches):
                if epoch == first_epoch and position < done_in_epoch:
                    continue  # done before the run was resumed
                if any_process(hooks.should_stop(), current):
                    raise StopRequested("training stopped on request")
                if any_process(hooks.should_pause(), current):
                    if checkpoints:
                        checkpoint(epoch, position, epoch_rng)
                    raise PauseRequested(result.steps)
                done = accumulate_batch(model, batch_of(train, indices), micro_batch, pad_id, device,
                                        precision, current, packed)
                value, tokens = done.loss, done.tokens
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                metrics.training(loss_row(result.steps, epoch, value, done.accuracy))
                hooks.on_step(result.steps, epoch, value)
                result.steps += 1
                result.tokens += tokens
                hooks.on_tokens(tokens)
                result.final_training_loss = value
                bar.advance(loss=value)
                if checkpoints and checkpoints.due(result.steps) and position + 1 < len(batches):
                    checkpoint(epoch, position + 1, epoch_rng)
            result.epochs_run = epoch
            if validation:
                measured = evaluate(model, validation, config.batch_size, pad_id, device, current)
                loss_value = measured.loss
                metrics.validation(validation_loss_row(result.steps - 1, epoch, loss_value, measured.accuracy))
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
            if keep_epoch is not None and epoch < config.epochs:
                keep_epoch(result.steps - 1, epoch)  # before the resume state that says it is done
            if checkpoints and epoch < config.epochs:
                checkpoint(epoch + 1, 0, rng.getstate())  # the next epoch's start
    result.seconds = time.perf_counter() - started
    if not validation:
        save_best()
    return result
