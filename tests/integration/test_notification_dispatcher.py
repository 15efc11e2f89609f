"""The dispatcher on real PostgreSQL with fake senders: outcomes and their
events, retries, leases, two dispatchers at once, digests."""

import asyncio
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from warmhouse.billing.v1 import billing_pb2
from warmhouse.notification.v1 import notification_pb2 as pb
from warmhouse.user.v1 import user_pb2

from services.notification.dispatcher import (
    CONTACT_NEVER_ARRIVED,
    CONTACT_UNKNOWN,
    DIGEST_KEYS,
    NO_PHONE,
    Dispatcher,
    DispatchSettings,
)
from services.notification.repository import CLAIM_SQL
from services.notification.senders import DeliveryError, OutgoingMessage, Sender
from services.runtime.auth import Caller
from services.runtime.database import Query
from services.runtime.timestamps import timestamp
from tests.integration import test_notification_events
from tests.integration.test_notification_events import NOW, Notifications, detected
from tests.polling import eventually

# The migrated database with the service's handlers, shared with the event tests.
notifications = test_notification_events.notifications


class FakeSender:
    def __init__(self, failure: DeliveryError | None = None, delay: float = 0.0) -> None:
        self.sent: list[OutgoingMessage] = []
        self.failure = failure
        self.delay = delay

    async def send(self, message: OutgoingMessage) -> None:
        await asyncio.sleep(self.delay)
        if self.failure is not None:
            raise self.failure
        self.sent.append(message)


def senders(
    email: FakeSender | None = None, sms: FakeSender | None = None, push: FakeSender | None = None
) -> dict[str, Sender]:
    return {
        "EMAIL": email or FakeSender(),
        "SMS": sms or FakeSender(),
        "PUSH": push or FakeSender(),
    }


def dispatcher(
    n: Notifications, channels: Mapping[str, Sender], max_attempts: int = 6
) -> Dispatcher:
    return Dispatcher(
        n.uow,
        channels,
        DispatchSettings(max_attempts=max_attempts, retry_base_seconds=1.0, concurrency=8),
        clock=lambda: n.now,
    )


async def outbox(n: Notifications) -> list[pb.NotificationSent | pb.NotificationFailed]:
    events: list[pb.NotificationSent | pb.NotificationFailed] = []
    for row in await n.rows("SELECT subject, payload FROM outbox ORDER BY created_at"):
        kind = pb.NotificationSent if row["subject"].endswith("Sent") else pb.NotificationFailed
        events.append(kind.FromString(row["payload"]))
    return events


async def test_sent_deliveries_are_marked_and_announced(notifications: Notifications) -> None:
    n = notifications
    user = await n.person()  # the welcome: EMAIL
    email = FakeSender()
    assert await dispatcher(n, senders(email=email)).dispatch_due() == 1
    [message] = email.sent
    [delivery] = await n.rows("SELECT * FROM deliveries WHERE user_id = :u", u=user)
    assert message.key == str(delivery["id"])
    assert message.to == f"{user.hex[:8]}@example.com"
    assert "Welcome" in message.subject
    assert (delivery["status"], delivery["attempts"]) == ("SENT", 1)
    [event] = await outbox(n)
    assert isinstance(event, pb.NotificationSent)
    assert (event.user_id, event.channel, event.category) == (str(user), pb.EMAIL, pb.ACCOUNT)
    # Nothing is sent twice.
    assert await dispatcher(n, senders(email=email)).dispatch_due() == 0
    assert len(email.sent) == 1


async def test_transient_failures_back_off_then_fail_with_the_reason(
    notifications: Notifications,
) -> None:
    n = notifications
    user = await n.person()
    down = FakeSender(DeliveryError("the mail server could not be reached", permanent=False))
    sending = dispatcher(n, senders(email=down), max_attempts=3)
    waits = []
    for _ in range(3):
        assert await sending.dispatch_due() == 1
        [row] = await n.rows("SELECT * FROM deliveries WHERE user_id = :u", u=user)
        if row["status"] == "PENDING":
            waits.append(row["next_attempt_at"] - n.now)
            assert row["failure_reason"] == "the mail server could not be reached"
            assert await sending.dispatch_due() == 0  # not due yet
            n.now = row["next_attempt_at"]
    assert waits == [timedelta(seconds=1), timedelta(seconds=2)]
    assert (row["status"], row["attempts"]) == ("FAILED", 3)
    [event] = await outbox(n)
    assert isinstance(event, pb.NotificationFailed)
    assert event.failure_reason == "the mail server could not be reached"


