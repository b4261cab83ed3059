"""s3:// over the wire: large transfers and the service's errors, against a real S3-protocol server.

The server is moto's standalone S3 server in a process of its own (``s3``, tests/backing/s3.py), so
what ``tracemalloc`` sees here is the client's memory alone. The figures these tests hold Tailor to:
a 50 MB training file goes up in 8 MiB parts (a multipart upload whose ETag says how many), and comes
back, line by line or into the download cache, with a peak of a few MiB of Python memory.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import tracemalloc
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr

from tailor import storage
from tailor.errors import AccessDenied, InvalidInput, NotFound
from tailor.settings import Settings

MIB = 1024 * 1024


@pytest.fixture
def settings(s3, tmp_path, monkeypatch) -> Settings:
    """Tailor pointed at the session's S3 server, with its keys, and nothing of the machine's AWS setup."""
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    return Settings(home=tmp_path / "home", s3_endpoint_url=s3.endpoint, s3_region=s3.region,
                    s3_access_key_id=s3.access_key_id, s3_secret_access_key=s3.secret_access_key)


@pytest.fixture
def bucket(s3) -> str:
    name = f"big-{uuid.uuid4().hex[:12]}"
    s3.client().create_bucket(Bucket=name)
    return name


def training_file(path: Path, megabytes: int) -> Path:
    """A JSON Lines training file of about ``megabytes`` MB, ~1 kB a record, every record different."""
    filler = "x" * 900
    with path.open("w", encoding="utf-8") as file:
        for i in range(megabytes * 1000):
            file.write(json.dumps({"messages": [{"role": "user", "content": f"q{i} {filler}"},
                                                {"role": "assistant", "content": f"a{i}"}]}) + "\n")
    return path


def multipart_etag(path: Path, part_bytes: int) -> str:
    """The ETag S3 gives an object uploaded in parts of ``part_bytes``: the MD5 of the parts' MD5s,
    then '-' and the number of parts."""
    digests = []
    with path.open("rb") as file:
        while part := file.read(part_bytes):
            digests.append(hashlib.md5(part).digest())
    return f'"{hashlib.md5(b"".join(digests)).hexdigest()}-{len(digests)}"'


def peak_while(work) -> tuple[object, int]:
    """What ``work()`` returns, and the peak of Python memory allocated while it ran (bytes)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = work()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_large_training_file_goes_up_in_parts_and_comes_back_as_a_stream(s3, settings, bucket, tmp_path):
    source = training_file(tmp_path / "train.jsonl", 50)
    size = source.stat().st_size
    uri = f"s3://{bucket}/data/train.jsonl"
    client = s3.client()

    # Up: over the 8 MiB threshold, so in 8 MiB parts; the ETag proves the parts S3 assembled. (A small
    # upload first, so that the peak measured is the transfer's, not the client's and its imports.)
    storage.upload_file(training_file(tmp_path / "small.jsonl", 1), f"s3://{bucket}/data/small.jsonl", settings)
    _, upload_peak = peak_while(lambda: storage.upload_file(source, uri, settings))
    head = client.head_object(Bucket=bucket, Key="data/train.jsonl")
    assert head["ContentLength"] == size
    assert head["ETag"] == multipart_etag(source, 8 * MIB) and head["ETag"].endswith('-6"')

    # Down, one pass off the response stream: every line, in order, in bounded memory.
    digest = hashlib.sha256()

    def read_lines() -> int:
        count = 0
        for line in storage.iter_lines(uri, settings):
            digest.update(line)
            count += 1
        return count

    lines, stream_peak = peak_while(read_lines)
    assert lines == 50_000
    assert digest.hexdigest() == storage.sha256_of(source)

    # Down into the download cache (what training reads): the same bytes, in bounded memory too.
    path, download_peak = peak_while(lambda: storage.local_path(uri, settings))
    assert storage.sha256_of(path) == storage.sha256_of(source)

    print(f"\n{size / 1e6:.1f} MB: peak Python memory upload {upload_peak / MIB:.1f} MiB, "
          f"line stream {stream_peak / MIB:.1f} MiB, download {download_peak / MIB:.1f} MiB")
    for peak in (stream_peak, download_peak):
        assert peak < 8 * MIB, peak  # under a sixth of the file: a chunk and a line, not the file
    assert upload_peak < 16 * MIB, upload_peak  # parts are read from the file as they are sent

    # Closing the stream early stops reading: the first line only, the rest never fetched.
    lines = storage.iter_lines(uri, settings)
    assert json.loads(next(lines))["messages"][0]["content"].startswith("q0 ")
    lines.close()


