"""Counting grader calls and failures into the shared ``counters`` table (``tailor.store.counters``).

Graders run in job workers as well as in API servers, and no scrape reaches a worker: each call
is added to the database, which every server's ``/metrics`` reads. One write per call (a batch),
not per sample; counting never fails the grading.
"""

from __future__ import annotations

from collections.abc import Iterable


def count_call(settings, kind: str, errors: Iterable[str | None]) -> None:
    """One grader call of ``kind`` that graded one sample per entry of ``errors`` (None: graded)."""
    from tailor.store.counters import count

    errors = list(errors)
    count(settings, {"grader_calls": 1, "grader_samples": len(errors),
                     "grader_failures": sum(error is not None for error in errors)}, kind=kind)
