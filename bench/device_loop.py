"""The device loop under load: command round trips, streams held, telemetry ingested.

Runs against a stack that includes the Device Adapter (service "device-adapter").
An OWNER of homes of its own registers STREAM_DEVICES + 1 devices over direct
gRPC. The first, a HEATER, is simulated in the bench process and answers the
commands; every other stream comes from `bench/device_fleet.py`, a process of
its own, so the adapter and the load generator never share a Python process:

1. Command round trip, idle: `POST /devices/{id}/command` through Envoy, then
   `GET /devices/{id}/commands/{commandId}` every POLL_SECONDS until it reads
   ACKNOWLEDGED; COMMANDS of them one after another, after a warm-up. Then
   HEATING_CHANGES heating changes, one every HEATING_PACE_SECONDS: `PATCH
   /devices/{id}/heating/desired`, then `GET /devices/{id}/heating` until the
   heater reports the new version applied (the plan pushed through the
   adapter, the status back).
2. Streams held: the simulator's own devices (`services.simulator` Fleet)
   connect STREAM_DEVICES streams sending telemetry once a minute, so mostly
   heartbeats flow; held for more than three heartbeat intervals (long enough
   for the adapter to drop a stream whose heartbeats it missed). Connected as
   the fleet counts them and as the adapter announced them (distinct devices
   in DeviceConnected events), the adapter process' RSS before and after, and
   so memory per stream.
3. Telemetry ingest: INGEST_DEVICES lean devices (`--lean`: Hello, then
   samples, nothing else) each sending a sample every INGEST_INTERVAL_SECONDS.
   The figure is what is durable in JetStream: a consumer of new
   TelemetryBatch messages sums their samples over a window of
   INGEST_WINDOW_SECONDS, by the time JetStream stored each message. Shown
   beside the offered rate, the rate the fleet actually sent, and the CPU each
   process used over the window (on two shared cores, the generator, the
   adapter and the Device service storing the readings all compete).
4. Command round trip again, under that telemetry load.
5. Telemetry ingest again, the devices sending INGEST_SAMPLES_PER_FRAME
   samples in each frame (TelemetrySamples), a sample every
   INGEST_FRAMED_INTERVAL_SECONDS: a tenth of the frames per sample (gRPC
   costs per frame, not per sample), offered beyond the target to show the
   headroom.

Timings are figures, never failures. Failures (which fail the run): a command
not ACKNOWLEDGED within ACK_WITHIN_SECONDS, devices that never connect, a
registration refused, no telemetry reaching JetStream at all.
"""

import asyncio
import contextlib
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import nats
import nats.errors
import uvloop
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from warmhouse.device.v1.device_pb2 import HEATER, SENSOR, RegisterDeviceRequest
from warmhouse.device.v1.device_pb2_grpc import DeviceServiceStub
from warmhouse.device_adapter.v1 import device_adapter_pb2 as adapter_pb

from bench.account import JSON_HEADERS, Account, SetupError, register_and_log_in
from bench.closed_loop import REQUEST_TIMEOUT_SECONDS, Budget, run_closed_loop
from bench.device_fleet import Credentials, FleetStatus, RunningFleet, running_fleet
from bench.figures import LoadFigures, ratio
from bench.http1 import Http1Connection
from bench.report import Phase, Report, Round
from bench.rounds import Progress
from services.device.description import DESCRIPTION as DEVICE
from services.device_adapter.description import DESCRIPTION as DEVICE_ADAPTER
from services.devstack.child_process import StartupError
from services.devstack.ports import free_port
from services.devstack.stack import Stack
from services.runtime.messaging import stream_config
from services.runtime.outbox import subject_of
from services.simulator.device import DeviceType, SimulatedDevice
from services.simulator.thermal import Room

ADAPTER = DEVICE_ADAPTER.name
STREAM = stream_config(ADAPTER).name

STREAM_DEVICES = 10_000
INGEST_DEVICES = 1_000
# The Device service takes at most 2,000 devices per home.
DEVICES_PER_HOME = 1_000
REGISTRATION_CONCURRENCY = 16
# Past this, the phases run with the devices registered so far (and say so).
REGISTRATION_SECONDS = 120.0

# Targets of the device-loop issue.
INGEST_TARGET_PER_SECOND = 20_000
IDLE_P99_TARGET_MS = 50.0

COMMANDS = 200
WARMUP_COMMANDS = 10
COMMAND_SECONDS = 30.0
POLL_SECONDS = 0.002
# Heating changes measured on the one heater: within the 30 a minute a device takes,
# one a HEATING_PACE_SECONDS: a heater may send a status a second after a burst of 10
# (WARMHOUSE_DEVICE_ADAPTER_HEATING_STATUSES_PER_MINUTE); faster would measure that limit.
WARMUP_HEATING = 2
HEATING_CHANGES = 25
HEATING_PACE_SECONDS = 1.1
# Within the closed loop's own bound on a request (REQUEST_TIMEOUT_SECONDS).
ACK_WITHIN_SECONDS = 8.0

