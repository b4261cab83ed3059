"""The Models page without a browser: each principal sees and deploys only its own models, every
change needs the CSRF token, deploy fields are checked as the API checks them, and the cost
estimate follows the operator's price (or says there is none).

The custom model here is a database row (no job, no weights): these tests never let a deployment
reach the engine. Deploying a trained model and watching it load is the browser flow's
(tests/console/test_models_playground.py).
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import pytest

from tests.api.conftest import ALIASES, running_server
from tests.conftest import tiny_home
from tests.console.session import signed_in_client

MODEL = "alices-model"


def add_custom_model(home, principal: str, name: str) -> str:
    """An Active custom model row for ``principal`` (as a finished job leaves one); its ARN."""
    from tailor.arns import custom_model_arn, new_resource_id
    from tailor.settings import Settings
    from tailor.store.db import open_store, utcnow
    from tailor.store.jobs import CustomModel

    settings = Settings(home=home)
    model_id = new_resource_id()
    arn = custom_model_arn(settings.region, settings.account_id, "tailor.tiny", model_id)
    with open_store(settings).session() as session:
        session.add(CustomModel(id=model_id, arn=arn, name=name, principal=principal, base_model_id="tailor.tiny",
                                base_model_arn="arn:aws:bedrock:us-east-1::foundation-model/tailor.tiny",
                                customization_type="FINE_TUNING", status="Active",
                                artifacts_dir=str(home / "nowhere" / model_id), created_at=utcnow()))
    return arn


def add_deployment(home, principal: str, name: str, model_arn: str) -> str:
    """An Active on-demand deployment row of ``model_arn`` (as the activation loop leaves one); its ARN."""
    from tailor.arns import custom_model_deployment_arn, new_resource_id
    from tailor.settings import Settings
    from tailor.store.db import open_store, utcnow
    from tailor.store.deployments import Deployment

    settings = Settings(home=home)
    deployment_id, now = new_resource_id(), utcnow()
    arn = custom_model_deployment_arn(settings.region, settings.account_id, deployment_id)
    with open_store(settings).session() as session:
        session.add(Deployment(id=deployment_id, arn=arn, kind="on_demand", name=name, principal=principal,
                               model_arn=model_arn, desired_model_arn=model_arn,
                               foundation_model_arn="arn:aws:bedrock:us-east-1::foundation-model/tailor.tiny",
                               status="Active", created_at=now, last_modified_at=now))
    return arn


@contextmanager
def server_with(tmp_path_factory, tiny_models_dir, name: str, **environment: str):
    home = tiny_home(tmp_path_factory.mktemp(name) / "home", tiny_models_dir)
    saved = {key: os.environ.get(key) for key in environment}
    os.environ.update(environment)  # running_server copies the environment when it starts
    try:
        with running_server(home, ALIASES) as server:
            yield server
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_models_dir):
    with server_with(tmp_path_factory, tiny_models_dir, "console-models") as running:
        running.model_arn = add_custom_model(running.home, "alice", MODEL)
        yield running


@pytest.fixture(scope="module")
def alice(server):
    return signed_in_client(server.endpoint, *server.keys["alice"])


@pytest.fixture(scope="module")
def bob(server):
    return signed_in_client(server.endpoint, *server.keys["bob"])


def test_alice_sees_her_model_and_how_to_deploy_it(alice, server):
    page = alice.get("/console/models")
    assert page.status_code == 200 and f'href="/console/models/{MODEL}"' in page.text
    detail = alice.get(f"/console/models/{MODEL}")
    assert detail.status_code == 200
    for part in (server.model_arn, "tailor.tiny", "FINE_TUNING", 'id="deploy-on-demand"', 'id="deploy-provisioned"',
                 'name="modelUnits"', 'value="OneMonth"', 'value="SixMonths"', "No price configured"):
        assert part in detail.text, part
    assert alice.get("/console/api/models/deployments").json() == {"deployments": []}


def test_bob_can_neither_see_nor_deploy_nor_delete_alices_model(bob, server):
    assert MODEL not in bob.get("/console/models").text
    assert bob.get(f"/console/models/{MODEL}").status_code == 404
    for kind, name_field in (("on_demand", "modelDeploymentName"), ("provisioned", "provisionedModelName")):
        answer = bob.post_json(f"/console/api/models/{MODEL}/deploy",
                               {"kind": kind, name_field: "stolen", "modelUnits": "1"})
        assert answer.status_code == 404, answer.text
        assert "not found" in answer.json()["error"]["message"]
    # By ARN too: another principal's model is as good as missing.
    assert bob.get(f"/console/models/{server.model_arn}").status_code == 404
    assert bob.post(f"/console/models/{MODEL}/delete", data={"csrf_token": bob.csrf}).status_code == 404
    assert bob.get("/console/api/models/deployments").json() == {"deployments": []}


def test_changes_without_the_csrf_token_are_refused(alice):
    body = {"kind": "on_demand", "modelDeploymentName": "no-token"}
    assert alice.post(f"/console/api/models/{MODEL}/deploy", json=body).status_code == 403
    assert alice.post(f"/console/models/{MODEL}/deploy", data=body).status_code == 403
    assert alice.post(f"/console/models/{MODEL}/delete", data={"csrf_token": "0" * 32}).status_code == 403
    assert alice.post("/console/deployments/delete", data={"kind": "on_demand", "arn": "x"}).status_code == 403
    assert alice.get(f"/console/models/{MODEL}").status_code == 200  # nothing was deleted
    assert alice.get("/console/api/models/deployments").json() == {"deployments": []}  # nothing was deployed


@pytest.mark.parametrize(("fields", "field"), [
    ({"kind": "provisioned", "provisionedModelName": "pt", "modelUnits": "0"}, "modelUnits"),
    ({"kind": "provisioned", "provisionedModelName": "two  spaces", "modelUnits": "1"}, "provisionedModelName"),
    ({"kind": "provisioned", "provisionedModelName": "pt", "modelUnits": "1", "commitmentDuration": "OneYear"},
     "commitmentDuration"),
    ({"kind": "on_demand", "modelDeploymentName": ""}, "modelDeploymentName"),
    ({"kind": "spot"}, "kind"),
])
def test_a_bad_deploy_field_is_named(alice, fields, field):
    answer = alice.post_json(f"/console/api/models/{MODEL}/deploy", fields)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["field"] == field


def test_without_a_price_the_estimate_says_so(alice):
    answer = alice.get("/console/api/models/estimate", params={"modelUnits": "3", "commitmentDuration": "SixMonths"})
    assert answer.status_code == 200
    assert answer.json()["estimate"] is None and "No price configured" in answer.json()["text"]
    bad = alice.get("/console/api/models/estimate", params={"modelUnits": "0"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "modelUnits"


def test_with_a_price_the_estimate_follows_units_and_commitment(tmp_path_factory, tiny_models_dir):
    with server_with(tmp_path_factory, tiny_models_dir, "console-priced", TAILOR_MODEL_UNIT_HOURLY_PRICE="1.25",
                     TAILOR_PRICE_CURRENCY="EUR") as priced:
        add_custom_model(priced.home, "alice", MODEL)
        client = signed_in_client(priced.endpoint, *priced.keys["alice"])
        hourly = client.get("/console/api/models/estimate", params={"modelUnits": "2"}).json()
        assert hourly["estimate"] == {"amount": 2.5, "currency": "EUR", "hours": 1, "hourly": 2.5}
        assert hourly["text"] == "Estimated 2.50 EUR per hour."
        monthly = client.get("/console/api/models/estimate",
                             params={"modelUnits": "2", "commitmentDuration": "OneMonth"}).json()
        assert monthly["estimate"]["amount"] == pytest.approx(2 * 1.25 * 730) and monthly["estimate"]["hours"] == 730
        assert "1,825.00 EUR" in monthly["text"] and "730 h" in monthly["text"]
        six = client.get("/console/api/models/estimate",
                         params={"modelUnits": "1", "commitmentDuration": "SixMonths"}).json()
        assert six["estimate"]["amount"] == pytest.approx(1.25 * 4380)
        # The page shows the one-unit hourly estimate before any change.
        assert "Estimated 1.25 EUR per hour." in client.get(f"/console/models/{MODEL}").text


def test_without_javascript_the_forms_deploy_and_delete_too(alice, bob, server):
    refused = alice.post(f"/console/models/{MODEL}/deploy", data={
        "csrf_token": alice.csrf, "kind": "provisioned", "provisionedModelName": "pt", "modelUnits": "0"})
    assert refused.status_code == 400 and "modelUnits: must be at least 1" in refused.text  # the error page

    other = add_custom_model(server.home, "alice", "alices-other")
    deployment = add_deployment(server.home, "alice", "other-live", other)
    listed = alice.get("/console/api/models/deployments").json()["deployments"]
    assert [(d["arn"], d["status"], d["kind"]) for d in listed] == [(deployment, "Active", "on_demand")]
    assert "other-live" in alice.get("/console/models/alices-other").text

    form = {"csrf_token": alice.csrf, "kind": "on_demand", "arn": deployment}
    in_use = alice.post("/console/models/alices-other/delete", data={"csrf_token": alice.csrf})
    assert in_use.status_code in (400, 409) and "is deployed" in in_use.text  # a conflict, as the API says
    assert bob.post("/console/deployments/delete", data={**form, "csrf_token": bob.csrf}).status_code == 404
    deleted = alice.post("/console/deployments/delete", data=form)
    assert deleted.status_code == 303 and deleted.headers["location"] == "/console/models#deployments"
    assert alice.get("/console/api/models/deployments").json() == {"deployments": []}
    gone = alice.post("/console/models/alices-other/delete", data={"csrf_token": alice.csrf})
    assert gone.status_code == 303 and gone.headers["location"] == "/console/models"
    assert alice.get("/console/models/alices-other").status_code == 404
