"""Console sessions without a browser: the cookie, CSRF, revocation, and --insecure-local."""

from __future__ import annotations

import httpx

from tests.api.conftest import insecure_local_server
from tests.console.session import csrf_of, hidden_field, signed_in_client


def test_signing_in_sets_a_strict_http_only_cookie_and_pages_need_it(server):
    anonymous = httpx.Client(base_url=server.endpoint)
    for path in ("/console", "/console/jobs", "/console/datasets"):
        answer = anonymous.get(path, follow_redirects=True)
        assert answer.url.path == "/console/sign-in", path

    form = anonymous.get("/console/sign-in")
    assert "default-src 'self'" in form.headers["content-security-policy"]
    key_id, secret = server.keys["alice"]
    wrong = anonymous.post("/console/sign-in", data={"pre": hidden_field(form.text, "pre"),
                                                      "access_key_id": key_id, "secret": "wrong"})
    assert wrong.status_code == 303 and wrong.headers["location"] == "/console/sign-in?failed=1"
    assert "tailor_console=" not in wrong.headers.get("set-cookie", "")

    right = anonymous.post("/console/sign-in", data={"pre": hidden_field(form.text, "pre"),
                                                      "access_key_id": key_id, "secret": secret})
    cookie = next(c for c in right.headers.get_list("set-cookie") if c.startswith("tailor_console="))
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/console"} <= flags
    assert ">alice<" in anonymous.get("/console/jobs").text


def test_over_https_the_cookie_is_secure(server):
    # uvicorn trusts X-Forwarded-Proto from loopback (a TLS proxy on the same machine).
    https = {"X-Forwarded-Proto": "https"}
    form = httpx.get(server.endpoint + "/console/sign-in", headers=https)
    pre = hidden_field(form.text, "pre")
    key_id, secret = server.keys["alice"]
    # httpx keeps a Secure cookie from a plain-http URL to itself: send the form's cookie by hand.
    answer = httpx.post(server.endpoint + "/console/sign-in", headers=https,
                        data={"pre": pre, "access_key_id": key_id, "secret": secret},
                        cookies={"tailor_console_pre": pre})
    for response, name in ((form, "tailor_console_pre"), (answer, "tailor_console")):
        cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith(name + "="))
        assert "secure" in {part.strip().lower() for part in cookie.split(";")}, cookie


def test_the_sign_in_form_needs_its_own_token(server):
    key_id, secret = server.keys["alice"]
    forged = httpx.post(server.endpoint + "/console/sign-in",
                        data={"pre": "guessed", "access_key_id": key_id, "secret": secret},
                        cookies={"tailor_console_pre": "other"})
    assert forged.status_code == 403 and "tailor_console=" not in forged.headers.get("set-cookie", "")


def test_changes_need_the_csrf_token_and_the_same_site(server):
    client = signed_in_client(server.endpoint, *server.keys["alice"])
    # Sign-out is the skeleton's own state change: without the token, or with another's, it is refused.
    assert client.post("/console/sign-out", data={"csrf_token": "0" * 32}).status_code == 403
    assert client.post("/console/sign-out").status_code == 403
    cross = client.post("/console/sign-out", data={"csrf_token": client.csrf},
                        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    assert "tailor_console=" not in cross.headers.get("set-cookie", "")
    done = client.post("/console/sign-out", data={"csrf_token": client.csrf})
    assert done.status_code == 303 and 'tailor_console=""' in done.headers["set-cookie"]


def test_a_forged_cookie_or_a_revoked_key_ends_the_session(server):
    forged = httpx.get(server.endpoint + "/console/jobs", cookies={"tailor_console": "gAAAAA-forged"})
    assert forged.status_code == 303 and forged.headers["location"] == "/console/sign-in"

    from tailor.services.keys import create_key
    from tailor.settings import Settings
    from tailor.store.db import open_store

    settings = Settings(home=server.home)
    key_id, secret = create_key(open_store(settings), settings, "carol")
    client = signed_in_client(server.endpoint, key_id, secret)
    assert client.get("/console/jobs").status_code == 200
    revoked = server.tailor("keys", "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    assert client.get("/console/jobs").status_code == 303  # at once: every request checks the key


def test_unknown_console_paths_answer_a_page_not_an_api_envelope(server):
    client = signed_in_client(server.endpoint, *server.keys["alice"])
    missing = client.get("/console/no-such-page")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "no console page" in missing.text.lower()


def test_insecure_local_signs_a_loopback_visitor_in_as_local(tmp_path):
    with insecure_local_server(tmp_path / "home") as (port, _):
        browser = httpx.Client(base_url=f"http://127.0.0.1:{port}")
        page = browser.get("/console/jobs")
        assert page.status_code == 200 and ">local<" in page.text and csrf_of(page.text)
        assert "tailor_console" in browser.cookies
        rebinding = httpx.get(f"http://127.0.0.1:{port}/console/jobs", headers={"Host": "evil.example"})
        assert rebinding.status_code == 403


def test_a_local_session_opens_nothing_on_a_server_with_keys(tmp_path, server):
    # The same server key, but the server checks keys: a token for "local" is refused there.
    from tailor.services.console_sessions import Sessions
    from tailor.settings import Settings
    from tailor.store.db import open_store

    settings = Settings(home=server.home)
    token = Sessions(open_store(settings), settings).local()
    answer = httpx.get(server.endpoint + "/console/jobs", cookies={"tailor_console": token})
    assert answer.status_code == 303 and answer.headers["location"] == "/console/sign-in"
