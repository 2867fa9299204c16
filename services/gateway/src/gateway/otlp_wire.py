"""OTLP/HTTP trace export bodies → plain spans (:class:`OtlpSpan`); no I/O, no mapping.

An ``ExportTraceServiceRequest`` arrives as protobuf (``application/x-protobuf``) or in OTLP's
JSON mapping (``application/json``); both decode to the same flat list of :class:`OtlpSpan`,
each carrying its resource's attributes and its instrumentation scope, so
:mod:`gateway.otlp_mapping` never sees the wire format. (A ``Content-Encoding`` is undone by
the HTTP server as the body streams in, before these functions see it.)

The JSON mapping is OTLP's, not protobuf's default one: trace and span ids are hex (base64 of
the right length is accepted too), 64-bit integers may be strings or numbers, enums may be
names or numbers, and field names may be lowerCamelCase or snake_case. Values of the wrong
type *inside a span* do not fail the request: the span is kept with :attr:`OtlpSpan.problem`
set, and the mapping rejects it (OTLP's partial success). A body that is not an export at all
raises :class:`OtlpDecodeError` (400).
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

_KINDS = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
_STATUS_CODES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


class OtlpDecodeError(ValueError):
    """The body is not an OTLP trace export."""


@dataclass(slots=True)
class OtlpEvent:
    name: str
    time_unix_nano: int
    attributes: dict[str, Any]


@dataclass(slots=True)
class OtlpSpan:
    """One span, ids as lowercase hex (``""`` for an absent parent), times in Unix nanoseconds.

    ``resource`` is the attribute dict of its resource (shared by the spans of that resource);
    ``problem`` says why the span cannot be used, when its wire values were of the wrong type.
    """

    trace_id: str
    span_id: str
    parent_span_id: str = ""
    name: str = ""
    kind: int = 0
    start_unix_nano: int = 0
    end_unix_nano: int = 0
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[OtlpEvent] = field(default_factory=list)
    status_code: int = 0
    status_message: str = ""
    resource: dict[str, Any] = field(default_factory=dict)
    scope_name: str = ""
    scope_version: str = ""
    problem: str | None = None


# -- protobuf -----------------------------------------------------------------------------------


def decode_protobuf(body: bytes) -> list[OtlpSpan]:
    try:
        export = ExportTraceServiceRequest.FromString(body)
    except (DecodeError, RuntimeError) as exc:
        raise OtlpDecodeError(f"not an OTLP ExportTraceServiceRequest (protobuf): {exc}") from None
    spans: list[OtlpSpan] = []
    for resource_spans in export.resource_spans:
        resource = _pb_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            for span in scope_spans.spans:
                spans.append(
                    OtlpSpan(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        kind=span.kind,
                        start_unix_nano=span.start_time_unix_nano,
                        end_unix_nano=span.end_time_unix_nano,
                        attributes=_pb_attributes(span.attributes),
                        events=[OtlpEvent(e.name, e.time_unix_nano, _pb_attributes(e.attributes)) for e in span.events],
                        status_code=span.status.code,
                        status_message=span.status.message,
                        resource=resource,
                        scope_name=scope.name,
                        scope_version=scope.version,
                    )
                )
    return spans


def _pb_attributes(attributes: Any) -> dict[str, Any]:
    return {kv.key: _pb_value(kv.value) for kv in attributes}


def _pb_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "double_value":
        return _finite(value.double_value)
    if kind == "array_value":
        return [_pb_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _pb_value(kv.value) for kv in value.kvlist_value.values if isinstance(kv, KeyValue)}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None


def _finite(value: float) -> float | str:
    """JSON storage cannot hold NaN or ±Infinity: they are kept as their proto3 JSON names."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


# -- OTLP JSON ----------------------------------------------------------------------------------


class _Bad(ValueError):
    """A value of the wrong type inside a span (the span is rejected, the request is not)."""


def decode_json(body: bytes) -> list[OtlpSpan]:
    try:
        export = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise OtlpDecodeError(f"malformed JSON: {exc}") from None
    if not isinstance(export, dict):
        raise OtlpDecodeError("an OTLP export must be a JSON object")
    spans: list[OtlpSpan] = []
    for resource_spans in _list(export, "resourceSpans", "resource_spans"):
        resource_obj = _obj(resource_spans, "resource")
        resource = _json_attributes(resource_obj) if resource_obj else {}
        for scope_spans in _list(resource_spans, "scopeSpans", "scope_spans"):
            scope = _obj(scope_spans, "scope") or {}
            scope_name, scope_version = _str_or_empty(scope.get("name")), _str_or_empty(scope.get("version"))
            for raw in _list(scope_spans, "spans"):
                spans.append(_json_span(raw, resource, scope_name, scope_version))
    return spans


def _get(obj: Mapping[str, Any], camel: str, snake: str | None = None) -> Any:
    value = obj.get(camel)
    if value is None and snake is not None:
        value = obj.get(snake)
    return value


def _list(obj: Any, camel: str, snake: str | None = None) -> list[Any]:
    if not isinstance(obj, dict):
        raise OtlpDecodeError("an OTLP export's resourceSpans, scopeSpans and spans must hold objects")
    value = _get(obj, camel, snake)
    if value is None:
        return []
    if not isinstance(value, list):
        raise OtlpDecodeError(f"'{camel}' must be an array")
    return value