# The ingest phase offers each device the adapter's default ceiling of samples
# a second: the figure is the adapter's cost, not its limiter's.
LOOP_ENV = {"WARMHOUSE_DEVICE_ADAPTER_SAMPLES_PER_SECOND": "1000"}
# The stack's default (WARMHOUSE_DEVICE_ADAPTER_HEARTBEAT_SECONDS).
HEARTBEAT_SECONDS = 5.0
STREAM_TELEMETRY_SECONDS = 60.0
# First connections spread over this long, as a fleet coming online would.
STREAM_RAMP_SECONDS = 10.0
CONNECT_WITHIN_SECONDS = 120.0
# Past three heartbeat intervals a silent stream has been dropped.
HOLD_SECONDS = 3 * HEARTBEAT_SECONDS + 1.0
# For the adapter to end the last fleet's streams before the next phase.
SETTLE_WITHIN_SECONDS = 20.0

INGEST_INTERVAL_SECONDS = 0.05
INGEST_SAMPLES_PER_FRAME = 10
# Offered faster than the target, so the figure shows the headroom, not the offer.
INGEST_FRAMED_INTERVAL_SECONDS = 0.02
INGEST_RAMP_SECONDS = 1.0
INGEST_WARMUP_SECONDS = 3.0
INGEST_WINDOW_SECONDS = 10.0
# For JetStream messages stored within the window to reach the bench's consumer.
INGEST_DRAIN_SECONDS = 5.0

FETCH_BATCH = 256
FETCH_SECONDS = 0.2
SETTLE_POLL_SECONDS = 0.25

# Names in the CPU figures besides the stack's processes and the fleet's.
MACHINE = "machine"
BENCH = "bench"
FLEET = "device fleet"
POSTGRES = "postgres"
MACHINE_CORES = os.cpu_count() or 0
_TICKS = os.sysconf("SC_CLK_TCK")

_TELEMETRY_SUBJECT = subject_of(adapter_pb.TelemetryBatch())
_CONNECTED_SUBJECT = subject_of(adapter_pb.DeviceConnected())
_DISCONNECTED_SUBJECT = subject_of(adapter_pb.DeviceDisconnected())


@dataclass(frozen=True)
class Registration:
    wanted: int
    registered: int
    seconds: float
    errors: int


@dataclass(frozen=True)
class Streams:
    wanted: int
    # As the fleet process counts them, at the end of the hold.
    connected: int
    gave_up: int
    # Distinct devices the adapter announced in DeviceConnected events.
    announced: int
    # Until every device had connected; None if some never did.
    connect_seconds: float | None
    hold_seconds: float
    # DeviceDisconnected events during the hold, by reason.
    disconnects: dict[str, int]
    rss_before_bytes: int
    rss_after_bytes: int

    @property
    def bytes_per_stream(self) -> float | None:
        return ratio(self.rss_after_bytes - self.rss_before_bytes, self.connected)

    def as_json(self) -> dict[str, Any]:
        per_stream = self.bytes_per_stream
        return {
            "wanted": self.wanted,
            "connected": self.connected,
            "gave_up": self.gave_up,
            "announced": self.announced,
            "connect_seconds": _rounded(self.connect_seconds),
            "hold_seconds": self.hold_seconds,
            "disconnects_during_hold": dict(self.disconnects),
            "adapter_rss_before_bytes": self.rss_before_bytes,
            "adapter_rss_after_bytes": self.rss_after_bytes,
            "bytes_per_stream": None if per_stream is None else round(per_stream),
        }


@dataclass(frozen=True)
class Ingest:
    devices: int
    connected: int
    interval_seconds: float
    window_seconds: float
    # Samples in TelemetryBatch messages JetStream stored within the window.
    durable_samples: int
    batches: int
    # What the fleet process wrote to its streams, per second, over the window.
    sent_per_second: float | None
    # Cores each process kept busy over the window (1.0 = one core), and the machine.
    cpu: dict[str, float]
    samples_per_frame: int = 1

    @property
    def offered_per_second(self) -> float:
        return self.devices / self.interval_seconds

    @property
    def durable_per_second(self) -> float:
        return self.durable_samples / self.window_seconds

    @property
    def adapter_microseconds_per_sample(self) -> float | None:
        """The adapter's CPU per durable sample: what one core could ingest is 10^6 / this."""
        cores = self.cpu.get(ADAPTER)
        return None if cores is None else ratio(cores * 1e6, self.durable_per_second)

    def as_json(self) -> dict[str, Any]:
        return {
            "devices": self.devices,
            "connected": self.connected,
            "interval_seconds": self.interval_seconds,
            "window_seconds": self.window_seconds,
            "offered_per_second": round(self.offered_per_second, 1),
            "sent_per_second": _rounded(self.sent_per_second),
            "durable_samples": self.durable_samples,
            "durable_per_second": round(self.durable_per_second, 1),
            "batches": self.batches,
            "cpu_cores": {name: round(cores, 2) for name, cores in self.cpu.items()},
            "adapter_cpu_microseconds_per_sample": _rounded(self.adapter_microseconds_per_sample),
            "samples_per_frame": self.samples_per_frame,
        }


