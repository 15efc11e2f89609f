"""OpenTelemetry set-up and the trace context carried in NATS headers.

The exporter follows the standard OTEL_TRACES_EXPORTER variable: "none" (the
default), "console", or "otlp" (needs opentelemetry-exporter-otlp installed).
"""

import os
from collections.abc import Mapping

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from services.runtime.config import ConfigError


def _exporter(name: str) -> SpanExporter | None:
    if name == "none":
        return None
    if name == "console":
        return ConsoleSpanExporter()
    if name == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter,
            )
        except ImportError:
            raise ConfigError(
                "OTEL_TRACES_EXPORTER=otlp needs: pip install opentelemetry-exporter-otlp"
            ) from None
        exporter: SpanExporter = OTLPSpanExporter()
        return exporter
    raise ConfigError(f"OTEL_TRACES_EXPORTER must be none, console or otlp, got {name!r}")


def configure_tracing(service: str, extra_processor: SpanProcessor | None = None) -> None:
    """Install the global tracer provider (once per process)."""
    provider = TracerProvider(resource=Resource.create({"service.name": f"warmhouse-{service}"}))
    exporter = _exporter(os.environ.get("OTEL_TRACES_EXPORTER", "none").strip() or "none")
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    if extra_processor is not None:
        provider.add_span_processor(extra_processor)
    trace.set_tracer_provider(provider)


def inject_headers() -> dict[str, str]:
    """The current trace context as message headers (W3C traceparent)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def extract_context(headers: Mapping[str, str] | None) -> Context:
    return propagate.extract(dict(headers or {}))
