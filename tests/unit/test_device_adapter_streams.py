"""A stream's state, the registry of streams, liveness and presence reports."""

import asyncio
import uuid

import pytest
from warmhouse.device_adapter.v1 import device_adapter_pb2 as pb

from services.device_adapter.liveness import LivenessSweeper, silent_streams
from services.device_adapter.presence import presence_messages
from services.device_adapter.rate import TokenBucket
from services.device_adapter.streams import (
    MAX_QUEUED_FRAMES,
    MAX_REMEMBERED_COMMANDS,
    Delivery,
    Stream,
    StreamRegistry,
    Warned,
    command_expired,
    ending_error,
    settle,
)
from services.device_adapter.validation import stamp
from services.runtime.errors import Conflict, Unauthenticated, Unavailable

DEVICE = "0b7e8f3c-5a1d-4c2e-9f6a-1d2e3f4a5b6c"


def stream(device_id: str = DEVICE, connection_id: str = "c1", *, seen: float = 100.0) -> Stream:
    return Stream(device_id, connection_id, "1.0", monotonic=seen, wall=1_800_000_000.0)


def command(command_id: str, expire_at: float | None = None) -> pb.ConnectResponse:
    frame = pb.ConnectResponse(command=pb.Command(command_id=command_id))
    if expire_at is not None:
        frame.command.expire_time.CopyFrom(stamp(expire_at))
    return frame


def test_a_newer_stream_of_a_device_replaces_the_older() -> None:
    registry = StreamRegistry()
    older, newer = stream(connection_id="c1"), stream(connection_id="c2")
    assert registry.add(older) is None
    assert registry.add(newer) is older
    assert registry.get(DEVICE) is newer
    assert len(registry) == 1


def test_an_ending_stream_leaves_only_if_still_the_devices_stream() -> None:
    registry = StreamRegistry()
    older, newer = stream(connection_id="c1"), stream(connection_id="c2")
    registry.add(older)
    registry.add(newer)
    assert not registry.remove(older)
    assert registry.get(DEVICE) is newer
    assert registry.remove(newer)
    assert registry.get(DEVICE) is None


def test_adding_the_same_stream_twice_replaces_nothing() -> None:
    registry = StreamRegistry()
    one = stream()
    registry.add(one)
    assert registry.add(one) is None


def test_walking_the_registry_tolerates_streams_leaving() -> None:
    registry = StreamRegistry()
    streams = [stream(device_id=f"d{number}") for number in range(3)]
    for each in streams:
        registry.add(each)
    for each in registry:
        registry.remove(each)
    assert len(registry) == 0


def test_the_first_end_wins_and_tells_whoever_cleans_up_once() -> None:
    ended: list[Stream] = []
    one = Stream(DEVICE, "c1", "1.0", monotonic=0.0, wall=0.0, on_end=ended.append)
    assert one.end(pb.HEARTBEAT_TIMEOUT)
    assert not one.end(pb.CLOSED_BY_DEVICE)
    assert one.reason == pb.HEARTBEAT_TIMEOUT
    assert isinstance(one.error, Unavailable)
    assert ended == [one]


def test_each_reason_has_the_status_the_device_acts_on() -> None:
    assert ending_error(pb.CLOSED_BY_DEVICE) is None
    shutdown, silent = ending_error(pb.ADAPTER_SHUTDOWN), ending_error(pb.HEARTBEAT_TIMEOUT)
    assert isinstance(shutdown, Unavailable)
    assert isinstance(silent, Unavailable)
    assert isinstance(ending_error(pb.REPLACED), Conflict)
    revoked = ending_error(pb.CREDENTIALS_REVOKED)
    assert isinstance(revoked, Unauthenticated)
    assert revoked.reason == "CREDENTIALS_REVOKED"


async def test_commands_leave_in_order() -> None:
    one = stream()
    first, second = one.send(command("a")), one.send(command("b"))
    out = [await one.next_outgoing(), await one.next_outgoing()]
    assert [item[0].command.command_id for item in out if item is not None] == ["a", "b"]
    assert not first.done()
    assert not second.done()


