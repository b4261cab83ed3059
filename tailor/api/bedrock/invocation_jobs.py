"""Bedrock's batch inference operations (CreateModelInvocationJob, GetModelInvocationJob,
ListModelInvocationJobs, StopModelInvocationJob): the request and response converters, pure, and
``OPERATIONS`` for ``control.py``. The work is ``tailor.services.batch_inference``'s.

Statuses: a job's lifecycle is Tailor's (``JobLifecycle``); Bedrock's enum says more, and
``bedrock_status`` maps it: a queued job is Submitted, a running one InProgress; a job that ran
out of its ``timeoutDurationInHours`` ends Completed in Tailor with ``progress.expired`` set, which
is PartiallyCompleted when it answered any record and Expired when it answered none. Validating
and Scheduled never appear: create validates before it answers.
"""

from __future__ import annotations

from datetime import timedelta

from tailor.api.bedrock.runtime import DEFAULT_MAX_TOKENS
from tailor.errors import InvalidInput
from tailor.services import batch_inference
from tailor.services.batch_inference import BedrockBatchRequest
from tailor.store.data_in_out import InvocationJob

COUNTS = ("totalRecordCount", "processedRecordCount", "successRecordCount", "errorRecordCount")


def invocation_request(params: dict) -> BedrockBatchRequest:
    """A validated CreateModelInvocationJob request; what Tailor does not do is refused by its field."""
    if params.get("modelInvocationType", "InvokeModel") != "InvokeModel":
        raise InvalidInput("modelInvocationType: Tailor's batch jobs take InvokeModel bodies (modelInvocationType "
                           "InvokeModel); Converse records are not available.", param="modelInvocationType")
    if params.get("vpcConfig"):
        raise InvalidInput("vpcConfig: Tailor reads and writes its buckets itself; there is no VPC to join.",
                           param="vpcConfig")
    source = (params.get("inputDataConfig") or {}).get("s3InputDataConfig")
    if not source:
        raise InvalidInput("inputDataConfig.s3InputDataConfig: required.", param="inputDataConfig")
    destination = (params.get("outputDataConfig") or {}).get("s3OutputDataConfig")
    if not destination:
        raise InvalidInput("outputDataConfig.s3OutputDataConfig: required.", param="outputDataConfig")
    if destination.get("s3EncryptionKeyId"):
        raise InvalidInput("outputDataConfig.s3OutputDataConfig.s3EncryptionKeyId: KMS keys are not available in "
                           "Tailor.", param="outputDataConfig")
    return BedrockBatchRequest(
        name=params["jobName"], role_arn=params["roleArn"], model_id=params["modelId"], input_uri=source["s3Uri"],
        output_uri=destination["s3Uri"], default_max_tokens=DEFAULT_MAX_TOKENS,
        timeout_hours=params.get("timeoutDurationInHours"),
        tags=tuple((tag["key"], tag["value"]) for tag in params.get("tags") or []),
        token=params.get("clientRequestToken"))


def bedrock_status(row: InvocationJob) -> str:
    if row.status == "InProgress":
        return "Submitted" if row.phase in ("queued", "starting") else "InProgress"
    if row.status == "Completed" and (row.progress or {}).get("expired"):
        return "PartiallyCompleted" if (row.progress or {}).get("processedRecordCount") else "Expired"
    return row.status


def invocation_job(row: InvocationJob) -> dict:
    """GetModelInvocationJob's response (and a summary in the list: the same members)."""
    spec, progress = row.spec, row.progress or {}
    return {
        "jobArn": row.arn, "jobName": row.name, "modelId": row.model_id, "clientRequestToken": row.client_request_token,
        "roleArn": row.role_arn, "status": bedrock_status(row), "message": row.failure_message or row.message,
        "submitTime": row.created_at, "lastModifiedTime": row.last_modified_at, "endTime": row.end_time,
        "inputDataConfig": {"s3InputDataConfig": {"s3InputFormat": "JSONL", "s3Uri": spec["input_uri"]}},
        "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": spec["output_uri"]}},
        "timeoutDurationInHours": row.timeout_hours, "modelInvocationType": "InvokeModel",
        "jobExpirationTime": row.created_at + timedelta(hours=row.timeout_hours or 24),
        **{name: progress.get(name, 0) for name in COUNTS},
    }


def invocation_jobs(rows: list[InvocationJob], token: str | None) -> dict:
    """ListModelInvocationJobs' response."""
    return {"invocationJobSummaries": [invocation_job(row) for row in rows], "nextToken": token}


def _stopped(row: InvocationJob) -> dict:
    return {}  # StopModelInvocationJob answers an empty body


OPERATIONS = {
    "CreateModelInvocationJob": lambda c, p: {"jobArn": batch_inference.create_bedrock_job(
        c.store, c.settings, c.principal, invocation_request(p))},
    "GetModelInvocationJob":
        lambda c, p: invocation_job(batch_inference.get_job(c.store, c.principal, p["jobIdentifier"])),
    "ListModelInvocationJobs":
        lambda c, p: invocation_jobs(*batch_inference.list_bedrock_jobs(c.store, c.principal, p)),
    "StopModelInvocationJob":
        lambda c, p: _stopped(batch_inference.stop_job(c.store, c.principal, p["jobIdentifier"])),
}