def test_the_part_size_and_threshold_are_settings(s3, settings, bucket, tmp_path):
    source = tmp_path / "twelve.bin"
    source.write_bytes(bytes(range(256)) * (12 * MIB // 256))
    client = s3.client()

    small_parts = settings.model_copy(update={"s3_multipart_chunk_bytes": 5 * MIB,
                                              "s3_multipart_threshold_bytes": 5 * MIB})
    storage.upload_file(source, f"s3://{bucket}/five", small_parts)
    assert client.head_object(Bucket=bucket, Key="five")["ETag"] == multipart_etag(source, 5 * MIB)  # -3

    one_put = settings.model_copy(update={"s3_multipart_threshold_bytes": 16 * MIB})
    storage.upload_file(source, f"s3://{bucket}/whole", one_put)
    whole_md5 = hashlib.md5(source.read_bytes()).hexdigest()
    assert client.head_object(Bucket=bucket, Key="whole")["ETag"] == f'"{whole_md5}"'  # one PUT

    for key in ("five", "whole"):
        assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == source.read_bytes()

    with pytest.raises(ValueError, match="s3_multipart_chunk_bytes"):
        Settings(s3_multipart_chunk_bytes=MIB)  # under S3's 5 MiB minimum part


def test_a_bucket_created_outside_us_east_1_is_created_in_that_region(s3, settings):
    # S3 refuses a CreateBucket outside us-east-1 that does not name its region
    # (IllegalLocationConstraintException); Tailor names the region it signs with.
    storage.ensure_bucket("eu-data", settings.model_copy(update={"s3_region": "eu-west-1"}))
    assert s3.client().get_bucket_location(Bucket="eu-data")["LocationConstraint"] == "eu-west-1"
    storage.ensure_bucket("eu-data", settings.model_copy(update={"s3_region": "eu-west-1"}))  # exists: fine


def test_listing_pages_through_more_than_a_thousand_keys_under_a_prefix(s3, settings, bucket):
    keys = [f"logs/2026/{i:05d}.json" for i in range(1005)]  # S3 answers at most 1,000 keys a page
    put_many(s3, bucket, [*keys, "logs/other.json", "elsewhere.json"])

    listed = storage.list_objects(f"s3://{bucket}/logs/2026/", settings)
    assert listed == [(key, len(key)) for key in keys]  # both pages, and only what is under the prefix


def put_many(s3, bucket: str, keys: list[str]) -> None:
    """Objects whose content is their key, put by plain unsigned HTTP on four kept-alive connections:
    a thousand keys in half the time boto3 takes (the server accepts any caller until
    ``check_signatures``)."""
    endpoint = urlsplit(s3.endpoint)

    def put(share: list[str]) -> None:
        connection = http.client.HTTPConnection(endpoint.hostname, endpoint.port, timeout=30)
        try:
            for key in share:
                connection.request("PUT", f"/{bucket}/{key}", body=key.encode())
                response = connection.getresponse()
                response.read()
                assert response.status == 200, (key, response.status)
        finally:
            connection.close()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(put, [keys[i::4] for i in range(4)]))


def test_every_service_error_is_tailors_own_naming_the_uri(s3, settings, bucket, tmp_path):
    where = re.escape(f"(S3 endpoint {s3.endpoint})")
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * (9 * MIB))

    missing_key = f"s3://{bucket}/nope.jsonl"
    with pytest.raises(NotFound, match=f"^No object at {missing_key} {where}\\.$"):
        next(storage.iter_lines(missing_key, settings))

    missing_bucket = "s3://no-such-bucket-x/train.jsonl"
    with pytest.raises(NotFound, match="^No bucket 'no-such-bucket-x' for s3://no-such-bucket-x/train.jsonl"):
        next(storage.iter_lines(missing_bucket, settings))
    with pytest.raises(NotFound, match="^No bucket 'no-such-bucket-x'"):
        storage.upload_file(big, missing_bucket, settings)  # multipart: the CreateMultipartUpload fails
    with pytest.raises(NotFound, match="^No bucket 'no-such-bucket-x'"):
        storage.list_objects("s3://no-such-bucket-x/", settings)

    # Credentials the service knows, limited by policy to one bucket: the others are AccessDenied.
    import boto3

    iam = boto3.client(  # moto's server answers IAM too: a user, its key, its policy
        "iam", endpoint_url=s3.endpoint, region_name=s3.region, aws_access_key_id=s3.access_key_id,
        aws_secret_access_key=s3.secret_access_key)
    other = f"other-{uuid.uuid4().hex[:8]}"
    s3.client().create_bucket(Bucket=other)
    iam.create_user(UserName="tailor")
    iam.put_user_policy(UserName="tailor", PolicyName="one-bucket", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*",
                                                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}))
    key = iam.create_access_key(UserName="tailor")["AccessKey"]
    limited = settings.model_copy(update={"s3_access_key_id": key["AccessKeyId"], "s3_max_attempts": 1,
                                          "s3_secret_access_key": SecretStr(key["SecretAccessKey"])})
    s3.check_signatures()
    storage.upload_file(big, f"s3://{bucket}/mine.bin", limited)  # its own bucket: allowed, in parts
    assert storage.size(f"s3://{bucket}/mine.bin", limited) == 9 * MIB
    denied = f"^Access denied to s3://{other}/x.bin {where}: AccessDenied"
    with pytest.raises(AccessDenied, match=denied):
        storage.upload_file(big, f"s3://{other}/x.bin", limited)
    with pytest.raises(AccessDenied, match=denied):
        next(storage.iter_lines(f"s3://{other}/x.bin", limited))

    # A dead endpoint: said at once, naming it and the URI.
    dead = settings.model_copy(update={"s3_endpoint_url": "http://127.0.0.1:9", "s3_max_attempts": 1,
                                       "s3_connect_timeout_seconds": 1})
    with pytest.raises(InvalidInput, match=r"^Cannot reach the S3 endpoint http://127\.0\.0\.1:9 for s3://b/k\.jsonl"):
        next(storage.iter_lines("s3://b/k.jsonl", dead))
    with pytest.raises(InvalidInput, match=r"^Cannot reach the S3 endpoint http://127\.0\.0\.1:9 for s3://b/big"):
        storage.upload_file(big, "s3://b/big", dead)
