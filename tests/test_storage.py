"""storage.py: paths, file:// URIs, local buckets, and s3:// on a real S3-compatible server.

The remote tests run against moto's standalone S3 server on 127.0.0.1 (``s3``, tests/backing/s3.py:
one server process for the session, emptied before each test); boto3 reaches it over HTTP exactly
as it would reach MinIO or AWS. Large transfers (multipart, streaming) are in test_storage_s3.py.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tailor import storage
from tailor.errors import AccessDenied, InvalidInput, NotFound
from tailor.settings import Settings

DATASET = "".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                            {"role": "assistant", "content": f"a{i}"}]}) + "\n"
                  for i in range(3))


@pytest.fixture(autouse=True)
def tailor_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("TAILOR_HOME", str(home))
    for name in ("TAILOR_S3_ENDPOINT_URL", "TAILOR_S3_ACCESS_KEY_ID", "TAILOR_S3_SECRET_ACCESS_KEY",
                 "TAILOR_S3_REGION", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    # No ~/.aws files and no instance-metadata lookups: the tests see only what they set.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return home


# ---- paths, file:// and local buckets --------------------------------------------------------

def test_a_plain_path_and_a_file_uri_name_the_same_file(tmp_path):
    path = tmp_path / "a b.jsonl"
    path.write_text("x\n")
    assert storage.local_path(str(path)) == path
    assert storage.local_path(path.as_uri()) == path
    assert storage.read_bytes(path.as_uri()) == b"x\n"
    assert storage.size(str(path)) == 2


def test_s3_without_an_endpoint_is_a_local_bucket(tailor_home, tmp_path):
    source = tmp_path / "train.jsonl"
    source.write_text(DATASET)
    destination = storage.upload_file(source, "s3://my-bucket/data/train.jsonl")
    assert destination == tailor_home / "buckets" / "my-bucket" / "data" / "train.jsonl"
    assert storage.local_path("s3://my-bucket/data/train.jsonl") == destination
    assert storage.read_bytes("s3://my-bucket/data/train.jsonl") == DATASET.encode()
    assert storage.size("s3://my-bucket/data/train.jsonl") == len(DATASET)
    assert not [p for p in destination.parent.iterdir() if p.name.startswith(".")]  # no temporary left


def test_copy_tree_into_a_local_bucket(tailor_home, tmp_path):
    folder = tmp_path / "artifacts"
    (folder / "sub").mkdir(parents=True)
    (folder / "metrics.csv").write_text("step,loss\n")
    (folder / "sub" / "more.csv").write_text("x\n")
    destination = storage.copy_tree(folder, "s3://out/job-1/training_artifacts")
    assert destination == tailor_home / "buckets" / "out" / "job-1" / "training_artifacts"
    assert (destination / "metrics.csv").read_text() == "step,loss\n"
    assert (destination / "sub" / "more.csv").read_text() == "x\n"


def test_missing_local_files_are_not_found_naming_the_uri(tailor_home, tmp_path):
    expected = r"^No file at s3://my-bucket/missing.jsonl\.$"  # the URI, never the server's path
    with pytest.raises(NotFound, match=expected):
        storage.size("s3://my-bucket/missing.jsonl")
    with pytest.raises(NotFound, match=f"^No file at {tmp_path}/missing.jsonl\\.$"):
        storage.read_bytes(str(tmp_path / "missing.jsonl"))


def test_bad_uris_are_invalid_input():
    with pytest.raises(InvalidInput, match="names no bucket"):
        storage.local_path("s3:///key")
    with pytest.raises(InvalidInput, match="Unsupported URI scheme"):
        storage.local_path("gs://bucket/key")
    with pytest.raises(InvalidInput, match=r"'\.\.' path segment"):
        storage.local_path("s3://bucket/../../etc/passwd")


# ---- s3:// on an S3-compatible server ------------------------------------------------------------

@pytest.fixture
def remote(s3, monkeypatch) -> str:
    """Tailor pointed at the session's S3 server (tests/backing/s3.py), with credentials from the
    standard AWS chain (the environment)."""
    monkeypatch.setenv("TAILOR_S3_ENDPOINT_URL", s3.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_access_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", s3.region)
    return s3.endpoint


@pytest.fixture
def client(s3, remote):
    """A plain boto3 client on the same server, to look behind storage's back."""
    return s3.client()


@pytest.fixture
def bucket(client) -> str:
    name = f"bucket-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return name


