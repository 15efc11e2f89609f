"""The Device service's phases: its read path, a big home's device list, and a growing table.

- GetDevice as a MAINTAINER who did not create the home, straight over gRPC
  and as `GET /devices/{id}` through Envoy, interleaved with the other phases;
- `GET /spaces/{id}/devices` (first page of 100) of a home holding 1,000
  devices, spread over the home and its two rooms;
- GetDevice's latency as the devices table grows from 100 devices to 10,000,
  registered over direct gRPC by the homes' OWNER (registration throughput is
  a figure of its own). The measured home holds its 100 devices at both sizes:
  measured once on those 100 devices, and once on devices drawn from the whole
  table (the MAINTAINER is a member of every home).

Before each measurement the MAINTAINER's GetDevice must succeed in every home
it reads (Device's projection of Space's events has caught up, or Device asked
Space and stored the answer), and the Device service's outbox must be drained
(its relay publishing 10,000 DeviceRegistered events would weigh on the larger
table's figures alone).
"""

import asyncio
import itertools
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg
import grpc
from warmhouse.device.v1.device_pb2 import (
    CONTROLLER,
    HEATER,
    SENSOR,
    GetDeviceRequest,
    RegisterDeviceRequest,
)
from warmhouse.device.v1.device_pb2_grpc import DeviceServiceStub

from bench.account import Account, SetupError
from bench.closed_loop import REQUEST_TIMEOUT_SECONDS, Budget, Call, run_closed_loop
from bench.estate import Estate, list_all_devices
from bench.figures import LoadFigures
from bench.report import DeviceScaling, Phase, Round
from bench.rounds import Plan, Progress, measure_interleaved
from services.runtime.database import asyncpg_dsn

SMALL_TABLE = 100
LARGE_TABLE = 10_000
LISTED_HOME_DEVICES = 1_000
# The homes the rest of the large table is spread over.
OTHER_HOMES = 18
PAGE_SIZE = 100
REGISTRATION_CONCURRENCY = 16
# Registrations are bounded by count; this only stops a service that hangs.
REGISTRATION_SECONDS = 300.0
VISIBLE_WITHIN_SECONDS = 30.0
POLL_SECONDS = 0.05
# After the first success: the projection's consumers finish what is in flight.
SETTLE_SECONDS = 1.0
OUTBOX_DRAIN_SECONDS = 60.0
# services/runtime/outbox.py: rows wait here until JetStream acknowledged them.
_UNPUBLISHED = "SELECT count(*) FROM outbox WHERE published_at IS NULL"
_TYPES = (HEATER, SENSOR, CONTROLLER)


class HttpGetLoad(Protocol):
    async def get(self, path: str, headers: Mapping[str, str], budget: Budget) -> LoadFigures: ...


@dataclass(frozen=True)
class Fleet:
    """The registered devices, by the space each was registered in."""

    estate: Estate
    by_space: Mapping[str, Sequence[str]]

    def in_home(self, home: str) -> list[str]:
        spaces = [home, *(self.estate.listed_rooms if home == self.estate.listed_home else ())]
        return [device for space in spaces for device in self.by_space.get(space, ())]

    @property
    def all(self) -> list[str]:
        return [device for devices in self.by_space.values() for device in devices]

    @property
    def read_device(self) -> str:
        """The device the interleaved read phases fetch: one in a room of the listed home."""
        devices = self.by_space.get(self.estate.listed_rooms[0], ())
        if not devices:
            raise SetupError("no device was registered in the listed home's first room")
        return devices[0]


