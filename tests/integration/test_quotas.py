"""Limits hold under concurrent requests: each is counted under a lock, so a
burst cannot slip past the check together."""

import asyncio

import grpc
from warmhouse.device.v1 import device_pb2, device_pb2_grpc
from warmhouse.space.v1 import space_pb2, space_pb2_grpc

from services.devstack.postgres_process import PostgresProcess
from services.runtime.config import RuntimeSettings
from services.space.domain import SpaceLimits
from tests.integration.mesh import Mesh, People, space_and_device


async def codes(calls: list[object]) -> list[grpc.StatusCode]:
    results = await asyncio.gather(*calls, return_exceptions=True)  # type: ignore[call-overload]
    return [
        result.code() if isinstance(result, grpc.aio.AioRpcError) else grpc.StatusCode.OK
        for result in results
    ]


async def test_a_burst_of_creations_gets_exactly_the_quota(
    runtime_settings: RuntimeSettings, postgres: PostgresProcess, mesh: Mesh, people: People
) -> None:
    limits = SpaceLimits(homes_per_owner=2, rooms_per_home=3)
    async with space_and_device(
        runtime_settings, postgres, mesh.user_address, space_limits=limits, devices_per_home=4
    ) as pair:
        spaces = space_pb2_grpc.SpaceServiceStub(pair.space_channel)
        devices = device_pb2_grpc.DeviceServiceStub(pair.device_channel)
        owner = await people.new()

        def create(name: str, parent: str = "") -> object:
            request = space_pb2.CreateSpaceRequest(name=name, parent_space_id=parent)
            return spaces.CreateSpace(request, metadata=owner.auth)

        homes = await codes([create(f"Home {n}") for n in range(8)])
        assert homes.count(grpc.StatusCode.OK) == 2
        assert set(homes) == {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
        listed = await spaces.ListSpaces(space_pb2.ListSpacesRequest(), metadata=owner.auth)
        home = listed.spaces[0].space_id
        rooms = await codes([create(f"Room {n}", home) for n in range(8)])
        assert rooms.count(grpc.StatusCode.OK) == 3

        def register(n: int) -> object:
            request = device_pb2.RegisterDeviceRequest(
                space_id=home, type=device_pb2.SENSOR, name=f"Sensor {n}"
            )
            return devices.RegisterDevice(request, metadata=owner.auth)

        registered = await codes([register(n) for n in range(10)])
        assert registered.count(grpc.StatusCode.OK) == 4
        assert set(registered) == {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
