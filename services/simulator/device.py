"""One simulated device holding a `DeviceAdapterService.Connect` stream.

The stream: Hello, then the adapter's Welcome; then, at once, telemetry every
`telemetry_interval` seconds, a Heartbeat whenever nothing else went out for a
heartbeat interval, and a CommandResult for every Command. When the stream
ends, for whatever reason, the device reconnects after a jittered backoff;
only a refused credential (UNAUTHENTICATED) makes it give up.

A HEATER or CONTROLLER runs the heating firmware (heating.py): it applies
the HeatingPlan frames the adapter sends, answers each with a HeatingStatus,
reports again whenever its set point changes, and keeps following its plan
with the adapter gone: a timer per device, from start() to stop(), wakes it
at the next change its plan foresees and at least every check interval.
With a `state_path` it keeps the plan across its own restart.

Faults are switched on and off while it runs, for tests of the adapter and of
the Device service's view of it.
"""

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import grpc
from warmhouse.device_adapter.v1.device_adapter_pb2 import (
    SET_TARGET_TEMPERATURE,
    TURN_OFF,
    TURN_ON,
    Command,
    CommandResult,
    ConnectRequest,
    ConnectResponse,
    Heartbeat,
    Hello,
    Telemetry,
    TelemetrySamples,
    Welcome,
)
from warmhouse.device_adapter.v1.device_adapter_pb2_grpc import DeviceAdapterServiceStub
from warmhouse.heating.v1.heating_pb2 import HeatingPlan, HeatingStatus

from services.runtime.heating_model import DEFAULT_TARGET_CELSIUS
from services.simulator import commands, flash
from services.simulator.backoff import Backoff
from services.simulator.clock import SimClock
from services.simulator.commands import Answers, Result
from services.simulator.heating import HeatingFirmware, Reason, Setpoint, Slot
from services.simulator.thermal import Room, Thermostat

log = logging.getLogger(__name__)

FIRMWARE_VERSION = "sim-1.0"
OVERHEAT_CELSIUS = 120.0
# Used until a Welcome says otherwise (and if it says something unusable).
DEFAULT_HEARTBEAT_SECONDS = 5.0
# Frames waiting for the writer. A full outbox means the adapter is not
# reading: new samples are dropped, answers wait.
OUTBOX_SIZE = 100
# The adapter takes at most this many samples from one frame.
MAX_SAMPLES_PER_FRAME = 100
# Set point changes kept in `heating_log`, the oldest forgotten first.
HEATING_LOG_SIZE = 1000
# The heating timer's shortest check interval (real seconds) unless the telemetry
# interval is shorter: thousands of devices must not wake many times a second. On a
# clock so fast that this is longer than the window detector's span, the detector
# still sees every step the room took in between (Room.history).
MIN_WINDOW_CHECK_SECONDS = 1.0
# Waking a moment after a foreseen change, not a moment before it.
TIMER_SLACK_SECONDS = 0.001

Call = grpc.aio.StreamStreamCall[ConnectRequest, ConnectResponse]


class DeviceType(StrEnum):
    HEATER = "HEATER"
    SENSOR = "SENSOR"
    CONTROLLER = "CONTROLLER"


@dataclass(frozen=True)
class HeatingChange:
    """A set point the firmware took up, at a simulated time."""

    time: datetime
    target_celsius: float
    reason: Reason
    slot: Slot | None


@dataclass
class Counters:
    """What devices did; a fleet's devices share one."""

    samples_sent: int = 0
    frames_sent: int = 0
    commands_executed: int = 0
    connects: int = 0


def channel_options(backoff_cap_seconds: float) -> list[tuple[str, int]]:
    return [
        # Each channel its own TCP connection: grpc would otherwise share one
        # between channels to the same address.
        ("grpc.use_local_subchannel_pool", 1),
        # grpc's own reconnection waits up to two minutes; never longer than ours.
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.min_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", max(200, int(backoff_cap_seconds * 1000))),
    ]


