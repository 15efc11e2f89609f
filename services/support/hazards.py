"""The safety chain: Device's dangerous readings open URGENT tickets.

DangerousReadingDetected opens one URGENT ticket per episode, on behalf of
the owner of the device's home, linked to its space and device. The episode
lasts until DangerousReadingCleared, which writes the platform's comment on
the ticket and resolves it. A second detection during an episode, and a
detection not after the last clearance (a late redelivery), do nothing.
Everything happens in the consumer's transaction, which also records the
event's id: a redelivered event has no second effect.
"""

import logging
import uuid
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any

from nats.js import JetStreamContext
from warmhouse.device.v1 import device_pb2

from services.runtime import home_directory
from services.runtime.clock import Clock, utc_now
from services.runtime.database import Connection, Database
from services.runtime.home_directory import DevicePlace
from services.runtime.messaging import EventConsumer, EventContext, EventRoute, Subscription
from services.runtime.outbox import OutboxRelay, add_event
from services.runtime.request import enum_name
from services.runtime.timestamps import event_time
from services.support import domain
from services.support.comments import add_comment
from services.support.domain import CLOSED, RESOLVED, URGENT, Actor, Deadlines
from services.support.records import CommentRecord, EpisodeRecord
from services.support.repository import SupportRepository
from services.support.tickets import new_ticket, open_ticket, status_changed

log = logging.getLogger(__name__)
GAS_LEAK, OVERHEATING = "GAS_LEAK", "OVERHEATING"
HAZARD_TITLES = {GAS_LEAK: "Gas leak alarm", OVERHEATING: "Overheating"}
DURABLE = "support-dangerous-readings"
# Deliveries (2 s apart) of an alarm whose home has no known owner before it is
# taken for a home without one.
OWNER_PATIENCE = 15


class NoOwnerYet(Exception):
    """The device's home has no known owner yet (the projection lags): the
    event is redelivered later, when Space's events have arrived."""


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment is not None else "an unknown time"


def describe_reading(reading: device_pb2.Reading) -> str:
    """ "temperature 81.5 °C, gas alarm on (sampled 2026-01-01 10:00:00 UTC)" """
    parts = []
    if reading.HasField("temperature_celsius"):
        parts.append(f"temperature {reading.temperature_celsius:.1f} °C")
    if reading.HasField("gas_alarm"):
        parts.append(f"gas alarm {'on' if reading.gas_alarm else 'off'}")
    values = ", ".join(parts) or "no values reported"
    sampled = event_time(reading.sample_time)
    return f"{values} (sampled {_when(sampled)})" if sampled is not None else values


def hazard_subject(
    hazard: str, place: DevicePlace | None, device_id: uuid.UUID, space_id: uuid.UUID | None
) -> str:
    """ "Gas leak alarm: Boiler sensor in Kitchen", with ids when names are unknown."""
    device = place.device_name if place is not None and place.device_name else f"device {device_id}"
    if place is not None and place.space_name:
        room = f" in {place.space_name}"
    elif space_id is not None:
        room = f" in space {space_id}"
    else:
        room = ""
    where = f"{device}{room}"
    subject = f"{HAZARD_TITLES[hazard]}: {where}"
    if len(subject) > domain.SUBJECT_MAX_LENGTH:
        subject = subject[: domain.SUBJECT_MAX_LENGTH - 1] + "…"
    return subject


def hazard_description(hazard: str, event: device_pb2.DangerousReadingDetected) -> str:
    what = "raised its gas alarm" if hazard == GAS_LEAK else "reported a dangerous temperature"
    return (
        f"The device {what} at {_when(event_time(event.occur_time))}: "
        f"{describe_reading(event.reading)}.\n"
        "This ticket was opened automatically; support will contact you."
    )


