"""Notifications: `python -m bench.notifications` (and in `make bench`).

On a stack of its own, with the message sandbox standing in for the SMTP
server and the SMS and push gateways:

1. A burst: USERS people registered through Envoy (their welcome e-mails show
   Notification knows them), then EVENTS InvoiceIssued events published at
   once to Billing's stream, as a monthly billing run would (straight to
   JetStream, so that only Notification is measured). The figure is
   notifications delivered per second: EVENTS over the time from the first
   publish to the last e-mail the SMTP server received.
2. Alarm to SMS: a home with three members and a simulated gas sensor
   (samples every 50 ms) connected through the Device Adapter. EPISODES
   times: raise the alarm, wait for every member's SMS at the gateway, clear
   it, wait for the all-clear. Each latency runs from the moment the alarm
   was raised in the simulator to the gateway receiving the SMS (both clocks
   are this machine's), so it includes the sensor's next sample, the adapter,
   Device, the broker, Notification and the gateway call.

Timings are figures, never failures; a message that never arrives fails the run.
"""

import asyncio
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import uvloop
from warmhouse.billing.v1 import billing_pb2

from bench.account import PASSWORD, Account, SetupError, call_json, log_in
from bench.figures import percentile
from bench.http1 import Http1Connection
from services.devstack.ports import free_port
from services.devstack.stack import Stack
from services.message_sandbox.inbox import Inbox
from services.runtime.outbox import MSG_ID_HEADER
from services.runtime.timestamps import timestamp
from services.simulator.device import DeviceType, SimulatedDevice
from services.simulator.thermal import Room

USERS = 20
EVENTS = 1000
EPISODES = 20
BURST_TIMEOUT_SECONDS = 180.0
ALARM_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.05
Messages = list[dict[str, Any]]


@dataclass(frozen=True)
class Resident:
    account: Account
    email: str
    phone: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": self.account.authorization}


@dataclass(frozen=True)
class Figures:
    delivered_per_second: float
    burst_seconds: float
    alarm_ms: list[float]

    def lines(self) -> list[str]:
        ordered = sorted(self.alarm_ms)
        p50, p99 = percentile(ordered, 50) or 0.0, percentile(ordered, 99) or 0.0
        return [
            "Notifications (bench/notifications.py):",
            f"  Burst of {EVENTS} InvoiceIssued events for {USERS} users:"
            f" {self.delivered_per_second:.0f} e-mails delivered/s"
            f" (the last {self.burst_seconds:.1f} s after the first publish)",
            f"  Gas alarm to each member's SMS, {len(ordered)} SMS over {EPISODES} episodes:"
            f" p50 {p50:.0f} ms, p99 {p99:.0f} ms",
        ]


async def _resident(base_url: str) -> Resident:
    email = f"bench-{secrets.token_hex(6)}@example.com"
    phone = f"+1555{secrets.randbelow(10**7):07d}"
    connection = Http1Connection(base_url)
    try:
        body = {"email": email, "password": PASSWORD, "phone": phone}
        await call_json(connection, "POST", "/users", {}, body)
    finally:
        await connection.close()
    return Resident(await log_in(base_url, email, PASSWORD), email, phone)


