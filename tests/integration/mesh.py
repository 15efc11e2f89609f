"""User, Space and Device served in-process, each reaching the others, and
people to call them as.

Space and Device call each other, so both ports are picked before either starts.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from warmhouse.device.v1 import device_pb2_grpc
from warmhouse.space.v1 import space_pb2_grpc
from warmhouse.user.v1 import user_pb2_grpc

from services.device import bootstrap as device_bootstrap
from services.device.domain import DEVICES_PER_HOME
from services.devstack.ports import LOOPBACK, free_port
from services.devstack.postgres_process import PostgresProcess
from services.runtime.config import RuntimeSettings
from services.runtime.messaging import SETTLE_SECONDS
from services.runtime.server import ServiceHost
from services.space import bootstrap as space_bootstrap
from services.space.domain import SpaceLimits
from services.user.bootstrap import UserSettings
from services.user.bootstrap import definition as user_definition
from services.user.signing_keys import load_private_key
from services.user.tokens import TokenIssuer
from tests.accounts import Metadata, bearer, register
from tests.integration.hosts import running_service

if TYPE_CHECKING:
    from warmhouse.user.v1.user_pb2_grpc import UserServiceAsyncStub

DEVICE_SECRET_KEY = b"integration-tests-device-secret-key-0123456789"


UNLIMITED = 1_000_000


@dataclass(frozen=True)
class SpaceAndDevice:
    space: ServiceHost
    device: ServiceHost
    space_channel: grpc.aio.Channel
    device_channel: grpc.aio.Channel


@dataclass(frozen=True)
class Mesh(SpaceAndDevice):
    user_address: str
    user_channel: grpc.aio.Channel


@asynccontextmanager
async def space_and_device(
    settings: RuntimeSettings,
    postgres: PostgresProcess,
    user_address: str,
    *,
    space_limits: SpaceLimits | None = None,
    devices_per_home: int = DEVICES_PER_HOME,
) -> AsyncIterator[SpaceAndDevice]:
    """Space and Device on fresh databases, reaching each other and `user_address`."""
    space_address, device_address = (f"{LOOPBACK}:{free_port()}" for _ in range(2))
    space_settings = space_bootstrap.SpaceSettings(
        user_address=user_address,
        device_address=device_address,
        expiry_check_every=timedelta(seconds=1),
        limits=space_limits or SpaceLimits(),
    )
    device_settings = device_bootstrap.DeviceSettings(
        secret_key=DEVICE_SECRET_KEY, space_address=space_address, devices_per_home=devices_per_home
    )
    async with (
        running_service(
            space_bootstrap.definition(space_settings),
            settings,
            postgres,
            grpc_address=space_address,
        ) as space,
        running_service(
            device_bootstrap.definition(device_settings),
            settings,
            postgres,
            grpc_address=device_address,
        ) as device,
    ):
        # Until its broker connection has settled, Device trusts none of its
        # projection: tests that feed it events directly need it trusted.
        await asyncio.sleep(SETTLE_SECONDS)
        yield SpaceAndDevice(space.host, device.host, space.channel, device.channel)


@pytest.fixture(scope="session")
async def mesh(
    runtime_settings: RuntimeSettings,
    postgres: PostgresProcess,
    user_settings: UserSettings,
) -> AsyncIterator[Mesh]:
    user_address = f"{LOOPBACK}:{free_port()}"
    # Every test registers its people from 127.0.0.1: no per-client ceiling here.
    user_settings = replace(
        user_settings,
        registrations=replace(user_settings.registrations, max_failures=UNLIMITED),
    )
    async with (
        running_service(
            user_definition(user_settings),
            runtime_settings,
            postgres,
            grpc_address=user_address,
        ) as user,
        space_and_device(runtime_settings, postgres, user_address) as pair,
    ):
        yield Mesh(**vars(pair), user_address=user_address, user_channel=user.channel)


@pytest.fixture
def spaces(mesh: Mesh) -> space_pb2_grpc.SpaceServiceStub:
    return space_pb2_grpc.SpaceServiceStub(mesh.space_channel)


@pytest.fixture
def devices(mesh: Mesh) -> device_pb2_grpc.DeviceServiceStub:
    return device_pb2_grpc.DeviceServiceStub(mesh.device_channel)


@dataclass(frozen=True)
class Person:
    user_id: str
    # Authenticates a call as this person.
    auth: Metadata


class People:
    """Registers accounts and mints their tokens (no argon2 login per test)."""

    def __init__(self, users: "UserServiceAsyncStub", issuer: TokenIssuer) -> None:
        self._users = users
        self._issuer = issuer

    async def new(self) -> Person:
        user_id, _ = await register(self._users)
        return self.as_user(user_id)

    def as_user(self, user_id: str, role: str = "USER") -> Person:
        token = self._issuer.access_token(user_id, role, str(uuid.uuid4()))
        return Person(user_id, bearer(token))

    def admin(self) -> Person:
        return self.as_user(str(uuid.uuid4()), "ADMIN")


@pytest.fixture(scope="session")
def people(mesh: Mesh, signing_keys: tuple[Path, Path]) -> People:
    issuer = TokenIssuer(load_private_key(signing_keys[0]), 300)
    return People(user_pb2_grpc.UserServiceStub(mesh.user_channel), issuer)
