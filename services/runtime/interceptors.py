"""Cross-cutting work around every RPC: authentication and error mapping.

grpc.aio interceptors can only swap the handler, so the guard wraps the
handler's behaviour (for all four RPC shapes) in one function that
authenticates first and maps whatever the RPC raises to a status.
"""

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import asyncpg
import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from services.runtime.authentication import Authenticator, Authenticators
from services.runtime.errors import DomainError, InvalidArgument
from services.runtime.grpc_types import MethodHandler, ServicerContext
from services.runtime.logs import current_trace_id
from services.runtime.service import Access
from services.runtime.tracing import record_status, server_span

log = logging.getLogger(__name__)

ALWAYS_PUBLIC_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


UnaryBehaviour = Callable[[Any, ServicerContext], Awaitable[Any]]
StreamBehaviour = Callable[[Any, ServicerContext], AsyncIterator[Any]]


# What a request that does not parse becomes: the behaviour refuses it as
# INVALID_ARGUMENT, where grpc would answer UNKNOWN with the parser's words.
_UNDECODABLE = object()


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError:
            return _UNDECODABLE

    return deserialize


def _parsed(request: Any) -> Any:
    if request is _UNDECODABLE:
        raise InvalidArgument(
            "MALFORMED_REQUEST",
            "the request is not a well-formed message (is every string valid UTF-8?)",
        )
    return request


async def _parsed_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        yield _parsed(request)


def _wrap(handler: MethodHandler, method: str, authenticate: Authenticator) -> MethodHandler:
    """Return `handler` traced, with `authenticate(context)` run first and errors mapped."""
    kwargs = {
        "request_deserializer": _tolerant(handler.request_deserializer),
        "response_serializer": handler.response_serializer,
    }
    parse = _parsed_stream if handler.stream_unary or handler.stream_stream else _parsed
    # grpc.aio awaits a behaviour only if it is a coroutine (or async
    # generator) function, so each shape gets a real `async def`.
    if handler.unary_unary or handler.stream_unary:
        # grpc's stubs type behaviours as synchronous; on a grpc.aio server they are async.
        inner = cast(UnaryBehaviour, handler.unary_unary or handler.stream_unary)

        async def unary_response(request: Any, context: ServicerContext) -> Any:
            with server_span(method, context):
                try:
                    authenticate(context)
                    return await inner(parse(request), context)
                except Exception as error:  # noqa: BLE001 - mapped and re-raised below
                    await _abort(context, method, error)

        make = (
            grpc.unary_unary_rpc_method_handler
            if handler.unary_unary
            else grpc.stream_unary_rpc_method_handler
        )
        return make(unary_response, **kwargs)
    inner_stream = cast(StreamBehaviour, handler.unary_stream or handler.stream_stream)

    async def stream_response(request: Any, context: ServicerContext) -> AsyncIterator[Any]:
        with server_span(method, context):
            try:
                authenticate(context)
                async for response in inner_stream(parse(request), context):
                    yield response
            except Exception as error:  # noqa: BLE001 - mapped and re-raised below
                await _abort(context, method, error)

    make = (
        grpc.unary_stream_rpc_method_handler
        if handler.unary_stream
        else grpc.stream_stream_rpc_method_handler
    )
    return make(stream_response, **kwargs)


async def _abort(context: ServicerContext, method: str, error: Exception) -> None:
    if isinstance(error, grpc.aio.AbortError):
        raise error
    if isinstance(error, DomainError):
        status = _status(error.code, error.message, error.reason, error.metadata)
    elif isinstance(error, asyncpg.UniqueViolationError):
        # A constraint no repository turned into a domain error of its own.
        status = _status(
            grpc.StatusCode.ALREADY_EXISTS,
            "it already exists",
            "ALREADY_EXISTS",
            {"constraint": error.constraint_name or ""},
        )
    elif _is_outage(error):
        log.warning("dependency unavailable in %s: %s", method, error)
        status = _status(
            grpc.StatusCode.UNAVAILABLE,
            "a backing service is unavailable; retry shortly",
            "DEPENDENCY_UNAVAILABLE",
            {},
        )
    else:
        trace_id = current_trace_id()
        log.exception("unexpected error in %s", method, extra={"rpc_method": method})
        status = _status(
            grpc.StatusCode.INTERNAL,
            f"internal error; quote trace id {trace_id} when reporting it",
            "INTERNAL",
            {"traceId": trace_id},
        )
    record_status(status.code)
    await context.abort_with_status(rpc_status.to_status(status))


# SQLSTATE classes that mean "the database cannot serve right now", not "the
# request was wrong": connection exceptions, insufficient resources (too many
# clients, disk full) and operator intervention (shutting down, starting up).
_OUTAGE_SQLSTATE_CLASSES = frozenset({"08", "53", "57"})


def _sqlstate(error: BaseException) -> str | None:
    for candidate in (error, getattr(error, "orig", None), error.__cause__):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


def _is_outage(error: Exception) -> bool:
    """The database or the network failed, not the request: worth a retry."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    sqlstate = _sqlstate(error)
    if sqlstate is not None:
        return sqlstate[:2] in _OUTAGE_SQLSTATE_CLASSES
    return isinstance(
        error, OperationalError | InterfaceError | ConnectionError | asyncpg.InterfaceError
    )


def _status(
    code: grpc.StatusCode, message: str, reason: str, metadata: dict[str, str]
) -> status_pb2.Status:
    info = error_details_pb2.ErrorInfo(reason=reason, domain="warmhouse", metadata=metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    numeric_code: int = code.value[0]
    return status_pb2.Status(code=numeric_code, message=message, details=[detail])


class GuardInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates every RPC as its method's access level demands, and maps
    every error the RPC raises to a status.

    The wrapped handler of a method is built once and reused for every call.
    """

    def __init__(self, access_of: Callable[[str], Access], authenticators: Authenticators) -> None:
        self._access_of = access_of
        self._authenticators = authenticators
        self._wrapped: dict[str, MethodHandler] = {}

    def _access(self, method: str) -> Access:
        return (
            Access.PUBLIC if method.startswith(ALWAYS_PUBLIC_PREFIXES) else self._access_of(method)
        )

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[MethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> MethodHandler | None:
        method = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is None:
            handler = await continuation(handler_call_details)
            if handler is None:
                return None
            authenticate = self._authenticators.for_access(self._access(method))
            wrapped = self._wrapped[method] = _wrap(handler, method, authenticate)
        return wrapped
