"""The OTLP body readers: protobuf and OTLP's JSON mapping give the same plain spans."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from gateway.otlp_wire import OtlpDecodeError, decode_json, decode_protobuf

TRACE = bytes(range(1, 17))
SPAN = bytes(range(21, 29))
PARENT = bytes(range(31, 39))


def _protobuf_export() -> bytes:
    values = [
        KeyValue(key="s", value=AnyValue(string_value="x")),
        KeyValue(key="i", value=AnyValue(int_value=-7)),
        KeyValue(key="d", value=AnyValue(double_value=float("nan"))),
        KeyValue(key="b", value=AnyValue(bool_value=True)),
        KeyValue(key="raw", value=AnyValue(bytes_value=b"\x01\x02")),
        KeyValue(
            key="arr",
            value=AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(string_value="a")])),
        ),
        KeyValue(
            key="kv",
            value=AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key="k", value=AnyValue(double_value=1.5))])),
        ),
    ]
    span = Span(
        trace_id=TRACE,
        span_id=SPAN,
        parent_span_id=PARENT,
        name="chat",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=1_700_000_000_000_000_000,
        end_time_unix_nano=1_700_000_000_500_000_000,
        attributes=values,
        events=[Span.Event(name="e", time_unix_nano=1_700_000_000_100_000_000, attributes=values[:1])],
        status=Status(code=Status.STATUS_CODE_ERROR, message="boom"),
    )
    export = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource={"attributes": [KeyValue(key="service.name", value=AnyValue(string_value="svc"))]},
                scope_spans=[ScopeSpans(scope={"name": "lib", "version": "1.2"}, spans=[span])],
            )
        ]
    )
    return bytes(export.SerializeToString())


def _json_export(span: dict[str, Any] | None = None, **overrides: Any) -> bytes:
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "lib", "version": "1.2"},
                        "spans": [
                            span
                            or {
                                "traceId": TRACE.hex(),
                                "spanId": SPAN.hex(),
                                "parentSpanId": PARENT.hex(),
                                "name": "chat",
                                "kind": "SPAN_KIND_CLIENT",
                                "startTimeUnixNano": "1700000000000000000",
                                "endTimeUnixNano": 1700000000500000000,
                                "attributes": [
                                    {"key": "s", "value": {"stringValue": "x"}},
                                    {"key": "i", "value": {"intValue": "-7"}},
                                    {"key": "d", "value": {"doubleValue": "NaN"}},
                                    {"key": "b", "value": {"boolValue": True}},
                                    {"key": "raw", "value": {"bytesValue": base64.b64encode(b"\x01\x02").decode()}},
                                    {
                                        "key": "arr",
                                        "value": {"arrayValue": {"values": [{"intValue": 1}, {"stringValue": "a"}]}},
                                    },
                                    {
                                        "key": "kv",
                                        "value": {
                                            "kvlistValue": {"values": [{"key": "k", "value": {"doubleValue": 1.5}}]}
                                        },
                                    },
                                ],
                                "events": [
                                    {
                                        "timeUnixNano": "1700000000100000000",
                                        "name": "e",
                                        "attributes": [{"key": "s", "value": {"stringValue": "x"}}],
                                    }
                                ],
                                "status": {"code": 2, "message": "boom"},
                                **overrides,
                            }
                        ],
                    }
                ],
            }
        ]
    }
    return orjson.dumps(body)


def test_protobuf_and_json_decode_to_the_same_spans() -> None:
    (pb,) = decode_protobuf(_protobuf_export())
    (js,) = decode_json(_json_export())
    assert pb == js
    assert pb.problem is None
    assert (pb.trace_id, pb.span_id, pb.parent_span_id) == (TRACE.hex(), SPAN.hex(), PARENT.hex())
    assert (pb.name, pb.kind, pb.status_code, pb.status_message) == ("chat", 3, 2, "boom")
    assert pb.attributes == {
        "s": "x",
        "i": -7,
        "d": "NaN",
        "b": True,
        "raw": "AQI=",
        "arr": [1, "a"],
        "kv": {"k": 1.5},
    }
    assert pb.resource == {"service.name": "svc"}
    assert (pb.scope_name, pb.scope_version) == ("lib", "1.2")
    assert [(e.name, e.time_unix_nano, e.attributes) for e in pb.events] == [
        ("e", 1_700_000_000_100_000_000, {"s": "x"})
    ]


def test_json_accepts_snake_case_base64_ids_and_enum_numbers() -> None:
    span = {
        "trace_id": base64.b64encode(TRACE).decode(),
        "span_id": base64.b64encode(SPAN).decode(),
        "name": "x",
        "kind": 2,
        "start_time_unix_nano": 5,
        "status": {"code": "STATUS_CODE_OK"},
    }
    (decoded,) = decode_json(_json_export(span))
    assert decoded.problem is None
    assert (decoded.trace_id, decoded.span_id, decoded.parent_span_id) == (TRACE.hex(), SPAN.hex(), "")
    assert (decoded.kind, decoded.status_code, decoded.start_unix_nano) == (2, 1, 5)


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"traceId": "zz" * 16}, "traceId is not hex"),
        ({"traceId": "abc"}, "traceId must be 16 bytes"),
        ({"spanId": 12}, "spanId is not a string"),
        ({"name": ["x"]}, "name is not a string"),
        ({"kind": "SPAN_KIND_SIDEWAYS"}, "kind 'SPAN_KIND_SIDEWAYS'"),
        ({"startTimeUnixNano": "soon"}, "startTimeUnixNano is not an integer"),
        ({"attributes": {"k": "v"}}, "attributes is not an array"),
        ({"attributes": [{"key": "k", "value": {"intValue": "x"}}]}, "intValue is not an integer"),
        ({"attributes": [{"key": "k", "value": {"boolValue": "yes"}}]}, "boolValue has the wrong type"),
        ({"events": [3]}, "an event is not an object"),
        ({"status": "ERROR"}, "status is not an object"),
    ],
)
def test_a_wrongly_typed_span_is_marked_not_fatal(overrides: dict[str, Any], problem: str) -> None:
    (decoded,) = decode_json(_json_export(**overrides))
    assert decoded.problem is not None and problem in decoded.problem
    assert decoded.span_id in (SPAN.hex(), "")  # named in the answer when it could be read


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"nope",
        b"[1]",
        b'{"resourceSpans": {}}',
        b'{"resourceSpans": [1]}',
        b'{"resourceSpans": [{"resource": 1}]}',
    ],
)
def test_a_body_that_is_not_an_export_is_an_error(body: bytes) -> None:
    with pytest.raises(OtlpDecodeError):
        decode_json(body)


def test_protobuf_garbage_is_an_error_and_empty_is_an_empty_export() -> None:
    with pytest.raises(OtlpDecodeError):
        decode_protobuf(b"\xff\xff\xff")
    assert decode_protobuf(b"") == []
