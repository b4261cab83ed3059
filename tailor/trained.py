"""A trained folder: what a training run publishes, and how everything else reads it back.

```
OUT/
  model/                      the weights and tokenizer (a LoRA run: the adapter only)
  manifest.json               what was trained from what, how, and how it went
  training_artifacts/step_wise_training_metrics.csv    one row per optimizer step, flushed as it comes
  training_artifacts/loss.png (supervised) | rewards.png (reinforcement)
  validation_artifacts/post_fine_tuning_validation/validation_metrics.csv   one row per evaluation
  tailor_metrics/step_wise_training_metrics.csv        Tailor-only measures per step (mean token accuracy)
  tailor_metrics/validation_metrics.csv                the same per evaluation
  epoch_checkpoints/step-N/   supervised runs: the model at the end of each of the last epochs
                              before the final one (at most 3), each a trained folder of its own:
                              model/, manifest.json (the run's, naming the same base), checkpoint.json
```

The original service's metrics files keep exactly its columns (a contract); what Tailor measures
beyond them is in the companion files of ``tailor_metrics/`` (supervised runs: mean token
accuracy), one row per row of the original with the same step, and ``read_metrics`` returns each
row with its companion's values merged in. A job copies only the original's folders to its output
location, so that output stays as the original service lays it out.

An epoch checkpoint is loaded exactly as the final model is (``read``, ``services.inference.
target_for_artifacts``, ``catalog.resolve_model``: its folder is a trained folder); ``checkpoints``
lists them with their step, epoch, time and the metrics at their step.

The recipes write it (``tailor.train``); serving and evaluation (``services.inference``), the job
events and the job runner's clean-up read it through this module, so the layout and what the
manifest means are stated once. It sits low in the layers (it imports only the catalog and errors)
because serving and the services read trained folders as much as training writes them.

A run writes into a scratch folder beside OUT (``.OUT.partial-PID``) and renames it into place only
when it is whole (``building``): a failed or interrupted run leaves nothing at OUT, and a reader
that finds ``manifest.json`` finds a complete folder. While a run trains, its metrics are read from
the scratch folder (``read_metrics``), which is why the CSVs are flushed row by row.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from tailor.errors import InvalidInput

MODEL_DIR = Path("model")
MANIFEST = Path("manifest.json")
TRAINING_METRICS = Path("training_artifacts/step_wise_training_metrics.csv")
VALIDATION_METRICS = Path("validation_artifacts/post_fine_tuning_validation/validation_metrics.csv")
# Tailor-only companions of the two metrics files; outside the original's folders, which a job
# copies to the caller's output location as the original service lays them out.
TRAINING_EXTRA_METRICS = Path("tailor_metrics/step_wise_training_metrics.csv")
VALIDATION_EXTRA_METRICS = Path("tailor_metrics/validation_metrics.csv")
EPOCH_CHECKPOINTS = Path("epoch_checkpoints")
CHECKPOINT_INFO = Path("checkpoint.json")
LOSS_PLOT = Path("training_artifacts/loss.png")
REWARD_PLOT = Path("training_artifacts/rewards.png")
PARTIAL = ".partial-"  # in a scratch folder's name: .{output name}.partial-{pid}
MANIFEST_VERSION = 1


def is_trained(folder: Path) -> bool:
    """Whether ``folder`` is a published trained folder (only a whole run has a manifest)."""
    return (Path(folder).expanduser() / MANIFEST).is_file()


# ---------------------------------------------------------------------------------------------
# Writing: the scratch folder, the manifest, the atomic publish


@contextmanager
def building(out_dir: Path, *, resume: bool = False, keep_on: tuple[type[BaseException], ...] = ()) -> Iterator[Path]:
    """A scratch folder to write a run's output into, renamed to ``out_dir`` when the block ends.

    If the block raises (bad data found late, a stop request, a crash), the scratch is removed
    and ``out_dir`` is left as it was: absent or empty. A process that dies (OOM, kill -9) leaves
    its scratch behind, and so does an exception in ``keep_on`` (a pause); ``resume`` takes that
    one over, with whatever it holds (its checkpoints).
    """
    out_dir = Path(out_dir).resolve()
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InvalidInput(f"Output folder {out_dir} already exists and is not empty.")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = out_dir.parent / f".{out_dir.name}{PARTIAL}{os.getpid()}"
    left = in_progress(out_dir) if resume else None
    if resume and left is None:
        raise InvalidInput(f"Nothing to resume for {out_dir}: no interrupted run left its scratch folder "
                           f"(.{out_dir.name}{PARTIAL}*) beside it.")
    if left is not None and left != scratch:
        shutil.rmtree(scratch, ignore_errors=True)
        os.rename(left, scratch)
    elif left is None:
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
    try:
        yield scratch
        if out_dir.exists():
            out_dir.rmdir()  # empty: checked above
        os.rename(scratch, out_dir)
    except keep_on:
        raise
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def in_progress(out_dir: Path) -> Path | None:
    """The newest scratch folder ``building`` made for ``out_dir``; None when there is none."""
    out_dir = Path(out_dir)
    partial = sorted(out_dir.parent.glob(f".{out_dir.name}{PARTIAL}*"), key=lambda path: path.stat().st_mtime)
    return partial[-1] if partial else None


def manifest(*, customization_type: str, model_ref, tuning_method: str, data: dict, notes: tuple[str, ...],
             hyperparameters: dict, learning_rate: float, seed: int, started_at: datetime, started: float,
             result: dict, timings: dict | None = None) -> dict:
    """The manifest.json of a run: the base model (a ``catalog.ResolvedModel``, and the alias it
    came through), the data files, the effective hyperparameters, library versions, the recipe's
    ``result`` and the timings. ``started`` is the run's ``time.perf_counter()`` at its start."""
    return {
        "tailor_manifest_version": MANIFEST_VERSION,
        "customization_type": str(customization_type),
        "base_model": {
            "model_id": model_ref.model_id,
            "family": model_ref.family.name,
            # Readers find the base again by its weights, not by an alias that may change later.
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
            "finished": datetime.now(UTC).isoformat(),
            **(timings or {}),
            "total_seconds": round(time.perf_counter() - started, 2),
        },
    }


