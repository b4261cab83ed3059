"""HTTP graders: the batch is POSTed as JSON to a URL, and the list of results comes back.

For graders that already run as a service (in another language, on another machine, behind an
API gateway in front of a real Lambda function). The body is exactly the Lambda event (the JSON list
of samples); the response body must be exactly what the Lambda would return (the JSON list of
results), with status 200. Anything else (an HTTP error, a refused connection, no answer within
the timeout, a body that is not JSON) scores every sample of the batch 0 with an error that says
which; a JSON list is then read strictly by ``tailor.graders.contract.read_results``.

(Named ``remote`` rather than ``http`` so that it can never shadow the standard library's ``http``.)
"""

from __future__ import annotations

import httpx

from tailor import http_client
from tailor.graders.contract import GradeResult, failed, read_results

_BODY_SHOWN = 300  # characters of an error response quoted in the error


def post_batch(url: str, samples: list[dict], *, timeout_seconds: float) -> list[GradeResult]:
    """Grade ``samples`` at ``url``; one result per sample, in order. Never raises for the grader's
    failures. A connection refused and the answers 502/503/504 are tried again within the timeout
    (``tailor.http_client`` says why those and no others)."""
    if not samples:
        return []
    try:
        with http_client.client(timeout_seconds) as http:
            response = http_client.post_json(http, url, samples, headers={"Accept": "application/json"})
    except httpx.TimeoutException:
        return _all_failed(samples, f"the grader at {url} did not answer within its timeout of {timeout_seconds:g} s")
    except (httpx.TransportError, httpx.InvalidURL) as error:
        return _all_failed(samples, f"the grader at {url} could not be reached: {error}")
    except httpx.HTTPError as error:
        return _all_failed(samples, f"the grader at {url} failed: {error}")
    if not response.is_success:
        detail = response.text.strip()[:_BODY_SHOWN]
        reason = f"the grader at {url} answered HTTP {response.status_code}"
        return _all_failed(samples, f"{reason}: {detail}" if detail else reason)
    try:
        returned = response.json()
    except ValueError:
        shown = response.text.strip()[:_BODY_SHOWN]
        return _all_failed(samples, f"the grader at {url} answered with a body that is not JSON: {shown!r}")
    return read_results(samples, returned)


def _all_failed(samples: list[dict], reason: str) -> list[GradeResult]:
    return [failed(str(item["id"]), reason) for item in samples]
