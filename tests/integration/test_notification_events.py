"""Notification's event handlers and REST handlers on real PostgreSQL: one
notification per event and recipient, hazard episodes, the contacts
projection, the inbox and preferences."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from google.protobuf.message import Message
from sqlalchemy import text
from warmhouse.billing.v1 import billing_pb2
from warmhouse.device.v1 import device_pb2
from warmhouse.notification.v1 import notification_pb2 as pb
from warmhouse.space.v1 import space_pb2
from warmhouse.support.v1 import support_pb2
from warmhouse.user.v1 import user_pb2

from services.devstack.postgres_process import PostgresProcess
from services.notification.bootstrap import MIGRATIONS
from services.notification.dispatcher import CONTACT_UNKNOWN
from services.notification.events import NotificationEvents
from services.notification.handlers import NotificationHandlers
from services.notification.repository import NotificationRepository
from services.runtime import database as db
from services.runtime import home_directory
from services.runtime.auth import Caller
from services.runtime.database import Connection, Database, Query, Record
from services.runtime.errors import InvalidArgument, NotFound, PermissionDenied
from services.runtime.messaging import EventContext
from services.runtime.pagination import PageTokens
from services.runtime.timestamps import timestamp
from services.runtime.unit_of_work import DatabaseUnitOfWork
from tests.integration.hosts import fresh_database

E = TypeVar("E", bound=Message)
Handler = Callable[[Connection, E, EventContext], Awaitable[None]]
NOW = datetime(2025, 1, 10, 9, 0, tzinfo=UTC)


class QuietRelay:
    """The outbox relay's place: events stay in the outbox table, which is what is checked."""

    def wake(self) -> None:
        return None


