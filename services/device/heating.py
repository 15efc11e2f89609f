"""Heating use cases: read a device's desired and reported state, change the desired one.

A change names the desired version it was made against: another one is a
conflict, so two people editing the same schedule cannot overwrite each
other unseen. The device's row is locked for the change, so versions rise
one at a time and none is given twice.
"""

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from warmhouse.device.v1 import device_pb2

from services.device import domain, heating_rules
from services.device.handlers import DeviceHandlers, device_not_found, log_entry
from services.device.ports import DeviceRecord, DeviceRepositories, HeatingRecord
from services.runtime.auth import Caller
from services.runtime.clock import Clock, utc_now
from services.runtime.request import parse_uuid
from services.runtime.space_roles import Right
from services.runtime.timestamps import timestamp
from services.runtime.unit_of_work import UnitOfWork


def default_record(device: DeviceRecord) -> HeatingRecord:
    """What a heating device without a row runs: the defaults, since it was registered."""
    return HeatingRecord(
        device_id=device.id, desired=heating_rules.default_plan(), desired_at=device.created_at
    )


def desired_message(record: HeatingRecord) -> device_pb2.DesiredHeating:
    message = device_pb2.DesiredHeating(
        plan=record.desired, update_time=timestamp(record.desired_at)
    )
    if record.desired_by is not None:
        message.updated_by = str(record.desired_by)
    return message


def heating_response(record: HeatingRecord, now: datetime) -> device_pb2.GetHeatingResponse:
    response = device_pb2.GetHeatingResponse(
        desired=desired_message(record),
        delta=device_pb2.HeatingDelta(
            in_sync=record.applied_version == record.desired.version,
            desired_version=record.desired.version,
            applied_version=record.applied_version,
            differences=heating_rules.differences(record.desired, record.reported, now),
        ),
    )
    if record.reported is not None and record.reported_at is not None:
        response.reported.CopyFrom(
            device_pb2.ReportedHeating(
                version=record.reported_version,
                status=record.reported,
                update_time=timestamp(record.reported_at),
            )
        )
    return response


class HeatingHandlers:
    def __init__(
        self,
        uow: UnitOfWork[DeviceRepositories],
        devices: DeviceHandlers,
        # Told after a change is committed, so that the plan goes out at once.
        on_changed: Callable[[uuid.UUID], None],
        clock: Clock = utc_now,
    ) -> None:
        self._uow = uow
        self._devices = devices
        self._on_changed = on_changed
        self._clock = clock

    async def get(self, caller: Caller, device_id: str) -> device_pb2.GetHeatingResponse:
        device = await self._devices.authorized_device(
            caller, parse_uuid(device_id, "deviceId"), Right.READ
        )
        heating_rules.require_heating_type(device.type)
        async with self._uow.read() as repos:
            record = await repos.heating.get(device.id)
        return heating_response(record or default_record(device), self._clock())

    async def update(
        self, caller: Caller, request: device_pb2.UpdateDesiredHeatingRequest
    ) -> HeatingRecord:
        device_id = parse_uuid(request.device_id, "deviceId")
        fields = heating_rules.check_request(request)
        device = await self._devices.authorized_device(
            caller, device_id, heating_rules.required_right(fields)
        )
        heating_rules.require_heating_type(device.type)
        async with self._uow.transaction() as tx:
            locked = await tx.repos.devices.get(device_id, lock=True)
            if locked is None:
                raise device_not_found()
            record = await tx.repos.heating.get(device_id) or default_record(locked)
            heating_rules.check_version(record.desired, request.version)
            now = self._clock()
            plan = heating_rules.changed_plan(record.desired, request, now)
            window_start, count = heating_rules.count_change(
                record.changes_window_start, record.changes_in_window, now
            )
            changed = replace(
                record,
                desired=plan,
                desired_at=now,
                desired_by=caller.user_uuid,
                changes_window_start=window_start,
                changes_in_window=count,
            )
            await tx.repos.heating.save(changed)
            await tx.repos.logs.add(
                log_entry(
                    device_id,
                    domain.HEATING_CHANGED,
                    heating_rules.describe_change(fields, plan),
                    now,
                )
            )
            await tx.add_event(
                device_pb2.DesiredHeatingChanged(
                    device_id=str(device_id),
                    space_id=str(locked.space_id),
                    plan=plan,
                    requester_id=caller.user_id,
                    occur_time=timestamp(now),
                )
            )
            tx.after_commit(lambda: self._on_changed(device_id))
        return changed
