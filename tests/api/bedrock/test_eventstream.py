"""Event-stream bytes decoded by botocore itself, message by message and as a boto3 client parses a stream."""

from __future__ import annotations

import base64
import json
import struct
import zlib

import pytest
from botocore.awsrequest import HeadersDict
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer
from botocore.exceptions import ClientError, EventStreamError
from botocore.loaders import Loader
from botocore.model import ServiceModel
from botocore.parsers import create_parser

from tailor.api.bedrock import eventstream


@pytest.fixture(scope="module")
def runtime_model() -> ServiceModel:
    return ServiceModel(Loader().load_service_model("bedrock-runtime", "service-2"), "bedrock-runtime")


class FakeRawStream:
    """What botocore's EventStream reads: an object whose ``stream()`` yields the body in pieces."""

    def __init__(self, pieces: list[bytes]):
        self.pieces = pieces
        self.closed = False

    def stream(self):
        yield from self.pieces

    def close(self):
        self.closed = True


def in_pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def parse_stream(model: ServiceModel, operation: str, data: bytes, piece_size: int | None = None) -> dict:
    """The response dict boto3 hands its user, parsed by botocore's rest-json parser."""
    operation_model = model.operation_model(operation)
    pieces = in_pieces(data, piece_size) if piece_size else [data]
    response = {
        "status_code": 200,
        "headers": HeadersDict({"x-amzn-bedrock-content-type": "application/json"}),
        "body": FakeRawStream(pieces),
        "context": {"operation_name": operation_model.name},
    }
    return create_parser("rest-json").parse(response, operation_model.output_shape)


def decode_all(data: bytes, piece_size: int | None = None) -> list:
    buffer = EventStreamBuffer()
    messages = []
    for piece in (in_pieces(data, piece_size) if piece_size else [data]):
        buffer.add_data(piece)
        messages.extend(buffer)
    return messages


# ------------------------------------------------------------ framing


def test_a_message_decodes_with_botocore_and_both_crcs_check():
    data = eventstream.encode_message({":message-type": "event", "name": "välue"}, b"payload")
    [message] = decode_all(data)
    assert message.headers == {":message-type": "event", "name": "välue"}
    assert message.payload == b"payload"
    assert message.prelude.total_length == len(data)
    assert message.crc == struct.unpack(">I", data[-4:])[0] == zlib.crc32(data[:-4])


def test_the_layout_is_the_documented_one():
    data = eventstream.encode_message({"ab": "xyz"}, b"P")
    total, headers_length, prelude_crc = struct.unpack(">III", data[:12])
    assert total == len(data) == 12 + headers_length + 1 + 4
    assert prelude_crc == zlib.crc32(data[:8])
    assert data[12:12 + headers_length] == b"\x02ab\x07\x00\x03xyz"


def test_an_empty_payload_and_no_headers_still_frame():
    [message] = decode_all(eventstream.encode_message({}, b""))
    assert message.headers == {} and message.payload == b""


def test_a_corrupted_byte_fails_botocores_crc_check():
    data = bytearray(eventstream.encode_message({":message-type": "event"}, b"hello"))
    data[-6] ^= 0xFF  # inside the payload
    with pytest.raises(ChecksumMismatch):
        decode_all(bytes(data))


def test_oversized_headers_and_chunks_are_refused_before_sending():
    with pytest.raises(ValueError, match="header name"):
        eventstream.encode_message({"x" * 256: "v"}, b"")
    with pytest.raises(ValueError, match="value exceeds"):
        eventstream.encode_message({"h": "v" * 40000}, b"")
    with pytest.raises(ValueError, match="at most 1000000 bytes"):
        eventstream.chunk({"text": "x" * 1_000_001})


def test_event_and_exception_headers():
    [evt, exc] = decode_all(eventstream.event("messageStart", {"role": "assistant"})
                            + eventstream.exception("validationException", "bad"))
    assert evt.headers == {":message-type": "event", ":event-type": "messageStart",
                           ":content-type": "application/json"}
    assert json.loads(evt.payload) == {"role": "assistant"}
    assert exc.headers[":message-type"] == "exception"
    assert exc.headers[":exception-type"] == "validationException"
    assert json.loads(exc.payload) == {"message": "bad"}


