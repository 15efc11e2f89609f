"""A simulated device running its heating firmware: plan frames in, heating_status frames out,
against the fake adapter of test_simulator_device; the heating timer with and without a stream;
the plan's storage; the fleet's and the command line's part."""

from datetime import UTC, timedelta
from pathlib import Path

from warmhouse.device_adapter.v1.device_adapter_pb2 import (
    TURN_OFF,
    TURN_ON,
    ConnectResponse,
)
from warmhouse.heating.v1 import heating_pb2
from warmhouse.heating.v1.heating_pb2 import HeatingPlan, HeatingStatus

from services.simulator import cli, flash
from services.simulator.clock import SimClock
from services.simulator.device import (
    HEATING_LOG_SIZE,
    MIN_WINDOW_CHECK_SECONDS,
    DeviceType,
    SimulatedDevice,
)
from services.simulator.fleet import DeviceSpec, Fault, Fleet
from services.simulator.heating import Setpoint
from services.simulator.thermal import Room
from tests.polling import eventually
from tests.unit.test_simulator_device import (  # the fake adapter and its fixtures
    FakeAdapter,
    FakeStream,
    StartDevice,
    adapter,  # noqa: F401 - a fixture
    command,
    connected_stream,
    start_device,  # noqa: F401 - a fixture
)
from tests.unit.test_simulator_heating import MONDAY, plan, slot


def send_plan(stream: FakeStream, heating_plan: HeatingPlan) -> None:
    stream.outgoing.put_nowait(ConnectResponse(heating_plan=heating_plan))


def statuses(stream: FakeStream) -> list[HeatingStatus]:
    return [frame.heating_status for frame in stream.frames if frame.HasField("heating_status")]


def idle(device_type: DeviceType, room: Room, **options: object) -> SimulatedDevice:
    """A device that is never started: what it does without a stream or a timer."""
    return SimulatedDevice(
        f"{device_type}-{len(room.heaters)}",
        "s3cret",
        device_type,
        room,
        adapter="127.0.0.1:1",
        **options,  # type: ignore[arg-type]
    )


# Plans and statuses on the stream.


async def test_a_status_follows_the_welcome_and_every_plan_frame(
    adapter: FakeAdapter,  # noqa: F811 - the fixture
    start_device: StartDevice,  # noqa: F811 - the fixture
) -> None:
    device = await start_device()
    stream = await connected_stream(adapter, device)
    await eventually(lambda: statuses(stream), what="the status after the Welcome")

    send_plan(stream, plan(version=3, target_celsius=22.0))

    await eventually(lambda: len(statuses(stream)) == 2, what="the plan's status")
    welcome, applied = statuses(stream)
    assert stream.kinds()[1] == "heating_status"
    assert (welcome.plan_version, welcome.target_celsius) == (0, 20.0)
    assert (applied.plan_version, applied.target_celsius) == (3, 22.0)
    assert applied.reason == heating_pb2.MANUAL_TARGET
    assert applied.HasField("temperature_celsius")
    assert applied.HasField("device_time")
    assert device.thermostat is not None
    assert device.thermostat.target_celsius == 22.0


async def test_an_equal_version_is_answered_each_time_and_a_lower_one_with_the_current(
    adapter: FakeAdapter,  # noqa: F811 - the fixture
    start_device: StartDevice,  # noqa: F811 - the fixture
) -> None:
    device = await start_device()
    stream = await connected_stream(adapter, device)

    send_plan(stream, plan(version=4, target_celsius=21.0))
    send_plan(stream, plan(version=4, target_celsius=21.0))
    send_plan(stream, plan(version=2, target_celsius=25.0))
    await eventually(lambda: len(statuses(stream)) >= 4, what="three answers")
    # Nothing else after them: no status for a change that did not happen.
    sent = len(stream.frames)
    await eventually(lambda: stream.kinds()[sent:].count("heartbeat") >= 1, what="a heartbeat")

    assert [status.plan_version for status in statuses(stream)] == [0, 4, 4, 4]
    assert [status.target_celsius for status in statuses(stream)] == [20.0, 21.0, 21.0, 21.0]
    assert device.heating is not None
    assert device.heating.version == 4


