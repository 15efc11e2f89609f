"""OpenTelemetry set-up and the trace context carried in NATS headers.

The exporter follows the standard OTEL_TRACES_EXPORTER variable: "none" (the
default), "console", or "otlp" (needs opentelemetry-exporter-otlp installed).
"""

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import grpc
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, Sampler

from services.runtime.config import ConfigError
from services.runtime.grpc_types import ServicerContext


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
    """Install the global tracer provider (once per process).

    With nothing to export, no span is recorded: spans still carry trace ids
    (for logs and error replies) but cost next to nothing. Otherwise the
    standard OTEL_TRACES_SAMPLER decides (default: follow the caller, else
    sample everything), and an unsampled request is as cheap.
    """
    exporter = _exporter(os.environ.get("OTEL_TRACES_EXPORTER", "none").strip() or "none")
    sampler: Sampler | None = None
    if exporter is None and extra_processor is None:
        sampler = ALWAYS_OFF
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"warmhouse-{service}"}), sampler=sampler
    )
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    if extra_processor is not None:
        provider.add_span_processor(extra_processor)
    trace.set_tracer_provider(provider)


_server_tracer = trace.get_tracer("warmhouse.grpc.server")
_SERVER_ERRORS = frozenset(
    code.value[0]
    for code in (
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DATA_LOSS,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    )
)


@contextmanager
def server_span(method: str, context: ServicerContext) -> Iterator[trace.Span]:
    """The span of one served RPC, a child of the caller's when it sent one."""
    parent = None
    for name, value in context.invocation_metadata() or ():
        if name == "traceparent":
            parent = propagate.extract({name: value})
            break
    with _server_tracer.start_as_current_span(
        method,
        context=parent,
        kind=trace.SpanKind.SERVER,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        if span.is_recording():
            span.set_attributes({"rpc.system": "grpc", "rpc.method": method})
        yield span


def record_status(code: int) -> None:
    """Note the status an RPC ends with on its span (a server error marks it failed)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute("rpc.grpc.status_code", code)
        if code in _SERVER_ERRORS:
            span.set_status(trace.Status(trace.StatusCode.ERROR))


def inject_headers() -> dict[str, str]:
    """The current trace context as message headers (W3C traceparent)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def extract_context(headers: Mapping[str, str] | None) -> Context:
    return propagate.extract(dict(headers or {}))