@dataclass
class DeviceLoop:
    """What the device-loop phases measured; a part stays None when it could not run."""

    registration: Registration | None = None
    idle: Phase | None = None
    streams: Streams | None = None
    ingest: Ingest | None = None
    loaded: Phase | None = None
    # The same offer, several samples to a frame.
    ingest_framed: Ingest | None = None
    # Desired heating changes until the device reports them applied.
    heating: Phase | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def phases(self) -> tuple[Phase, ...]:
        return tuple(p for p in (self.idle, self.heating, self.loaded) if p is not None)

    def lines(self) -> list[str]:
        lines = ["Device loop (bench/device_loop.py), devices simulated in a process of their own:"]
        if self.registration is not None:
            lines.append(_registration_line(self.registration))
        if self.phases:
            lines.append(_round_trip_line(self.idle, self.loaded))
        if self.heating is not None:
            lines.append(_heating_line(self.heating))
        if self.streams is not None:
            lines += _streams_lines(self.streams)
        for ingest in (self.ingest, self.ingest_framed):
            if ingest is not None:
                lines += _ingest_lines(ingest)
        return [lines[0], *(f"  {line}" for line in lines[1:])]

    def as_json(self) -> dict[str, Any]:
        registration = self.registration
        idle_p99 = None if self.idle is None else self.idle.p99_ms
        measured = [i.durable_per_second for i in (self.ingest, self.ingest_framed) if i]
        ingest = max(measured) if measured else None
        return {
            "targets": {
                "idle_command_round_trip_p99_ms": {
                    "target": IDLE_P99_TARGET_MS,
                    "met": None if idle_p99 is None else idle_p99 < IDLE_P99_TARGET_MS,
                },
                "durable_samples_per_second": {
                    "target": INGEST_TARGET_PER_SECOND,
                    "met": None if ingest is None else ingest >= INGEST_TARGET_PER_SECOND,
                },
            },
            "registration": None if registration is None else vars(registration),
            "streams": None if self.streams is None else self.streams.as_json(),
            "ingest": None if self.ingest is None else self.ingest.as_json(),
            "ingest_framed": None if self.ingest_framed is None else self.ingest_framed.as_json(),
            "problems": list(self.problems),
        }


@dataclass(frozen=True, kw_only=True)
class ReportWithDeviceLoop(Report):
    """The bench's report with the device loop's rows and figures added."""

    device_loop: DeviceLoop

    @property
    def phases(self) -> tuple[Phase, ...]:
        return (*super().phases, *self.device_loop.phases)

    @property
    def errors(self) -> int:
        return super().errors + len(self.device_loop.problems)

    def table(self) -> str:
        # Before the error count, which covers these figures too.
        head, errors, tail = super().table().partition("\nErrors: ")
        problems = [f"  device loop: {problem}" for problem in self.device_loop.problems]
        return "\n".join([head, *self.device_loop.lines()]) + errors + "\n".join([tail, *problems])

    def as_json(self) -> dict[str, Any]:
        return {
            **super().as_json(),
            "errors": self.errors,
            "device_loop": self.device_loop.as_json(),
        }


async def add_device_loop(report: Report, stack: Stack, progress: Progress) -> Report:
    """`report` with the device loop measured on `stack` (run after every other phase)."""
    loop = await measure_device_loop(stack, progress)
    kept = {item.name: getattr(report, item.name) for item in fields(report)}
    return ReportWithDeviceLoop(**kept, device_loop=loop)


async def measure_device_loop(stack: Stack, progress: Progress) -> DeviceLoop:
    """Every device-loop figure; what fails is a problem in the result, not an exception."""
    result = DeviceLoop()
    if ADAPTER not in stack.services:
        result.problems.append(f"the stack runs no {ADAPTER!r} service")
        return result
    try:
        await _measure(stack, result, progress)
    except (SetupError, StartupError, OSError, grpc.aio.AioRpcError, nats.errors.Error) as error:
        result.problems.append(f"stopped early: {type(error).__name__}: {error}")
    return result


