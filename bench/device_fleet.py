"""`python -m bench.device_fleet`: the device-loop bench's load, in a process of its own;
and `running_fleet`, how the bench runs it.

A fleet of simulated devices (`services.simulator.fleet.Fleet`, devices from a
JSON file as `python -m services.simulator --devices-file` reads it) on uvloop,
so the generator spends as little CPU as it can on the two cores it shares
with the stack. Instead of the simulator's status line for people it appends a
JSON line to `--status-file` every `--status-every` seconds: when
(`time.monotonic()`, which every process on the machine shares, so the bench
can bracket its own measurement windows with it), how many devices are
connected and gave up, and the samples and frames sent so far. SIGTERM or
SIGINT stop it cleanly. The bench runs it as a `ChildProcess` (stopped by PID,
and sent SIGTERM should the bench die first).

With `--lean`, the devices are instead the cheapest client that still speaks
the protocol: Hello, then a sample every `--telemetry-interval` seconds (which
also keeps the stream alive), reconnecting when the stream ends; no thermal
model, no outbox, no commands. A telemetry benchmark then spends the cores on
the adapter rather than on the simulator's bookkeeping.
"""

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import uvloop
from warmhouse.device_adapter.v1.device_adapter_pb2 import (
    ConnectRequest,
    ConnectResponse,
    Hello,
    Telemetry,
    TelemetrySamples,
)
from warmhouse.device_adapter.v1.device_adapter_pb2_grpc import DeviceAdapterServiceStub

from bench.account import SetupError
from services.devstack.child_process import ChildProcess
from services.devstack.stack import Stack
from services.simulator.cli import adapter_address, load_devices, positive_seconds
from services.simulator.device import FIRMWARE_VERSION, Counters, channel_options
from services.simulator.fleet import DeviceSpec, Fleet

Call = grpc.aio.StreamStreamCall[ConnectRequest, ConnectResponse]
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Devices that lost their stream come back quickly within a bench's short windows.
BACKOFF_CAP_SECONDS = 2.0
# The bench's side.
CHECKOUT = Path(__file__).resolve().parent.parent
START_SECONDS = 30.0
POLL_SECONDS = 0.25


@dataclass(frozen=True)
class Credentials:
    device_id: str
    secret: str


@dataclass(frozen=True)
class FleetStatus:
    """One status line: `at` is `time.monotonic()` in the fleet process."""

    at: float
    devices: int
    connected: int
    gave_up: int
    samples: int


class RunningFleet:
    """The fleet process as the bench sees it: its PID and what it reported."""

    def __init__(self, process: ChildProcess, status_file: Path, devices: int) -> None:
        self.process = process
        self.devices = devices
        self._status_file = status_file

    @property
    def pid(self) -> int:
        assert self.process.pid is not None, "started"
        return self.process.pid

    def statuses(self) -> list[FleetStatus]:
        """Every status line written so far (a half-written last line is left out)."""
        found = []
        for line in self._status_file.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            found.append(
                FleetStatus(
                    entry["at"],
                    entry["devices"],
                    entry["connected"],
                    entry["gave_up"],
                    entry["samples"],
                )
            )
        return found

    def latest(self) -> FleetStatus | None:
        statuses = self.statuses()
        return statuses[-1] if statuses else None

    def check_running(self) -> None:
        if self.process.exit_code is not None:
            raise SetupError(
                f"the device fleet exited with status {self.process.exit_code}; "
                f"see {self.process.log_file}"
            )

    async def wait_connected(self, within: float) -> float | None:
        """Seconds until every device had connected; None if some had not within `within`."""
        started = time.monotonic()
        while time.monotonic() - started < within:
            self.check_running()
            status = self.latest()
            if status is not None and status.connected >= self.devices:
                return time.monotonic() - started
            await asyncio.sleep(POLL_SECONDS)
        return None


