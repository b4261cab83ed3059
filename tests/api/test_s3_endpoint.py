"""``tailor serve`` with its s3:// URIs on a real S3-protocol server (moto's, tests/backing/s3.py).

A fine-tuning job created through boto3 reads its training data from the S3 server and writes its
results there; nothing lands in local bucket folders. The ownership rules are the same as with local
buckets (docs/security.md): a principal reaches only the buckets the operator registered for it,
and a bucket that merely exists on the service is nobody's.
"""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.api.conftest import ALIASES, running_server

ROLE = "arn:aws:iam::000000000000:role/Tailor"
RECORDS = [{"prompt": f"Question {i}?", "completion": f"Answer {i}."} for i in range(8)]


def error_of(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def job_request(name: str, train: str, output: str) -> dict:
    return {"jobName": name, "customModelName": f"{name}-model", "roleArn": ROLE, "baseModelIdentifier": "tailor.tiny",
            "hyperParameters": {"epochCount": "1"}, "trainingDataConfig": {"s3Uri": train},
            "outputDataConfig": {"s3Uri": output}}


def upload(server, s3, source, uri: str, principal: str) -> None:
    """What ``tailor data upload SOURCE URI --principal P`` does on the server's machine (the bucket,
    new to Tailor, is created on the S3 server and registered as P's; the file goes up through
    boto3), in this process: a CLI process would cost seconds to start."""
    from tailor import storage
    from tailor.services.buckets import prepare_upload
    from tailor.settings import Settings
    from tailor.store.db import open_store

    settings = Settings(home=server.home, s3_endpoint_url=s3.endpoint, s3_region=s3.region,
                        s3_access_key_id=s3.access_key_id, s3_secret_access_key=s3.secret_access_key)
    store = open_store(settings)
    try:
        prepare_upload(store, settings, principal, uri)
        storage.upload_file(source, uri, settings)
    finally:
        store.engine.dispose()


def test_a_job_trains_from_and_writes_to_the_s3_server_in_its_owners_buckets_only(home, s3, tmp_path):
    objects = s3.client()
    with running_server(home, ALIASES, env=s3.env) as server:
        alice, bob = server.client(principal="alice"), server.client(principal="bob")

        # The operator uploads each one's data: the bucket is created on the S3 server and becomes theirs.
        data = tmp_path / "train.jsonl"
        data.write_text("".join(json.dumps(record) + "\n" for record in RECORDS))
        for principal in ("alice", "bob"):
            upload(server, s3, data, f"s3://{principal}-data/train.jsonl", principal)
        assert objects.get_object(Bucket="alice-data", Key="train.jsonl")["Body"].read() == data.read_bytes()
        objects.create_bucket(Bucket="stray-bucket")  # on the service, registered for no one

        arn = alice.create_model_customization_job(
            **job_request("over-the-wire", "s3://alice-data/train.jsonl", "s3://alice-data/out/"))["jobArn"]

        # While it trains: bob reaches neither alice's bucket nor one nobody registered, and the
        # error names the field and the URI, the same for both.
        refused = {
            "trainingDataConfig.s3Uri": ("read", "s3://alice-data/train.jsonl",
                                         job_request("steal", "s3://alice-data/train.jsonl", "s3://bob-data/out/")),
            "outputDataConfig.s3Uri": ("write to", "s3://alice-data/out/",
                                       job_request("overwrite", "s3://bob-data/train.jsonl", "s3://alice-data/out/")),
        }
        for field, (verb, uri, request) in refused.items():
            code, message = error_of(lambda: bob.create_model_customization_job(**request))
            assert code == "AccessDeniedException", message
            assert message.startswith(f"{field}: you may not {verb} {uri}: bucket alice-data is not yours"), message
        code, message = error_of(lambda: bob.create_model_customization_job(
            **job_request("stray", "s3://bob-data/train.jsonl", "s3://stray-bucket/out/")))
        assert code == "AccessDeniedException"
        assert message.startswith("outputDataConfig.s3Uri: you may not write to s3://stray-bucket/out/"), message
        assert "Contents" not in objects.list_objects_v2(Bucket="stray-bucket")  # not even a write probe

        # A key missing from the caller's own bucket: refused at once, naming the field and the URI.
        code, message = error_of(lambda: alice.create_model_customization_job(
            **job_request("missing", "s3://alice-data/nothing-here.jsonl", "s3://alice-data/out/")))
        assert code == "ValidationException", message
        assert message.startswith("trainingDataConfig.s3Uri: No object at s3://alice-data/nothing-here.jsonl"), message

        job = server.wait_for(arn, {"Completed", "Failed", "Stopped"}, timeout=180)
        assert job["status"] == "Completed", job
        log = (home / "server.log").read_text()

    prefix = f"out/model-customization-job-{arn.rsplit('/', 1)[-1]}/"
    written = [item["Key"] for item in objects.list_objects_v2(Bucket="alice-data", Prefix=prefix).get("Contents", [])]
    assert f"{prefix}training_artifacts/step_wise_training_metrics.csv" in written, written
    metrics = objects.get_object(Bucket="alice-data", Key=f"{prefix}training_artifacts/step_wise_training_metrics.csv")
    assert metrics["Body"].read().decode().startswith("step")
    assert not (home / "buckets").exists()  # nothing went to local bucket folders
    # The worker read the data over the wire, into the download cache (never a local bucket).
    assert (home / "cache" / "s3" / "alice-data" / "train.jsonl").read_bytes() == data.read_bytes()
    assert "Traceback" not in log