async def test_a_waiting_writer_wakes_for_a_command_and_for_the_end() -> None:
    one = stream()
    waiting = asyncio.create_task(one.next_outgoing())
    await asyncio.sleep(0)
    one.send(command("a"))
    item = await waiting
    assert item is not None
    assert item[0].command.command_id == "a"
    waiting = asyncio.create_task(one.next_outgoing())
    await asyncio.sleep(0)
    one.end(pb.CREDENTIALS_REVOKED)
    assert await waiting is None


async def test_ending_fails_the_commands_not_yet_written() -> None:
    one = stream()
    queued = one.send(command("a"))
    one.end(pb.CLOSED_BY_DEVICE)
    assert queued.done()
    assert queued.result() is Delivery.NOT_WRITTEN
    assert await one.next_outgoing() is None
    late = one.send(command("b"))
    assert late.result() is Delivery.NOT_WRITTEN


async def test_settling_a_future_its_waiter_gave_up_on_is_harmless() -> None:
    written: asyncio.Future[Delivery] = asyncio.get_running_loop().create_future()
    written.cancel()
    settle(written, Delivery.WRITTEN)
    assert written.cancelled()


async def test_a_command_its_requester_withdrew_is_not_written() -> None:
    one = stream()
    withdrawn, kept = one.send(command("a")), one.send(command("b"))
    withdrawn.cancel()
    item = await one.next_outgoing()
    assert item is not None
    assert item[0].command.command_id == "b"
    assert item[1] is kept


async def test_a_command_that_expired_while_queued_is_skipped_as_expired() -> None:
    one = stream()
    now = 1_800_000_000.0
    stale = one.send(command(str(uuid.uuid4()), expire_at=now - 0.001))
    lasting = one.send(command(str(uuid.uuid4()), expire_at=now + 60))
    timeless = one.send(command(str(uuid.uuid4())))
    out = [await one.next_outgoing(lambda: now), await one.next_outgoing(lambda: now)]
    assert [item[1] for item in out if item is not None] == [lasting, timeless]
    assert stale.result() is Delivery.EXPIRED


def test_only_a_command_past_its_expire_time_has_expired() -> None:
    assert command_expired(command("a", expire_at=99.5), now_seconds=100.0)
    assert not command_expired(command("a", expire_at=100.0), now_seconds=100.0)
    assert not command_expired(command("a"), now_seconds=100.0)
    assert not command_expired(pb.ConnectResponse(welcome=pb.Welcome()), now_seconds=100.0)


async def test_the_queue_of_commands_is_bounded() -> None:
    one = stream()
    queued = [one.send(command(f"c{number}")) for number in range(MAX_QUEUED_FRAMES)]
    refused = one.send(command("one too many"))
    assert refused.result() is Delivery.QUEUE_FULL
    assert one.queued == MAX_QUEUED_FRAMES
    # A withdrawn command makes room.
    queued[0].cancel()
    accepted = one.send(command("room again"))
    assert not accepted.done()
    assert one.queued == MAX_QUEUED_FRAMES


async def test_an_answer_is_taken_once_and_only_for_a_command_handed_out() -> None:
    one = stream()
    command_id = str(uuid.uuid4())
    one.send(command(command_id.upper()))
    assert not one.take_answer(command_id)
    await one.next_outgoing()
    assert one.take_answer(command_id)
    assert not one.take_answer(command_id)
    assert not one.take_answer(str(uuid.uuid4()))


async def test_the_commands_a_stream_remembers_are_bounded() -> None:
    one = stream()
    ids = [str(uuid.uuid4()) for _ in range(MAX_REMEMBERED_COMMANDS + 1)]
    for command_id in ids:
        one.send(command(command_id))
        await one.next_outgoing()
    assert not one.take_answer(ids[0])
    assert one.take_answer(ids[1])
    assert one.take_answer(ids[-1])