def test_upload_size_and_download(bucket, client, tailor_home, tmp_path):
    source = tmp_path / "train.jsonl"
    source.write_text(DATASET)
    uri = f"s3://{bucket}/datasets/train.jsonl"
    assert storage.upload_file(source, uri) == uri
    assert not (tailor_home / "buckets").exists()  # went to the server, not to a local bucket
    assert client.get_object(Bucket=bucket, Key="datasets/train.jsonl")["Body"].read() == DATASET.encode()

    assert storage.size(uri) == len(DATASET)
    assert storage.read_bytes(uri) == DATASET.encode()
    path = storage.local_path(uri)
    assert path == tailor_home / "cache" / "s3" / bucket / "datasets" / "train.jsonl"
    assert path.read_text() == DATASET
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary left


def test_the_cache_is_reused_until_the_object_changes(bucket, client):
    uri = f"s3://{bucket}/train.jsonl"
    client.put_object(Bucket=bucket, Key="train.jsonl", Body=b"first\n")
    path = storage.local_path(uri)
    first = path.stat()
    assert path.read_bytes() == b"first\n"

    assert storage.local_path(uri) == path
    second = path.stat()
    assert (second.st_ino, second.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)  # not downloaded again

    client.put_object(Bucket=bucket, Key="train.jsonl", Body=b"second version\n")
    assert storage.local_path(uri).read_bytes() == b"second version\n"

    path.write_bytes(b"tampered\n")  # a copy that no longer matches its record is replaced
    assert storage.local_path(uri).read_bytes() == b"second version\n"


def test_copy_tree_uploads_every_file_under_the_prefix(bucket, client, tmp_path):
    folder = tmp_path / "training_artifacts"
    (folder / "sub").mkdir(parents=True)
    (folder / "step_wise_training_metrics.csv").write_text("step,loss\n1,2.5\n")
    (folder / "sub" / "more.csv").write_text("x\n")
    uri = f"s3://{bucket}/output/model-customization-job-abc/training_artifacts"
    assert storage.copy_tree(folder, uri) == uri
    listed = client.list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(item["Key"] for item in listed) == [
        "output/model-customization-job-abc/training_artifacts/step_wise_training_metrics.csv",
        "output/model-customization-job-abc/training_artifacts/sub/more.csv",
    ]
    assert storage.read_bytes(f"{uri}/step_wise_training_metrics.csv") == b"step,loss\n1,2.5\n"


def test_a_missing_object_is_not_found_naming_the_uri_and_endpoint(bucket, remote):
    uri = f"s3://{bucket}/missing.jsonl"
    expected = f"^No object at {uri} \\(S3 endpoint {remote}\\)\\.$"
    with pytest.raises(NotFound, match=expected):
        storage.local_path(uri)
    with pytest.raises(NotFound, match=expected):
        storage.size(uri)
    with pytest.raises(NotFound, match=expected):
        storage.read_bytes(uri)


def test_a_missing_bucket_is_not_found(remote, tmp_path):
    uri = "s3://no-such-bucket-here/train.jsonl"
    expected = f"^No bucket 'no-such-bucket-here' for {uri} \\(S3 endpoint {remote}\\)\\.$"
    with pytest.raises(NotFound, match=expected):
        storage.local_path(uri)
    with pytest.raises(NotFound, match=expected):
        storage.read_bytes(uri)
    source = tmp_path / "train.jsonl"
    source.write_text(DATASET)
    with pytest.raises(NotFound, match=expected):
        storage.upload_file(source, uri)


