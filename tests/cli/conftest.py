"""The CLI's tests use the API tests' real server (``tailor serve`` on 127.0.0.1 in a child process)."""

from tests.api.conftest import server  # noqa: F401  (a fixture: pytest finds it by name here)
