"""A job's events tell what really happened, when: training started with its step count, the real
end (early stopping at step N of M), each step's metrics at the time the step was reached."""

from __future__ import annotations

import json
import re
import time

from tailor.api.bedrock.jobs import customization_request
from tailor.jobs.customization import run_job
from tailor.jobs.ending import Stop
from tailor.services import buckets, customization
from tailor.services.job_events import list_events
from tailor.settings import Settings
from tailor.store.db import open_store


def test_events_report_early_stopping_at_its_real_step_with_real_times(home):
    settings = Settings(home=home)
    store = open_store(settings)
    buckets.create_bucket(store, settings, "alice-data", owner="alice")
    folder = home / "buckets" / "alice-data"
    pairs = [{"prompt": f"What is code {i}?", "completion": f"Code {i} is {i * 7 % 10}."} for i in range(24)]
    (folder / "train.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs[:16]))
    (folder / "valid.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs[16:]))
    # At 1 % of the learning rate no epoch improves the validation loss by the threshold: the second
    # evaluation is a stall, and patience 1 stops there.
    request = customization_request({
        "jobName": "stops-early", "customModelName": "m", "roleArn": "arn:aws:iam::000000000000:role/r",
        "baseModelIdentifier": "tailor.tiny", "trainingDataConfig": {"s3Uri": "s3://alice-data/train.jsonl"},
        "validationDataConfig": {"validators": [{"s3Uri": "s3://alice-data/valid.jsonl"}]},
        "outputDataConfig": {"s3Uri": "s3://alice-data/out/"},
        "hyperParameters": {"epochCount": "6", "batchSize": "8", "learningRateMultiplier": "0.01",
                            "earlyStoppingThreshold": "0.1",
                            "earlyStoppingPatience": "1"}})
    started = time.time()
    arn = customization.create_job(store, settings, "alice", request)
    job = customization.get_job(store, "alice", arn)
    assert run_job(store, settings, job.row.id, Stop()) == "Completed"
    finished = time.time()

    events = list(reversed(list_events(store, "alice", arn, limit=1000)["data"]))
    messages = [event["message"] for event in events if event["type"] == "message"]
    assert "Training started: 12 steps." in messages  # 16 records in batches of 8, 6 epochs
    ending = next(m for m in messages if m.startswith("Early stopping"))
    epoch, step = map(int, re.match(r"Early stopping after epoch (\d+) at step (\d+) of 12: the validation loss "
                                    r"stopped improving", ending).groups())
    assert epoch < 6 and step == 2 * epoch  # stopped before the last epoch, at its last step
    assert messages[-1] == "The job has successfully completed."
    steps = [event for event in events if event["type"] == "metrics" and "train_loss" in event["data"]]
    assert [event["data"]["step"] for event in steps] == list(range(step))
    times = [event["created_at"] for event in events]
    assert times == sorted(times) and int(started) <= times[0] and times[-1] <= finished + 1