def write_manifest(folder: Path, content: dict) -> None:
    (folder / MANIFEST).write_text(json.dumps(content, indent=2, sort_keys=False) + "\n")


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for name in ("tailor", "torch", "transformers", "peft", "tokenizers", "safetensors"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


# ---------------------------------------------------------------------------------------------
# Reading a published folder back


@dataclass(frozen=True)
class TrainedModel:
    """What a trained folder holds, as its manifest says."""

    folder: Path
    model_dir: Path  # absolute: full weights, or the LoRA adapter
    customization_type: str | None
    tuning_method: str  # full | lora
    base_model_id: str  # the id the run was started with (an alias stays as given)
    family: str | None  # the catalog family whose rules the run followed
    base_weights_kind: str  # builtin | local | hub
    base_weights_location: str
    manifest: dict = field(repr=False)

    @property
    def is_adapter(self) -> bool:
        return self.tuning_method == "lora"


def read(folder: Path) -> TrainedModel:
    """Read a trained folder's manifest; ``InvalidInput`` names the folder when it cannot."""
    folder = Path(folder).expanduser()
    path = folder / MANIFEST
    try:
        content = json.loads(path.read_text())
        base = content["base_model"]
        weights = base["weights"]
        return TrainedModel(
            folder=folder, model_dir=(folder / content.get("model_path", str(MODEL_DIR))).resolve(),
            customization_type=content.get("customization_type"), tuning_method=content["tuning_method"],
            base_model_id=base.get("model_id"), family=base.get("family"),
            base_weights_kind=weights["kind"], base_weights_location=weights["location"], manifest=content,
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InvalidInput(f"{path} is not a readable Tailor training manifest ({error}).") from None


@dataclass(frozen=True)
class RunMetrics:
    """The rows of a run's two metrics files (as written: column name -> text) and when each file
    was last written (0 when it does not exist yet)."""

    training: list[dict] = field(default_factory=list)
    validation: list[dict] = field(default_factory=list)
    training_written: float = 0.0
    validation_written: float = 0.0


def read_metrics(out_dir: Path) -> RunMetrics:
    """The metrics of the run publishing to ``out_dir``: from the published folder, or while it
    trains from its scratch folder; empty before either exists."""
    out_dir = Path(out_dir)
    folder = out_dir if out_dir.is_dir() else in_progress(out_dir)
    if folder is None:
        return RunMetrics()
    training, training_written = _csv_rows(folder / TRAINING_METRICS)
    validation, validation_written = _csv_rows(folder / VALIDATION_METRICS)
    training = _merged(training, _csv_rows(folder / TRAINING_EXTRA_METRICS)[0])
    validation = _merged(validation, _csv_rows(folder / VALIDATION_EXTRA_METRICS)[0])
    if folder != out_dir and not folder.exists() and out_dir.is_dir():
        return read_metrics(out_dir)  # published while we read: the files moved with it
    return RunMetrics(training, validation, training_written, validation_written)


def _csv_rows(path: Path) -> tuple[list[dict], float]:
    try:
        with open(path, newline="") as file:
            rows = list(csv.DictReader(file))
        return rows, path.stat().st_mtime
    except FileNotFoundError:  # not written yet, or the scratch was just renamed into place
        return [], 0.0


def _merged(rows: list[dict], extra: list[dict]) -> list[dict]:
    """Each row with the values of its companion row (the same step: the first column of both),
    when that row was written; a companion's empty values are left out."""
    if not rows or not extra:
        return rows
    step = next(iter(rows[0]))
    by_step = {row.get(step): row for row in extra}
    merged = []
    for row in rows:
        values = by_step.get(row.get(step), {})
        merged.append({**row, **{name: value for name, value in values.items() if name not in row and value != ""}})
    return merged


# ---------------------------------------------------------------------------------------------
# Epoch checkpoints: the model at the end of earlier epochs, each a trained folder of its own


@dataclass(frozen=True)
class Checkpoint:
    """One kept epoch checkpoint of a trained folder.

    ``step`` is the ``step_number`` of the epoch's last row in the metrics files (steps count from
    0, so the model had taken ``step + 1`` optimizer steps); ``path`` is a trained folder (load it
    as the final model is loaded); ``created_at`` is when it was saved, Unix seconds; ``metrics``
    has OpenAI's names: ``train_loss``, ``train_mean_token_accuracy`` and, for a run with held-out
    data, ``valid_loss``, ``valid_mean_token_accuracy``, ``full_valid_loss``,
    ``full_valid_mean_token_accuracy`` (Tailor always evaluates on the whole validation set, so
    the ``full_`` values equal the others)."""

    step: int
    epoch: int
    path: Path
    created_at: int
    metrics: dict = field(default_factory=dict)


def checkpoint_folder(folder: Path, step: int) -> Path:
    return Path(folder) / EPOCH_CHECKPOINTS / f"step-{step}"


def write_checkpoint_info(checkpoint: Path, *, step: int, epoch: int, metrics: dict,
                          created_at: int | None = None) -> None:
    """Record what an epoch checkpoint is (its manifest is written when the run is published)."""
    info = {"step": step, "epoch": epoch, "created_at": int(time.time()) if created_at is None else created_at,
            "metrics": metrics}
    (Path(checkpoint) / CHECKPOINT_INFO).write_text(json.dumps(info, indent=2) + "\n")


def write_checkpoint_manifests(folder: Path, run_manifest: dict) -> None:
    """Give every epoch checkpoint of ``folder`` the run's manifest — the same base, data and
    hyperparameters, so it loads as the final model does — with its own ``result`` and a
    ``checkpoint`` entry saying which epoch it is."""
    for path in _checkpoint_paths(folder):
        info = json.loads((path / CHECKPOINT_INFO).read_text())
        metrics = info["metrics"]
        content = {**run_manifest, "checkpoint": {**info, "run": "../.."}, "result": {
            "epochs_run": info["epoch"], "steps": info["step"] + 1,
            "final_training_loss": metrics.get("train_loss"),
            **({"validation_loss": metrics["valid_loss"]} if "valid_loss" in metrics else {}),
        }}
        write_manifest(path, content)


def checkpoints(folder: Path) -> list[Checkpoint]:
    """The epoch checkpoints a published trained folder keeps, oldest first ([] for a run that
    kept none: one epoch, reinforcement fine-tuning, or a run from before they were kept)."""
    found = []
    for path in _checkpoint_paths(folder):
        if not (path / MANIFEST).is_file():
            continue  # not published (an unfinished run's scratch)
        info = json.loads((path / CHECKPOINT_INFO).read_text())
        found.append(Checkpoint(step=info["step"], epoch=info["epoch"], path=path.resolve(),
                                created_at=info["created_at"], metrics=info["metrics"]))
    return sorted(found, key=lambda checkpoint: checkpoint.step)


def _checkpoint_paths(folder: Path) -> list[Path]:
    """The whole epoch checkpoints in ``folder`` (a temporary one's name starts with a dot)."""
    root = Path(folder).expanduser() / EPOCH_CHECKPOINTS
    return [path for path in root.glob("step-*") if (path / CHECKPOINT_INFO).is_file()]
