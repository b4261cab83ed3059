"""ARNs and resource ids in the original service's formats.

Users of the original service parse, log and paste these, and botocore's model constrains them
with patterns; the formats (tests/test_arns.py checks each against botocore's patterns) are:

    arn:aws:bedrock:{region}:{account}:model-customization-job/{baseModelId}/{id}
    arn:aws:bedrock:{region}:{account}:custom-model/{baseModelId}/{id}   (or custom-model/imported/{id})
    arn:aws:bedrock:{region}::foundation-model/{modelId}                  (no account)
    arn:aws:bedrock:{region}:{account}:provisioned-model/{id}
    arn:aws:bedrock:{region}:{account}:custom-model-deployment/{id}
    arn:aws:bedrock:{region}:{account}:evaluation-job/{id}
    arn:aws:bedrock:{region}:{account}:model-import-job/{id}
    arn:aws:bedrock:{region}:{account}:imported-model/{id}

where ``{id}`` is 12 lowercase letters and digits. The builders refuse parts that would make an
ARN the model's patterns reject, so a malformed ARN never reaches a client.
"""

from __future__ import annotations

import re
import secrets
import string
from typing import Literal, NamedTuple

from tailor.errors import InvalidInput

PARTITION = "aws"
SERVICE = "bedrock"
RESOURCE_ID_LENGTH = 12
_ID_ALPHABET = string.ascii_lowercase + string.digits

# A model id that every model pattern embedding one accepts (job, custom-model and foundation-model
# ARNs): "provider.name" plus up to two ":version" parts, lowercase. The job ARN's pattern needs at
# least two characters after the dot; the custom-model pattern allows only one dot.
_MODEL_ID = re.compile(r"[a-z0-9-]{1,63}\.[a-z0-9-]{2,63}(:[a-z0-9-]{1,63}){0,2}")
_REGION = re.compile(r"[a-z0-9-]{1,20}")
_ACCOUNT = re.compile(r"[0-9]{12}")
_RESOURCE_ID = re.compile(r"[a-z0-9]{12}")
_ARN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):(?P<service>[a-z0-9-]+):(?P<region>[a-z0-9-]*):(?P<account>[0-9]{12})?:"
    r"(?P<resource_type>[a-zA-Z0-9-]+)/(?P<resource>\S+)"
)


class Arn(NamedTuple):
    """An ARN's parts; ``resource`` is everything after ``{resource_type}/``."""

    partition: str
    service: str
    region: str
    account: str
    resource_type: str
    resource: str

    def __str__(self) -> str:
        return (f"arn:{self.partition}:{self.service}:{self.region}:{self.account}:"
                f"{self.resource_type}/{self.resource}")

    @property
    def resource_id(self) -> str:
        """The last ``/`` segment: the 12-character id of a job or model."""
        return self.resource.rsplit("/", 1)[-1]


def new_resource_id() -> str:
    """A fresh 12-character ``[a-z0-9]`` id, as the original service gives jobs and models."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(RESOURCE_ID_LENGTH))


def job_arn(region: str, account: str, base_model_id: str, job_id: str) -> str:
    """ARN of a model customization job on ``base_model_id``."""
    _require(_MODEL_ID, base_model_id, "base model id")
    return _build(region, account, "model-customization-job", f"{base_model_id}/{_id(job_id)}")


def custom_model_arn(region: str, account: str, base_model_id: str, model_id: str) -> str:
    """ARN of a custom model trained from ``base_model_id`` (``"imported"`` for registered artifacts)."""
    if base_model_id != "imported":
        _require(_MODEL_ID, base_model_id, "base model id")
    return _build(region, account, "custom-model", f"{base_model_id}/{_id(model_id)}")


def foundation_model_arn(region: str, model_id: str) -> str:
    """ARN of a foundation model; it names no account."""
    _require(_MODEL_ID, model_id, "foundation model id")
    _require(_REGION, region, "region")
    return f"arn:{PARTITION}:{SERVICE}:{region}::foundation-model/{model_id}"


def provisioned_model_arn(region: str, account: str, resource_id: str) -> str:
    """ARN of a provisioned throughput."""
    return _build(region, account, "provisioned-model", _id(resource_id))


def custom_model_deployment_arn(region: str, account: str, resource_id: str) -> str:
    """ARN of an on-demand custom model deployment."""
    return _build(region, account, "custom-model-deployment", _id(resource_id))


def evaluation_job_arn(region: str, account: str, resource_id: str) -> str:
    """ARN of a model evaluation job."""
    return _build(region, account, "evaluation-job", _id(resource_id))


def model_import_job_arn(region: str, account: str, resource_id: str) -> str:
    """ARN of a model import job."""
    return _build(region, account, "model-import-job", _id(resource_id))


def model_invocation_job_arn(region: str, account: str, resource_id: str) -> str:
    """ARN of a batch inference job (a model invocation job, or an OpenAI batch)."""
    return _build(region, account, "model-invocation-job", _id(resource_id))


def model_export_job_arn(region: str, account: str, resource_id: str) -> str:
    """ARN of a model export (Tailor's own resource: Bedrock has no export)."""
    return _build(region, account, "model-export-job", _id(resource_id))


def imported_model_arn(region: str, account: str, resource_id: str) -> str:
    """ARN of an imported model."""
    return _build(region, account, "imported-model", _id(resource_id))


def parse_arn(arn: str) -> Arn:
    """The parts of ``arn``; ``InvalidInput`` unless it reads ``arn:PARTITION:SERVICE:REGION:ACCOUNT:TYPE/RESOURCE``.

    The account is empty for foundation models, the region for global services such as IAM.
    """
    match = _ARN.fullmatch(arn) if isinstance(arn, str) else None
    if match is None:
        raise InvalidInput(f"{arn!r} is not a valid ARN "
                           "(expected arn:aws:SERVICE:REGION:ACCOUNT:RESOURCE-TYPE/RESOURCE).")
    parts = match.groupdict()
    return Arn(**{**parts, "account": parts["account"] or ""})


def identifier_kind(identifier: str) -> Literal["arn", "name"]:
    """Whether a path identifier that accepts either form is an ARN or a name."""
    return "arn" if identifier.startswith("arn:") else "name"


def _build(region: str, account: str, resource_type: str, resource: str) -> str:
    _require(_REGION, region, "region")
    _require(_ACCOUNT, account, "account id")
    return f"arn:{PARTITION}:{SERVICE}:{region}:{account}:{resource_type}/{resource}"


def _id(resource_id: str) -> str:
    return _require(_RESOURCE_ID, resource_id, "resource id")


def _require(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidInput(f"{what} {value!r} cannot appear in a Bedrock ARN: it must match {pattern.pattern}.")
    return value