def test_chunk_payload_is_base64_of_the_native_json():
    [message] = decode_all(eventstream.chunk({"type": "message_stop", "text": "ünïcode"}))
    payload = json.loads(message.payload)
    assert list(payload) == ["bytes"]
    assert json.loads(base64.b64decode(payload["bytes"])) == {"type": "message_stop", "text": "ünïcode"}


@pytest.mark.parametrize("piece_size", [1, 3, 7, 64])
def test_messages_split_across_reads_decode(piece_size):
    data = b"".join(eventstream.event("contentBlockDelta", {"delta": {"text": f"piece {i}"},
                                                            "contentBlockIndex": 0}) for i in range(5))
    messages = decode_all(data, piece_size)
    assert [json.loads(m.payload)["delta"]["text"] for m in messages] == [f"piece {i}" for i in range(5)]


# ------------------------------------------------------------ as boto3 parses whole streams


def test_the_chunk_event_matches_the_service_model(runtime_model):
    # The claim chunk() rests on: PayloadPart has one blob member, not an event payload.
    part = runtime_model.shape_for("PayloadPart")
    assert list(part.members) == ["bytes"]
    assert part.members["bytes"].type_name == "blob"
    assert not part.members["bytes"].serialization.get("eventpayload")
    stream_shape = runtime_model.operation_model("InvokeModelWithResponseStream").output_shape
    assert stream_shape.members["body"].serialization.get("eventstream")


@pytest.mark.parametrize("piece_size", [None, 1, 5])
def test_invoke_model_with_response_stream_chunks(runtime_model, piece_size):
    natives = [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}
               for t in ("Hel", "lo ", "wörld")]
    data = b"".join(eventstream.chunk(native) for native in natives)
    parsed = parse_stream(runtime_model, "InvokeModelWithResponseStream", data, piece_size)
    assert parsed["contentType"] == "application/json"
    events = list(parsed["body"])
    assert [set(e) for e in events] == [{"chunk"}] * 3
    assert all(isinstance(e["chunk"]["bytes"], bytes) for e in events)
    assert [json.loads(e["chunk"]["bytes"]) for e in events] == natives


def test_converse_stream_events(runtime_model):
    usage = {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7}
    data = b"".join([
        eventstream.event("messageStart", {"role": "assistant"}),
        eventstream.event("contentBlockDelta", {"delta": {"text": "Hi"}, "contentBlockIndex": 0}),
        eventstream.event("contentBlockDelta", {"delta": {"text": " there"}, "contentBlockIndex": 0}),
        eventstream.event("contentBlockStop", {"contentBlockIndex": 0}),
        eventstream.event("messageStop", {"stopReason": "end_turn"}),
        eventstream.event("metadata", {"usage": usage, "metrics": {"latencyMs": 12}}),
    ])
    events = list(parse_stream(runtime_model, "ConverseStream", data, piece_size=11)["stream"])
    assert events == [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockDelta": {"delta": {"text": "Hi"}, "contentBlockIndex": 0}},
        {"contentBlockDelta": {"delta": {"text": " there"}, "contentBlockIndex": 0}},
        {"contentBlockStop": {"contentBlockIndex": 0}},
        {"messageStop": {"stopReason": "end_turn"}},
        {"metadata": {"usage": usage, "metrics": {"latencyMs": 12}}},
    ]


@pytest.mark.parametrize(("operation", "member"), [
    ("InvokeModelWithResponseStream", "body"),
    ("ConverseStream", "stream"),
])
@pytest.mark.parametrize("code", ["modelStreamErrorException", "validationException",
                                  "internalServerException", "throttlingException"])
def test_an_exception_event_raises_the_modeled_error(runtime_model, operation, member, code):
    first = (eventstream.chunk({"outputText": "partial"}) if member == "body"
             else eventstream.event("messageStart", {"role": "assistant"}))
    data = first + eventstream.exception(code, "the model stopped: out of memory")
    events = iter(parse_stream(runtime_model, operation, data)[member])
    next(events)
    with pytest.raises(EventStreamError) as raised:
        next(events)
    assert isinstance(raised.value, ClientError)
    assert raised.value.response["Error"] == {"Code": code, "Message": "the model stopped: out of memory"}
