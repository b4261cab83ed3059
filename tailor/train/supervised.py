"""The supervised recipes' run, shared by SFT and CPT: they differ only in how records become
``Example``s (which tokens carry a loss), which each passes in as ``examples_for``.

A run: prepare at the edge (``train/prepare.py``), load the trainable model, run the loop
(``train/loop.py``) while the metrics files fill (``train/metrics.py``) and the best checkpoint is
saved, then plot, write the manifest and publish the trained folder (``tailor.trained``).

Besides the final model, the trained folder keeps the model as it was at the end of each of the
last epochs before the final one (``KEPT_EPOCHS``), as OpenAI's fine-tuning keeps checkpoints a
user can call as models: each is a trained folder of its own (``trained.checkpoints``).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from tailor import trained
from tailor.data.render import Example
from tailor.errors import InvalidInput
from tailor.train import distributed
from tailor.train.checkpoints import FOLDER as CHECKPOINTS
from tailor.train.checkpoints import Checkpoints
from tailor.train.contract import Hooks, PauseRequested, TrainOutcome
from tailor.train.hyperparams import TrainConfig
from tailor.train.loop import lengths_of, train_loop
from tailor.train.metrics import (
    ACCURACY_COLUMNS,
    LOSS_COLUMNS,
    TRAIN_ACCURACY,
    VALID_ACCURACY,
    VALIDATION_ACCURACY_COLUMNS,
    VALIDATION_LOSS_COLUMNS,
    MetricsWriter,
    plot_losses,
)
from tailor.train.plan import plan
from tailor.train.precision import precision_for
from tailor.train.prepare import (
    load_cached_data,
    load_data,
    load_trainable,
    prepare,
    trainable_structure,
)
from tailor.train.spec import TrainSpec
from tailor.weights import device, load_config

# Epoch checkpoints a trained folder keeps: the last 3 epochs before the final one, as OpenAI keeps
# (its fine-tuning jobs list the final model and the checkpoints of up to 3 epochs before it). Not
# a setting: each is a whole model (the adapter, for LoRA), so this bounds the folder's size.
KEPT_EPOCHS = 3


def run_recipe(spec: TrainSpec, settings, examples_for, hooks: Hooks | None = None, cached=None) -> TrainOutcome:
    """A supervised recipe: ``examples_for(records, tokenizer)`` is what tells SFT and CPT apart.
    ``cached(uri, tokenizer, settings, sha256)``, when given, makes the training examples an
    on-disk cache instead of a list (``prepare.load_cached_data``: files bigger than memory)."""
    model_ref, config, tokenizer = prepare(spec, settings)
    if cached is not None:
        train, validation, data, notes = load_cached_data(spec, model_ref, config, tokenizer, settings, cached,
                                                          examples_for)
    else:
        train_records, validation_records, data, notes = load_data(spec, model_ref, config, tokenizer, settings)
        train = examples_for(train_records, tokenizer)
        validation = examples_for(validation_records, tokenizer)
    return fit(spec, model_ref, config, tokenizer, train, validation, data, settings, notes, hooks)


def fit(spec: TrainSpec, model_ref, config: TrainConfig, tokenizer, train: Sequence[Example],
        validation: Sequence[Example], data: dict, settings, notes: tuple[str, ...] = (),
        hooks: Hooks | None = None) -> TrainOutcome:
    """Load the model, train it, keep the best checkpoint and publish the trained folder.

    Under torchrun every process runs this (``train/distributed.py``); the main one owns the
    scratch folder, the metrics files and the published output, the others train their share and
    read the same checkpoints.
    """
    current = distributed.world()
    distributed.start(current)
    try:
        with _scratch(spec, current) as scratch, tempfile.TemporaryDirectory() as private:
            return _fit(spec, model_ref, config, tokenizer, train, validation, data, settings, notes, hooks,
                        current, scratch, Path(private))
    finally:
        distributed.stop()


@contextlib.contextmanager
def _scratch(spec: TrainSpec, current: distributed.World):
    """The run's scratch folder: the main process makes it (and publishes it at the end); the
    others learn its path."""
    if current.main:
        with trained.building(spec.output_dir, resume=spec.resume, keep_on=(PauseRequested,)) as scratch:
            distributed.share_object(str(scratch), current)
            yield scratch
            distributed.barrier(current)  # every process is done with the checkpoints
    else:
        scratch = Path(distributed.share_object(None, current))
        yield scratch
        distributed.barrier(current)


def plan_run(spec: TrainSpec, model_ref, config: TrainConfig, train: Sequence[Example], settings,
             current: distributed.World):
    """How this run uses its devices (``train/plan.py``): the micro-batch that fits (unless
    ``microBatchSize`` says), activation checkpointing when activations do not fit, and sharding
    when the model does not fit one device (unless the spec's parallelism says). A run that does
    not fit even so trains with the smallest choice; jobs were refused at create time."""
    from tailor.train.devices import device_budget
    from tailor.train.estimate import BYTES_PER_PARAMETER, model_shape
    from tailor.train.plan import COMPUTE_BYTES_GPU

    shape = model_shape(load_config(model_ref, settings), config.tuning_method, config.lora_rank)
    parallelism = distributed.Parallelism(spec.parallelism)
    sharded = None if parallelism == distributed.Parallelism.AUTO else parallelism == distributed.Parallelism.FULLY_SHARDED
    gpu = device().type == "cuda"
    return plan(shape, config.batch_size, max(lengths_of(train), default=1),
                device_budget(settings), current.size, config.micro_batch_size,
                activation_bytes=COMPUTE_BYTES_GPU if gpu else BYTES_PER_PARAMETER,
                sharded=sharded if current.size > 1 else False)


def describe_plan(chosen, current: distributed.World) -> str:
    """The manifest's note of how the run used its devices."""
    layout = "fully sharded" if chosen.sharded else ("data parallel" if current.size > 1 else "one device")
    text = (f"Trained in {current.size} process{'es' * (current.size != 1)} ({layout}), micro-batch "
            f"{chosen.micro_batch_size}, activation checkpointing {'on' if chosen.activation_checkpointing else 'off'}"
            f"; estimated peak {chosen.peak_bytes / 2**30:.2f} GiB per device.")
    if not chosen.fits:
        text += " The estimate exceeded the device's memory: " + "; or ".join(chosen.advice) + "."
    return text


def _fit(spec, model_ref, config, tokenizer, train, validation, data, settings, notes, hooks,
         current: distributed.World, scratch: Path, private: Path) -> TrainOutcome:
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    checkpoints = Checkpoints(scratch / CHECKPOINTS, every_steps=settings.checkpoint_steps)
    resume = checkpoints.latest() if spec.resume else None
    if spec.resume and resume is None:
        raise InvalidInput(f"Nothing to resume for {spec.output_dir}: the interrupted run saved no checkpoint "
                           "(it saves one every checkpoint_steps steps and at each epoch's end).")
    chosen = plan_run(spec, model_ref, config, train, settings, current)
    config = replace(config, micro_batch_size=chosen.micro_batch_size)
    strategy = distributed.Parallelism.FULLY_SHARDED if chosen.sharded else distributed.Parallelism.DATA_PARALLEL
    precision = precision_for(config.tuning_method, device().type)
    checkpointing = chosen.activation_checkpointing
    if strategy == distributed.Parallelism.FULLY_SHARDED and current.size > 1:
        model = distributed.shard_from_main(
            lambda: load_trainable(model_ref, config, settings, progress=spec.progress, on="cpu",
                                   activation_checkpointing=checkpointing),
            lambda: trainable_structure(model_ref, config, settings, activation_checkpointing=checkpointing),
            current, precision)
    else:
        model = load_trainable(model_ref, config, settings, progress=spec.progress and current.main,
                               activation_checkpointing=checkpointing)
        model = distributed.wrap(model, current, strategy, precision)
    notes = (*notes, describe_plan(chosen, current))
    load_seconds = time.perf_counter() - started
    model_dir = scratch / trained.MODEL_DIR

    def save_best() -> None:
        distributed.save_pretrained(model, model_dir, current)
        if current.main:
            tokenizer.save_pretrained(model_dir)

    if current.main:
        _forget_epochs_after(scratch, resume["steps"] if resume else 0)

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with MetricsWriter(scratch if current.main else private, LOSS_COLUMNS,
                       VALIDATION_LOSS_COLUMNS if validation else None, extra_training_columns=ACCURACY_COLUMNS,
                       extra_validation_columns=VALIDATION_ACCURACY_COLUMNS) as metrics:

        def keep_epoch(step: int, epoch: int) -> None:
            _keep_epoch(model, tokenizer, scratch, step, epoch, metrics, current)

        result = train_loop(model, train, validation, config, pad_id=pad_id, metrics=metrics,
                            save_best=save_best, keep_epoch=keep_epoch, progress=spec.progress, hooks=hooks,
                            precision=precision, checkpoints=checkpoints, resume=resume, current=current)
    if not current.main:
        return TrainOutcome(spec.output_dir.resolve(), {"result": {}})
    shutil.rmtree(checkpoints.folder, ignore_errors=True)  # the run's, not the trained model's
    plot_losses(metrics, scratch / trained.LOSS_PLOT)
    manifest = trained.manifest(
        customization_type=spec.customization_type, model_ref=model_ref, tuning_method=config.tuning_method,
        data=data, notes=tuple(model_ref.notes + notes), hyperparameters=config.hyperparameters,
        learning_rate=config.learning_rate, seed=config.seed, started_at=started_at, started=started,
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
    trained.write_manifest(scratch, manifest)
    trained.write_checkpoint_manifests(scratch, manifest)
    return TrainOutcome(spec.output_dir.resolve(), manifest)


def _keep_epoch(model, tokenizer, scratch: Path, step: int, epoch: int, metrics: MetricsWriter,
                current: distributed.World) -> None:
    """Save the model as it is at the end of ``epoch`` (its last step ``step``) as an epoch
    checkpoint, with the metrics at that step, and drop the oldest beyond ``KEPT_EPOCHS``.

    Every process calls it (gathering a sharded model's weights is a collective); the main one
    writes, into a temporary name renamed into place, so a checkpoint is whole or absent."""
    final = trained.checkpoint_folder(scratch, step)
    temporary = final.with_name(f".{final.name}.partial")
    if current.main:
        shutil.rmtree(temporary, ignore_errors=True)
    distributed.save_pretrained(model, temporary / trained.MODEL_DIR, current)
    if not current.main:
        return
    tokenizer.save_pretrained(temporary / trained.MODEL_DIR)
    trained.write_checkpoint_info(temporary, step=step, epoch=epoch, metrics=_metrics_at(metrics, step))
    shutil.rmtree(final, ignore_errors=True)  # the same epoch again, after a resume
    temporary.rename(final)
    kept = sorted(final.parent.glob("step-*"), key=lambda path: int(path.name.removeprefix("step-")))
    for old in kept[:-KEPT_EPOCHS]:
        shutil.rmtree(old, ignore_errors=True)


def _metrics_at(metrics: MetricsWriter, step: int) -> dict:
    """The metrics at ``step`` under OpenAI's names (those of a fine-tuning checkpoint's
    ``metrics``): the training row's, and the evaluation's at that step when there is one. Tailor
    evaluates on the whole validation set, so ``full_valid_*`` equal ``valid_*``."""
    training = next((row for row in reversed(metrics.training_rows) if row["step_number"] == step), {})
    held_out = next((row for row in reversed(metrics.validation_rows) if row["step_number"] == step), {})
    named = {"train_loss": training.get("training_loss"), TRAIN_ACCURACY: training.get(TRAIN_ACCURACY)}
    if held_out:
        for prefix in ("", "full_"):
            named[f"{prefix}valid_loss"] = held_out.get("validation_loss")
            named[f"{prefix}{VALID_ACCURACY}"] = held_out.get(VALID_ACCURACY)
    return {name: value for name, value in named.items() if value is not None}


def _forget_epochs_after(scratch: Path, steps_done: int) -> None:
    """Before a run (re)starts: drop epoch checkpoints a resumed run will make again (saved after the
    state it resumes from) and temporary ones a killed run left."""
    root = scratch / trained.EPOCH_CHECKPOINTS
    for path in root.glob(".step-*"):
        shutil.rmtree(path, ignore_errors=True)
    for path in root.glob("step-*"):
        if int(path.name.removeprefix("step-")) + 1 > steps_done:
            shutil.rmtree(path, ignore_errors=True)
