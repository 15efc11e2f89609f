"""The dispatcher: sends due deliveries, records each outcome with its event.

Correct with any number of replicas. A claim takes due PENDING deliveries
with FOR UPDATE SKIP LOCKED, counts the attempt and leases them (claimed_until,
claim_id) in one committed transaction; only the lease's holder may record
the outcome, and a lease left by a crashed replica expires, so the delivery
is tried again. The delivery id is the message's key: the SMS and push
gateways take it as the Idempotency-Key (and e-mail as the Message-ID), so a
send repeated after a crash is not a second message.

Outcomes: accepted → SENT and NotificationSent; a transient failure → PENDING
again after base * 2^(attempts-1) (at most 300 s) until the last attempt, then
FAILED and NotificationFailed; a permanent one → FAILED and
NotificationFailed at once. A user's due digest deliveries for one channel
go as one message listing their titles (its key: see digest_key).

A delivery whose user's contact details have not arrived yet (the User
service's events not applied) waits for them without using up its attempts,
and fails only when they have not come within `contact_wait` of the
notification (an hour).

Every message is cut to what its channel's gateway takes in one place
(templates.for_channel).

It is woken right after a consumer commits new deliveries and otherwise
polls every second: an alarm reaches every member's SMS, push and e-mail
within seconds.
"""

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from warmhouse.notification.v1 import notification_pb2

from services.notification import templates
from services.notification.records import EMAIL, SMS
from services.notification.repository import ClaimedDelivery, NotificationRepository
from services.notification.scheduling import backoff
from services.notification.senders import DeliveryError, OutgoingMessage, Sender
from services.runtime.clock import Clock, utc_now
from services.runtime.loops import raise_if_stopping
from services.runtime.timestamps import timestamp
from services.runtime.unit_of_work import Transaction, UnitOfWork

log = logging.getLogger(__name__)
CONTACT_UNKNOWN = "contact details not known yet"
CONTACT_NEVER_ARRIVED = "contact details did not arrive in time"
NO_PHONE = "no phone number in the profile"
NO_EMAIL = "no e-mail address in the profile"
DEACTIVATED = "the account is deactivated"
NO_SENDER = "no sender for this channel"
TIMED_OUT = "the gateway did not answer in time"
UNEXPECTED = "sending failed unexpectedly"


@dataclass(frozen=True)
class DispatchSettings:
    max_attempts: int = 6
    retry_base_seconds: float = 1.0
    # Deliveries (or digests) being sent at once.
    concurrency: int = 32
    # A send's whole-call limit, beyond the senders' own deadlines.
    send_timeout_seconds: float = 31.0
    # Nobody else takes a claimed delivery for this long.
    lease: timedelta = timedelta(seconds=60)
    poll_seconds: float = 1.0
    # How long after its notification a delivery waits for the user's
    # contact details before it fails; those waits count as no attempt.
    contact_wait: timedelta = timedelta(hours=1)


# A delivery waiting for contact details looks again after as long as it has
# waited so far (at least the retry base), but at least once a minute.
MAX_CONTACT_RETRY = timedelta(seconds=60)
# Names a digest by the deliveries it carries (digest_key).
DIGEST_KEYS = uuid.UUID("0b1d6c2e-52a4-4f7e-9a38-6d0f3c8e1a77")


# One message: a delivery, or a user's digest for one channel.
Job = Sequence[ClaimedDelivery]


def jobs_of(claimed: Sequence[ClaimedDelivery]) -> list[Job]:
    """Each delivery on its own, but digests: one per (user, channel), oldest
    first by (created_at, id) whatever order the claim found them in."""
    jobs: list[Job] = []
    digests: dict[tuple[uuid.UUID, str], list[ClaimedDelivery]] = {}
    for delivery in claimed:
        if delivery.digest:
            key = (delivery.user_id, delivery.channel)
            if key not in digests:
                digests[key] = []
                jobs.append(digests[key])
            digests[key].append(delivery)
        else:
            jobs.append([delivery])
    for job in digests.values():
        job.sort(key=lambda d: (d.created_at, d.id))
    return jobs


