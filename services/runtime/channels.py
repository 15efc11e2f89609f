"""Channels for calling other services: every call is a traced client span."""

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors


def open_channel(address: str) -> grpc.aio.Channel:
    """A channel to another service's gRPC address, e.g. "user:50051"."""
    interceptors = aio_client_interceptors()  # type: ignore[no-untyped-call]
    return grpc.aio.insecure_channel(address, interceptors=interceptors)
