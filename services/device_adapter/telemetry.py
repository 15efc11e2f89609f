"""Telemetry from every stream, published in batches.

Thousands of samples a second would each cost a broker round trip; instead
samples gather in one bounded buffer and leave as a `TelemetryBatch` when 500
have gathered, or 256 KiB of them, or the oldest has waited 50 ms (a batch
stays well below the broker's maximum message). Several batches may be in
flight at once (bounded), each retried with its own `Nats-Msg-Id`
("<adapter id>-<batch number>"), so a retried batch that did land is dropped
by the broker. What cannot be published is dropped and counted: telemetry is
a stream of measurements, the next one is seconds away. A batch the broker
refuses as too large is not retried as it is but published in halves.
"""

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import nats.errors
from warmhouse.device_adapter.v1 import device_adapter_pb2 as pb

from services.device_adapter.events import PublishFunction, publish_with_retries
from services.runtime.loops import raise_if_stopping
from services.runtime.outbox import subject_of

log = logging.getLogger(__name__)
SUBJECT = subject_of(pb.TelemetryBatch())
MAX_BATCH_SAMPLES = 500
# A quarter of NATS's default maximum message (1 MiB).
MAX_BATCH_BYTES = 256 * 1024
MAX_DELAY_SECONDS = 0.05
MAX_IN_FLIGHT = 8
MAX_BUFFERED_SAMPLES = 100_000
RETRY_DELAYS_SECONDS = (0.2, 0.5, 1.0, 2.0)
# At stop, what is buffered or in flight gets this long to go out.
FINAL_FLUSH_SECONDS = 3.0
# Counted always, logged once per this many drops.
_LOG_DROPS_EVERY = 10_000


@dataclass
class TelemetryCounters:
    """Samples so far: for logs, tests and benchmarks."""

    # Handed to the publisher (valid samples).
    accepted: int = 0
    # Acknowledged by the broker.
    published: int = 0
    # Dropped: the buffer was full (the oldest went).
    dropped_overflow: int = 0
    # Dropped: their batch could not be published after its retries.
    dropped_unpublished: int = 0
    # Dropped: a sample alone larger than the broker takes.
    dropped_oversized: int = 0
    # Refused by validation before reaching the publisher.
    rejected: int = 0
    # Dropped before validation: its stream sent more than its rate allows.
    rate_limited: int = 0

    @property
    def dropped(self) -> int:
        return self.dropped_overflow + self.dropped_unpublished + self.dropped_oversized


