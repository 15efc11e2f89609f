"""Wiring of the Device service: its settings, handlers, servicer and consumers."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import grpc
from warmhouse.device.v1 import device_pb2_grpc

from services.device import connections, heating_delivery, telemetry
from services.device.access import GET_SPACE_ACCESS, AccessCheck, GrpcSpaceDirectory
from services.device.command_rules import OPEN_COMMANDS_PER_DEVICE
from services.device.commands import CommandHandlers, expire_lapsed
from services.device.connections import ConnectionEvents, mark_lapsed_offline
from services.device.description import DESCRIPTION, SECRET_KEY_ENV
from services.device.device_secrets import DeviceSecrets
from services.device.dispatch import (
    RESEND_UNANSWERED_AFTER,
    DeviceDispatcher,
    RevocationNotices,
)
from services.device.domain import DEVICES_PER_HOME
from services.device.grpc_api import DeviceService
from services.device.handlers import DeviceHandlers
from services.device.heating import HeatingHandlers
from services.device.heating_delivery import HeatingReports
from services.device.reading_queries import ReadingQueries
from services.device.readings import TelemetrySettings
from services.device.readings_repository import reading_history
from services.device.repository import sql_repositories
from services.device.space_events import subscriptions
from services.runtime.config import Environment, RuntimeSettings
from services.runtime.messaging import BrokerSettled, EventConsumer
from services.runtime.periodic import PeriodicJob
from services.runtime.server import Runtime, ServiceDefinition, Worker
from services.runtime.space_roles import Right
from services.runtime.unit_of_work import DatabaseUnitOfWork

# Deadlines and leases are seconds long: checked every second.
EXPIRY_CHECK_EVERY = timedelta(seconds=1)
LEASE_CHECK_EVERY = timedelta(seconds=1)


@dataclass(frozen=True)
class DeviceSettings:
    # Keys the HMAC of device secrets.
    secret_key: bytes
    # Where SpaceService listens (the access check's fallback).
    space_address: str
    devices_per_home: int = DEVICES_PER_HOME
    open_commands_per_device: int = OPEN_COMMANDS_PER_DEVICE
    resend_unanswered_after: timedelta = RESEND_UNANSWERED_AFTER
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)

    @classmethod
    def from_environment(cls, env: Environment) -> "DeviceSettings":
        return cls(
            secret_key=env.secret(SECRET_KEY_ENV),
            space_address=env.service_address("space"),
            devices_per_home=env.integer("WARMHOUSE_DEVICE_MAX_PER_HOME", DEVICES_PER_HOME, 1),
            open_commands_per_device=env.integer(
                "WARMHOUSE_DEVICE_MAX_OPEN_COMMANDS", OPEN_COMMANDS_PER_DEVICE, 1
            ),
            resend_unanswered_after=timedelta(
                seconds=env.integer(
                    "WARMHOUSE_DEVICE_COMMAND_RESEND_SECONDS",
                    int(RESEND_UNANSWERED_AFTER.total_seconds()),
                    1,
                )
            ),
            telemetry=TelemetrySettings.from_environment(env),
        )


def definition(settings: DeviceSettings) -> ServiceDefinition:
    async def attach(server: grpc.aio.Server, runtime: Runtime) -> Sequence[Worker]:
        uow = DatabaseUnitOfWork(runtime.database, runtime.relay, sql_repositories)
        broker_settled = BrokerSettled(runtime.nats)
        space = runtime.open_channel(settings.space_address, idempotent_methods={GET_SPACE_ACCESS})
        dispatcher = DeviceDispatcher(
            uow, runtime.nats, resend_after=settings.resend_unanswered_after
        )
        revocations = RevocationNotices(runtime.nats)
        handlers = DeviceHandlers(
            uow,
            AccessCheck(uow, GrpcSpaceDirectory(space), broker_settled),
            DeviceSecrets(settings.secret_key),
            runtime.page_tokens,
            devices_per_home=settings.devices_per_home,
            on_revoked=revocations,
        )
        commands = CommandHandlers(
            uow,
            handlers,
            runtime.page_tokens,
            dispatcher.wake,
            open_per_device=settings.open_commands_per_device,
        )
        readings = ReadingQueries(
            reading_history(runtime.database),
            lambda caller, device_id: handlers.authorized_device(caller, device_id, Right.READ),
            settings.telemetry,
        )
        heating = HeatingHandlers(uow, handlers, dispatcher.wake)
        device_pb2_grpc.add_DeviceServiceServicer_to_server(
            DeviceService(handlers, commands, readings, heating), server
        )
        consumed = [
            *subscriptions(),
            *connections.subscriptions(
                ConnectionEvents(dispatcher.wake, on_stale_credential=revocations)
            ),
            telemetry.subscription(settings.telemetry),
            heating_delivery.subscription(HeatingReports(dispatcher.wake)),
        ]
        return (
            broker_settled,
            dispatcher,
            PeriodicJob("command-expiry", EXPIRY_CHECK_EVERY, lambda: expire_lapsed(uow)),
            PeriodicJob(
                "lease-sweep",
                LEASE_CHECK_EVERY,
                lambda: mark_lapsed_offline(runtime.database, broker_settled),
            ),
            telemetry.pruning_job(runtime.database, settings.telemetry),
            *(
                EventConsumer(
                    runtime.database, runtime.jetstream, subscription, relay=runtime.relay
                )
                for subscription in consumed
            ),
        )

    return ServiceDefinition(
        description=DESCRIPTION,
        migrations=Path(__file__).parent / "migrations",
        attach=attach,
        consumes_from=("space", "device-adapter"),
    )


def build(env: Environment) -> tuple[ServiceDefinition, RuntimeSettings]:
    return definition(DeviceSettings.from_environment(env)), RuntimeSettings.from_environment(env)
