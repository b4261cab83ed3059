"""How a body model's validation errors read: the field's path, and the problem in words."""

from __future__ import annotations

from typing import Annotated, Literal

import pytest
from pydantic import AfterValidator, Field

from tailor.errors import InvalidFields
from tailor.wire.body_models import (
    BodyModel,
    NonBlank,
    fail,
    fail_all,
    refused,
    validate,
)
from tailor.wire.request_json import INT32_MAX


def _no_shouting(items: list[str]) -> list[str]:
    loud = [(f"[{index}]", "must not be all capitals") for index, item in enumerate(items) if item.isupper()]
    if loud:
        raise fail_all(loud)
    return items


class Inner(BodyModel):
    kind: Literal["text"]
    text: NonBlank


class Sample(BodyModel):
    version: Literal["v1"]
    count: Annotated[int, Field(ge=1, le=INT32_MAX)] | None = None
    share: Annotated[float, Field(ge=0, le=1)] | None = None
    parts: list[Inner] | None = None
    words: Annotated[list[str], Field(max_length=2), AfterValidator(_no_shouting)] | None = None
    tools: refused("tools are not supported", allowed=(None, [])) = None


def problems(data) -> list[tuple[str, str]]:
    with pytest.raises(InvalidFields) as raised:
        validate(Sample, data)
    return raised.value.problems


@pytest.mark.parametrize("data, expected", [
    ({}, [("version", "required (use 'v1')")]),
    ({"version": "v2"}, [("version", "must be 'v1', got 'v2'")]),
    ({"version": "v1", "count": 0}, [("count", "must be an integer of at least 1, got 0")]),
    # A Java int's maximum is the wire's limit, named only once a value passes it.
    ({"version": "v1", "count": 2**40}, [("count", "must be an integer between 1 and 2147483647, got 1099511627776")]),
    ({"version": "v1", "count": 1.0}, [("count", "must be an integer of at least 1, got 1.0")]),
    ({"version": "v1", "count": True}, [("count", "must be an integer of at least 1, got true")]),
    ({"version": "v1", "share": "half"}, [("share", "must be a number between 0 and 1, got 'half'")]),
    ({"version": "v1", "share": 1.5}, [("share", "must be a number between 0 and 1, got 1.5")]),
    ({"version": "v1", "parts": [{"kind": "text", "text": " "}]}, [("parts[0].text", "must not be blank")]),
    ({"version": "v1", "parts": [{"kind": "text", "txt": "a"}]},
     [("parts[0].text", "required"), ("parts[0].txt", "unknown field (did you mean 'text'?)")]),
    ({"version": "v1", "zzz": 1}, [("zzz", "unknown field (allowed: count, parts, share, tools, version, words)")]),
    ({"version": "v1", "words": ["a", "b", "c"]}, [("words", "at most 2 items, got 3")]),
    ({"version": "v1", "words": ["ok", "LOUD"]}, [("words[1]", "must not be all capitals")]),
    ({"version": "v1", "tools": [{"name": "f"}]}, [("tools", "tools are not supported")]),
    ([1], [("body", "must be a JSON object, got a list")]),
])
def test_each_problem_names_its_field_in_words(data, expected):
    assert problems(data) == expected


def test_every_problem_is_reported_at_once_in_field_order():
    found = problems({"share": -1, "count": "2", "extra": 1})
    assert [path for path, _ in found] == ["version", "count", "share", "extra"]


def test_values_that_mean_not_used_pass_a_refused_field():
    assert validate(Sample, {"version": "v1", "tools": []}).tools == []


def test_a_check_may_point_below_its_field():
    def no_b(text: str) -> str:
        if "b" in text:
            raise fail("no b here", at="letters")
        return text

    class Pointed(BodyModel):
        word: Annotated[str, AfterValidator(no_b)]

    with pytest.raises(InvalidFields) as raised:
        validate(Pointed, {"word": "abc"})
    assert raised.value.problems == [("word.letters", "no b here")]
