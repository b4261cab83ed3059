"""The Jobs page's service calls: the hyperparameter table a create form shows, its check as one
types (which must create nothing), the pre-flight estimate before submitting, a job's live metric
columns and its files — against a real SQLite store and the built tiny model."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tailor import trained
from tailor.catalog import CustomizationType
from tailor.errors import AccessDenied, InvalidHyperparameters, InvalidInput, NotFound
from tailor.jobs.spec import CustomizationRequest, Fields
from tailor.services import buckets, customization, job_events
from tailor.settings import Settings
from tailor.store.buckets import Bucket
from tailor.store.db import open_store
from tailor.store.jobs import JobEvent

FIELDS = Fields(name="name", model_name="model_name", kind="kind", base_model="base_model",
                training_uri="training_uri", validation_uri="validation_uri", output_uri="output_uri", grader="grader")
PAIRS = [{"prompt": f"What is {n} plus {n}?", "completion": f"{2 * n}."} for n in range(12)]


@pytest.fixture
def state(home):
    # A fixed device budget: on a CPU it is otherwise the RAM available at that moment, which moves.
    settings = Settings(home=home, s3_endpoint_url=None, device_memory_gib=8)
    store = open_store(settings)
    buckets.prepare_upload(store, settings, "alice", "s3://alice-data/train.jsonl")
    (home / "buckets" / "alice-data" / "train.jsonl").write_text(
        "".join(f'{{"prompt": "{p["prompt"]}", "completion": "{p["completion"]}"}}\n' for p in PAIRS))
    buckets.prepare_upload(store, settings, "bob", "s3://bob-data/x.jsonl")
    return store, settings


def request(**changes) -> CustomizationRequest:
    values = dict(fields=FIELDS, name="adds", model_name="adds-model", base_model="tailor.tiny",
                  kind=CustomizationType.FINE_TUNING, training_uri="s3://alice-data/train.jsonl",
                  output_uri="s3://alice-results/adds/", hyperparameters={"epochCount": "2", "batchSize": "4"})
    return CustomizationRequest(**{**values, **changes})


def test_each_method_has_its_own_table_with_ranges_and_defaults(state):
    store, settings = state
    tables = {kind: customization.hyperparameter_table(store, settings, "alice", "tailor.tiny", kind)
              for kind in ("FINE_TUNING", "CONTINUED_PRE_TRAINING", "REINFORCEMENT_FINE_TUNING", "DPO")}
    epochs = tables["FINE_TUNING"]["epochCount"]
    assert (epochs.minimum, epochs.maximum, epochs.default, epochs.kind) == (1, 100, 25, int)
    assert epochs.description
    assert tables["CONTINUED_PRE_TRAINING"].keys() == tables["FINE_TUNING"].keys()
    assert "trainingSamplePerPrompt" in tables["REINFORCEMENT_FINE_TUNING"]
    assert tables["DPO"]["beta"].default == 0.1
    assert tables["FINE_TUNING"]["tuningMethod"].choices == ("full", "lora")
    distillation = customization.hyperparameter_table(store, settings, "alice", "tailor.tiny", "DISTILLATION")
    assert distillation.keys() == tables["FINE_TUNING"].keys()  # the student trains as a fine-tune does
    with pytest.raises(InvalidInput, match="^kind: IMPORTED is not available"):
        customization.hyperparameter_table(store, settings, "alice", "tailor.tiny", "IMPORTED")
    with pytest.raises(NotFound, match="^base_model: "):
        customization.hyperparameter_table(store, settings, "alice", "no.such-model", "FINE_TUNING")


def test_the_check_creates_nothing_and_refuses_what_create_would(state):
    store, settings = state
    customization.check_request(store, settings, "alice", request())
    with store.session() as session:
        assert session.get(Bucket, "alice-results") is None  # create_job would claim it: the check does not
    assert not (settings.home / "buckets" / "alice-results").exists()
    assert not (settings.home / "jobs").exists()

    with pytest.raises(InvalidHyperparameters) as problems:
        customization.check_request(store, settings, "alice", request(hyperparameters={"epochCount": "0",
                                                                                       "batchSize": "x"}))
    assert set(problems.value.problems) == {"epochCount", "batchSize"}
    assert "between 1 and 100" in problems.value.problems["epochCount"]
    with pytest.raises(AccessDenied, match="^output_uri: you may not write to s3://bob-data/"):
        customization.check_request(store, settings, "alice", request(output_uri="s3://bob-data/out/"))
    with pytest.raises(AccessDenied, match="^training_uri: "):
        customization.check_request(store, settings, "alice", request(training_uri="s3://bob-data/x.jsonl"))
    with pytest.raises(InvalidInput, match="^output_uri: "):
        customization.check_request(store, settings, "alice", request(output_uri="/tmp/out"))
    with pytest.raises(InvalidInput, match="^grader: required"):
        customization.check_request(store, settings, "alice", request(kind=CustomizationType.REINFORCEMENT_FINE_TUNING,
                                                                      hyperparameters={}))


def test_the_estimate_before_submitting_is_the_one_the_job_records(state):
    store, settings = state
    estimate = customization.estimate_job(store, settings, "alice", request())
    assert estimate is not None and estimate.plan.fits
    assert not (settings.home / "buckets" / "alice-results").exists()
    arn = customization.create_job(store, settings, "alice", request())
    assert (settings.home / "buckets" / "alice-results").is_dir()  # the real create claims it
    with store.session() as session:
        recorded = session.scalar(select(JobEvent).where(JobEvent.kind == "estimate"))
        assert recorded.data == estimate.data() and recorded.message == estimate.describe()
    assert customization.estimate_job(store, settings, "alice", request(
        kind=CustomizationType.DPO, hyperparameters={})) is None  # DPO has no pre-flight estimate
    assert arn.endswith(customization.get_job(store, "alice", arn).row.id)


def test_live_columns_and_files_of_a_training_job_are_its_owners_only(state):
    store, settings = state
    arn = customization.create_job(store, settings, "alice", request())
    job_id = customization.get_job(store, "alice", arn).row.id
    scratch = settings.home / "jobs" / job_id / f".output{trained.PARTIAL}4242"  # the worker's, while it trains
    (scratch / trained.TRAINING_METRICS).parent.mkdir(parents=True)
    (scratch / trained.TRAINING_METRICS).write_text(
        "step_number,epoch_number,training_loss\n" + "".join(f"{s},{s // 3},{3 - s / 10}\n" for s in range(6)))
    (scratch / trained.VALIDATION_METRICS).parent.mkdir(parents=True)
    (scratch / trained.VALIDATION_METRICS).write_text("step_number,epoch_number,validation_loss\n2,0,2.9\n5,1,2.7\n")

    series = job_events.metric_series(store, "alice", job_id)
    assert series["status"] == "InProgress"
    assert series["training"]["step"] == [0, 1, 2, 3, 4, 5]
    assert series["training"]["train_loss"][:2] == [3.0, 2.9]
    assert series["validation"] == {"step": [2, 5], "epoch": [0, 1], "valid_loss": [2.9, 2.7]}
    newer = job_events.metric_series(store, "alice", job_id, after_step=3, after_validation_step=2)
    assert newer["training"]["step"] == [4, 5] and newer["validation"]["step"] == [5]
    assert job_events.metric_series(store, "alice", job_id, after_step=5, after_validation_step=5)["training"] == {}

    content, media_type = customization.job_artifact(store, "alice", job_id, "training.csv")
    assert content.startswith(b"step_number,") and media_type == "text/csv"
    results, _ = customization.job_artifact(store, "alice", job_id, "results.csv")
    assert results.decode().splitlines()[0].startswith("step,train_loss")
    with pytest.raises(NotFound):
        customization.job_artifact(store, "alice", job_id, "loss.png")  # drawn when the run ends
    with pytest.raises(NotFound):
        customization.job_artifact(store, "alice", job_id, "../../tailor.db")
    with pytest.raises(NotFound):
        customization.job_artifact(store, "bob", job_id, "training.csv")
    with pytest.raises(NotFound):
        job_events.metric_series(store, "bob", job_id)
