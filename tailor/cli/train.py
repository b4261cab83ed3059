"""``tailor train``: validate the data, then train on this machine into an output folder; and
``run_training``, which the quickstart (``tailor demo``) uses too. No server is involved: the
recipe runs in this process."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tailor.catalog import CustomizationType, resolve_model
from tailor.cli.common import (
    DataType,
    load_settings,
    parse_assignments,
    say,
    user_errors,
)
from tailor.train.distributed import Parallelism


def run_training(customization_type: CustomizationType, model: str, train: str, validation: list[str],
                 hyperparameters: dict[str, str], out: Path, grader: str | None = None, resume: bool = False,
                 processes: int | None = None, parallelism: Parallelism = Parallelism.AUTO):
    """Resolve, validate and train; returns the recipe's ``TrainOutcome``. ``grader`` is a
    registered grader's name or ARN, looked up (and snapshotted) before training starts;
    ``resume`` continues the interrupted run into ``out`` from its last checkpoint; ``processes``
    (default: one per GPU, or 1) train it together, ``parallelism`` says how."""
    from tailor.train.devices import processes_for
    from tailor.train.recipes import launch
    from tailor.train.spec import TrainSpec

    settings = load_settings()
    for note in resolve_model(model, settings).notes:
        say(note)
    grader_info = None
    if grader:
        from tailor.graders.registry import get_grader
        from tailor.store.db import open_store

        grader_info = get_grader(open_store(settings), grader)
    spec = TrainSpec(customization_type=customization_type, model=model, training_uri=train, output_dir=out,
                     validation_uris=tuple(validation), hyperparameters=hyperparameters, grader=grader_info,
                     resume=resume, parallelism=parallelism)
    return launch(spec, settings, processes or processes_for(settings))


def print_estimate(customization_type: CustomizationType, model: str, train: str, validation: list[str],
                   hyperparameters: dict[str, str], out: Path) -> None:
    """``--dry-run``: the run's pre-flight estimate (``tailor.train.estimate``); nothing is trained."""
    from tailor.train.estimate import estimate_run
    from tailor.train.spec import TrainSpec

    settings = load_settings()
    for note in resolve_model(model, settings).notes:
        say(note)
    spec = TrainSpec(customization_type=customization_type, model=model, training_uri=train, output_dir=out,
                     validation_uris=tuple(validation), hyperparameters=hyperparameters, progress=False)
    typer.echo(estimate_run(spec, settings).render())
    say("Dry run: nothing was trained.")


def print_outcome(outcome) -> None:
    from tailor.trained import TRAINING_METRICS, VALIDATION_METRICS

    result = outcome.manifest["result"]
    if "held_out_rewards" in result:  # reinforcement fine-tuning
        say(f"Trained {result['steps']} steps with grader {result['grader']}; held-out greedy reward "
            f"{result['start_held_out_reward']:.3f} -> {result['final_held_out_reward']:.3f}.")
        say(f"Model:    {outcome.model_dir}")
        say(f"Metrics:  {outcome.output_dir / TRAINING_METRICS} (rewards.png beside it)")
        say(f"Manifest: {outcome.output_dir / 'manifest.json'}")
        return
    line = (f"Trained {result['epochs_run']} epochs, {result['steps']} steps, "
            f"{result['tokens_per_second']:.0f} tokens/s; final training loss "
            f"{result['final_training_loss']:.4f}")
    if result["best_validation_loss"] is not None:
        line += f"; best validation loss {result['best_validation_loss']:.4f} (epoch {result['best_epoch']})"
    if result["stopped_early"]:
        line += "; stopped early"
    say(line + ".")
    say(f"Model:    {outcome.model_dir}")
    say(f"Metrics:  {outcome.output_dir / TRAINING_METRICS}")
    if result["best_validation_loss"] is not None:
        say(f"          {outcome.output_dir / VALIDATION_METRICS}")
    say(f"Manifest: {outcome.output_dir / 'manifest.json'}")


def train(
    customization_type: Annotated[DataType, typer.Option("--type", help="What kind of training.")],
    model: Annotated[str, typer.Option("--model", help="Base model: a catalog id or alias, a training output "
                                       "folder (to train further), a model directory or a hub id.")],
    train_file: Annotated[str, typer.Option("--train", help="Training data, JSON Lines: a path, file:// URI, or "
                                            "s3://BUCKET/KEY (a local bucket, or the S3 endpoint when "
                                            "TAILOR_S3_ENDPOINT_URL is set).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (must not exist or be empty).")],
    validation: Annotated[
        list[str] | None, typer.Option("--validation", help="Validation data (same forms as --train); repeat "
                                       "for several.")
    ] = None,
    hp: Annotated[
        list[str] | None, typer.Option("--hp", help="Hyperparameter NAME=VALUE; repeat for several.")
    ] = None,
    grader: Annotated[str | None, typer.Option("--grader", help="REINFORCEMENT_FINE_TUNING: a registered "
                                               "grader's name or ARN (tailor graders create).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Resolve the model, validate the data and print "
                                          "an estimate of peak memory and time; train nothing, write "
                                          "nothing to --out.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run into --out that was interrupted "
                                         "(killed, out of memory, machine restarted) from its last checkpoint; "
                                         "give the same options as the first time.")] = False,
    processes: Annotated[int | None, typer.Option("--processes", min=1, help="Processes that train together, one "
                                                  "per device (torchrun). Default: TAILOR_TRAINING_PROCESSES, else "
                                                  "every visible GPU, else 1.")] = None,
    parallelism: Annotated[Parallelism, typer.Option("--parallelism", help="With several processes: "
                                                     "data-parallel (each holds the whole model), fully-sharded "
                                                     "(FSDP: each holds 1/N), or auto (sharded only when the "
                                                     "model does not fit one device).")] = Parallelism.AUTO,
) -> None:
    """Validate the data, then fine-tune, continue pre-training or reinforcement-fine-tune a model into --out."""
    if dry_run:
        with user_errors():
            print_estimate(CustomizationType(customization_type), model, train_file, validation or [],
                           parse_assignments(hp, "--hp"), out)
        return
    with user_errors():
        outcome = run_training(CustomizationType(customization_type), model, train_file,
                               validation or [], parse_assignments(hp, "--hp"), out, grader, resume,
                               processes, parallelism)
    print_outcome(outcome)
