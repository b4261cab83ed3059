"""The Files and Uploads APIs through the official openai client against a real server: each
principal sees only its own files; fine-tuning files are checked line by line on arrival."""

from __future__ import annotations

import json

import openai
import pytest

LINES = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
         for i in range(20)]


def jsonl(lines=LINES) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def test_create_retrieve_list_content_delete(server):
    client = server.openai()
    created = client.files.create(file=("train.jsonl", jsonl()), purpose="fine-tune")
    assert created.id.startswith("file-") and created.bytes == len(jsonl())
    assert created.filename == "train.jsonl" and created.purpose == "fine-tune" and created.status == "processed"
    assert client.files.retrieve(created.id) == created
    assert client.files.content(created.id).content == jsonl()

    other = client.files.create(file=("notes.txt", b"hello"), purpose="user_data")
    assert [f.id for f in client.files.list()] == [other.id, created.id]  # newest first
    assert [f.id for f in client.files.list(order="asc")] == [created.id, other.id]
    assert [f.id for f in client.files.list(purpose="fine-tune")] == [created.id]
    first = client.files.list(limit=1)
    assert [f.id for f in first.data] == [other.id] and first.has_more
    assert [f.id for page in first.iter_pages() for f in page.data] == [other.id, created.id]
    assert [f.id for f in client.files.list(limit=1)] == [other.id, created.id]  # the SDK follows the cursor

    deleted = client.files.delete(created.id)
    assert deleted.deleted and deleted.id == created.id
    with pytest.raises(openai.NotFoundError) as missing:
        client.files.retrieve(created.id)
    assert missing.value.body["param"] == "file_id" and created.id in missing.value.body["message"]
    assert not (server.home / "files" / created.id).exists()


def test_another_principals_files_are_not_there(server):
    mine = server.openai("alice").files.create(file=("t.jsonl", jsonl()), purpose="fine-tune")
    bob = server.openai("bob")
    assert [f.id for f in bob.files.list()] == []
    for call in (bob.files.retrieve, bob.files.content, bob.files.delete):
        with pytest.raises(openai.NotFoundError):
            call(mine.id)
    assert server.openai("alice").files.retrieve(mine.id).id == mine.id


def test_a_broken_fine_tuning_file_is_refused_by_line_and_nothing_is_kept(server):
    client = server.openai()
    body = jsonl(LINES[:3]) + b'{"messages": [}\n' + b"[1, 2]\n"
    with pytest.raises(openai.BadRequestError) as refused:
        client.files.create(file=("train.jsonl", body), purpose="fine-tune")
    message = refused.value.body["message"]
    assert "line 4: not valid JSON" in message and "line 5: a JSON object is expected" in message
    assert refused.value.body["param"] == "file"
    with pytest.raises(openai.BadRequestError, match="named \\*.jsonl"):
        client.files.create(file=("train.csv", jsonl()), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError, match="purpose: must be one of"):
        client.files.create(file=("train.jsonl", jsonl()), purpose="everything")  # type: ignore[arg-type]
    assert list(client.files.list()) == [] and not any((server.home / "files").glob("*"))


def test_a_file_over_the_limit_is_refused_before_it_is_read(home, monkeypatch):
    from tests.api.conftest import ALIASES, running_server

    monkeypatch.setenv("TAILOR_MAX_FILE_BYTES", "2048")
    with running_server(home, ALIASES) as server:
        client = server.openai()
        with pytest.raises(openai.APIStatusError) as refused:  # at the edge: the body is over limit + framing
            client.files.create(file=("big.jsonl", b'{"a": 1}\n' * 10_000), purpose="fine-tune")
        assert refused.value.status_code == 413 and "larger than this server accepts" in refused.value.message
        with pytest.raises(openai.BadRequestError) as refused:  # while it is copied: the file itself is
            client.files.create(file=("big.jsonl", b'{"a": 1}\n' * 1000), purpose="fine-tune")
        assert "file: larger than this server accepts (2,048 bytes)" in refused.value.message
        assert not any((home / "files").glob("*"))


