"""What every command shares: turning errors into messages, settings, output, and the small
parsers more than one command needs (NAME=VALUE options, JSON Lines files).

Exit codes, the same for every command: 0 success, 1 the data (or result) is invalid, 2 a usage
or other error (unknown model, missing file, bad option, no server). Domain errors are printed as
one clear message on stderr through ``user_errors``; a person never sees a Python traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from tailor.catalog import CustomizationType
from tailor.errors import InvalidInput, TailorError
from tailor.settings import Settings, get_settings
from tailor.train.recipes import TRAINABLE

EXIT_INVALID = 1
EXIT_ERROR = 2


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a ``TailorError`` (or an OS error such as a read-only folder) into ``error: ...`` on
    stderr and exit code 2. Wrap every command body in it."""
    try:
        yield
    except TailorError as error:
        fail(error.message)
    except OSError as error:
        fail(str(error))


def fail(message: str) -> None:
    """Print ``error: message`` on stderr and exit 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_ERROR) from None


def load_settings() -> Settings:
    """The settings, with a malformed ``TAILOR_*`` variable or settings.toml reported as
    ``InvalidInput`` (so ``user_errors`` prints it) instead of a pydantic traceback."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    try:
        return get_settings()
    except SettingsError as error:
        reason = f" ({error.__cause__})" if error.__cause__ else ""
        raise InvalidInput(f"Invalid settings: {error}{reason}.") from None
    except ValidationError as error:
        details = "; ".join(f"{'.'.join(map(str, detail['loc']))}: {detail['msg']}"
                            for detail in error.errors())
        raise InvalidInput(f"Invalid settings: {details}.") from None


def say(message: str) -> None:
    """Progress notes go to stderr, so stdout stays clean for results (and for --json)."""
    typer.echo(message, err=True)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


# The customization types Tailor can train (and whose data ``tailor.data`` checks): the one recipe
# table's, as a choice for ``--type``.
DataType = StrEnum("DataType", {kind.value: kind.value for kind in CustomizationType if kind in TRAINABLE})


def parse_assignments(pairs: list[str] | None, option: str) -> dict[str, str]:
    """``["a=1", "b = 2"]`` -> ``{"a": "1", "b": "2"}`` for a repeatable NAME=VALUE ``option``
    (``--hp``, ``--env``); surrounding spaces are dropped, as a shell user rarely means them."""
    values: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InvalidInput(f"{option} expects NAME=VALUE, got {pair!r}.")
        values[name.strip()] = value.strip()
    return values


def read_jsonl(path: Path, *, limit: int | None = None,
               check: Callable[[Any], str | None] = lambda record: None) -> list[tuple[int, Any]]:
    """``(line number, record)`` for the first ``limit`` records of a JSON Lines file, blank lines
    skipped. ``check(record)`` returns a problem or None; every line that is not JSON or has a
    problem is reported at once (the first ten) as ``InvalidInput``."""
    records: list[tuple[int, Any]] = []
    problems: list[str] = []
    with path.open(encoding="utf-8") as lines:
        for number, text in enumerate(lines, 1):
            if limit is not None and len(records) >= limit:
                break
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except ValueError as error:
                problems.append(f"line {number}: not JSON ({error})")
                continue
            if problem := check(record):
                problems.append(f"line {number}: {problem}")
                continue
            records.append((number, record))
    if problems:
        raise InvalidInput(f"{path}: " + "; ".join(problems[:10]))
    return records
