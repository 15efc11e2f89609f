"""Typed domain errors, mapped in one place to gRPC status codes.

Handlers raise these; the guard interceptor (`interceptors.py`) turns them into
a status with a `google.rpc.ErrorInfo` reason (so REST clients get the matching HTTP status
through Envoy). Anything else is logged with its trace id and becomes INTERNAL
without internals leaking to the caller.
"""

import grpc


class DomainError(Exception):
    """A refusal the caller can act on: bad input, not allowed, not found…"""

    code: grpc.StatusCode = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, reason: str, message: str, **metadata: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.metadata = metadata


class InvalidArgument(DomainError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS


class Throttled(DomainError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Conflict(DomainError):
    """The request contradicts another one (e.g. an idempotency key reused
    with other parameters): HTTP 409."""

    code = grpc.StatusCode.ABORTED


class Unavailable(DomainError):
    """Another service could not answer: the caller may retry (HTTP 503)."""

    code = grpc.StatusCode.UNAVAILABLE


def dependency_unavailable(service: str) -> Unavailable:
    return Unavailable(
        "DEPENDENCY_UNAVAILABLE", f"the {service} service could not answer; retry shortly"
    )