async def _measure(stack: Stack, result: DeviceLoop, progress: Progress) -> None:
    adapter = stack.grpc_address(ADAPTER)
    owner = await register_and_log_in(stack.base_url)
    progress(f"device loop: registering {STREAM_DEVICES + 1} devices over direct gRPC ...")
    registered, result.registration = await _register(stack, owner, STREAM_DEVICES + 1)
    if result.registration.errors:
        result.problems.append(f"{result.registration.errors} RegisterDevice calls failed")
    if len(registered) < 2:
        raise SetupError("too few devices were registered to run the device loop")
    commanded, fleet = registered[0], registered[1:]
    nc = await nats.connect(stack.nats.url, name="bench-device-loop")
    device = SimulatedDevice(
        commanded.device_id,
        commanded.secret,
        DeviceType.HEATER,
        Room("bench"),
        adapter=adapter,
        telemetry_interval=STREAM_TELEMETRY_SECONDS,
        backoff_cap=1.0,
    )
    api = Http1Connection(stack.base_url)
    try:
        await device.start()
        try:
            await device.wait_connected(CONNECT_WITHIN_SECONDS)
        except TimeoutError:
            raise SetupError("the bench's own device never connected to the adapter") from None
        commands = _Commands(api, owner, commanded.device_id)
        progress(f"device loop: {COMMANDS} command round trips, idle ...")
        result.idle = await commands.measure("Command round trip via Envoy, idle", "idle")
        progress(f"device loop: {HEATING_CHANGES} heating changes, each until applied ...")
        result.heating = await _HeatingChanges(api, owner, commanded.device_id).measure()
        progress(f"device loop: {len(fleet)} streams with heartbeats from another process ...")
        result.streams = await _hold_streams(stack, nc.jetstream(), fleet, result)
        ingest_fleet = fleet[:INGEST_DEVICES]
        progress(f"device loop: telemetry from {len(ingest_fleet)} devices, then commands ...")
        async with running_fleet(
            stack,
            adapter,
            "ingest",
            ingest_fleet,
            telemetry_interval=INGEST_INTERVAL_SECONDS,
            ramp=INGEST_RAMP_SECONDS,
            lean=True,
        ) as running:
            result.ingest = await _ingest(stack, nc.jetstream(), running, result)
            result.loaded = await commands.measure(
                "Command round trip via Envoy, telemetry load", "telemetry_load"
            )
        progress(f"device loop: telemetry, {INGEST_SAMPLES_PER_FRAME} samples to a frame ...")
        async with running_fleet(
            stack,
            adapter,
            "ingest-framed",
            ingest_fleet,
            telemetry_interval=INGEST_FRAMED_INTERVAL_SECONDS,
            ramp=INGEST_RAMP_SECONDS,
            lean=True,
            samples_per_frame=INGEST_SAMPLES_PER_FRAME,
        ) as running:
            result.ingest_framed = await _ingest(
                stack,
                nc.jetstream(),
                running,
                result,
                INGEST_SAMPLES_PER_FRAME,
                INGEST_FRAMED_INTERVAL_SECONDS,
            )
    finally:
        await device.stop()
        await api.close()
        await nc.close()


# Registration.


