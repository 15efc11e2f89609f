"""The Support service served in-process on real PostgreSQL and NATS: it starts (the
home directory's schema and consumers included), reports SERVING, and answers over
gRPC with the caller taken from the access token."""

from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from warmhouse.support.v1 import support_pb2, support_pb2_grpc
from warmhouse.user.v1 import user_pb2_grpc

from services.devstack.postgres_process import PostgresProcess
from services.runtime.config import RuntimeSettings
from services.support.bootstrap import SupportSettings, definition
from services.support.description import SUPPORT_SERVICE
from tests.accounts import refused, register, token_of
from tests.integration.hosts import RunningService, running_service

Code = grpc.StatusCode


@pytest.fixture
async def support_service(
    runtime_settings: RuntimeSettings, postgres: PostgresProcess
) -> AsyncIterator[RunningService]:
    async with running_service(definition(SupportSettings()), runtime_settings, postgres) as s:
        yield s


async def test_support_serves_tickets_to_their_author_only(
    support_service: RunningService, users: user_pb2_grpc.UserServiceStub
) -> None:
    health = health_pb2_grpc.HealthStub(support_service.channel)
    status = await health.Check(health_pb2.HealthCheckRequest(service=SUPPORT_SERVICE))
    assert status.status == health_pb2.HealthCheckResponse.SERVING

    stub = support_pb2_grpc.SupportServiceStub(support_service.channel)
    alice_id, alice_email = await register(users)  # type: ignore[arg-type]
    _, bob_email = await register(users)  # type: ignore[arg-type]
    alice = await token_of(users, alice_email)  # type: ignore[arg-type]
    bob = await token_of(users, bob_email)  # type: ignore[arg-type]

    await refused(
        stub.CreateTicket(support_pb2.CreateTicketRequest(user_id=alice_id, subject="s")),
        Code.UNAUTHENTICATED,
    )
    created = await stub.CreateTicket(
        support_pb2.CreateTicketRequest(
            user_id=alice_id, subject="No heat", description="Since noon", priority=support_pb2.HIGH
        ),
        metadata=alice,
    )
    assert created.status == support_pb2.OPEN
    got = await stub.GetTicket(
        support_pb2.GetTicketRequest(ticket_id=created.ticket_id), metadata=alice
    )
    assert got.ticket.priority == support_pb2.HIGH
    assert (
        got.ticket.first_response_due_time.ToSeconds() - got.ticket.create_time.ToSeconds() == 3600
    )
    assert not got.ticket.HasField("first_response_time")
    await refused(
        stub.GetTicket(support_pb2.GetTicketRequest(ticket_id=created.ticket_id), metadata=bob),
        Code.NOT_FOUND,
    )
    await refused(
        stub.UpdateTicket(
            support_pb2.UpdateTicketRequest(
                ticket_id=created.ticket_id, status=support_pb2.IN_PROGRESS
            ),
            metadata=alice,
        ),
        Code.PERMISSION_DENIED,
    )
    await refused(
        stub.UpdateTicket(
            support_pb2.UpdateTicketRequest(
                ticket_id=created.ticket_id, status=support_pb2.TICKET_STATUS_UNSPECIFIED
            ),
            metadata=alice,
        ),
        Code.INVALID_ARGUMENT,
    )
    closed = await stub.UpdateTicket(
        support_pb2.UpdateTicketRequest(ticket_id=created.ticket_id, status=support_pb2.CLOSED),
        metadata=alice,
    )
    assert closed.ticket.status == support_pb2.CLOSED
    await refused(
        stub.UpdateTicket(
            support_pb2.UpdateTicketRequest(ticket_id=created.ticket_id, status=support_pb2.OPEN),
            metadata=alice,
        ),
        Code.FAILED_PRECONDITION,
    )
    await refused(
        stub.CreateTicket(
            support_pb2.CreateTicketRequest(user_id=alice_id, subject="x\x00", description="d"),
            metadata=alice,
        ),
        Code.INVALID_ARGUMENT,
    )
    listed = await stub.ListTickets(support_pb2.ListTicketsRequest(), metadata=alice)
    assert [t.ticket_id for t in listed.tickets] == [created.ticket_id]
    await refused(
        stub.ListTickets(
            support_pb2.ListTicketsRequest(status=support_pb2.TicketStatus.ValueType(99)),
            metadata=alice,
        ),
        Code.INVALID_ARGUMENT,
    )


async def test_an_idempotency_key_opens_one_ticket(
    support_service: RunningService, users: user_pb2_grpc.UserServiceStub
) -> None:
    stub = support_pb2_grpc.SupportServiceStub(support_service.channel)
    alice_id, email = await register(users)  # type: ignore[arg-type]
    alice = await token_of(users, email)  # type: ignore[arg-type]
    request = support_pb2.CreateTicketRequest(user_id=alice_id, subject="s", description="d")
    keyed = (*alice, ("idempotency-key", "ticket-1"))
    first = await stub.CreateTicket(request, metadata=keyed)
    again = await stub.CreateTicket(request, metadata=keyed)
    assert first.ticket_id == again.ticket_id
    listed = await stub.ListTickets(support_pb2.ListTicketsRequest(), metadata=alice)
    assert len(listed.tickets) == 1