@contextlib.asynccontextmanager
async def running_fleet(
    stack: Stack,
    adapter: str,
    name: str,
    devices: Sequence[Credentials],
    *,
    telemetry_interval: float,
    ramp: float,
    lean: bool = False,
    samples_per_frame: int = 1,
) -> AsyncIterator[RunningFleet]:
    """The fleet process (`name` tells its files apart) running `devices` against
    `adapter`, from start-up until the block ends; its log is among the stack's."""
    work_dir = stack.layout.root / "bench-device-fleet"
    work_dir.mkdir(parents=True, exist_ok=True)
    devices_file = work_dir / f"{name}-devices.json"
    status_file = work_dir / f"{name}-status.jsonl"
    status_file.unlink(missing_ok=True)
    entries = [
        {"deviceId": d.device_id, "deviceSecret": d.secret, "type": "SENSOR"} for d in devices
    ]
    devices_file.write_text(json.dumps(entries), encoding="utf-8")
    argv = [
        sys.executable,
        "-m",
        "bench.device_fleet",
        f"--adapter={adapter}",
        f"--devices-file={devices_file}",
        f"--status-file={status_file}",
        f"--telemetry-interval={telemetry_interval}",
        f"--ramp={ramp}",
        *(["--lean"] if lean else []),
        f"--samples-per-frame={samples_per_frame}",
    ]
    process = ChildProcess(f"bench-fleet-{name}", stack.layout.service_logs / f"bench-{name}.log")
    paths = [str(CHECKOUT / "gen"), str(CHECKOUT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in paths if path)}
    # From the event loop's (main) thread: the fleet is sent SIGTERM when that thread
    # ends (see ChildProcess), so it cannot outlive a bench that dies.
    process.start(argv, is_ready=status_file.exists, timeout=START_SECONDS, env=env)
    try:
        yield RunningFleet(process, status_file, len(devices))
    finally:
        try:
            await asyncio.to_thread(process.stop)
        finally:
            # Cancelled (Ctrl-C) before it stopped: stop it here, blocking if need be.
            process.stop()


# The fleet process' side.


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.device_fleet")
    parser.add_argument("--adapter", required=True, type=adapter_address, metavar="HOST:PORT")
    parser.add_argument("--devices-file", required=True, type=Path, metavar="FILE.json")
    parser.add_argument("--status-file", required=True, type=Path, metavar="FILE.jsonl")
    parser.add_argument("--telemetry-interval", type=positive_seconds, default=5.0)
    parser.add_argument("--ramp", type=float, default=0.0, help="spread first connections")
    parser.add_argument("--devices-per-channel", type=int, default=100)
    parser.add_argument("--status-every", type=positive_seconds, default=0.5)
    parser.add_argument("--lean", action="store_true", help="telemetry-only devices")
    parser.add_argument(
        "--samples-per-frame", type=int, default=1, help="lean: samples sent together"
    )
    args = parser.parse_args(argv)
    try:
        args.devices = load_devices(args.devices_file)
    except (OSError, ValueError) as error:
        parser.error(f"--devices-file: {error}")
    if args.ramp < 0 or args.devices_per_channel < 1 or not 1 <= args.samples_per_frame <= 100:
        parser.error(
            "--ramp must be 0 or more, --devices-per-channel at least 1"
            " and --samples-per-frame 1 to 100"
        )
    return args