class DeviceLoad:
    """Direct gRPC to the Device service: closed-loop workers sharing one channel."""

    def __init__(self, channel: grpc.aio.Channel, concurrency: int) -> None:
        self._devices = DeviceServiceStub(channel)
        self.concurrency = concurrency

    async def register(
        self, owner: Account, spaces: Sequence[str], registered: dict[str, list[str]]
    ) -> LoadFigures:
        """One RegisterDevice per entry of `spaces`, REGISTRATION_CONCURRENCY in flight."""
        call = self._register(owner, iter(spaces), registered)
        budget = Budget(max_requests=len(spaces), max_seconds=REGISTRATION_SECONDS)
        return await run_closed_loop([call] * REGISTRATION_CONCURRENCY, budget)

    async def get_device(
        self, account: Account, device_ids: Sequence[str], budget: Budget
    ) -> LoadFigures:
        """GetDevice of a device drawn at random from `device_ids` each request."""
        call = self._get_device(account, device_ids)
        return await run_closed_loop([call] * self.concurrency, budget)

    async def wait_until_visible(self, account: Account, device_ids: Sequence[str]) -> None:
        """Until `account`'s GetDevice of each device succeeds, then SETTLE_SECONDS more."""
        deadline = time.monotonic() + VISIBLE_WITHIN_SECONDS
        metadata = (("authorization", account.authorization),)
        for device_id in device_ids:
            while True:
                try:
                    await self._devices.GetDevice(
                        GetDeviceRequest(device_id=device_id),
                        metadata=metadata,
                        timeout=REQUEST_TIMEOUT_SECONDS,
                    )
                    break
                except grpc.aio.AioRpcError as error:
                    if time.monotonic() > deadline:
                        raise SetupError(
                            f"the MAINTAINER's GetDevice still failed after "
                            f"{VISIBLE_WITHIN_SECONDS:g} s: {_failed(error)}"
                        ) from None
                await asyncio.sleep(POLL_SECONDS)
        await asyncio.sleep(SETTLE_SECONDS)

    def _register(
        self, owner: Account, spaces: Iterator[str], registered: dict[str, list[str]]
    ) -> Call:
        metadata = (("authorization", owner.authorization),)
        numbers = itertools.count(sum(len(devices) for devices in registered.values()))

        async def call() -> str | None:
            space_id = next(spaces, None)
            if space_id is None:
                return "no space left to register a device in"
            number = next(numbers)
            request = RegisterDeviceRequest(
                space_id=space_id, type=_TYPES[number % len(_TYPES)], name=f"bench device {number}"
            )
            try:
                reply = await self._devices.RegisterDevice(
                    request, metadata=metadata, timeout=REQUEST_TIMEOUT_SECONDS
                )
            except grpc.aio.AioRpcError as error:
                return _failed(error)
            if reply.device.space_id != space_id or not reply.device_secret:
                return "RegisterDevice answered another space or no secret"
            registered.setdefault(space_id, []).append(reply.device.device_id)
            return None

        return call

    def _get_device(self, account: Account, device_ids: Sequence[str]) -> Call:
        metadata = (("authorization", account.authorization),)
        # Built once: the client's work per request stays the same at any table size.
        requests = [GetDeviceRequest(device_id=device_id) for device_id in device_ids]

        async def call() -> str | None:
            request = random.choice(requests)
            try:
                reply = await self._devices.GetDevice(
                    request, metadata=metadata, timeout=REQUEST_TIMEOUT_SECONDS
                )
            except grpc.aio.AioRpcError as error:
                return _failed(error)
            if reply.device.device_id != request.device_id:
                return f"GetDevice answered with device {reply.device.device_id!r}"
            return None

        return call


async def grow_and_measure(
    estate: Estate,
    load: DeviceLoad,
    database_url: str,
    warmup: Budget,
    measure: Budget,
    progress: Progress,
) -> tuple[Fleet, DeviceScaling]:
    """Register SMALL_TABLE devices, measure GetDevice, grow to LARGE_TABLE, measure again."""
    maintainer = estate.maintainer
    registered: dict[str, list[str]] = {}
    progress(f"registering {SMALL_TABLE} devices (direct RegisterDevice as the OWNER) ...")
    first = await load.register(estate.owner, [estate.measured_home] * SMALL_TABLE, registered)
    measured_devices = list(registered.get(estate.measured_home, ()))
    if not measured_devices:
        raise SetupError(f"no device could be registered: {', '.join(first.error_samples)}")
    progress("waiting for the MAINTAINER to see the measured home's devices ...")
    await load.wait_until_visible(maintainer, measured_devices[:1])
    small_count = len(measured_devices)
    [small] = await measure_interleaved(
        [
            Plan(
                f"GetDevice direct, {small_count} devices registered",
                "direct_get_device_small_table",
                load.concurrency,
                lambda budget: load.get_device(maintainer, measured_devices, budget),
            )
        ],
        1,
        warmup,
        measure,
        progress,
    )

    targets = _spread(estate, LARGE_TABLE - small_count)
    progress(f"registering {len(targets)} more devices over {len(estate.homes) - 1} homes ...")
    bulk = await load.register(estate.owner, targets, registered)
    registration = Phase(
        "RegisterDevice direct gRPC (OWNER)",
        "direct_register_device",
        REGISTRATION_CONCURRENCY,
        # The first SMALL_TABLE registrations warmed the path up.
        (Round(first, bulk),),
    )
    fleet = Fleet(estate, registered)
    progress("waiting for the Device service's outbox to drain ...")
    drained = await _outbox_drained(database_url)
    progress("waiting for the MAINTAINER to see a device of every home ...")
    await load.wait_until_visible(
        maintainer, [fleet.in_home(home)[0] for home in estate.homes if fleet.in_home(home)]
    )
    everything = fleet.all
    large_count = len(everything)
    same_home, whole_table = await measure_interleaved(
        [
            Plan(
                f"GetDevice direct, {large_count} registered, same {small_count}",
                "direct_get_device_large_table_same_home",
                load.concurrency,
                lambda budget: load.get_device(maintainer, measured_devices, budget),
            ),
            Plan(
                f"GetDevice direct, {large_count} registered, any",
                "direct_get_device_large_table",
                load.concurrency,
                lambda budget: load.get_device(maintainer, everything, budget),
            ),
        ],
        1,
        warmup,
        measure,
        progress,
    )
    scaling = DeviceScaling(
        registration=registration,
        small_table=small,
        large_table_same_home=same_home,
        large_table=whole_table,
        small_table_devices=small_count,
        large_table_devices=large_count,
        outbox_drain_seconds=drained,
    )
    return fleet, scaling


