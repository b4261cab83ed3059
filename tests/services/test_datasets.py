"""Datasets for the console: upload claims a bucket, lists stay in the caller's buckets, validation
names every problem by line and field; ``storage.list_objects`` stays inside the bucket."""

from __future__ import annotations

import json
import os

import pytest

from tailor import storage
from tailor.errors import AccessDenied, InvalidInput, NotFound
from tailor.services import buckets, datasets
from tailor.settings import Settings
from tailor.store.db import open_store


def good(index: int) -> str:
    return json.dumps({"messages": [{"role": "user", "content": f"Question {index}?"},
                                    {"role": "assistant", "content": f"Answer {index}."}]})


def planted() -> str:
    """12 records, 3 planted errors: a bad role on line 4, a missing field on line 7, not JSON on line 10."""
    lines = [good(i) for i in range(12)]
    lines[3] = json.dumps({"messages": [{"role": "robot", "content": "q"}, {"role": "assistant", "content": "a"}]})
    lines[6] = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant"}]})
    lines[9] = "{not json"
    return "\n".join(lines) + "\n"


@pytest.fixture
def state(tmp_path):
    settings = Settings(home=tmp_path / "home", s3_endpoint_url=None)
    return open_store(settings), settings


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "upload.jsonl"
    path.write_text(planted())
    return path


def test_upload_claims_a_new_bucket_lists_and_validates_every_problem(state, source):
    store, settings = state
    answer = datasets.upload(store, settings, "alice", "s3://alice-data/sets/train.jsonl", source)
    assert answer["size"] == source.stat().st_size
    (settings.home / "buckets" / "alice-data" / "notes.txt").write_text("not a dataset")
    listed = datasets.list_datasets(store, settings, "alice")
    assert [(b["bucket"], b["owner"], [o["key"] for o in b["objects"]]) for b in listed] == [
        ("alice-data", True, ["sets/train.jsonl"])]
    assert datasets.list_datasets(store, settings, "bob") == []

    [report] = datasets.validate(store, settings, "alice", "s3://alice-data/sets/train.jsonl", "FINE_TUNING",
                                 "tailor.tiny")
    assert report.record_count == 12
    assert [(p.line, p.field) for p in report.problems] == [(4, "messages[0].role"), (7, "messages[1].content"),
                                                            (10, None)]
    assert all(p.file == "s3://alice-data/sets/train.jsonl" for p in report.problems)


def test_another_principal_can_neither_write_read_nor_list_the_bucket(state, source):
    store, settings = state
    datasets.upload(store, settings, "alice", "s3://alice-data/train.jsonl", source)
    with pytest.raises(AccessDenied):
        datasets.upload(store, settings, "bob", "s3://alice-data/evil.jsonl", source)
    with pytest.raises(AccessDenied):
        datasets.validate(store, settings, "bob", "s3://alice-data/train.jsonl", "FINE_TUNING", "tailor.tiny")
    assert not (settings.home / "buckets" / "alice-data" / "evil.jsonl").exists()
    buckets.grant(store, "alice-data", "bob", "read")  # shared for reading: listed and validated, not written
    assert [b["access"] for b in datasets.list_datasets(store, settings, "bob")] == ["read"]
    datasets.validate(store, settings, "bob", "s3://alice-data/train.jsonl", "FINE_TUNING", "tailor.tiny")
    with pytest.raises(AccessDenied):
        datasets.upload(store, settings, "bob", "s3://alice-data/evil.jsonl", source)


@pytest.mark.parametrize("uri", ["/etc/passwd", "file:///tmp/x.jsonl", "s3://alice-data/", "s3://alice-data/a.txt",
                                 "s3://alice-data/../x.jsonl", "s3://Bad_Name/x.jsonl"])
def test_upload_takes_only_s3_jsonl_uris(state, source, uri):
    store, settings = state
    with pytest.raises(InvalidInput) as raised:
        datasets.upload(store, settings, "alice", uri, source)
    assert raised.value.param == "uri"


def test_validate_names_the_wrong_model_or_type(state, source):
    store, settings = state
    datasets.upload(store, settings, "alice", "s3://alice-data/train.jsonl", source)
    with pytest.raises(NotFound, match="base_model"):
        datasets.validate(store, settings, "alice", "s3://alice-data/train.jsonl", "FINE_TUNING", "no.such-model")
    with pytest.raises(InvalidInput, match="kind") as raised:
        datasets.validate(store, settings, "alice", "s3://alice-data/train.jsonl", "SOMETHING", "tailor.tiny")
    assert raised.value.param == "kind"


def test_first_records_reads_only_the_first_lines(state, source):
    store, settings = state
    datasets.upload(store, settings, "alice", "s3://alice-data/train.jsonl", source)
    entries = datasets.first_records(settings, "s3://alice-data/train.jsonl", 10)
    assert [entry["line"] for entry in entries] == list(range(1, 11))
    assert "error" in entries[9] and entries[0]["record"]["messages"][0]["content"] == "Question 0?"


def test_a_preview_sends_the_engine_at_most_one_prompts_worth_of_records(state, source):
    store, settings = state
    datasets.upload(store, settings, "alice", "s3://alice-data/train.jsonl", source)
    lines = source.read_text().splitlines(keepends=True)
    small = settings.model_copy(update={"max_prompt_characters": len(lines[0]) + len(lines[1]) + 1})
    entries = datasets.first_records(small, "s3://alice-data/train.jsonl", 10)
    assert [("record" in entry) for entry in entries[:3]] == [True, True, False]
    assert all("at most" in entry["error"] for entry in entries[2:9])  # over the budget: not sent


def test_list_objects_of_a_local_bucket_stays_inside_it(state, tmp_path):
    _, settings = state
    root = settings.home / "buckets" / "data"
    (root / "a").mkdir(parents=True)
    (root / "a" / "one.jsonl").write_text("{}\n")
    (root / ".hidden.jsonl").write_text("{}\n")
    outside = tmp_path / "secret.jsonl"
    outside.write_text("secret\n")
    os.symlink(outside, root / "link.jsonl")
    assert storage.list_objects("s3://data/", settings) == [("a/one.jsonl", 3)]
    assert storage.list_objects("s3://data/b", settings) == []
    with pytest.raises(InvalidInput):
        storage.list_objects("s3://data/../", settings)
    with pytest.raises(NotFound):
        storage.list_objects("s3://missing/", settings)


def test_list_objects_on_an_s3_endpoint(tmp_path, monkeypatch):
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.setenv(name, "testing")
        settings = Settings(home=tmp_path / "home", s3_endpoint_url=f"http://{host}:{port}")
        s3 = boto3.client("s3", endpoint_url=settings.s3_endpoint_url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket="remote-data")
        s3.create_bucket(Bucket="other-data")
        for key in ("b.jsonl", "a/x.jsonl"):
            s3.put_object(Bucket="remote-data", Key=key, Body=b"{}\n")
        s3.put_object(Bucket="other-data", Key="c.jsonl", Body=b"{}\n")
        assert storage.list_objects("s3://remote-data/", settings) == [("a/x.jsonl", 3), ("b.jsonl", 3)]
        assert storage.list_objects("s3://remote-data/a/", settings) == [("a/x.jsonl", 3)]
    finally:
        server.stop()
