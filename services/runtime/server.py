"""Start-up, health and graceful shutdown, the same for every service.

A service describes itself with a `ServiceDefinition`; `ServiceHost` does the
rest: migrations, NATS streams, the outbox relay, consumers, token checks,
health, reflection and tracing. SIGTERM/SIGINT → NOT_SERVING → drain in-flight
calls → stop background work → exit 0.
"""

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Protocol

import grpc
import uvloop
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from services.runtime import channels, idempotency, messaging
from services.runtime import database as db
from services.runtime.auth import RevokedTokens, TokenVerifier
from services.runtime.authentication import Authenticators
from services.runtime.config import ConfigError, Environment, RuntimeSettings
from services.runtime.interceptors import GuardInterceptor
from services.runtime.internal_auth import ServiceCredentials
from services.runtime.logs import configure_logging
from services.runtime.outbox import OutboxRelay
from services.runtime.pagination import PageTokens
from services.runtime.periodic import PeriodicJob
from services.runtime.request import ClientAddresses
from services.runtime.revocation import REVOCATIONS_FROM, RevocationFeed
from services.runtime.service import ServiceDescription
from services.runtime.tracing import configure_tracing

log = logging.getLogger(__name__)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
STOP_TASKS_SECONDS = 5.0
# Token leeway plus clock skew between the issuer and us.
REVOCATION_MARGIN_SECONDS = 60
IDEMPOTENCY_PRUNE_EVERY = timedelta(hours=1)


class Worker(Protocol):
    """Background work a service runs until it stops."""

    # Names its task, e.g. in "background task X did not stop".
    name: str

    async def run(self) -> None: ...


@dataclass
class Runtime:
    """What a service's wiring receives: the shared, started infrastructure."""

    settings: RuntimeSettings
    # None for a service without a database of its own (the Device Adapter).
    own_database: db.Database | None
    nats: NatsClient
    jetstream: JetStreamContext
    own_relay: OutboxRelay | None
    revoked: RevokedTokens
    page_tokens: PageTokens
    client_addresses: ClientAddresses
    # This service's credential for calling others (and checking theirs).
    credentials: ServiceCredentials
    channels: list[grpc.aio.Channel] = field(default_factory=list)
    # Awaited at stop, after health says NOT_SERVING and before the server's
    # drain, with the drain time: for calls that never end on their own (the
    # Device Adapter's streams), which the drain would only wait out.
    stop_hooks: list[Callable[[float], Awaitable[None]]] = field(default_factory=list)

    @property
    def database(self) -> db.Database:
        if self.own_database is None:
            raise RuntimeError("this service has no database (ServiceDescription.owns_database)")
        return self.own_database

    @property
    def relay(self) -> OutboxRelay:
        if self.own_relay is None:
            raise RuntimeError("this service has no database, so no outbox")
        return self.own_relay

    def open_channel(
        self, address: str, *, idempotent_methods: Collection[str] = ()
    ) -> grpc.aio.Channel:
        """A channel to another service (see channels.open_channel), closed when this one stops."""
        channel = channels.open_channel(
            address, self.credentials, idempotent_methods=idempotent_methods
        )
        self.channels.append(channel)
        return channel


@dataclass(frozen=True)
class ServiceDefinition:
    """How one service plugs into the runtime."""

    description: ServiceDescription
    # None only for a service that owns no database.
    migrations: Path | None
    # Registers servicers and does start-up work; returns the workers to run
    # alongside the server (event consumers, periodic clean-ups).
    attach: Callable[[grpc.aio.Server, Runtime], Awaitable[Sequence[Worker]]]
    # Other services whose event streams this one consumes.
    consumes_from: tuple[str, ...] = field(default=())
    # Shared schemas the service opts into, as (component, migrations
    # directory), applied before its own (e.g. home_directory.MIGRATIONS).
    extra_migrations: tuple[tuple[str, Path], ...] = field(default=())
    # grpc server options, e.g. a smaller maximum message for clients that
    # are not our services (the Device Adapter's hardware).
    server_options: tuple[tuple[str, int], ...] = field(default=())


