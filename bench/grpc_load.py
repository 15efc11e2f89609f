"""Load on the User service's GetUser straight over gRPC, skipping Envoy."""

import grpc
from warmhouse.user.v1.user_pb2 import GetUserRequest
from warmhouse.user.v1.user_pb2_grpc import UserServiceStub

from bench.account import Account
from bench.closed_loop import REQUEST_TIMEOUT_SECONDS, Budget, Call, run_closed_loop
from bench.figures import LoadFigures


async def get_user_direct(
    address: str, account: Account, concurrency: int, budget: Budget
) -> LoadFigures:
    """`concurrency` closed-loop workers sharing one grpc.aio channel (one HTTP/2 connection)."""
    async with grpc.aio.insecure_channel(address) as channel:
        await channel.channel_ready()
        call = _get_user(UserServiceStub(channel), account)
        return await run_closed_loop([call] * concurrency, budget)


def _get_user(stub: UserServiceStub, account: Account) -> Call:
    request = GetUserRequest(user_id=account.user_id)
    metadata = (("authorization", account.authorization),)

    async def call() -> str | None:
        try:
            reply = await stub.GetUser(request, metadata=metadata, timeout=REQUEST_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as error:
            return f"gRPC {error.code().name}: {error.details()}"
        if reply.user.user_id != account.user_id:
            return f"GetUser answered with user {reply.user.user_id!r}"
        return None

    return call
