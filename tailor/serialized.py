"""Frozen dataclasses that travel as JSON: job specs in a job's row, a training spec in a file.

pydantic's ``TypeAdapter`` does the work (nested dataclasses, enums, paths, datetimes, tuples,
checked on the way back in); one adapter per class, made on first use.
"""

from __future__ import annotations

from functools import cache

from pydantic import TypeAdapter


@cache
def _adapter(cls: type) -> TypeAdapter:
    return TypeAdapter(cls)


class Serialized:
    """Base of a dataclass that is stored or sent as JSON."""

    def to_json(self) -> str:
        return _adapter(type(self)).dump_json(self).decode()

    @classmethod
    def from_json(cls, text: str | bytes):
        return _adapter(cls).validate_json(text)

    def to_record(self) -> dict:
        """As a JSON column holds it."""
        return _adapter(type(self)).dump_python(self, mode="json")

    @classmethod
    def from_record(cls, record: dict):
        return _adapter(cls).validate_python(record)