def _obj(obj: Any, name: str) -> dict[str, Any] | None:
    value = obj.get(name) if isinstance(obj, dict) else None
    if value is not None and not isinstance(value, dict):
        raise OtlpDecodeError(f"'{name}' must be an object")
    return value


def _str_or_empty(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _json_span(raw: Any, resource: dict[str, Any], scope_name: str, scope_version: str) -> OtlpSpan:
    span = OtlpSpan(trace_id="", span_id="", resource=resource, scope_name=scope_name, scope_version=scope_version)
    if not isinstance(raw, dict):
        span.problem = "not an object"
        return span
    try:
        name = raw.get("name", "")
        if not isinstance(name, str):
            raise _Bad("name is not a string")
        span.name = name
        span.span_id = _json_id(_get(raw, "spanId", "span_id"), 8, "spanId")
        span.trace_id = _json_id(_get(raw, "traceId", "trace_id"), 16, "traceId")
        span.parent_span_id = _json_id(_get(raw, "parentSpanId", "parent_span_id"), 8, "parentSpanId")
        span.kind = _enum(raw.get("kind"), _KINDS, "kind")
        span.start_unix_nano = _int64(_get(raw, "startTimeUnixNano", "start_time_unix_nano"), "startTimeUnixNano")
        span.end_unix_nano = _int64(_get(raw, "endTimeUnixNano", "end_time_unix_nano"), "endTimeUnixNano")
        span.attributes = _json_attributes(raw)
        span.events = list(_json_events(raw.get("events")))
        status = raw.get("status") or {}
        if not isinstance(status, dict):
            raise _Bad("status is not an object")
        span.status_code = _enum(status.get("code"), _STATUS_CODES, "status.code")
        span.status_message = _str_or_empty(status.get("message"))
    except _Bad as exc:
        span.problem = str(exc)
    return span


def _json_id(value: Any, size: int, name: str) -> str:
    """Hex as OTLP/JSON specifies (base64 of the right length accepted too); ``""`` when absent."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise _Bad(f"{name} is not a string")
    if len(value) == 2 * size:
        try:
            return bytes.fromhex(value).hex()
        except ValueError:
            raise _Bad(f"{name} is not hex") from None
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if len(decoded) != size:
        raise _Bad(f"{name} must be {size} bytes as {2 * size} hex digits")
    return decoded.hex()


_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


def _int64(value: Any, name: str) -> int:
    """A 64-bit integer (timestamps are fixed64, attribute ints int64) as number or string."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise _Bad(f"{name} is not an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            raise _Bad(f"{name} is not an integer") from None
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    else:
        raise _Bad(f"{name} is not an integer")
    if not _INT64_MIN <= number <= _UINT64_MAX:
        raise _Bad(f"{name} does not fit in 64 bits")
    return number


def _enum(value: Any, names: Mapping[str, int], field_name: str) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        if value in names:
            return names[value]
        raise _Bad(f"{field_name} {value!r} is not one of {', '.join(names)}")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _Bad(f"{field_name} is not an enum name or number")


def _json_attributes(obj: Mapping[str, Any]) -> dict[str, Any]:
    items = obj.get("attributes")
    if items is None:
        return {}
    if not isinstance(items, list):
        raise _Bad("attributes is not an array")
    return dict(_json_key_values(items))


def _json_key_values(items: list[Any]) -> Iterator[tuple[str, Any]]:
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise _Bad("an attribute is not a {key, value} object")
        yield item["key"], _json_value(item.get("value"))


def _json_value(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _Bad("an attribute value is not an AnyValue object")
    for key, raw in value.items():
        if key in ("stringValue", "string_value"):
            return raw if isinstance(raw, str) else _bad_value(key)
        if key in ("boolValue", "bool_value"):
            return raw if isinstance(raw, bool) else _bad_value(key)
        if key in ("intValue", "int_value"):
            return _int64(raw, key)
        if key in ("doubleValue", "double_value"):
            return _json_double(raw)
        if key in ("arrayValue", "array_value"):
            values = raw.get("values") if isinstance(raw, dict) else None
            return [_json_value(v) for v in values or []] if isinstance(values, list | None) else _bad_value(key)
        if key in ("kvlistValue", "kvlist_value"):
            values = raw.get("values") if isinstance(raw, dict) else None
            return dict(_json_key_values(values or [])) if isinstance(values, list | None) else _bad_value(key)
        if key in ("bytesValue", "bytes_value"):
            return raw if isinstance(raw, str) else _bad_value(key)
    return None


def _json_double(raw: Any) -> float | str:
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return _finite(float(raw))
    if isinstance(raw, str):
        try:
            return _finite(float(raw))
        except ValueError:
            pass
    raise _Bad("doubleValue is not a number")


def _bad_value(key: str) -> Any:
    raise _Bad(f"an attribute's {key} has the wrong type")


def _json_events(raw: Any) -> Iterator[OtlpEvent]:
    if raw is None:
        return
    if not isinstance(raw, list):
        raise _Bad("events is not an array")
    for event in raw:
        if not isinstance(event, dict):
            raise _Bad("an event is not an object")
        name = event.get("name", "")
        yield OtlpEvent(
            name if isinstance(name, str) else "",
            _int64(_get(event, "timeUnixNano", "time_unix_nano"), "timeUnixNano"),
            _json_attributes(event),
        )
