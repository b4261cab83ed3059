"""A bounded fuzz of the HTTP edge: whatever a client sends, the answer is a 4xx in its dialect's shape.

Requests are built from botocore's own service models (``bedrock`` and ``bedrock-runtime``
``service-2.json``, through botocore's loader): for every operation in them, implemented by Tailor
or not, a valid-ish request is generated from its input shape and then mutated — wrong types,
huge, negative and non-finite numbers, overlong strings, lone surrogates, invalid UTF-8, deep
nesting, missing required and extra members, impossible timestamps, random bytes as the body, odd
path segments and query strings. Most are signed with a real key (botocore's ``SigV4Auth`` on an
``AWSRequest`` with the operation's method and URI from the model's HTTP binding), so they get
past authentication and reach validation; some are unsigned, badly signed or carry a bearer token.
The OpenAI routes get bearer requests with mutated bodies, paths and query strings; unknown paths
and wrong methods go to both dialects.

Every answer is checked: no status >= 500; every error parses in its dialect's shape (AWS:
botocore's rest-json parser reads the code from ``x-amzn-ErrorType`` and the JSON body has a
``message``; OpenAI: ``{"error": {"message", "type", "param", "code"}}``); a request the fuzzer made
invalid by construction is refused with a 4xx; and when a field mutation is refused as a
validation error, the message names that field.

Nothing heavy may start: the server runs without the job runner (``--no-runner``), data points at
missing objects, and a request names a model Tailor could load (so that its body reaches the
converters) only when the fuzzer made it invalid by construction — so the inference engine must
never start. The seed is fixed: a failure reproduces with the same requests.
"""

from __future__ import annotations

import base64
import collections
import functools
import http.client
import json
import random
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_from_bytes

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.loaders import Loader
from botocore.parsers import RestJSONParser

from tailor.api.bedrock.control import OPERATIONS as CONTROL_OPERATIONS
from tests.api.conftest import ALIASES, COMMAND, HAIKU, TITAN, running_server

SEED = 1729
PER_IMPLEMENTED = 96  # requests per operation Tailor answers
PER_UNIMPLEMENTED = 5  # ... and per operation it does not (an AWS-shaped 404)
OPENAI_REQUESTS = 420
ROUTE_REQUESTS = 120

RUNTIME_OPERATIONS = {"InvokeModel", "InvokeModelWithResponseStream", "Converse", "ConverseStream", "CountTokens"}
LLAMA = "meta.llama3-1-8b-instruct-v1:0:128k"
FUZZ_ALIASES = {**ALIASES, LLAMA: "tailor.tiny"}
# Model ids the fuzz server can load, by the InvokeModel body they take. Only requests the fuzzer
# made invalid name them, so that their bodies reach the converters without starting the engine.
LOADABLE = {"openai": "tailor.tiny", "anthropic": HAIKU, "cohere": COMMAND, "titan": TITAN, "llama": LLAMA}
# Control-plane members that name the model a deployment would load at once.
DEPLOYING = {"CreateProvisionedModelThroughput": "modelId", "CreateCustomModelDeployment": "modelArn",
             "UpdateProvisionedModelThroughput": "desiredModelId", "UpdateCustomModelDeployment": "modelArn"}
MISSING_MODEL = "fuzz.missing-model-v1"
# One dataset alice owns (questions with reference answers: an evaluation reads it; with the runner
# off, a customization job that names it only waits in the queue).
DATA_URI = "s3://fuzz-bucket/data.jsonl"
DATA = [{"prompt": f"Question {n}?", "referenceResponse": f"Answer {n}.", "category": "fuzz"} for n in range(3)]
# Bad JSON texts for inferenceParams, a string the model says holds JSON; the bool says whether
# Tailor must refuse it (a huge maxTokens is only a long answer).
INFERENCE_PARAMS_MUTATIONS = (('{"inferenceConfig": {"maxTokens": 1e999}}', True),
                              ('{"inferenceConfig": {"temperature": NaN}}', True),
                              ('{"inferenceConfig": {"maxTokens": "\\ud800"}}', True),
                              ("[" * 500 + "]" * 500, True), ("not json", True), ("[1, 2]", True),
                              ('{"inferenceConfig": {"maxTokens": 100000000000000000000}}', False))
DEEP_LEVELS = 150  # parses as JSON; deeper than any request needs
VERY_DEEP_LEVELS = 5000  # deeper than Python's json module can parse
LOCATED_MAX = 3000  # longest value put into a path, query or header (uvicorn's request head limit is 16 KiB)
EXTRA = "fuzzExtraMember"
ANSWER_SECONDS = 20  # a refusal takes milliseconds; this long means something started real work