async def _register(
    stack: Stack, owner: Account, count: int
) -> tuple[list[Credentials], Registration]:
    """Up to `count` devices, in the order they were asked for (the first a HEATER, the
    rest SENSORs), over homes of their own; fewer if REGISTRATION_SECONDS ran out."""
    homes = await _create_homes(stack.base_url, owner, math.ceil(count / DEVICES_PER_HOME))
    numbers = iter(range(count))
    # By number: the first (0) is the HEATER the bench itself simulates.
    registered: dict[int, Credentials] = {}
    metadata = (("authorization", owner.authorization),)
    async with grpc.aio.insecure_channel(stack.grpc_address(DEVICE.name)) as channel:
        devices = DeviceServiceStub(channel)

        async def call() -> str | None:
            number = next(numbers, None)
            if number is None:
                return "no device left to register"
            request = RegisterDeviceRequest(
                space_id=homes[number // DEVICES_PER_HOME],
                type=SENSOR if number else HEATER,
                name=f"bench loop device {number}",
            )
            try:
                reply = await devices.RegisterDevice(
                    request, metadata=metadata, timeout=REQUEST_TIMEOUT_SECONDS
                )
            except grpc.aio.AioRpcError as error:
                return f"gRPC {error.code().name}: {error.details()}"
            registered[number] = Credentials(reply.device.device_id, reply.device_secret)
            return None

        figures = await run_closed_loop(
            [call] * REGISTRATION_CONCURRENCY, Budget(count, REGISTRATION_SECONDS)
        )
    registration = Registration(count, len(registered), figures.seconds, figures.errors)
    return [registered[number] for number in sorted(registered)], registration


async def _create_homes(base_url: str, owner: Account, count: int) -> list[str]:
    connection = Http1Connection(base_url)
    headers = {"Authorization": owner.authorization, **JSON_HEADERS}
    homes = []
    try:
        for number in range(count):
            body = json.dumps({"name": f"bench loop home {number}"}).encode()
            response = await connection.request("POST", "/spaces", headers, body)
            if response.status != 200:
                raise SetupError(f"POST /spaces answered {response.status}")
            homes.append(str(json.loads(response.body)["spaceId"]))
    finally:
        await connection.close()
    return homes


# Commands.


class _Commands:
    """Commands to one device through Envoy, one at a time, each polled until answered."""

    def __init__(self, api: Http1Connection, owner: Account, device_id: str) -> None:
        self._api = api
        self._device_id = device_id
        self._authorization = {"Authorization": owner.authorization}
        self._sent = 0

    async def measure(self, label: str, key: str) -> Phase:
        warmup = await run_closed_loop([self._round_trip], Budget(WARMUP_COMMANDS, COMMAND_SECONDS))
        measured = await run_closed_loop([self._round_trip], Budget(COMMANDS, COMMAND_SECONDS))
        return Phase(label, f"envoy_command_round_trip_{key}", 1, (Round(warmup, measured),))

    async def _round_trip(self) -> str | None:
        """POST a command, then GET it until it reads ACKNOWLEDGED; None on success."""
        self._sent += 1
        # A different set point each time, so every command changes something.
        body = {"kind": "SET_TARGET_TEMPERATURE", "targetTemperatureCelsius": 18 + self._sent % 5}
        path = f"/devices/{self._device_id}/command"
        started = time.monotonic()
        headers = {**self._authorization, **JSON_HEADERS}
        response = await self._api.request("POST", path, headers, json.dumps(body).encode())
        if response.status != 200:
            return f"POST {path} answered {response.status}"
        command_id = str(json.loads(response.body)["commandId"])
        while True:
            response = await self._api.request("GET", f"{path}s/{command_id}", self._authorization)
            if response.status != 200:
                return f"GET the command answered {response.status}"
            status = json.loads(response.body)["command"]["status"]
            if status == "ACKNOWLEDGED":
                return None
            if status not in ("QUEUED", "SENT"):
                return f"the command ended {status}"
            if time.monotonic() - started > ACK_WITHIN_SECONDS:
                return f"not ACKNOWLEDGED within {ACK_WITHIN_SECONDS:g} s (still {status})"
            await asyncio.sleep(POLL_SECONDS)


class _HeatingChanges:
    """Desired heating changes to one heater through Envoy, one at a time: PATCH with the
    version read, then GET /heating until the device reports that version applied."""

    def __init__(self, api: Http1Connection, owner: Account, device_id: str) -> None:
        self._api = api
        self._path = f"/devices/{device_id}/heating"
        self._authorization = {"Authorization": owner.authorization}
        self._version: int | None = None

    async def measure(self) -> Phase:
        warmup = await self._paced(WARMUP_HEATING)
        measured = await self._paced(HEATING_CHANGES)
        label = "Heating change via Envoy until applied"
        return Phase(label, "envoy_heating_change_applied", 1, (Round(warmup, measured),))

    async def _paced(self, count: int) -> LoadFigures:
        """`count` changes, one every HEATING_PACE_SECONDS."""
        latencies_ms: list[float] = []
        errors: list[str] = []
        started = time.perf_counter()
        for _ in range(count):
            sent = time.perf_counter()
            problem = await self._round_trip()
            if problem is None:
                latencies_ms.append((time.perf_counter() - sent) * 1000)
            else:
                errors.append(problem)
            await asyncio.sleep(max(0.0, sent + HEATING_PACE_SECONDS - time.perf_counter()))
        return LoadFigures.from_latencies(latencies_ms, errors, time.perf_counter() - started)

    async def _round_trip(self) -> str | None:
        if self._version is None:
            response = await self._api.request("GET", self._path, self._authorization)
            if response.status != 200:
                return f"GET {self._path} answered {response.status}"
            self._version = int(json.loads(response.body)["desired"]["plan"]["version"])
        # A different target each time, so every change changes something.
        body = {"version": self._version, "targetCelsius": 18 + self._version % 5}
        headers = {**self._authorization, **JSON_HEADERS}
        started = time.monotonic()
        path = f"{self._path}/desired"
        response = await self._api.request("PATCH", path, headers, json.dumps(body).encode())
        if response.status != 200:
            return f"PATCH {path} answered {response.status}"
        self._version = int(json.loads(response.body)["desired"]["plan"]["version"])
        while True:
            response = await self._api.request("GET", self._path, self._authorization)
            if response.status != 200:
                return f"GET {self._path} answered {response.status}"
            delta = json.loads(response.body)["delta"]
            if int(delta["appliedVersion"]) == self._version:
                return None
            if time.monotonic() - started > ACK_WITHIN_SECONDS:
                return f"not applied within {ACK_WITHIN_SECONDS:g} s"
            await asyncio.sleep(POLL_SECONDS)


# Streams held.


async def _hold_streams(
    stack: Stack,
    jetstream: JetStreamContext,
    devices: Sequence[Credentials],
    result: DeviceLoop,
) -> Streams:
    adapter_pid = stack.services[ADAPTER].process.pid
    assert adapter_pid is not None, "the stack is running"
    announced: set[str] = set()
    disconnects: Counter[str] = Counter()

    def on_connected(message: Msg) -> None:
        announced.add(adapter_pb.DeviceConnected.FromString(message.data).device_id)

    def on_disconnected(message: Msg) -> None:
        event = adapter_pb.DeviceDisconnected.FromString(message.data)
        disconnects[adapter_pb.DisconnectReason.Name(event.reason)] += 1

    rss_before = _rss_bytes(adapter_pid)
    async with (
        _Tap(jetstream, _CONNECTED_SUBJECT, on_connected),
        _Tap(jetstream, _DISCONNECTED_SUBJECT, on_disconnected),
    ):
        async with running_fleet(
            stack,
            stack.grpc_address(ADAPTER),
            "streams",
            devices,
            telemetry_interval=STREAM_TELEMETRY_SECONDS,
            ramp=STREAM_RAMP_SECONDS,
        ) as fleet:
            connect_seconds = await fleet.wait_connected(CONNECT_WITHIN_SECONDS)
            before_hold = disconnects.copy()
            await asyncio.sleep(HOLD_SECONDS)
            fleet.check_running()
            status = fleet.latest()
            rss_after = _rss_bytes(adapter_pid)
            during_hold = disconnects - before_hold
        await _settled(lambda: sum(disconnects.values()) >= len(announced))
    streams = Streams(
        wanted=len(devices),
        connected=0 if status is None else status.connected,
        gave_up=0 if status is None else status.gave_up,
        announced=len(announced),
        connect_seconds=connect_seconds,
        hold_seconds=HOLD_SECONDS,
        disconnects=dict(during_hold),
        rss_before_bytes=rss_before,
        rss_after_bytes=rss_after,
    )
    if connect_seconds is None:
        result.problems.append(
            f"only {streams.connected} of {len(devices)} devices connected "
            f"within {CONNECT_WITHIN_SECONDS:g} s ({streams.gave_up} gave up)"
        )
    elif streams.connected < len(devices):
        result.problems.append(
            f"{len(devices) - streams.connected} of {len(devices)} streams were lost "
            f"while held for {HOLD_SECONDS:g} s"
        )
    return streams


async def _settled(done: Callable[[], bool]) -> None:
    """Until `done()`, at most SETTLE_WITHIN_SECONDS: the next phase starts either way."""
    deadline = time.monotonic() + SETTLE_WITHIN_SECONDS
    while True:
        if done() or time.monotonic() > deadline:
            return
        await asyncio.sleep(SETTLE_POLL_SECONDS)


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise SetupError(f"no VmRSS in /proc/{pid}/status")


# Telemetry ingest.


async def _ingest(
    stack: Stack,
    jetstream: JetStreamContext,
    fleet: RunningFleet,
    result: DeviceLoop,
    samples_per_frame: int = 1,
    interval_seconds: float = INGEST_INTERVAL_SECONDS,
) -> Ingest:
    if await fleet.wait_connected(CONNECT_WITHIN_SECONDS) is None:
        status = fleet.latest()
        connected = 0 if status is None else status.connected
        result.problems.append(
            f"only {connected} of {fleet.devices} telemetry devices connected "
            f"within {CONNECT_WITHIN_SECONDS:g} s"
        )
    await asyncio.sleep(INGEST_WARMUP_SECONDS)
    samples = 0
    batches = 0
    # Nothing counts until the window is set.
    window = (math.inf, math.inf)
    past_window = asyncio.Event()

    def on_batch(message: Msg) -> None:
        nonlocal samples, batches
        stored = _stored_at(message)
        if stored >= window[1]:
            past_window.set()
        elif stored >= window[0]:
            samples += len(adapter_pb.TelemetryBatch.FromString(message.data).samples)
            batches += 1

    watched = {**_stack_pids(stack), FLEET: fleet.pid}
    async with _Tap(jetstream, _TELEMETRY_SUBJECT, on_batch):
        started_wall, started = time.time(), time.monotonic()
        cpu_before = _cpu_seconds(watched)
        window = (started_wall, started_wall + INGEST_WINDOW_SECONDS)
        await asyncio.sleep(INGEST_WINDOW_SECONDS)
        cpu_after = _cpu_seconds(watched)
        ended = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(past_window.wait(), INGEST_DRAIN_SECONDS)
    fleet.check_running()
    status = fleet.latest()
    ingest = Ingest(
        devices=fleet.devices,
        connected=0 if status is None else status.connected,
        interval_seconds=interval_seconds,
        window_seconds=INGEST_WINDOW_SECONDS,
        durable_samples=samples,
        batches=batches,
        sent_per_second=_sent_rate(fleet.statuses(), started, ended),
        cpu={
            name: (cpu_after[name] - cpu_before[name]) / (ended - started)
            for name in cpu_before.keys() & cpu_after.keys()
        },
        samples_per_frame=samples_per_frame,
    )
    if samples == 0:
        result.problems.append("no telemetry sample reached JetStream during the window")
    return ingest


def _stack_pids(stack: Stack) -> dict[str, int]:
    """The processes whose CPU the ingest figures show, by name (the bench's own too)."""
    processes = [
        stack.postgres.process,
        stack.nats.process,
        stack.envoy.process,
        *(service.process for service in stack.services.values()),
    ]
    pids = {process.name: process.pid for process in processes if process.pid is not None}
    return {**pids, BENCH: os.getpid()}


def _cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each process still running (PostgreSQL's with its
    backends), and by the whole machine, others' work included, as MACHINE."""
    used = {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError):
            if name == POSTGRES:
                # A backend's time moves to its parent's "children" fields when it
                # exits: counted once either way.
                live = sum(_process_cpu_seconds(child) for child in _children(pid))
                used[name] = _process_cpu_seconds(pid, with_exited_children=True) + live
            else:
                used[name] = _process_cpu_seconds(pid)
    # The first line: "cpu user nice system idle iowait irq softirq steal ...".
    first_line = Path("/proc/stat").read_text().split("\n", 1)[0]
    times = [int(value) for value in first_line.split()[1:9]]
    idle = times[3] + times[4]
    used[MACHINE] = (sum(times) - idle) / _TICKS
    return used


def _process_cpu_seconds(pid: int, *, with_exited_children: bool = False) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields 14 to 17: utime, stime, then cutime, cstime (children waited for). They
    # are counted after the command, which may hold spaces, from field 3 on.
    after_command = stat.rsplit(")", 1)[1].split()
    counted = after_command[11:15] if with_exited_children else after_command[11:13]
    return sum(int(value) for value in counted) / _TICKS


def _children(pid: int) -> list[int]:
    try:
        return [
            int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        ]
    except OSError:
        return []


def _stored_at(message: Msg) -> float:
    """When JetStream stored the message (wall clock, seconds)."""
    stored: datetime = message.metadata.timestamp
    return stored.timestamp()


def _sent_rate(statuses: Sequence[FleetStatus], start: float, end: float) -> float | None:
    """Samples per second the fleet sent between its status lines nearest `start` and `end`."""
    if len(statuses) < 2:
        return None
    first = min(statuses, key=lambda s: abs(s.at - start))
    last = min(statuses, key=lambda s: abs(s.at - end))
    return ratio(last.samples - first.samples, last.at - first.at)


class _Tap:
    """A JetStream consumer of the messages on `subject` stored from now on, each handed
    to `handle` as it comes, until the block ends. No acknowledgements: it only watches."""

    def __init__(
        self, jetstream: JetStreamContext, subject: str, handle: Callable[[Msg], None]
    ) -> None:
        self._jetstream = jetstream
        self._subject = subject
        self._handle = handle
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "_Tap":
        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.NEW, inactive_threshold=60.0
        )
        subscription = await self._jetstream.pull_subscribe(
            self._subject, stream=STREAM, config=config
        )
        self._task = asyncio.create_task(self._drain(subscription))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        failed = task.done() and not task.cancelled() and task.exception() is not None
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if failed:
            # What it counted stopped short: the figures built on it would be wrong.
            raise SetupError(f"watching {self._subject} failed: {task.exception()!r}")

    async def _drain(self, subscription: JetStreamContext.PullSubscription) -> None:
        try:
            while True:
                try:
                    messages = await subscription.fetch(FETCH_BATCH, timeout=FETCH_SECONDS)
                except TimeoutError:  # nats' own, or asyncio's from inside fetch
                    continue
                for message in messages:
                    self._handle(message)
        finally:
            with contextlib.suppress(nats.errors.Error):
                await subscription.unsubscribe()


