"""One server and two signed-in principals for the console's route tests (no browser); modules
that need a server set up otherwise (no runner, a configured price) start their own."""

from __future__ import annotations

import pytest

from tests.api.conftest import ALIASES, running_server
from tests.conftest import tiny_home
from tests.console.session import signed_in_client


@pytest.fixture(scope="package")
def server(tmp_path_factory, tiny_models_dir):
    home = tiny_home(tmp_path_factory.mktemp("console-routes") / "home", tiny_models_dir)
    with running_server(home, ALIASES) as running:
        yield running


@pytest.fixture(scope="package")
def alice(server):
    client = signed_in_client(server.endpoint, *server.keys["alice"])
    yield client
    client.close()


@pytest.fixture(scope="package")
def bob(server):
    client = signed_in_client(server.endpoint, *server.keys["bob"])
    yield client
    client.close()
