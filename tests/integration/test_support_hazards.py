"""The safety chain on real PostgreSQL, handlers called directly: a dangerous reading
opens one URGENT ticket per episode for the home's owner; its clearance comments and
resolves it; late and repeated events change nothing; no known owner waits."""

import uuid
from datetime import timedelta

import asyncpg
import pytest
from sqlalchemy import text
from warmhouse.device.v1 import device_pb2
from warmhouse.support.v1 import support_pb2

from services.runtime import database as db
from services.runtime.messaging import EventContext
from services.runtime.timestamps import timestamp
from services.support.domain import Deadlines
from services.support.hazards import OWNER_PATIENCE, HazardTickets, NoOwnerYet
from services.support.records import EpisodeRecord
from services.support.repository import SupportRepository
from tests.fakes import T0
from tests.integration.test_support_tickets import Support, admin, home_with, user
from tests.integration.test_support_tickets import support as support

_TICKETS_OF = db.Query(
    text("SELECT id FROM tickets WHERE device_id = :device_id ORDER BY created_at")
)


@pytest.fixture
def hazards(support: Support) -> HazardTickets:
    return HazardTickets(Deadlines(), support.clock)


def detected(
    device: uuid.UUID,
    room: uuid.UUID,
    minute: int,
    hazard: "device_pb2.Hazard.ValueType" = device_pb2.GAS_LEAK,
) -> device_pb2.DangerousReadingDetected:
    return device_pb2.DangerousReadingDetected(
        device_id=str(device),
        space_id=str(room),
        hazard=hazard,
        reading=device_pb2.Reading(gas_alarm=True, sample_time=timestamp(T0)),
        occur_time=timestamp(T0 + timedelta(minutes=minute)),
    )


def cleared(
    device: uuid.UUID,
    room: uuid.UUID,
    minute: int,
    hazard: "device_pb2.Hazard.ValueType" = device_pb2.GAS_LEAK,
) -> device_pb2.DangerousReadingCleared:
    return device_pb2.DangerousReadingCleared(
        device_id=str(device),
        space_id=str(room),
        hazard=hazard,
        reading=device_pb2.Reading(gas_alarm=False, temperature_celsius=21.5),
        occur_time=timestamp(T0 + timedelta(minutes=minute)),
    )


async def deliver(
    support: Support,
    hazards: HazardTickets,
    event: device_pb2.DangerousReadingDetected | device_pb2.DangerousReadingCleared,
    attempt: int = 1,
) -> None:
    context = EventContext(event_id=str(uuid.uuid4()), subject="s", delivery_attempt=attempt)
    async with support.database.transaction() as connection:
        if isinstance(event, device_pb2.DangerousReadingDetected):
            await hazards.on_detected(connection, event, context)
        else:
            await hazards.on_cleared(connection, event, context)


async def tickets_of(support: Support, device: uuid.UUID) -> list[str]:
    async with support.database.connection() as connection:
        return [str(row["id"]) for row in await connection.fetch(_TICKETS_OF, device_id=device)]


async def test_a_gas_alarm_opens_one_urgent_ticket_for_the_owner_until_it_clears(
    support: Support, hazards: HazardTickets
) -> None:
    owner = user()
    _, room, device = await home_with(support.database, owner)
    await deliver(support, hazards, detected(device, room, 1))
    await deliver(support, hazards, detected(device, room, 2))  # the same episode
    [ticket_id] = await tickets_of(support, device)
    ticket = await support.tickets.get(owner, ticket_id)
    assert ticket.subject == "Gas leak alarm: Boiler in Kitchen"
    assert (ticket.priority, ticket.status) == ("URGENT", "OPEN")
    assert (ticket.space_id, ticket.device_id) == (room, device)
    assert ticket.first_response_due_at == ticket.created_at + timedelta(minutes=15)
    assert "gas alarm on" in ticket.description
    [opened] = await support.events(support_pb2.TicketOpened)
    assert (opened.user_id, opened.priority) == (owner.user_id, support_pb2.URGENT)

    await deliver(support, hazards, cleared(device, room, 5))
    resolved = await support.tickets.get(owner, ticket_id)
    assert resolved.status == "RESOLVED"
    [note] = (await support.comments.list_comments(owner, ticket_id, 0, ""))[0]
    assert note.author_id is None
    assert not note.internal
    assert note.message.startswith("Readings are back to normal at 2026-01-01 00:05:00 UTC")
    [change] = await support.events(support_pb2.TicketStatusChanged)
    assert (change.new_status, change.actor_id) == (support_pb2.RESOLVED, "")
    [added] = await support.events(support_pb2.TicketCommentAdded)
    assert (added.author_id, added.internal, added.user_id) == ("", False, owner.user_id)

    # A detection from before the clearance (delivered late) is over already.
    await deliver(support, hazards, detected(device, room, 3))
    assert len(await tickets_of(support, device)) == 1
    # A new episode opens a new ticket; another hazard is its own episode.
    await deliver(support, hazards, detected(device, room, 10))
    await deliver(support, hazards, detected(device, room, 10, device_pb2.OVERHEATING))
    subjects = [
        (await support.tickets.get(owner, t)).subject for t in await tickets_of(support, device)
    ]
    assert subjects == [
        "Gas leak alarm: Boiler in Kitchen",
        "Gas leak alarm: Boiler in Kitchen",
        "Overheating: Boiler in Kitchen",
    ]


