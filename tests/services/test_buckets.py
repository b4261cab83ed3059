"""Bucket ownership on local buckets, against a real SQLite store and real folders."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tailor.errors import AccessDenied, Conflict, InvalidInput, NotFound
from tailor.services import buckets
from tailor.settings import Settings
from tailor.store.db import open_store


@pytest.fixture
def state(tmp_path):
    settings = Settings(home=tmp_path / "home", s3_endpoint_url=None)
    return open_store(settings), settings


def test_owners_read_and_write_grants_add_exactly_what_they_say(state):
    store, settings = state
    assert buckets.create_bucket(store, settings, "team-a", "alice") is True
    assert buckets.create_bucket(store, settings, "team-a", "alice") is False  # already hers: no error
    assert (settings.home / "buckets" / "team-a").is_dir()
    with pytest.raises(Conflict, match="belongs to alice"):
        buckets.create_bucket(store, settings, "team-a", "bob")

    buckets.authorize(store, "alice", "s3://team-a/x.jsonl", "write", "f")
    with pytest.raises(AccessDenied, match="^f: you may not read s3://team-a/x.jsonl"):
        buckets.authorize(store, "bob", "s3://team-a/x.jsonl", "read", "f")

    buckets.grant(store, "team-a", "bob", "read")
    buckets.authorize(store, "bob", "s3://team-a/x.jsonl", "read", "f")
    with pytest.raises(AccessDenied, match="^f: you may not write to"):
        buckets.authorize(store, "bob", "s3://team-a/x.jsonl", "write", "f")
    buckets.grant(store, "team-a", "bob", "write")  # a grant is replaced, not added twice
    buckets.authorize(store, "bob", "s3://team-a/out/", "write", "f")
    assert buckets.list_buckets(store) == [{"name": "team-a", "owner": "alice",
                                            "grants": [{"principal": "bob", "access": "write"}]}]
    buckets.revoke(store, "team-a", "bob")
    with pytest.raises(AccessDenied):
        buckets.authorize(store, "bob", "s3://team-a/x.jsonl", "read", "f")
    with pytest.raises(NotFound):
        buckets.revoke(store, "team-a", "bob")
    with pytest.raises(InvalidInput, match="owns bucket team-a already"):
        buckets.grant(store, "team-a", "alice", "read")
    with pytest.raises(InvalidInput, match="not one of read, write"):
        buckets.grant(store, "team-a", "bob", "admin")


def test_only_s3_uris_with_valid_bucket_names_and_no_dot_segments(state):
    store, settings = state
    buckets.create_bucket(store, settings, "mine", "alice")
    for uri, expected in (("/etc/passwd", "the API reads no server paths"),
                          ("file:///etc/passwd", "the API reads no server paths"),
                          ("s3://mine/../other/x", "path segment"),
                          ("s3://Bad_Name/x", "is not valid"),
                          ("s3:///x", "names no bucket")):
        with pytest.raises(InvalidInput, match=expected):
            buckets.authorize(store, "alice", uri, "read", "field")
    with pytest.raises(InvalidInput, match="is not valid"):
        buckets.create_bucket(store, settings, "a..b", "alice")


def test_a_folder_that_predates_ownership_is_nobodys_until_the_operator_hands_it_over(state):
    store, settings = state
    (settings.home / "buckets" / "legacy").mkdir(parents=True)
    with pytest.raises(AccessDenied):  # not claimable by naming it as an output
        buckets.claim_output(store, settings, "mallory", "s3://legacy/out/", "outputDataConfig.s3Uri")
    buckets.prepare_upload(store, settings, "alice", "s3://legacy/data.jsonl")  # the operator's upload
    buckets.claim_output(store, settings, "alice", "s3://legacy/out/", "outputDataConfig.s3Uri")


def test_concurrent_claims_of_a_new_bucket_leave_exactly_one_owner(state):
    store, settings = state
    principals = [f"p{i}" for i in range(8)]

    def claim(principal: str) -> bool:
        try:
            buckets.claim_output(store, settings, principal, "s3://contested/out/", "out")
            return True
        except AccessDenied:
            return False

    with ThreadPoolExecutor(8) as pool:
        won = [principal for principal, ok in zip(principals, pool.map(claim, principals)) if ok]
    assert len(won) == 1
    assert buckets.list_buckets(store) == [{"name": "contested", "owner": won[0], "grants": []}]
