"""Any service definition, served in-process on a database of its own."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import grpc

from services.devstack.postgres_process import PostgresProcess
from services.runtime.config import RuntimeSettings
from services.runtime.server import ServiceDefinition, ServiceHost


def fresh_database(postgres: PostgresProcess) -> str:
    """The URL of a new, empty database on the session's server."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    postgres.create_database(name)
    return postgres.url(name)


@dataclass(frozen=True)
class RunningService:
    host: ServiceHost
    port: int
    channel: grpc.aio.Channel


@asynccontextmanager
async def running_service(
    definition: ServiceDefinition,
    settings: RuntimeSettings,
    postgres: PostgresProcess,
    **overrides: Any,
) -> AsyncIterator[RunningService]:
    """Start `definition` on a fresh database (settings changed by `overrides`),
    with a channel to it; stop both when the block ends."""
    host = ServiceHost(
        definition, replace(settings, database_url=fresh_database(postgres), **overrides)
    )
    port = await host.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield RunningService(host, port, channel)
    finally:
        await host.stop()
