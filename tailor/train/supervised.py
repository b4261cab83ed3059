"""The supervised recipes' run, shared by SFT and CPT: they differ only in how records become
``Example``s (which tokens carry a loss), which each passes in as ``examples_for``.

A run: prepare at the edge (``train/prepare.py``), load the trainable model, run the loop
(``train/loop.py``) while the metrics files fill (``train/metrics.py``) and the best checkpoint is
saved, then plot, write the manifest and publish the trained folder (``tailor.trained``).
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime

from tailor import trained
from tailor.data.render import Example
from tailor.errors import InvalidInput
from tailor.train.checkpoints import FOLDER as CHECKPOINTS
from tailor.train.checkpoints import Checkpoints
from tailor.train.contract import Hooks, TrainOutcome
from tailor.train.hyperparams import TrainConfig
from tailor.train.loop import train_loop
from tailor.train.metrics import (
    LOSS_COLUMNS,
    VALIDATION_LOSS_COLUMNS,
    MetricsWriter,
    plot_losses,
)
from tailor.train.prepare import load_data, load_trainable, prepare
from tailor.train.spec import TrainSpec


def run_recipe(spec: TrainSpec, settings, examples_for, hooks: Hooks | None = None) -> TrainOutcome:
    """A supervised recipe: ``examples_for(records, tokenizer)`` is what tells SFT and CPT apart."""
    model_ref, config, tokenizer = prepare(spec, settings)
    train_records, validation_records, data, notes = load_data(spec, model_ref, config, tokenizer, settings)
    train = examples_for(train_records, tokenizer)
    validation = examples_for(validation_records, tokenizer)
    return fit(spec, model_ref, config, tokenizer, train, validation, data, settings, notes, hooks)


def fit(spec: TrainSpec, model_ref, config: TrainConfig, tokenizer, train: list[Example],
        validation: list[Example], data: dict, settings, notes: tuple[str, ...] = (),
        hooks: Hooks | None = None) -> TrainOutcome:
    """Load the model, train it, keep the best checkpoint and publish the trained folder."""
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    with trained.building(spec.output_dir, resume=spec.resume) as scratch:
        checkpoints = Checkpoints(scratch / CHECKPOINTS, every_steps=settings.checkpoint_steps)
        resume = checkpoints.latest() if spec.resume else None
        if spec.resume and resume is None:
            raise InvalidInput(f"Nothing to resume for {spec.output_dir}: the interrupted run saved no checkpoint "
                               "(it saves one every checkpoint_steps steps and at each epoch's end).")
        model = load_trainable(model_ref, config, settings, progress=spec.progress)
        load_seconds = time.perf_counter() - started
        model_dir = scratch / trained.MODEL_DIR

        def save_best() -> None:
            model.save_pretrained(model_dir)
            tokenizer.save_pretrained(model_dir)

        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        with MetricsWriter(scratch, LOSS_COLUMNS, VALIDATION_LOSS_COLUMNS if validation else None) as metrics:
            result = train_loop(model, train, validation, config, pad_id=pad_id, metrics=metrics,
                                save_best=save_best, progress=spec.progress, hooks=hooks,
                                checkpoints=checkpoints, resume=resume)
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
    return TrainOutcome(spec.output_dir.resolve(), manifest)
