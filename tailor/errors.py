"""The small tree of domain errors that every layer raises and each boundary translates.

    TailorError                 base: a message meant for a person
    ├── InvalidInput            bad request, data or configuration (HTTP 400, CLI exit 2)
    │   └── InvalidHyperparameters   carries one message per offending field
    ├── NotFound                an unknown model, job or file (HTTP 404)
    ├── Conflict                the resource is in a state that forbids the request (HTTP 400/409)
    ├── AccessDenied            no valid credentials, or not this principal's resource (HTTP 403)
    ├── ModelUnavailable        a model is known but its weights cannot be loaded here
    ├── ModelNotReady           a deployment is still loading its model (HTTP 429; clients retry)
    ├── ModelTimeout            inference ran past its time limit (HTTP 408)
    └── ModelFailed             the inference engine failed or stopped mid-request (HTTP 424)

Only the boundaries (CLI, HTTP routes) turn these into exit codes or error envelopes; inside,
code raises them with a message a user can act on, naming the file, line or field at fault.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any


class TailorError(Exception):
    """Base of every error Tailor reports to a person. ``param`` names the request field at fault
    where a dialect has a place for it (OpenAI's ``error.param``)."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidInput(TailorError):
    """The request, the data or the configuration is wrong; the message says where."""


class InvalidHyperparameters(InvalidInput):
    """One or more hyperparameters are wrong; ``problems`` maps each field to what is wrong."""

    def __init__(self, problems: dict[str, str]):
        self.problems = dict(problems)
        lines = [f"{field}: {problem}" for field, problem in self.problems.items()]
        super().__init__("Invalid hyperparameters:\n  " + "\n  ".join(lines))


class NotFound(TailorError):
    """The named model, job or file does not exist."""


class Conflict(TailorError):
    """The resource exists but its state forbids the request."""


class QuotaExceeded(TailorError):
    """The caller has as much of something as it may (active jobs); it must finish or cancel some."""


class AccessDenied(TailorError):
    """The caller may not do this (a bucket not shared with it, a request from another site)."""


class Unauthenticated(AccessDenied):
    """The request carries no valid key: unsigned, wrongly signed, or an unknown or wrong key."""


class ModelUnavailable(TailorError):
    """The model is known, but its weights cannot be loaded on this machine."""


class ModelTimeout(TailorError):
    """An inference request ran past its time limit."""


class ModelFailed(TailorError):
    """The inference engine could not answer: it crashed, stopped, or hit an internal error."""


class ModelNotReady(TailorError):
    """The deployment exists but is not serving yet (its model is still loading)."""


def problems_message(problems: Iterable[str]) -> str:
    """``"2 validation errors detected:\\n  a: ...\\n  b: ..."``: one line per problem, AWS's way."""
    lines = list(problems)
    plural = "" if len(lines) == 1 else "s"
    return f"{len(lines)} validation error{plural} detected:\n  " + "\n  ".join(lines)


class InvalidFields(InvalidInput):
    """An invalid request body, problem by problem: ``problems`` is ``[(field path, problem), ...]``.

    ``param`` is the first field (OpenAI's envelope names one); ``message`` is AWS's rendering.
    """

    def __init__(self, problems: Iterable[tuple[str, str]]):
        self.problems = list(problems)
        super().__init__(problems_message(f"{path}: {problem}" for path, problem in self.problems),
                         param=self.problems[0][0] if self.problems else None)

    def under(self, prefix: str) -> InvalidFields:
        """The same problems for a body found at ``prefix`` of a larger request: a problem with
        the whole body (path ``body``) is the prefix's, the others are below it."""
        return InvalidFields((prefix if path == "body" else join_path(prefix, path), problem)
                             for path, problem in self.problems)


def join_path(prefix: str, path: str) -> str:
    """``messages`` + ``[0].role`` -> ``messages[0].role``; ``a`` + ``b`` -> ``a.b``."""
    if not prefix or not path:
        return prefix or path
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"


def show_value(value: Any) -> str:
    """A short, JSON-flavoured rendering of a bad value, for the message that rejects it."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 80 else repr(value[:77]) + "..."
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def without_home(text: str, home: Path) -> str:
    """``text`` with the server's state folder written as ``$TAILOR_HOME``: a message an API caller
    reads (a job's failure, say) must not show where the server keeps its files."""
    for path in {str(Path(home).resolve()), str(home)}:
        text = text.replace(path, "$TAILOR_HOME")
    return text


FAILURE_MESSAGE_LIMIT = 2048  # the APIs' maximum length of a failure message


def failure_message(text: str, home: Path) -> str:
    """A failure as a job or deployment records it for the caller: no server paths, within the limit."""
    return without_home(text, home)[:FAILURE_MESSAGE_LIMIT]
