"""Reading the machine-readable reason out of a gRPC error."""

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


def error_reason(error: grpc.aio.AioRpcError) -> str:
    """The google.rpc.ErrorInfo reason every WarmHouse error carries."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]  # an aio call is one too
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return str(info.reason)
