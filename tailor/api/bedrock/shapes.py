"""The Bedrock contract, read from botocore's own service models.

botocore ships the original service's exact API models (``bedrock/2023-04-20/service-2.json``
for the control plane, ``bedrock-runtime/2023-09-30/service-2.json`` for inference; protocol
rest-json). Tailor uses them at the HTTP edge instead of restating them:

* ``validate_input(operation, params)`` checks a request against the operation's input shape and
  reports *every* problem at once, one ``field.path: problem`` per line, in a single
  ``InvalidInput``. ``params`` holds the JSON body's members plus those bound to the URI, query
  string and headers (merged by the route); their text values are coerced to integers, booleans
  and datetimes. It returns the coerced request, keyed by member name.
* ``shape_output(operation, data)`` turns a service result into the JSON body that botocore
  parses: ``None`` dropped, datetimes as ISO-8601 UTC, bytes as base64, members the contract
  lacks left out. In strict mode it raises instead when ``data`` breaks the output shape, so
  tests prove our responses keep the contract.
* ``http_binding(operation)`` gives the method, URI template and success status.
* A request's JSON is read strictly before any of this (``tailor.wire.request_json``); a string
  the model documents as JSON (``JSON_TEXT``) is read the same way.

Client input never reaches a 500 from here: integers without a ``min``/``max`` in the model are
held to the range of the Java ``int``/``long`` the original service parses them into (which a
64-bit database column also holds), timestamps must be representable in UTC, text must be valid
Unicode, and the one string the model documents as JSON (``inferenceParams``) is read as such.

Field paths name members as they appear in the wire JSON: ``validationDataConfig.validators[0].s3Uri``,
``hyperParameters.epochCount``. Patterns in the model are Java regexes; they are matched against
the whole value (``re.fullmatch``, ASCII classes like Java's), after the length check. The few
that Python cannot compile (``\\p{L}`` classes, only in automated-reasoning shapes) are skipped.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import difflib
import functools
import math
import os
import re
from collections.abc import Callable
from typing import Any

from botocore.loaders import Loader

from tailor.api.errors import writable
from tailor.errors import InvalidInput, problems_message, show_value
from tailor.wire.request_json import (
    INTEGER_LIMITS,
    PLAIN_KEY,
    json_problems,
    lone_surrogate,
)

SERVICE_NAME = "bedrock"

# Strict output checking for every shape_output call that does not say otherwise; end-to-end
# tests turn it on (TAILOR_STRICT_OUTPUT=1) so that any response breaking the contract fails loudly.
STRICT_OUTPUT = os.environ.get("TAILOR_STRICT_OUTPUT", "") not in ("", "0")

# Pattern fragments whose nested quantifiers make a backtracking engine exponential: the JobName
# pattern ``[a-zA-Z0-9](-*[a-zA-Z0-9\+\-\.])*`` takes hours on "a" + 61 dashes + "!". Because the
# class after ``-*`` already admits "-", ``(-*X)`` repeated matches exactly what ``(X)`` repeated
# matches (for a bounded repeat, once the value's max length -- checked first -- is within the
# bound, which holds for every use in the model). tests/api/bedrock keeps every pattern fast.
_LINEAR_EQUIVALENTS = ((r"(-*[a-zA-Z0-9\+\-\.])", r"([a-zA-Z0-9\+\-\.])"),)

_LOCATED = ("uri", "querystring", "header")
# Numbers in a query string or header. 40 digits is past every integer shape's range and far below
# the 4300 digits past which Python refuses to convert text to int.
_INTEGER_TEXT = re.compile(r"-?[0-9]{1,40}")
_DECIMAL_TEXT = re.compile(r"-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")

# String shapes whose text the model documents as JSON, which Tailor reads: checked like a body.
JSON_TEXT = ("EvaluationModelInferenceParams",)


# The runtime's shapes are read under a prefix: both models define, differently, shapes of the
# same name (ValidationException, Message, InferenceConfiguration, ...). Operation names do not
# collide, so callers name an operation and never need to say which service it belongs to.
RUNTIME_SERVICE, RUNTIME_PREFIX = "bedrock-runtime", "runtime."


@functools.cache
def service_model(service: str = SERVICE_NAME) -> dict[str, Any]:
    """The raw service model (botocore's service-2.json) of ``bedrock`` or ``bedrock-runtime``."""
    return Loader().load_service_model(service, "service-2")


def _prefixed(node: Any, prefix: str) -> Any:
    """A copy of a model fragment with every shape reference renamed ``prefix + name``."""
    if isinstance(node, dict):
        return {key: (prefix + value if key == "shape" else _prefixed(value, prefix)) for key, value in node.items()}
    if isinstance(node, list):
        return [_prefixed(item, prefix) for item in node]
    return node


# Constraints of the model that Tailor deliberately does not hold to (docs/evaluation.md), by shape:
# - an evaluation's models and judge may be any model Tailor can run — a custom model or a
#   deployment by ARN or name — or an ``openai:``/``bedrock:`` spec, so their patterns are off
#   (their length limits still hold);
# - a distillation's teacher and a batch inference job's model may likewise be any model Tailor
#   serves (a custom or imported model by ARN, a deployment), so their patterns are off too;
# - the model bounds a page of evaluation job summaries to 1–5 items while ListEvaluationJobs
#   takes maxResults up to 1000; Tailor returns what maxResults asks for, and an empty list when
#   there is nothing.
RELAXED: dict[str, tuple[str, ...]] = {
    "EvaluationBedrockModelIdentifier": ("pattern",),
    "EvaluatorModelIdentifier": ("pattern",),
    "TeacherModelIdentifier": ("pattern",),
    "ModelId": ("pattern",),
    "EvaluationSummaries": ("min", "max"),
}


# Patterns that Tailor widens by one more alternative, keeping the rest of the contract: a
# customization job may start from an imported model, by its ARN, or from a model CreateCustomModel
# made (``custom-model/imported/ID``: it has no base model to name), which the base model pattern
# refuses. Paths and every other unexpected text still never get past the contract.
WIDENED: dict[str, str] = {
    "BaseModelIdentifier": r"arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:[0-9]{12}:"
                           r"(imported-model|custom-model/imported)/[a-z0-9]{12}",
}


@functools.cache
def _combined() -> dict[str, Any]:
    control, runtime = service_model(SERVICE_NAME), service_model(RUNTIME_SERVICE)
    shapes = dict(control["shapes"])
    for name, constraints in RELAXED.items():
        shapes[name] = {key: value for key, value in shapes[name].items() if key not in constraints}
    for name, alternative in WIDENED.items():
        shapes[name] = {**shapes[name], "pattern": f"({shapes[name]['pattern']})|({alternative})"}
    shapes.update({RUNTIME_PREFIX + name: _prefixed(shape, RUNTIME_PREFIX) for name, shape in runtime["shapes"].items()})
    operations = dict(control["operations"])
    operations.update({name: _prefixed(op, RUNTIME_PREFIX) for name, op in runtime["operations"].items()})
    return {"shapes": shapes, "operations": operations}


def _shape(name: str) -> dict[str, Any]:
    return _combined()["shapes"][name]


def _operation(operation: str) -> dict[str, Any]:
    try:
        return _combined()["operations"][operation]
    except KeyError:
        raise ValueError(f"unknown Bedrock operation {operation!r}") from None


def http_binding(operation: str) -> tuple[str, str, int]:
    """``(method, request URI template, success status)``, e.g. ``("POST", "/model-customization-jobs", 201)``."""
    http = _operation(operation)["http"]
    return http["method"], http["requestUri"], http.get("responseCode", 200)


def input_locations(operation: str) -> dict[str, tuple[str, str]]:
    """Input member name -> ``(location, wire name)``; location is uri, querystring, header, payload or body.

    Routes use it to pick the path, query and header values to merge into ``params``.
    """
    shape_name = _operation(operation).get("input", {}).get("shape")
    if shape_name is None:
        return {}
    shape = _shape(shape_name)
    locations = {}
    for name, member in shape["members"].items():
        location = member.get("location") or ("payload" if shape.get("payload") == name else "body")
        locations[name] = (location, member.get("locationName", name))
    return locations


# The model's patterns in words, by shape name, for the shapes Tailor's operations read: a caller
# who sent "http://bucket/file" needs "an s3:// URI", not a regular expression. A pattern missing
# here is quoted as it is. Each entry says what the pattern accepts, no more and no less.
_S3 = ("(a bucket of 3 to 63 lowercase letters, digits, dots and hyphens; a path of letters, digits and "
       "- ! _ * ' ( ) .)")
_NAME = ("letters and digits, each optionally followed by one hyphen or underscore "
         "(no two separators in a row, none first)")
_JOB_NAME = "a letter or digit, then letters, digits, hyphens, dots and plus signs"
PATTERN_WORDS: dict[str, str] = {
    "S3Uri": f"must be an s3:// URI such as s3://bucket/path/file.jsonl {_S3}",
    "S3UriFolder": f"must be an s3:// folder URI ending in /, such as s3://bucket/output/ {_S3}",
    "kBS3Uri": "must be an s3:// URI with a path, such as s3://bucket/path/file.jsonl",
    "runtime.S3Uri": "must be an s3:// URI such as s3://bucket/path/file.jsonl",
    "JobName": f"must be {_JOB_NAME}",
    "ModelCustomizationJobIdentifier": f"must be a customization job's ARN, or its name: {_JOB_NAME}",
    "EvaluationJobName": ("must be lowercase letters, digits and hyphens, starting and ending with a letter or "
                          "digit, with no two hyphens in a row"),
    "EvaluationJobIdentifier": ("must be an evaluation job ARN such as "
                                "arn:aws:bedrock:us-east-1:123456789012:evaluation-job/abcdefghijkl"),
    "CustomModelName": f"must be {_NAME}",
    "ModelDeploymentName": f"must be {_NAME}",
    "ProvisionedModelName": f"must be {_NAME}",
    "CustomModelDeploymentIdentifier": f"must be a custom model deployment's ARN, or its name: {_NAME}",
    "ProvisionedModelId": f"must be a provisioned throughput's ARN, or its name: {_NAME}",
    "RoleArn": "must be an IAM role ARN such as arn:aws:iam::123456789012:role/BedrockCustomization",
    "KmsKeyId": "must be a KMS key id, a key ARN, an alias (alias/NAME) or an alias ARN",
    "LambdaArn": "must be a Lambda function ARN such as arn:aws:lambda:us-east-1:123456789012:function:grade",
    "TagKey": "may hold only letters, digits, whitespace and . _ : / = + @ -",
    "TagValue": "may hold only letters, digits, whitespace and . _ : / = + @ -",
    "IdempotencyToken": "must be letters, digits and hyphens, starting and ending with a letter or digit",
    "PaginationToken": "must not contain whitespace (pass back the nextToken of the previous page)",
}


@functools.cache
def pattern_words() -> dict[str, str]:
    """``PATTERN_WORDS`` keyed by the pattern itself, which is all a string checker sees."""
    shapes = _combined()["shapes"]
    return {shapes[name]["pattern"]: words for name, words in PATTERN_WORDS.items()}


@functools.cache
def compiled_pattern(pattern: str) -> re.Pattern[str] | None:
    """A model pattern compiled for ``fullmatch``, or None when it is Java-only syntax."""
    for slow, fast in _LINEAR_EQUIVALENTS:
        pattern = pattern.replace(slow, fast)
    try:
        return re.compile(pattern, re.ASCII)  # Java's \s, \d, \w are ASCII-only by default
    except re.error:
        return None


# ---------------------------------------------------------------- requests


def input_problems(operation: str, params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Check ``params`` against the operation's input shape: ``(coerced params, problems)``.

    Members bound to the URI, query string or headers may be keyed by member name or by their
    wire name (header names in any case); the result is keyed by member name.
    """
    shape_name = _operation(operation).get("input", {}).get("shape")
    if not isinstance(params, dict):
        return {}, [f"request: must be an object, got {show_value(params)}"]
    if shape_name is None:
        return {}, [f"{name}: unknown member" for name in params]
    problems: list[str] = []
    coerced = _check(shape_name, _by_member_name(shape_name, params), "", problems)
    return coerced, problems


def validate_input(operation: str, params: dict[str, Any]) -> dict[str, Any]:
    """The coerced, validated request; raises one ``InvalidInput`` listing every problem."""
    coerced, problems = input_problems(operation, params)
    if problems:
        raise InvalidInput(problems_message(problems))
    return coerced


def member_problems(structure: str, member: str, value: Any) -> list[str]:
    """Problems of ``value`` as the member ``member`` of the model's shape ``structure``.

    For checking one value (an ARN we mint, say) against the contract: ``[]`` when it fits.
    """
    problems: list[str] = []
    _check(_shape(structure)["members"][member]["shape"], value, member, problems)
    return problems


def _by_member_name(shape_name: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with located members' wire names (``x-amz-client-token``) mapped to member names."""
    members = _shape(shape_name)["members"]
    wire_names = {member["locationName"]: name for name, member in members.items()
                  if member.get("location") in ("uri", "querystring")}
    header_names = {member["locationName"].lower(): name for name, member in members.items()
                    if member.get("location") == "header"}
    renamed = {}
    for key, value in params.items():
        if key not in members and isinstance(key, str):
            key = wire_names.get(key) or header_names.get(key.lower()) or key
        renamed[key] = value
    return renamed


# ---------------------------------------------------------------- responses


def shape_output(operation: str, data: dict[str, Any], *, strict: bool | None = None) -> dict[str, Any]:
    """The JSON-ready response body for ``data`` (strict: defaults to ``STRICT_OUTPUT``).

    Strict mode raises ``ValueError`` listing every way ``data`` breaks the output shape: an
    unknown member, a missing required one, a wrong type, enum, range or pattern.
    """
    shape_name = _operation(operation).get("output", {}).get("shape")
    if shape_name is None:
        return {}
    if STRICT_OUTPUT if strict is None else strict:
        problems: list[str] = []
        _check(shape_name, data, "", problems)
        if problems:
            raise ValueError(f"{operation} response breaks the output shape {shape_name}:\n  "
                             + "\n  ".join(problems))
    return _to_wire(shape_name, data)


def format_timestamp(moment: dt.datetime) -> str:
    """ISO-8601 in UTC with a ``Z``, microseconds only when present: botocore's own format.

    A naive datetime is taken as UTC, which is how Tailor stores times. botocore's rest-json
    parser reads it back with ``botocore.utils.parse_timestamp``.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    moment = moment.astimezone(dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if moment.microsecond else "%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(value: Any) -> dt.datetime | None:
    """An aware UTC datetime from a datetime, ISO-8601 text or epoch seconds; None if it is none of these."""
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, bool):
        return None
    elif isinstance(value, (int, float)):
        try:
            return dt.datetime.fromtimestamp(value, dt.timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    elif isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            try:
                return parse_timestamp(float(value)) if math.isfinite(float(value)) else None
            except ValueError:
                return None
    else:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    try:
        return moment.astimezone(dt.timezone.utc)
    except (OverflowError, ValueError):  # 0001-01-01T00:00:00+14:00 is before year 1 in UTC
        return None


def _to_wire(shape_name: str, value: Any) -> Any:
    shape = _shape(shape_name)
    kind = shape["type"]
    if kind == "structure" and not shape.get("document") and isinstance(value, dict):
        return {member.get("locationName", name): _to_wire(member["shape"], value[name])
                for name, member in shape["members"].items() if value.get(name) is not None}
    if kind == "list" and isinstance(value, (list, tuple)):
        return [_to_wire(shape["member"]["shape"], item) for item in value]
    if kind == "map" and isinstance(value, dict):
        return {key: _to_wire(shape["value"]["shape"], item) for key, item in value.items() if item is not None}
    if kind == "timestamp" and not isinstance(value, str):
        moment = parse_timestamp(value)
        return format_timestamp(moment) if moment else value
    if kind == "blob" and isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    return value


# ---------------------------------------------------------------- the checker
# Each _check_<type>(shape, value, path, problems, text) appends "path: problem" lines and returns
# the value coerced; ``text`` is true under members bound to the URI, query string or headers,
# whose values arrive as strings.


def _check(shape_name: str, value: Any, path: str, problems: list[str], text: bool = False) -> Any:
    shape = _shape(shape_name)
    before = len(problems)
    checked = _CHECKERS[shape["type"]](shape, value, path, problems, text)
    if shape_name in JSON_TEXT and len(problems) == before:
        problems.extend(f"{where}: {problem}" for where, problem in json_problems(value, path, inside=True)[1])
    return checked


def _check_structure(shape: dict, value: Any, path: str, problems: list[str], text: bool) -> Any:
    if shape.get("document"):
        return value
    if not isinstance(value, dict):
        problems.append(f"{path or 'request'}: must be an object, got {show_value(value)}")
        return value
    members = shape["members"]
    present = {key: item for key, item in value.items() if item is not None}
    result = {}
    for name, member in members.items():
        if name in present:
            located = text or member.get("location") in _LOCATED
            result[name] = _check(member["shape"], present[name], _join(path, name), problems, located)
        elif name in shape.get("required", ()):
            problems.append(f"{_join(path, name)}: required")
    for key in present:
        if key not in members:
            close = difflib.get_close_matches(str(key), list(members), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{_join(path, writable(str(key)))}: unknown member{hint}")
    if shape.get("union"):
        chosen = [name for name in members if name in present]
        if len(chosen) != 1:
            got = "none" if not chosen else ", ".join(chosen)
            problems.append(f"{path or 'request'}: must set exactly one of {', '.join(members)}, got {got}")
    return result


def _check_list(shape: dict, value: Any, path: str, problems: list[str], text: bool) -> Any:
    if text and isinstance(value, str):
        value = [value]  # a query-string list given once
    if not isinstance(value, (list, tuple)):
        problems.append(f"{path}: must be a list, got {show_value(value)}")
        return value
    if (bounds := _outside(shape, len(value))) is not None:
        problems.append(f"{path}: must have {bounds} items, got {len(value)}")
    item_shape = shape["member"]["shape"]
    return [_check(item_shape, item, f"{path}[{index}]", problems, text) for index, item in enumerate(value)]


def _check_map(shape: dict, value: Any, path: str, problems: list[str], text: bool) -> Any:
    if not isinstance(value, dict):
        problems.append(f"{path}: must be an object, got {show_value(value)}")
        return value
    if (bounds := _outside(shape, len(value))) is not None:
        problems.append(f"{path}: must have {bounds} entries, got {len(value)}")
    result = {}
    for key, item in value.items():
        key_path = f"{path}.{key}" if PLAIN_KEY.fullmatch(str(key)) else f"{path}[{str(key)!r}]"
        key_problems: list[str] = []
        _check(shape["key"]["shape"], key, "key", key_problems)
        problems.extend(f"{key_path}: {problem}" for problem in key_problems)
        result[key] = _check(shape["value"]["shape"], item, key_path, problems, text)
    return result


def _check_string(shape: dict, value: Any, path: str, problems: list[str], text: bool) -> Any:
    if not isinstance(value, str):
        problems.append(f"{path}: must be a string, got {show_value(value)}")
        return value
    got = "" if shape.get("sensitive") else f", got {show_value(value)}"
    if (at := lone_surrogate(value)) is not None:
        problems.append(f"{path}: not valid Unicode: a lone surrogate at character {at}")
    elif (bounds := _outside(shape, len(value))) is not None:
        problems.append(f"{path}: length must be {bounds}, got {len(value)}")
    elif "enum" in shape and value not in shape["enum"]:
        problems.append(f"{path}: must be one of {', '.join(shape['enum'])}{got}")
    elif "pattern" in shape and (pattern := compiled_pattern(shape["pattern"])) is not None:
        if not pattern.fullmatch(value):
            words = pattern_words().get(shape["pattern"]) or f"must match {shape['pattern']}"
            problems.append(f"{path}: {words}{got}")
    return value


def _check_number(shape: dict, value: Any, path: str, problems: list[str], text: bool) -> Any:
    integral = shape["type"] in ("integer", "long")
    expected = "an integer" if integral else "a number"
    if text and isinstance(value, str):
        value = _number_from_text(value, integral)
    wrong_type = isinstance(value, bool) or not isinstance(value, int if integral else (int, float))
    if wrong_type or (not integral and not math.isfinite(value)):
        problems.append(f"{path}: must be {expected}, got {show_value(value)}")
        return value
    if (bounds := _outside(shape, value)) is None and integral:
        # Past the model's own limits only the Java type's remain, and only their words are news.
        low, high = INTEGER_LIMITS[shape["type"]]
        bounds = _outside({"min": low}, value) or _outside({"max": high}, value)
    if bounds is not None:
        problems.append(f"{path}: must be {bounds}, got {_show_number(value)}")
    return value


def _show_number(value: float) -> str:
    if isinstance(value, int) and abs(value) >= 10**40:
        return f"a {len(str(abs(value)))}-digit number"
    return str(value)


def _number_from_text(value: str, integral: bool) -> Any:
    """A query-string number as int or float; the text itself when it is not one."""
    if integral:
        return int(value) if _INTEGER_TEXT.fullmatch(value) else value
    return float(value) if _DECIMAL_TEXT.fullmatch(value) else value


def _check_boolean(shape: dict, value: Any, path: str, problems: list[str], text: bool) -> Any:
    if text and isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    if not isinstance(value, bool):
        problems.append(f"{path}: must be true or false, got {show_value(value)}")
    return value


def _check_timestamp(shape: dict, value: Any, path: str, problems: list[str], text: bool) -> Any:
    moment = parse_timestamp(value)
    if moment is None:
        problems.append(f"{path}: must be an ISO-8601 timestamp or epoch seconds, got {show_value(value)}")
        return value
    return moment


def _check_blob(shape: dict, value: Any, path: str, problems: list[str], text: bool) -> Any:
    data = value
    if isinstance(value, str):
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            problems.append(f"{path}: must be base64-encoded bytes")
            return value
    if not isinstance(data, (bytes, bytearray)):
        problems.append(f"{path}: must be base64-encoded bytes, got {show_value(value)}")
        return value
    if (bounds := _outside(shape, len(data))) is not None:
        problems.append(f"{path}: must be {bounds} bytes long, got {len(data)}")
    return bytes(data)


_CHECKERS: dict[str, Callable[[dict, Any, str, list[str], bool], Any]] = {
    "structure": _check_structure,
    "list": _check_list,
    "map": _check_map,
    "string": _check_string,
    "integer": _check_number,
    "long": _check_number,
    "float": _check_number,
    "double": _check_number,
    "boolean": _check_boolean,
    "timestamp": _check_timestamp,
    "blob": _check_blob,
}


def _outside(shape: dict, size: float) -> str | None:
    """The allowed range as words when ``size`` is outside the shape's min/max, else None."""
    low, high = shape.get("min"), shape.get("max")
    if (low is None or size >= low) and (high is None or size <= high):
        return None
    if low is not None and high is not None:
        return f"between {low} and {high}"
    return f"at least {low}" if low is not None else f"at most {high}"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