def read_plans(
    fleet: Fleet, load: DeviceLoad, http_load: HttpGetLoad, concurrency: int
) -> list[Plan]:
    """The phases interleaved with the others: GetDevice via Envoy and direct, ListDevices."""
    maintainer = fleet.estate.maintainer
    headers = {"Authorization": maintainer.authorization}
    device = fleet.read_device
    home = fleet.estate.listed_home
    listed = len(fleet.in_home(home))
    return [
        Plan(
            "GET /devices/{id} via Envoy (MAINTAINER)",
            "envoy_get_device",
            concurrency,
            lambda budget: http_load.get(f"/devices/{device}", headers, budget),
        ),
        Plan(
            "GetDevice direct gRPC (MAINTAINER)",
            "direct_get_device",
            concurrency,
            lambda budget: load.get_device(maintainer, [device], budget),
        ),
        Plan(
            f"GET /spaces/{{id}}/devices ({listed} in home, {PAGE_SIZE}/page)",
            "envoy_list_devices",
            concurrency,
            lambda budget: http_load.get(
                f"/spaces/{home}/devices?pageSize={PAGE_SIZE}", headers, budget
            ),
        ),
    ]


async def check_listing(base_url: str, fleet: Fleet) -> list[str]:
    """Problems with what the MAINTAINER's ListDevices of the listed home returns, if any."""
    home = fleet.estate.listed_home
    listed = await list_all_devices(base_url, fleet.estate.maintainer, home)
    expected = fleet.in_home(home)
    if sorted(listed) == sorted(expected):
        return []
    return [
        f"GET /spaces/{{id}}/devices listed {len(listed)} devices ({len(set(listed))} distinct) "
        f"of a home holding {len(expected)}"
    ]


def _spread(estate: Estate, count: int) -> list[str]:
    """`count` target spaces: the listed home filled to LISTED_HOME_DEVICES over itself
    and its rooms, the rest round-robin over the other homes; shuffled, so every home's
    devices lie all over the table."""
    listed_spaces = (estate.listed_home, *estate.listed_rooms)
    listed = [listed_spaces[n % len(listed_spaces)] for n in range(LISTED_HOME_DEVICES)]
    others = [estate.other_homes[n % len(estate.other_homes)] for n in range(count - len(listed))]
    targets = listed + others
    random.shuffle(targets)
    return targets


async def _outbox_drained(database_url: str) -> float | None:
    """Seconds until the outbox held no unpublished row; None if it still did after
    OUTBOX_DRAIN_SECONDS."""
    started = time.monotonic()
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        while time.monotonic() - started < OUTBOX_DRAIN_SECONDS:
            if await connection.fetchval(_UNPUBLISHED) == 0:
                return time.monotonic() - started
            await asyncio.sleep(POLL_SECONDS)
    finally:
        await connection.close()
    return None


def _failed(error: grpc.aio.AioRpcError) -> str:
    return f"gRPC {error.code().name}: {error.details()}"