async def test_a_command_that_changes_the_set_point_is_reported(
    adapter: FakeAdapter,  # noqa: F811 - the fixture
    start_device: StartDevice,  # noqa: F811 - the fixture
) -> None:
    device = await start_device()
    stream = await connected_stream(adapter, device)

    stream.send(command("warmer", target=23.0))
    await eventually(lambda: len(statuses(stream)) == 2, what="the override's status")
    stream.send(command("off", kind=TURN_OFF))
    await eventually(lambda: len(statuses(stream)) == 3, what="the OFF's status")

    _, warmer, off = statuses(stream)
    assert (warmer.target_celsius, warmer.reason) == (23.0, heating_pb2.LOCAL_OVERRIDE)
    assert (off.target_celsius, off.reason, off.mode) == (
        7.0,
        heating_pb2.FROST_PROTECTION,
        heating_pb2.OFF,
    )
    assert [result.command_id for result in stream.results()] == ["warmer", "off"]


async def test_a_reconnected_device_reports_the_plan_it_kept(
    adapter: FakeAdapter,  # noqa: F811 - the fixture
    start_device: StartDevice,  # noqa: F811 - the fixture
) -> None:
    device = await start_device()
    first = await connected_stream(adapter, device)
    send_plan(first, plan(version=8, target_celsius=19.0))
    await eventually(lambda: len(statuses(first)) == 2, what="the plan's status")
    # Ended while a frame is on its way, grpc would report INTERNAL instead of OK.
    await eventually(lambda: first.samples(), what="the first sample")

    first.end()

    await eventually(lambda: device.connections == 2, what="a second connection")
    second = adapter.streams[1]
    await eventually(lambda: statuses(second), what="the status after the new Welcome")
    assert (statuses(second)[0].plan_version, statuses(second)[0].target_celsius) == (8, 19.0)


async def test_a_sensor_ignores_plans_and_reports_no_heating(
    adapter: FakeAdapter,  # noqa: F811 - the fixture
    start_device: StartDevice,  # noqa: F811 - the fixture
) -> None:
    device = await start_device(DeviceType.SENSOR)
    stream = await connected_stream(adapter, device)

    send_plan(stream, plan(version=5))
    stream.send(command("after-the-plan"))  # answered after the plan was read

    await eventually(lambda: stream.results(), what="the command's answer")
    assert statuses(stream) == []
    assert device.heating is None
    assert device.heating_status() is None
    assert device.heating_log == []


# The heating timer.

# Eight slots a day, every three hours, alternating between two targets.
EVERY_THREE_HOURS = [
    slot(day, f"{hour:02d}:00", 21.0 if hour % 6 == 0 else 18.0)
    for day in range(1, 8)
    for hour in range(0, 24, 3)
]
# A simulated day in six real seconds: a slot every 0.75 s.
FAST = 14_400.0


async def test_the_schedule_is_followed_with_the_adapter_gone(
    adapter: FakeAdapter,  # noqa: F811 - the fixture
    start_device: StartDevice,  # noqa: F811 - the fixture
) -> None:
    device = await start_device(clock=SimClock(speed=FAST, start=MONDAY))
    stream = await connected_stream(adapter, device)
    send_plan(stream, plan(mode=heating_pb2.AUTO, slots=EVERY_THREE_HOURS))
    await eventually(lambda: len(statuses(stream)) == 2, what="the plan's status")

    device.go_silent()  # it does not reconnect
    stream.end()
    await eventually(lambda: not device.connected.is_set(), what="the stream's end")
    mark = len(device.heating_log)
    await eventually(
        lambda: len({change.slot for change in device.heating_log[mark:]}) >= 3,
        what="three slots while disconnected",
    )

    changes = device.heating_log[mark:]
    assert {change.reason for change in changes} == {heating_pb2.SCHEDULE}
    for change in changes:
        assert change.slot is not None
        assert change.target_celsius == change.slot.target_celsius
        # Taken up at the slot's start: the timer wakes for it, not at its next check.
        local = change.time.astimezone(UTC)
        started = local.replace(hour=local.hour - local.hour % 3, minute=0, second=0)
        assert local - started < timedelta(hours=1)
        assert change.slot.start_time == f"{started.hour:02d}:00"
    assert device.connections == 1
    assert device.thermostat is not None
    assert device.thermostat.target_celsius == device.heating_log[-1].target_celsius


