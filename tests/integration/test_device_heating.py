"""Heating on real PostgreSQL and NATS: desired state with versions, plans pushed
to the replica holding the stream on change and on connect, reports taken in the
adapter's order. The adapter is a stand-in (tests/integration/adapter_standin.py)."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import grpc
import pytest
from warmhouse.device.v1 import device_pb2
from warmhouse.heating.v1 import heating_pb2

from services.device.repository import sql_repositories
from services.runtime.config import RuntimeSettings
from tests.accounts import refused
from tests.integration.adapter_standin import Replica, replica
from tests.integration.households import Household
from tests.integration.mesh import Mesh
from tests.integration.test_device_service import device_id_in
from tests.polling import eventually

if TYPE_CHECKING:
    from warmhouse.device.v1.device_pb2_grpc import DeviceServiceAsyncStub

Code = grpc.StatusCode


@pytest.fixture
async def standin(runtime_settings: RuntimeSettings) -> AsyncIterator[Replica]:
    async with replica(runtime_settings.nats_url) as held:
        yield held


async def heating(
    devices: "DeviceServiceAsyncStub", household: Household, device_id: str
) -> device_pb2.GetHeatingResponse:
    request = device_pb2.GetHeatingRequest(device_id=device_id)
    return await devices.GetHeating(request, metadata=household.guest.auth)


async def update(
    devices: "DeviceServiceAsyncStub",
    household: Household,
    device_id: str,
    version: int,
    **fields: object,
) -> device_pb2.UpdateDesiredHeatingResponse:
    request = device_pb2.UpdateDesiredHeatingRequest(
        device_id=device_id,
        version=version,
        **fields,  # type: ignore[arg-type]
    )
    return await devices.UpdateDesiredHeating(request, metadata=household.owner.auth)


def applied(plan: heating_pb2.HeatingPlan, **fields: object) -> heating_pb2.HeatingStatus:
    status = heating_pb2.HeatingStatus(
        plan_version=plan.version,
        mode=plan.mode,
        preset=heating_pb2.NONE,
        target_celsius=plan.target_celsius,
        reason=heating_pb2.MANUAL_TARGET,
    )
    status.MergeFrom(heating_pb2.HeatingStatus(**fields))  # type: ignore[arg-type]
    return status


def versions_written(standin: Replica, device_id: str) -> list[int]:
    return [plan.version for plan in standin.plans.get(device_id, [])]


async def test_a_change_goes_to_the_connected_device_and_its_report_brings_it_in_sync(
    devices: "DeviceServiceAsyncStub", household: Household, standin: Replica
) -> None:
    device_id = await device_id_in(devices, household)
    await standin.connect(device_id)
    # On connect: the plan it should run, though nobody changed it yet.
    await eventually(lambda: versions_written(standin, device_id) == [1], what="the first plan")
    changed = await update(devices, household, device_id, 1, target_celsius=22.5)
    assert changed.desired.plan.version == 2
    await eventually(lambda: versions_written(standin, device_id) == [1, 2], what="the change")
    assert standin.plans[device_id][-1].target_celsius == 22.5
    before = await heating(devices, household, device_id)
    assert not before.delta.in_sync
    assert "plan_version" in before.delta.differences
    await standin.report_heating(device_id, applied(standin.plans[device_id][-1]))

    async def in_sync() -> device_pb2.GetHeatingResponse | None:
        found = await heating(devices, household, device_id)
        return found if found.delta.in_sync else None

    synced = await eventually(in_sync, what="in sync")
    assert synced is not None
    assert synced.reported.version == 1
    assert list(synced.delta.differences) == []
    assert synced.reported.status.target_celsius == 22.5


async def test_a_stale_version_is_a_conflict_and_concurrent_changes_get_one_version_each(
    devices: "DeviceServiceAsyncStub", household: Household
) -> None:
    device_id = await device_id_in(devices, household)
    results = await asyncio.gather(
        *(update(devices, household, device_id, 1, target_celsius=18 + n) for n in range(8)),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, device_pb2.UpdateDesiredHeatingResponse)]
    lost = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(won) == 1
    assert [error.code() for error in lost] == [Code.ABORTED] * 7
    current = await heating(devices, household, device_id)
    assert current.desired.plan.version == 2
    assert current.desired.plan.target_celsius == won[0].desired.plan.target_celsius
    reason = await refused(
        update(devices, household, device_id, 1, mode=heating_pb2.OFF), Code.ABORTED
    )
    assert reason == "DESIRED_VERSION_STALE"


async def test_a_device_that_connects_later_gets_the_current_plan(
    devices: "DeviceServiceAsyncStub", household: Household, standin: Replica
) -> None:
    device_id = await device_id_in(devices, household)
    await update(devices, household, device_id, 1, mode=heating_pb2.AUTO)
    await update(devices, household, device_id, 2, mode=heating_pb2.OFF)
    await asyncio.sleep(0.5)
    assert versions_written(standin, device_id) == []
    await standin.connect(device_id)
    await eventually(lambda: versions_written(standin, device_id) == [3], what="the plan")
    assert standin.plans[device_id][0].mode == heating_pb2.OFF


async def test_a_device_that_says_it_lacks_the_plan_written_to_it_gets_it_again(
    devices: "DeviceServiceAsyncStub", household: Household, standin: Replica
) -> None:
    device_id = await device_id_in(devices, household)
    await standin.connect(device_id)
    await eventually(lambda: versions_written(standin, device_id) == [1], what="the plan")
    lacking = heating_pb2.HeatingStatus(plan_version=0, mode=heating_pb2.HEAT)

    async def written_again() -> bool:
        # It keeps saying so (as a device does on every change); once its status cannot
        # have crossed the plan on the wire, the plan goes out again.
        await standin.report_heating(device_id, lacking)
        return versions_written(standin, device_id) == [1, 1]

    # Well before the 30 s resend: the same version, which the device applies again.
    await eventually(written_again, within=6, interval=0.5, what="the plan again")


async def test_a_device_running_a_version_never_given_out_gets_the_plan_renumbered_above_it(
    devices: "DeviceServiceAsyncStub", household: Household, standin: Replica
) -> None:
    device_id = await device_id_in(devices, household)
    await standin.connect(device_id)
    await eventually(lambda: versions_written(standin, device_id) == [1], what="the plan")
    # Its storage outlived a restored database: it runs version 7.
    await standin.report_heating(device_id, heating_pb2.HeatingStatus(plan_version=7))
    await eventually(lambda: versions_written(standin, device_id) == [1, 8], what="version 8")
    current = await heating(devices, household, device_id)
    assert current.desired.plan.version == 8
    # Changes go on from there.
    changed = await update(devices, household, device_id, 8, target_celsius=21)
    assert changed.desired.plan.version == 9


async def test_the_sweep_writes_a_plan_again_that_was_never_applied(
    devices: "DeviceServiceAsyncStub", household: Household, standin: Replica, mesh: Mesh
) -> None:
    device_id = await device_id_in(devices, household)
    await standin.connect(device_id)
    await eventually(lambda: versions_written(standin, device_id) == [1], what="the plan")
    # No report at all. The sweep's query, as of a minute from now, finds it.
    database = mesh.device.runtime.database
    async with database.transaction() as connection:
        later = datetime.now(UTC) + timedelta(minutes=1)
        waiting = await sql_repositories(connection).heating.devices_awaiting_plan(later, 1000)
    assert uuid.UUID(device_id) in waiting
    async with database.transaction() as connection:
        now = datetime.now(UTC) - timedelta(seconds=1)
        waiting = await sql_repositories(connection).heating.devices_awaiting_plan(now, 1000)
    assert uuid.UUID(device_id) not in waiting


async def test_reports_are_taken_in_the_order_the_adapter_received_them(
    devices: "DeviceServiceAsyncStub", household: Household, standin: Replica
) -> None:
    device_id = await device_id_in(devices, household)
    await standin.connect(device_id)
    plan = (await heating(devices, household, device_id)).desired.plan
    now = datetime.now(UTC)
    await standin.report_heating(device_id, applied(plan, target_celsius=21), now)

    async def reported(version: int) -> device_pb2.GetHeatingResponse | None:
        found = await heating(devices, household, device_id)
        return found if found.reported.version == version else None

    await eventually(lambda: reported(1), what="the first report")
    # Received earlier (an older stream's, delivered late): ignored.
    await standin.report_heating(
        device_id, applied(plan, target_celsius=5), now - timedelta(seconds=1)
    )
    # Received at the same instant: taken, never dropped for being equal.
    await standin.report_heating(
        device_id,
        applied(plan, target_celsius=23, window_open=True),
        now,
    )
    found = await eventually(lambda: reported(2), what="the equal-time report")
    assert found is not None
    assert found.reported.status.target_celsius == 23
    logs = await devices.ListDeviceLogs(
        device_pb2.ListDeviceLogsRequest(device_id=device_id, kind=device_pb2.HEATING_CHANGED),
        metadata=household.guest.auth,
    )
    assert logs.device_logs[0].event.startswith("window open")


async def test_a_report_of_an_older_stream_loses_whatever_its_arrival_time(
    devices: "DeviceServiceAsyncStub", household: Household, standin: Replica
) -> None:
    device_id = await device_id_in(devices, household)
    older = await standin.connect(device_id)
    await standin.drop(device_id)
    await standin.connect(device_id)
    plan = (await heating(devices, household, device_id)).desired.plan
    await standin.report_heating(device_id, applied(plan, target_celsius=21))

    async def reported_once() -> bool:
        return (await heating(devices, household, device_id)).reported.version == 1

    await eventually(reported_once, what="the newer stream's report")
    # The older stream's replica has a clock running ahead: its late report still loses.
    ahead = datetime.now(UTC) + timedelta(minutes=5)
    await standin.report_heating(
        device_id, applied(plan, target_celsius=5), ahead, connection_id=older
    )
    await standin.report_heating(device_id, applied(plan, target_celsius=22))

    async def reported_twice() -> device_pb2.GetHeatingResponse | None:
        found = await heating(devices, household, device_id)
        return found if found.reported.version == 2 else None

    found = await eventually(reported_twice, what="the next report")
    assert found is not None
    assert found.reported.status.target_celsius == 22


async def test_a_sensor_has_no_heating_and_a_stranger_sees_no_device(
    devices: "DeviceServiceAsyncStub", household: Household
) -> None:
    sensor = await devices.RegisterDevice(
        device_pb2.RegisterDeviceRequest(
            space_id=household.room, type=device_pb2.SENSOR, name="Thermometer"
        ),
        metadata=household.owner.auth,
    )
    sensor_id = sensor.device.device_id
    assert await refused(heating(devices, household, sensor_id), Code.FAILED_PRECONDITION) == (
        "NOT_A_HEATING_DEVICE"
    )
    heater = await device_id_in(devices, household)
    stranger_read = devices.GetHeating(
        device_pb2.GetHeatingRequest(device_id=heater), metadata=household.stranger.auth
    )
    assert await refused(stranger_read, Code.NOT_FOUND) == "DEVICE_NOT_FOUND"
