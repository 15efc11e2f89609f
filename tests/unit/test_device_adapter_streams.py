"""A stream's state, the registry of streams, liveness and presence reports."""

import asyncio

from warmhouse.device_adapter.v1 import device_adapter_pb2 as pb

from services.device_adapter.liveness import LivenessSweeper, silent_streams
from services.device_adapter.presence import presence_messages
from services.device_adapter.streams import Stream, StreamRegistry, ending_error, settle
from services.device_adapter.validation import stamp
from services.runtime.errors import Conflict, Unauthenticated, Unavailable

DEVICE = "0b7e8f3c-5a1d-4c2e-9f6a-1d2e3f4a5b6c"


def stream(device_id: str = DEVICE, connection_id: str = "c1", *, seen: float = 100.0) -> Stream:
    return Stream(device_id, connection_id, "1.0", monotonic=seen, wall=1_800_000_000.0)


def command(command_id: str) -> pb.ConnectResponse:
    return pb.ConnectResponse(command=pb.Command(command_id=command_id))


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
    assert queued.result() is False
    assert await one.next_outgoing() is None
    late = one.send(command("b"))
    assert late.result() is False


async def test_settling_a_future_its_waiter_gave_up_on_is_harmless() -> None:
    written: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    written.cancel()
    settle(written, ok=True)
    assert written.cancelled()


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