def test_a_stream_warns_once_about_each_thing() -> None:
    one = stream()
    assert one.warn_once(Warned.RATE_LIMITED)
    assert not one.warn_once(Warned.RATE_LIMITED)
    assert one.warn_once(Warned.UNEXPECTED_ANSWER)


def test_a_streams_samples_are_limited_by_its_budget() -> None:
    limited = Stream(
        DEVICE, "c1", "1.0", monotonic=0.0, wall=0.0, telemetry_budget=TokenBucket(1, 2, now=0.0)
    )
    assert [limited.allow_sample(0.0) for _ in range(3)] == [True, True, False]
    assert stream().allow_sample(0.0)


def test_a_token_bucket_allows_a_burst_then_its_rate() -> None:
    bucket = TokenBucket(rate=2, burst=10, now=100.0)
    assert sum(bucket.take(100.0) for _ in range(15)) == 10
    assert sum(bucket.take(101.0) for _ in range(5)) == 2
    # A long silence refills up to the burst, no more.
    assert sum(bucket.take(1000.0) for _ in range(15)) == 10
    # A clock going backwards refills nothing.
    assert not bucket.take(900.0)


@pytest.mark.parametrize(("rate", "burst"), [(0, 10), (-1, 10), (1, 0.5)])
def test_a_token_bucket_needs_a_rate_and_room(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match="bucket"):
        TokenBucket(rate, burst, now=0.0)


def test_silent_streams_are_those_not_heard_for_longer_than_the_silence() -> None:
    quiet, chatty, gone = stream(seen=10.0), stream(seen=14.0), stream(seen=0.0)
    gone.end(pb.CLOSED_BY_DEVICE)
    assert silent_streams([quiet, chatty, gone], now=25.0, silence_seconds=15.0) == []
    assert silent_streams([quiet, chatty, gone], now=25.5, silence_seconds=15.0) == [quiet]


def test_every_frame_resets_the_silence() -> None:
    one = stream(seen=0.0)
    one.saw_frame(20.0, 1_800_000_020.0)
    assert silent_streams([one], now=25.0, silence_seconds=15.0) == []
    assert one.last_seen_time == 1_800_000_020.0


def test_the_sweeper_ends_silent_streams_after_three_heartbeats() -> None:
    registry = StreamRegistry()
    now = [100.0]
    quiet = stream(device_id="quiet", seen=100.0)
    chatty = stream(device_id="chatty", seen=100.0)
    registry.add(quiet)
    registry.add(chatty)
    sweeper = LivenessSweeper(registry, heartbeat_seconds=5, clock=lambda: now[0])
    now[0] = 115.0
    assert sweeper.sweep() == 0
    chatty.saw_frame(115.0, 0.0)
    now[0] = 115.1
    assert sweeper.sweep() == 1
    assert quiet.reason == pb.HEARTBEAT_TIMEOUT
    assert not chatty.ended


def test_presence_reports_announced_open_streams_in_chunks() -> None:
    streams = [stream(device_id=f"d{number}", connection_id=f"c{number}") for number in range(5)]
    for each in streams:
        each.announced = True
    streams[1].end(pb.CLOSED_BY_DEVICE)
    opening = stream(device_id="opening")
    reports = presence_messages("adapter", [*streams, opening], 15, now=1_800_000_005.0, chunk=2)
    assert [[present.device_id for present in report.devices] for report in reports] == [
        ["d0", "d2"],
        ["d3", "d4"],
    ]
    first = reports[0]
    assert (first.adapter_id, first.lease_seconds) == ("adapter", 15)
    assert first.occur_time == stamp(1_800_000_005.0)
    assert first.devices[0].connection_id == "c0"
    assert first.devices[0].last_seen_time == stamp(1_800_000_000.0)


def test_no_streams_no_presence_report() -> None:
    assert presence_messages("adapter", [], 15, now=0.0) == []
