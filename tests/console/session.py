"""Signing in to the console without a browser: an httpx client holding a session cookie, for the
tests of console routes (the browser tests sign in through the form)."""

from __future__ import annotations

import re

import httpx

_HIDDEN = r'name="{name}" value="([^"]*)"'


def hidden_field(html: str, name: str) -> str:
    match = re.search(_HIDDEN.format(name=re.escape(name)), html)
    assert match, f"no hidden field {name!r} in the page"
    return match.group(1)


def csrf_of(html: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]*)"', html)
    assert match and match.group(1), "the page carries no CSRF token"
    return match.group(1)


class ConsoleClient(httpx.Client):
    """An httpx client signed in to the console; ``csrf`` is its session's token (send it as the
    ``X-CSRF-Token`` header or the ``csrf_token`` form field)."""

    csrf: str = ""

    def post_json(self, url: str, body: dict | None = None, **kwargs) -> httpx.Response:
        return self.post(url, json=body, headers={"X-CSRF-Token": self.csrf, **kwargs.pop("headers", {})}, **kwargs)


def signed_in_client(endpoint: str, access_key_id: str, secret: str) -> ConsoleClient:
    client = ConsoleClient(base_url=endpoint, timeout=120, follow_redirects=False)
    form = client.get("/console/sign-in")
    answer = client.post("/console/sign-in", data={"pre": hidden_field(form.text, "pre"),
                                                   "access_key_id": access_key_id, "secret": secret})
    assert answer.status_code == 303 and answer.headers["location"] == "/console/jobs", answer.text
    client.csrf = csrf_of(client.get("/console/jobs").text)
    return client
