"""Support's use cases on real PostgreSQL, handlers called directly: links checked
against the home directory, who sees what, moves serialized on the ticket's row,
comments that answer or reopen, and the SLA sweep announcing each breach once."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from google.protobuf.message import Message
from sqlalchemy import text
from warmhouse.device.v1 import device_pb2
from warmhouse.space.v1 import space_pb2
from warmhouse.support.v1 import support_pb2

from services.runtime import database as db
from services.runtime import home_directory as directory
from services.runtime.auth import Caller
from services.runtime.errors import DomainError, NotFound, PermissionDenied, Throttled
from services.runtime.messaging import EventContext
from services.runtime.pagination import PageTokens
from services.runtime.timestamps import timestamp
from services.runtime.unit_of_work import DatabaseUnitOfWork
from services.support.comments import CommentHandlers
from services.support.domain import Deadlines, Limits
from services.support.repository import SupportRepository
from services.support.sla import mark_breaches
from services.support.tickets import TicketHandlers
from tests.fakes import T0, FakeClock

MIGRATIONS = Path(__file__).parents[2] / "services" / "support" / "migrations"
CONTEXT = EventContext(event_id="e", subject="s")
M = TypeVar("M", bound=Message)
_OUTBOX = db.Query(text("SELECT payload FROM outbox WHERE subject = :subject ORDER BY created_at"))


class _QuietRelay:
    """The outbox relay's place: events stay in the outbox table, which is what is checked."""

    def wake(self) -> None:
        return None


def user() -> Caller:
    return Caller(str(uuid.uuid4()), "USER", "s")


def admin() -> Caller:
    return Caller(str(uuid.uuid4()), "ADMIN", "s")


@dataclass
class Support:
    database: db.Database
    clock: FakeClock
    tickets: TicketHandlers
    comments: CommentHandlers
    uow: DatabaseUnitOfWork[SupportRepository]

    async def events(self, kind: type[M]) -> list[M]:
        async with self.database.connection() as connection:
            rows = await connection.fetch(_OUTBOX, subject=kind.DESCRIPTOR.full_name)
        return [kind.FromString(row["payload"]) for row in rows]

    async def open(self, by: Caller, subject: str = "Radiator cold", **fields: object) -> str:
        request = support_pb2.CreateTicketRequest(
            user_id=by.user_id, subject=subject, description="It is cold.\nPlease help."
        )
        for name, value in fields.items():
            setattr(request, name, value)
        response = await self.tickets.create(by, None, request, None)
        return response.ticket_id


async def prepared(database_url: str) -> db.Database:
    database = await db.Database.connect(database_url, pool_size=4)
    await db.apply_migrations(database, "runtime", db.RUNTIME_MIGRATIONS)
    await db.apply_migrations(database, *directory.MIGRATIONS)
    await db.apply_migrations(database, "support", MIGRATIONS)
    return database


@pytest.fixture
async def support(database_url: str) -> AsyncIterator[Support]:
    database = await prepared(database_url)
    clock = FakeClock(T0, tick=timedelta(milliseconds=1))
    uow = DatabaseUnitOfWork(database, _QuietRelay(), SupportRepository)  # type: ignore[arg-type]
    tokens = PageTokens(b"support integration tests")
    try:
        yield Support(
            database,
            clock,
            TicketHandlers(uow, tokens, Deadlines(), clock),
            CommentHandlers(uow, tokens, clock),
            uow,
        )
    finally:
        await database.close()


