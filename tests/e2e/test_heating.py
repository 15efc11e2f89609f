"""Heating control end to end: desired state over REST (through Envoy), plans pushed
through adapter processes to simulated heaters that run them on their own clocks,
reports back, with the cloud up, restarted and gone for a simulated day."""

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from warmhouse.heating.v1 import heating_pb2

from services.devstack.ports import free_port
from services.devstack.service_process import ServiceProcess
from services.devstack.stack import Stack
from services.simulator.clock import SimClock
from services.simulator.device import SimulatedDevice
from services.simulator.thermal import Room
from tests.e2e.device_loop import (
    ADAPTER,
    Hardware,
    adapter_address,
    replica_address,
    running,
    within,
)
from tests.e2e.homes import Home, ok
from tests.e2e.rest import Rest

# The README's bound for the slot in force after any restart.
CURRENT_SLOT_BOUND_SECONDS = 60.0
FROST_FLOOR = 7.0
# Every day, UTC: the slot's start hour and target. Distinct targets, so a report
# names the slot it follows.
DAILY = ((0, 19.0), (6, 21.0), (12, 17.0), (18, 22.0))
DAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
SCHEDULE = {
    "slots": [
        {"day": day, "startTime": f"{hour:02}:00", "targetCelsius": celsius}
        for day in DAYS
        for hour, celsius in DAILY
    ]
}


def scheduled_target(moment: datetime) -> float:
    """What SCHEDULE asks for at `moment` (UTC), worked out here, not by the firmware."""
    return next(celsius for hour, celsius in reversed(DAILY) if moment.hour >= hour)


def heating(hardware: Hardware) -> dict[str, Any]:
    return dict(hardware.get("/heating"))


def change(hardware: Hardware, body: dict[str, Any], token: str | None = None) -> Any:
    path = f"/devices/{hardware.device_id}/heating/desired"
    return hardware.api.call("PATCH", path, body, token or hardware.home.owner.token)


def desired_version(hardware: Hardware) -> int:
    return int(heating(hardware)["desired"]["plan"]["version"])


def changed(hardware: Hardware, body: dict[str, Any]) -> int:
    """Change the desired state at the version read now; the new version."""
    reply = ok(change(hardware, {"version": desired_version(hardware), **body}))
    return int(reply["desired"]["plan"]["version"])


async def reported(hardware: Hardware, newer_than: int = 0) -> dict[str, Any] | None:
    """The reported status once the device runs the desired version (in a report
    newer than report `newer_than`); else None."""
    state = await asyncio.to_thread(heating, hardware)
    if not state["delta"].get("inSync") or "reported" not in state:
        return None
    if int(state["reported"]["version"]) <= newer_than:
        return None
    return dict(state["reported"]["status"])


def report_count(hardware: Hardware) -> int:
    """How many reports Device has taken from the device so far."""
    return int(heating(hardware).get("reported", {}).get("version", 0))


def following_schedule(hardware: Hardware, newer_than: int = 0):  # type: ignore[no-untyped-def]
    """A probe: a report (newer than report `newer_than`) says the device follows the
    slot in force on its own clock."""

    async def probe() -> bool:
        status = await reported(hardware, newer_than)
        if status is None or status.get("reason") != "SCHEDULE":
            return False
        device_time = datetime.fromisoformat(status["deviceTime"])
        return bool(status["targetCelsius"] == scheduled_target(device_time))

    return probe


def with_reason(hardware: Hardware, reason: str, celsius: float):  # type: ignore[no-untyped-def]
    async def probe() -> bool:
        status = await reported(hardware)
        return status is not None and (status.get("reason"), status["targetCelsius"]) == (
            reason,
            celsius,
        )

    return probe


@contextmanager
def adapter_at(stack: Stack, port: int, name: str) -> Iterator[ServiceProcess]:
    """A Device Adapter replica on `port` (so a device can find it again after a restart)."""
    replica = stack.replica(ADAPTER, port=port, log_name=name)
    replica.start()
    try:
        yield replica
    finally:
        replica.stop()


async def test_a_change_reaches_the_device_and_a_stale_version_is_refused(
    api: Rest, home: Home, stack: Stack
) -> None:
    hardware = Hardware(api, home)
    first = heating(hardware)
    assert first["desired"]["plan"]["version"] == "1"
    assert first["delta"]["inSync"] is False
    simulated = hardware.simulated(adapter_address(stack), telemetry_interval=0.5)
    async with running(simulated) as sim:
        # The plan goes out on connect: the device runs version 1, and says so.
        await within(10, lambda: reported(hardware), "the device's first report")
        reply = change(hardware, {"version": 1, "mode": "HEAT", "targetCelsius": 23})
        assert ok(reply)["desired"]["plan"]["version"] == "2"
        stale = change(hardware, {"version": 1, "targetCelsius": 18})
        assert stale.status == 409
        assert stale.body["message"].startswith("the desired state is at version 2")
        await within(10, with_reason(hardware, "MANUAL_TARGET", 23), "the change, reported")
        assert sim.set_point is not None
        assert sim.set_point.target_celsius == 23
        state = heating(hardware)
        assert state["delta"]["appliedVersion"] == "2"
        assert state["delta"].get("differences", []) == []