class SimulatedDevice:
    """A HEATER, SENSOR or CONTROLLER in a room; `start()` it, `stop()` it.

    Give either `adapter` ("host:port"; the device opens and closes its own
    channel) or `channel` (shared, e.g. by a fleet; the device leaves it open).

    A HEATER has a thermostat in its room; a CONTROLLER is the room's wall
    thermostat: its set point goes to every heater in the room. Both run the
    heating firmware (`heating`); where several in a room set a heater, the
    latest change wins. A SENSOR has no firmware: it accepts commands and keeps
    the setting, which drives nothing, and ignores heating plans.

    `state_path` is the device's storage for its heating plan: read at
    construction, written whenever it applies a plan.
    """

    def __init__(
        self,
        device_id: str,
        device_secret: str,
        device_type: DeviceType,
        room: Room,
        *,
        adapter: str | None = None,
        channel: grpc.aio.Channel | None = None,
        clock: SimClock | None = None,
        telemetry_interval: float = 5.0,
        backoff_cap: float = 30.0,
        retry_unauthenticated: bool = False,
        counters: Counters | None = None,
        heater_watts: float = 2000.0,
        start_delay: float = 0.0,
        welcome_timeout: float = 30.0,
        firmware_version: str = FIRMWARE_VERSION,
        rng: random.Random | None = None,
        samples_per_frame: int = 1,
        state_path: Path | None = None,
    ) -> None:
        if (adapter is None) == (channel is None):
            raise ValueError("give either an adapter address or a channel")
        if not telemetry_interval > 0:
            raise ValueError("telemetry_interval must be positive")
        if not 1 <= samples_per_frame <= MAX_SAMPLES_PER_FRAME:
            raise ValueError(f"samples_per_frame must be 1 to {MAX_SAMPLES_PER_FRAME}")
        # Samples every interval, sends them this many to a frame (TelemetrySamples).
        self._samples_per_frame = samples_per_frame
        self.device_id = device_id
        self.device_type = device_type
        self.room = room
        self.clock = clock if clock is not None else SimClock()
        self.counters = counters if counters is not None else Counters()
        self.thermostat: Thermostat | None = (
            room.add_heater(heater_watts) if device_type is DeviceType.HEATER else None
        )
        self._secret = device_secret
        self._adapter = adapter
        self._channel = channel
        self._owns_channel = channel is None
        self._telemetry_interval = telemetry_interval
        self._backoff = Backoff(cap_seconds=backoff_cap, rng=rng or random.Random())
        self._retry_unauthenticated = retry_unauthenticated
        self._start_delay = start_delay
        self._welcome_timeout = welcome_timeout
        self._firmware_version = firmware_version

        # What tests read.
        self.connected = asyncio.Event()
        self.connections = 0
        # How the last stream ended, as grpc tells it: OK when the adapter ended it,
        # CANCELLED after drop_connection. A frame written just as the adapter ends the
        # stream makes grpc mark the call INTERNAL instead.
        self.last_disconnect_code: grpc.StatusCode | None = None
        self.results: Answers = Answers()
        self.executed: list[str] = []
        # The target the last SET_TARGET_TEMPERATURE command asked for, kept after a plan
        # or a slot's start ended the override: what the firmware holds is `set_point`.
        self.target_celsius = DEFAULT_TARGET_CELSIUS
        # A SENSOR's on/off, which drives nothing (a heating device's is its firmware's).
        self._sensor_on = True
        self.heartbeat_interval = DEFAULT_HEARTBEAT_SECONDS
        self.samples_sent = 0
        self.frames_sent = 0
        # Set when the adapter refused the credential and the device stopped trying.
        self.gave_up = False

        # Faults.
        self._talking = asyncio.Event()
        self._talking.set()
        self._overheating = False
        self._gas = False
        self._rejecting = False
        self._holding = False

        self._task: asyncio.Task[None] | None = None
        self._session: asyncio.Task[grpc.StatusCode] | None = None
        self._last_sent = 0.0
        # The open stream's outbox, for what the heating timer reports.
        self._outbox: asyncio.Queue[ConnectRequest] | None = None

        # Heating: the firmware, what it decided last, and the changes it made.
        self._state_path = state_path
        self.heating: HeatingFirmware | None = None
        self._stored_plan = b""
        if device_type is not DeviceType.SENSOR:
            stored = flash.load_plan(state_path) if state_path is not None else None
            self.heating = HeatingFirmware(stored)
            if stored is not None:
                self._stored_plan = stored.SerializeToString(deterministic=True)
        self.set_point: Setpoint | None = None
        self.heating_log: list[HeatingChange] = []
        # The room's time (Room.time_seconds) up to which the firmware has seen its path.
        self._observed_until = room.time_seconds
        self._heating_timer: asyncio.TimerHandle | None = None
        self._refresh_heating(apply_anyway=True)

    # Life cycle.

    def use_channel(self, channel: grpc.aio.Channel) -> None:
        """Share `channel` (left open at stop) instead of opening one at start."""
        if self._task is not None:
            raise RuntimeError("the device was already started")
        self._channel = channel
        self._owns_channel = False

    async def start(self) -> None:
        """Start connecting in the background; returns at once."""
        if self._task is not None:
            raise RuntimeError("the device was already started")
        if self._channel is None:
            assert self._adapter is not None
            self._channel = grpc.aio.insecure_channel(
                self._adapter, options=channel_options(self._backoff.cap_seconds)
            )
        self._task = asyncio.create_task(self._run(), name=f"device {self.device_id}")
        if self.heating is not None:
            # The room's heaters may have come after this device was made.
            self._refresh_heating(apply_anyway=True)
            self._schedule_heating()

    async def stop(self) -> None:
        """End the stream and every task; close the channel if it is the device's own."""
        timer, self._heating_timer = self._heating_timer, None
        if timer is not None:
            timer.cancel()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        if self._owns_channel and self._channel is not None:
            channel, self._channel = self._channel, None
            await channel.close()

    @property
    def running(self) -> bool:
        """False once stopped or given up."""
        return self._task is not None and not self._task.done()

    async def wait_connected(self, timeout: float) -> None:  # noqa: ASYNC109 - a test helper's deadline
        """Until a stream is up after its Welcome; TimeoutError after `timeout` seconds."""
        await asyncio.wait_for(self.connected.wait(), timeout)

    # Faults.

    def drop_connection(self) -> None:
        """Cut the current stream as a broken link would; the device reconnects."""
        if self._session is not None:
            self._session.cancel()

    def go_silent(self) -> None:
        """Send nothing at all, keep the stream open, and do not reconnect when it ends."""
        self._talking.clear()

    def resume_talking(self) -> None:
        self._talking.set()

    def overheat(self, on: bool) -> None:
        """Report 120 °C whatever the room's temperature."""
        self._overheating = on

    def gas_alarm(self, on: bool) -> None:
        self._gas = on

    def reject_commands(self, on: bool) -> None:
        """Answer every new command with ok=false."""
        self._rejecting = on

    def hold_answers(self, on: bool) -> None:
        """Carry commands out but send no CommandResult, as if the answer were lost."""
        self._holding = on

    def open_window(self, on: bool) -> None:
        """Open (or close) the window of the device's room: it cools fast while open."""
        self.room.advance_to(self.clock.elapsed())
        self.room.window_open = on

    # What the device reports and does.

    def telemetry(self) -> Telemetry:
        """A sample of now: the room's temperature, and the heater's state for the types that
        have one. Stamped with real UTC, which the adapter checks for plausibility."""
        sample = Telemetry(temperature_celsius=self._measured_celsius(), gas_alarm=self._gas)
        if self.thermostat is not None:
            sample.power_watts = self.thermostat.output_watts
            sample.heater_on = self.thermostat.on
        elif self.device_type is DeviceType.CONTROLLER:
            sample.heater_on = self.room.heating
        sample.sample_time.FromDatetime(datetime.now(UTC))
        return sample

    def _measured_celsius(self) -> float:
        self.room.advance_to(self.clock.elapsed())
        if self._overheating:
            return OVERHEAT_CELSIUS
        return round(self.room.temperature_celsius, 2)

    def _heater_on(self) -> bool:
        if self.thermostat is not None:
            return self.thermostat.on
        return self.device_type is DeviceType.CONTROLLER and self.room.heating

    def answer(self, command: Command) -> CommandResult | None:
        """The answer to `command`, carrying it out first if it is new and acceptable.
        None for an id too long to remember, which could not be answered only once."""
        command_id = command.command_id
        if not commands.remembered_id(command_id):
            log.warning("device %s: command without a usable id ignored", self.device_id)
            return None
        result = self.results.get(command_id)
        if result is None:
            result = self._decide(command)
            self.results.remember(command_id, result)
        ok, message = result
        return CommandResult(command_id=command_id, ok=ok, message=message)

    def _decide(self, command: Command) -> Result:
        reason = commands.refusal(command, datetime.now(UTC), self._rejecting)
        if reason is not None:
            return (False, reason)
        self._carry_out(command)
        self.executed.append(command.command_id)
        self.counters.commands_executed += 1
        return commands.DONE

    @property
    def enabled(self) -> bool:
        """False after a TURN_OFF: for a heating device until a TURN_ON or a newer plan (its
        firmware's local OFF), for a SENSOR until a TURN_ON."""
        if self.heating is not None:
            return not self.heating.local_off
        return self._sensor_on

    def _carry_out(self, command: Command) -> None:
        if command.kind == SET_TARGET_TEMPERATURE:
            self.target_celsius = command.target_temperature_celsius
        firmware = self.heating
        if firmware is None:
            if command.kind in (TURN_ON, TURN_OFF):
                self._sensor_on = command.kind == TURN_ON
            return
        if command.kind == SET_TARGET_TEMPERATURE:
            firmware.override(self.clock.now(), self.target_celsius)
        elif command.kind == TURN_ON:
            firmware.turn_on()
        elif command.kind == TURN_OFF:
            firmware.turn_off()
        self._heating_input()

    def _controlled_heaters(self) -> list[Thermostat]:
        if self.thermostat is not None:
            return [self.thermostat]
        if self.device_type is DeviceType.CONTROLLER:
            return list(self.room.heaters)
        return []

    # Heating.

    def apply_plan(self, plan: HeatingPlan) -> HeatingStatus | None:
        """A HeatingPlan frame: applied unless older than the current plan, stored, and
        answered with the status (None from a SENSOR, which has no firmware)."""
        firmware = self.heating
        if firmware is None:
            return None
        if firmware.apply(plan):
            self._store_plan(firmware.plan)
        self._heating_input(report=False)  # the answer is the report
        return self.heating_status()

    def heating_status(self) -> HeatingStatus | None:
        """What the firmware does now, as a HeatingStatus; None for a SENSOR."""
        if self.heating is None:
            return None
        celsius = self._measured_celsius()
        return self.heating.status(self.clock.now(), self._heater_on(), celsius)

    def _store_plan(self, plan: HeatingPlan) -> None:
        if self._state_path is None:
            return
        data = plan.SerializeToString(deterministic=True)
        if data == self._stored_plan:  # the plan sent again after every reconnection
            return
        try:
            flash.save_plan(self._state_path, plan)
        except OSError as error:
            log.warning("device %s: the heating plan was not stored: %s", self.device_id, error)
            return
        self._stored_plan = data

    def _heating_input(self, *, report: bool = True) -> None:
        """After a plan or command: decide again at once, and again at the next change."""
        if self._refresh_heating() and report:
            self._report_heating()
        if self._heating_timer is not None:
            self._schedule_heating()

    def _refresh_heating(self, *, apply_anyway: bool = False) -> bool:
        """The room catches up, the firmware reads its temperatures and decides; a new set
        point goes to the heaters from now on. Whether the decision changed."""
        firmware = self.heating
        if firmware is None:
            return False
        elapsed = self.clock.elapsed()
        now = self.clock.at(elapsed)
        self._observe_room(firmware, elapsed)
        point = firmware.decide(now)
        changed = point != self.set_point
        if self.thermostat is not None:
            self.thermostat.set_floor(firmware.rules.frost_floor_celsius)
        if changed or apply_anyway:
            for heater in self._controlled_heaters():
                # A heater in the room holds its own frost floor, whatever the controller says.
                heater.set_target(point.target_celsius)
                heater.regulate(self.room.temperature_celsius)
        if changed:
            self._log_heating(now, point)
        self.set_point = point
        return changed

    def _observe_room(self, firmware: HeatingFirmware, elapsed: float) -> None:
        """The room catches up to `elapsed` (simulated seconds); the window detector reads
        every temperature it went through since the last look (on a fast clock, many
        steps), then now's."""
        room = self.room
        room.advance_to(elapsed)
        now = self.clock.at(elapsed)
        path = [
            (self.clock.at(seconds), celsius)
            for seconds, celsius in room.temperatures_after(self._observed_until)
        ]
        self._observed_until = room.time_seconds
        firmware.observe_path([*path, (now, room.temperature_celsius)], now)

    def _log_heating(self, now: datetime, point: Setpoint) -> None:
        change = HeatingChange(now, point.target_celsius, point.reason, point.schedule_slot)
        last = self.heating_log[-1] if self.heating_log else None
        if last is not None and (last.target_celsius, last.reason, last.slot) == (
            change.target_celsius,
            change.reason,
            change.slot,
        ):
            return  # only the preset's or the window's times changed
        self.heating_log.append(change)
        del self.heating_log[:-HEATING_LOG_SIZE]

    def _report_heating(self) -> None:
        """Tell the adapter, if there is a stream to tell it on; else it hears after connecting."""
        outbox = self._outbox
        if outbox is None or not self._talking.is_set():
            return
        status = self.heating_status()
        with contextlib.suppress(asyncio.QueueFull):
            # A full outbox: the adapter is not reading; the next change reports anew.
            outbox.put_nowait(ConnectRequest(heating_status=status))

    def _schedule_heating(self) -> None:
        if self._heating_timer is not None:
            self._heating_timer.cancel()
        loop = asyncio.get_running_loop()
        self._heating_timer = loop.call_later(self._heating_wait(), self._heating_round)

    def _heating_round(self) -> None:
        try:
            if self._refresh_heating():
                self._report_heating()
        except Exception:
            log.exception("device %s: the heating firmware failed", self.device_id)
        finally:
            self._schedule_heating()

    def _heating_wait(self) -> float:
        """Real seconds until the next round: the next change the firmware foresees (from
        simulated time), but no longer than the check interval."""
        assert self.heating is not None
        now = self.clock.now()
        wait = self._heating_check_interval()
        change = self.heating.next_change(now)
        if change is not None:
            until_change = max(0.0, (change - now).total_seconds()) / self.clock.speed
            wait = min(wait, until_change + TIMER_SLACK_SECONDS)
        return wait

    def _heating_check_interval(self) -> float:
        """The telemetry interval; shorter when the window detector would otherwise see too
        few readings within its span to notice a fall (on a fast clock)."""
        assert self.heating is not None
        window = self.heating.rules.window
        if not window.enabled:
            return self._telemetry_interval
        half_span = window.within.total_seconds() / self.clock.speed / 2
        return min(self._telemetry_interval, max(MIN_WINDOW_CHECK_SECONDS, half_span))

    # The connection.

    async def _run(self) -> None:
        if self._start_delay > 0:
            await asyncio.sleep(self._start_delay)
        while True:
            await self._talking.wait()
            code = await self._connect_once()
            self.last_disconnect_code = code
            if code == grpc.StatusCode.UNAUTHENTICATED and not self._retry_unauthenticated:
                log.error(
                    "device %s: the adapter refused its credential; not reconnecting",
                    self.device_id,
                )
                self.gave_up = True
                return
            log.debug("device %s: stream ended (%s); reconnecting", self.device_id, code.name)
            await self._talking.wait()
            await asyncio.sleep(self._backoff.next_delay())

    async def _connect_once(self) -> grpc.StatusCode:
        """One stream from Hello to its end, and why it ended."""
        session = asyncio.create_task(self._converse())
        self._session = session
        try:
            # Not `await session`: a drop_connection cancels the session, not this task.
            await asyncio.wait({session})
        finally:
            self._session = None
            if not session.done():  # the device is being stopped
                session.cancel()
                await asyncio.wait({session})
        if session.cancelled():
            return grpc.StatusCode.CANCELLED
        error = session.exception()
        if error is None:
            return session.result()
        if isinstance(error, grpc.aio.AioRpcError):
            return error.code()
        log.warning("device %s: stream failed", self.device_id, exc_info=error)
        return grpc.StatusCode.UNKNOWN

    async def _converse(self) -> grpc.StatusCode:
        assert self._channel is not None
        call: Call = DeviceAdapterServiceStub(self._channel).Connect()
        try:
            hello = Hello(
                device_id=self.device_id,
                device_secret=self._secret,
                firmware_version=self._firmware_version,
            )
            await self._send(call, ConnectRequest(hello=hello))
            try:
                first = await asyncio.wait_for(call.read(), self._welcome_timeout)
            except TimeoutError:
                log.warning("device %s: no Welcome from the adapter", self.device_id)
                return grpc.StatusCode.DEADLINE_EXCEEDED
            if not isinstance(first, ConnectResponse):  # EOF: the adapter ended the stream
                return await call.code()
            if first.WhichOneof("frame") != "welcome":
                log.warning("device %s: the adapter's first frame was no Welcome", self.device_id)
                return grpc.StatusCode.UNKNOWN
            self._welcomed(first.welcome)
            try:
                return await self._exchange(call)
            finally:
                self.connected.clear()
        finally:
            call.cancel()

    def _welcomed(self, welcome: Welcome) -> None:
        if welcome.heartbeat_interval_seconds > 0:
            self.heartbeat_interval = float(welcome.heartbeat_interval_seconds)
        self._backoff.reset()
        self.connections += 1
        self.counters.connects += 1
        self.connected.set()

    async def _exchange(self, call: Call) -> grpc.StatusCode:
        """Read, write and sample at once until the stream ends or a write fails."""
        outbox: asyncio.Queue[ConnectRequest] = asyncio.Queue(maxsize=OUTBOX_SIZE)
        if self.heating is not None:
            self._refresh_heating()
            outbox.put_nowait(ConnectRequest(heating_status=self.heating_status()))
        reader = asyncio.create_task(self._read(call, outbox))
        others = [
            asyncio.create_task(self._write(call, outbox)),
            asyncio.create_task(self._sample(outbox)),
        ]
        tasks = [reader, *others]
        self._outbox = outbox
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._outbox = None
            await _end_all(tasks)
        if not reader.cancelled():
            return reader.result()  # the reader says why the stream ended
        # A write failed: the stream's status, if it has ended, says why.
        errors = [task.exception() for task in others if not task.cancelled()]
        for error in errors:
            if isinstance(error, grpc.aio.AioRpcError):
                return error.code()
        if call.done():
            return await call.code()
        raise RuntimeError("a stream task failed") from next(iter(errors), None)

    async def _read(self, call: Call, outbox: asyncio.Queue[ConnectRequest]) -> grpc.StatusCode:
        while True:
            frame = await call.read()
            if not isinstance(frame, ConnectResponse):  # EOF
                return await call.code()
            kind = frame.WhichOneof("frame")
            if kind == "command":
                result = self.answer(frame.command)
                # Silent or holding, the device acts but does not say so.
                if result is not None and self._talking.is_set() and not self._holding:
                    await outbox.put(ConnectRequest(command_result=result))
            elif kind == "heating_plan":
                status = self.apply_plan(frame.heating_plan)
                if status is not None and self._talking.is_set():
                    await outbox.put(ConnectRequest(heating_status=status))
            # Nothing else is meant for a device after the Welcome.

    async def _write(self, call: Call, outbox: asyncio.Queue[ConnectRequest]) -> None:
        loop = asyncio.get_running_loop()
        self._last_sent = loop.time()
        while True:
            if not self._talking.is_set():
                _discard(outbox)
                await self._talking.wait()
                continue
            frame = await self._next_frame(outbox, self._last_sent + self.heartbeat_interval)
            if self._talking.is_set():
                await self._send(call, frame)

    async def _next_frame(
        self, outbox: asyncio.Queue[ConnectRequest], heartbeat_due: float
    ) -> ConnectRequest:
        """The next frame to send, or a Heartbeat if none comes before it is due."""
        with contextlib.suppress(asyncio.QueueEmpty):
            return outbox.get_nowait()
        wait = heartbeat_due - asyncio.get_running_loop().time()
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(outbox.get(), wait)
        return ConnectRequest(heartbeat=Heartbeat())

    async def _send(self, call: Call, frame: ConnectRequest) -> None:
        await call.write(frame)
        self._last_sent = asyncio.get_running_loop().time()
        self.frames_sent += 1
        self.counters.frames_sent += 1
        samples = _samples_in(frame)
        self.samples_sent += samples
        self.counters.samples_sent += samples

    async def _sample(self, outbox: asyncio.Queue[ConnectRequest]) -> None:
        taken: list[Telemetry] = []
        while True:
            if self._talking.is_set():
                taken.append(self.telemetry())
            if len(taken) >= self._samples_per_frame:
                with contextlib.suppress(asyncio.QueueFull):
                    # A late sample is worth less than the next fresh one.
                    outbox.put_nowait(_frame_of(taken))
                taken = []
            await asyncio.sleep(self._telemetry_interval)


def _frame_of(samples: list[Telemetry]) -> ConnectRequest:
    if len(samples) == 1:
        return ConnectRequest(telemetry=samples[0])
    return ConnectRequest(samples=TelemetrySamples(telemetry=samples))


def _samples_in(frame: ConnectRequest) -> int:
    kind = frame.WhichOneof("frame")
    if kind == "telemetry":
        return 1
    return len(frame.samples.telemetry) if kind == "samples" else 0


async def _end_all(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel and wait for `tasks`. Those that failed as the stream went down (a write on a
    finished call) are not worth a "never retrieved" warning: the stream's status says why."""
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)
    for task in tasks:
        if not task.cancelled():
            task.exception()


def _discard(outbox: asyncio.Queue[ConnectRequest]) -> None:
    """What a silent device would have said is never said."""
    while not outbox.empty():
        outbox.get_nowait()