# The report's lines.


def _registration_line(registration: Registration) -> str:
    rate = ratio(registration.registered, registration.seconds) or 0.0
    short = (
        ""
        if registration.registered >= registration.wanted
        else f" of {registration.wanted} wanted (stopped at {REGISTRATION_SECONDS:g} s)"
    )
    return (
        f"RegisterDevice direct gRPC: {registration.registered} devices{short} in "
        f"{registration.seconds:.1f} s, {rate:.0f}/s at {REGISTRATION_CONCURRENCY} in flight"
    )


def _streams_lines(streams: Streams) -> list[str]:
    connect = (
        f"not all within {CONNECT_WITHIN_SECONDS:g} s"
        if streams.connect_seconds is None
        else f"all {streams.connect_seconds:.1f} s after the start"
    )
    per_stream = streams.bytes_per_stream
    memory = "n/a" if per_stream is None else f"{per_stream / 1024:.1f} KiB"
    lost = ", ".join(f"{n} {reason}" for reason, n in sorted(streams.disconnects.items()))
    return [
        f"Streams held by one adapter process: {streams.connected} of {streams.wanted} "
        f"connected ({connect};",
        f"  first connections spread over {STREAM_RAMP_SECONDS:g} s), DeviceConnected for "
        f"{streams.announced}; then held {streams.hold_seconds:g} s",
        f"  (heartbeat {HEARTBEAT_SECONDS:g} s, telemetry every {STREAM_TELEMETRY_SECONDS:g} s): "
        f"disconnects {lost or 'none'}",
        f"  adapter RSS {_mib(streams.rss_before_bytes)} -> {_mib(streams.rss_after_bytes)}: "
        f"{memory} per stream",
    ]


