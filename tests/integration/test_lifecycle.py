"""Start-up, health and graceful shutdown of a service."""

import asyncio
import os
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from nats.js.api import ConsumerConfig, DeliverPolicy
from warmhouse.user.v1 import user_pb2

from services.devstack.child_process import StartupError
from services.devstack.nats_process import NatsProcess
from services.devstack.postgres_process import PostgresProcess
from services.devstack.service_process import ServiceProcess
from services.runtime import database as db
from services.runtime.config import RuntimeSettings
from services.runtime.grpc_types import ServicerContext
from services.runtime.outbox import MSG_ID_HEADER, add_event, subject_of
from services.runtime.server import Runtime, ServiceHost, Worker
from services.user.bootstrap import UserSettings, definition
from tests import raw_grpc
from tests.integration.hosts import fresh_database
from tests.polling import eventually

HOLD = "/warmhouse.test.v1.SlowService/Hold"


async def test_stop_drains_in_flight_calls_then_refuses_new_ones(
    runtime_settings: RuntimeSettings, user_settings: UserSettings, database_url: str
) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def hold(request: bytes, context: ServicerContext) -> bytes:
        entered.set()
        await release.wait()
        return b"finished"

    user = definition(user_settings)

    async def attach(server: grpc.aio.Server, runtime: Runtime) -> Sequence[Worker]:
        slow = raw_grpc.handler(hold)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("warmhouse.test.v1.SlowService", {"Hold": slow}),)
        )
        return await user.attach(server, runtime)

    description = replace(
        user.description,
        grpc_services=(*user.description.grpc_services, "warmhouse.test.v1.SlowService"),
        public_methods=user.description.public_methods | {HOLD},
    )
    slow_service = replace(user, attach=attach, description=description)
    host = ServiceHost(slow_service, replace(runtime_settings, database_url=database_url))
    port = await host.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        serving = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert serving.status == health_pb2.HealthCheckResponse.SERVING
        in_flight = raw_grpc.unary(channel, HOLD)(b"")
        await entered.wait()
        stopping = asyncio.create_task(host.stop())
        # Deliberate: time in which stop() could wrongly finish with the call held.
        await asyncio.sleep(0.3)
        assert not stopping.done(), "stop() must wait for the in-flight call"
        release.set()
        assert await in_flight == b"finished"
        await stopping
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await raw_grpc.unary(channel, HOLD)(b"", timeout=2)
        assert refused.value.code() in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        )


def test_sigterm_stops_the_service_process_cleanly(
    postgres: PostgresProcess,
    nats_server: NatsProcess,
    signing_keys: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    secret = tmp_path / "service-secret"
    secret.write_text("a service secret for this test only, long enough")
    env = {
        **os.environ,
        "WARMHOUSE_DATABASE_URL": fresh_database(postgres),
        "WARMHOUSE_NATS_URL": nats_server.url,
        "WARMHOUSE_JWKS_FILE": str(signing_keys[1]),
        "WARMHOUSE_JWT_PRIVATE_KEY_FILE": str(signing_keys[0]),
        "WARMHOUSE_SERVICE_SECRET_FILE": str(secret),
    }
    service = ServiceProcess("user", "services.user", env, tmp_path / "user.log")
    service.start()
    pid = service.process.pid
    assert pid is not None
    service.stop()
    assert service.process.exit_code == 0, (tmp_path / "user.log").read_text()[-2000:]
    log = (tmp_path / "user.log").read_text()
    assert "draining in-flight calls" in log
    assert '"message": "stopped"' in log


def test_a_missing_setting_stops_start_up_with_a_clear_message(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARMHOUSE_")}
    service = ServiceProcess("user", "services.user", env, tmp_path / "user.log")
    with pytest.raises(StartupError, match="WARMHOUSE_JWT_PRIVATE_KEY_FILE is required"):
        service.start()


async def test_a_restarted_service_publishes_what_it_committed_before_dying(
    runtime_settings: RuntimeSettings, user_settings: UserSettings, database_url: str
) -> None:
    # The first life: the change and its event are committed, then the
    # process dies before its relay runs.
    database = await db.Database.connect(database_url)
    await db.apply_migrations(database, "runtime", db.RUNTIME_MIGRATIONS)
    event = user_pb2.UserRegistered(user_id=str(uuid.uuid4()), email="orphan@example.com")
    async with database.transaction() as connection:
        event_id = str(await add_event(connection, event))
    await database.close()
    # The second life publishes it.
    restarted_at = datetime.now(UTC)
    host = ServiceHost(
        definition(user_settings), replace(runtime_settings, database_url=database_url)
    )
    await host.start()
    try:
        jetstream = host.runtime.jetstream
        subscription = await jetstream.subscribe(
            subject_of(event),
            ordered_consumer=True,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=restarted_at
            ),
        )

        async def the_orphan() -> user_pb2.UserRegistered | None:
            # A timeout (nothing new yet) is retried, as are other events.
            message = await subscription.next_msg(timeout=0.2)
            if (message.headers or {}).get(MSG_ID_HEADER) != event_id:
                return None
            return user_pb2.UserRegistered.FromString(message.data)

        delivered = await eventually(the_orphan, what="the restarted service publishing it")
        await subscription.unsubscribe()
    finally:
        await host.stop()
    assert delivered == event