async def test_permanent_failures_fail_at_once_and_others_still_go(
    notifications: Notifications,
) -> None:
    n = notifications
    user = await n.person(phone="")
    _, room, device = await n.home(user)
    await n.feed(n.events.on_danger_detected, detected(device, room, NOW))
    email, sms, push = FakeSender(), FakeSender(), FakeSender()
    assert await dispatcher(n, senders(email, sms, push)).dispatch_due() == 4
    statuses = {
        (r["channel"], r["status"], r["failure_reason"])
        for r in await n.rows(
            "SELECT d.* FROM deliveries d JOIN notifications n ON n.id = d.notification_id"
            " WHERE d.user_id = :u AND n.category = 'SAFETY'",
            u=user,
        )
    }
    assert statuses == {("EMAIL", "SENT", ""), ("PUSH", "SENT", ""), ("SMS", "FAILED", NO_PHONE)}
    assert sms.sent == []
    assert [m.to for m in push.sent] == [str(user)]
    failed = [e for e in await outbox(n) if isinstance(e, pb.NotificationFailed)]
    assert [(e.channel, e.failure_reason) for e in failed] == [(pb.SMS, NO_PHONE)]


async def test_an_unknown_contact_waits_for_the_users_details(
    notifications: Notifications,
) -> None:
    n = notifications
    stranger = uuid.uuid4()  # no UserRegistered yet
    await n.feed(
        n.events.on_invoice_issued,
        billing_pb2.InvoiceIssued(user_id=str(stranger), amount=1, currency="RUB"),
    )
    email = FakeSender()
    assert await dispatcher(n, senders(email=email)).dispatch_due() == 1
    assert email.sent == []
    [row] = await n.rows("SELECT * FROM deliveries WHERE user_id = :u", u=stranger)
    assert (row["status"], row["failure_reason"]) == ("PENDING", CONTACT_UNKNOWN)


async def test_waiting_for_contact_details_uses_no_attempt_and_gives_up_after_an_hour(
    notifications: Notifications,
) -> None:
    n = notifications
    created = n.now
    stranger = uuid.uuid4()  # the User service's events are late
    await n.feed(
        n.events.on_invoice_issued,
        billing_pb2.InvoiceIssued(user_id=str(stranger), amount=1, currency="RUB"),
    )
    email = FakeSender()
    sending = dispatcher(n, senders(email=email), max_attempts=3)
    tries = 0
    # Far more tries than max_attempts, over most of an hour: still waiting.
    while n.now - created < timedelta(minutes=50):
        assert await sending.dispatch_due() == 1
        tries += 1
        [row] = await n.rows("SELECT * FROM deliveries WHERE user_id = :u", u=stranger)
        assert (row["status"], row["attempts"]) == ("PENDING", 0)
        wait = row["next_attempt_at"] - n.now
        assert timedelta(seconds=1) <= wait <= timedelta(seconds=60)
        n.now = row["next_attempt_at"]
    assert tries > 10
    assert await outbox(n) == []
    # The details arrive: it goes, on its first counted attempt.
    late = n.now
    await n.feed(
        n.events.on_user_registered,
        user_pb2.UserRegistered(
            user_id=str(stranger),
            email="late@example.com",
            locale="en",
            occur_time=timestamp(late),
        ),
    )
    await sending.dispatch_due()
    rows = await n.rows(
        "SELECT d.status, d.attempts FROM deliveries d JOIN notifications n"
        " ON n.id = d.notification_id WHERE d.user_id = :u AND n.category = 'BILLING'",
        u=stranger,
    )
    assert [(r["status"], r["attempts"]) for r in rows] == [("SENT", 1)]
    assert "late@example.com" in [m.to for m in email.sent]


async def test_contact_details_that_never_arrive_fail_after_an_hour_with_a_reason(
    notifications: Notifications,
) -> None:
    n = notifications
    created = n.now
    stranger = uuid.uuid4()
    await n.feed(
        n.events.on_invoice_issued,
        billing_pb2.InvoiceIssued(user_id=str(stranger), amount=1, currency="RUB"),
    )
    sending = dispatcher(n, senders(), max_attempts=3)
    while True:
        assert await sending.dispatch_due() == 1
        [row] = await n.rows("SELECT * FROM deliveries WHERE user_id = :u", u=stranger)
        if row["status"] != "PENDING":
            break
        n.now = row["next_attempt_at"]
    assert timedelta(hours=1) <= n.now - created <= timedelta(hours=1, minutes=1)
    assert (row["status"], row["failure_reason"]) == ("FAILED", CONTACT_NEVER_ARRIVED)
    [event] = await outbox(n)
    assert isinstance(event, pb.NotificationFailed)
    assert event.failure_reason == CONTACT_NEVER_ARRIVED


async def test_the_claim_reads_the_queue_index_in_order_without_sorting(
    notifications: Notifications,
) -> None:
    n = notifications
    async with n.database.transaction() as connection:
        await connection.execute(Query(text("SET LOCAL enable_seqscan = off")))
        rows = await connection.fetch(
            Query(text("EXPLAIN " + CLAIM_SQL)),
            now=n.now,
            lease=n.now,
            claim_id=uuid.uuid4(),
            limit=10,
        )
    plan = "\n".join(str(next(iter(row.values()))) for row in rows)
    assert "deliveries_due" in plan, plan
    assert "Sort" not in plan, plan


