"""The telemetry publisher's batching rules, with a fake broker."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import nats.errors
import pytest
from warmhouse.device_adapter.v1 import device_adapter_pb2 as pb

from services.device_adapter.events import publish_with_retries
from services.device_adapter.telemetry import SUBJECT, TelemetryPublisher
from tests.polling import eventually

ADAPTER = "adapter-1"


def sample(number: int, device_id: str = "") -> pb.TelemetryReceived:
    return pb.TelemetryReceived(
        device_id=device_id or f"device-{number:03}",
        telemetry=pb.Telemetry(temperature_celsius=float(number)),
    )


# What one sample adds to a batch: its tag, its length, itself.
SAMPLE_COST = 2 + sample(0).ByteSize()


class FakeBroker:
    """Records what is published; can fail the first attempts or hold publishes."""

    def __init__(self, failures: int = 0, max_payload: int = 1024 * 1024) -> None:
        self.failures = failures
        self.max_payload = max_payload
        self.payload_sizes: list[int] = []
        self.attempts: list[str] = []
        self.batches: list[tuple[str, list[int]]] = []
        self.subjects: set[str] = set()
        self.gate: asyncio.Event | None = None
        self.holding = 0

    async def publish(self, subject: str, payload: bytes, msg_id: str) -> None:
        self.attempts.append(msg_id)
        if len(payload) > self.max_payload:
            raise nats.errors.MaxPayloadError
        self.payload_sizes.append(len(payload))
        if self.gate is not None:
            self.holding += 1
            await self.gate.wait()
            self.holding -= 1
        if self.failures:
            self.failures -= 1
            raise TimeoutError("no ack")
        self.subjects.add(subject)
        batch = pb.TelemetryBatch.FromString(payload)
        numbers = [int(received.telemetry.temperature_celsius) for received in batch.samples]
        self.batches.append((msg_id, numbers))

    @property
    def sizes(self) -> list[int]:
        return [len(numbers) for _, numbers in self.batches]


@contextlib.asynccontextmanager
async def running(publisher: TelemetryPublisher) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(publisher.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def publisher_for(
    broker: FakeBroker,
    *,
    max_samples: int = 500,
    max_bytes: int = 256 * 1024,
    max_delay_seconds: float = 3600.0,
    max_in_flight: int = 8,
    max_buffered: int = 100_000,
) -> TelemetryPublisher:
    return TelemetryPublisher(
        broker.publish,
        ADAPTER,
        max_samples=max_samples,
        max_bytes=max_bytes,
        max_delay_seconds=max_delay_seconds,
        max_in_flight=max_in_flight,
        max_buffered=max_buffered,
        retry_delays=(0.0, 0.0),
    )


async def test_a_full_batch_goes_at_once_and_the_rest_waits_for_its_time() -> None:
    broker = FakeBroker()
    publisher = publisher_for(broker, max_samples=3, max_delay_seconds=3600.0)
    async with running(publisher):
        for number in range(7):
            publisher.add(sample(number))
        await eventually(lambda: broker.sizes == [3, 3], what="two full batches")
        assert publisher.buffered == 1
    assert [numbers for _, numbers in broker.batches[:2]] == [[0, 1, 2], [3, 4, 5]]
    assert broker.subjects == {SUBJECT}
    assert SUBJECT == "warmhouse.device_adapter.v1.TelemetryBatch"


async def test_a_partial_batch_goes_once_its_oldest_sample_has_waited() -> None:
    broker = FakeBroker()
    publisher = publisher_for(broker, max_samples=500, max_delay_seconds=0.01)
    async with running(publisher):
        publisher.add(sample(1))
        publisher.add(sample(2))
        await eventually(lambda: broker.sizes == [2], what="a partial batch")
        publisher.add(sample(3))
        await eventually(lambda: broker.sizes == [2, 1], what="the next partial batch")
    assert publisher.counters.published == 3
    assert publisher.counters.accepted == 3


async def test_each_batch_has_its_own_message_id() -> None:
    broker = FakeBroker()
    publisher = publisher_for(broker, max_samples=1, max_delay_seconds=3600.0)
    async with running(publisher):
        for number in range(3):
            publisher.add(sample(number))
        await eventually(lambda: len(broker.batches) == 3)
    assert sorted(msg_id for msg_id, _ in broker.batches) == [
        f"{ADAPTER}-1",
        f"{ADAPTER}-2",
        f"{ADAPTER}-3",
    ]


async def test_a_failed_publish_is_retried_with_the_same_message_id() -> None:
    broker = FakeBroker(failures=2)
    publisher = publisher_for(broker, max_samples=2, max_delay_seconds=3600.0)
    async with running(publisher):
        publisher.add(sample(1))
        publisher.add(sample(2))
        await eventually(lambda: broker.sizes == [2])
    assert broker.attempts == [f"{ADAPTER}-1"] * 3
    assert publisher.counters.published == 2
    assert publisher.counters.dropped == 0


async def test_a_batch_that_never_publishes_is_dropped_and_counted() -> None:
    broker = FakeBroker(failures=100)
    publisher = publisher_for(broker, max_samples=2, max_delay_seconds=3600.0)
    async with running(publisher):
        publisher.add(sample(1))
        publisher.add(sample(2))
        await eventually(lambda: publisher.counters.dropped_unpublished == 2)
        # The publisher goes on with the next batch.
        broker.failures = 0
        publisher.add(sample(3))
        publisher.add(sample(4))
        await eventually(lambda: broker.sizes == [2])
    assert len(broker.attempts) == 4
    assert broker.batches[0][1] == [3, 4]


async def test_a_full_buffer_drops_the_oldest_samples() -> None:
    broker = FakeBroker()
    publisher = publisher_for(broker, max_samples=3, max_buffered=3, max_delay_seconds=3600.0)
    for number in range(5):
        publisher.add(sample(number))
    assert publisher.buffered == 3
    assert publisher.counters.dropped_overflow == 2
    async with running(publisher):
        await eventually(lambda: broker.sizes == [3])
    assert broker.batches[0][1] == [2, 3, 4]
    assert publisher.counters.accepted == 5


async def test_batches_in_flight_are_bounded() -> None:
    broker = FakeBroker()
    broker.gate = asyncio.Event()
    publisher = publisher_for(broker, max_samples=1, max_in_flight=2, max_delay_seconds=3600.0)
    async with running(publisher):
        for number in range(5):
            publisher.add(sample(number))
        await eventually(lambda: broker.holding == 2)
        for _ in range(20):
            await asyncio.sleep(0)
        assert broker.holding == 2
        assert publisher.buffered == 3
        broker.gate.set()
        await eventually(lambda: len(broker.batches) == 5)
    assert sorted(numbers[0] for _, numbers in broker.batches) == [0, 1, 2, 3, 4]


async def test_what_is_buffered_at_stop_is_still_published() -> None:
    broker = FakeBroker()
    publisher = publisher_for(broker, max_samples=500, max_delay_seconds=3600.0)
    task = asyncio.create_task(publisher.run())
    publisher.add(sample(1))
    publisher.add(sample(2))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert broker.batches == [(f"{ADAPTER}-1", [1, 2])]
    assert publisher.counters.published == 2


def test_a_rejected_sample_is_counted() -> None:
    publisher = publisher_for(FakeBroker())
    publisher.reject()
    assert publisher.counters.rejected == 1
    assert publisher.counters.accepted == 0


def test_a_batch_must_fit_in_the_buffer() -> None:
    with pytest.raises(ValueError, match="room"):
        publisher_for(FakeBroker(), max_samples=10, max_buffered=5)


async def test_a_batch_is_bounded_by_its_serialized_size() -> None:
    broker = FakeBroker()
    publisher = publisher_for(broker, max_bytes=3 * SAMPLE_COST, max_delay_seconds=3600.0)
    async with running(publisher):
        for number in range(7):
            publisher.add(sample(number))
        # Due by size alone: neither 500 samples nor the delay were reached.
        await eventually(lambda: broker.sizes == [3, 3], what="two batches full by size")
        assert publisher.buffered == 1
    # The one left went at stop.
    assert broker.payload_sizes == [3 * SAMPLE_COST, 3 * SAMPLE_COST, SAMPLE_COST]


async def test_a_sample_larger_than_a_batch_may_be_goes_alone() -> None:
    broker = FakeBroker()
    publisher = publisher_for(broker, max_bytes=2 * SAMPLE_COST, max_delay_seconds=3600.0)
    async with running(publisher):
        publisher.add(sample(1))
        publisher.add(sample(2, device_id="d" * 100))
        publisher.add(sample(3))
        await eventually(lambda: broker.sizes == [1, 1], what="each alone")
        assert publisher.buffered == 1
    assert [numbers for _, numbers in broker.batches] == [[1], [2], [3]]


async def test_a_batch_too_large_for_the_broker_goes_in_halves_not_retried_as_it_is() -> None:
    broker = FakeBroker(max_payload=2 * SAMPLE_COST)
    publisher = publisher_for(broker, max_samples=4, max_delay_seconds=3600.0)
    async with running(publisher):
        for number in range(4):
            publisher.add(sample(number))
        await eventually(lambda: publisher.counters.published == 4, what="all published")
    assert broker.attempts == [f"{ADAPTER}-1", f"{ADAPTER}-2", f"{ADAPTER}-3"]
    assert broker.batches == [(f"{ADAPTER}-2", [0, 1]), (f"{ADAPTER}-3", [2, 3])]
    assert publisher.counters.dropped == 0


async def test_a_sample_too_large_for_the_broker_alone_is_dropped_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = FakeBroker(max_payload=2 * SAMPLE_COST)
    publisher = publisher_for(broker, max_samples=2, max_delay_seconds=3600.0)
    async with running(publisher):
        publisher.add(sample(1, device_id="d" * 100))
        publisher.add(sample(2))
        await eventually(lambda: publisher.counters.dropped_oversized == 1)
        await eventually(lambda: publisher.counters.published == 1)
    assert [numbers for _, numbers in broker.batches] == [[2]]
    assert publisher.counters.dropped == 1
    dropped = [record for record in caplog.records if "larger than the broker" in record.message]
    assert len(dropped) == 1
    assert dropped[0].levelno == logging.WARNING
    assert all(record.exc_info is None for record in caplog.records)


async def test_a_message_too_large_is_not_published_again() -> None:
    attempts: list[str] = []

    async def refuse(subject: str, payload: bytes, msg_id: str) -> None:
        attempts.append(msg_id)
        raise nats.errors.MaxPayloadError

    with pytest.raises(nats.errors.MaxPayloadError):
        await publish_with_retries(refuse, SUBJECT, b"x", "m1", delays=(0.0, 0.0))
    assert attempts == ["m1"]


def test_a_sample_dropped_for_its_streams_rate_is_counted() -> None:
    publisher = publisher_for(FakeBroker())
    publisher.rate_limit()
    assert publisher.counters.rate_limited == 1
    assert publisher.counters.accepted == 0
