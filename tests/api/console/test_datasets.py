"""The Datasets page's routes against a real server: upload, list, validate; each principal
reaches only its own buckets; state-changing calls need the CSRF token."""

from __future__ import annotations

from tests.api.conftest import HAIKU
from tests.services.test_datasets import good, planted

URI = "s3://alice-sets/planted.jsonl"


def upload(client, uri: str, text: str, **headers):
    return client.post("/console/api/datasets/upload", data={"uri": uri},
                       files={"file": ("data.jsonl", text.encode(), "application/jsonl")},
                       headers={"X-CSRF-Token": client.csrf, **headers})


def test_upload_list_and_validate_every_problem_by_line_and_field(alice):
    answer = upload(alice, URI, planted())
    assert answer.status_code == 200, answer.text
    assert answer.json()["uri"] == URI and answer.json()["size"] == len(planted().encode())

    [bucket] = alice.get("/console/api/datasets").json()["buckets"]
    assert bucket["bucket"] == "alice-sets" and [o["key"] for o in bucket["objects"]] == ["planted.jsonl"]
    page = alice.get("/console/datasets")
    assert page.status_code == 200 and "planted.jsonl" in page.text and HAIKU in page.text

    checked = alice.post_json("/console/api/datasets/validate", {"uri": URI, "kind": "FINE_TUNING",
                                                                  "base_model": "tailor.tiny"})
    assert checked.status_code == 200, checked.text
    [report] = checked.json()["reports"]
    assert checked.json()["ok"] is False and report["record_count"] == 12
    assert [(p["line"], p["field"]) for p in report["problems"]] == [(4, "messages[0].role"),
                                                                     (7, "messages[1].content"), (10, None)]
    assert all(p["file"] == URI for p in report["problems"]) and "3 problems in 12 records" in report["summary"]


def test_another_principal_cannot_list_validate_preview_or_write_the_bucket(alice, bob):
    assert upload(alice, "s3://alice-sets/good.jsonl", "\n".join(good(i) for i in range(8))).status_code == 200
    assert bob.get("/console/api/datasets").json()["buckets"] == []
    assert "alice-sets" not in bob.get("/console/datasets").text
    for route in ("validate", "preview"):
        answer = bob.post_json(f"/console/api/datasets/{route}", {"uri": "s3://alice-sets/good.jsonl",
                                                                 "kind": "FINE_TUNING", "base_model": HAIKU})
        assert answer.status_code == 403, answer.text
        assert "not yours" in answer.json()["error"]["message"]
    assert upload(bob, "s3://alice-sets/evil.jsonl", good(0)).status_code == 403
    assert [o["key"] for o in alice.get("/console/api/datasets").json()["buckets"][0]["objects"]] == [
        "good.jsonl", "planted.jsonl"]


def test_uploads_need_the_csrf_token_and_an_s3_jsonl_uri(alice):
    refused = alice.post("/console/api/datasets/upload", data={"uri": "s3://alice-sets/x.jsonl"},
                         files={"file": ("x.jsonl", b"{}\n")})
    assert refused.status_code == 403
    wrong = upload(alice, "/etc/x.jsonl", good(0))
    assert wrong.status_code == 400 and wrong.json()["error"]["field"] == "uri"
    # Without a script, the form posts its token as a field and comes back to the page.
    plain = alice.post("/console/api/datasets/upload", data={"uri": "s3://alice-sets/form.jsonl",
                                                            "csrf_token": alice.csrf},
                       files={"file": ("x.jsonl", good(1).encode())})
    assert plain.status_code == 303 and plain.headers["location"].startswith("/console/datasets?uploaded=")
