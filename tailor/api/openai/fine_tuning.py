"""OpenAI fine-tuning job objects (``client.fine_tuning.jobs.*``): a pure converter from a stored
customization job to the SDK's ``FineTuningJob`` shape (``types/fine_tuning/fine_tuning_job.py``).

Statuses map onto OpenAI's: queued and validating before training, running, succeeded, failed,
cancelled (Bedrock's Stopping and Stopped), and pausing / paused. Only what Tailor knows is filled
in; the rest of the object (result files, ``ft:`` model names, integrations) comes with the
fine-tuning API itself.
"""

from __future__ import annotations

from tailor.services.customization import JobView

_ENDED = {"Completed": "succeeded", "Failed": "failed", "Stopping": "cancelled", "Stopped": "cancelled",
          "Pausing": "pausing", "Paused": "paused"}


def openai_status(view: JobView) -> str:
    row = view.row
    if row.status in _ENDED:
        return _ENDED[row.status]
    if row.phase == "queued":
        return "queued"
    validating = (row.status_details or {}).get("validationDetails", {}).get("status") == "InProgress"
    return "validating_files" if validating else "running"


def job_object(view: JobView) -> dict:
    row, train = view.row, view.spec.train
    return {
        "object": "fine_tuning.job",
        "id": row.id,
        "model": row.base_model_id,
        "created_at": int(row.created_at.timestamp()),
        "finished_at": int(row.end_time.timestamp()) if row.end_time else None,
        "status": openai_status(view),
        "fine_tuned_model": None,
        "training_file": train.training_uri,
        "validation_file": train.validation_uris[0] if train.validation_uris else None,
        "hyperparameters": dict(train.hyperparameters),
        "error": {"code": "job_failed", "message": row.failure_message, "param": None} if row.failure_message else None,
        "result_files": [],
        "trained_tokens": None,
        "seed": int(train.hyperparameters.get("seed", 0) or 0),
    }
