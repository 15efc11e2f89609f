"""Wiring of the Device Adapter: its settings, streams, publishers and servicer."""

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc
from warmhouse.device_adapter.v1 import device_adapter_pb2_grpc

from services.device_adapter.authentication import DeviceAuthenticator
from services.device_adapter.connections import (
    HEATING_STATUSES_PER_MINUTE,
    SAMPLES_PER_SECOND,
    Connections,
    ConnectionSettings,
)
from services.device_adapter.description import AUTHENTICATE_DEVICE, DESCRIPTION
from services.device_adapter.events import EventPublisher, jetstream_publisher
from services.device_adapter.grpc_api import DeviceAdapterService
from services.device_adapter.liveness import LivenessSweeper
from services.device_adapter.presence import PresencePublisher, lease_for
from services.device_adapter.routing import LiveClient, LiveRoutes
from services.device_adapter.streams import StreamRegistry
from services.device_adapter.telemetry import TelemetryPublisher
from services.device_adapter.throttle import FailedConnectThrottle
from services.runtime.config import Environment, RuntimeSettings
from services.runtime.server import Runtime, ServiceDefinition, Worker

log = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 5
PRESENCE_SECONDS = 5
HELLO_SECONDS = 10
AUTH_FAILURES_PER_MINUTE = 10
# Of the drain time, what ending the streams (and publishing their ends) may take.
SHUTDOWN_SHARE = 0.5
MIN_SHUTDOWN_SECONDS = 0.5
MAX_SHUTDOWN_SECONDS = 5.0
# The grpc server's options. Hardware is outside our trust boundary: a frame
# is tens of bytes, so a larger one ends its stream (RESOURCE_EXHAUSTED, from
# grpc itself). A connection without a stream is closed after 30 s; one with
# streams is pinged after a minute of quiet and closed when the peer does not
# answer within 20 s. Streams per connection stay unlimited: a simulator
# fleet multiplexes 100 devices on one channel.
MAX_RECEIVE_MESSAGE_BYTES = 64 * 1024
SERVER_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_receive_message_length", MAX_RECEIVE_MESSAGE_BYTES),
    ("grpc.max_connection_idle_ms", 30_000),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
)


@dataclass(frozen=True)
class AdapterSettings:
    # Where DeviceService listens (AuthenticateDevice).
    device_address: str
    heartbeat_seconds: int = HEARTBEAT_SECONDS
    presence_seconds: int = PRESENCE_SECONDS
    hello_seconds: int = HELLO_SECONDS
    auth_failures_per_minute: int = AUTH_FAILURES_PER_MINUTE
    # Each stream's sustained telemetry rate (five seconds of it at once).
    samples_per_second: int = SAMPLES_PER_SECOND
    # Each heating device's sustained HeatingStatus rate (a burst of 10 at once).
    heating_statuses_per_minute: int = HEATING_STATUSES_PER_MINUTE

    @classmethod
    def from_environment(cls, env: Environment) -> "AdapterSettings":
        prefix = "WARMHOUSE_DEVICE_ADAPTER_"
        return cls(
            device_address=env.service_address("device"),
            heartbeat_seconds=env.integer(f"{prefix}HEARTBEAT_SECONDS", HEARTBEAT_SECONDS, 1),
            presence_seconds=env.integer(f"{prefix}PRESENCE_SECONDS", PRESENCE_SECONDS, 1),
            hello_seconds=env.integer(f"{prefix}HELLO_SECONDS", HELLO_SECONDS, 1),
            auth_failures_per_minute=env.integer(
                f"{prefix}AUTH_FAILURES_PER_MINUTE", AUTH_FAILURES_PER_MINUTE, 1
            ),
            samples_per_second=env.integer(f"{prefix}SAMPLES_PER_SECOND", SAMPLES_PER_SECOND, 1),
            heating_statuses_per_minute=env.integer(
                f"{prefix}HEATING_STATUSES_PER_MINUTE", HEATING_STATUSES_PER_MINUTE, 1
            ),
        )


@dataclass(frozen=True)
class DeviceAdapter:
    """The parts of one running adapter, for tests and benchmarks to look into
    (e.g. `telemetry.counters`, `len(registry)`)."""

    adapter_id: str
    registry: StreamRegistry
    connections: Connections
    telemetry: TelemetryPublisher
    presence: PresencePublisher
    liveness: LivenessSweeper


def shutdown_budget(grace: float | None) -> float:
    """How long ending the streams may take out of `grace` (None: no grace at all)."""
    if grace is None:
        return MIN_SHUTDOWN_SECONDS
    return min(MAX_SHUTDOWN_SECONDS, max(MIN_SHUTDOWN_SECONDS, grace * SHUTDOWN_SHARE))


def _ending_streams(connections: Connections) -> Callable[[float], Awaitable[None]]:
    """A stop hook: a stream lasts as long as its device stays, so the
    server's drain would only wait out its whole time and then cut the streams
    without a word. Ended first, each stream gets its status (UNAVAILABLE:
    reconnect elsewhere) and its DeviceDisconnected (ADAPTER_SHUTDOWN) is
    published while NATS is still connected."""

    async def end_streams(drain_seconds: float) -> None:
        await connections.shut_down(shutdown_budget(drain_seconds))

    return end_streams


def definition(
    settings: AdapterSettings, *, on_attach: Callable[[DeviceAdapter], None] | None = None
) -> ServiceDefinition:
    """The service; `on_attach` is handed its parts once they exist (tests, benchmarks)."""

    async def attach(server: grpc.aio.Server, runtime: Runtime) -> Sequence[Worker]:
        # Tells this process's reports apart from another replica's.
        adapter_id = str(uuid.uuid4())
        log.info("device adapter %s starting", adapter_id, extra={"adapterId": adapter_id})
        publish = jetstream_publisher(runtime.jetstream)
        events = EventPublisher(publish)
        registry = StreamRegistry()
        telemetry = TelemetryPublisher(publish, adapter_id)
        device = runtime.open_channel(
            settings.device_address, idempotent_methods={AUTHENTICATE_DEVICE}
        )
        connections = Connections(
            ConnectionSettings(
                settings.heartbeat_seconds,
                settings.hello_seconds,
                lease_seconds=lease_for(settings.presence_seconds),
                samples_per_second=settings.samples_per_second,
                heating_statuses_per_minute=settings.heating_statuses_per_minute,
            ),
            DeviceAuthenticator(device),
            LiveRoutes(runtime.nats),
            events,
            telemetry,
            FailedConnectThrottle(settings.auth_failures_per_minute),
            registry,
        )
        servicer = DeviceAdapterService(connections, LiveClient(runtime.nats))
        device_adapter_pb2_grpc.add_DeviceAdapterServiceServicer_to_server(servicer, server)
        runtime.stop_hooks.append(_ending_streams(connections))
        adapter = DeviceAdapter(
            adapter_id,
            registry,
            connections,
            telemetry,
            PresencePublisher(registry, events, adapter_id, settings.presence_seconds),
            LivenessSweeper(registry, settings.heartbeat_seconds),
        )
        if on_attach is not None:
            on_attach(adapter)
        return (adapter.telemetry, adapter.presence, adapter.liveness)

    return ServiceDefinition(
        description=DESCRIPTION, migrations=None, attach=attach, server_options=SERVER_OPTIONS
    )


def build(env: Environment) -> tuple[ServiceDefinition, RuntimeSettings]:
    settings = RuntimeSettings.from_environment(env, needs_database=False)
    return definition(AdapterSettings.from_environment(env)), settings
