"""Ending the streams of devices that went silent.

One sweeper walks every stream a few times a second, instead of a timer per
stream: 10,000 comparisons are cheaper than 10,000 timers to re-arm on every
frame.
"""

import asyncio
import time
from collections.abc import Callable, Iterable

from warmhouse.device_adapter.v1 import device_adapter_pb2 as pb

from services.device_adapter.streams import Stream, StreamRegistry
from services.runtime.loops import raise_if_stopping

# Silence for this many heartbeat intervals ends a stream.
SILENT_INTERVALS = 3
MAX_SWEEP_SECONDS = 0.5


def silent_streams(streams: Iterable[Stream], now: float, silence_seconds: float) -> list[Stream]:
    """The open streams last heard more than `silence_seconds` before `now` (monotonic)."""
    return [
        stream
        for stream in streams
        if not stream.ended and now - stream.last_seen_monotonic > silence_seconds
    ]


class LivenessSweeper:
    """A worker: ends silent streams (HEARTBEAT_TIMEOUT)."""

    name = "liveness-sweeper"

    def __init__(
        self,
        registry: StreamRegistry,
        heartbeat_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._silence = SILENT_INTERVALS * heartbeat_seconds
        # A stream ends at most this late after its deadline.
        self._every = min(MAX_SWEEP_SECONDS, self._silence / 6)
        self._clock = clock

    def sweep(self) -> int:
        """End the silent streams now; return how many."""
        silent = silent_streams(self._registry, self._clock(), self._silence)
        for stream in silent:
            stream.end(pb.HEARTBEAT_TIMEOUT)
        return len(silent)

    async def run(self) -> None:
        while True:
            raise_if_stopping()
            self.sweep()
            await asyncio.sleep(self._every)
