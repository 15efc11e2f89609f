"""Simulated hardware on the real stack: devices registered over REST that
connect to adapter replicas, and ways to watch what the platform makes of them."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from services.devstack.ports import LOOPBACK, free_port
from services.devstack.service_process import ServiceProcess
from services.devstack.stack import Stack
from services.simulator.clock import SimClock
from services.simulator.device import DeviceType, SimulatedDevice
from services.simulator.thermal import Room
from tests.e2e.homes import Home, ok, register_device
from tests.e2e.rest import Rest
from tests.polling import eventually

ADAPTER = "device-adapter"
# What the README promises with the default settings.
OFFLINE_BOUND_SECONDS = 30.0
ONLINE_BOUND_SECONDS = 2.0


@contextmanager
def adapter_replica(stack: Stack, name: str, **env: str) -> Iterator[ServiceProcess]:
    """Another Device Adapter process beside the stack's, stopped (or killed) by the test."""
    replica = stack.replica(ADAPTER, port=free_port(), log_name=name, extra_env=env)
    replica.start()
    try:
        yield replica
    finally:
        replica.stop()


def targets(*addresses: str) -> str:
    """A gRPC target over several replicas: the first that answers, then the next."""
    return "ipv4:" + ",".join(addresses)


class Hardware:
    """A device registered over REST, ready to be simulated."""

    def __init__(self, api: Rest, home: Home, device_type: str = "HEATER") -> None:
        self.api = api
        self.home = home
        registered = register_device(api, home.owner.token, home.room_id, device_type=device_type)
        self.device_id: str = registered["device"]["deviceId"]
        self.secret: str = registered["deviceSecret"]
        self.type = DeviceType(device_type)

    def simulated(
        self,
        adapter: str,
        *,
        secret: str | None = None,
        telemetry_interval: float = 5.0,
        samples_per_frame: int = 1,
        room: Room | None = None,
        clock: SimClock | None = None,
        state_path: Path | None = None,
    ) -> SimulatedDevice:
        return SimulatedDevice(
            self.device_id,
            secret or self.secret,
            self.type,
            room or Room("room"),
            adapter=adapter,
            telemetry_interval=telemetry_interval,
            backoff_cap=1.0,
            samples_per_frame=samples_per_frame,
            clock=clock,
            state_path=state_path,
        )

    def get(self, path: str = "") -> Any:
        return ok(
            self.api.call("GET", f"/devices/{self.device_id}{path}", token=self.home.guest.token)
        )

    async def device(self) -> dict[str, Any]:
        return dict((await asyncio.to_thread(self.get))["device"])

    async def status(self) -> str:
        return str((await self.device())["status"])

    async def command(self, command_id: str) -> dict[str, Any]:
        return dict((await asyncio.to_thread(self.get, f"/commands/{command_id}"))["command"])

    async def send(self, body: dict[str, Any], token: str | None = None) -> str:
        reply = await asyncio.to_thread(
            self.api.call,
            "POST",
            f"/devices/{self.device_id}/command",
            body,
            token or self.home.owner.token,
        )
        return str(ok(reply)["commandId"])

    async def logs(self, kind: str) -> list[str]:
        path = f"/logs?kind={kind}&pageSize=100"
        body = await asyncio.to_thread(self.get, path)
        return [entry["event"] for entry in body.get("deviceLogs", [])]


async def within(seconds: float, probe: Callable[[], Any], what: str) -> float:
    """Seconds until `probe()` is truthy (tests/polling.eventually); fails after `seconds`."""
    start = time.monotonic()
    await eventually(probe, within=seconds, interval=0.1, what=what)
    return time.monotonic() - start


@asynccontextmanager
async def running(device: SimulatedDevice) -> AsyncIterator[SimulatedDevice]:
    await device.start()
    try:
        yield device
    finally:
        await device.stop()


def adapter_address(stack: Stack) -> str:
    return stack.grpc_address(ADAPTER)


def replica_address(replica: ServiceProcess) -> str:
    return f"{LOOPBACK}:{replica.port}"