class ServiceHost:
    """Runs one service until asked to stop."""

    def __init__(self, definition: ServiceDefinition, settings: RuntimeSettings) -> None:
        self._definition = definition
        self._settings = settings
        self._health = health_aio.HealthServicer()
        self._tasks: list[asyncio.Task[None]] = []
        self._server: grpc.aio.Server | None = None
        self._runtime: Runtime | None = None

    @property
    def name(self) -> str:
        return self._definition.description.name

    @property
    def runtime(self) -> Runtime:
        assert self._runtime is not None, "start() first"
        return self._runtime

    async def start(self) -> int:
        """Start serving; return the bound port."""
        runtime = await self._connect()
        server = await self._build_server(runtime)
        workers = [*await self._definition.attach(server, runtime)]
        if runtime.own_database is not None:
            database = runtime.own_database
            workers.append(
                PeriodicJob(
                    "idempotency-key-pruner",
                    IDEMPOTENCY_PRUNE_EVERY,
                    lambda: idempotency.prune(database),
                )
            )
        if runtime.own_relay is not None:
            workers.append(runtime.own_relay)
        port: int = server.add_insecure_port(self._settings.grpc_address)
        await server.start()
        self._server = server
        self._tasks += [
            asyncio.create_task(self._watch_health(), name="health"),
            *(asyncio.create_task(worker.run(), name=worker.name) for worker in workers),
        ]
        await self._report_health()
        log.info("serving", extra={"address": self._settings.grpc_address, "port": port})
        return port

    async def _connect(self) -> Runtime:
        """Migrate the database, reach the broker, start following revocations."""
        definition, settings = self._definition, self._settings
        database = await self._migrated_database()
        nats_client = await messaging.connect(
            settings.nats_url, f"warmhouse-{definition.description.name}"
        )
        jetstream = nats_client.jetstream()
        own = definition.description.name
        for service in sorted({own, REVOCATIONS_FROM, *definition.consumes_from}):
            # Another's stream, if it must be created first, gets the defaults
            # until its owner starts and brings it to its own configuration.
            description = definition.description
            replicas = settings.nats_stream_replicas
            config = (
                messaging.stream_config(
                    own, description.event_retention, description.event_bytes, replicas=replicas
                )
                if service == own
                else messaging.stream_config(service, replicas=replicas)
            )
            await messaging.ensure_stream(jetstream, config, owned=service == own)
        # Long enough that every token issued before a revocation has expired.
        revoked = RevokedTokens(settings.access_token_ttl_seconds + REVOCATION_MARGIN_SECONDS)
        revocations = RevocationFeed(jetstream, revoked, settings.access_token_ttl_seconds)
        # Replaying revocations starts before serving, so it is done moments after.
        self._tasks = [asyncio.create_task(revocations.run(), name="revocations")]
        relay = OutboxRelay(database, jetstream) if database is not None else None
        self._runtime = Runtime(
            settings,
            database,
            nats_client,
            jetstream,
            relay,
            revoked,
            PageTokens(settings.derived_key(f"page-tokens:{definition.description.name}")),
            ClientAddresses(settings.trusted_proxies),
            ServiceCredentials(
                settings.derived_key("service-credentials"), definition.description.name
            ),
        )
        return self._runtime

    async def _migrated_database(self) -> db.Database | None:
        definition, settings = self._definition, self._settings
        if not definition.description.owns_database:
            return None
        if settings.database_url is None or definition.migrations is None:
            raise ConfigError(f"{self.name} needs WARMHOUSE_DATABASE_URL and its migrations")
        database = await db.Database.connect(settings.database_url)
        await db.apply_migrations(database, "runtime", db.RUNTIME_MIGRATIONS)
        for component, directory in definition.extra_migrations:
            await db.apply_migrations(database, component, directory)
        await db.apply_migrations(database, definition.description.name, definition.migrations)
        return database

    async def _build_server(self, runtime: Runtime) -> grpc.aio.Server:
        verifier = TokenVerifier.from_file(
            runtime.settings.jwks_file,
            runtime.revoked,
            max_lifetime_seconds=runtime.settings.access_token_ttl_seconds,
        )
        authenticators = Authenticators(verifier, runtime.credentials)
        server = grpc.aio.server(
            interceptors=[
                GuardInterceptor(self._definition.description.access, authenticators),
            ],
            options=self._definition.server_options,
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        health_service = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
        reflection.enable_server_reflection(
            (*self._definition.description.grpc_services, health_service, reflection.SERVICE_NAME),
            server,
        )
        return server

    async def _report_health(self) -> None:
        runtime = self.runtime
        database = runtime.own_database
        healthy = runtime.nats.is_connected and (database is None or await database.is_reachable())
        status = SERVING if healthy else NOT_SERVING
        for name in ("", *self._definition.description.grpc_services):
            await self._health.set(name, status)

    async def _watch_health(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            await self._report_health()

    async def stop(self) -> None:
        """Refuse new work, let in-flight calls finish, then release everything."""
        for task in self._tasks:
            if task.get_name() == "health":
                task.cancel()
        await self._health.enter_graceful_shutdown()
        started = time.monotonic()
        drain = float(self._settings.drain_seconds)
        if self._runtime is not None:
            for hook in self._runtime.stop_hooks:
                await hook(drain)
        if self._server is not None:
            await self._server.stop(max(0.0, drain - (time.monotonic() - started)))
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # Bounded: a task that ignores its cancellation must not keep the
            # process from exiting.
            _, stuck = await asyncio.wait(self._tasks, timeout=STOP_TASKS_SECONDS)
            for task in stuck:
                log.error("background task %s did not stop", task.get_name())
        if self._runtime is not None:
            for channel in self._runtime.channels:
                await channel.close()
            with contextlib.suppress(Exception):
                await self._runtime.nats.drain()
            if self._runtime.own_database is not None:
                await self._runtime.own_database.close()
        log.info("stopped")


async def serve_until_signalled(host: ServiceHost) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await host.start()
    await stop.wait()
    log.info("shutting down: draining in-flight calls")
    await host.stop()


def run(
    build: Callable[[Environment], tuple[ServiceDefinition, RuntimeSettings]],
) -> None:
    """The `__main__` of every service."""
    try:
        definition, settings = build(Environment(os.environ))
        configure_logging(definition.description.name, settings.log_level)
        configure_tracing(definition.description.name)
    except ConfigError as error:
        sys.exit(f"configuration error: {error}")
    uvloop.run(serve_until_signalled(ServiceHost(definition, settings)))
