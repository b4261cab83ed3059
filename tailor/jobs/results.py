"""A fine-tuning job's metrics in OpenAI's words: the names of its events' ``data`` and of the
results CSV (``result_files``, purpose ``fine-tune-results``) a job of the OpenAI door gets when it
succeeds.

The metrics files keep the original service's column names (``step_number``, ``training_loss``,
``critic/rewards/mean`` ...); OpenAI's clients read ``step``, ``train_loss``, ``valid_loss``. One
renaming serves the events (``services/job_events.py``) and the CSV.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from tailor.trained import read_metrics

# step_number -> step, training_loss -> train_loss, validation_loss -> valid_loss (OpenAI's names);
# RFT's critic/rewards/mean -> critic_rewards_mean, val-score/rewards/mean@1 -> val_score_rewards_mean_at_1.
_RENAMED = {"step_number": "step", "epoch_number": "epoch", "training_loss": "train_loss",
            "validation_loss": "valid_loss"}
# OpenAI's results file calls the training accuracy train_accuracy.
_CSV_NAMES = {"train_mean_token_accuracy": "train_accuracy"}
_FIRST = ("step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy")


def renamed(row: dict) -> dict:
    """A metrics row with OpenAI's names and numbers for values; empty cells left out."""
    out = {}
    for name, value in row.items():
        if value in ("", None):
            continue
        key = _RENAMED.get(name) or re.sub(r"[^a-z0-9]+", "_", name.lower().replace("@", "_at_")).strip("_")
        out[key] = int(value) if key in ("step", "epoch") else float(value)
    return out


def results_csv(output_dir: Path) -> bytes:
    """The run's metrics, one row per step (training and held-out metrics of that step together),
    OpenAI's columns first (``step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy``)."""
    metrics = read_metrics(output_dir)
    steps: dict[int, dict] = {}
    for row in [*metrics.training, *metrics.validation]:
        values = {_CSV_NAMES.get(name, name): value for name, value in renamed(row).items() if name != "epoch"}
        if "step" in values:
            steps.setdefault(values["step"], {}).update(values)
    extra = sorted({name for values in steps.values() for name in values} - set(_FIRST))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*_FIRST, *extra], lineterminator="\n")
    writer.writeheader()
    for step in sorted(steps):
        writer.writerow(steps[step])
    return out.getvalue().encode()
