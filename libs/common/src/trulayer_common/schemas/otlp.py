"""``POST /v1/otlp/traces``: the OTLP/HTTP trace export, as documented in the OpenAPI document.

The body is decoded by the gateway's OTLP reader (protobuf or OTLP's JSON mapping), not by
these types: they describe the JSON shape for the document, and the answer exactly (the
integration tests validate real answers against :class:`OtlpExportResponse`). Field names are
OTLP's lowerCamelCase.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict


class OtlpExportTraceRequest(TypedDict, total=False):
    """OTLP ``ExportTraceServiceRequest`` in OTLP's JSON mapping: ``resourceSpans[]`` of
    ``{resource: {attributes}, scopeSpans: [{scope, spans: [...]}]}``; ids are hex, 64-bit
    integers decimal strings or numbers, enums names or numbers."""

    resourceSpans: list[dict[str, Any]]


class OtlpPartialSuccess(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rejectedSpans: int = Field(ge=0, description="spans not accepted (0: all accepted)")
    errorMessage: str = Field(description="why, naming the first rejected spans; empty when none")


class OtlpExportResponse(BaseModel):
    """``ExportTraceServiceResponse``; with ``application/x-protobuf`` requests it is protobuf."""

    model_config = ConfigDict(extra="forbid")

    partialSuccess: OtlpPartialSuccess
