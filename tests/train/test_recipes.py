"""The one recipe table: every type it trains is one the API's enum names, and every type the API
names is either trained or refused by name."""

from __future__ import annotations

import botocore.session
import pytest

from tailor.catalog import CustomizationType
from tailor.train.recipes import RECIPES, TRAINABLE, recipe


def api_enum(shape: str) -> list[str]:
    return botocore.session.get_session().get_service_model("bedrock").shape_for(shape).enum


def test_the_catalogs_customization_types_are_the_apis_and_tailors_dpo():
    assert [kind.value for kind in CustomizationType] == [*api_enum("CustomizationType"), "DPO"]


def test_every_recipe_trains_a_type_the_api_names_and_has_a_run_function():
    assert TRAINABLE and set(TRAINABLE) <= {*api_enum("CustomizationType"), "DPO"}
    for kind in RECIPES:
        assert callable(recipe(kind))


@pytest.mark.parametrize("kind", sorted(set(CustomizationType) - TRAINABLE - {CustomizationType.DPO}))
def test_a_type_without_a_recipe_is_refused_at_create_time_by_name(kind, tmp_path):
    from tailor.api.bedrock.jobs import customization_request
    from tailor.errors import InvalidInput
    from tailor.services.customization import create_job
    from tailor.settings import Settings
    from tailor.store.db import open_store

    settings = Settings(home=tmp_path)
    request = customization_request({
        "jobName": "j", "customModelName": "m", "roleArn": "arn:aws:iam::000000000000:role/r",
        "baseModelIdentifier": "tailor.tiny", "customizationType": kind.value,
        "trainingDataConfig": {"s3Uri": "s3://data/train.jsonl"}, "outputDataConfig": {"s3Uri": "s3://data/out"}})
    with pytest.raises(InvalidInput) as caught:
        create_job(open_store(settings), settings, "alice", request)
    assert f"customizationType: {kind.value} is not available in Tailor yet" in caught.value.message
    assert all(trained in caught.value.message for trained in TRAINABLE)