def digest_key(job: Job) -> str:
    """A digest's message key: a UUID (v5) of its deliveries' sorted ids.

    Not the smallest delivery id, though that would be stable too while the
    set stays the same: the set CAN change between attempts (a delivery that
    became due after the claim, committed late, joins the retry), and the
    gateways answer a key they have seen from memory (e-mail receivers drop a
    repeated Message-ID), so a grown digest under the old key would be
    recorded SENT with its new lines never delivered. A key naming exactly
    these deliveries is the same on every attempt of the same message, and a
    different message gets a new one: at worst its older lines arrive twice,
    nothing is lost. Retries keep a digest's deliveries on one schedule
    (Dispatcher._record), so such a change is rare.
    """
    ids = ",".join(sorted(str(delivery.id) for delivery in job))
    return str(uuid.uuid5(DIGEST_KEYS, ids))


def outgoing(job: Job) -> OutgoingMessage:
    """The message for `job`, addressed from the user's profile as it is now."""
    first = job[0]
    reach = first.reach
    if reach is None:
        raise DeliveryError(CONTACT_UNKNOWN, permanent=False)
    if not reach.active:
        raise DeliveryError(DEACTIVATED, permanent=True)
    if first.digest:
        text = templates.digest(templates.language(reach.locale), [d.title for d in job])
    else:
        text = templates.Text(first.title, first.body)
    text = templates.for_channel(first.channel, text)
    if first.channel == EMAIL:
        if not reach.email:
            raise DeliveryError(NO_EMAIL, permanent=True)
        to = reach.email
    elif first.channel == SMS:
        if not reach.phone:
            raise DeliveryError(NO_PHONE, permanent=True)
        to = reach.phone
    else:
        to = str(first.user_id)
    key = digest_key(job) if first.digest else str(first.id)
    return OutgoingMessage(key=key, to=to, subject=text.title, body=text.body)


def _category(delivery: ClaimedDelivery) -> notification_pb2.NotificationCategory.ValueType:
    return notification_pb2.NotificationCategory.Value(delivery.category)


def _channel(delivery: ClaimedDelivery) -> notification_pb2.NotificationChannel.ValueType:
    return notification_pb2.NotificationChannel.Value(delivery.channel)