def _parse(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


class HazardTickets:
    """The consumers' handlers (call them directly with a connection in tests)."""

    def __init__(
        self,
        deadlines: Deadlines,
        clock: Clock = utc_now,
        catch_up: home_directory.CatchUp | None = None,
    ) -> None:
        self._deadlines = deadlines
        self._clock = clock
        # Before reading whose home it is (None: read it as it is).
        self._catch_up = catch_up

    def _readable(
        self, device_id: str, hazard_value: int, context: EventContext
    ) -> tuple[uuid.UUID, str] | None:
        device = _parse(device_id)
        hazard = enum_name(device_pb2.Hazard.DESCRIPTOR, hazard_value)
        if device is None or hazard not in HAZARD_TITLES:
            # Redelivering it would not make it readable.
            log.error("dangerous-reading event %s is malformed; ignored", context.event_id)
            return None
        return device, hazard

    async def on_detected(
        self,
        connection: Connection,
        event: device_pb2.DangerousReadingDetected,
        context: EventContext,
    ) -> None:
        readable = self._readable(event.device_id, event.hazard, context)
        if readable is None:
            return
        device_id, hazard = readable
        now = self._clock()
        detected_at = event_time(event.occur_time) or now
        repos = SupportRepository(connection)
        await repos.hold_hazard(device_id, hazard)
        if await repos.open_episode(device_id, hazard) is not None:
            return  # this episode has its ticket already
        last_cleared = await repos.last_cleared(device_id, hazard)
        if last_cleared is not None and detected_at <= last_cleared:
            return  # an episode already over
        if self._catch_up is not None:
            await self._catch_up.require(context)
        place = await repos.device_place(device_id)
        space_id = _parse(event.space_id) or (place.space_id if place is not None else None)
        owner = await repos.primary_owner(space_id, now) if space_id is not None else None
        if owner is None:
            if context.delivery_attempt < OWNER_PATIENCE:
                # Redelivered 2 s later: Space's events may still be on their way.
                raise NoOwnerYet(f"no owner known for the home of device {device_id}")
            # A home without an OWNER (its only one deactivated): no one to open it for.
            log.error(
                "no URGENT ticket for a dangerous reading: its home has no owner",
                extra={"device": str(device_id), "hazard": hazard, "event": context.event_id},
            )
            return
        ticket = new_ticket(
            owner,
            hazard_subject(hazard, place, device_id, space_id),
            hazard_description(hazard, event),
            URGENT,
            space_id,
            device_id,
            self._deadlines,
            now,
        )
        await open_ticket(repos, partial(add_event, connection), ticket)
        await repos.add_episode(
            EpisodeRecord(uuid.uuid4(), device_id, hazard, ticket.id, detected_at, None)
        )
        log.info(
            "opened an URGENT ticket for a dangerous reading",
            extra={"ticket": str(ticket.id), "device": str(device_id), "hazard": hazard},
        )

    async def on_cleared(
        self,
        connection: Connection,
        event: device_pb2.DangerousReadingCleared,
        context: EventContext,
    ) -> None:
        readable = self._readable(event.device_id, event.hazard, context)
        if readable is None:
            return
        device_id, hazard = readable
        now = self._clock()
        cleared_at = event_time(event.occur_time) or now
        repos = SupportRepository(connection)
        await repos.hold_hazard(device_id, hazard)
        episode = await repos.open_episode(device_id, hazard)
        if episode is None:
            # Cleared before its detection arrived: remembered, so that detection is ignored.
            await repos.add_episode(
                EpisodeRecord(uuid.uuid4(), device_id, hazard, None, None, cleared_at)
            )
            return
        if episode.detected_at is not None and cleared_at < episode.detected_at:
            return  # a clearance of an earlier episode, delivered late
        await repos.clear_episode(episode.id, cleared_at)
        ticket = await repos.ticket(episode.ticket_id, lock=True) if episode.ticket_id else None
        if ticket is None or ticket.status == CLOSED:
            return  # a CLOSED ticket takes no more comments
        publish = partial(add_event, connection)
        comment = CommentRecord(
            uuid.uuid4(),
            ticket.id,
            None,
            f"Readings are back to normal at {_when(cleared_at)}: "
            f"{describe_reading(event.reading)}.",
            False,
            now,
        )
        await add_comment(repos, publish, ticket, comment)
        if domain.check_move(Actor.PLATFORM, ticket.status, RESOLVED):
            resolved = replace(ticket, status=RESOLVED, updated_at=now)
            await repos.save_ticket(resolved)
            await status_changed(publish, ticket, resolved, "")

    def consumers(
        self, database: Database, jetstream: JetStreamContext, relay: OutboxRelay
    ) -> list[EventConsumer[Any]]:
        """One consumer for both, strictly in order: an all-clear never
        overtakes its alarm, even when the alarm is being retried."""
        subscription = Subscription.of_events(
            DURABLE,
            "device",
            EventRoute(device_pb2.DangerousReadingDetected, self.on_detected),
            EventRoute(device_pb2.DangerousReadingCleared, self.on_cleared),
            strictly_ordered=True,
        )
        return [EventConsumer(database, jetstream, subscription, relay=relay)]