async def test_a_guest_sets_the_temperature_only(api: Rest, home: Home) -> None:
    hardware = Hardware(api, home)
    guest = home.guest.token
    assert change(hardware, {"version": 1, "mode": "OFF"}, guest).status == 403
    assert change(hardware, {"version": 1, "preset": "BOOST"}, guest).status == 403
    assert change(hardware, {"version": 1, "schedule": SCHEDULE}, guest).status == 403
    assert ok(change(hardware, {"version": 1, "targetCelsius": 22.5}, guest))
    assert change(hardware, {"version": 2, "targetCelsius": 22}, home.stranger.token).status == 404
    assert ok(change(hardware, {"version": 2, "mode": "AUTO"}, home.maintainer.token))
    plan = heating(hardware)["desired"]["plan"]
    assert (plan["version"], plan["targetCelsius"], plan["mode"]) == ("3", 22.5, "AUTO")


async def test_a_restarted_device_applies_the_slot_in_force_within_the_bound(
    api: Rest, home: Home, stack: Stack, tmp_path: Path
) -> None:
    hardware = Hardware(api, home)
    changed(hardware, {"mode": "AUTO", "schedule": SCHEDULE})
    flash = tmp_path / "plan.bin"
    before = hardware.simulated(adapter_address(stack), telemetry_interval=0.5, state_path=flash)
    async with running(before):
        await within(10, following_schedule(hardware), "the schedule followed")
    reports_before = report_count(hardware)
    # Restarted without its storage: it knows nothing until the plan comes again,
    # the very version it had: applied again, not dropped as already seen.
    forgetful = hardware.simulated(adapter_address(stack), telemetry_interval=0.5)
    assert forgetful.heating is not None
    assert forgetful.heating.version == 0
    started = time.monotonic()
    async with running(forgetful):
        await within(
            CURRENT_SLOT_BOUND_SECONDS,
            following_schedule(hardware, newer_than=reports_before),
            "the slot in force",
        )
        print(f"slot in force {time.monotonic() - started:.1f} s after a restart without storage")
        assert forgetful.heating.version == 2
    # Restarted with its storage: the slot in force before any contact with the cloud.
    remembering = hardware.simulated(adapter_address(stack), state_path=flash)
    assert remembering.heating is not None
    assert remembering.heating.version == 2
    now = remembering.clock.now()
    assert remembering.heating.decide(now).target_celsius == scheduled_target(now)


async def test_the_schedule_runs_through_a_simulated_day_without_the_cloud(
    api: Rest, home: Home, stack: Stack
) -> None:
    hardware = Hardware(api, home)
    changed(hardware, {"mode": "AUTO", "schedule": SCHEDULE})
    # A simulated day in 30 s; a slot lasts 7.5 s.
    clock = SimClock(speed=2880)
    room = Room("living", temperature_celsius=19.0)
    port = free_port()
    device_service = stack.services["device"]
    with adapter_at(stack, port, "heating-adapter") as replica:
        sim = hardware.simulated(replica_address(replica), room=room, clock=clock)
        async with running(sim):
            await within(10, following_schedule(hardware), "the schedule followed")
            replica.process.kill()
            await asyncio.to_thread(device_service.stop)
            try:
                gone = clock.now()
                temperatures = await _watch_room(sim, until=gone + timedelta(days=1))
                _assert_followed(sim, temperatures, gone, gone + timedelta(days=1))
            finally:
                await asyncio.to_thread(device_service.start)
            # The cloud back: the report shows the slot in force within the bound.
            reports_before = report_count(hardware)
            with adapter_at(stack, port, "heating-adapter-again"):
                started = time.monotonic()
                await within(
                    CURRENT_SLOT_BOUND_SECONDS,
                    following_schedule(hardware, newer_than=reports_before),
                    "the slot in force",
                )
                print(f"slot in force {time.monotonic() - started:.1f} s after the cloud's restart")


async def _watch_room(sim: SimulatedDevice, until: datetime) -> list[tuple[datetime, float]]:
    """The room's temperature on the device's clock, until `until`."""
    seen = []
    while (now := sim.clock.now()) < until:
        seen.append((now, sim.room.temperature_celsius))
        await asyncio.sleep(0.1)
    return seen


