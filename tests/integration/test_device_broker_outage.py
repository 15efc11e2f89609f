"""While the broker is down, Device's copy of the memberships may be missing a
removal, so it trusts none of it: every check asks Space."""

from dataclasses import replace
from typing import TYPE_CHECKING

import grpc
from warmhouse.device.v1 import device_pb2, device_pb2_grpc
from warmhouse.space.v1 import space_pb2, space_pb2_grpc

from services.devstack.nats_process import NatsProcess
from services.devstack.postgres_process import PostgresProcess
from services.runtime.config import RuntimeSettings
from tests.accounts import refused
from tests.integration.mesh import Mesh, People, space_and_device
from tests.polling import eventually

if TYPE_CHECKING:
    from warmhouse.device.v1.device_pb2_grpc import DeviceServiceAsyncStub


async def test_a_removal_made_while_the_broker_is_down_applies_at_once(
    runtime_settings: RuntimeSettings,
    postgres: PostgresProcess,
    private_nats: NatsProcess,
    mesh: Mesh,
    people: People,
) -> None:
    settings = replace(runtime_settings, nats_url=private_nats.url)
    async with space_and_device(settings, postgres, mesh.user_address) as pair:
        spaces = space_pb2_grpc.SpaceServiceStub(pair.space_channel)
        devices: DeviceServiceAsyncStub = device_pb2_grpc.DeviceServiceStub(pair.device_channel)
        owner, maintainer = await people.new(), await people.new()
        created = await spaces.CreateSpace(
            space_pb2.CreateSpaceRequest(name="Home"), metadata=owner.auth
        )
        home = created.space_id
        await spaces.AddSpaceUser(
            space_pb2.AddSpaceUserRequest(
                space_id=home, user_id=maintainer.user_id, role=space_pb2.MAINTAINER
            ),
            metadata=owner.auth,
        )
        registered = await devices.RegisterDevice(
            device_pb2.RegisterDeviceRequest(space_id=home, type=device_pb2.HEATER, name="R"),
            metadata=owner.auth,
        )
        read = device_pb2.GetDeviceRequest(device_id=registered.device.device_id)
        projection = pair.device.runtime.database

        async def projected() -> bool:
            async with projection.connection() as connection:
                role = await connection.raw.fetchval(
                    "SELECT role FROM memberships WHERE user_id = $1::uuid", maintainer.user_id
                )
            return bool(role == "MAINTAINER")

        async def removal_arrived() -> bool:
            return not await projected()

        await eventually(projected, within=5.0, what="the membership in Device's projection")
        private_nats.stop()
        await eventually(
            lambda: not pair.device.runtime.nats.is_connected,
            within=5.0,
            what="Device noticing the broker is gone",
        )
        await spaces.RemoveSpaceUser(
            space_pb2.RemoveSpaceUserRequest(space_id=home, user_id=maintainer.user_id),
            metadata=owner.auth,
        )
        # The projection still says MAINTAINER: it cannot have heard.
        assert await projected()
        gone = devices.GetDevice(read, metadata=maintainer.auth)
        assert await refused(gone, grpc.StatusCode.NOT_FOUND) == "DEVICE_NOT_FOUND"
        assert (await devices.GetDevice(read, metadata=owner.auth)).device.name == "R"
        private_nats.start()
        await eventually(removal_arrived, within=10.0, what="the removal reaching Device")