def _ingest_lines(ingest: Ingest) -> list[str]:
    sent = "n/a" if ingest.sent_per_second is None else f"{ingest.sent_per_second:,.0f}/s"
    per_batch = ratio(ingest.durable_samples, ingest.batches) or 0.0
    per_sample = ingest.adapter_microseconds_per_sample
    cost = "n/a" if per_sample is None else f"{per_sample:.0f} µs"
    met = ingest.durable_per_second >= INGEST_TARGET_PER_SECOND
    cpu = [f"{name} {cores:.2f}" for name, cores in sorted(ingest.cpu.items())]
    framing = (
        "one sample" if ingest.samples_per_frame == 1 else f"{ingest.samples_per_frame} samples"
    )
    return [
        f"Telemetry ingest, {framing} to a frame: {ingest.durable_per_second:,.0f} samples/s"
        f" durable in JetStream over {ingest.window_seconds:g} s,",
        f"  target >= {INGEST_TARGET_PER_SECOND:,}/s: {'met' if met else 'NOT met'}; "
        f"offered {ingest.offered_per_second:,.0f}/s ({ingest.connected} of {ingest.devices} "
        f"devices connected,",
        f"  a sample every {ingest.interval_seconds:g} s each), sent {sent}; "
        f"{ingest.batches} batches of {per_batch:.0f} samples on average",
        f"  CPU over the window, in cores of {MACHINE_CORES} (machine: others' work too):",
        *(f"    {', '.join(cpu[first : first + 6])}" for first in range(0, len(cpu), 6)),
        f"  the adapter's CPU per durable sample: {cost}",
    ]