def _assert_followed(
    sim: SimulatedDevice, temperatures: list[tuple[datetime, float]], start: datetime, end: datetime
) -> None:
    """Each slot start in (start, end) was taken up on time, and the room got there."""
    boundaries = []
    moment = start.replace(minute=0, second=0, microsecond=0)
    while moment < end:
        if moment > start and moment.hour in dict(DAILY):
            boundaries.append(moment)
        moment += timedelta(hours=1)
    assert len(boundaries) == 4
    # Late by at most a check of the device's loop (a second of real time: 48 simulated minutes).
    late = timedelta(minutes=50)
    changes = [c for c in sim.heating_log if start < c.time < end]
    for boundary in boundaries:
        taken = [c for c in changes if boundary <= c.time <= boundary + late]
        assert [c.target_celsius for c in taken][:1] == [scheduled_target(boundary)], (
            boundary,
            changes,
        )
    for boundary in boundaries[:-1]:
        # The last half hour of the slot that started there: within a degree of its target.
        slot_end = boundary + timedelta(hours=6)
        settled = [
            celsius
            for at, celsius in temperatures
            if slot_end - timedelta(minutes=30) <= at < slot_end
        ]
        target = scheduled_target(boundary)
        assert settled, boundary
        assert all(abs(celsius - target) < 1.0 for celsius in settled), (boundary, settled)


async def test_the_frost_floor_holds_on_every_path(api: Rest, home: Home, stack: Stack) -> None:
    hardware = Hardware(api, home)
    # Refused before they reach the device: a target, a slot, a command below the floor.
    assert change(hardware, {"version": 1, "targetCelsius": 6.5}).status == 400
    low_slot = {"slots": [{"day": "MONDAY", "startTime": "07:00", "targetCelsius": 6}]}
    assert change(hardware, {"version": 1, "schedule": low_slot}).status == 400
    command = hardware.api.call(
        "POST",
        f"/devices/{hardware.device_id}/command",
        {"kind": "SET_TARGET_TEMPERATURE", "targetTemperatureCelsius": 6},
        home.owner.token,
    )
    assert command.status == 400
    # A cold night: -15 °C outside, the room at 9 °C, five simulated minutes a second.
    room = Room("hall", temperature_celsius=9.0, outdoor_celsius=-15.0)
    port = free_port()
    with adapter_at(stack, port, "frost-adapter") as replica:
        sim = hardware.simulated(
            replica_address(replica), room=room, clock=SimClock(speed=300), telemetry_interval=0.5
        )
        async with running(sim):
            changed(hardware, {"mode": "OFF"})
            await within(10, with_reason(hardware, "FROST_PROTECTION", FROST_FLOOR), "OFF")
            lowest = await _lowest_over(sim, seconds=8)
            assert lowest >= FROST_FLOOR - 0.5, lowest
            changed(hardware, {"mode": "HEAT", "preset": "FROST"})
            await within(10, with_reason(hardware, "PRESET", FROST_FLOOR), "the FROST preset")
            changed(hardware, {"preset": "NONE", "mode": "OFF"})
            await within(10, with_reason(hardware, "FROST_PROTECTION", FROST_FLOOR), "OFF again")
            # The connection lost: the device keeps the floor on its own.
            replica.process.kill()
            lowest = await _lowest_over(sim, seconds=8)
            assert lowest >= FROST_FLOOR - 0.5, lowest
            assert sim.set_point is not None
            assert sim.set_point.target_celsius == FROST_FLOOR


async def _lowest_over(sim: SimulatedDevice, seconds: float) -> float:
    """The room's lowest temperature over `seconds` of real time, once it is near the floor."""
    await within(20, lambda: sim.room.temperature_celsius < FROST_FLOOR + 0.5, "a cold room")
    lowest = sim.room.temperature_celsius
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        lowest = min(lowest, sim.room.temperature_celsius)
        await asyncio.sleep(0.05)
    return lowest


async def test_an_open_window_pauses_heating_at_the_frost_floor_then_restores_it(
    api: Rest, home: Home, stack: Stack
) -> None:
    hardware = Hardware(api, home)
    window = {"enabled": True, "dropCelsius": 1.5, "withinSeconds": 120, "pauseSeconds": 600}
    changed(hardware, {"mode": "HEAT", "targetCelsius": 21, "windowDetection": window})
    room = Room("kitchen", temperature_celsius=21.0)
    # A simulated minute a second: the pause lasts ten seconds.
    sim = hardware.simulated(
        adapter_address(stack), room=room, clock=SimClock(speed=60), telemetry_interval=0.5
    )
    async with running(sim):
        await within(10, with_reason(hardware, "MANUAL_TARGET", 21), "heating at 21 °C")
        opened = sim.clock.now()
        sim.open_window(True)
        await within(10, with_reason(hardware, "WINDOW_OPEN", FROST_FLOOR), "the window seen")
        detected = next(c.time for c in sim.heating_log if c.reason == heating_pb2.WINDOW_OPEN)
        assert detected - opened <= timedelta(seconds=120)
        status = await reported(hardware)
        assert status is not None
        assert status["windowOpen"] is True
        assert "windowOpenUntil" in status
        sim.open_window(False)
        await within(30, with_reason(hardware, "MANUAL_TARGET", 21), "heating restored")
        restored = next(
            c.time for c in sim.heating_log if c.time > detected and c.target_celsius == 21
        )
        assert restored - detected >= timedelta(seconds=600)
    logs = await hardware.logs("HEATING_CHANGED")
    assert logs[0] == "window closed: heating restored"
    assert logs[1] == "window open: heating paused, held at 7 °C"