async def test_a_lease_keeps_others_off_and_only_its_holder_records(
    notifications: Notifications,
) -> None:
    n = notifications
    await n.person()
    first, second = dispatcher(n, senders()), dispatcher(n, senders())
    jobs, first_claim = await first.claim(10)
    assert len(jobs) == 1
    assert (await second.claim(10))[0] == []  # leased
    # The first replica "crashed"; its lease runs out and another takes over.
    n.now += timedelta(seconds=61)
    retaken, second_claim = await second.claim(10)
    assert [d.id for d in retaken[0]] == [d.id for d in jobs[0]]
    assert retaken[0][0].attempts == 2
    await second.deliver(retaken[0], second_claim)
    # The first comes back and reports: its lease is gone, nothing is recorded twice.
    await first.deliver(jobs[0], first_claim)
    assert len(await outbox(n)) == 1


async def test_two_dispatchers_never_send_one_delivery_twice(
    notifications: Notifications,
) -> None:
    n = notifications
    user = await n.person()
    for amount in range(1, 41):
        await n.feed(
            n.events.on_invoice_issued,
            billing_pb2.InvoiceIssued(user_id=str(user), amount=amount, currency="RUB"),
        )
    email = FakeSender(delay=0.005)
    shared = senders(email=email)
    replicas = [dispatcher(n, shared), dispatcher(n, shared)]

    async def drain(replica: Dispatcher) -> int:
        total = 0
        while sent := await replica.dispatch_due(limit=5):
            total += sent
        return total

    counts = await asyncio.gather(*(drain(replica) for replica in replicas))
    keys = [m.key for m in email.sent]
    assert len(keys) == len(set(keys)) == 41
    assert sum(counts) == 41
    assert all(counts)  # both took part
    [row] = await n.rows("SELECT count(*) AS c FROM deliveries WHERE status <> 'SENT'")
    assert row["c"] == 0
    assert len(await outbox(n)) == 41


async def test_digest_deliveries_go_together_as_one_message(
    notifications: Notifications,
) -> None:
    n = notifications
    user = await n.person(time_zone="Europe/Moscow")
    email = FakeSender()
    sending = dispatcher(n, senders(email=email))
    await sending.dispatch_due()  # the welcome
    await n.handlers.update_preferences(
        Caller(str(user), "USER", "s"),
        str(user),
        pb.NotificationPreferences(
            categories=[
                pb.CategoryPreference(category=pb.SAFETY, channels=[pb.SMS]),
                pb.CategoryPreference(category=pb.BILLING, channels=[pb.EMAIL], digest=True),
            ],
            digest_time="19:00",
        ),
    )
    for amount in (10, 20, 30):
        await n.feed(
            n.events.on_invoice_issued,
            billing_pb2.InvoiceIssued(user_id=str(user), amount=amount, currency="RUB"),
        )
    assert await sending.dispatch_due() == 0  # waiting for 19:00 Moscow
    n.now = datetime(2025, 1, 10, 16, 0, tzinfo=UTC)
    assert await sending.dispatch_due(limit=1) == 3  # claimed together, however small a batch
    digest = email.sent[-1]
    assert len(email.sent) == 2
    for total in ("10.00 RUB", "20.00 RUB", "30.00 RUB"):
        assert total in digest.body
    rows = await n.rows(
        "SELECT d.id, d.status FROM deliveries d JOIN notifications n ON n.id = d.notification_id"
        " WHERE n.category = 'BILLING' ORDER BY n.created_at, d.id"
    )
    assert {r["status"] for r in rows} == {"SENT"}
    # Its key names exactly these deliveries, whichever one the LIMIT 1 claimed;
    # its lines go oldest first, by (created_at, id).
    ids = ",".join(sorted(str(r["id"]) for r in rows))
    assert digest.key == str(uuid.uuid5(DIGEST_KEYS, ids))
    titles = await n.rows(
        "SELECT n.title FROM deliveries d JOIN notifications n ON n.id = d.notification_id"
        " WHERE n.category = 'BILLING' ORDER BY n.created_at, d.id"
    )
    assert digest.body == "\n".join(f"- {r['title']}" for r in titles)
    sent = [e for e in await outbox(n) if isinstance(e, pb.NotificationSent)]
    assert sum(e.category == pb.BILLING for e in sent) == 3


async def test_the_worker_sends_as_soon_as_it_is_woken(notifications: Notifications) -> None:
    n = notifications
    email = FakeSender()
    worker = Dispatcher(
        n.uow,
        senders(email=email),
        DispatchSettings(poll_seconds=60.0),  # only a wake can make it look again
        clock=lambda: n.now,
    )
    n.events = type(n.events)(wake=worker.wake, clock=lambda: n.now)
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.2)  # its first look found nothing; now it sleeps
        await n.person()
        # Well within the one-minute poll: the wake did it.
        await eventually(lambda: email.sent, within=5.0, what="the welcome e-mail")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert "Welcome" in email.sent[0].subject
