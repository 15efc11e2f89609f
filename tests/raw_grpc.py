"""Calls and handlers on raw bytes, for test services that have no proto."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import grpc

from services.runtime.grpc_types import ServicerContext

RawHandler = Callable[[bytes, ServicerContext], Awaitable[bytes]]
RawStreamHandler = Callable[[bytes, ServicerContext], AsyncIterator[bytes]]


def unary(channel: grpc.aio.Channel, method: str) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
    return channel.unary_unary(method)


def unary_stream(
    channel: grpc.aio.Channel, method: str
) -> grpc.aio.UnaryStreamMultiCallable[bytes, bytes]:
    return channel.unary_stream(method)


def handler(behaviour: RawHandler) -> grpc.RpcMethodHandler[bytes, bytes]:
    return grpc.unary_unary_rpc_method_handler(behaviour)


def stream_handler(behaviour: RawStreamHandler) -> grpc.RpcMethodHandler[bytes, bytes]:
    return grpc.unary_stream_rpc_method_handler(behaviour)
