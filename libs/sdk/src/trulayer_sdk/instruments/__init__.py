"""Instrumentations of LLM client libraries (each imports its library only when used)."""

from trulayer_sdk.instruments.openai import instrument_openai, uninstrument_openai

__all__ = ["instrument_openai", "uninstrument_openai"]
