"""ARNs in the original formats, proven against the patterns of botocore's bedrock model."""

from __future__ import annotations

import re

import pytest

from tailor import arns
from tailor.api.bedrock.shapes import member_problems
from tailor.catalog import FOUNDATION_MODELS
from tailor.errors import InvalidInput

REGION, ACCOUNT = "us-east-1", "123456789012"
BASE_MODEL_IDS = sorted(FOUNDATION_MODELS)  # every catalog id, tailor.tiny and the original ids


def fits(arn: str, *members: tuple[str, str]) -> None:
    for structure, member in members:
        assert member_problems(structure, member, arn) == [], (structure, member)


def test_new_resource_ids_are_12_lowercase_alphanumerics_and_fresh():
    ids = {arns.new_resource_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"[a-z0-9]{12}", resource_id) for resource_id in ids)


@pytest.mark.parametrize("base_model_id", BASE_MODEL_IDS)
def test_job_arns_fit_every_member_that_holds_one(base_model_id):
    arn = arns.job_arn(REGION, ACCOUNT, base_model_id, arns.new_resource_id())
    assert arn.startswith(f"arn:aws:bedrock:us-east-1:123456789012:model-customization-job/{base_model_id}/")
    fits(arn, ("GetModelCustomizationJobResponse", "jobArn"), ("ModelCustomizationJobSummary", "jobArn"),
         ("CreateModelCustomizationJobResponse", "jobArn"), ("GetCustomModelResponse", "jobArn"),
         ("GetModelCustomizationJobRequest", "jobIdentifier"),
         ("StopModelCustomizationJobRequest", "jobIdentifier"),
         ("TagResourceRequest", "resourceARN"), ("ListTagsForResourceRequest", "resourceARN"))


@pytest.mark.parametrize("base_model_id", BASE_MODEL_IDS)
def test_custom_model_arns_fit_every_member_that_holds_one(base_model_id):
    arn = arns.custom_model_arn(REGION, ACCOUNT, base_model_id, arns.new_resource_id())
    fits(arn, ("GetModelCustomizationJobResponse", "outputModelArn"), ("GetCustomModelResponse", "modelArn"),
         ("CustomModelSummary", "modelArn"), ("ModelCustomizationJobSummary", "customModelArn"),
         ("GetCustomModelRequest", "modelIdentifier"), ("DeleteCustomModelRequest", "modelIdentifier"),
         ("CreateModelCustomizationJobRequest", "baseModelIdentifier"),
         ("CreateProvisionedModelThroughputRequest", "modelId"), ("TagResourceRequest", "resourceARN"))


def test_registered_custom_models_use_the_imported_form():
    arn = arns.custom_model_arn(REGION, ACCOUNT, "imported", "abcdef123456")
    assert arn == "arn:aws:bedrock:us-east-1:123456789012:custom-model/imported/abcdef123456"
    fits(arn, ("GetCustomModelResponse", "modelArn"), ("CreateCustomModelResponse", "modelArn"),
         ("TagResourceRequest", "resourceARN"))


@pytest.mark.parametrize("model_id", BASE_MODEL_IDS)
def test_foundation_model_arns_have_no_account_and_fit(model_id):
    arn = arns.foundation_model_arn(REGION, model_id)
    assert arn == f"arn:aws:bedrock:us-east-1::foundation-model/{model_id}"
    fits(arn, ("GetModelCustomizationJobResponse", "baseModelArn"), ("FoundationModelDetails", "modelArn"),
         ("FoundationModelSummary", "modelArn"), ("GetCustomModelResponse", "baseModelArn"),
         ("GetFoundationModelRequest", "modelIdentifier"),
         ("CreateModelCustomizationJobRequest", "baseModelIdentifier"))


@pytest.mark.parametrize("build, resource_type, members", [
    (arns.provisioned_model_arn, "provisioned-model",
     [("GetProvisionedModelThroughputResponse", "provisionedModelArn"), ("TagResourceRequest", "resourceARN")]),
    (arns.custom_model_deployment_arn, "custom-model-deployment",
     [("GetCustomModelDeploymentResponse", "customModelDeploymentArn"), ("TagResourceRequest", "resourceARN")]),
    (arns.evaluation_job_arn, "evaluation-job",
     [("GetEvaluationJobResponse", "jobArn"), ("TagResourceRequest", "resourceARN")]),
    (arns.model_import_job_arn, "model-import-job", [("GetModelImportJobResponse", "jobArn")]),
    (arns.imported_model_arn, "imported-model", [("GetImportedModelResponse", "modelArn")]),
])
def test_arns_with_only_an_id(build, resource_type, members):
    arn = build(REGION, ACCOUNT, "0a1b2c3d4e5f")
    assert arn == f"arn:aws:bedrock:us-east-1:123456789012:{resource_type}/0a1b2c3d4e5f"
    fits(arn, *members)


@pytest.mark.parametrize("call, named", [
    (lambda: arns.job_arn(REGION, ACCOUNT, "Qwen/Qwen2.5-0.5B", "abcdef123456"), "base model id"),
    (lambda: arns.job_arn(REGION, ACCOUNT, "tailor.tiny", "ABCDEF123456"), "resource id"),
    (lambda: arns.custom_model_arn(REGION, "12345", "tailor.tiny", "abcdef123456"), "account id"),
    (lambda: arns.foundation_model_arn("US East 1", "tailor.tiny"), "region"),
    (lambda: arns.provisioned_model_arn(REGION, ACCOUNT, "short"), "resource id"),
])
def test_builders_refuse_parts_that_would_break_the_patterns(call, named):
    with pytest.raises(InvalidInput, match=named):
        call()


def test_parse_arn_round_trips():
    arn = arns.job_arn(REGION, ACCOUNT, "amazon.titan-text-express-v1:0:8k", "abcdef123456")
    parts = arns.parse_arn(arn)
    assert parts == arns.Arn("aws", "bedrock", REGION, ACCOUNT, "model-customization-job",
                             "amazon.titan-text-express-v1:0:8k/abcdef123456")
    assert parts.resource_id == "abcdef123456"
    assert str(parts) == arn
    foundation = arns.parse_arn(arns.foundation_model_arn(REGION, "tailor.tiny"))
    assert (foundation.account, foundation.resource_type) == ("", "foundation-model")
    assert foundation.resource == "tailor.tiny"
    role = arns.parse_arn("arn:aws:iam::123456789012:role/service-role/Bedrock")
    assert (role.service, role.region, role.resource_type) == ("iam", "", "role")
    assert role.resource == "service-role/Bedrock"


@pytest.mark.parametrize("text", [
    "", "faq-model", "arn:aws:bedrock", "arn:aws:bedrock:us-east-1:123:custom-model/x",
    "arn:aws:bedrock:us-east-1:123456789012:custom-model", "arn:aws:bedrock:us-east-1:123456789012:/x",
])
def test_parse_arn_rejects_malformed_text(text):
    with pytest.raises(InvalidInput, match="not a valid ARN"):
        arns.parse_arn(text)


def test_identifier_kind():
    assert arns.identifier_kind(arns.custom_model_arn(REGION, ACCOUNT, "tailor.tiny", "abcdef123456")) == "arn"
    assert arns.identifier_kind("faq-model") == "name"