class LeanFleet:
    """Telemetry-only devices sharing channels, as `Fleet` does, at a fraction of its cost."""

    def __init__(
        self,
        adapter: str,
        specs: Sequence[DeviceSpec],
        *,
        telemetry_interval: float,
        devices_per_channel: int,
        ramp_seconds: float,
        samples_per_frame: int = 1,
    ) -> None:
        self.stats = Counters()
        # A device samples every interval and sends this many samples in a frame.
        self._per_frame = samples_per_frame
        self.devices = list(specs)
        self.connected: set[str] = set()
        self._adapter = adapter
        self._interval = telemetry_interval
        self._per_channel = devices_per_channel
        self._ramp = ramp_seconds
        self._channels: list[grpc.aio.Channel] = []
        self._tasks: list[asyncio.Task[None]] = []

    def connected_count(self) -> int:
        return len(self.connected)

    def gave_up_count(self) -> int:
        return 0  # a lean device never gives up

    async def start(self) -> None:
        options = channel_options(BACKOFF_CAP_SECONDS)
        for number, spec in enumerate(self.devices):
            if number % self._per_channel == 0:
                self._channels.append(grpc.aio.insecure_channel(self._adapter, options=options))
            delay = self._ramp * number / len(self.devices)
            device = self._device(self._channels[-1], spec, delay)
            self._tasks.append(asyncio.create_task(device))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(channel.close() for channel in self._channels))

    async def _device(self, channel: grpc.aio.Channel, spec: DeviceSpec, delay: float) -> None:
        await asyncio.sleep(delay)
        stub = DeviceAdapterServiceStub(channel)
        hello = Hello(
            device_id=spec.device_id,
            device_secret=spec.device_secret,
            firmware_version=FIRMWARE_VERSION,
        )
        while True:
            call = stub.Connect()
            try:
                await self._converse(call, spec.device_id, hello)
            except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError):
                pass  # the stream ended; a write on an ended call raises one of the others
            finally:
                self.connected.discard(spec.device_id)
                call.cancel()
            await asyncio.sleep(BACKOFF_CAP_SECONDS)

    def _frame(self) -> ConnectRequest:
        """The samples taken since the last frame, one interval apart, the last one now."""
        now = time.time()
        samples = []
        for age in range(self._per_frame - 1, -1, -1):
            sample = Telemetry(temperature_celsius=20.0)
            sample.sample_time.FromNanoseconds(int((now - age * self._interval) * 1e9))
            samples.append(sample)
        if self._per_frame == 1:
            return ConnectRequest(telemetry=samples[0])
        return ConnectRequest(samples=TelemetrySamples(telemetry=samples))

    async def _converse(self, call: Call, device_id: str, hello: Hello) -> None:
        await call.write(ConnectRequest(hello=hello))
        welcome = await call.read()
        if not isinstance(welcome, ConnectResponse):
            return
        self.connected.add(device_id)
        self.stats.connects += 1
        reader = asyncio.create_task(_read_until_end(call))
        loop = asyncio.get_running_loop()
        due = loop.time()
        try:
            while not reader.done():
                await call.write(self._frame())
                self.stats.samples_sent += self._per_frame
                self.stats.frames_sent += 1
                # On a schedule: the time a write takes does not lower the rate, and a
                # device that fell behind does not burst to catch up.
                due = max(due + self._interval * self._per_frame, loop.time())
                await asyncio.sleep(due - loop.time())
        finally:
            reader.cancel()


async def _read_until_end(call: Call) -> None:
    """Reads (and ignores) what the adapter sends, until the stream ends."""
    with contextlib.suppress(grpc.aio.AioRpcError):
        while isinstance(await call.read(), ConnectResponse):
            pass


def status(fleet: Fleet | LeanFleet) -> dict[str, Any]:
    return {
        "at": time.monotonic(),
        "devices": len(fleet.devices),
        "connected": fleet.connected_count(),
        "gave_up": fleet.gave_up_count(),
        "connects": fleet.stats.connects,
        "samples": fleet.stats.samples_sent,
        "frames": fleet.stats.frames_sent,
    }


async def run(args: argparse.Namespace) -> None:
    fleet: Fleet | LeanFleet
    if args.lean:
        fleet = LeanFleet(
            args.adapter,
            args.devices,
            telemetry_interval=args.telemetry_interval,
            devices_per_channel=args.devices_per_channel,
            ramp_seconds=args.ramp,
            samples_per_frame=args.samples_per_frame,
        )
    else:
        fleet = Fleet(
            args.adapter,
            args.devices,
            telemetry_interval=args.telemetry_interval,
            devices_per_channel=args.devices_per_channel,
            backoff_cap=BACKOFF_CAP_SECONDS,
            ramp_seconds=args.ramp,
        )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stopping.set)
    reporter = asyncio.create_task(_report(fleet, args.status_file, args.status_every))
    try:
        await fleet.start()
        await stopping.wait()
    finally:
        reporter.cancel()
        await asyncio.gather(reporter, return_exceptions=True)
        await fleet.stop()


async def _report(fleet: Fleet | LeanFleet, path: Path, every: float) -> None:
    with path.open("a", encoding="utf-8") as out:
        while True:
            out.write(json.dumps(status(fleet)) + "\n")
            out.flush()
            await asyncio.sleep(every)


def main(argv: Sequence[str] | None = None) -> int:
    uvloop.run(run(parse(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
