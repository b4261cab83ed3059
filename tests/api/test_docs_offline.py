"""``/docs`` and ``/redoc`` work on a machine without internet: with ``TAILOR_API_DOCS=1`` a real
``tailor serve`` answers both pages, and everything they load (scripts, styles, icon, the OpenAPI
document) comes from the server itself — FastAPI's defaults would fetch Swagger UI and ReDoc from a
CDN. Off (the default), none of it is served. (What the scripts fetch once running is checked in a
real browser with every outside name unresolvable: tests/console.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.api.conftest import ALIASES, Server, running_server

# Every quoted URL a page names: absolute (http://, https://, //host) or a path on this server.
QUOTED_URL = re.compile(r"""["']((?:https?:)?//[^"'\s]+|/[^"'\s]*)["']""")
ANY_URL = re.compile(r"""(?:https?:)?//[^"'\s)<>]+""")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    """One server for the module, with the docs on (running_server passes os.environ on)."""
    home = tmp_path_factory.mktemp("docs") / "home"
    home.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TAILOR_API_DOCS", "1")
        with running_server(home, ALIASES, args=("--no-runner",)) as running:
            yield running


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_a_docs_page_loads_only_what_this_server_serves(server, page):
    with httpx.Client(base_url=server.endpoint, timeout=30) as http:
        html = http.get(page)
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        assert "cdn" not in html.text.lower() and "fonts.googleapis" not in html.text

        origin = "{0.scheme}://{0.netloc}".format(urlsplit(server.endpoint))
        for url in ANY_URL.findall(html.text):
            assert urljoin(server.endpoint, url).startswith(origin + "/"), f"{page} names {url}"

        referenced = {urljoin(server.endpoint + page, url) for url in QUOTED_URL.findall(html.text)}
        assert server.endpoint + "/openapi.json" in referenced
        assert any(url.endswith(".js") for url in referenced), referenced
        for url in referenced:
            answer = http.get(url)
            assert answer.status_code == 200, url
            if url.endswith(".css"):  # a stylesheet may pull fonts or images in: only inline data
                assert "@import" not in answer.text
                assert all(ref.strip("'\" ").startswith("data:") for ref in re.findall(r"url\(([^)]*)\)",
                                                                                         answer.text)), url


def test_the_openapi_document_describes_the_api(server):
    document = httpx.get(server.endpoint + "/openapi.json", timeout=30)
    assert document.status_code == 200
    spec = document.json()
    assert spec["openapi"].startswith("3.") and spec["info"]["title"] == "Tailor"
    assert "/model-customization-jobs" in spec["paths"] and "/v1/fine_tuning/jobs" in spec["paths"]
    assert not any(path.startswith("/console") for path in spec["paths"])  # the console's pages are not API


def test_with_the_docs_off_none_of_it_is_served(tmp_path):
    """The default. (tests/api/test_tenants.py checks the same paths on a running server.)"""
    from fastapi.testclient import TestClient

    from tailor.api.app import create_app
    from tailor.settings import Settings

    client = TestClient(create_app(Settings(home=tmp_path, api_docs=False), run_jobs=False))
    for path in ("/docs", "/redoc", "/openapi.json", "/docs-assets/swagger-ui-bundle.js"):
        assert client.get(path).status_code == 404, path
