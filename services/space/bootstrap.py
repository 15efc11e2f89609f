"""Wiring of the Space service: its settings, handlers, servicer, consumers and expiry job."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import grpc
from warmhouse.space.v1 import space_pb2_grpc

from services.runtime.config import Environment, RuntimeSettings
from services.runtime.server import Runtime, ServiceDefinition, Worker
from services.runtime.unit_of_work import DatabaseUnitOfWork
from services.runtime.user_status import USER_METHODS, UserStatusClient
from services.space.clients import DEVICE_METHODS, DeviceCountClient
from services.space.description import DESCRIPTION
from services.space.domain import SpaceLimits
from services.space.expiry import GuestExpiry
from services.space.grpc_api import SpaceService
from services.space.handlers import SpaceHandlers
from services.space.repository import sql_repositories
from services.space.user_events import UserEvents


@dataclass(frozen=True)
class SpaceSettings:
    # Where UserService listens (is a new member an active account?).
    user_address: str
    # Where DeviceService listens (does a space about to be deleted hold devices?).
    device_address: str
    # How often expired guest memberships are deleted and announced (access
    # ends at expire_time whatever this is).
    expiry_check_every: timedelta
    limits: SpaceLimits = field(default_factory=SpaceLimits)

    @classmethod
    def from_environment(cls, env: Environment) -> "SpaceSettings":
        return cls(
            user_address=env.service_address("user"),
            device_address=env.service_address("device"),
            expiry_check_every=timedelta(
                seconds=env.integer("WARMHOUSE_SPACE_EXPIRY_CHECK_SECONDS", 5, 1)
            ),
            limits=SpaceLimits(
                homes_per_owner=env.integer("WARMHOUSE_SPACE_MAX_HOMES_PER_OWNER", 100, 1),
                rooms_per_home=env.integer("WARMHOUSE_SPACE_MAX_ROOMS_PER_HOME", 100, 1),
            ),
        )


def definition(settings: SpaceSettings) -> ServiceDefinition:
    async def attach(server: grpc.aio.Server, runtime: Runtime) -> Sequence[Worker]:
        uow = DatabaseUnitOfWork(runtime.database, runtime.relay, sql_repositories)
        # The runtime closes these channels when the service stops.
        users = runtime.open_channel(settings.user_address, idempotent_methods=USER_METHODS)
        devices = runtime.open_channel(settings.device_address, idempotent_methods=DEVICE_METHODS)
        handlers = SpaceHandlers(
            uow,
            UserStatusClient(users),
            DeviceCountClient(devices),
            runtime.page_tokens,
            limits=settings.limits,
        )
        space_pb2_grpc.add_SpaceServiceServicer_to_server(SpaceService(handlers), server)
        return (
            *UserEvents().consumers(runtime.database, runtime.jetstream, runtime.relay),
            GuestExpiry(uow).job(settings.expiry_check_every),
        )

    return ServiceDefinition(
        description=DESCRIPTION,
        migrations=Path(__file__).parent / "migrations",
        attach=attach,
        consumes_from=("user",),
    )


def build(env: Environment) -> tuple[ServiceDefinition, RuntimeSettings]:
    return definition(SpaceSettings.from_environment(env)), RuntimeSettings.from_environment(env)
