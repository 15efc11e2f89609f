"""Short names for the grpc.aio types every servicer and interceptor uses."""

from typing import TYPE_CHECKING, Any, TypeAlias

import grpc

if TYPE_CHECKING:
    # Servicers see requests and responses as their own message types; the
    # runtime, which handles every method alike, sees them as Any. (Only the
    # type stubs make these classes generic.)
    ServicerContext: TypeAlias = grpc.aio.ServicerContext[Any, Any]
    MethodHandler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
else:
    ServicerContext = grpc.aio.ServicerContext
    MethodHandler = grpc.RpcMethodHandler
