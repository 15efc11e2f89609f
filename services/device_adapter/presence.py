"""Every few seconds: "these devices are still here", so a replica that dies
without a word (kill -9) loses its devices when the lease runs out."""

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Sequence

from warmhouse.device_adapter.v1 import device_adapter_pb2 as pb

from services.device_adapter.events import EventPublisher
from services.device_adapter.streams import Stream, StreamRegistry
from services.device_adapter.validation import stamp
from services.runtime.loops import raise_if_stopping

log = logging.getLogger(__name__)
DEVICES_PER_MESSAGE = 1000
# A report holds for this many periods: one lost report is no outage.
LEASE_PERIODS = 3


def lease_for(every_seconds: float) -> int:
    """How long a report made every `every_seconds` holds: a late one or two is forgiven."""
    return max(1, round(LEASE_PERIODS * every_seconds))


def presence_messages(
    adapter_id: str,
    streams: Iterable[Stream],
    lease_seconds: int,
    now: float,
    chunk: int = DEVICES_PER_MESSAGE,
) -> list[pb.DevicesPresent]:
    """The reports for `streams` that are announced and still open, `chunk`
    devices per message; none when there are none."""
    present = (
        pb.Presence(
            device_id=stream.device_id,
            connection_id=stream.connection_id,
            last_seen_time=stamp(stream.last_seen_time),
        )
        for stream in streams
        if stream.announced and not stream.ended
    )
    occur_time = stamp(now)
    return [
        pb.DevicesPresent(
            adapter_id=adapter_id,
            devices=devices,
            lease_seconds=lease_seconds,
            occur_time=occur_time,
        )
        for devices in _chunks(present, chunk)
    ]


def _chunks(items: Iterable[pb.Presence], size: int) -> Iterable[Sequence[pb.Presence]]:
    iterator = iter(items)
    while chunk := tuple(itertools.islice(iterator, size)):
        yield chunk


class PresencePublisher:
    """A worker: reports the streams this replica holds every `every_seconds`."""

    name = "presence-publisher"

    def __init__(
        self,
        registry: StreamRegistry,
        events: EventPublisher,
        adapter_id: str,
        every_seconds: float,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._registry = registry
        self._events = events
        self._adapter_id = adapter_id
        self._every = every_seconds
        self._lease_seconds = lease_for(every_seconds)
        self._wall_clock = wall_clock
        self._reports = 0

    async def run(self) -> None:
        while True:
            raise_if_stopping()
            try:
                await self.publish_once()
            except Exception:
                raise_if_stopping()
                log.warning("presence report failed; will report again", exc_info=True)
            await asyncio.sleep(self._every)

    async def publish_once(self) -> int:
        """Publish the current reports; return how many messages went out."""
        messages = presence_messages(
            self._adapter_id, self._registry, self._lease_seconds, self._wall_clock()
        )
        for message in messages:
            self._reports += 1
            await self._events.publish(message, f"{self._adapter_id}-presence-{self._reports}")
        return len(messages)