async def test_a_clearance_leaves_a_closed_ticket_alone_and_a_resolved_one_resolved(
    support: Support, hazards: HazardTickets
) -> None:
    owner, staff = user(), admin()
    _, room, device = await home_with(support.database, owner)
    await deliver(support, hazards, detected(device, room, 1))
    [ticket_id] = await tickets_of(support, device)
    await support.tickets.update(staff, ticket_id, "RESOLVED", None)
    await deliver(support, hazards, cleared(device, room, 2))
    assert (await support.tickets.get(owner, ticket_id)).status == "RESOLVED"
    assert len(await support.events(support_pb2.TicketStatusChanged)) == 1  # staff's move only
    assert len(await support.events(support_pb2.TicketCommentAdded)) == 1

    await deliver(support, hazards, detected(device, room, 3))
    [_, second] = await tickets_of(support, device)
    await support.tickets.update(owner, second, "CLOSED", None)
    await deliver(support, hazards, cleared(device, room, 4))
    assert (await support.tickets.get(owner, second)).status == "CLOSED"
    assert len(await support.events(support_pb2.TicketCommentAdded)) == 1


async def test_a_clearance_before_its_detection_makes_that_detection_a_no_op(
    support: Support, hazards: HazardTickets
) -> None:
    owner = user()
    _, room, device = await home_with(support.database, owner)
    await deliver(support, hazards, cleared(device, room, 5))
    await deliver(support, hazards, detected(device, room, 4))
    assert await tickets_of(support, device) == []
    await deliver(support, hazards, detected(device, room, 6))
    assert len(await tickets_of(support, device)) == 1


async def test_no_known_owner_waits_for_redelivery_and_names_fall_back_to_ids(
    support: Support, hazards: HazardTickets
) -> None:
    device, room = uuid.uuid4(), uuid.uuid4()
    with pytest.raises(NoOwnerYet):
        await deliver(support, hazards, detected(device, room, 1))
    assert await tickets_of(support, device) == []
    # Still no owner after many redeliveries: a home without one; given up, not retried forever.
    await deliver(support, hazards, detected(device, room, 1), attempt=OWNER_PATIENCE)
    assert await tickets_of(support, device) == []
    # The home's owner becomes known (Space's event arrives); the device's name does not.
    owner = user()
    _home, known_room, _ = await home_with(support.database, owner)
    await deliver(support, hazards, detected(device, known_room, 1, device_pb2.OVERHEATING))
    [ticket_id] = await tickets_of(support, device)
    ticket = await support.tickets.get(owner, ticket_id)
    assert ticket.subject == f"Overheating: device {device} in space {known_room}"
    assert ticket.user_id == uuid.UUID(owner.user_id)


async def test_the_episode_table_allows_one_open_episode_per_device_and_hazard(
    support: Support,
) -> None:
    device = uuid.uuid4()
    async with support.database.transaction() as connection:
        await SupportRepository(connection).add_episode(
            EpisodeRecord(uuid.uuid4(), device, "GAS_LEAK", None, T0, None)
        )
    with pytest.raises(asyncpg.UniqueViolationError, match="hazard_episodes_one_open"):
        async with support.database.transaction() as connection:
            await SupportRepository(connection).add_episode(
                EpisodeRecord(uuid.uuid4(), device, "GAS_LEAK", None, T0, None)
            )
