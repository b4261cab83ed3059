"""What the bedrock-runtime unit tests share: botocore's own runtime model, and its validator."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from botocore.loaders import Loader
from botocore.model import ServiceModel
from botocore.validate import ParamValidator


@pytest.fixture(scope="session")
def runtime_model() -> ServiceModel:
    return ServiceModel(Loader().load_service_model("bedrock-runtime", "service-2"), "bedrock-runtime")


@pytest.fixture(scope="session")
def shape_errors(runtime_model: ServiceModel) -> Callable[[str, dict], str]:
    """botocore's own validator on a value as a runtime shape: required members, types, ranges,
    unknown keys; "" when the value keeps the contract."""
    def errors(shape_name: str, value: dict) -> str:
        return ParamValidator().validate(value, runtime_model.shape_for(shape_name)).generate_report()
    return errors