def _round_trip_line(idle: Phase | None, loaded: Phase | None) -> str:
    p99 = None if idle is None else idle.p99_ms
    verdict = "n/a" if p99 is None else ("met" if p99 < IDLE_P99_TARGET_MS else "NOT met")
    under_load = "" if loaded is None else f"; under telemetry load {_ms(loaded.p99_ms)} ms"
    return (
        f"Command round trip p99: idle {_ms(p99)} ms, target < {IDLE_P99_TARGET_MS:g} ms: "
        f"{verdict}{under_load}"
    )


def _heating_line(heating: Phase) -> str:
    return (
        f"Heating change until applied (PATCH desired, GET /heating until the heater reports"
        f" it): p50 {_ms(heating.p50_ms)} ms, p99 {_ms(heating.p99_ms)} ms over"
        f" {heating.requests} changes"
    )


def _mib(value: int) -> str:
    return f"{value / 2**20:.1f} MiB"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def main() -> int:
    """Only the device loop, on a stack of its own: `python -m bench.device_loop`."""
    env = {"WARMHOUSE_ACCESS_TOKEN_TTL_SECONDS": "3600", **LOOP_ENV}
    with tempfile.TemporaryDirectory(prefix="warmhouse-bench-loop-") as data_dir:
        stack = Stack(Path(data_dir), free_port(), extra_env=env)
        try:
            with stack:
                loop = uvloop.run(measure_device_loop(stack, _progress))
        finally:
            stack.postgres.remove_data()
    print("\n".join(loop.lines()))
    for phase in loop.phases:
        for line in phase.error_lines():
            print(line)
    for problem in loop.problems:
        print(f"  problem: {problem}")
    failed = loop.problems or any(phase.errors for phase in loop.phases)
    return 1 if failed else 0


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
