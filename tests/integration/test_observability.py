"""Tracing across calls, health that follows dependencies, reflection."""

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from warmhouse.user.v1 import user_pb2, user_pb2_grpc

from services.devstack.nats_process import NatsProcess
from services.devstack.postgres_process import PostgresProcess
from services.runtime.channels import open_channel
from services.runtime.config import RuntimeSettings
from services.runtime.server import ServiceHost
from services.user.bootstrap import UserSettings, definition
from tests.integration.hosts import running_service
from tests.polling import eventually

JWKS_METHOD = "/warmhouse.user.v1.UserService/GetJwks"


async def test_a_call_to_another_service_joins_the_callers_trace(
    user_host: tuple[ServiceHost, int], spans: InMemorySpanExporter
) -> None:
    async with open_channel(
        f"127.0.0.1:{user_host[1]}", user_host[0].runtime.credentials
    ) as channel:
        with trace.get_tracer("test").start_as_current_span("caller") as caller:
            await user_pb2_grpc.UserServiceStub(channel).GetJwks(user_pb2.GetJwksRequest())
    trace_id = caller.get_span_context().trace_id
    joined = {
        span.kind
        for span in spans.get_finished_spans()
        if span.name == JWKS_METHOD and span.context.trace_id == trace_id
    }
    assert joined == {trace.SpanKind.CLIENT, trace.SpanKind.SERVER}


async def health_of(channel: grpc.aio.Channel) -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    return int(reply.status)


async def wait_for_health(channel: grpc.aio.Channel, status: int) -> None:
    async def reports_status() -> bool:
        return await health_of(channel) == status

    name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    await eventually(reports_status, what=f"health reporting {name}")


async def test_health_follows_the_broker(
    runtime_settings: RuntimeSettings,
    user_settings: UserSettings,
    postgres: PostgresProcess,
    private_nats: NatsProcess,
) -> None:
    # A service of its own on a broker of its own: stopping the session's
    # broker would fail whatever else runs against it.
    async with running_service(
        definition(user_settings), runtime_settings, postgres, nats_url=private_nats.url
    ) as user:
        assert await health_of(user.channel) == health_pb2.HealthCheckResponse.SERVING
        private_nats.stop()
        await wait_for_health(user.channel, health_pb2.HealthCheckResponse.NOT_SERVING)
        private_nats.start()
        await wait_for_health(user.channel, health_pb2.HealthCheckResponse.SERVING)


async def test_reflection_lists_the_services(user_channel: grpc.aio.Channel) -> None:
    # The reflection stubs' types know only synchronous channels.
    stub = reflection_pb2_grpc.ServerReflectionStub(user_channel)  # type: ignore[arg-type]
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    async for reply in stub.ServerReflectionInfo(iter([request])):  # type: ignore[operator]
        names = {service.name for service in reply.list_services_response.service}
        break
    assert {"warmhouse.user.v1.UserService", "grpc.health.v1.Health"} <= names