async def home_with(
    database: db.Database, owner: Caller, device_name: str = "Boiler"
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """A home owned by `owner` with a room "Kitchen" and a device in it: (home, room, device)."""
    home, room, device = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    at = timestamp(T0 - timedelta(days=1))
    async with database.transaction() as connection:
        await directory.on_space_created(
            connection,
            space_pb2.SpaceCreated(space_id=str(home), name="Home", occur_time=at),
            CONTEXT,
        )
        await directory.on_space_created(
            connection,
            space_pb2.SpaceCreated(
                space_id=str(room), parent_space_id=str(home), name="Kitchen", occur_time=at
            ),
            CONTEXT,
        )
        await directory.on_member_added(
            connection,
            space_pb2.SpaceMemberAdded(
                space_id=str(home),
                user_id=owner.user_id,
                role=space_pb2.OWNER,
                version=1,
                occur_time=at,
            ),
            CONTEXT,
        )
        await directory.on_device_changed(
            connection,
            device_pb2.DeviceRegistered(
                device_id=str(device), space_id=str(room), name=device_name, occur_time=at
            ),
            CONTEXT,
        )
    return home, room, device


async def test_a_ticket_opens_with_its_deadline_and_announces_itself(support: Support) -> None:
    alice = user()
    _home, room, device = await home_with(support.database, alice)
    ticket_id = await support.open(alice, space_id=str(room), device_id=str(device))
    ticket = await support.tickets.get(alice, ticket_id)
    assert (ticket.status, ticket.priority) == ("OPEN", "NORMAL")
    assert ticket.first_response_due_at == ticket.created_at + timedelta(hours=8)
    assert (ticket.space_id, ticket.device_id) == (room, device)
    assert ticket.description == "It is cold.\nPlease help."
    [opened] = await support.events(support_pb2.TicketOpened)
    assert opened.ticket_id == ticket_id
    assert opened.user_id == alice.user_id
    assert opened.priority == support_pb2.NORMAL
    assert (opened.space_id, opened.device_id) == (str(room), str(device))
    assert opened.subject == "Radiator cold"
    assert opened.first_response_due_time == timestamp(ticket.first_response_due_at)


async def test_a_space_or_device_the_user_cannot_see_is_not_found(support: Support) -> None:
    alice, bob = user(), user()
    _, room, device = await home_with(support.database, alice)
    for fields in ({"space_id": str(room)}, {"device_id": str(device)}):
        with pytest.raises(NotFound):
            await support.open(bob, **fields)
    with pytest.raises(NotFound):
        await support.open(alice, device_id=str(uuid.uuid4()))
    # An ADMIN opening for alice is checked against alice's homes, not the ADMIN's.
    staff = admin()
    request = support_pb2.CreateTicketRequest(
        user_id=alice.user_id, subject="s", description="d", device_id=str(device)
    )
    created = await support.tickets.create(staff, None, request, "URGENT")
    assert (await support.tickets.get(alice, created.ticket_id)).priority == "URGENT"
    assert await support.events(support_pb2.TicketOpened) != []


async def test_users_open_and_see_only_their_own_tickets(support: Support) -> None:
    alice, bob = user(), user()
    with pytest.raises(PermissionDenied):
        await support.tickets.create(
            bob,
            None,
            support_pb2.CreateTicketRequest(user_id=alice.user_id, subject="s", description="d"),
            None,
        )
    ticket_id = await support.open(alice)
    with pytest.raises(NotFound):
        await support.tickets.get(bob, ticket_id)
    with pytest.raises(NotFound):
        await support.comments.list_comments(bob, ticket_id, 0, "")
    with pytest.raises(NotFound):
        await support.tickets.update(bob, ticket_id, "CLOSED", None)
    assert (await support.tickets.get(admin(), ticket_id)).id == uuid.UUID(ticket_id)


async def test_listing_is_newest_first_in_pages_and_filtered(support: Support) -> None:
    alice, bob, staff = user(), user(), admin()
    mine = [await support.open(alice, subject=f"t{i}") for i in range(5)]
    theirs = await support.open(bob)
    await support.tickets.update(staff, mine[1], None, "HIGH")
    await support.tickets.update(staff, mine[2], "IN_PROGRESS", None)

    seen, token = [], ""
    while True:
        page, token = await support.tickets.list_tickets(alice, "", None, None, 2, token)
        seen += [str(t.id) for t in page]
        if not token:
            break
    assert seen == mine[::-1]
    with pytest.raises(PermissionDenied):
        await support.tickets.list_tickets(alice, bob.user_id, None, None, 0, "")
    everyone, _ = await support.tickets.list_tickets(staff, "", None, None, 100, "")
    assert {str(t.id) for t in everyone} == {*mine, theirs}
    high, _ = await support.tickets.list_tickets(staff, "", None, "HIGH", 100, "")
    assert [str(t.id) for t in high] == [mine[1]]
    working, _ = await support.tickets.list_tickets(alice, "", "IN_PROGRESS", None, 100, "")
    assert [str(t.id) for t in working] == [mine[2]]


async def test_concurrent_moves_serialize_and_announce_once(support: Support) -> None:
    alice = user()
    ticket_id = await support.open(alice)
    staff = [admin() for _ in range(6)]
    results = await asyncio.gather(
        *(support.tickets.update(s, ticket_id, "IN_PROGRESS", None) for s in staff)
    )
    assert {r.status for r in results} == {"IN_PROGRESS"}
    [changed] = await support.events(support_pb2.TicketStatusChanged)
    assert (changed.old_status, changed.new_status) == (support_pb2.OPEN, support_pb2.IN_PROGRESS)
    assert changed.actor_id in {s.user_id for s in staff}
    assert changed.user_id == alice.user_id
    assert changed.subject == "Radiator cold"


async def test_the_author_closes_and_closed_is_final(support: Support) -> None:
    alice, staff = user(), admin()
    ticket_id = await support.open(alice)
    with pytest.raises(PermissionDenied):
        await support.tickets.update(alice, ticket_id, "IN_PROGRESS", None)
    with pytest.raises(PermissionDenied):
        await support.tickets.update(alice, ticket_id, None, "URGENT")
    closed = await support.tickets.update(alice, ticket_id, "CLOSED", None)
    assert closed.status == "CLOSED"
    with pytest.raises(DomainError) as refused:
        await support.tickets.update(staff, ticket_id, "OPEN", None)
    assert refused.value.reason == "STATUS_TRANSITION_NOT_ALLOWED"
    with pytest.raises(DomainError) as no_comment:
        await support.comments.create(
            staff, None, support_pb2.CreateCommentRequest(ticket_id=ticket_id, message="hi")
        )
    assert no_comment.value.reason == "TICKET_CLOSED"
    changes = await support.events(support_pb2.TicketStatusChanged)
    assert [(c.new_status, c.actor_id) for c in changes] == [(support_pb2.CLOSED, alice.user_id)]


async def test_a_priority_change_moves_the_deadline_until_answered(support: Support) -> None:
    alice, staff = user(), admin()
    ticket_id = await support.open(alice)
    created = await support.tickets.get(alice, ticket_id)
    urgent = await support.tickets.update(staff, ticket_id, None, "URGENT")
    assert urgent.first_response_due_at == created.created_at + timedelta(minutes=15)
    await support.comments.create(
        staff, None, support_pb2.CreateCommentRequest(ticket_id=ticket_id, message="On it")
    )
    low = await support.tickets.update(staff, ticket_id, None, "LOW")
    assert low.priority == "LOW"
    assert low.first_response_due_at == urgent.first_response_due_at


async def test_comments_answer_reopen_and_hide_internal_notes(support: Support) -> None:
    alice, staff = user(), admin()
    ticket_id = await support.open(alice)

    def comment(message: str, internal: bool = False) -> support_pb2.CreateCommentRequest:
        return support_pb2.CreateCommentRequest(
            ticket_id=ticket_id, message=message, internal=internal
        )

    with pytest.raises(PermissionDenied):
        await support.comments.create(alice, None, comment("note", internal=True))
    await support.comments.create(alice, None, comment("More detail"))
    await support.comments.create(staff, None, comment("Looks like the valve", internal=True))
    untouched = await support.tickets.get(alice, ticket_id)
    assert untouched.first_response_at is None  # neither the author's nor a note answers
    support.clock.advance(hours=9)  # past NORMAL's 8 hours
    answer = await support.comments.create(staff, None, comment("We'll send someone"))
    answered = await support.tickets.get(alice, ticket_id)
    assert answered.first_response_at == answer.comment.create_time.ToDatetime(
        tzinfo=answered.created_at.tzinfo
    )
    assert answered.sla_breached
    [breach] = await support.events(support_pb2.TicketSlaBreached)
    assert breach.ticket_id == ticket_id
    assert await mark_breaches(support.uow, support.clock) == 0  # announced once only

    await support.tickets.update(staff, ticket_id, "RESOLVED", None)
    await support.comments.create(alice, None, comment("Still cold!"))
    assert (await support.tickets.get(alice, ticket_id)).status == "OPEN"
    changes = await support.events(support_pb2.TicketStatusChanged)
    assert [(c.old_status, c.new_status, c.actor_id) for c in changes] == [
        (support_pb2.OPEN, support_pb2.RESOLVED, staff.user_id),
        (support_pb2.RESOLVED, support_pb2.OPEN, alice.user_id),
    ]

    users_view, _ = await support.comments.list_comments(alice, ticket_id, 0, "")
    assert [c.message for c in users_view] == ["More detail", "We'll send someone", "Still cold!"]
    staff_view, token = await support.comments.list_comments(staff, ticket_id, 2, "")
    rest, last = await support.comments.list_comments(staff, ticket_id, 2, token)
    assert [c.message for c in staff_view + rest] == [
        "More detail",
        "Looks like the valve",
        "We'll send someone",
        "Still cold!",
    ]
    assert last == ""
    added = await support.events(support_pb2.TicketCommentAdded)
    assert [c.internal for c in added] == [False, True, False, False]
    assert {c.author_id for c in added} == {alice.user_id, staff.user_id}


async def test_concurrent_sla_sweeps_announce_each_breach_once(support: Support) -> None:
    alice = user()
    late = [await support.open(alice) for _ in range(5)]
    answered = await support.open(alice)
    await support.comments.create(
        admin(), None, support_pb2.CreateCommentRequest(ticket_id=answered, message="Hello")
    )
    resolved = await support.open(alice)
    await support.tickets.update(admin(), resolved, "RESOLVED", None)
    assert await mark_breaches(support.uow, support.clock) == 0  # nothing due yet
    support.clock.advance(hours=8, minutes=1)
    counts = await asyncio.gather(*(mark_breaches(support.uow, support.clock) for _ in range(4)))
    assert sum(counts) == 5
    breaches = await support.events(support_pb2.TicketSlaBreached)
    assert sorted(b.ticket_id for b in breaches) == sorted(late)
    assert {b.priority for b in breaches} == {support_pb2.NORMAL}
    for ticket_id in late:
        assert (await support.tickets.get(alice, ticket_id)).sla_breached
    assert not (await support.tickets.get(alice, answered)).sla_breached
    assert await mark_breaches(support.uow, support.clock) == 0


async def test_a_user_may_not_ask_for_urgent_but_support_staff_may(support: Support) -> None:
    alice = user()
    mine = support_pb2.CreateTicketRequest(
        subject="Cold", description="Please", priority=support_pb2.URGENT
    )
    with pytest.raises(PermissionDenied) as refused:
        await support.tickets.create(alice, None, mine, "URGENT")
    assert refused.value.reason == "URGENT_RESERVED"
    staff = admin()
    request = support_pb2.CreateTicketRequest(
        user_id=alice.user_id,
        subject="Gas smell",
        description="Called in",
        priority=support_pb2.URGENT,
    )
    opened = await support.tickets.create(staff, None, request, "URGENT")
    assert (await support.tickets.get(alice, opened.ticket_id)).priority == "URGENT"


async def test_open_tickets_and_comments_are_capped_even_for_a_burst(support: Support) -> None:
    limits = Limits(open_tickets_per_user=3, comments_per_ticket=2)
    tokens = PageTokens(b"support integration tests")
    tickets = TicketHandlers(support.uow, tokens, Deadlines(), support.clock, limits=limits)
    comments = CommentHandlers(support.uow, tokens, support.clock, limits=limits)
    alice = user()

    async def open_one() -> str:
        request = support_pb2.CreateTicketRequest(subject="Cold", description="Again")
        return (await tickets.create(alice, None, request, None)).ticket_id

    outcomes = await asyncio.gather(*(open_one() for _ in range(8)), return_exceptions=True)
    opened = [o for o in outcomes if isinstance(o, str)]
    refused = [o for o in outcomes if isinstance(o, Throttled)]
    assert (len(opened), len(refused)) == (3, 5), outcomes
    assert all(r.reason == "QUOTA_EXCEEDED" for r in refused)
    # Closing one makes room; support staff are not counted.
    await tickets.update(alice, opened[0], "CLOSED", None)
    await open_one()
    staff_request = support_pb2.CreateTicketRequest(
        user_id=alice.user_id, subject="From staff", description="Noted"
    )
    await tickets.create(admin(), None, staff_request, None)

    def say(text: str) -> support_pb2.CreateCommentRequest:
        return support_pb2.CreateCommentRequest(ticket_id=opened[1], message=text)

    await comments.create(alice, None, say("one"))
    await comments.create(alice, None, say("two"))
    with pytest.raises(Throttled):
        await comments.create(alice, None, say("three"))
    await comments.create(admin(), None, say("Support may still answer"))
