"""Request JSON as every route reads it: strictly, and refused by field when it cannot be used.

``parse_json(data)`` is ``json.loads`` plus what a server needs before it hands the value on:
bytes must be UTF-8 (not guessed, no encoded surrogates); nesting at most ``MAX_JSON_DEPTH``
levels; numbers finite (``NaN``, ``Infinity`` and literals past a double's range like ``1e999``
are not JSON numbers); no text or key holding a lone surrogate (``"\\ud800"``), which no UTF-8
encoder -- of a response, a log line or the database -- can write. Each refusal names where, as
an ``InvalidFields``; nothing a client sends ends as a 500.

``INTEGER_LIMITS`` are the integers a request field may hold when nothing narrower is declared:
the Java ``int`` and ``long`` the original service parses its fields into (and a 64-bit database
column holds).
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

from tailor.errors import InvalidFields, InvalidInput, show_value

INTEGER_LIMITS = {"integer": (-2**31, 2**31 - 1), "long": (-2**63, 2**63 - 1)}
INT32_MAX = INTEGER_LIMITS["integer"][1]

# How deep request JSON may nest. The deepest request the models define nests about a dozen levels;
# much deeper input only exhausts the recursion of whatever walks it next (the parser, a validator,
# the JSON encoder, the database driver) and would end as a 500.
MAX_JSON_DEPTH = 100
_MAX_JSON_PROBLEMS = 10
PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def parse_json(data: bytes | str, field: str = "body") -> Any:
    """The JSON value of a request body (or of JSON text in a member), or one ``InvalidFields``."""
    value, problems = json_problems(data, field)
    if problems:
        raise InvalidFields(problems)
    return value


def json_object(data: bytes | str, field: str = "body") -> dict:
    """``parse_json`` for a body that must be a JSON object."""
    value = parse_json(data, field)
    if not isinstance(value, dict):
        raise InvalidFields([(field, f"must be a JSON object, got {show_value(value)}")])
    return value


def json_problems(data: bytes | str, field: str = "body", *,
                  inside: bool = False) -> tuple[Any, list[tuple[str, str]]]:
    """``(value, [(path, problem), ...])`` for request JSON; see ``parse_json``.

    Paths name members as the wire JSON does (``messages[0].content``); a problem with the text as
    a whole, or with a value at its root, is reported under ``field``. ``inside``: the JSON is the
    text of the member ``field``, so its paths start there (``...inferenceParams.inferenceConfig``).
    """
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as error:
            return None, [(field, f"must be UTF-8 JSON; byte {error.start} is not UTF-8")]
    try:
        value = json.loads(data)
    except json.JSONDecodeError as error:
        return None, [(field, f"not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}")]
    except RecursionError:
        return None, [(field, f"nested more than {MAX_JSON_DEPTH} levels deep")]
    except ValueError:  # an integer literal past Python's limit on digits
        return None, [(field, f"not valid JSON: a number has more than {sys.get_int_max_str_digits()} digits")]
    problems: list[tuple[str, str]] = []
    _walk_json(value, field if inside else "", field, 1, problems)
    return value, problems


def _walk_json(value: Any, path: str, field: str, depth: int, problems: list[tuple[str, str]]) -> None:
    if len(problems) >= _MAX_JSON_PROBLEMS:
        return
    where = path or field
    if depth > MAX_JSON_DEPTH:  # the path down there is a hundred "[0]"s: its start says where
        problems.append((where if len(where) <= 120 else where[:117] + "...",
                         f"nested more than {MAX_JSON_DEPTH} levels deep"))
    elif isinstance(value, dict):
        for key, item in value.items():
            path_of_key = key_path(path, key)
            if (at := lone_surrogate(key)) is not None:
                problems.append((path_of_key, f"the key is not valid Unicode: a lone surrogate at character {at}"))
            _walk_json(item, path_of_key, field, depth + 1, problems)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk_json(item, f"{path}[{index}]" if path else f"{field}[{index}]", field, depth + 1, problems)
    elif isinstance(value, float) and not math.isfinite(value):
        problems.append((where, "must be a finite number; NaN, Infinity and numbers beyond 1.8e308 are not"))
    elif isinstance(value, str) and (at := lone_surrogate(value)) is not None:
        problems.append((where, f"not valid Unicode: a lone surrogate at character {at}"))


def text_field(values: Any, name: str, required: bool = True) -> str | None:
    """The string ``values[name]`` (a JSON object or query parameters), stripped; None when it is
    absent or blank and not ``required``; ``InvalidInput`` naming the field otherwise."""
    value = values.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(f"{name}: required.", param=name)
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{name}: must be a string.", param=name)
    return value.strip()


def lone_surrogate(text: str) -> int | None:
    """The index of the first lone surrogate in ``text`` (``"\\ud800"`` in JSON), or None.

    Such text cannot be encoded as UTF-8, so nothing can write it: a request holding one is refused.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return error.start
    return None


def key_path(path: str, key: Any) -> str:
    """The path of member ``key`` below ``path``: ``a.b`` for a plain name, ``a['b c']`` otherwise."""
    if isinstance(key, str) and PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{str(key)!r}]"  # repr escapes what cannot be printed, lone surrogates included
