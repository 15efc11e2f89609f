"""Other services' events → notifications.

Each event makes at most one notification per recipient (UNIQUE on source
event and user; EventConsumer also records the event id with the effect),
rendered in the recipient's language and time zone as they are when it is
made, with one delivery per channel chosen then (scheduling.py). Deactivated
recipients get nothing. The contacts projection is fed here too: a late
User event (older than what is stored) changes nothing.

Dangerous readings are de-duplicated per (device, hazard) episode: one alarm
while it is open, one all-clear when it ends, whatever is redelivered under a
new id or reordered between the two consumers.
"""

import logging
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from warmhouse.billing.v1 import billing_pb2
from warmhouse.device.v1 import device_pb2
from warmhouse.support.v1 import support_pb2
from warmhouse.user.v1 import user_pb2

from services.notification import templates
from services.notification.dispatcher import CONTACT_UNKNOWN
from services.notification.preferences import DEFAULTS
from services.notification.records import (
    ACCOUNT,
    BILLING,
    CRITICAL,
    DEVICE_STATUS,
    LOW,
    NORMAL,
    PENDING,
    SAFETY,
    SUPPORT,
    Contact,
    DeliveryRecord,
    NotificationRecord,
)
from services.notification.repository import Episode, NotificationRepository
from services.notification.scheduling import plan_deliveries, zone_of
from services.runtime import home_directory
from services.runtime.clock import Clock, utc_now
from services.runtime.database import Connection
from services.runtime.messaging import EventContext, EventRoute, Subscription, event_uuid
from services.runtime.request import enum_name
from services.runtime.timestamps import event_time

log = logging.getLogger(__name__)
PREFIX = "notification"
# Renders a notification in a language for a time zone.
Render = Callable[[str, Any], templates.Text]


def _hazard(value: int) -> str:
    return enum_name(device_pb2.Hazard.DESCRIPTOR, value)


def _place(
    found: home_directory.DevicePlace | None, device_id: uuid.UUID, space_id: uuid.UUID
) -> templates.Place:
    """Names where known; ids where not."""
    if found is None:
        return templates.Place(str(device_id), str(space_id), str(space_id))
    room = found.space_name or str(found.space_id)
    home = found.home_name or str(found.home_id)
    if found.space_id == found.home_id:
        room = home
    return templates.Place(found.device_name or str(device_id), room, home)