async def _wait_for(probe: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await asyncio.to_thread(probe):
        if time.monotonic() > deadline:
            raise SetupError(f"{what}: not within {seconds:.0f} s")
        await asyncio.sleep(POLL_SECONDS)


def _since(messages: Messages, moment: float) -> Messages:
    return [message for message in messages if message["receivedAt"] >= moment]


async def burst(stack: Stack, inbox: Inbox) -> tuple[float, float]:
    """(delivered per second, seconds until the last)."""
    residents = await asyncio.gather(*(_resident(stack.base_url) for _ in range(USERS)))
    addresses = {resident.email for resident in residents}

    def welcomed() -> bool:
        return addresses <= {m["recipients"][0] for m in inbox.messages("email")}

    await _wait_for(welcomed, 60, "every welcome e-mail")
    client = await nats.connect(stack.nats.url)
    now = datetime.now(UTC)
    started = time.time()
    try:
        jetstream = client.jetstream()

        async def publish(number: int) -> None:
            event = billing_pb2.InvoiceIssued(
                invoice_id=str(uuid.uuid4()),
                user_id=residents[number % USERS].account.user_id,
                amount=10,
                currency="RUB",
                due_time=timestamp(now + timedelta(days=30)),
                occur_time=timestamp(now),
            )
            subject = str(billing_pb2.InvoiceIssued.DESCRIPTOR.full_name)
            headers = {MSG_ID_HEADER: str(uuid.uuid4())}
            await jetstream.publish(subject, event.SerializeToString(), headers=headers)

        await asyncio.gather(*(publish(number) for number in range(EVENTS)))
    finally:
        await client.close()

    def invoice_mails() -> Messages:
        return [
            m for m in _since(inbox.messages("email"), started) if m["recipients"][0] in addresses
        ]

    await _wait_for(lambda: len(invoice_mails()) >= EVENTS, BURST_TIMEOUT_SECONDS, "the burst")
    seconds = max(m["receivedAt"] for m in invoice_mails()) - started
    return EVENTS / seconds, seconds


async def _household(base_url: str) -> tuple[list[Resident], str, str]:
    """Three members of a home, a gas sensor's id and its secret."""
    owner, maintainer, guest = [await _resident(base_url) for _ in range(3)]
    connection = Http1Connection(base_url)
    try:
        created = await call_json(
            connection, "POST", "/spaces", owner.headers, {"name": "Bench home"}
        )
        home = created["spaceId"]
        for member, role in ((maintainer, "MAINTAINER"), (guest, "GUEST")):
            body = {"userId": member.account.user_id, "role": role}
            await call_json(connection, "POST", f"/spaces/{home}/users", owner.headers, body)
        body = {"spaceId": home, "type": "SENSOR", "name": "Boiler-room gas sensor"}
        device = await call_json(connection, "POST", "/devices", owner.headers, body)
    finally:
        await connection.close()
    return [owner, maintainer, guest], device["device"]["deviceId"], device["deviceSecret"]


async def alarm_latencies(stack: Stack, inbox: Inbox) -> list[float]:
    """Milliseconds from each raised alarm to each member's SMS."""
    residents, device_id, secret = await _household(stack.base_url)
    sensor = SimulatedDevice(
        device_id,
        secret,
        DeviceType.SENSOR,
        Room("boiler room"),
        adapter=stack.grpc_address("device-adapter"),
        telemetry_interval=0.05,
        backoff_cap=1.0,
    )
    latencies: list[float] = []
    await sensor.start()
    try:
        await sensor.wait_connected(30)
        await asyncio.sleep(1.0)
        for _ in range(EPISODES):
            for on in (True, False):
                moment = time.time()
                sensor.gas_alarm(on)

                def arrived(since: float = moment) -> bool:
                    return all(_since(inbox.messages("sms", r.phone), since) for r in residents)

                await _wait_for(arrived, ALARM_TIMEOUT_SECONDS, "every member's SMS")
                if on:
                    latencies += [
                        (_since(inbox.messages("sms", r.phone), moment)[0]["receivedAt"] - moment)
                        * 1000
                        for r in residents
                    ]
    finally:
        await sensor.stop()
    return latencies


async def measure(stack: Stack) -> Figures:
    sandbox = stack.message_sandbox
    assert sandbox is not None, "the stack runs no Notification service"
    inbox = Inbox(sandbox.http_url, sandbox.sms_api_key)
    per_second, seconds = await burst(stack, inbox)
    return Figures(per_second, seconds, await alarm_latencies(stack, inbox))


def main() -> int:
    env = {
        "WARMHOUSE_ACCESS_TOKEN_TTL_SECONDS": "3600",
        "WARMHOUSE_REGISTRATIONS_PER_CLIENT": "100000",
    }
    with tempfile.TemporaryDirectory(prefix="warmhouse-bench-notifications-") as data_dir:
        stack = Stack(Path(data_dir), free_port(), extra_env=env)
        try:
            with stack:
                figures = uvloop.run(measure(stack))
        finally:
            stack.postgres.remove_data()
    print("\n".join(figures.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
