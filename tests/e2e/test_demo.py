"""The demo home (`make demo`, services/devstack/demo.py) on the session's stack: seeded
through REST, its simulated heaters on the seeded schedule, its sensors reporting, and
one home per demo directory while what it saved still works."""

import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from services.devstack import demo
from services.devstack.stack import Stack
from tests.e2e.accounts import new_email, token_of
from tests.e2e.device_loop import adapter_address
from tests.e2e.homes import ok
from tests.e2e.rest import Rest
from tests.polling import wait_until

# Generous: heaters report their plan and sensors a sample seconds after connecting.
DEADLINE_SECONDS = 60.0
DAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
MINUTES_PER_DAY = 24 * 60


@pytest.fixture(scope="module")
def running_demo(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[demo.RunningDemo]:
    """The demo seeded into a fresh directory, its simulator running (stopped by its PID)."""
    directory = tmp_path_factory.mktemp("demo")
    home, token = demo.prepare(stack.base_url, directory, email=new_email())
    simulator = demo.start_simulator(
        home, token, stack.base_url, adapter_address(stack), directory, directory / "sim.log"
    )
    try:
        yield demo.RunningDemo(home, directory, stack.base_url, simulator)
    finally:
        simulator.stop()


@pytest.fixture(scope="module")
def owner_token(running_demo: demo.RunningDemo, base_url: str) -> str:
    home = running_demo.home
    return token_of(Rest(base_url), home.email, home.password)


def slot_in_force(slots: list[dict[str, Any]], moment: datetime) -> dict[str, Any]:
    """The slot whose (day, start) is the latest at or before `moment` in its week; before
    the week's first slot, the week's last one."""

    def week_minute(slot: dict[str, Any]) -> int:
        hours, minutes = slot["startTime"].split(":")
        return DAYS.index(slot["day"]) * MINUTES_PER_DAY + int(hours) * 60 + int(minutes)

    now = moment.weekday() * MINUTES_PER_DAY + moment.hour * 60 + moment.minute
    started = [slot for slot in slots if week_minute(slot) <= now]
    return max(started or slots, key=week_minute)


def test_slot_in_force_wraps_to_the_last_slot_of_the_week() -> None:
    slots = demo.weekly_schedule(demo.LIVING_ROOM_DAY)["slots"]
    monday_early = datetime.fromisoformat("2026-11-30T05:00:00+00:00")
    monday_noon = datetime.fromisoformat("2026-11-30T12:00:00+00:00")
    assert slot_in_force(slots, monday_early) == {
        "day": "SUNDAY",
        "startTime": "23:00",
        "targetCelsius": 18.0,
    }
    assert slot_in_force(slots, monday_noon)["startTime"] == "09:00"


@pytest.mark.parametrize("room", list(demo.ROOMS))
def test_each_heater_follows_its_rooms_schedule(
    running_demo: demo.RunningDemo, api: Rest, owner_token: str, room: str
) -> None:
    heater = running_demo.home.device(room, "HEATER").device_id

    def in_sync() -> Any:
        heating = ok(api.call("GET", f"/devices/{heater}/heating", token=owner_token))
        return heating if heating["delta"]["inSync"] else None

    heating = wait_until(in_sync, timeout=DEADLINE_SECONDS, what=f"the {room} heater in sync")
    plan, status = heating["desired"]["plan"], heating["reported"]["status"]
    assert plan["schedule"] == demo.weekly_schedule(demo.ROOMS[room][1])
    assert (plan["mode"], plan["timeZone"]) == ("AUTO", "UTC")
    assert plan["windowDetection"]["enabled"] is True
    assert status["planVersion"] == plan["version"]
    assert (status["mode"], status["reason"]) == ("AUTO", "SCHEDULE")
    # The device's clock runs 60 times faster than ours: the slot is the one of its time.
    expected = slot_in_force(
        plan["schedule"]["slots"], datetime.fromisoformat(status["deviceTime"])
    )
    assert status["scheduleSlot"] == expected
    assert status["targetCelsius"] == expected["targetCelsius"]


@pytest.mark.parametrize("room", list(demo.ROOMS))
def test_each_sensor_reports_readings(
    running_demo: demo.RunningDemo, api: Rest, owner_token: str, room: str
) -> None:
    sensor = running_demo.home.device(room, "SENSOR").device_id

    def readings() -> list[Any]:
        body = ok(api.call("GET", f"/devices/{sensor}/readings", token=owner_token))
        return list(body.get("points", []))

    points = wait_until(readings, timeout=DEADLINE_SECONDS, what=f"readings of the {room} sensor")
    assert "temperatureCelsius" in points[0]
    device = ok(api.call("GET", f"/devices/{sensor}", token=owner_token))["device"]
    assert device["status"] == "ONLINE"


def test_seeding_the_same_directory_again_reuses_the_home(
    running_demo: demo.RunningDemo, api: Rest, owner_token: str
) -> None:
    home = running_demo.home
    again, _ = demo.prepare(running_demo.base_url, running_demo.directory, email=home.email)
    assert again == home
    spaces = ok(api.call("GET", "/spaces?pageSize=100", token=owner_token))["spaces"]
    homes = [space for space in spaces if not space.get("parentSpaceId")]
    assert [space["spaceId"] for space in homes] == [home.home_id]


def test_a_saved_home_whose_device_is_gone_is_replaced(
    running_demo: demo.RunningDemo, tmp_path: Path
) -> None:
    saved = json.loads((running_demo.directory / "demo.json").read_text())
    saved["devices"][0]["device_id"] = str(uuid.uuid4())
    (tmp_path / "demo.json").write_text(json.dumps(saved))

    fresh, _ = demo.prepare(running_demo.base_url, tmp_path, email=new_email())

    assert fresh.home_id != running_demo.home.home_id
    assert len(fresh.devices) == len(running_demo.home.devices)
    reused, _ = demo.prepare(running_demo.base_url, tmp_path, email=new_email())
    assert reused == fresh