class NotificationEvents:
    """The handlers, each run by EventConsumer in the event's transaction."""

    def __init__(
        self,
        wake: Callable[[], None] = lambda: None,
        clock: Clock = utc_now,
        catch_up: home_directory.CatchUp | None = None,
    ) -> None:
        # Before reading who belongs to a home (None: read it as it is).
        self._catch_up = catch_up
        # Called after a transaction that made deliveries commits: the dispatcher's cue.
        self._wake = wake
        self._clock = clock

    async def _notify(
        self,
        connection: Connection,
        context: EventContext,
        recipients: Iterable[uuid.UUID],
        category: str,
        priority: str,
        render: Render,
    ) -> int:
        """One notification per active recipient; how many were made now."""
        repos = NotificationRepository(connection)
        made = 0
        for user_id in dict.fromkeys(recipients):
            contact = await repos.contact(user_id)
            if contact is not None and not contact.active:
                continue
            lang = templates.language(contact.locale if contact else "")
            zone = zone_of(contact.time_zone if contact else "")
            preferences = await repos.preferences(user_id) or DEFAULTS
            now = self._clock()
            text = render(lang, zone)
            notification_id = uuid.uuid4()
            deliveries = tuple(
                DeliveryRecord(
                    id=uuid.uuid4(),
                    notification_id=notification_id,
                    user_id=user_id,
                    channel=planned.channel,
                    status=PENDING,
                    digest=planned.digest,
                    attempts=0,
                    next_attempt_at=planned.due_at,
                    failure_reason="",
                    updated_at=now,
                )
                for planned in plan_deliveries(category, priority, preferences, zone, now)
            )
            notification = NotificationRecord(
                id=notification_id,
                user_id=user_id,
                category=category,
                priority=priority,
                title=text.title,
                body=text.body,
                source_event_id=context.event_id,
                created_at=now,
                deliveries=deliveries,
            )
            if await repos.add_notification(notification, critical=priority == CRITICAL):
                made += 1
        if made:
            context.after_commit(self._wake)
        return made

    # The User service: the contacts projection, and the welcome.

    async def on_user_registered(
        self, connection: Connection, event: user_pb2.UserRegistered, context: EventContext
    ) -> None:
        user_id = event_uuid(event.user_id, "user", context)
        if user_id is None:
            return
        await self._save_contact(
            connection,
            context,
            Contact(
                user_id,
                event.email,
                event.phone,
                event.locale,
                event.time_zone,
                True,
                event_time(event.occur_time) or self._clock(),
            ),
        )
        await self._notify(
            connection, context, [user_id], ACCOUNT, NORMAL, lambda lang, _: templates.welcome(lang)
        )

    async def on_user_updated(
        self, connection: Connection, event: user_pb2.UserUpdated, context: EventContext
    ) -> None:
        user_id = event_uuid(event.user_id, "user", context)
        if user_id is None:
            return
        await self._save_contact(
            connection,
            context,
            Contact(
                user_id,
                event.email,
                event.phone,
                event.locale,
                event.time_zone,
                event.is_active,
                event_time(event.occur_time) or self._clock(),
            ),
        )

    async def _save_contact(
        self, connection: Connection, context: EventContext, contact: Contact
    ) -> None:
        """Store the contact; deliveries that waited for it go at once."""
        repos = NotificationRepository(connection)
        if not await repos.save_contact(contact):
            return
        if await repos.release_waiting(contact.user_id, CONTACT_UNKNOWN, self._clock()):
            context.after_commit(self._wake)

    async def on_user_deactivated(
        self, connection: Connection, event: user_pb2.UserDeactivated, context: EventContext
    ) -> None:
        user_id = event_uuid(event.user_id, "user", context)
        if user_id is not None:
            await NotificationRepository(connection).deactivate(
                user_id, event_time(event.occur_time) or self._clock()
            )

    # The Device service: status changes and dangerous readings, to every member.

    async def on_device_status_changed(
        self, connection: Connection, event: device_pb2.DeviceStatusChanged, context: EventContext
    ) -> None:
        status = enum_name(device_pb2.DeviceStatus.DESCRIPTOR, event.new_status)
        priority = {templates.OFFLINE: LOW, templates.ERROR: NORMAL}.get(status)
        device_id = event_uuid(event.device_id, "device", context)
        space_id = event_uuid(event.space_id, "space", context)
        if priority is None or device_id is None or space_id is None:
            return
        now = self._clock()
        at = event_time(event.occur_time) or now
        await self._caught_up(context)
        place = _place(
            await home_directory.device_place(connection, device_id), device_id, space_id
        )
        members = await home_directory.members_of(connection, space_id, now)
        await self._notify(
            connection,
            context,
            (member.user_id for member in members),
            DEVICE_STATUS,
            priority,
            lambda lang, zone: templates.device_status(lang, place, status, at, zone),
        )

    async def _caught_up(self, context: EventContext) -> None:
        if self._catch_up is not None:
            await self._catch_up.require(context)

    async def on_danger_detected(
        self,
        connection: Connection,
        event: device_pb2.DangerousReadingDetected,
        context: EventContext,
    ) -> None:
        await self._danger(connection, event, context, detected=True)

    async def on_danger_cleared(
        self,
        connection: Connection,
        event: device_pb2.DangerousReadingCleared,
        context: EventContext,
    ) -> None:
        await self._danger(connection, event, context, detected=False)

    async def _danger(
        self,
        connection: Connection,
        event: device_pb2.DangerousReadingDetected | device_pb2.DangerousReadingCleared,
        context: EventContext,
        *,
        detected: bool,
    ) -> None:
        hazard = _hazard(event.hazard)
        device_id = event_uuid(event.device_id, "device", context)
        space_id = event_uuid(event.space_id, "space", context)
        if not hazard or hazard == "HAZARD_UNSPECIFIED" or device_id is None or space_id is None:
            return
        now = self._clock()
        at = event_time(event.occur_time) or now
        await self._caught_up(context)
        repos = NotificationRepository(connection)
        episode = await repos.lock_episode(device_id, hazard)
        if detected:
            if episode.opened_at is not None:
                return  # this episode's alarm went out already
            if episode.cleared_at is not None and at <= episode.cleared_at:
                return  # a late alarm of an episode already over
            await repos.save_episode(device_id, hazard, Episode(at, episode.cleared_at))
        else:
            if episode.opened_at is None:
                # No alarm went out that this ends; remembered, so that a late
                # alarm of the episode it ends sends nothing either.
                await repos.save_episode(device_id, hazard, Episode(None, at))
                return
            if at < episode.opened_at:
                return  # older than the alarm that went out
            await repos.save_episode(device_id, hazard, Episode(None, at))
        reading = event.reading
        temperature = (
            reading.temperature_celsius if reading.HasField("temperature_celsius") else None
        )
        gas_alarm = reading.gas_alarm if reading.HasField("gas_alarm") else None
        place = _place(
            await home_directory.device_place(connection, device_id), device_id, space_id
        )
        template = templates.danger_detected if detected else templates.danger_cleared
        members = await home_directory.members_of(connection, space_id, now)
        made = await self._notify(
            connection,
            context,
            (member.user_id for member in members),
            SAFETY,
            CRITICAL,
            lambda lang, zone: template(lang, place, hazard, temperature, gas_alarm, at, zone),
        )
        log.info(
            "dangerous reading %s",
            "detected" if detected else "cleared",
            extra={"device": str(device_id), "hazard": hazard, "recipients": made},
        )

    # The Billing service: to the invoiced user.

    async def _billing(
        self,
        connection: Connection,
        user: str,
        context: EventContext,
        priority: str,
        render: Render,
    ) -> None:
        user_id = event_uuid(user, "user", context)
        if user_id is not None:
            await self._notify(connection, context, [user_id], BILLING, priority, render)

    async def on_invoice_issued(
        self, connection: Connection, event: billing_pb2.InvoiceIssued, context: EventContext
    ) -> None:
        due = event_time(event.due_time) or self._clock()
        await self._billing(
            connection,
            event.user_id,
            context,
            LOW,
            lambda lang, zone: templates.invoice_issued(
                lang, event.amount, event.currency, due, zone
            ),
        )

    async def on_invoice_overdue(
        self, connection: Connection, event: billing_pb2.InvoiceOverdue, context: EventContext
    ) -> None:
        due = event_time(event.due_time) or self._clock()
        await self._billing(
            connection,
            event.user_id,
            context,
            NORMAL,
            lambda lang, zone: templates.invoice_overdue(
                lang, event.amount, event.currency, due, zone
            ),
        )

    async def on_payment_succeeded(
        self, connection: Connection, event: billing_pb2.PaymentSucceeded, context: EventContext
    ) -> None:
        at = event_time(event.occur_time) or self._clock()
        await self._billing(
            connection,
            event.user_id,
            context,
            LOW,
            lambda lang, zone: templates.payment_succeeded(
                lang, event.amount, event.currency, at, zone
            ),
        )

    async def on_payment_failed(
        self, connection: Connection, event: billing_pb2.PaymentFailed, context: EventContext
    ) -> None:
        at = event_time(event.occur_time) or self._clock()
        await self._billing(
            connection,
            event.user_id,
            context,
            NORMAL,
            lambda lang, zone: templates.payment_failed(
                lang, event.amount, event.currency, event.failure_reason, at, zone
            ),
        )

    # The Support service: answers and status changes by support staff. The
    # platform's own (empty author or actor: an alarm's ticket resolved when
    # it cleared) are what the safety notifications already told everyone.

    async def on_ticket_comment_added(
        self, connection: Connection, event: support_pb2.TicketCommentAdded, context: EventContext
    ) -> None:
        if event.internal or event.author_id in ("", event.user_id):
            return
        user_id = event_uuid(event.user_id, "user", context)
        if user_id is not None:
            await self._notify(
                connection,
                context,
                [user_id],
                SUPPORT,
                NORMAL,
                lambda lang, _: templates.ticket_answered(lang, event.subject),
            )

    async def on_ticket_status_changed(
        self, connection: Connection, event: support_pb2.TicketStatusChanged, context: EventContext
    ) -> None:
        if event.actor_id in ("", event.user_id):
            return
        user_id = event_uuid(event.user_id, "user", context)
        status = enum_name(support_pb2.TicketStatus.DESCRIPTOR, event.new_status)
        if user_id is not None:
            await self._notify(
                connection,
                context,
                [user_id],
                SUPPORT,
                NORMAL,
                lambda lang, _: templates.ticket_status_changed(lang, event.subject, status),
            )

    def subscriptions(self) -> list[Subscription[Any]]:
        """One durable consumer per publisher ("notification-<publisher>"), in
        publication order; an alarm and its all-clear strictly in order, one
        at a time, so neither overtakes the other even when one is retried."""
        return [
            Subscription.of_events(
                f"{PREFIX}-user",
                "user",
                EventRoute(user_pb2.UserRegistered, self.on_user_registered),
                EventRoute(user_pb2.UserUpdated, self.on_user_updated),
                EventRoute(user_pb2.UserDeactivated, self.on_user_deactivated),
            ),
            Subscription.of_event(
                f"{PREFIX}-device-status",
                "device",
                device_pb2.DeviceStatusChanged,
                self.on_device_status_changed,
            ),
            Subscription.of_events(
                f"{PREFIX}-dangerous-readings",
                "device",
                EventRoute(device_pb2.DangerousReadingDetected, self.on_danger_detected),
                EventRoute(device_pb2.DangerousReadingCleared, self.on_danger_cleared),
                strictly_ordered=True,
            ),
            Subscription.of_events(
                f"{PREFIX}-billing",
                "billing",
                EventRoute(billing_pb2.InvoiceIssued, self.on_invoice_issued),
                EventRoute(billing_pb2.InvoiceOverdue, self.on_invoice_overdue),
                EventRoute(billing_pb2.PaymentSucceeded, self.on_payment_succeeded),
                EventRoute(billing_pb2.PaymentFailed, self.on_payment_failed),
            ),
            Subscription.of_events(
                f"{PREFIX}-support",
                "support",
                EventRoute(support_pb2.TicketCommentAdded, self.on_ticket_comment_added),
                EventRoute(support_pb2.TicketStatusChanged, self.on_ticket_status_changed),
            ),
        ]
