"""Deployment state changes against a real SQLite store: what the serving side is told to load,
how its reports move a deployment, and which reports are ignored as stale."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from tailor.arns import custom_model_arn, foundation_model_arn, new_resource_id
from tailor.errors import Conflict, InvalidInput, NotFound
from tailor.services import deployments as service
from tailor.services import models, tags
from tailor.settings import Settings
from tailor.store.db import Store, utcnow
from tailor.store.deployments import Deployment
from tailor.store.jobs import CustomModel
from tailor.store.tags import Tag

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0:200k"
TINY_ARN = foundation_model_arn("us-east-1", "tailor.tiny")


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path, model_aliases={HAIKU: "tailor.tiny"})


@pytest.fixture
def store(settings) -> Store:
    return Store(f"sqlite:///{settings.home / 'tailor.db'}")


def add_model(store: Store, name: str, base: str = "tailor.tiny", status: str = "Active",
              principal: str = "alice") -> str:
    model_id = new_resource_id()
    arn = custom_model_arn("us-east-1", "000000000000", base, model_id)
    with store.session() as session:
        session.add(CustomModel(id=model_id, arn=arn, name=name, principal=principal, job_id=None,
                                base_model_id=base, base_model_arn=foundation_model_arn("us-east-1", base),
                                customization_type="FINE_TUNING", status=status,
                                artifacts_dir=str(Path(store.engine.url.database).parent / "artifacts" / name),
                                created_at=utcnow()))
    return arn


def provisioned(store, settings, model: str, name: str = "pt", **extra) -> str:
    request = {"provisionedModelName": name, "modelId": model, "modelUnits": 2, **extra}
    return service.create_provisioned_throughput(store, settings, "alice", request)["provisionedModelArn"]


def on_demand(store, settings, model: str, name: str = "od", **extra) -> str:
    request = {"modelDeploymentName": name, "modelArn": model, **extra}
    return service.create_custom_model_deployment(store, settings, "alice", request)["customModelDeploymentArn"]


def row(store: Store, arn: str) -> Deployment:
    with store.session() as session:
        return session.scalar(select(Deployment).where(Deployment.arn == arn))


def test_creating_becomes_in_service_or_failed_once_the_engine_reports(store, settings):
    model = add_model(store, "m1")
    good, bad = provisioned(store, settings, model, "good"), on_demand(store, settings, model, "bad")
    ids = {row(store, good).id: good, row(store, bad).id: bad}
    assert sorted(service.pending_activations(store)) == sorted((i, model) for i in ids)

    assert service.mark_loaded(store, row(store, good).id, model, None)
    assert service.mark_loaded(store, row(store, bad).id, model, "out of memory")
    assert (row(store, good).status, row(store, good).failure_message) == ("InService", None)
    assert (row(store, bad).status, row(store, bad).failure_message) == ("Failed", "out of memory")
    assert service.pending_activations(store) == []
    # A second report for a settled deployment changes nothing.
    assert not service.mark_loaded(store, row(store, bad).id, model, None)
    assert row(store, bad).status == "Failed"


def test_a_provisioned_model_change_completes_or_falls_back_to_the_old_model(store, settings):
    first, second, third = (add_model(store, name) for name in ("first", "second", "third"))
    arn = provisioned(store, settings, first)
    deployment_id = row(store, arn).id
    service.mark_loaded(store, deployment_id, first, None)

    service.update_provisioned_throughput(store, settings, "alice", {"provisionedModelId": arn, "desiredModelId": second})
    assert (row(store, arn).status, row(store, arn).desired_model_arn) == ("Updating", second)
    assert service.pending_activations(store) == [(deployment_id, second)]
    assert service.resolve_deployment(store, "alice", arn).model_arn == first  # the old one serves meanwhile

    service.mark_loaded(store, deployment_id, second, "weights missing")
    failed = row(store, arn)
    assert (failed.status, failed.model_arn, failed.desired_model_arn) == ("InService", first, first)
    assert "Could not load" in failed.failure_message and "weights missing" in failed.failure_message

    service.update_provisioned_throughput(store, settings, "alice", {"provisionedModelId": "pt", "desiredModelId": "third"})
    service.mark_loaded(store, deployment_id, third, None)
    done = row(store, arn)
    assert (done.status, done.model_arn, done.desired_model_arn, done.failure_message) == ("InService", third, third, None)


def test_an_on_demand_update_keeps_the_deployment_active(store, settings):
    first, second = add_model(store, "first"), add_model(store, "second")
    arn = on_demand(store, settings, first)
    deployment_id = row(store, arn).id
    service.mark_loaded(store, deployment_id, first, None)

    update = {"customModelDeploymentIdentifier": arn, "modelArn": second}
    assert service.update_custom_model_deployment(store, "alice", update) == {"customModelDeploymentArn": arn}
    got = service.get_custom_model_deployment(store, "alice", arn)
    assert (got["status"], got["modelArn"]) == ("Active", first)
    assert got["updateDetails"] == {"modelArn": second, "updateStatus": "Updating"}
    assert service.pending_activations(store) == [(deployment_id, second)]

    service.mark_loaded(store, deployment_id, second, "no space left")
    got = service.get_custom_model_deployment(store, "alice", arn)
    assert (got["status"], got["modelArn"], got["updateDetails"]["updateStatus"]) == ("Active", first, "UpdateFailed")
    assert "no space left" in got["failureMessage"]

    service.update_custom_model_deployment(store, "alice", update)  # retrying the failed update loads it again
    assert service.pending_activations(store) == [(deployment_id, second)]
    service.mark_loaded(store, deployment_id, second, None)
    got = service.get_custom_model_deployment(store, "alice", arn)
    assert (got["modelArn"], got["updateDetails"]["updateStatus"], got.get("failureMessage")) == (
        second, "UpdateCompleted", None)


def test_stale_reports_are_ignored(store, settings):
    first, second, third = (add_model(store, name) for name in ("first", "second", "third"))
    arn = provisioned(store, settings, first)
    deployment_id = row(store, arn).id
    assert not service.mark_loaded(store, deployment_id, second, None)  # not the model it waits for
    assert row(store, arn).status == "Creating"
    service.mark_loaded(store, deployment_id, first, None)

    service.update_provisioned_throughput(store, settings, "alice", {"provisionedModelId": arn, "desiredModelId": second})
    with pytest.raises(Conflict, match="Updating"):  # one change at a time
        service.update_provisioned_throughput(store, settings, "alice",
                                              {"provisionedModelId": arn, "desiredModelId": third})
    service.update_provisioned_throughput(store, settings, "alice",  # asking again for it is harmless
                                          {"provisionedModelId": arn, "desiredModelId": second})

    service.delete_provisioned_throughput(store, "alice", arn)
    assert not service.mark_loaded(store, deployment_id, second, None)  # deleted meanwhile
    assert service.pending_activations(store) == []


def test_model_changes_wait_for_a_serving_deployment(store, settings):
    first, second = add_model(store, "first"), add_model(store, "second")
    creating = provisioned(store, settings, first, "creating")
    with pytest.raises(Conflict, match="is Creating; its model can be changed only when it is InService"):
        service.update_provisioned_throughput(store, settings, "alice",
                                              {"provisionedModelId": creating, "desiredModelId": second})
    failed = on_demand(store, settings, first, "failed")
    service.mark_loaded(store, row(store, failed).id, first, "broken")
    with pytest.raises(Conflict, match="is Failed"):
        service.update_custom_model_deployment(store, "alice",
                                               {"customModelDeploymentIdentifier": "failed", "modelArn": second})
    # A rename needs no model and is fine in any state.
    service.update_provisioned_throughput(store, settings, "alice",
                                          {"provisionedModelId": creating, "desiredProvisionedModelName": "renamed"})
    assert row(store, creating).name == "renamed"


def test_a_provisioned_model_changes_only_within_its_base(store, settings):
    tiny, other_tiny = add_model(store, "tiny1"), add_model(store, "tiny2")
    haiku_model = add_model(store, "haiku1", base=HAIKU)
    custom = provisioned(store, settings, tiny, "custom")
    base = provisioned(store, settings, "tailor.tiny", "base")
    for arn in (custom, base):
        service.mark_loaded(store, row(store, arn).id, row(store, arn).desired_model_arn, None)

    assert row(store, base).foundation_model_arn == row(store, base).model_arn == TINY_ARN
    with pytest.raises(InvalidInput, match="serves the base model"):
        service.update_provisioned_throughput(store, settings, "alice", {"provisionedModelId": base, "desiredModelId": tiny})
    with pytest.raises(InvalidInput, match="is based on .*claude-3-haiku"):
        service.update_provisioned_throughput(store, settings, "alice",
                                              {"provisionedModelId": custom, "desiredModelId": haiku_model})
    for allowed in (other_tiny, TINY_ARN):  # another custom model of the same base, or the base itself
        service.update_provisioned_throughput(store, settings, "alice",
                                              {"provisionedModelId": custom, "desiredModelId": allowed})
        assert row(store, custom).desired_model_arn == allowed
        service.mark_loaded(store, row(store, custom).id, allowed, None)


def test_models_are_checked_when_a_deployment_is_created(store, settings):
    add_model(store, "creating", status="Creating")
    add_model(store, "bobs", principal="bob")
    with pytest.raises(InvalidInput, match="custom model creating is Creating; only an Active custom model"):
        provisioned(store, settings, "creating")
    with pytest.raises(NotFound):
        provisioned(store, settings, "bobs")
    with pytest.raises(InvalidInput, match="TAILOR_MODEL_ALIASES"):
        provisioned(store, settings, "meta.llama3-1-8b-instruct-v1:0:128k")
    with pytest.raises(NotFound):
        provisioned(store, settings, "acme.no-such-model-v1")
    haiku = provisioned(store, settings, foundation_model_arn("us-west-2", HAIKU), "haiku")
    assert row(store, haiku).model_arn == foundation_model_arn("us-east-1", HAIKU)


def test_names_tokens_and_tags(store, settings):
    model = add_model(store, "m")
    arn = provisioned(store, settings, model, "same", clientRequestToken="t-1",
                      tags=[{"key": "team", "value": "a"}, {"key": "team", "value": "b"}])
    assert provisioned(store, settings, model, "same", clientRequestToken="t-1") == arn
    with pytest.raises(Conflict, match="provisionedModelName: a Provisioned Throughput named same already exists"):
        provisioned(store, settings, model, "same", clientRequestToken="t-2")
    on_demand(store, settings, model, "same", clientRequestToken="t-1")  # names and tokens are per kind
    assert tags.list_tags(store, "alice", arn) == {"tags": [{"key": "team", "value": "b"}]}

    # Two concurrent first requests: the unique index hands the loser the winner's ARN.
    earlier = row(store, arn)
    late = Deployment(**{column.name: getattr(earlier, column.name) for column in Deployment.__table__.columns})
    late.id, late.name = "zzzzzzzzzzzz", "other"  # the same token, checked before either was stored
    late.arn = arn.replace(earlier.id, late.id)
    assert service._insert(store, late, None) == arn

    service.delete_provisioned_throughput(store, "alice", "same")
    with store.session() as session:
        assert session.scalars(select(Tag).where(Tag.resource_arn == arn)).all() == []


def test_resolve_deployment_and_serving_arns(store, settings):
    model = add_model(store, "m")
    pt = provisioned(store, settings, model, "shared")
    od = on_demand(store, settings, model, "shared")
    assert service.resolve_deployment(store, "alice", od) == service.DeploymentInfo(
        row(store, od).id, od, "on_demand", "Creating", model, 1, None)
    by_name = service.resolve_deployment(store, "alice", "shared")
    assert (by_name.arn, by_name.kind, by_name.model_units) == (pt, "provisioned", 2)
    with pytest.raises(NotFound):
        service.resolve_deployment(store, "bob", pt)

    assert service.serving_arns(store, "alice") == []
    service.mark_loaded(store, row(store, od).id, model, None)
    service.mark_loaded(store, row(store, pt).id, model, "broken")
    assert service.serving_arns(store, "alice") == [od]
    assert service.resolve_deployment(store, "alice", pt).failure_message == "broken"


def test_a_deployed_custom_model_cannot_be_deleted(store, settings):
    first, second = add_model(store, "first"), add_model(store, "second")
    arn = on_demand(store, settings, first)
    service.mark_loaded(store, row(store, arn).id, first, None)
    service.update_custom_model_deployment(store, "alice", {"customModelDeploymentIdentifier": arn, "modelArn": second})
    for model in ("first", "second"):  # serving, and being loaded
        with pytest.raises(Conflict, match=f"Custom model {model} is deployed"):
            models.delete_custom_model(store, "alice", model)
    service.delete_custom_model_deployment(store, "alice", arn)
    models.delete_custom_model(store, "alice", "first")


@pytest.mark.parametrize("start, duration, end", [
    ("2024-01-31T10:00:00", "OneMonth", "2024-02-29T10:00:00"),
    ("2024-08-31T10:00:00", "SixMonths", "2025-02-28T10:00:00"),
    ("2024-12-15T10:00:00", "OneMonth", "2025-01-15T10:00:00"),
])
def test_commitments_end_whole_calendar_months_later(start, duration, end):
    utc = timezone.utc
    assert service.commitment_end(datetime.fromisoformat(start).replace(tzinfo=utc), duration) == \
        datetime.fromisoformat(end).replace(tzinfo=utc)
    assert service.commitment_end(datetime.now(utc), None) is None
