"""Provisioned throughputs and on-demand custom model deployments through real boto3 clients.

One server per module, with custom models trained once by real jobs; every response is checked
against botocore's output shapes (strict output). What these tests check does not depend on the
serving side: where a test needs a deployment to have loaded its model, ``settle`` reports the load
as the server's activation loop does (a no-op when the loop got there first). The in-between
states (Creating, Updating) and the conflicts they cause are pinned down in
tests/services/test_deployments.py, without a racing loop.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from dataclasses import dataclass

import pytest
from botocore.exceptions import ClientError
from sqlalchemy import select

from tailor.arns import custom_model_arn, foundation_model_arn, new_resource_id
from tailor.services import deployments as service
from tailor.store.db import Store, database_url, utcnow
from tailor.store.jobs import CustomModel
from tests.api.conftest import ALIASES, TITAN, Server, free_port, kill_workers
from tests.conftest import tiny_home

pytestmark = pytest.mark.slow
ROLE = "arn:aws:iam::000000000000:role/TailorCustomization"
TINY_ARN = foundation_model_arn("us-east-1", "tailor.tiny")


@dataclass
class Trained:
    server: Server
    store: Store  # the server's own database, for what only the serving side or a test can do
    tiny: str  # custom models: two on tailor.tiny, one on Titan (an alias of tailor.tiny)
    tiny_again: str
    titan: str


def error_of(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def train(server: Server, name: str, base: str) -> str:
    records = [{"prompt": f"What is {i} plus one?", "completion": f"{i + 1}"} for i in range(8)]
    data = server.put(f"s3://bkt/{name}/train.jsonl", records)
    return server.client().create_model_customization_job(
        jobName=name, customModelName=name, roleArn=ROLE, baseModelIdentifier=base,
        hyperParameters={"epochCount": "1"}, trainingDataConfig={"s3Uri": data},
        outputDataConfig={"s3Uri": f"s3://bkt/{name}/out"})["jobArn"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_models_dir):
    from tailor.services.keys import create_key
    from tailor.settings import Settings

    home = tiny_home(tmp_path_factory.mktemp("deployments") / "home", tiny_models_dir)
    settings = Settings(home=home)
    store = Store(database_url(home, None))
    keys = {name: create_key(store, settings, name) for name in ("alice", "bob")}
    env = {**os.environ, "TAILOR_HOME": str(home), "TAILOR_MODEL_ALIASES": json.dumps(ALIASES),
           "TAILOR_STRICT_OUTPUT": "1", "TAILOR_MAX_CONCURRENT_JOBS": "3"}
    server = Server(home, f"http://127.0.0.1:{free_port()}", keys, env=env)
    server.start()
    try:
        jobs = [train(server, "tiny", "tailor.tiny"), train(server, "tiny-again", "tailor.tiny"),
                train(server, "titan", TITAN)]
        models = []
        for job_arn in jobs:
            job = server.wait_for(job_arn, {"Completed", "Failed"})
            assert job["status"] == "Completed", job.get("failureMessage")
            models.append(job["outputModelArn"])
        yield Trained(server, store, *models)
    finally:
        server.kill()
        kill_workers(home)


def add_model_row(trained: Trained, name: str, status: str, copy_of: str) -> str:
    """A custom model row beside a trained one, with a copy of its weights (jobs only make Active
    models, and a test that deletes a model must not delete one the others use)."""
    with trained.store.session() as session:
        source = session.scalar(select(CustomModel).where(CustomModel.arn == copy_of))
        model_id = new_resource_id()
        artifacts = f"{source.artifacts_dir}-{model_id}"
        shutil.copytree(source.artifacts_dir, artifacts)
        arn = custom_model_arn("us-east-1", "000000000000", source.base_model_id, model_id)
        session.add(CustomModel(id=model_id, arn=arn, name=name, principal="alice", job_id=None,
                                base_model_id=source.base_model_id, base_model_arn=source.base_model_arn,
                                customization_type="FINE_TUNING", status=status, artifacts_dir=artifacts,
                                created_at=utcnow()))
    return arn


def settle(trained: Trained, deployment_arn: str, model_arn: str) -> None:
    """Finish loading ``model_arn`` into the deployment, as the serving side reports a load."""
    deployment_id = service.resolve_deployment(trained.store, "alice", deployment_arn).id
    service.mark_loaded(trained.store, deployment_id, model_arn, None)  # False if the loop already did


# ---------------------------------------------------------------------------------------------
# Provisioned throughput


def test_provisioned_throughput_create_get_list_update_delete(trained):
    bedrock = trained.server.client()
    before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    arn = bedrock.create_provisioned_model_throughput(
        modelUnits=2, provisionedModelName="pt-life", modelId=trained.tiny, commitmentDuration="OneMonth",
        tags=[{"key": "team", "value": "faq"}])["provisionedModelArn"]
    assert arn.startswith("arn:aws:bedrock:us-east-1:000000000000:provisioned-model/")

    got = bedrock.get_provisioned_model_throughput(provisionedModelId=arn)
    assert {k: got[k] for k in ("provisionedModelName", "provisionedModelArn", "modelArn", "desiredModelArn",
                                "foundationModelArn", "modelUnits", "desiredModelUnits",
                                "commitmentDuration")} == {
        "provisionedModelName": "pt-life", "provisionedModelArn": arn, "modelArn": trained.tiny,
        "desiredModelArn": trained.tiny, "foundationModelArn": TINY_ARN, "modelUnits": 2, "desiredModelUnits": 2,
        "commitmentDuration": "OneMonth"}
    assert got["status"] in ("Creating", "InService")  # InService once the model is loaded
    assert before <= got["creationTime"] <= got["lastModifiedTime"]
    assert 28 <= (got["commitmentExpirationTime"] - got["creationTime"]).days <= 31
    assert bedrock.get_provisioned_model_throughput(provisionedModelId="pt-life")["provisionedModelArn"] == arn
    assert bedrock.list_tags_for_resource(resourceARN=arn)["tags"] == [{"key": "team", "value": "faq"}]

    def listed(**filters) -> list[str]:
        summaries = bedrock.list_provisioned_model_throughputs(**filters)["provisionedModelSummaries"]
        return [s["provisionedModelArn"] for s in summaries]

    settle(trained, arn, trained.tiny)
    assert arn in listed(statusEquals="InService", modelArnEquals=trained.tiny, nameContains="life",
                         creationTimeAfter=before, sortBy="CreationTime", sortOrder="Ascending")
    assert arn not in listed(statusEquals="Failed") + listed(modelArnEquals=trained.titan)
    assert arn not in listed(creationTimeBefore=before) + listed(nameContains="nothing-like-it")
    summary = next(s for s in bedrock.list_provisioned_model_throughputs()["provisionedModelSummaries"]
                   if s["provisionedModelArn"] == arn)
    assert summary["commitmentExpirationTime"] == got["commitmentExpirationTime"]

    bedrock.update_provisioned_model_throughput(provisionedModelId=arn, desiredProvisionedModelName="pt-renamed")
    assert bedrock.get_provisioned_model_throughput(provisionedModelId="pt-renamed")["provisionedModelArn"] == arn

    # Another model: asked for (Updating while it loads), then served; only models of the same base.
    code, message = error_of(lambda: bedrock.update_provisioned_model_throughput(
        provisionedModelId=arn, desiredModelId=trained.titan))
    assert code == "ValidationException" and "is based on" in message
    bedrock.update_provisioned_model_throughput(provisionedModelId=arn, desiredModelId="tiny-again")
    got = bedrock.get_provisioned_model_throughput(provisionedModelId=arn)
    assert got["desiredModelArn"] == trained.tiny_again and got["status"] in ("Updating", "InService")
    settle(trained, arn, trained.tiny_again)
    got = bedrock.get_provisioned_model_throughput(provisionedModelId=arn)
    assert (got["status"], got["modelArn"], got["desiredModelArn"]) == ("InService", trained.tiny_again,
                                                                        trained.tiny_again)

    assert bedrock.delete_provisioned_model_throughput(provisionedModelId=arn)["ResponseMetadata"]["HTTPStatusCode"] == 200
    code, _ = error_of(lambda: bedrock.get_provisioned_model_throughput(provisionedModelId=arn))
    assert code == "ResourceNotFoundException"
    code, _ = error_of(lambda: bedrock.list_tags_for_resource(resourceARN=arn))
    assert code == "ResourceNotFoundException"


def test_provisioned_throughput_for_a_foundation_model(trained):
    bedrock = trained.server.client()
    tiny = bedrock.create_provisioned_model_throughput(modelUnits=1, provisionedModelName="pt-base",
                                                       modelId="tailor.tiny")["provisionedModelArn"]
    got = bedrock.get_provisioned_model_throughput(provisionedModelId=tiny)
    assert (got["modelArn"], got["foundationModelArn"]) == (TINY_ARN, TINY_ARN)
    assert "commitmentDuration" not in got and "commitmentExpirationTime" not in got
    titan_arn = foundation_model_arn("us-east-1", TITAN)
    titan = bedrock.create_provisioned_model_throughput(modelUnits=1, provisionedModelName="pt-titan",
                                                        modelId=titan_arn, commitmentDuration="SixMonths")
    got = bedrock.get_provisioned_model_throughput(provisionedModelId=titan["provisionedModelArn"])
    assert got["modelArn"] == titan_arn and 181 <= (got["commitmentExpirationTime"] - got["creationTime"]).days <= 184

    settle(trained, tiny, TINY_ARN)
    code, message = error_of(lambda: bedrock.update_provisioned_model_throughput(
        provisionedModelId=tiny, desiredModelId=trained.tiny))
    assert code == "ValidationException" and "serves the base model" in message
    code, message = error_of(lambda: bedrock.create_provisioned_model_throughput(
        modelUnits=1, provisionedModelName="pt-llama", modelId="meta.llama3-1-8b-instruct-v1:0:128k"))
    assert code == "ValidationException" and "TAILOR_MODEL_ALIASES" in message
    code, _ = error_of(lambda: bedrock.create_provisioned_model_throughput(
        modelUnits=1, provisionedModelName="pt-unknown", modelId="acme.no-such-model-v1"))
    assert code == "ResourceNotFoundException"


# ---------------------------------------------------------------------------------------------
# On-demand custom model deployments


def test_custom_model_deployment_create_get_list_update_delete(trained):
    bedrock = trained.server.client()
    before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    created = bedrock.create_custom_model_deployment(
        modelDeploymentName="od-life", modelArn=trained.tiny, description="FAQ bot",
        tags=[{"key": "stage", "value": "test"}])
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 202
    arn = created["customModelDeploymentArn"]
    assert arn.startswith("arn:aws:bedrock:us-east-1:000000000000:custom-model-deployment/")

    got = bedrock.get_custom_model_deployment(customModelDeploymentIdentifier=arn)
    assert {k: got[k] for k in ("customModelDeploymentArn", "modelDeploymentName", "modelArn", "description")} == {
        "customModelDeploymentArn": arn, "modelDeploymentName": "od-life", "modelArn": trained.tiny,
        "description": "FAQ bot"}
    assert got["status"] in ("Creating", "Active")  # Active once the model is loaded
    assert before <= got["createdAt"] <= got["lastUpdatedAt"] and "updateDetails" not in got
    assert bedrock.get_custom_model_deployment(customModelDeploymentIdentifier="od-life")["customModelDeploymentArn"] == arn
    assert bedrock.list_tags_for_resource(resourceARN=arn)["tags"] == [{"key": "stage", "value": "test"}]

    def listed(**filters) -> list[str]:
        summaries = bedrock.list_custom_model_deployments(**filters)["modelDeploymentSummaries"]
        return [s["customModelDeploymentArn"] for s in summaries]

    settle(trained, arn, trained.tiny)
    assert arn in listed(statusEquals="Active", modelArnEquals=trained.tiny, nameContains="life",
                         createdAfter=before, sortBy="CreationTime", sortOrder="Descending")
    assert arn not in listed(statusEquals="Failed") + listed(modelArnEquals=trained.titan)
    assert arn not in listed(createdBefore=before) + listed(nameContains="nothing-like-it")

    # Another model: the deployment stays Active while updateDetails follows the swap.
    updated = bedrock.update_custom_model_deployment(customModelDeploymentIdentifier="od-life",
                                                     modelArn=trained.tiny_again)
    assert updated["ResponseMetadata"]["HTTPStatusCode"] == 202 and updated["customModelDeploymentArn"] == arn
    got = bedrock.get_custom_model_deployment(customModelDeploymentIdentifier=arn)
    assert got["status"] == "Active" and got["updateDetails"]["modelArn"] == trained.tiny_again
    assert got["updateDetails"]["updateStatus"] in ("Updating", "UpdateCompleted")
    settle(trained, arn, trained.tiny_again)
    got = bedrock.get_custom_model_deployment(customModelDeploymentIdentifier=arn)
    assert (got["status"], got["modelArn"]) == ("Active", trained.tiny_again)
    assert got["updateDetails"] == {"modelArn": trained.tiny_again, "updateStatus": "UpdateCompleted"}

    bedrock.delete_custom_model_deployment(customModelDeploymentIdentifier=arn)
    code, _ = error_of(lambda: bedrock.get_custom_model_deployment(customModelDeploymentIdentifier=arn))
    assert code == "ResourceNotFoundException"
    code, _ = error_of(lambda: bedrock.delete_custom_model_deployment(customModelDeploymentIdentifier=arn))
    assert code == "ResourceNotFoundException"


# ---------------------------------------------------------------------------------------------
# Across both kinds


def test_idempotency_and_name_conflicts(trained):
    bedrock = trained.server.client()
    first = bedrock.create_provisioned_model_throughput(modelUnits=1, provisionedModelName="pt-token",
                                                        modelId=trained.tiny, clientRequestToken="retry-1")
    again = bedrock.create_provisioned_model_throughput(modelUnits=1, provisionedModelName="pt-token",
                                                        modelId=trained.tiny, clientRequestToken="retry-1")
    assert again["provisionedModelArn"] == first["provisionedModelArn"]
    code, message = error_of(lambda: bedrock.create_provisioned_model_throughput(
        modelUnits=1, provisionedModelName="pt-token", modelId=trained.tiny))
    assert code == "ConflictException" and "pt-token" in message

    first = bedrock.create_custom_model_deployment(modelDeploymentName="pt-token", modelArn=trained.tiny,
                                                   clientRequestToken="retry-1")  # names and tokens are per kind
    again = bedrock.create_custom_model_deployment(modelDeploymentName="pt-token", modelArn=trained.tiny,
                                                   clientRequestToken="retry-1")
    assert again["customModelDeploymentArn"] == first["customModelDeploymentArn"]
    code, _ = error_of(lambda: bedrock.create_custom_model_deployment(modelDeploymentName="pt-token",
                                                                      modelArn=trained.tiny))
    assert code == "ConflictException"

    other = bedrock.create_provisioned_model_throughput(modelUnits=1, provisionedModelName="pt-other",
                                                        modelId=trained.tiny)["provisionedModelArn"]
    code, _ = error_of(lambda: bedrock.update_provisioned_model_throughput(
        provisionedModelId=other, desiredProvisionedModelName="pt-token"))
    assert code == "ConflictException"


def test_models_that_cannot_be_deployed(trained):
    bedrock = trained.server.client()
    creating = add_model_row(trained, "still-creating", "Creating", copy_of=trained.tiny)
    code, message = error_of(lambda: bedrock.create_custom_model_deployment(modelDeploymentName="od-creating",
                                                                            modelArn=creating))
    assert code == "ValidationException" and "is Creating" in message
    code, message = error_of(lambda: bedrock.create_provisioned_model_throughput(
        modelUnits=1, provisionedModelName="pt-creating", modelId="still-creating"))
    assert code == "ValidationException" and "is Creating" in message

    missing = trained.tiny.rsplit("/", 1)[0] + "/aaaaaaaaaaaa"
    code, _ = error_of(lambda: bedrock.create_custom_model_deployment(modelDeploymentName="od-missing",
                                                                      modelArn=missing))
    assert code == "ResourceNotFoundException"
    code, _ = error_of(lambda: bedrock.create_provisioned_model_throughput(
        modelUnits=1, provisionedModelName="pt-missing", modelId="no-such-model"))
    assert code == "ResourceNotFoundException"
    code, message = error_of(lambda: bedrock.create_custom_model_deployment(modelDeploymentName="od-base",
                                                                            modelArn=TINY_ARN))
    assert code == "ValidationException" and "modelArn" in message  # on demand serves custom models only


def test_another_principal_sees_nothing(trained):
    alice, bob = trained.server.client(principal="alice"), trained.server.client(principal="bob")
    pt = alice.create_provisioned_model_throughput(modelUnits=1, provisionedModelName="pt-alice",
                                                   modelId=trained.tiny)["provisionedModelArn"]
    od = alice.create_custom_model_deployment(modelDeploymentName="od-alice",
                                              modelArn=trained.tiny)["customModelDeploymentArn"]
    assert bob.list_provisioned_model_throughputs()["provisionedModelSummaries"] == []
    assert bob.list_custom_model_deployments()["modelDeploymentSummaries"] == []
    for call in (lambda: bob.get_provisioned_model_throughput(provisionedModelId=pt),
                 lambda: bob.update_provisioned_model_throughput(provisionedModelId=pt, desiredProvisionedModelName="x"),
                 lambda: bob.delete_provisioned_model_throughput(provisionedModelId="pt-alice"),
                 lambda: bob.get_custom_model_deployment(customModelDeploymentIdentifier=od),
                 lambda: bob.update_custom_model_deployment(customModelDeploymentIdentifier=od, modelArn=trained.tiny),
                 lambda: bob.delete_custom_model_deployment(customModelDeploymentIdentifier="od-alice"),
                 lambda: bob.list_tags_for_resource(resourceARN=od),
                 # ... nor can bob deploy alice's model
                 lambda: bob.create_custom_model_deployment(modelDeploymentName="od-bob", modelArn=trained.tiny),
                 lambda: bob.create_provisioned_model_throughput(modelUnits=1, provisionedModelName="pt-bob",
                                                                 modelId=trained.tiny)):
        assert error_of(call)[0] == "ResourceNotFoundException"
    assert alice.get_provisioned_model_throughput(provisionedModelId=pt)["provisionedModelName"] == "pt-alice"


def test_pages_cover_every_deployment_once_newest_first(trained):
    bedrock = trained.server.client()
    pts = [bedrock.create_provisioned_model_throughput(modelUnits=1, provisionedModelName=f"paged-{i}",
                                                       modelId=trained.tiny)["provisionedModelArn"] for i in range(5)]
    ods = [bedrock.create_custom_model_deployment(modelDeploymentName=f"paged-{i}",
                                                  modelArn=trained.tiny)["customModelDeploymentArn"] for i in range(5)]
    for operation, key, arn_key, arns in (
            (bedrock.list_provisioned_model_throughputs, "provisionedModelSummaries", "provisionedModelArn", pts),
            (bedrock.list_custom_model_deployments, "modelDeploymentSummaries", "customModelDeploymentArn", ods)):
        seen, token = [], None
        while True:
            page = operation(nameContains="paged", maxResults=2, **({"nextToken": token} if token else {}))
            assert len(page[key]) <= 2
            seen += [summary[arn_key] for summary in page[key]]
            token = page.get("nextToken")
            if not token:
                break
        assert seen == arns[::-1]
        oldest = operation(nameContains="paged", sortOrder="Ascending", maxResults=1)[key]
        assert [summary[arn_key] for summary in oldest] == arns[:1]
    paginated = bedrock.get_paginator("list_custom_model_deployments").paginate(
        nameContains="paged", PaginationConfig={"PageSize": 3})
    assert [s["customModelDeploymentArn"] for page in paginated for s in page["modelDeploymentSummaries"]] == ods[::-1]


def test_a_deployed_custom_model_cannot_be_deleted(trained):
    bedrock = trained.server.client()
    model = add_model_row(trained, "deploy-then-delete", "Active", copy_of=trained.tiny)
    pt = bedrock.create_provisioned_model_throughput(modelUnits=1, provisionedModelName="pt-keeps",
                                                     modelId=model)["provisionedModelArn"]
    od = bedrock.create_custom_model_deployment(modelDeploymentName="od-keeps",
                                                modelArn=model)["customModelDeploymentArn"]
    code, message = error_of(lambda: bedrock.delete_custom_model(modelIdentifier=model))
    assert code == "ConflictException" and pt in message and od in message
    bedrock.delete_provisioned_model_throughput(provisionedModelId=pt)
    bedrock.delete_custom_model_deployment(customModelDeploymentIdentifier=od)
    bedrock.delete_custom_model(modelIdentifier=model)
    code, _ = error_of(lambda: bedrock.get_custom_model(modelIdentifier=model))
    assert code == "ResourceNotFoundException"
