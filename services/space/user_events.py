"""What the Space service does with the User service's events.

A deactivated account loses every membership (its homes stay, for an ADMIN
to give a new OWNER if it was their only one) and cannot be added again
until it is reactivated. EventConsumer records each event's id with its
effect, so a redelivered event has no second effect.
"""

import logging
from functools import partial

from nats.js import JetStreamContext
from warmhouse.user.v1 import user_pb2

from services.runtime.clock import Clock, utc_now
from services.runtime.database import Connection, Database
from services.runtime.messaging import EventConsumer, EventContext, Subscription, event_uuid
from services.runtime.outbox import OutboxRelay, add_event
from services.runtime.timestamps import event_time
from services.space.handlers import user_deactivated, user_reactivated
from services.space.repository import sql_repositories

log = logging.getLogger(__name__)


class UserEvents:
    def __init__(self, clock: Clock = utc_now) -> None:
        self._clock = clock

    async def on_deactivated(
        self, connection: Connection, event: user_pb2.UserDeactivated, context: EventContext
    ) -> None:
        user_id = event_uuid(event.user_id, "user", context)
        if user_id is None:
            return
        now = self._clock()
        ended = await user_deactivated(
            sql_repositories(connection),
            partial(add_event, connection),
            user_id,
            event_time(event.occur_time) or now,
            now,
        )
        log.info("deactivated user's memberships ended", extra={"memberships": ended})

    async def on_updated(
        self, connection: Connection, event: user_pb2.UserUpdated, context: EventContext
    ) -> None:
        if not event.is_active:
            return  # UserDeactivated, published with it, does the work
        user_id = event_uuid(event.user_id, "user", context)
        if user_id is not None:
            await user_reactivated(
                sql_repositories(connection),
                user_id,
                event_time(event.occur_time) or self._clock(),
            )

    def consumers(
        self, database: Database, jetstream: JetStreamContext, relay: OutboxRelay
    ) -> tuple[EventConsumer[user_pb2.UserDeactivated], EventConsumer[user_pb2.UserUpdated]]:
        """One durable consumer per event type."""
        return (
            EventConsumer(
                database,
                jetstream,
                Subscription.of_event(
                    "space-user-deactivated", "user", user_pb2.UserDeactivated, self.on_deactivated
                ),
                relay=relay,
            ),
            EventConsumer(
                database,
                jetstream,
                Subscription.of_event(
                    "space-user-updated", "user", user_pb2.UserUpdated, self.on_updated
                ),
                relay=relay,
            ),
        )