class Notifications:
    """A migrated database with the service's handlers on it."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.wakes = 0
        self.now = NOW
        self.events = NotificationEvents(wake=self._woken, clock=lambda: self.now)
        self.uow = DatabaseUnitOfWork(database, QuietRelay(), NotificationRepository)  # type: ignore[arg-type]
        self.handlers = NotificationHandlers(
            self.uow, PageTokens(b"k" * 32), clock=lambda: self.now
        )

    def _woken(self) -> None:
        self.wakes += 1

    async def feed(self, handle: Handler[E], event: E, event_id: str | None = None) -> None:
        """Deliver `event` as EventConsumer does: in a transaction, then after-commit actions."""
        context = EventContext(
            event_id=event_id or str(uuid.uuid4()), subject=str(event.DESCRIPTOR.full_name)
        )
        async with self.database.transaction() as connection:
            await handle(connection, event, context)
        for action in context.committed_actions:
            action()

    async def rows(self, sql: str, **params: Any) -> list[Record]:
        async with self.database.connection() as connection:
            return await connection.fetch(Query(text(sql)), **params)

    async def notifications_of(self, user: uuid.UUID, *, welcome: bool = False) -> list[Record]:
        """The user's notifications, oldest first (but the welcome, unless asked for)."""
        return await self.rows(
            "SELECT * FROM notifications WHERE user_id = :user_id"
            " AND (category <> 'ACCOUNT' OR :welcome) ORDER BY created_at, title",
            user_id=user,
            welcome=welcome,
        )

    async def deliveries_of(self, user: uuid.UUID) -> list[Record]:
        """The user's deliveries but the welcome's, by channel."""
        return await self.rows(
            "SELECT d.* FROM deliveries d JOIN notifications n ON n.id = d.notification_id"
            " WHERE d.user_id = :user_id AND n.category <> 'ACCOUNT' ORDER BY d.channel",
            user_id=user,
        )

    # Making people and homes.

    async def person(
        self, locale: str = "en", time_zone: str = "Europe/Moscow", phone: str = "+79990001122"
    ) -> uuid.UUID:
        user = uuid.uuid4()
        await self.feed(
            self.events.on_user_registered,
            user_pb2.UserRegistered(
                user_id=str(user),
                email=f"{user.hex[:8]}@example.com",
                phone=phone,
                locale=locale,
                time_zone=time_zone,
                occur_time=timestamp(self.now - timedelta(days=1)),
            ),
        )
        return user

    async def home(self, *members: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
        """A home with a room, a heater in the room and these members; (home, room, device)."""
        home, room, device = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        at = timestamp(self.now - timedelta(hours=1))
        await self.feed(
            home_directory.on_space_created,
            space_pb2.SpaceCreated(space_id=str(home), name="Dacha", occur_time=at),
        )
        await self.feed(
            home_directory.on_space_created,
            space_pb2.SpaceCreated(
                space_id=str(room), parent_space_id=str(home), name="Kitchen", occur_time=at
            ),
        )
        for version, member in enumerate(members, start=1):
            await self.feed(
                home_directory.on_member_added,
                space_pb2.SpaceMemberAdded(
                    space_id=str(home),
                    user_id=str(member),
                    role=space_pb2.OWNER if version == 1 else space_pb2.GUEST,
                    version=version,
                    occur_time=at,
                ),
            )
        await self.feed(
            home_directory.on_device_changed,
            device_pb2.DeviceRegistered(
                device_id=str(device), space_id=str(room), name="Kitchen heater", occur_time=at
            ),
        )
        return home, room, device


@pytest.fixture
async def notifications(postgres: PostgresProcess) -> AsyncIterator[Notifications]:
    database = await Database.connect(fresh_database(postgres), pool_size=8)
    try:
        await db.apply_migrations(database, "runtime", db.RUNTIME_MIGRATIONS)
        component, directory = home_directory.MIGRATIONS
        await db.apply_migrations(database, component, directory)
        await db.apply_migrations(database, "notification", MIGRATIONS)
        yield Notifications(database)
    finally:
        await database.close()


def detected(
    device: uuid.UUID, room: uuid.UUID, at: datetime, hazard: int = device_pb2.GAS_LEAK
) -> device_pb2.DangerousReadingDetected:
    return device_pb2.DangerousReadingDetected(
        device_id=str(device),
        space_id=str(room),
        hazard=hazard,  # type: ignore[arg-type]
        reading=device_pb2.Reading(gas_alarm=True),
        occur_time=timestamp(at),
    )


def cleared(
    device: uuid.UUID, room: uuid.UUID, at: datetime, hazard: int = device_pb2.GAS_LEAK
) -> device_pb2.DangerousReadingCleared:
    return device_pb2.DangerousReadingCleared(
        device_id=str(device),
        space_id=str(room),
        hazard=hazard,  # type: ignore[arg-type]
        reading=device_pb2.Reading(gas_alarm=False),
        occur_time=timestamp(at),
    )


async def test_a_gas_leak_reaches_every_member_by_every_channel_once(
    notifications: Notifications,
) -> None:
    n = notifications
    owner, guest = await n.person("ru"), await n.person("en")
    _, room, device = await n.home(owner, guest)
    event = detected(device, room, NOW)
    event_id = str(uuid.uuid4())
    wakes = n.wakes
    await n.feed(n.events.on_danger_detected, event, event_id)
    # Redelivered with the same id, and published again under a new one.
    await n.feed(n.events.on_danger_detected, event, event_id)
    await n.feed(n.events.on_danger_detected, event)
    for user, language_fact in ((owner, "покиньте помещение"), (guest, "Leave the building")):
        [notification] = await n.notifications_of(user)
        assert (notification["category"], notification["priority"]) == ("SAFETY", "CRITICAL")
        assert language_fact in notification["body"]
        assert "Kitchen heater" in notification["body"]
        assert "Kitchen" in notification["body"]
        assert "Dacha" in notification["title"]
        deliveries = await n.deliveries_of(user)
        assert [d["channel"] for d in deliveries] == ["EMAIL", "PUSH", "SMS"]
        assert all(d["next_attempt_at"] == NOW and d["critical"] for d in deliveries)
    assert n.wakes == wakes + 1  # only the commit that made deliveries wakes the dispatcher


async def test_hazard_episodes_one_alarm_and_one_all_clear(notifications: Notifications) -> None:
    n = notifications
    owner = await n.person()
    _, room, device = await n.home(owner)
    # A Cleared with no episode open: nothing.
    await n.feed(n.events.on_danger_cleared, cleared(device, room, NOW - timedelta(minutes=5)))
    assert await n.notifications_of(owner) == []
    await n.feed(n.events.on_danger_detected, detected(device, room, NOW))
    # Another Detected while open (a new id): nothing more.
    await n.feed(n.events.on_danger_detected, detected(device, room, NOW + timedelta(seconds=5)))
    # Another hazard on the same device is its own episode.
    await n.feed(n.events.on_danger_detected, detected(device, room, NOW, device_pb2.OVERHEATING))
    await n.feed(n.events.on_danger_cleared, cleared(device, room, NOW + timedelta(minutes=1)))
    # The Detected of the episode just over, arriving late: nothing.
    await n.feed(n.events.on_danger_detected, detected(device, room, NOW + timedelta(seconds=30)))
    await n.feed(n.events.on_danger_cleared, cleared(device, room, NOW + timedelta(minutes=2)))
    titles = [row["title"] for row in await n.notifications_of(owner)]
    assert len(titles) == 3
    assert sum("gas leak" in t and "DANGER" in t for t in titles) == 1
    assert sum("overheating" in t for t in titles) == 1
    assert sum(t.startswith("All clear") for t in titles) == 1
    # A new episode after the all-clear alarms again.
    await n.feed(n.events.on_danger_detected, detected(device, room, NOW + timedelta(minutes=3)))
    assert len(await n.notifications_of(owner)) == 4


async def test_an_all_clear_handled_before_its_alarm_keeps_that_alarm_from_opening_an_episode(
    notifications: Notifications,
) -> None:
    n = notifications
    owner = await n.person()
    _, room, device = await n.home(owner)
    await n.feed(n.events.on_danger_cleared, cleared(device, room, NOW + timedelta(minutes=1)))
    await n.feed(n.events.on_danger_detected, detected(device, room, NOW))
    assert await n.notifications_of(owner) == []
    # The next leak is not taken for the one already over: it alarms.
    await n.feed(n.events.on_danger_detected, detected(device, room, NOW + timedelta(minutes=2)))
    assert len(await n.notifications_of(owner)) == 1


async def test_device_status_goes_to_members_by_their_preferred_channels(
    notifications: Notifications,
) -> None:
    n = notifications
    owner, stranger = await n.person(), await n.person()
    _, room, device = await n.home(owner)

    def status(new: int) -> device_pb2.DeviceStatusChanged:
        return device_pb2.DeviceStatusChanged(
            device_id=str(device),
            space_id=str(room),
            old_status=device_pb2.ONLINE,
            new_status=new,  # type: ignore[arg-type]
            occur_time=timestamp(NOW),
        )

    await n.feed(n.events.on_device_status_changed, status(device_pb2.ONLINE))
    assert await n.notifications_of(owner) == []
    await n.feed(n.events.on_device_status_changed, status(device_pb2.OFFLINE))
    await n.feed(n.events.on_device_status_changed, status(device_pb2.ERROR))
    rows = await n.notifications_of(owner)
    assert [(r["category"], r["priority"]) for r in rows] == [
        ("DEVICE_STATUS", "LOW"),
        ("DEVICE_STATUS", "NORMAL"),
    ]
    assert "Wi-Fi" in rows[0]["body"]
    assert "12:00 (Europe/Moscow)" in rows[0]["body"]  # 09:00 UTC in the user's zone
    assert sorted(d["channel"] for d in await n.deliveries_of(owner)) == [
        "EMAIL",
        "EMAIL",
        "PUSH",
        "PUSH",
    ]
    assert await n.notifications_of(stranger) == []


async def test_billing_and_support_events(notifications: Notifications) -> None:
    n = notifications
    user, agent = await n.person("ru"), uuid.uuid4()
    due = timestamp(NOW + timedelta(days=10))
    await n.feed(
        n.events.on_invoice_issued,
        billing_pb2.InvoiceIssued(
            invoice_id=str(uuid.uuid4()),
            user_id=str(user),
            amount=1500.0,
            currency="RUB",
            due_time=due,
        ),
    )
    await n.feed(
        n.events.on_payment_failed,
        billing_pb2.PaymentFailed(
            user_id=str(user), amount=1500.0, currency="RUB", failure_reason="card_declined"
        ),
    )
    ticket_id = str(uuid.uuid4())

    def comment(author: uuid.UUID | None, internal: bool = False) -> support_pb2.TicketCommentAdded:
        return support_pb2.TicketCommentAdded(
            ticket_id=ticket_id,
            user_id=str(user),
            subject="Холодно",
            author_id=str(author or ""),
            internal=internal,
        )

    def moved(
        actor: uuid.UUID | None, status: support_pb2.TicketStatus.ValueType
    ) -> support_pb2.TicketStatusChanged:
        return support_pb2.TicketStatusChanged(
            ticket_id=ticket_id,
            user_id=str(user),
            subject="Холодно",
            actor_id=str(actor or ""),
            new_status=status,
        )

    # The user's own comment, an internal note, the user closing it, and the
    # platform's own comment and move (an alarm's ticket resolved as it
    # cleared, which the all-clear already told): nothing.
    await n.feed(n.events.on_ticket_comment_added, comment(user))
    await n.feed(n.events.on_ticket_comment_added, comment(agent, internal=True))
    await n.feed(n.events.on_ticket_status_changed, moved(user, support_pb2.CLOSED))
    await n.feed(n.events.on_ticket_comment_added, comment(None))
    await n.feed(n.events.on_ticket_status_changed, moved(None, support_pb2.RESOLVED))
    # Support answering and resolving: both.
    await n.feed(
        n.events.on_ticket_comment_added,
        comment(agent),
    )
    await n.feed(
        n.events.on_ticket_status_changed,
        moved(agent, support_pb2.RESOLVED),
    )
    rows = await n.notifications_of(user, welcome=True)
    got = sorted((r["category"], r["priority"]) for r in rows)
    assert got == [
        ("ACCOUNT", "NORMAL"),
        ("BILLING", "LOW"),
        ("BILLING", "NORMAL"),
        ("SUPPORT", "NORMAL"),
        ("SUPPORT", "NORMAL"),
    ]
    by_priority = {(r["category"], r["priority"]): r for r in rows}
    assert "Добро пожаловать" in by_priority["ACCOUNT", "NORMAL"]["title"]
    issued = by_priority["BILLING", "LOW"]
    assert "1\u00a0500,00 RUB" in issued["title"]
    assert "20.01.2025" in issued["body"]
    assert "card_declined" in by_priority["BILLING", "NORMAL"]["body"]
    support = sorted(r["title"] for r in rows if r["category"] == "SUPPORT")
    assert any("«Холодно»" in title and "ответила" in title for title in support)
    assert any("решено" in title for title in support)


async def test_contacts_projection_ignores_late_events_and_deactivation_silences(
    notifications: Notifications,
) -> None:
    n = notifications
    user = await n.person("en")
    later = timestamp(NOW)
    await n.feed(
        n.events.on_user_updated,
        user_pb2.UserUpdated(
            user_id=str(user),
            email="new@example.com",
            locale="ru",
            time_zone="Europe/Berlin",
            is_active=True,
            occur_time=later,
        ),
    )
    # An older update arriving late changes nothing.
    await n.feed(
        n.events.on_user_updated,
        user_pb2.UserUpdated(
            user_id=str(user),
            email="old@example.com",
            locale="en",
            is_active=True,
            occur_time=timestamp(NOW - timedelta(hours=1)),
        ),
    )
    [contact] = await n.rows("SELECT * FROM contacts WHERE user_id = :u", u=user)
    assert (contact["email"], contact["locale"], contact["time_zone"]) == (
        "new@example.com",
        "ru",
        "Europe/Berlin",
    )
    await n.feed(
        n.events.on_user_deactivated,
        user_pb2.UserDeactivated(user_id=str(user), occur_time=timestamp(NOW + timedelta(1))),
    )
    await n.feed(
        n.events.on_invoice_overdue,
        billing_pb2.InvoiceOverdue(user_id=str(user), amount=1, currency="RUB"),
    )
    assert [r["category"] for r in await n.notifications_of(user, welcome=True)] == ["ACCOUNT"]


async def test_a_registration_after_its_deactivation_sends_no_welcome(
    notifications: Notifications,
) -> None:
    n = notifications
    user = uuid.uuid4()
    await n.feed(
        n.events.on_user_deactivated,
        user_pb2.UserDeactivated(user_id=str(user), occur_time=timestamp(NOW)),
    )
    await n.feed(
        n.events.on_user_registered,
        user_pb2.UserRegistered(
            user_id=str(user), email="a@example.com", occur_time=timestamp(NOW - timedelta(1))
        ),
    )
    assert await n.notifications_of(user) == []


async def test_quiet_hours_and_digest_preferences_shape_the_deliveries(
    notifications: Notifications,
) -> None:
    n = notifications
    user = await n.person(time_zone="Europe/Moscow")
    caller = Caller(str(user), "USER", "s")
    wanted = pb.NotificationPreferences(
        categories=[
            pb.CategoryPreference(category=pb.SAFETY, channels=[pb.SMS]),
            pb.CategoryPreference(category=pb.SUPPORT, channels=[pb.EMAIL, pb.PUSH]),
            pb.CategoryPreference(category=pb.BILLING, channels=[pb.EMAIL], digest=True),
        ],
        quiet_hours=pb.QuietHours(start_time="10:00", end_time="14:00"),
        digest_time="19:00",
    )
    saved = await n.handlers.update_preferences(caller, str(user), wanted)
    assert saved.time_zone == "Europe/Moscow"
    agent = str(uuid.uuid4())
    # 12:00 in Moscow: inside quiet hours.
    await n.feed(
        n.events.on_ticket_comment_added,
        support_pb2.TicketCommentAdded(user_id=str(user), author_id=agent, subject="S"),
    )
    await n.feed(
        n.events.on_invoice_issued,
        billing_pb2.InvoiceIssued(user_id=str(user), amount=5, currency="RUB"),
    )
    rows = await n.rows(
        "SELECT n.category, d.channel, d.digest, d.next_attempt_at FROM deliveries d"
        " JOIN notifications n ON n.id = d.notification_id WHERE d.user_id = :u"
        " AND n.category <> 'ACCOUNT' ORDER BY n.category, d.channel",
        u=user,
    )
    assert [tuple(r.values()) for r in rows] == [
        ("BILLING", "EMAIL", True, datetime(2025, 1, 10, 16, 0, tzinfo=UTC)),
        ("SUPPORT", "EMAIL", False, NOW),
        ("SUPPORT", "PUSH", False, datetime(2025, 1, 10, 11, 0, tzinfo=UTC)),
    ]


async def test_inbox_listing_paging_unread_and_marking_read(notifications: Notifications) -> None:
    n = notifications
    user, other = await n.person(), await n.person()
    for minute in range(1, 5):
        n.now = NOW + timedelta(minutes=minute)
        await n.feed(
            n.events.on_invoice_issued,
            billing_pb2.InvoiceIssued(user_id=str(user), amount=minute, currency="RUB"),
        )
    me = Caller(str(user), "USER", "s")
    first, token = await n.handlers.list_notifications(me, "", False, 3, "")
    second, last = await n.handlers.list_notifications(me, "", False, 3, token)
    assert last == ""
    listed = [*first, *second]
    assert len(listed) == 5  # four invoices and the welcome, newest first
    assert [x.created_at for x in listed] == sorted((x.created_at for x in listed), reverse=True)
    assert all(len(x.deliveries) >= 1 for x in listed)
    read = await n.handlers.mark_read(me, str(listed[0].id))
    assert read.read_at == n.now
    n.now += timedelta(minutes=5)
    again = await n.handlers.mark_read(me, str(listed[0].id))
    assert again.read_at == read.read_at  # a no-op
    unread, _ = await n.handlers.list_notifications(me, "", True, 0, "")
    assert listed[0].id not in {x.id for x in unread}
    assert len(unread) == 4
    # Another's notification, or none, is not found; listing another's is refused.
    stranger = Caller(str(other), "USER", "s")
    with pytest.raises(NotFound):
        await n.handlers.mark_read(stranger, str(listed[1].id))
    with pytest.raises(NotFound):
        await n.handlers.mark_read(me, str(uuid.uuid4()))
    with pytest.raises(PermissionDenied):
        await n.handlers.list_notifications(stranger, str(user), False, 0, "")
    admin = Caller(str(uuid.uuid4()), "ADMIN", "s")
    as_admin, _ = await n.handlers.list_notifications(admin, str(user), False, 10, "")
    assert [x.id for x in as_admin] == [x.id for x in listed]
    # A token from one listing does not work on another.
    with pytest.raises(InvalidArgument):
        await n.handlers.list_notifications(me, "", True, 3, token)


async def test_preferences_defaults_and_who_may_read_and_change_them(
    notifications: Notifications,
) -> None:
    n = notifications
    user = await n.person(time_zone="Asia/Tokyo")
    me, admin = Caller(str(user), "USER", "s"), Caller(str(uuid.uuid4()), "ADMIN", "s")
    defaults = await n.handlers.get_preferences(admin, str(user))
    assert defaults.time_zone == "Asia/Tokyo"
    assert defaults.digest_time == "08:00"
    assert len(defaults.categories) == 5
    with pytest.raises(PermissionDenied):
        await n.handlers.get_preferences(Caller(str(uuid.uuid4()), "USER", "s"), str(user))
    only_safety = pb.NotificationPreferences(
        categories=[pb.CategoryPreference(category=pb.SAFETY, channels=[pb.PUSH])]
    )
    with pytest.raises(PermissionDenied):
        await n.handlers.update_preferences(admin, str(user), only_safety)
    with pytest.raises(InvalidArgument):
        await n.handlers.update_preferences(me, str(user), pb.NotificationPreferences())
    await n.handlers.update_preferences(me, str(user), only_safety)
    stored = await n.handlers.get_preferences(me, str(user))
    assert [(c.category, list(c.channels)) for c in stored.categories] == [(pb.SAFETY, [pb.PUSH])]
    assert stored.HasField("update_time")
    # BILLING is now off: the inbox still has it, no channel carries it.
    await n.feed(
        n.events.on_invoice_issued,
        billing_pb2.InvoiceIssued(user_id=str(user), amount=5, currency="RUB"),
    )
    listed, _ = await n.handlers.list_notifications(me, "", False, 0, "")
    assert [(x.category, x.deliveries) for x in listed if x.category == "BILLING"] == [
        ("BILLING", ())
    ]


def test_an_alarm_and_its_all_clear_are_read_strictly_in_order_by_one_consumer() -> None:
    by_durable = {sub.durable: sub for sub in NotificationEvents().subscriptions()}
    readings = by_durable["notification-dangerous-readings"]
    assert readings.subjects == [
        "warmhouse.device.v1.DangerousReadingDetected",
        "warmhouse.device.v1.DangerousReadingCleared",
    ]
    assert readings.max_ack_pending == 1
    assert set(by_durable) == {
        "notification-user",
        "notification-device-status",
        "notification-dangerous-readings",
        "notification-billing",
        "notification-support",
    }


async def test_deliveries_waiting_for_a_contact_go_as_soon_as_it_arrives(
    notifications: Notifications,
) -> None:
    n = notifications
    user = uuid.uuid4()  # User's event not applied yet
    overdue = billing_pb2.InvoiceOverdue(
        user_id=str(user), amount=10.0, currency="RUB", due_time=timestamp(NOW)
    )
    await n.feed(n.events.on_invoice_overdue, overdue)
    # As the dispatcher leaves a delivery it found no contact for.
    await n.rows(
        "UPDATE deliveries SET failure_reason = :reason, next_attempt_at = :later"
        " WHERE user_id = :user_id RETURNING id",
        reason=CONTACT_UNKNOWN,
        later=NOW + timedelta(minutes=1),
        user_id=user,
    )
    wakes = n.wakes
    registered = user_pb2.UserRegistered(
        user_id=str(user), email="late@example.com", phone="+15550001111", occur_time=timestamp(NOW)
    )
    await n.feed(n.events.on_user_registered, registered)
    [waiting] = await n.deliveries_of(user)
    assert waiting["next_attempt_at"] == NOW
    assert n.wakes > wakes