class Dispatcher:
    name = "notification-dispatcher"

    def __init__(
        self,
        uow: UnitOfWork[NotificationRepository],
        senders: Mapping[str, Sender],
        settings: DispatchSettings = DispatchSettings(),
        clock: Clock = utc_now,
        close_senders: Callable[[], None] = lambda: None,
    ) -> None:
        self._uow = uow
        self._senders = senders
        self._settings = settings
        self._clock = clock
        self._close_senders = close_senders
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._stopping = False

    def wake(self) -> None:
        """Look for due deliveries now: new ones were just committed."""
        self._wake.set()

    async def claim(self, limit: int) -> tuple[list[Job], uuid.UUID]:
        """Lease up to `limit` due deliveries (digests whole), as jobs."""
        claim_id = uuid.uuid4()
        async with self._uow.transaction() as tx:
            now = self._clock()
            claimed = await tx.repos.claim_due(now, now + self._settings.lease, claim_id, limit)
        return jobs_of(claimed), claim_id

    async def dispatch_due(self, limit: int = 100) -> int:
        """Claim what is due, send it all, record the outcomes; how many deliveries."""
        jobs, claim_id = await self.claim(limit)
        slots = asyncio.Semaphore(self._settings.concurrency)

        async def bounded(job: Job) -> None:
            async with slots:
                await self.deliver(job, claim_id)

        await asyncio.gather(*(bounded(job) for job in jobs))
        return sum(len(job) for job in jobs)

    async def deliver(self, job: Job, claim_id: uuid.UUID) -> None:
        """Send one job and record how it went."""
        failure: DeliveryError | None = None
        try:
            message = outgoing(job)
            sender = self._senders.get(job[0].channel)
            if sender is None:
                raise DeliveryError(NO_SENDER, permanent=True)
            async with asyncio.timeout(self._settings.send_timeout_seconds):
                await sender.send(message)
        except DeliveryError as error:
            failure = error
        except TimeoutError:
            failure = DeliveryError(TIMED_OUT, permanent=False)
        except Exception:
            log.exception("sending a %s delivery failed unexpectedly", job[0].channel)
            failure = DeliveryError(UNEXPECTED, permanent=False)
        await self._record(job, claim_id, failure)

    async def _record(self, job: Job, claim_id: uuid.UUID, failure: DeliveryError | None) -> None:
        settings = self._settings
        waiting = failure is not None and failure.reason == CONTACT_UNKNOWN
        async with self._uow.transaction() as tx:
            now = self._clock()
            # One time for the whole job: a digest's deliveries stay together.
            later = now + (
                self._contact_retry(job, now)
                if waiting
                else backoff(max(d.attempts for d in job), settings.retry_base_seconds)
            )
            for delivery in job:
                if failure is None:
                    if await tx.repos.mark_sent(delivery.id, claim_id, now):
                        await tx.add_event(
                            notification_pb2.NotificationSent(
                                notification_id=str(delivery.notification_id),
                                user_id=str(delivery.user_id),
                                category=_category(delivery),
                                channel=_channel(delivery),
                                occur_time=timestamp(now),
                            )
                        )
                elif waiting:
                    if now - delivery.created_at < settings.contact_wait:
                        await tx.repos.wait_for_contact(
                            delivery.id, claim_id, later, failure.reason, now
                        )
                    else:
                        await self._fail(tx, delivery, claim_id, CONTACT_NEVER_ARRIVED, now)
                elif not failure.permanent and delivery.attempts < settings.max_attempts:
                    await tx.repos.retry_later(delivery.id, claim_id, later, failure.reason, now)
                else:
                    await self._fail(tx, delivery, claim_id, failure.reason, now)
        if failure is not None:
            log.info(
                "delivery not sent",
                extra={
                    "channel": job[0].channel,
                    "reason": failure.reason,
                    "permanent": failure.permanent,
                },
            )

    def _contact_retry(self, job: Job, now: datetime) -> timedelta:
        """As long as the oldest has waited, from the retry base up to a minute."""
        waited = now - min(delivery.created_at for delivery in job)
        base = timedelta(seconds=self._settings.retry_base_seconds)
        return min(max(waited, base), MAX_CONTACT_RETRY)

    @staticmethod
    async def _fail(
        tx: Transaction[NotificationRepository],
        delivery: ClaimedDelivery,
        claim_id: uuid.UUID,
        reason: str,
        now: datetime,
    ) -> None:
        if await tx.repos.mark_failed(delivery.id, claim_id, reason, now):
            await tx.add_event(
                notification_pb2.NotificationFailed(
                    notification_id=str(delivery.notification_id),
                    user_id=str(delivery.user_id),
                    category=_category(delivery),
                    channel=_channel(delivery),
                    failure_reason=reason,
                    occur_time=timestamp(now),
                )
            )

    async def run(self) -> None:
        """Claim as many deliveries as there are free slots, send them in the
        background, and look again when woken, when a send ends, or every second."""
        try:
            while True:
                raise_if_stopping()
                self._wake.clear()
                free = self._settings.concurrency - len(self._in_flight)
                if free > 0 and not self._stopping:
                    try:
                        jobs, claim_id = await self.claim(free)
                    except Exception:
                        raise_if_stopping()
                        log.warning("claiming deliveries failed; will retry", exc_info=True)
                        await asyncio.sleep(self._settings.poll_seconds)
                        continue
                    for job in jobs:
                        self._start(job, claim_id)
                    if sum(len(job) for job in jobs) >= free:
                        continue  # more may be due; the loop waits once slots are full
                # asyncio.timeout, not wait_for (see outbox.py).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._settings.poll_seconds):
                        await self._wake.wait()
        finally:
            for task in self._in_flight:
                task.cancel()

    def _start(self, job: Job, claim_id: uuid.UUID) -> None:
        task = asyncio.create_task(self.deliver(job, claim_id), name="notification-send")
        self._in_flight.add(task)

        def finished(done: asyncio.Task[None]) -> None:
            self._in_flight.discard(done)
            if not done.cancelled() and done.exception() is not None:
                log.error("recording a delivery failed", exc_info=done.exception())
            self.wake()

        task.add_done_callback(finished)

    async def stop(self, grace_seconds: float) -> None:
        """Claim nothing more, let sends under way finish (their leases would
        otherwise hold them for a minute), then close the senders."""
        self._stopping = True
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=grace_seconds)
        await asyncio.to_thread(self._close_senders)
