"""The safety chain end to end: a simulated gas sensor's alarm reaches every
member of its home by SMS, push and e-mail (the local stack's real SMTP server
and HTTP gateways), and Support opens an URGENT ticket for the owner; clearing
tells everyone and resolves the ticket. Restarting Notification or Support in
the middle loses and repeats nothing."""

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from services.devstack.stack import Stack
from services.message_sandbox.inbox import Inbox, text_of
from services.message_sandbox.store import CHANNELS, EMAIL
from tests.e2e.device_loop import Hardware, adapter_address, running, within
from tests.e2e.homes import Person, ok
from tests.e2e.people import Resident, distinct, household, received_since
from tests.e2e.rest import Rest

# The bound from alarm to every member's SMS, push and e-mail.
ALARM_BOUND_SECONDS = 5.0
FAST = 0.05


async def every_member_told(
    inbox: Inbox, residents: tuple[Resident, ...], since: float, count: int, within_s: float
) -> list[float]:
    """Waits until each resident holds `count` messages on every channel since
    `since`; returns each first message's delay."""

    def missing() -> list[str]:
        return [
            f"{who.person.email} by {channel}"
            for who in residents
            for channel in CHANNELS
            if distinct(received_since(inbox, who, channel, since)) < count
        ]

    try:
        await within(within_s, lambda: not missing(), f"{count} message(s) per member and channel")
    except AssertionError as error:
        raise AssertionError(f"{error}; missing: {missing()}") from None
    return [
        received_since(inbox, who, channel, since)[count - 1]["receivedAt"] - since
        for who in residents
        for channel in CHANNELS
    ]


def tickets_about(api: Rest, owner: Person, device_id: str) -> list[dict[str, Any]]:
    body = ok(api.call("GET", "/tickets?pageSize=100", token=owner.token))
    return [t for t in body.get("tickets", []) if t.get("deviceId") == device_id]


def comments(api: Rest, owner: Person, ticket_id: str) -> list[dict[str, Any]]:
    body = ok(api.call("GET", f"/tickets/{ticket_id}/comments", token=owner.token))
    return list(body.get("comments", []))


async def test_a_gas_leak_reaches_every_member_opens_an_urgent_ticket_and_clears(
    api: Rest, stack: Stack, inbox: Inbox
) -> None:
    house = household(api)
    sensor = Hardware(api, house.home, "SENSOR")
    async with running(sensor.simulated(adapter_address(stack), telemetry_interval=FAST)) as sim:
        await sim.wait_connected(10)
        await asyncio.sleep(0.5)
        raised = time.time()
        sim.gas_alarm(True)
        delays = await every_member_told(inbox, house.residents, raised, 1, ALARM_BOUND_SECONDS)
        assert max(delays) < ALARM_BOUND_SECONDS, delays

        owner, maintainer, _ = house.residents
        sms = received_since(inbox, owner, "sms", raised)[0]
        assert "gas" in sms["body"].lower(), sms
        assert "Котельная" in sms["body"], sms
        russian = received_since(inbox, maintainer, EMAIL, raised)[0]
        assert "газ" in text_of(russian).lower(), russian

        async def ticket_opened() -> bool:
            return len(tickets_about(api, owner.person, sensor.device_id)) == 1

        await within(10, ticket_opened, "an URGENT ticket")
        [ticket] = tickets_about(api, owner.person, sensor.device_id)
        assert ticket["priority"] == "URGENT"
        assert ticket["status"] == "OPEN"
        assert ticket["userId"] == owner.person.user_id
        assert ticket["spaceId"] == house.home.room_id

        # The sensor goes on reporting the leak: the same episode sends nothing new.
        await asyncio.sleep(1.5)
        for who in house.residents:
            for channel in CHANNELS:
                assert distinct(received_since(inbox, who, channel, raised)) == 1, (who, channel)

        cleared = time.time()
        sim.gas_alarm(False)
        await every_member_told(inbox, house.residents, cleared, 1, 10)

        async def resolved() -> bool:
            [current] = tickets_about(api, owner.person, sensor.device_id)
            return bool(current["status"] == "RESOLVED")

        await within(10, resolved, "the ticket RESOLVED")
        notes = comments(api, owner.person, ticket["ticketId"])
        assert [note.get("authorId", "") for note in notes] == [""], notes
        for channel in CHANNELS:
            assert received_since(inbox, house.stranger, channel, raised) == []
        for who in house.residents:
            for channel in CHANNELS:
                assert distinct(received_since(inbox, who, channel, raised)) == 2, (who, channel)


@pytest.fixture
def restarted(stack: Stack) -> Iterator[None]:
    """Leaves Notification and Support running whatever the test did."""
    yield
    for name in ("notification", "support"):
        service = stack.services[name]
        if not service.process.running:
            service.start()


async def test_nothing_in_the_chain_is_lost_or_repeated_across_restarts(
    api: Rest, stack: Stack, inbox: Inbox, restarted: None
) -> None:
    house = household(api)
    owner = house.residents[0]
    sensor = Hardware(api, house.home, "SENSOR")
    notification, support = stack.services["notification"], stack.services["support"]
    async with running(sensor.simulated(adapter_address(stack), telemetry_interval=FAST)) as sim:
        await sim.wait_connected(10)
        await asyncio.sleep(0.5)
        # Both down when the alarm goes off: its events wait in the broker.
        notification.stop()
        support.stop()
        raised = time.time()
        sim.gas_alarm(True)

        async def alarm_logged() -> bool:
            return len(await sensor.logs("ALARM_RAISED")) == 1

        await within(10, alarm_logged, "the alarm raised")
        await asyncio.to_thread(support.start)
        await asyncio.to_thread(notification.start)
        await every_member_told(inbox, house.residents, raised, 1, 60)

        # Killed while telling everyone the leak cleared: picked up again after.
        cleared = time.time()
        sim.gas_alarm(False)

        async def first_clear_sent() -> bool:
            return bool(received_since(inbox, owner, "sms", cleared))

        await within(10, first_clear_sent, "the first all-clear SMS")
        notification.process.kill()
        await asyncio.to_thread(notification.start)
        await every_member_told(inbox, house.residents, cleared, 1, 60)

        async def resolved() -> bool:
            tickets = tickets_about(api, owner.person, sensor.device_id)
            return bool([t["status"] for t in tickets] == ["RESOLVED"])

        await within(30, resolved, "one ticket, RESOLVED")
        # Late duplicates would come now; the sensor still runs (going OFFLINE is news too).
        await asyncio.sleep(2)
        for who in house.residents:
            for channel in CHANNELS:
                assert distinct(received_since(inbox, who, channel, raised)) == 2, (who, channel)