async def test_an_opened_window_is_detected_reported_and_heats_to_the_frost_floor(
    adapter: FakeAdapter,  # noqa: F811 - the fixture
    start_device: StartDevice,  # noqa: F811 - the fixture
) -> None:
    device = await start_device(clock=SimClock(speed=60.0), telemetry_interval=0.2)
    stream = await connected_stream(adapter, device)

    device.open_window(True)

    await eventually(
        lambda: any(status.window_open for status in statuses(stream)), what="the window"
    )
    opened = next(status for status in statuses(stream) if status.window_open)
    assert (opened.reason, opened.target_celsius) == (heating_pb2.WINDOW_OPEN, 7.0)
    pause = opened.window_open_until.ToDatetime(tzinfo=UTC) - opened.device_time.ToDatetime(
        tzinfo=UTC
    )
    assert timedelta(seconds=1790) < pause <= timedelta(seconds=1800)
    assert device.heating_log[-1].reason == heating_pb2.WINDOW_OPEN
    assert device.thermostat is not None
    assert device.thermostat.target_celsius == 7.0
    assert device.room.window_open


async def test_stopping_ends_the_heating_timer(
    start_device: StartDevice,  # noqa: F811 - the fixture
) -> None:
    device = await start_device(clock=SimClock(speed=FAST, start=MONDAY))
    device.apply_plan(plan(mode=heating_pb2.AUTO, slots=EVERY_THREE_HOURS))
    await eventually(lambda: len(device.heating_log) >= 3, what="slots followed")

    await device.stop()
    stopped_at = len(device.heating_log)
    await eventually(lambda: device.clock.now() > device.heating_log[-1].time + timedelta(hours=7))

    assert len(device.heating_log) == stopped_at


# A day in thirty real seconds: the detector's 300 s span passes nine times a real second,
# far more often than a device looks (once a real second at most).
FAST_WINDOW_CLOCK = 2880.0


async def test_on_a_fast_clock_a_fall_between_two_looks_is_seen_and_paused_in_full(
    start_device: StartDevice,  # noqa: F811 - the fixture
) -> None:
    real = [0.0]
    clock = SimClock(speed=FAST_WINDOW_CLOCK, start=MONDAY, monotonic=lambda: real[0])
    span, pause = timedelta(seconds=300), timedelta(seconds=1800)  # the defaults
    assert MIN_WINDOW_CHECK_SECONDS * clock.speed > span.total_seconds() + pause.total_seconds()
    device = await start_device(clock=clock)

    real[0] = 0.5
    device.open_window(True)
    real[0] = 1.5  # the device's next look is 2,880 simulated seconds after its last
    looked = clock.now()

    def window_open() -> Setpoint | None:
        point = device.set_point
        return point if point is not None and point.window_open else None

    point = await eventually(window_open, what="the open window")
    assert point is not None
    # The fall came within the span, long before the look; the pause runs from the look.
    assert point.window_open_until == looked + pause
    assert device.heating_log[-1].reason == heating_pb2.WINDOW_OPEN
    assert device.thermostat is not None
    assert device.thermostat.target_celsius == 7.0


# Without a stream.


def test_enabled_is_the_firmware_s_so_a_newer_plan_ends_a_turn_off() -> None:
    device = idle(DeviceType.HEATER, Room("den"))
    device.apply_plan(plan(version=2))
    device.answer(command("off", kind=TURN_OFF))
    off = device.enabled
    device.apply_plan(plan(version=2))  # the same plan again: nothing new was asked
    still_off = device.enabled

    device.apply_plan(plan(version=3))

    assert (off, still_off, device.enabled) == (False, False, True)
    assert device.set_point is not None
    assert device.set_point.mode == heating_pb2.HEAT


def test_target_celsius_is_the_last_commanded_the_set_point_what_the_firmware_holds() -> None:
    device = idle(DeviceType.HEATER, Room("den"))
    device.answer(command("warmer", target=23.0))
    device.apply_plan(plan(version=2, target_celsius=19.0))  # ends the override

    assert device.target_celsius == 23.0
    assert device.set_point is not None
    assert (device.set_point.target_celsius, device.set_point.reason) == (
        19.0,
        heating_pb2.MANUAL_TARGET,
    )


def test_a_sensor_keeps_its_on_and_off() -> None:
    sensor = idle(DeviceType.SENSOR, Room("den"))
    sensor.answer(command("off", kind=TURN_OFF))
    off = sensor.enabled
    sensor.answer(command("on", kind=TURN_ON))
    assert (off, sensor.enabled) == (False, True)


def test_a_controller_never_sets_a_heater_below_the_heater_s_own_frost_floor() -> None:
    room = Room("hall", temperature_celsius=9.0)
    heater = idle(DeviceType.HEATER, room)
    controller = idle(DeviceType.CONTROLLER, room)
    heater.apply_plan(
        plan(
            version=2,
            limits=heating_pb2.HeatingLimits(max_target_celsius=30, frost_floor_celsius=10),
        )
    )

    status = controller.apply_plan(plan(version=2, mode=heating_pb2.OFF))  # its floor: 7 °C

    assert status is not None
    assert status.target_celsius == 7.0
    assert heater.thermostat is not None
    assert (heater.thermostat.target_celsius, heater.thermostat.on) == (10.0, True)


