"""The CLI as a client of a running Tailor server: where the server is, the boto3 client the
``jobs`` and ``models`` commands use like any script would, a GET for the OpenAI-compatible
routes, and server errors turned into one line.

The server's address: ``--endpoint``, else ``$TAILOR_ENDPOINT``, else http://127.0.0.1:8080 (what
``tailor serve`` listens on by default). Credentials: ``tailor.cli.credentials``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import typer

from tailor.cli.common import fail, load_settings, user_errors
from tailor.cli.credentials import Credentials, find_credentials

DEFAULT_ENDPOINT = "http://127.0.0.1:8080"

EndpointOption = Annotated[str | None, typer.Option(
    "--endpoint", help=f"Server URL (default: $TAILOR_ENDPOINT, else {DEFAULT_ENDPOINT}).")]


def endpoint_url(endpoint: str | None) -> str:
    return (endpoint or os.environ.get("TAILOR_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def no_server(url: str) -> str:
    return f"No Tailor server answers at {url}; start one with `tailor serve`."


def credentials() -> Credentials:
    return find_credentials(load_settings().home)


def bedrock_client(endpoint: str | None):
    """A boto3 ``bedrock`` client for the server, signing with the CLI's credentials."""
    import boto3
    from botocore.config import Config

    key = credentials()
    region = os.environ.get("AWS_REGION") or load_settings().region  # what the server signs for
    return boto3.client("bedrock", endpoint_url=endpoint_url(endpoint), region_name=region,
                        aws_access_key_id=key.access_key_id, aws_secret_access_key=key.secret_access_key,
                        config=Config(retries={"max_attempts": 2}))


@contextmanager
def api_errors(endpoint: str | None) -> Iterator[None]:
    """Server errors as one line (``error: Code: message``), a server that does not answer as one
    sentence saying so, exit 2; never a traceback."""
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

    try:
        with user_errors():
            yield
    except ClientError as error:
        details = error.response.get("Error", {})
        fail(f"{details.get('Code')}: {details.get('Message')}")
    except EndpointConnectionError:
        fail(no_server(endpoint_url(endpoint)))
    except BotoCoreError as error:
        fail(str(error))


def get_json(endpoint: str | None, path: str, query: dict[str, Any] | None = None) -> dict:
    """GET one of the server's OpenAI-compatible routes with the CLI's key as a bearer token.
    Errors become ``fail`` messages: the server's own message, or that no server answers."""
    return call_json(endpoint, path, query)


def post_json(endpoint: str | None, path: str) -> dict:
    """POST (no body) to one of the server's OpenAI-compatible routes, as ``get_json`` GETs."""
    return call_json(endpoint, path, method="POST")


def call_json(endpoint: str | None, path: str, query: dict[str, Any] | None = None, method: str = "GET") -> dict:
    import urllib.error
    import urllib.request

    from tailor.services.keys import api_key

    key = credentials()
    url = endpoint_url(endpoint) + quote(path, safe="/:")
    if query:
        url += "?" + urlencode({name: value for name, value in query.items() if value is not None})
    request = urllib.request.Request(url, method=method, headers={
        "Authorization": f"Bearer {api_key(key.access_key_id, key.secret_access_key)}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            message = json.loads(error.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {error.code} {error.reason}"
        fail(message)
    except urllib.error.URLError as error:  # refused, unknown host: nothing listens there
        fail(no_server(endpoint_url(endpoint)) if isinstance(error.reason, OSError) else str(error.reason))
    except TimeoutError:
        fail(f"The Tailor server at {endpoint_url(endpoint)} did not answer within 60 s.")
    except ConnectionError:
        fail(no_server(endpoint_url(endpoint)))