# Candidate strings, tried in order against a member's pattern and length limits.
STRINGS = [
    MISSING_MODEL, "arn:aws:iam::000000000000:role/fuzz", DATA_URI,
    "arn:aws:bedrock:us-east-1:000000000000:custom-model/tailor.tiny/abcdefghijkl",
    "arn:aws:bedrock:us-east-1:000000000000:provisioned-model/abcdefghijkl",
    "arn:aws:bedrock:us-east-1:000000000000:model-customization-job/tailor.tiny/abcdefghijkl",
    "arn:aws:bedrock:us-east-1::foundation-model/tailor.tiny",
    "arn:aws:lambda:us-east-1:000000000000:function:fuzz",
    "arn:aws:kms:us-east-1:000000000000:key/12345678-1234-1234-1234-123456789012",
    "fuzz-name", "fuzz", "abcdefghijkl", "us-east-1", "1", "a",
]
# Members where a real model id lets a request reach further (no runner: nothing starts).
REAL_MODEL_MEMBERS = {"baseModelIdentifier", "modelIdentifier"}
# Values that get a request past the service's first checks, by member name.
HINTS = {"metricNames": "ExactMatch", "inferenceParams": '{"inferenceConfig": {"maxTokens": 8, "temperature": 0}}'}

# InvokeModel bodies per kind (every number in them is range-checked), with their required keys.
NATIVE_BODIES: dict[str, tuple[dict, tuple[str, ...]]] = {
    "anthropic": ({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 8, "system": "Be brief.",
                   "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                   "temperature": 0.5, "top_p": 0.9, "top_k": 5, "stop_sequences": ["x"]},
                  ("anthropic_version", "max_tokens", "messages")),
    "cohere": ({"prompt": "hi", "max_tokens": 8, "temperature": 0.5, "p": 0.9, "k": 5, "stop_sequences": ["x"]},
               ("prompt",)),
    "titan": ({"inputText": "hi", "textGenerationConfig": {"maxTokenCount": 8, "temperature": 0.5, "topP": 0.9,
                                                           "stopSequences": ["x"]}}, ("inputText",)),
    "llama": ({"prompt": "hi", "max_gen_len": 8, "temperature": 0.5, "top_p": 0.9}, ("prompt",)),
    "openai": ({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
                "max_tokens": 8, "temperature": 0.5, "top_p": 0.9, "stop": ["x"]}, ("messages",)),
}


class Raw:
    """Bytes written into the request as they are: what ``json.dumps`` cannot write (``1e999``,
    invalid UTF-8, nesting deeper than it recurses)."""

    def __init__(self, data: bytes):
        self.data = data


@dataclass
class Mutation:
    kind: str
    invalid: bool  # invalid by construction: the server must refuse it
    field: str | None = None  # the member a validation error must name


@dataclass
class Sent:
    target: str  # operation or route
    kind: str
    method: str
    path: str
    body: bytes
    headers: dict[str, str]
    invalid: bool
    field: str | None
    dialect: str  # "aws" or "openai"


# ---------------------------------------------------------------- the models


@dataclass(frozen=True)
class Operation:
    name: str
    method: str
    uri: str
    input: str | None
    shapes: dict

    @property
    def implemented(self) -> bool:
        return self.name in CONTROL_OPERATIONS or self.name in RUNTIME_OPERATIONS

    def members(self) -> dict:
        return self.shapes[self.input]["members"] if self.input else {}

    def payload(self) -> str | None:
        return self.shapes[self.input].get("payload") if self.input else None


def operations() -> list[Operation]:
    found = []
    for service in ("bedrock", "bedrock-runtime"):
        model = Loader().load_service_model(service, "service-2")
        for name, spec in sorted(model["operations"].items()):
            binding = spec["http"]
            found.append(Operation(name, binding["method"], binding["requestUri"],
                                   spec.get("input", {}).get("shape"), model["shapes"]))
    return found


@functools.cache
def _pattern(text: str) -> re.Pattern | None:
    try:
        return re.compile(text, re.ASCII)
    except re.error:  # Java-only syntax (\p{L}): no pattern to follow
        return None


# ---------------------------------------------------------------- valid-ish values


def sample(shapes: dict, name: str, rng: random.Random, member: str = "", depth: int = 0) -> Any:
    """A value of the shape that mostly passes the model's checks (patterns are followed where a
    candidate fits, so some values will not)."""
    shape = shapes[name]
    kind = shape["type"]
    if kind == "structure":
        if shape.get("document"):
            return {"fuzz": [1, "two", {"three": 3.5}]}
        members = shape["members"]
        if shape.get("union"):
            chosen = "text" if "text" in members and rng.random() < 0.7 else rng.choice(sorted(members))
            return {chosen: sample(shapes, members[chosen]["shape"], rng, chosen, depth + 1)}
        required = set(shape.get("required", ()))
        return {key: sample(shapes, spec["shape"], rng, key, depth + 1) for key, spec in members.items()
                if key in required or (depth < 8 and rng.random() < 0.4)}
    if kind == "list":
        count = max(shape.get("min", 1), 1) if shape.get("min", 1) > 2 else rng.choice((1, 2))
        count = min(count, shape.get("max", count))
        return [sample(shapes, shape["member"]["shape"], rng, member, depth + 1) for _ in range(count)]
    if kind == "map":
        key = sample(shapes, shape["key"]["shape"], rng, member, depth + 1)
        return {key: sample(shapes, shape["value"]["shape"], rng, member, depth + 1)}
    if kind == "string":
        return _string(shape, member, rng)
    if kind in ("integer", "long"):
        return min(max(shape.get("min", 1), 1), shape.get("max", 10**6))
    if kind in ("float", "double"):
        return min(max(shape.get("min", 0.5), 0.5), shape.get("max", 1.0))
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "timestamp":
        return "2024-05-01T12:00:00Z"
    if kind == "blob":
        return base64.b64encode(b"fuzz").decode()
    raise AssertionError(f"unknown shape type {kind}")


def _string(shape: dict, member: str, rng: random.Random) -> str:
    if "enum" in shape:
        return rng.choice(shape["enum"])
    if member in HINTS:
        return HINTS[member]
    low, high = shape.get("min", 0), shape.get("max", 10**6)
    pattern = _pattern(shape["pattern"]) if "pattern" in shape else None
    candidates = (["tailor.tiny"] if member in REAL_MODEL_MEMBERS and rng.random() < 0.5 else
                  ["s3://fuzz-bucket/output/"] if member == "s3Uri" and rng.random() < 0.5 else []) + STRINGS
    for candidate in candidates:
        if low <= len(candidate) <= high and (pattern is None or pattern.fullmatch(candidate)):
            return candidate
    return ("fuzz" * (low // 4 + 1))[:max(low, min(4, high))]


# ---------------------------------------------------------------- mutations of modelled values


@dataclass
class Site:
    path: tuple  # member names, map keys and list indexes from the request's root
    shape: dict
    location: str | None  # uri, querystring, header, or None for the JSON body
    member: str  # the nearest member name or map key


def sites(shapes: dict, name: str, value: Any, path: tuple = (), location: str | None = None,
          member: str = "") -> list[Site]:
    shape = shapes[name]
    found = [Site(path, shape, location, member)]
    if shape["type"] == "structure" and not shape.get("document") and isinstance(value, dict):
        for key, spec in shape["members"].items():
            if key in value:
                where = spec.get("location") if not path else location
                found += sites(shapes, spec["shape"], value[key], path + (key,), where, key)
    elif shape["type"] == "list" and isinstance(value, list):
        for index, item in enumerate(value):
            found += sites(shapes, shape["member"]["shape"], item, path + (index,), location, member)
    elif shape["type"] == "map" and isinstance(value, dict):
        for key, item in value.items():
            found += sites(shapes, shape["value"]["shape"], item, path + (key,), location, str(key))
    return found


def pick_site(found: list[Site], rng: random.Random) -> Site:
    """A site to mutate; numbers, timestamps and JSON text -- few in a request, where the checks
    of ranges and formats live -- four times as likely as the rest."""
    weights = [4 if site.shape["type"] in ("integer", "long", "float", "double", "timestamp")
               or site.member in HINTS else 1 for site in found]
    return rng.choices(found, weights)[0]


def _outside(shape: dict, size: float) -> bool:
    return size < shape.get("min", -float("inf")) or size > shape.get("max", float("inf"))


def _deep(rng: random.Random) -> Any:
    if rng.random() < 0.5:
        return Raw(b"[" * VERY_DEEP_LEVELS + b"]" * VERY_DEEP_LEVELS)
    value: Any = "bottom"
    for _ in range(DEEP_LEVELS):
        value = {"a": value}
    return value


NONFINITE = (b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999")
TIMESTAMPS = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "not-a-time", "2024-13-45T99:99:99Z",
              "NaN", "1e999", -1e20, 1e20)


def site_mutations(site: Site, value: Any, rng: random.Random) -> list[tuple[Mutation, Any]]:
    """Every mutation that fits the site, as ``(mutation, new value)``; those of its type come twice
    as often as the generic ones (null, wrong type, deep, non-finite)."""
    shape, kind = site.shape, site.shape["type"]
    body = site.location is None
    located = not body
    document = bool(shape.get("document"))
    name = site.member or None
    out: list[tuple[Mutation, Any]] = [(Mutation("null", False), None)]
    others = [other for other in (7, "seven", [1], {"a": 1}, True) if _json_kind(other) != _json_kind(value)]
    out.append((Mutation("wrong_type", body and not document and bool(site.path), name), rng.choice(others)))
    if body:
        out.append((Mutation("deep", True), _deep(rng)))
        out.append((Mutation("nonfinite", True, name if not document else None), Raw(rng.choice(NONFINITE))))
    if kind == "string":
        longest = shape.get("max")
        size = longest + 1 if longest is not None else 70_000
        if located:
            size = min(size, LOCATED_MAX)
        out.append((Mutation("overlong", longest is not None and size > longest, name), "x" * size))
        out.append((Mutation("surrogate", body, name), f"{value}\ud800" if isinstance(value, str) else "\ud800"))
        out.append((Mutation("invalid_utf8", body), Raw(b'"fuzz\xff\xfe"' if body else b"fuzz\xff\xed\xa0\x80")))
        out.append((Mutation("empty", _outside(shape, 0), name), ""))
        out.append((Mutation("unicode", False), "\u16a0\U0001f600\u202e\u200b\u0000"))
        if "enum" in shape:
            out.append((Mutation("enum", True, name), "NOT_AN_ENUM_VALUE"))
        if site.member == "inferenceParams":
            text, refused = rng.choice(INFERENCE_PARAMS_MUTATIONS)
            out += [(Mutation("json_text", refused, name), text)] * 4
    elif kind in ("integer", "long", "float", "double"):
        integral = kind in ("integer", "long")
        huge = rng.choice((10**20, -10**20, 2**63, 2**64 + 1))
        out.append((Mutation("huge", integral or _outside(shape, huge), name), huge))
        out.append((Mutation("digits", True, None if body else name), Raw(b"9" * 5000)))
        out.append((Mutation("negative", _outside(shape, -1), name), -1))
        if located:
            out.append((Mutation("nonfinite", True, name), Raw(rng.choice(NONFINITE))))
        if integral:
            out.append((Mutation("fraction", True, name), 1.5))
    elif kind == "boolean":
        out.append((Mutation("bool_text", body, name), "maybe" if located else "true"))
    elif kind == "timestamp":
        out.append((Mutation("timestamp", True, name), rng.choice(TIMESTAMPS)))
    elif kind == "structure" and not document and isinstance(value, dict):
        present_required = [key for key in shape.get("required", ()) if key in value]
        if present_required:
            gone = rng.choice(present_required)
            out.append((Mutation("missing_required", True, gone), {k: v for k, v in value.items() if k != gone}))
        out.append((Mutation("extra_member", True, EXTRA), {**value, EXTRA: 1}))
        out.append((Mutation("surrogate_key", True), {**value, "\ud800": 1}))
    elif kind == "list" and isinstance(value, list) and value:
        if shape.get("max") is not None and shape["max"] < 300:
            out.append((Mutation("too_many", True, name), value * (shape["max"] + 1)))
        out.append((Mutation("empty", _outside(shape, 0), name), []))
    elif kind == "map" and isinstance(value, dict) and value:
        first = next(iter(value.values()))
        out.append((Mutation("surrogate_key", body), {"\ud800key": first}))
    if document:
        out.append((Mutation("surrogate", True), {"text": "\ud800"}))
    generic = 4 if body else 2
    return out + out[generic:]


def _json_kind(value: Any) -> str:
    return type(value).__name__ if not isinstance(value, bool) else "bool"


def put(root: Any, path: tuple, value: Any) -> Any:
    """``root`` with the value at ``path`` replaced; copies along the path, so samples stay intact."""
    if not path:
        return value
    copy = list(root) if isinstance(root, list) else dict(root)
    copy[path[0]] = put(root[path[0]], path[1:], value)
    return copy


def get(root: Any, path: tuple) -> Any:
    for step in path:
        root = root[step]
    return root


# ---------------------------------------------------------------- mutations of free JSON (InvokeModel, OpenAI)


def tree_sites(value: Any, path: tuple = ()) -> list[tuple]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += tree_sites(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += tree_sites(item, path + (index,))
    return found


def mutate_tree(body: dict, required: tuple[str, ...], rng: random.Random) -> tuple[Mutation, Any]:
    """A native or OpenAI body with one mutation. Every field of the bodies above is checked by
    Tailor's converters, so each mutation but null, empty, overlong and unicode makes it invalid."""
    path = rng.choice(tree_sites(body))
    value = get(body, path)
    name = next((step for step in reversed(path) if isinstance(step, str)), None)
    options: list[tuple[Mutation, Any]] = [(Mutation("null", False), None), (Mutation("deep", True), _deep(rng)),
                                           (Mutation("nonfinite", True, name), Raw(rng.choice(NONFINITE)))]
    if path:  # (a list of stop sequences may be one string)
        others = [other for other in (7, "seven", [1], {"a": 1}, True)
                  if _json_kind(other) != _json_kind(value) and not (isinstance(value, list) and other == "seven")]
        options.append((Mutation("wrong_type", True, name), rng.choice(others)))
    if isinstance(value, str):
        options += [(Mutation("surrogate", True, name), value + "\ud800"),
                    (Mutation("invalid_utf8", True), Raw(b'"fuzz\xff\xfe"')),
                    (Mutation("overlong", False), "x" * 70_000), (Mutation("empty", False), ""),
                    (Mutation("unicode", False), "\u16a0\U0001f600\u202e\u200b\u0000")]
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        options += [(Mutation("huge", True, name), rng.choice((10**20, -10**20, 2**63))),
                    (Mutation("digits", True), Raw(b"9" * 5000)), (Mutation("negative", True, name), -1)]
    elif isinstance(value, dict):
        options += [(Mutation("extra_member", True, EXTRA), {**value, EXTRA: 1}),
                    (Mutation("surrogate_key", True), {**value, "\ud800": 1})]
        if not path:
            gone = rng.choice(required)
            options.append((Mutation("missing_required", True, gone), {k: v for k, v in value.items() if k != gone}))
    mutation, new = rng.choice(options)
    return mutation, put(body, path, new)


def byte_mutations(body: bytes, rng: random.Random) -> list[tuple[Mutation, bytes]]:
    """Whole-body mutations; each leaves no JSON object, so every one is invalid."""
    noise = rng.randbytes(rng.randint(1, 300))
    if not noise.strip():
        noise = b"!" + noise
    cut = rng.randint(1, max(len(body) - 1, 1))
    spot = rng.randint(0, len(body))
    out = [(Mutation("random_bytes", True), noise),
           (Mutation("invalid_utf8", True), body[:spot] + rng.choice((b"\xff", b"\xc3", b"\xed\xa0\x80")) + body[spot:]),
           (Mutation("not_object", True), rng.choice((b"[1, 2]", b'"text"', b"null", b"7", b"true"))),
           (Mutation("very_deep", True), b"[" * VERY_DEEP_LEVELS + b"]" * VERY_DEEP_LEVELS)]
    if len(body) > 2:
        out.append((Mutation("truncated", True), body[:cut]))
    return out


# ---------------------------------------------------------------- wire encoding


def encode_json(value: Any) -> bytes:
    """JSON with lone surrogates escaped (``\\ud800``, as any JSON encoder writes them) and Raw
    pieces spliced in as they are."""
    pieces: list[bytes] = []

    def swap(node: Any) -> Any:
        if isinstance(node, Raw):
            pieces.append(node.data)
            return f"@@raw{len(pieces) - 1}@@"
        if isinstance(node, dict):
            return {key: swap(item) for key, item in node.items()}
        if isinstance(node, list):
            return [swap(item) for item in node]
        return node

    text = json.dumps(swap(value)).encode("ascii")
    for index, piece in enumerate(pieces):
        text = text.replace(f'"@@raw{index}@@"'.encode(), piece)
    return text


def text_bytes(value: Any) -> bytes:
    """A path, query or header value as bytes (a lone surrogate as its 3 invalid UTF-8 bytes)."""
    if isinstance(value, Raw):
        return value.data
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, (dict, list)):
        return encode_json(value)
    return str(value).encode("utf-8", "surrogatepass")


def header_text(value: Any) -> str:
    # Control characters would make the HTTP layer (h11) refuse the request before Tailor sees it.
    return re.sub(r"[\x00-\x1f\x7f]", "?", text_bytes(value)[:LOCATED_MAX].decode("latin-1"))


def http_parts(op: Operation, params: dict, body_override: bytes | None = None) -> tuple[str, dict, bytes]:
    """``(path with query, headers, body)`` of a request to ``op`` carrying ``params``."""
    members = op.members()
    path = op.uri.split("?", 1)[0]
    query: list[tuple[bytes, bytes]] = []
    headers: dict[str, str] = {}
    body_members: dict = {}
    body: bytes | None = body_override
    for key, value in params.items():
        spec = members.get(key, {})
        location, wire = spec.get("location"), spec.get("locationName", key)
        if value is None and location:
            continue
        if location == "uri":
            greedy = "{" + wire + "+}" in path
            segment = quote_from_bytes(text_bytes(value), safe="/" if greedy else "")
            path = path.replace("{" + wire + ("+}" if greedy else "}"), segment)
        elif location == "querystring":
            items = value.items() if isinstance(value, dict) else ((wire, item) for item in
                                                                  (value if isinstance(value, list) else [value]))
            query += [(text_bytes(name), text_bytes(item)) for name, item in items]
        elif location == "header":
            headers[wire] = header_text(value)
        elif key == op.payload() and body is None:
            body = value.data if isinstance(value, Raw) else value if isinstance(value, bytes) else encode_json(value)
        elif key != op.payload():
            body_members[wire] = value
    path = re.sub(r"\{[^}]*\}", "", path)
    if query:
        path += "?" + "&".join(f"{quote_from_bytes(k, safe='-_.~')}={quote_from_bytes(v, safe='-_.~')}"
                               for k, v in query)
    if body is None:
        body = encode_json(body_members) if body_members or op.method in ("POST", "PUT", "PATCH") else b""
    if body and not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = "application/json"
    return path, headers, body


# ---------------------------------------------------------------- requests per operation


def bedrock_requests(op: Operation, count: int, rng: random.Random) -> list[Sent]:
    sent = []
    for index in range(count):
        params = sample(op.shapes, op.input, rng) if op.input else {}
        native_kind = rng.choice(sorted(NATIVE_BODIES)) if op.name.startswith("InvokeModel") else None
        native: Any = NATIVE_BODIES[native_kind][0] if native_kind else None
        if native is not None:
            params["body"] = b""  # its place; the native body goes in once mutated
            params["contentType"] = "application/json"  # so that the body is what gets judged
            params.pop("guardrailIdentifier", None)
        mutation, raw_body, mutated = Mutation("valid-ish", False), None, ()
        roll = rng.random()
        if index == 0:
            pass
        elif roll < 0.7 and native is not None and rng.random() < 0.7:
            mutation, native = mutate_tree(native, NATIVE_BODIES[native_kind][1], rng)
        elif roll < 0.7:
            found = sites(op.shapes, op.input, params) if op.input else [
                Site((), {"type": "structure", "members": {}}, None, "")]
            if native is not None:  # the blob payload is the native body, mutated above
                found = [site for site in found if site.path[:1] != (op.payload(),)]
            site = pick_site(found, rng)
            options = site_mutations(site, get(params, site.path), rng)
            if not site.path:  # the root: only structural mutations make sense
                options = [option for option in options if option[0].kind in (
                    "missing_required", "extra_member", "surrogate_key")] or [(Mutation("valid-ish", False), params)]
                if native is not None:
                    options = [option for option in options if option[0].kind == "missing_required"] or [
                        (Mutation("valid-ish", False), params)]
            mutation, new = rng.choice(options)
            params, mutated = put(params, site.path, new), site.path
        elif roll < 0.85:
            _, _, body = http_parts(op, params, encode_json(native) if native is not None else None)
            mutation, raw_body = rng.choice(byte_mutations(body, rng))
        elif roll < 0.95:
            mutation = Mutation("query_junk", False)
        if native is not None and "body" in params:  # unless the mutation removed it
            params = {**params, "body": encode_json(native)}
        model_member = "modelId" if op.name in RUNTIME_OPERATIONS else DEPLOYING.get(op.name)
        if model_member and model_member in params and mutated[:1] != (model_member,):
            # Only a request that must be refused may name a model Tailor would load.
            loadable = LOADABLE[native_kind or rng.choice(sorted(LOADABLE))]
            params[model_member] = loadable if mutation.invalid else MISSING_MODEL
        path, headers, body = http_parts(op, params, raw_body)
        if mutation.kind == "query_junk":
            junk = rng.choice(("fuzzParam=1", "maxResults=%ED%A0%80", "maxResults=" + "9" * 5000,
                               "nextToken=%FF%FE", "sortOrder=Sideways", "%zz=%zz", "a=" + "x" * 2000,
                               "creationTimeAfter=0001-01-01T00%3A00%3A00%2B14%3A00", "statusEquals=NaN"))
            path += ("&" if "?" in path else "?") + junk
        sent.append(Sent(op.name, mutation.kind, op.method, path, body, headers, mutation.invalid, mutation.field,
                         "aws"))
    return sent


# ---------------------------------------------------------------- OpenAI routes and stray requests


def openai_requests(count: int, rng: random.Random) -> list[Sent]:
    sent = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.7:
            body, required = dict(NATIVE_BODIES["openai"][0]), NATIVE_BODIES["openai"][1] + ("model",)
            body["model"] = MISSING_MODEL
            if rng.random() < 0.3:
                body["stream"] = True
            if rng.random() < 0.75:
                mutation, body = mutate_tree(body, required, rng)
                if mutation.invalid and isinstance(body, dict) and body.get("model") == MISSING_MODEL:
                    body["model"] = LOADABLE["openai"]
                raw = encode_json(body)
            else:
                body["model"] = LOADABLE["openai"]
                mutation, raw = rng.choice(byte_mutations(encode_json(body), rng))
            sent.append(Sent("openai.chat_completions", mutation.kind, "POST", "/v1/chat/completions", raw,
                             {"Content-Type": "application/json"}, mutation.invalid, mutation.field, "openai"))
        elif roll < 0.8:
            query = rng.choice(("", "?limit=%ED%A0%80", "?x=" + "y" * 2000))
            sent.append(Sent("openai.models", "query", "GET", "/v1/models" + query, rng.choice((b"", b"\xff\xfe")),
                             {}, False, None, "openai"))
        else:
            job = rng.choice(("%ED%A0%80", "x" * 2000, "..%2F..%2Fetc", "%FF", "fuzz-job", "a/b/c",
                              "arn%3Aaws%3Abedrock%3Aus-east-1%3A000000000000%3Amodel-customization-job%2Fx%2Fabc"))
            limit, invalid = rng.choice((("20", False), ("0", True), ("-1", True), ("1e999", True), ("NaN", True),
                                         ("99999999999999999999", True), ("9" * 5000, True), ("%C2%B2", True),
                                         ("abc", True), ("%ED%A0%80", True)))
            after = rng.choice(("", "&after=%ED%A0%80", "&after=" + "z" * 1000, "&after=ftevent-x"))
            sent.append(Sent("openai.fine_tuning.jobs.events", "path_query", "GET",
                             f"/v1/fine_tuning/jobs/{job}/events?limit={limit}{after}", b"", {}, invalid, None, "openai"))
    return sent


STRAY_PATHS = ("/", "/fuzz", "/v1", "/v1/", "/v1/fuzz", "/v1/chat", "/v1/chat/completions/x", "/model",
               "/model/x", "/model/tailor.tiny/fuzz", "/%ED%A0%80", "/%FF", "/foundation-models/x/y/fuzz/..",
               "/model-customization-jobs/x/stop/extra", "/evaluation-jobs/batch-delete/x")


def stray_requests(ops: list[Operation], count: int, rng: random.Random) -> list[Sent]:
    """Unknown paths, and known paths with a method no operation takes there."""
    methods_by_path = collections.defaultdict(set)
    for op in ops:
        methods_by_path[re.sub(r"\{[^}]*\}", "fuzz", op.uri.split("?")[0])].add(op.method)
    methods_by_path.update({"/v1/chat/completions": {"POST"}, "/v1/models": {"GET"}})
    known = sorted(methods_by_path)
    sent = []
    for _ in range(count):
        if rng.random() < 0.5:
            path, method = rng.choice(STRAY_PATHS), rng.choice(("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"))
        else:
            path = rng.choice(known)
            wrong = sorted({"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"} - methods_by_path[path])
            method = rng.choice(wrong)
        # Bedrock's own data-retention paths start with /v1 too: they answer as AWS does.
        openai = path in ("/v1/chat/completions", "/v1/models") or path in STRAY_PATHS and path.startswith("/v1")
        dialect = "openai" if openai else "aws"
        sent.append(Sent("stray", "route", method, path, rng.choice((b"", b"{}", b"\xff")), {}, False, None,
                         dialect))
    return sent


# ---------------------------------------------------------------- sending and checking


class Connection:
    """One keep-alive HTTP connection, reopened when the server closes it."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.http = http.client.HTTPConnection(host, port, timeout=ANSWER_SECONDS)

    def send(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict, bytes]:
        """``(status, headers with lowercase names, body)``; status 0 when no answer came in time."""
        for attempt in range(2):
            try:
                self.http.request(method, path, body=body, headers=headers)
                response = self.http.getresponse()
                data = response.read()
                if response.will_close:
                    self.http.close()
                return response.status, {k.lower(): v for k, v in response.getheaders()}, data
            except TimeoutError:
                self._reopen()
                return 0, {}, b""
            except (http.client.HTTPException, ConnectionError):
                self._reopen()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _reopen(self) -> None:
        self.http.close()
        self.http = http.client.HTTPConnection(self.host, self.port, timeout=ANSWER_SECONDS)


def authorize(sent: Sent, endpoint: str, keys: dict[str, tuple[str, str]], rng: random.Random) -> tuple[dict, str]:
    """Headers with credentials: mostly a SigV4 signature by alice (or bob), sometimes a bearer
    token, none, or a bad signature. The OpenAI routes take bearer tokens."""
    roll = rng.random()
    key_id, secret = keys["bob" if roll > 0.97 else "alice"]
    if sent.dialect == "openai" and sent.target != "stray":
        if roll < 0.9:
            return {**sent.headers, "Authorization": f"Bearer {key_id}.{secret}"}, "bearer"
        return {**sent.headers, **rng.choice(({}, {"Authorization": "Bearer nope"},
                                              {"Authorization": f"Bearer {key_id}.wrong"}))}, "refused"
    if roll < 0.04:
        return dict(sent.headers), "refused"
    if roll < 0.07:
        return {**sent.headers, "Authorization": f"Bearer {key_id}.{secret}"}, "bearer"
    request = AWSRequest(method=sent.method, url=endpoint + sent.path, data=sent.body, headers=dict(sent.headers))
    good = roll >= 0.10
    SigV4Auth(Credentials(key_id, secret if good else secret[::-1]), "bedrock", "us-east-1").add_auth(request)
    return dict(request.prepare().headers.items()), "sigv4" if good else "refused"


def check(sent: Sent, status: int, headers: dict, body: bytes, auth: str) -> list[str]:
    """What is wrong with the answer to ``sent``: nothing, one would hope."""
    if status == 0:
        return [f"no answer within {ANSWER_SECONDS} s"]
    problems = []
    if status >= 500:
        problems.append(f"status {status}")
    if (sent.invalid or auth == "refused") and status < 400:
        problems.append(f"invalid request accepted ({status})")
    if status < 400:
        try:
            json.loads(body)
        except ValueError:
            problems.append("success body is not JSON")
        return problems
    try:
        data = json.loads(body)
    except ValueError:
        return problems + ["error body is not JSON"]
    if sent.dialect == "openai":
        error = data.get("error") if isinstance(data, dict) else None
        if not (isinstance(error, dict) and isinstance(error.get("message"), str) and isinstance(error.get("type"), str)
                and "param" in error and "code" in error):
            return problems + ["error body is not OpenAI's {error: {message, type, param, code}}"]
        message, validation = error["message"], status == 400 and error["code"] == "invalid_value"
    else:
        code = headers.get("x-amzn-errortype")
        if not code:
            return problems + ["no x-amzn-ErrorType header"]
        if not (isinstance(data, dict) and isinstance(data.get("message"), str)):
            return problems + ["error body has no message"]
        parsed = RestJSONParser().parse({"status_code": status, "headers": headers, "body": body}, None)
        if parsed["Error"]["Code"] != code.split(":")[0] or parsed["Error"]["Message"] != data["message"]:
            problems.append(f"botocore reads the error as {parsed['Error']}")
        message, validation = data["message"], code == "ValidationException"
    if validation and sent.invalid and auth != "refused" and sent.field and sent.field not in message:
        problems.append(f"the message does not name {sent.field!r}")
    return problems


def _openai_code(body: bytes) -> str | None:
    try:
        error = json.loads(body)["error"]
        return f"openai:{error['code'] or error['type']}"
    except (ValueError, KeyError, TypeError):
        return None


@pytest.fixture
def fuzz_server(tmp_path):
    # No models linked in: nothing here may load one (the engine must never start).
    home = tmp_path / "home"
    with running_server(home, FUZZ_ALIASES, args=("--no-runner",)) as server:
        server.put(DATA_URI, DATA)
        yield server


def test_no_input_gets_a_5xx_and_every_error_keeps_its_dialect_shape(fuzz_server, capsys):
    rng = random.Random(SEED)
    ops = operations()
    requests: list[Sent] = []
    for op in ops:
        requests += bedrock_requests(op, PER_IMPLEMENTED if op.implemented else PER_UNIMPLEMENTED, rng)
    requests += openai_requests(OPENAI_REQUESTS, rng)
    requests += stray_requests(ops, ROUTE_REQUESTS, rng)

    host, port = fuzz_server.endpoint.removeprefix("http://").split(":")
    connection = Connection(host, int(port))
    statuses: collections.Counter = collections.Counter()
    codes: collections.Counter = collections.Counter()  # the error codes answered, for the summary
    failures: dict[tuple[str, str, str], list] = collections.defaultdict(list)
    started = time.monotonic()
    for sent in requests:
        headers, auth = authorize(sent, fuzz_server.endpoint, fuzz_server.keys, rng)
        status, answer_headers, answer = connection.send(sent.method, sent.path, sent.body, headers)
        statuses[status // 100] += 1
        codes[answer_headers.get("x-amzn-errortype") or _openai_code(answer) or str(status)] += 1
        for problem in check(sent, status, answer_headers, answer, auth):
            failures[(sent.target, sent.kind, problem)].append((sent, status, answer))
    elapsed = time.monotonic() - started

    with capsys.disabled():
        print(f"\nfuzz: {len(requests)} requests in {elapsed:.1f} s: "
              + ", ".join(f"{n}xx {statuses[n]}" for n in sorted(statuses))
              + "\n  answers: " + ", ".join(f"{code} {count}" for code, count in codes.most_common()))
    report = []
    for (target, kind, problem), cases in sorted(failures.items(), key=lambda item: -len(item[1])):
        sent, status, answer = cases[0]
        report.append(f"{len(cases):4d}x {target} [{kind}] {problem}: {sent.method} {sent.path[:160]} "
                      f"body={sent.body[:160]!r} -> {status} {answer[:240]!r}")
    assert not report, f"{sum(len(c) for c in failures.values())} bad answers:\n" + "\n".join(report)
    assert not (fuzz_server.home / "logs" / "engine.log").exists(), "a fuzz request started the inference engine"


def test_the_fuzzer_covers_every_operation_of_both_models():
    ops = operations()
    assert len({op.name for op in ops}) == len(ops) > 100
    implemented = {op.name for op in ops if op.implemented}
    assert implemented == set(CONTROL_OPERATIONS) | RUNTIME_OPERATIONS
