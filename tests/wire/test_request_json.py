"""The strict reader of request JSON every route uses: what it refuses, and where it says the problem is."""

from __future__ import annotations

import pytest

from tailor.errors import InvalidFields
from tailor.wire.request_json import (
    MAX_JSON_DEPTH,
    json_object,
    json_problems,
    parse_json,
)


@pytest.mark.parametrize("data, problem", [
    (b'{"jobName": "a\xff"}', "must be UTF-8 JSON; byte 14 is not UTF-8"),
    (b'{"jobName": "\xed\xa0\x80"}', "must be UTF-8 JSON; byte 13 is not UTF-8"),  # an encoded surrogate
    (b"[" * 5000 + b"]" * 5000, f"nested more than {MAX_JSON_DEPTH} levels deep"),
    (b"1" * 5000, "not valid JSON: a number has more than 4300 digits"),
    (b'{"a": ', "not valid JSON: Expecting value at line 1, column 7"),
])
def test_request_json_that_cannot_be_read_is_one_problem_of_the_body(data, problem):
    with pytest.raises(InvalidFields) as error:
        parse_json(data)
    assert error.value.problems == [("body", problem)]
    assert error.value.message == f"1 validation error detected:\n  body: {problem}"


@pytest.mark.parametrize("text, path, problem", [
    ('{"modelUnits": NaN}', "modelUnits", "must be a finite number"),
    ('{"modelUnits": 1e999}', "modelUnits", "must be a finite number"),
    ('{"tags": [{"key": "k", "value": -Infinity}]}', "tags[0].value", "must be a finite number"),
    ('{"provisionedModelName": "a\\ud800"}', "provisionedModelName", "not valid Unicode: a lone surrogate at character 1"),
    ('{"\\udc00": 1}', "['\\udc00']", "the key is not valid Unicode"),
    ('{"m": ' + "[" * 150 + "]" * 150 + "}", "m[0][0]", f"nested more than {MAX_JSON_DEPTH} levels deep"),
])
def test_request_json_names_the_member_holding_what_nothing_could_write(text, path, problem):
    _, found = json_problems(text)
    assert len(found) == 1
    assert found[0][0].startswith(path) and found[0][1].startswith(problem)
    with pytest.raises(InvalidFields) as error:
        parse_json(text)
    error.value.message.encode("utf-8")  # the message itself is writable: the surrogate is escaped


def test_json_text_inside_a_member_is_named_from_that_member():
    _, found = json_problems('{"maxTokens": NaN}', "inferenceParams", inside=True)
    assert found == [("inferenceParams.maxTokens",
                      "must be a finite number; NaN, Infinity and numbers beyond 1.8e308 are not")]


@pytest.mark.parametrize("data, problem", [("[1, 2]", "must be a JSON object, got a list"),
                                           ('"text"', "must be a JSON object, got 'text'")])
def test_a_body_must_be_an_object(data, problem):
    assert json_object('{"a": 1}') == {"a": 1}
    with pytest.raises(InvalidFields) as error:
        json_object(data)
    assert error.value.problems == [("body", problem)]
