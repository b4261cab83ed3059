"""POST JSON to a service the operator configured, through httpx, re-sending only when that is safe.

Used for the OpenAI-compatible models of an evaluation or a judge (``tailor.evaluate.backends``)
and for HTTP graders (``tailor.graders.remote``). Both call addresses the operator configured (or,
on the command line, the user who runs it), never one an API caller chose; redirects are not
followed (httpx's default), so an answer cannot send the request on to another address.

What is sent again, after 0.5 s, then 1 s:

- a connection that could not be opened (``httpx.ConnectError``, ``httpx.ConnectTimeout``): the
  request never left, so sending it again cannot do anything twice;
- the answers 502, 503 and 504: a gateway or an overloaded server saying it did not handle the
  request now. (Tailor's own grader sandbox answers 502 when the judge cannot be reached.)

Nothing else is: not a timeout while waiting for the answer (the request may be running, and a
second try would double the time the caller allowed), not a 500 (the server handled the request
and failed; the same request fails again, and a grader would grade the batch twice), not a 4xx. A
retry is not started when its wait would run past ``timeout_s`` since the first try, so a caller's
time bound holds within one request's timeout.

A hand-written loop rather than ``httpx.HTTPTransport(retries=...)``: httpx retries connection
failures only, not statuses, and not through the proxy transports it builds from ``HTTP_PROXY``
(the grader sandbox reaches its judge through one); one loop covers both cases alike.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

RETRY_STATUSES = frozenset({502, 503, 504})
RETRY_WAITS_SECONDS = (0.5, 1.0)  # before the second and the third try


def client(timeout_s: float) -> httpx.Client:
    """A client for one batch of requests (it pools their connections; it is safe across threads).
    ``timeout_s`` bounds connecting and each wait for data, as ``urllib``'s timeout did."""
    return httpx.Client(timeout=timeout_s)


def post_json(http: httpx.Client, url: str, body: Any, *, headers: dict[str, str] | None = None) -> httpx.Response:
    """POST ``body`` as JSON and return the last answer, whatever its status. Raises ``httpx.HTTPError``
    (``TimeoutException``, ``ConnectError``, ...) when no answer came."""
    # Encoded here as before (json.dumps' defaults), not with httpx's ``json=``, which refuses NaN.
    content = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **(headers or {})}
    started, budget = time.monotonic(), http.timeout.read or 0.0
    waits = list(RETRY_WAITS_SECONDS)

    def may_retry() -> bool:
        return bool(waits) and time.monotonic() - started + waits[0] <= budget

    while True:
        try:
            response = http.post(url, content=content, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            if not may_retry():
                raise
        else:
            if response.status_code not in RETRY_STATUSES or not may_retry():
                return response
        time.sleep(waits.pop(0))
