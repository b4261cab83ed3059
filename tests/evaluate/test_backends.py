"""Remote models are the operator's: a job opens them by name, with the configured address and key,
and never opens an address a spec names (only the CLI does)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tailor.evaluate.backends import Failure, Generation, Opener
from tailor.settings import Settings


@pytest.fixture
def chat_server():
    """An OpenAI-compatible endpoint on 127.0.0.1 that answers 'ok' and records what it was sent;
    yields its URL, the requests, and ``busy``: ``busy[0]`` of the next requests are answered 503
    "overloaded" instead."""
    seen: list[dict] = []
    busy = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"path": self.path, "authorization": self.headers.get("Authorization"), "body": body})
            answer = json.dumps({"choices": [{"message": {"role": "assistant", "content": "ok"}}]}).encode()
            status = 503 if busy[0] > 0 else 200
            if status == 503:
                busy[0] -= 1
                answer = b"overloaded"
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", seen, busy
    server.shutdown()


def never_a_tailor_model(identifier: str):
    raise AssertionError(f"{identifier} was opened as a Tailor model")


def test_a_job_opens_a_remote_model_by_name_with_the_operators_address_and_key(chat_server, tmp_path):
    url, seen, busy = chat_server
    settings = Settings(home=tmp_path, remote_models={
        "house-judge": {"api": "openai", "model": "judge-v2", "url": f"{url}/v1", "api_key": "operator-key"}})
    backend = Opener(settings, never_a_tailor_model).open("house-judge")
    assert backend.chat([[{"role": "user", "content": "Rate this."}]], Generation(max_tokens=8)) == ["ok"]
    assert seen == [{"path": "/v1/chat/completions", "authorization": "Bearer operator-key",
                     "body": {"model": "judge-v2", "messages": [{"role": "user", "content": "Rate this."}],
                              "max_tokens": 8, "temperature": 0.0, "top_p": 1.0}}]


def test_an_address_in_a_spec_is_opened_only_on_the_command_line(chat_server, tmp_path):
    url, seen, busy = chat_server
    spec = f"openai:anything@{url}/v1"
    opened: list[str] = []

    def no_such_tailor_model(identifier: str):
        opened.append(identifier)
        raise LookupError(f"no model {identifier}")

    with pytest.raises(LookupError):  # a job takes the spec for a Tailor model's name, which it is not
        Opener(Settings(home=tmp_path), no_such_tailor_model).open(spec)
    assert opened == [spec] and seen == []

    cli = Opener(Settings(home=tmp_path), never_a_tailor_model, allow_urls=True).open(spec)
    replies = cli.chat([[{"role": "user", "content": "hi"}]], Generation(max_tokens=4))
    assert replies == ["ok"] and not isinstance(replies[0], Failure) and len(seen) == 1


def test_an_overloaded_remote_model_is_asked_again_then_reported(chat_server, tmp_path):
    """An endpoint that answers 503 before it answers: the reply comes on the second try; one that
    only ever answers 503 is a Failure naming the status after three tries, never an exception."""
    url, seen, busy = chat_server
    model = Opener(Settings(home=tmp_path), never_a_tailor_model, allow_urls=True).open(f"openai:m@{url}/v1")
    busy[0] = 1
    assert model.chat([[{"role": "user", "content": "hi"}]], Generation(max_tokens=4)) == ["ok"]
    assert len(seen) == 2 and seen[0] == seen[1]

    seen.clear()
    busy[0] = 10
    [reply] = model.chat([[{"role": "user", "content": "hi"}]], Generation(max_tokens=4))
    assert isinstance(reply, Failure) and "answered HTTP 503: overloaded" in reply.message
    assert len(seen) == 3