def test_uploads_in_parts_make_one_file(server):
    client = server.openai()
    data = jsonl(LINES * 50)
    upload = client.uploads.create(bytes=len(data), filename="big.jsonl", mime_type="application/jsonl",
                                   purpose="fine-tune")
    assert upload.status == "pending" and upload.file is None
    third = len(data) // 3
    parts = [client.uploads.parts.create(upload.id, data=chunk)
             for chunk in (data[:third], data[third:2 * third], data[2 * third:])]
    assert all(part.upload_id == upload.id and part.object == "upload.part" for part in parts)
    import hashlib
    done = client.uploads.complete(upload.id, part_ids=[part.id for part in parts],
                                   md5=hashlib.md5(data).hexdigest())
    assert done.status == "completed" and done.file.bytes == len(data) and done.file.filename == "big.jsonl"
    assert client.files.content(done.file.id).content == data
    assert not (server.home / "uploads" / upload.id).exists()
    with pytest.raises(openai.BadRequestError, match="completed"):
        client.uploads.cancel(upload.id)


def test_the_sdks_chunked_upload_helper(server, tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(jsonl(LINES * 30))
    file = server.openai().uploads.upload_file_chunked(file=path, mime_type="application/jsonl",
                                                       purpose="fine-tune", part_size=4096)
    assert file.status == "completed" and file.file.bytes == path.stat().st_size


def test_upload_mistakes_are_refused(server):
    client = server.openai()
    upload = client.uploads.create(bytes=10, filename="x.jsonl", mime_type="application/jsonl", purpose="fine-tune")
    part = client.uploads.parts.create(upload.id, data=b'{"a": 1}\n')
    with pytest.raises(openai.BadRequestError, match="the parts hold 9 bytes; the upload was created for 10"):
        client.uploads.complete(upload.id, part_ids=[part.id])
    with pytest.raises(openai.BadRequestError, match="not parts of upload"):
        client.uploads.complete(upload.id, part_ids=["part_nope"])
    with pytest.raises(openai.NotFoundError):
        server.openai("bob").uploads.cancel(upload.id)
    assert client.uploads.cancel(upload.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError, match="cancelled"):
        client.uploads.parts.create(upload.id, data=b"x")
    with pytest.raises(openai.BadRequestError, match="mime_type"):
        client.uploads.create(bytes=10, filename="x.jsonl", mime_type="text/csv", purpose="fine-tune")
    with pytest.raises(openai.BadRequestError, match="bytes: must be between"):
        client.uploads.create(bytes=0, filename="x.jsonl", mime_type="application/jsonl", purpose="fine-tune")


def test_an_abandoned_upload_expires_and_its_parts_are_removed(server):
    import sqlite3
    from datetime import timedelta

    client = server.openai()
    upload = client.uploads.create(bytes=20, filename="x.jsonl", mime_type="application/jsonl", purpose="fine-tune")
    client.uploads.parts.create(upload.id, data=b'{"a": 1}\n')
    assert any((server.home / "uploads" / upload.id).iterdir())
    with sqlite3.connect(server.home / "tailor.db") as connection:  # an hour passes
        (expires,) = connection.execute("SELECT expires_at FROM uploads WHERE id = ?", (upload.id,)).fetchone()
        from datetime import datetime
        earlier = (datetime.fromisoformat(str(expires)) - timedelta(hours=2)).isoformat(sep=" ")
        connection.execute("UPDATE uploads SET expires_at = ? WHERE id = ?", (earlier, upload.id))
    client.uploads.create(bytes=5, filename="y.jsonl", mime_type="application/jsonl", purpose="fine-tune")
    assert not (server.home / "uploads" / upload.id).exists()
    with pytest.raises(openai.BadRequestError, match="expired"):
        client.uploads.complete(upload.id, part_ids=[])


def test_a_chunked_file_body_is_refused_before_it_is_buffered(server):
    import http.client
    from urllib.parse import urlsplit

    access_key_id, secret = server.keys["alice"]
    address = urlsplit(server.endpoint)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    connection.putrequest("POST", "/v1/files")
    connection.putheader("Authorization", f"Bearer {access_key_id}.{secret}")
    connection.putheader("Content-Type", "multipart/form-data; boundary=x")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    connection.send(b"5\r\nhello\r\n0\r\n\r\n")
    answer = connection.getresponse()
    body = json.loads(answer.read())
    assert answer.status == 411 and "Content-Length" in body["error"]["message"]
    assert not any((server.home / "files").glob("*"))
