"""A customization job's events, live: its status changes and every step's metrics, in the shape of
OpenAI's fine-tuning events (``GET /v1/fine_tuning/jobs/{id}/events``, ``client.fine_tuning.jobs.list_events``).

GetModelCustomizationJob can carry only a training loss and validation losses (botocore's
shape); reinforcement fine-tuning's rewards have no place there. The original service shows them
in its console and, through its OpenAI-compatible API, as ``metrics`` events (SPEC §4) — which is
what this module answers, for every job type, while the job trains and after:

- ``metrics`` events, one per training step: for RFT ``critic_rewards_mean|max|min``,
  ``actor_pg_loss``, ``actor_kl_loss``, ``actor_entropy``, ``actor_grad_norm``,
  ``response_length_mean``, ``grader_error_count``; for SFT and CPT ``train_loss``;
- ``metrics`` events for each evaluation on held-out data: ``val_score_rewards_mean_at_1`` (RFT,
  the greedy held-out reward) or ``valid_loss``;
- ``message`` events: the job was created, and how it ended.

They are read from the step-wise CSV files the training writes (and flushes) as it goes, so they
appear while the job runs. The CSVs record no times: a metrics event's ``created_at`` is when its
file was last written. Newest first, paged with ``after`` (an event id) and ``limit``, as OpenAI's.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from tailor.errors import InvalidInput
from tailor.jobs.store import Job, Store
from tailor.services.customization import find_owned
from tailor.train.common import TRAINING_METRICS, VALIDATION_METRICS, output_in_progress

MAX_LIMIT = 1000
ENDINGS = {"Completed": "The job has successfully completed.", "Stopped": "The job was stopped."}


def list_events(store: Store, principal: str, identifier: str, *, after: str | None = None,
                limit: int = 20) -> dict:
    """One page of the job's events, newest first (OpenAI's list object)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit: must be between 1 and {MAX_LIMIT}; got {limit}.")
    with store.session() as session:
        job = _find(session, principal, identifier)
        events = job_events(job)
    newest_first = events[::-1]
    if after is not None:
        ids = [event["id"] for event in newest_first]
        newest_first = newest_first[ids.index(after) + 1:] if after in ids else []
    page = newest_first[:limit]
    return {"object": "list", "data": page, "has_more": len(newest_first) > limit}


def _find(session, principal: str, identifier: str) -> Job:
    """By ARN, name or the ARN's last part (OpenAI clients put a job's id in the URL path)."""
    if not identifier.startswith("arn:") and (job := session.get(Job, identifier)) is not None:
        if job.principal == principal:
            return job
    return find_owned(session, Job, principal, identifier, "Customization job")


def job_events(job: Job) -> list[dict]:
    """Every event of the job, oldest first."""
    def event(kind: str, index: int, created: float, message: str, data: dict | None = None, level: str = "info"):
        return {"object": "fine_tuning.job.event", "id": f"ftevent-{job.id}-{kind}-{index}", "created_at": int(created),
                "level": level, "message": message, "data": data or {}, "type": "metrics" if data else "message"}

    events = [event("created", 0, job.created_at.timestamp(), f"Created customization job {job.name} "
                    f"({job.customization_type} of {job.base_model_id}).")]
    total = (job.progress or {}).get("totalSteps")
    folder = _metrics_folder(Path(job.work_dir))
    measured = []  # ((step, 0 for training, 1 for held-out: an evaluation follows its step), event)
    files = (("step", TRAINING_METRICS, "training metrics"), ("validation", VALIDATION_METRICS, "held-out metrics"))
    for order, (kind, relative, what) in enumerate(files):
        rows, modified = _rows(folder / relative) if folder else ([], 0.0)
        for index, row in enumerate(rows):
            data = {"step": row.pop("step"), "total_steps": total, **row}
            message = f"Step {data['step']}/{total or '?'}: {what}"
            measured.append(((data["step"], order), event(kind, index, modified, message, data)))
    events += [item for _, item in sorted(measured, key=lambda pair: pair[0])]
    if job.end_time is not None:
        message = ENDINGS.get(job.status) or f"The job failed: {job.failure_message}"
        events.append(event("end", 0, job.end_time.timestamp(), message, level="info" if job.status != "Failed"
                            else "error"))
    return events


def _metrics_folder(work_dir: Path) -> Path | None:
    """The published output, else the folder the running training writes into."""
    output = work_dir / "output"
    return output if output.is_dir() else output_in_progress(output)


def _rows(path: Path) -> tuple[list[dict], float]:
    """The CSV's rows with wire-friendly names and numbers, and when the file was last written."""
    try:
        with open(path, newline="") as file:
            rows = list(csv.DictReader(file))
        modified = path.stat().st_mtime
    except FileNotFoundError:
        return [], 0.0
    return [_renamed(row) for row in rows], modified


# The files' column names (SPEC §4: the original's) as JSON keys: SFT's step_number -> step,
# training_loss -> train_loss, validation_loss -> valid_loss (OpenAI's names); RFT's
# critic/rewards/mean -> critic_rewards_mean, val-score/rewards/mean@1 -> val_score_rewards_mean_at_1.
_RENAMED = {"step_number": "step", "epoch_number": "epoch", "training_loss": "train_loss",
            "validation_loss": "valid_loss"}


def _renamed(row: dict) -> dict:
    out = {}
    for name, value in row.items():
        if value in ("", None):
            continue
        key = _RENAMED.get(name) or re.sub(r"[^a-z0-9]+", "_", name.lower().replace("@", "_at_")).strip("_")
        out[key] = int(value) if key in ("step", "epoch") else float(value)
    return out
