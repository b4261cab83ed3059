"""The metrics files every recipe writes, with their columns, and the plots drawn from them.

Two CSV files per run (paths in ``tailor.trained``): one row per optimizer step, and one row per
evaluation on held-out data. The column names are the original service's, so they differ by
method: supervised runs (SFT, CPT) record losses, reinforcement fine-tuning records rewards.
Rows are flushed as they come, because a running job's metrics are read from the files while it
trains (``trained.read_metrics``, the job events). Numbers are written as Python prints them (full
precision), so what the manifest records equals what the files say.

Measures the original's files have no column for (supervised runs' mean token accuracy, which
OpenAI's metrics events carry) go to Tailor-only companion files beside them (``EXTRA_METRICS`` in
``tailor.trained``), one row per row of the original file with the same step, so the original
files keep exactly their columns; ``trained.read_metrics`` returns the two merged.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Self

from tailor.trained import (
    TRAINING_EXTRA_METRICS,
    TRAINING_METRICS,
    VALIDATION_EXTRA_METRICS,
    VALIDATION_METRICS,
)

LOSS_COLUMNS = ("step_number", "epoch_number", "training_loss", "perplexity")
VALIDATION_LOSS_COLUMNS = ("step_number", "epoch_number", "validation_loss", "perplexity")
REWARD_COLUMNS = ("step", "epoch", "critic/rewards/mean", "critic/rewards/max", "critic/rewards/min",
                  "actor/pg_loss", "actor/kl_loss", "actor/entropy", "actor/grad_norm", "response_length/mean",
                  "grader/error_count")
HELD_OUT_REWARD_COLUMNS = ("step", "epoch", "val-score/rewards/mean@1", "grader/error_count")
# Tailor-only companions of the supervised files: the share of target tokens whose most likely
# prediction is the label (OpenAI's names, as its metrics events carry them).
TRAIN_ACCURACY = "train_mean_token_accuracy"
VALID_ACCURACY = "valid_mean_token_accuracy"
ACCURACY_COLUMNS = ("step_number", "epoch_number", TRAIN_ACCURACY)
VALIDATION_ACCURACY_COLUMNS = ("step_number", "epoch_number", VALID_ACCURACY)
# Values a row may carry for a companion file only: the original files leave them out (also when a
# writer keeps no companion file, e.g. a benchmark's), any other unknown name is a mistake.
COMPANION_ONLY = frozenset({TRAIN_ACCURACY, VALID_ACCURACY})


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0))  # capped: a diverged loss must not overflow the file


def loss_row(step: int, epoch: int, loss: float, accuracy: float | None = None) -> dict:
    """A supervised row: ``step_number`` counts optimizer steps from 0; an evaluation's row carries
    the step at the end of its epoch. ``accuracy`` (the batch's mean token accuracy) goes to the
    companion file."""
    row = {"step_number": step, "epoch_number": epoch, "training_loss": loss, "perplexity": perplexity(loss)}
    return row if accuracy is None else {**row, TRAIN_ACCURACY: accuracy}


def validation_loss_row(step: int, epoch: int, loss: float, accuracy: float | None = None) -> dict:
    row = {"step_number": step, "epoch_number": epoch, "validation_loss": loss, "perplexity": perplexity(loss)}
    return row if accuracy is None else {**row, VALID_ACCURACY: accuracy}


class MetricsWriter:
    """Writes a run's two CSV files under ``root`` and keeps their rows for the plot and manifest.

    ``validation_columns`` None: the run has no held-out data, and no validation file is written.
    ``extra_training_columns`` / ``extra_validation_columns``: the Tailor-only companion files'
    columns (their first two are the step and epoch, shared with the original file); a row's
    values for them go there, the original file gets only its own columns (``COMPANION_ONLY``
    values are left out of it whether or not there is a companion file).
    """

    def __init__(self, root: Path, training_columns: tuple[str, ...],
                 validation_columns: tuple[str, ...] | None, *,
                 extra_training_columns: tuple[str, ...] | None = None,
                 extra_validation_columns: tuple[str, ...] | None = None):
        self.training_rows: list[dict] = []
        self.validation_rows: list[dict] = []
        self._files: dict[csv.DictWriter, object] = {}  # each writer's open file
        self._companions: set[csv.DictWriter] = set()
        self._training = self._open(root / TRAINING_METRICS, training_columns)
        self._validation = self._open(root / VALIDATION_METRICS, validation_columns) if validation_columns else None
        self._training_extra = (self._open(root / TRAINING_EXTRA_METRICS, extra_training_columns, companion=True)
                                if extra_training_columns else None)
        self._validation_extra = (self._open(root / VALIDATION_EXTRA_METRICS, extra_validation_columns, companion=True)
                                  if extra_validation_columns and validation_columns else None)

    def _open(self, path: Path, columns: tuple[str, ...], companion: bool = False) -> csv.DictWriter:
        """``companion``: a Tailor-only file, which takes its own columns of the rows and leaves the rest."""
        path.parent.mkdir(parents=True, exist_ok=True)
        file = open(path, "w", newline="")
        writer = csv.DictWriter(file, fieldnames=columns, extrasaction="ignore" if companion else "raise")
        if companion:
            self._companions.add(writer)
        self._files[writer] = file
        writer.writeheader()
        file.flush()
        return writer

    @property
    def last(self) -> dict:
        """The latest training row ({} before the first step)."""
        return self.training_rows[-1] if self.training_rows else {}

    def training(self, row: dict) -> None:
        self._write(self._training, row)
        self._write(self._training_extra, row)
        self.training_rows.append(row)

    def validation(self, row: dict) -> None:
        self._write(self._validation, row)
        self._write(self._validation_extra, row)
        self.validation_rows.append(row)

    def _write(self, writer: csv.DictWriter | None, row: dict) -> None:
        if writer is None:
            return
        if writer not in self._companions:
            row = {name: value for name, value in row.items() if name not in COMPANION_ONLY}
        writer.writerow(row)  # a column the row lacks (a run resumed from an older state) is left empty
        self._files[writer].flush()

    def close(self) -> None:
        for file in self._files.values():
            file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def plot_losses(metrics: MetricsWriter, path: Path) -> None:
    """Training loss per step and validation loss per epoch, for people to look at."""
    figure, axes = _new_plot()
    axes.plot([r["step_number"] for r in metrics.training_rows], [r["training_loss"] for r in metrics.training_rows],
              label="training loss", linewidth=1)
    if metrics.validation_rows:
        axes.plot([r["step_number"] for r in metrics.validation_rows],
                  [r["validation_loss"] for r in metrics.validation_rows], "o-", label="validation loss (end of epoch)")
    _save_plot(figure, axes, path, "loss", log_scale=True)


def plot_rewards(metrics: MetricsWriter, path: Path) -> None:
    """Sampled reward per step and greedy held-out reward, for people to look at."""
    figure, axes = _new_plot()
    axes.plot([r["step"] for r in metrics.training_rows], [r["critic/rewards/mean"] for r in metrics.training_rows],
              label="sampled reward (critic/rewards/mean)", linewidth=1)
    axes.plot([r["step"] for r in metrics.validation_rows],
              [r["val-score/rewards/mean@1"] for r in metrics.validation_rows], "o-",
              label="held-out greedy reward (val-score/rewards/mean@1)")
    _save_plot(figure, axes, path, "reward")


def _new_plot():
    """A figure and axes drawn off-screen (jobs run without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(7, 4))


def _save_plot(figure, axes, path: Path, ylabel: str, log_scale: bool = False) -> None:
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