def test_the_heating_log_keeps_the_latest_changes_only() -> None:
    device = idle(DeviceType.HEATER, Room("den"))
    for number in range(HEATING_LOG_SIZE + 5):
        device.answer(command(f"c{number}", target=10.0 + number / 1000))

    assert len(device.heating_log) == HEATING_LOG_SIZE
    assert device.heating_log[-1].target_celsius == 10.0 + (HEATING_LOG_SIZE + 4) / 1000
    assert {change.reason for change in device.heating_log} == {heating_pb2.LOCAL_OVERRIDE}


def test_a_controller_s_plan_sets_every_heater_in_its_room() -> None:
    room = Room("hall", temperature_celsius=22.0)
    heaters = [idle(DeviceType.HEATER, room), idle(DeviceType.HEATER, room)]
    controller = idle(DeviceType.CONTROLLER, room)

    status = controller.apply_plan(plan(version=2, target_celsius=24.0))

    assert status is not None
    assert (status.plan_version, status.target_celsius, status.heater_on) == (2, 24.0, True)
    assert [heater.thermostat.target_celsius for heater in heaters if heater.thermostat] == [
        24.0,
        24.0,
    ]
    assert room.heating


def test_a_restarted_device_follows_its_stored_plan_before_any_contact(tmp_path: Path) -> None:
    state = flash.plan_path(tmp_path, "heater-1")
    before = idle(DeviceType.HEATER, Room("den"), state_path=state)
    before.apply_plan(plan(version=6, target_celsius=23.0))

    after = idle(DeviceType.HEATER, Room("den"), state_path=state)
    fresh = idle(DeviceType.HEATER, Room("den"))

    assert after.heating is not None
    assert after.heating.version == 6
    assert after.thermostat is not None
    assert after.thermostat.target_celsius == 23.0
    status = after.heating_status()
    assert status is not None
    assert status.plan_version == 6
    assert fresh.heating is not None
    assert fresh.heating.version == 0


def test_an_older_plan_is_not_stored(tmp_path: Path) -> None:
    state = flash.plan_path(tmp_path, "heater-1")
    device = idle(DeviceType.HEATER, Room("den"), state_path=state)
    device.apply_plan(plan(version=6, target_celsius=23.0))
    device.apply_plan(plan(version=5, target_celsius=19.0))

    stored = flash.load_plan(state)
    assert stored is not None
    assert (stored.version, stored.target_celsius) == (6, 23.0)


# The fleet and the command line.


def test_a_fleet_gives_heating_devices_a_file_each_and_opens_windows(tmp_path: Path) -> None:
    specs = [
        DeviceSpec("h/1", "s", DeviceType.HEATER, "living"),
        DeviceSpec("s1", "s", DeviceType.SENSOR, "living"),
    ]
    fleet = Fleet("127.0.0.1:1", specs, state_dir=tmp_path / "flash")

    fleet.devices["h/1"].apply_plan(plan(version=3))
    fleet.inflict(Fault.WINDOW_OPEN, ["s1"])
    opened = fleet.rooms["living"].window_open
    fleet.inflict(Fault.WINDOW_CLOSE)

    stored = flash.load_plan(flash.plan_path(tmp_path / "flash", "h/1"))
    assert stored is not None
    assert stored.version == 3
    assert [path.parent for path in (tmp_path / "flash").iterdir()] == [tmp_path / "flash"]
    assert fleet.devices["s1"].heating is None
    assert opened
    assert not fleet.rooms["living"].window_open


def test_the_command_line_takes_a_state_dir_and_window_faults(tmp_path: Path) -> None:
    args = cli.parse(
        [
            "--adapter",
            "127.0.0.1:5",
            "--device",
            "a:s:HEATER",
            "--state-dir",
            str(tmp_path),
            "--fault",
            "window-open@5:a",
            "--fault",
            "window-close@65",
        ]
    )

    assert args.state_dir == tmp_path
    assert args.fault == [
        cli.ScheduledFault(Fault.WINDOW_OPEN, 5.0, "a"),
        cli.ScheduledFault(Fault.WINDOW_CLOSE, 65.0, None),
    ]
    assert cli.parse(["--adapter", "h:1", "--device", "a:s:HEATER"]).state_dir is None
