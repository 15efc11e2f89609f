"""Calling another WarmHouse service.

Every call from a channel opened here carries this service's credential, the
end user's token when the call is made while serving that user (so the
callee applies the user's rights, never more), a deadline (the caller's own
unless it set one), and a client span. Methods named idempotent are retried
on UNAVAILABLE with backoff; grpc retries any call transparently when the
request never left the client.
"""

import json
from collections.abc import AsyncIterable, Callable, Collection, Iterable
from typing import Any

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from services.runtime.authentication import forwarded_authorization
from services.runtime.internal_auth import SERVICE_TOKEN_HEADER, ServiceCredentials

DEFAULT_DEADLINE_SECONDS = 5.0
RETRY_ATTEMPTS = 3


def _service_config(idempotent_methods: Collection[str]) -> str:
    names = []
    for path in sorted(idempotent_methods):
        service, _, method = path.strip("/").partition("/")
        names.append({"service": service, "method": method})
    retry = {
        "maxAttempts": RETRY_ATTEMPTS,
        "initialBackoff": "0.1s",
        "maxBackoff": "1s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    return json.dumps(
        {
            "methodConfig": [{"name": names, "retryPolicy": retry}] if names else [],
        }
    )


class _CallerIdentity(
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
    grpc.aio.StreamStreamClientInterceptor,
):
    """Adds the service credential, the forwarded user token and a deadline."""

    def __init__(self, credentials: ServiceCredentials, deadline_seconds: float) -> None:
        self._credentials = credentials
        self._deadline_seconds = deadline_seconds

    def _details(self, details: Any) -> Any:
        metadata = [
            (key, value) for key, value in details.metadata or () if key != SERVICE_TOKEN_HEADER
        ]
        metadata.append((SERVICE_TOKEN_HEADER, self._credentials.token()))
        authorization = forwarded_authorization()
        if authorization is not None and all(key != "authorization" for key, _ in metadata):
            metadata.append(("authorization", authorization))
        timeout = details.timeout if details.timeout is not None else self._deadline_seconds
        return details._replace(metadata=grpc.aio.Metadata(*metadata), timeout=timeout)

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(self._details(client_call_details), request)

    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(self._details(client_call_details), request)

    async def intercept_stream_unary(
        self,
        continuation: Callable[..., Any],
        client_call_details: Any,
        request_iterator: AsyncIterable[Any] | Iterable[Any],
    ) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)

    async def intercept_stream_stream(
        self,
        continuation: Callable[..., Any],
        client_call_details: Any,
        request_iterator: AsyncIterable[Any] | Iterable[Any],
    ) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)


def open_channel(
    address: str,
    credentials: ServiceCredentials,
    *,
    idempotent_methods: Collection[str] = (),
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
) -> grpc.aio.Channel:
    """A channel to another service, e.g. open_channel("user:50051", runtime.credentials)."""
    interceptors = [
        *aio_client_interceptors(),  # type: ignore[no-untyped-call]
        _CallerIdentity(credentials, deadline_seconds),
    ]
    options = [
        ("grpc.enable_retries", 1),
        ("grpc.service_config", _service_config(idempotent_methods)),
    ]
    return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)
