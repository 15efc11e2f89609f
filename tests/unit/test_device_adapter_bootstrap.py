"""The Device Adapter's settings and self-description."""

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from warmhouse.device_adapter.v1 import device_adapter_pb2 as pb
from warmhouse.device_adapter.v1 import device_adapter_pb2_grpc

from services.device_adapter.bootstrap import (
    MAX_RECEIVE_MESSAGE_BYTES,
    SERVER_OPTIONS,
    AdapterSettings,
    definition,
    shutdown_budget,
)
from services.device_adapter.description import DESCRIPTION, DEVICE_ADAPTER_SERVICE
from services.runtime.config import ConfigError, Environment
from services.runtime.grpc_types import ServicerContext
from services.runtime.service import Access


def test_defaults_follow_the_design() -> None:
    settings = AdapterSettings.from_environment(Environment({}))
    assert settings == AdapterSettings(
        device_address="device:50051",
        heartbeat_seconds=5,
        presence_seconds=5,
        hello_seconds=10,
        auth_failures_per_minute=10,
        samples_per_second=20,
        heating_statuses_per_minute=60,
    )


def test_settings_come_from_the_environment() -> None:
    settings = AdapterSettings.from_environment(
        Environment(
            {
                "WARMHOUSE_DEVICE_ADDRESS": "127.0.0.1:6000",
                "WARMHOUSE_DEVICE_ADAPTER_HEARTBEAT_SECONDS": "1",
                "WARMHOUSE_DEVICE_ADAPTER_PRESENCE_SECONDS": "2",
                "WARMHOUSE_DEVICE_ADAPTER_HELLO_SECONDS": "3",
                "WARMHOUSE_DEVICE_ADAPTER_AUTH_FAILURES_PER_MINUTE": "1000",
                "WARMHOUSE_DEVICE_ADAPTER_SAMPLES_PER_SECOND": "50",
                "WARMHOUSE_DEVICE_ADAPTER_HEATING_STATUSES_PER_MINUTE": "600",
            }
        )
    )
    assert settings == AdapterSettings("127.0.0.1:6000", 1, 2, 3, 1000, 50, 600)


@pytest.mark.parametrize(
    "variable",
    [
        "WARMHOUSE_DEVICE_ADAPTER_HEARTBEAT_SECONDS",
        "WARMHOUSE_DEVICE_ADAPTER_PRESENCE_SECONDS",
        "WARMHOUSE_DEVICE_ADAPTER_HELLO_SECONDS",
        "WARMHOUSE_DEVICE_ADAPTER_AUTH_FAILURES_PER_MINUTE",
        "WARMHOUSE_DEVICE_ADAPTER_SAMPLES_PER_SECOND",
        "WARMHOUSE_DEVICE_ADAPTER_HEATING_STATUSES_PER_MINUTE",
    ],
)
def test_zero_is_refused_at_start_up(variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        AdapterSettings.from_environment(Environment({variable: "0"}))


def test_only_connect_is_open_to_hardware() -> None:
    assert DESCRIPTION.access(f"/{DEVICE_ADAPTER_SERVICE}/Connect") is Access.PUBLIC
    for method in ("SendCommand", "GetConnection"):
        assert DESCRIPTION.access(f"/{DEVICE_ADAPTER_SERVICE}/{method}") is Access.INTERNAL
    assert not DESCRIPTION.owns_database
    assert not DESCRIPTION.behind_edge
    assert DESCRIPTION.module == "services.device_adapter"


def test_ending_the_streams_takes_part_of_the_drain_time() -> None:
    assert shutdown_budget(10) == 5.0
    assert shutdown_budget(60) == 5.0
    assert shutdown_budget(0) == 0.5
    assert shutdown_budget(None) == 0.5


def test_the_server_takes_small_frames_and_lets_go_of_idle_and_dead_connections() -> None:
    options = dict(definition(AdapterSettings("127.0.0.1:1")).server_options)
    assert options == {
        "grpc.max_receive_message_length": 64 * 1024,
        "grpc.max_connection_idle_ms": 30_000,
        "grpc.keepalive_time_ms": 60_000,
        "grpc.keepalive_timeout_ms": 20_000,
    }
    # A simulator fleet multiplexes 100 devices on one connection.
    assert options.get("grpc.max_concurrent_streams", 100) >= 100


class Echo(device_adapter_pb2_grpc.DeviceAdapterServiceServicer):
    """Welcomes every frame it receives, however large."""

    async def Connect(
        self, request_iterator: AsyncIterator[pb.ConnectRequest], context: ServicerContext
    ) -> AsyncIterator[pb.ConnectResponse]:
        async for _ in request_iterator:
            yield pb.ConnectResponse(welcome=pb.Welcome())

    async def SendCommand(
        self, request: pb.SendCommandRequest, context: ServicerContext
    ) -> pb.SendCommandResponse:
        raise NotImplementedError

    async def GetConnection(
        self, request: pb.GetConnectionRequest, context: ServicerContext
    ) -> pb.GetConnectionResponse:
        raise NotImplementedError


async def exchange(call: Any, frame: pb.ConnectRequest) -> pb.ConnectResponse:
    """Write `frame`, read the answer."""
    await call.write(frame)
    response = await call.read()
    assert isinstance(response, pb.ConnectResponse)
    return response


async def test_a_frame_larger_than_the_limit_ends_its_stream() -> None:
    server = grpc.aio.server(options=SERVER_OPTIONS)
    device_adapter_pb2_grpc.add_DeviceAdapterServiceServicer_to_server(Echo(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = device_adapter_pb2_grpc.DeviceAdapterServiceStub(channel).Connect()
            small = pb.ConnectRequest(hello=pb.Hello(firmware_version="x" * 1000))
            assert (await exchange(call, small)).WhichOneof("frame") == "welcome"
            large = pb.ConnectRequest(
                hello=pb.Hello(firmware_version="x" * MAX_RECEIVE_MESSAGE_BYTES)
            )
            with pytest.raises(grpc.aio.AioRpcError) as ended:
                await exchange(call, large)
            assert ended.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        await server.stop(None)
