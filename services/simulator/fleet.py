"""Many simulated devices on one event loop, sharing rooms, a clock and channels.

Streams multiplex over HTTP/2, so thousands of devices need not hold
thousands of TCP connections: each channel carries `devices_per_channel`
devices' streams (1 gives every device its own connection, as real hardware
would have).

With a `state_dir`, each heating device keeps its plan in a file there, named
after its id, across restarts of the fleet.
"""

import asyncio
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import grpc

from services.simulator import flash
from services.simulator.clock import SimClock
from services.simulator.device import Counters, DeviceType, SimulatedDevice, channel_options
from services.simulator.thermal import Room


@dataclass(frozen=True)
class DeviceSpec:
    device_id: str
    device_secret: str
    device_type: DeviceType
    room: str = "home"


class Fault(StrEnum):
    GAS = "gas"
    GAS_CLEAR = "gas-clear"
    OVERHEAT = "overheat"
    OVERHEAT_CLEAR = "overheat-clear"
    DROP = "drop"
    SILENT = "silent"
    TALK = "talk"
    REJECT = "reject"
    ACCEPT = "accept"
    WINDOW_OPEN = "window-open"
    WINDOW_CLOSE = "window-close"


def inflict(device: SimulatedDevice, fault: Fault) -> None:
    """Switch `fault` on (or, for the -clear/talk/accept kinds, off) on one device."""
    match fault:
        case Fault.GAS | Fault.GAS_CLEAR:
            device.gas_alarm(fault is Fault.GAS)
        case Fault.OVERHEAT | Fault.OVERHEAT_CLEAR:
            device.overheat(fault is Fault.OVERHEAT)
        case Fault.DROP:
            device.drop_connection()
        case Fault.SILENT:
            device.go_silent()
        case Fault.TALK:
            device.resume_talking()
        case Fault.REJECT | Fault.ACCEPT:
            device.reject_commands(fault is Fault.REJECT)
        case Fault.WINDOW_OPEN | Fault.WINDOW_CLOSE:
            device.open_window(fault is Fault.WINDOW_OPEN)


class Fleet:
    """`await fleet.start()`, `await fleet.stop()`; devices by id in `devices`, rooms by name
    in `rooms`, what they all did in `stats`."""

    def __init__(
        self,
        adapter: str,
        specs: Iterable[DeviceSpec],
        *,
        clock: SimClock | None = None,
        outdoor_celsius: float = 0.0,
        initial_celsius: float = 15.0,
        telemetry_interval: float = 5.0,
        devices_per_channel: int = 100,
        backoff_cap: float = 30.0,
        retry_unauthenticated: bool = False,
        ramp_seconds: float = 0.0,
        samples_per_frame: int = 1,
        seed: int | None = None,
        state_dir: Path | None = None,
    ) -> None:
        if devices_per_channel < 1:
            raise ValueError("devices_per_channel must be at least 1")
        self.adapter = adapter
        self.clock = clock if clock is not None else SimClock()
        self.stats = Counters()
        self.rooms: dict[str, Room] = {}
        self.devices: dict[str, SimulatedDevice] = {}
        self._devices_per_channel = devices_per_channel
        self._backoff_cap = backoff_cap
        self._channels: list[grpc.aio.Channel] = []
        self._specs = list(specs)
        self._rng = random.Random(seed)
        self._outdoor = outdoor_celsius
        self._initial = initial_celsius
        self._telemetry_interval = telemetry_interval
        self._samples_per_frame = samples_per_frame
        self._retry_unauthenticated = retry_unauthenticated
        self._state_dir = state_dir
        # Spreads the first Hellos over this many seconds, so a big fleet does
        # not knock all at once.
        self._ramp = ramp_seconds
        for spec in self._specs:
            if spec.device_id in self.devices:
                raise ValueError("a device id appears twice")
            self.devices[spec.device_id] = self._build(spec)

    def _build(self, spec: DeviceSpec) -> SimulatedDevice:
        """The device; its shared channel is handed over at start, in the running loop."""
        room = self.rooms.get(spec.room)
        if room is None:
            room = Room(spec.room, temperature_celsius=self._initial, outdoor_celsius=self._outdoor)
            self.rooms[spec.room] = room
        return SimulatedDevice(
            spec.device_id,
            spec.device_secret,
            spec.device_type,
            room,
            adapter=self.adapter,
            clock=self.clock,
            telemetry_interval=self._telemetry_interval,
            samples_per_frame=self._samples_per_frame,
            backoff_cap=self._backoff_cap,
            retry_unauthenticated=self._retry_unauthenticated,
            counters=self.stats,
            start_delay=self._rng.uniform(0.0, self._ramp) if self._ramp > 0 else 0.0,
            rng=random.Random(self._rng.random()),
            state_path=(
                None
                if self._state_dir is None
                else flash.plan_path(self._state_dir, spec.device_id)
            ),
        )

    async def start(self) -> None:
        options = channel_options(self._backoff_cap)
        devices = list(self.devices.values())
        for first in range(0, len(devices), self._devices_per_channel):
            channel = grpc.aio.insecure_channel(self.adapter, options=options)
            self._channels.append(channel)
            for device in devices[first : first + self._devices_per_channel]:
                device.use_channel(channel)
                await device.start()

    async def stop(self) -> None:
        await asyncio.gather(*(device.stop() for device in self.devices.values()))
        channels, self._channels = self._channels, []
        await asyncio.gather(*(channel.close() for channel in channels))

    def connected_count(self) -> int:
        return sum(device.connected.is_set() for device in self.devices.values())

    def gave_up_count(self) -> int:
        return sum(device.gave_up for device in self.devices.values())

    async def wait_connected(self, timeout: float, count: int | None = None) -> None:  # noqa: ASYNC109 - a test helper's deadline
        """Until `count` devices (all by default) have connected; TimeoutError after `timeout`."""
        wanted = len(self.devices) if count is None else count
        if wanted > len(self.devices):
            raise ValueError("more devices wanted than the fleet has")
        if wanted <= 0:
            return
        waits = [asyncio.create_task(d.connected.wait()) for d in self.devices.values()]
        try:
            async with asyncio.timeout(timeout):
                for reached, connection in enumerate(asyncio.as_completed(waits), start=1):
                    await connection
                    if reached >= wanted:
                        return
        finally:
            for wait in waits:
                wait.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    def inflict(self, fault: Fault, device_ids: Sequence[str] | None = None) -> None:
        """Switch a fault on or off on the given devices (all by default); unknown ids: KeyError."""
        ids = self.devices.keys() if device_ids is None else device_ids
        for device in [self.devices[device_id] for device_id in ids]:
            inflict(device, fault)

    def temperatures(self) -> dict[str, float]:
        """Each room's temperature now."""
        now = self.clock.elapsed()
        for room in self.rooms.values():
            room.advance_to(now)
        return {name: room.temperature_celsius for name, room in self.rooms.items()}

    def status_line(self) -> str:
        """Connections, counters and each room's temperature (* while a heater is on)."""
        rooms = " ".join(
            f"{name}={celsius:.1f}°C{'*' if self.rooms[name].heating else ''}"
            for name, celsius in sorted(self.temperatures().items())
        )
        return (
            f"connected {self.connected_count()}/{len(self.devices)}"
            f" connects {self.stats.connects} samples {self.stats.samples_sent}"
            f" commands {self.stats.commands_executed} | {rooms}"
        )