def test_an_unreachable_endpoint_is_a_clear_error_quickly(monkeypatch):
    monkeypatch.setenv("TAILOR_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings = Settings(s3_max_attempts=1, s3_connect_timeout_seconds=1)
    started = time.monotonic()
    with pytest.raises(InvalidInput, match=r"^Cannot reach the S3 endpoint http://127\.0\.0\.1:9 for "
                                           r"s3://bucket/train\.jsonl: .*TAILOR_S3_ENDPOINT_URL"):
        storage.local_path("s3://bucket/train.jsonl", settings)
    assert time.monotonic() - started < 5


def test_wrong_credentials_are_access_denied(bucket, monkeypatch, remote, s3):
    # moto accepts any key until told to check signatures; then a key it does not know gets 403, as
    # from any S3 service.
    s3.check_signatures()
    monkeypatch.setenv("TAILOR_S3_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
    monkeypatch.setenv("TAILOR_S3_SECRET_ACCESS_KEY", "wrong")
    settings = Settings(s3_max_attempts=1)
    expected = f"^Access denied to s3://{bucket}/train.jsonl \\(S3 endpoint {remote}\\): .*credentials"
    with pytest.raises(AccessDenied, match=expected):
        storage.size(f"s3://{bucket}/train.jsonl", settings)
    with pytest.raises(AccessDenied, match=expected):
        storage.read_bytes(f"s3://{bucket}/train.jsonl", settings)
    with pytest.raises(AccessDenied, match=expected):
        next(storage.iter_lines(f"s3://{bucket}/train.jsonl", settings))


def test_no_credentials_are_access_denied_saying_what_to_set(remote, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(AccessDenied, match="No credentials to access s3://b/k .*TAILOR_S3_ACCESS_KEY_ID"):
        storage.size("s3://b/k")


def test_tailor_credentials_take_precedence_and_must_come_in_pairs(bucket, client, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("TAILOR_S3_ACCESS_KEY_ID", "tailor")
    client.put_object(Bucket=bucket, Key="k", Body=b"12345")
    with pytest.raises(InvalidInput, match="Set both TAILOR_S3_ACCESS_KEY_ID and TAILOR_S3_SECRET_ACCESS_KEY"):
        storage.size(f"s3://{bucket}/k")
    monkeypatch.setenv("TAILOR_S3_SECRET_ACCESS_KEY", "secret")
    assert storage.size(f"s3://{bucket}/k") == 5


def test_remote_uris_must_name_an_object(remote):
    with pytest.raises(InvalidInput, match="names no object"):
        storage.local_path("s3://bucket/folder/")


def test_validate_reads_a_dataset_from_the_server(bucket, client):
    from tailor.catalog import CustomizationType, resolve_model
    from tailor.data.validate import validate

    records = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
               for i in range(10)]
    client.put_object(Bucket=bucket, Key="train.jsonl", Body="".join(json.dumps(r) + "\n" for r in records).encode())
    settings = Settings()
    model = resolve_model("tailor.tiny", settings)
    report = validate(f"s3://{bucket}/train.jsonl", CustomizationType.FINE_TUNING, model, settings=settings)
    assert report.problems == []
    assert report.ok

    records[3]["messages"][1]["role"] = "user"
    client.put_object(Bucket=bucket, Key="train.jsonl", Body="".join(json.dumps(r) + "\n" for r in records).encode())
    report = validate(f"s3://{bucket}/train.jsonl", CustomizationType.FINE_TUNING, model, settings=settings)
    assert [problem.line for problem in report.problems] == [4]  # the changed object was read again


def test_cli_data_upload_goes_to_the_server_into_the_principals_buckets(bucket, client, tmp_path, remote):
    from tailor.cli import app

    source = tmp_path / "train.jsonl"
    source.write_text(DATASET)
    upload = ["data", "upload", str(source)]
    result = CliRunner().invoke(app, [*upload, f"s3://{bucket}/train.jsonl", "--principal", "alice"])
    assert result.exit_code == 0, result.output
    assert f"(S3 endpoint {remote}) for alice" in result.output
    assert client.get_object(Bucket=bucket, Key="train.jsonl")["Body"].read() == DATASET.encode()

    # A bucket new to the endpoint is created for the principal; nobody else may then write there.
    fresh = f"fresh-{uuid.uuid4().hex[:12]}"
    result = CliRunner().invoke(app, [*upload, f"s3://{fresh}/train.jsonl", "--principal", "bob"])
    assert result.exit_code == 0, result.output
    assert client.get_object(Bucket=fresh, Key="train.jsonl")["Body"].read() == DATASET.encode()
    result = CliRunner().invoke(app, [*upload, f"s3://{fresh}/other.jsonl", "--principal", "alice"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"you may not write to s3://{fresh}/other.jsonl" in result.output
    assert "Contents" not in client.list_objects_v2(Bucket=fresh, Prefix="other")

    result = CliRunner().invoke(app, [*upload, f"s3://{bucket}/x.jsonl"])
    assert result.exit_code == 2 and "--principal" in result.output  # the owner must be named


def test_output_locations_on_the_endpoint_are_registered_by_the_operator_only(bucket, remote, tailor_home):
    from tailor.services.buckets import claim_output, create_bucket
    from tailor.store.db import open_store

    settings = Settings()
    store = open_store(settings)
    # A bucket the server's credentials reach, but that nobody registered: no caller may claim it.
    with pytest.raises(AccessDenied, match="^out: you may not write to s3://"):
        claim_output(store, settings, "alice", f"s3://{bucket}/out/", "out")
    create_bucket(store, settings, bucket, "alice")
    claim_output(store, settings, "alice", f"s3://{bucket}/out/", "out")  # registered: writable, checked
    with pytest.raises(AccessDenied):
        claim_output(store, settings, "bob", f"s3://{bucket}/out/", "out")
    with pytest.raises(InvalidInput, match=r"^out: .* has a '\.' or '\.\.' path segment"):
        claim_output(store, settings, "alice", f"s3://{bucket}/a/../../b/", "out")