def _batch_cost(sample: pb.TelemetryReceived) -> int:
    """The bytes `sample` adds to a TelemetryBatch: its tag, its length, itself."""
    size = sample.ByteSize()
    return 1 + max(1, (size.bit_length() + 6) // 7) + size


class TelemetryPublisher:
    """A worker: batches what `add` receives and publishes it."""

    name = "telemetry-publisher"

    def __init__(
        self,
        publish: PublishFunction,
        adapter_id: str,
        *,
        max_samples: int = MAX_BATCH_SAMPLES,
        max_bytes: int = MAX_BATCH_BYTES,
        max_delay_seconds: float = MAX_DELAY_SECONDS,
        max_in_flight: int = MAX_IN_FLIGHT,
        max_buffered: int = MAX_BUFFERED_SAMPLES,
        retry_delays: Sequence[float] = RETRY_DELAYS_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_samples < 1 or max_bytes < 1 or max_in_flight < 1 or max_buffered < max_samples:
            raise ValueError("a batch needs room: 1 <= max_samples <= max_buffered, max_bytes >= 1")
        self.counters = TelemetryCounters()
        self._publish = publish
        self._adapter_id = adapter_id
        self._max_samples = max_samples
        self._max_bytes = max_bytes
        self._max_delay = max_delay_seconds
        self._max_buffered = max_buffered
        self._retry_delays = tuple(retry_delays)
        self._clock = clock
        # Each sample with what it adds to a batch's size.
        self._buffer: deque[tuple[pb.TelemetryReceived, int]] = deque()
        self._buffered_bytes = 0
        # When the oldest buffered sample arrived (monotonic), None when empty.
        self._oldest_at: float | None = None
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._batches = 0

    def add(self, sample: pb.TelemetryReceived) -> None:
        """Buffer a sample (never blocks: when the buffer is full the oldest goes)."""
        self.counters.accepted += 1
        if len(self._buffer) >= self._max_buffered:
            self._buffered_bytes -= self._buffer.popleft()[1]
            self.counters.dropped_overflow += 1
            if self.counters.dropped_overflow % _LOG_DROPS_EVERY == 1:
                log.warning(
                    "telemetry buffer full; dropping the oldest samples",
                    extra={"droppedOverflow": self.counters.dropped_overflow},
                )
        if not self._buffer:
            self._oldest_at = self._clock()
            self._arrived.set()
        cost = _batch_cost(sample)
        self._buffer.append((sample, cost))
        self._buffered_bytes += cost
        if self._batch_due():
            self._full.set()

    def reject(self) -> None:
        """Count a sample validation refused."""
        self.counters.rejected += 1

    def rate_limit(self) -> None:
        """Count a sample dropped because its stream exceeded its rate."""
        self.counters.rate_limited += 1

    def _batch_due(self) -> bool:
        return len(self._buffer) >= self._max_samples or self._buffered_bytes >= self._max_bytes

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    async def run(self) -> None:
        try:
            while True:
                raise_if_stopping()
                await self._wait_for_batch()
                await self._slots.acquire()
                self._start_publishing(self._take())
        finally:
            await self._flush_at_stop()

    async def _wait_for_batch(self) -> None:
        """Until a batch is due: `max_samples` or `max_bytes` buffered, or the oldest has
        waited long enough."""
        while not self._buffer:
            self._arrived.clear()
            await self._arrived.wait()
        while not self._batch_due():
            assert self._oldest_at is not None
            remaining = self._oldest_at + self._max_delay - self._clock()
            if remaining <= 0:
                return
            self._full.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._full.wait()

    def _take(self) -> list[pb.TelemetryReceived]:
        """The oldest samples, at most `max_samples` and `max_bytes` of them (at least one)."""
        batch: list[pb.TelemetryReceived] = []
        size = 0
        while self._buffer and len(batch) < self._max_samples:
            sample, cost = self._buffer[0]
            if batch and size + cost > self._max_bytes:
                break
            self._buffer.popleft()
            self._buffered_bytes -= cost
            batch.append(sample)
            size += cost
        # Whatever is left came in while this batch filled: due soon, not now.
        self._oldest_at = self._clock() if self._buffer else None
        if not self._batch_due():
            self._full.clear()
        return batch

    def _next_msg_id(self) -> str:
        self._batches += 1
        return f"{self._adapter_id}-{self._batches}"

    def _start_publishing(self, batch: list[pb.TelemetryReceived]) -> None:
        msg_id = self._next_msg_id()
        task = asyncio.create_task(self._publish_batch(batch, msg_id), name=f"telemetry {msg_id}")
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _publish_batch(self, batch: list[pb.TelemetryReceived], msg_id: str) -> None:
        try:
            await self._publish_fitting(batch, msg_id)
        finally:
            self._slots.release()

    async def _publish_fitting(self, batch: list[pb.TelemetryReceived], msg_id: str) -> None:
        """Publish `batch`, in halves (each its own message id) if the broker finds it too large."""
        try:
            payload = pb.TelemetryBatch(samples=batch).SerializeToString()
            await publish_with_retries(self._publish, SUBJECT, payload, msg_id, self._retry_delays)
            self.counters.published += len(batch)
        except nats.errors.MaxPayloadError:
            if len(batch) == 1:
                self.counters.dropped_oversized += 1
                log.warning(
                    "a telemetry sample larger than the broker takes dropped",
                    extra={"droppedOversized": self.counters.dropped_oversized},
                )
                return
            log.warning(
                "telemetry batch %s too large for the broker; publishing it in halves",
                msg_id,
                extra={"samples": len(batch)},
            )
            middle = len(batch) // 2
            for half in (batch[:middle], batch[middle:]):
                await self._publish_fitting(half, self._next_msg_id())
        except Exception:
            self.counters.dropped_unpublished += len(batch)
            log.exception(
                "telemetry batch %s dropped after retries",
                msg_id,
                extra={
                    "samples": len(batch),
                    "droppedUnpublished": self.counters.dropped_unpublished,
                },
            )

    async def _flush_at_stop(self) -> None:
        """Publish what is left (the streams have ended by now), for a bounded time."""
        try:
            async with asyncio.timeout(FINAL_FLUSH_SECONDS):
                while self._buffer:
                    await self._slots.acquire()
                    self._start_publishing(self._take())
                if self._in_flight:
                    await asyncio.wait(set(self._in_flight))
        except TimeoutError:
            log.warning("telemetry not published before stopping", extra={"lost": self.buffered})
        finally:
            for task in self._in_flight:
                task.cancel()
