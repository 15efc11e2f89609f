"""Notification's senders against the message sandbox, a real process on real sockets."""

import asyncio
import json
import signal
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from services.devstack.message_sandbox_process import MessageSandboxProcess
from services.devstack.ports import free_port
from services.notification import templates
from services.notification.dispatcher import outgoing
from services.notification.repository import ClaimedDelivery, Reach
from services.notification.senders import (
    DeliveryError,
    EmailSender,
    HttpGatewaySender,
    OutgoingMessage,
    Sender,
    push_sender,
    sms_sender,
)

USER_ID = "5f0c8a9e-3b7d-4c1e-9a2f-0d6b1e4c7a38"
PHONE = "+79991234567"
FROM = "alerts@warmhouse.example"
TIMEOUT_SECONDS = 5.0
# Cyrillic across lines, as Notification writes to Russian speakers.
LETTER = "\n".join(["Здравствуйте, Анна!", "Оплата 1 250,00 ₽ получена."])


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MessageSandboxProcess]:
    process = MessageSandboxProcess(tmp_path_factory.mktemp("message-sandbox"))
    process.start()
    try:
        yield process
    finally:
        process.stop()


def control(sandbox: MessageSandboxProcess, path: str, body: dict[str, Any] | None = None) -> Any:
    """A test-control call with the SMS key (either key may call them)."""
    request = urllib.request.Request(
        sandbox.http_url + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {sandbox.sms_api_key}"},
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
        return json.loads(response.read())


def messages(sandbox: MessageSandboxProcess, channel: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = control(sandbox, f"/v1/sandbox/messages?channel={channel}")[
        "messages"
    ]
    return found


def fail_next(sandbox: MessageSandboxProcess, channel: str, kind: str, count: int = 1) -> None:
    control(sandbox, "/v1/sandbox/failures", {"channel": channel, "count": count, "kind": kind})


@pytest.fixture(autouse=True)
def _clean(sandbox: MessageSandboxProcess) -> None:
    control(sandbox, "/v1/sandbox/reset", {})


def email_sender(port: int) -> EmailSender:
    return EmailSender("127.0.0.1", port, FROM, None, None, False, TIMEOUT_SECONDS)


def make_sender(channel: str, sandbox_or_port: MessageSandboxProcess | int) -> Sender:
    """A real sender of `channel` to the sandbox (with its keys), or to a bare port."""
    if isinstance(sandbox_or_port, int):
        port, base, keys = sandbox_or_port, f"http://127.0.0.1:{sandbox_or_port}", ("k", "k")
    else:
        sandbox = sandbox_or_port
        port, base = sandbox.smtp_port, sandbox.http_url
        keys = (sandbox.sms_api_key, sandbox.push_api_key)
    if channel == "email":
        return email_sender(port)
    if channel == "sms":
        return sms_sender(f"{base}/v1/sms", keys[0], TIMEOUT_SECONDS)
    return push_sender(f"{base}/v1/push", keys[1], TIMEOUT_SECONDS)


def close(sender: Sender) -> None:
    assert isinstance(sender, EmailSender | HttpGatewaySender)
    sender.close()


@pytest.fixture
def senders(sandbox: MessageSandboxProcess) -> Iterator[dict[str, Sender]]:
    made = {channel: make_sender(channel, sandbox) for channel in ("email", "sms", "push")}
    yield made
    for sender in made.values():
        close(sender)


def message_for(channel: str, key: str, body: str = "Ваш счёт оплачен") -> OutgoingMessage:
    to = {"email": "анна@example.ru", "sms": PHONE, "push": USER_ID}[channel]
    return OutgoingMessage(key=key, to=to, subject="Счёт №7 оплачен", body=body)


async def test_an_email_arrives_with_its_utf8_subject_body_and_message_id(
    sandbox: MessageSandboxProcess, senders: dict[str, Sender]
) -> None:
    await senders["email"].send(
        OutgoingMessage(
            key="0b9c7f1e-7d0a-4b52-9b7e-3f5d2c1a9e80",
            to="anna@example.ru",
            subject="Счёт №7 оплачен — спасибо!",
            body=LETTER,
        )
    )

    [mail] = messages(sandbox, "email")
    assert mail["from"] == FROM
    assert mail["recipients"] == ["anna@example.ru"]
    assert mail["subject"] == "Счёт №7 оплачен — спасибо!"
    # The text as written (e-mail adds a final line break).
    assert mail["body"] == LETTER + "\n"
    assert mail["messageId"] == "<0b9c7f1e-7d0a-4b52-9b7e-3f5d2c1a9e80@warmhouse>"
    assert isinstance(mail["receivedAt"], float)


async def test_sms_and_push_arrive_with_their_fields(
    sandbox: MessageSandboxProcess, senders: dict[str, Sender]
) -> None:
    await senders["sms"].send(message_for("sms", "sms-1", body="Код: 4821"))
    await senders["push"].send(message_for("push", "push-1"))

    [sms] = messages(sandbox, "sms")
    assert (sms["to"], sms["body"], sms["idempotencyKey"]) == (PHONE, "Код: 4821", "sms-1")
    assert sms["id"].startswith("sms_")
    [push] = messages(sandbox, "push")
    assert (push["to"], push["title"], push["body"]) == (
        USER_ID,
        "Счёт №7 оплачен",
        "Ваш счёт оплачен",
    )
    assert push["idempotencyKey"] == "push-1"
    assert messages(sandbox, "email") == []


@pytest.mark.parametrize("channel", ["sms", "push"])
async def test_the_same_key_twice_is_delivered_once(
    sandbox: MessageSandboxProcess, senders: dict[str, Sender], channel: str
) -> None:
    await senders[channel].send(message_for(channel, "retried"))
    await senders[channel].send(message_for(channel, "retried"))
    await senders[channel].send(message_for(channel, "another"))

    assert [m["idempotencyKey"] for m in messages(sandbox, channel)] == ["retried", "another"]


@pytest.mark.parametrize("channel", ["sms", "push"])
async def test_a_wrong_api_key_is_a_permanent_error(
    sandbox: MessageSandboxProcess, channel: str
) -> None:
    # Each gateway takes its own key only: the other one is wrong.
    make, url, key = {
        "sms": (sms_sender, "/v1/sms", sandbox.push_api_key),
        "push": (push_sender, "/v1/push", sandbox.sms_api_key),
    }[channel]
    sender = make(sandbox.http_url + url, key, TIMEOUT_SECONDS)
    try:
        with pytest.raises(DeliveryError) as failed:
            await sender.send(message_for(channel, "k"))
    finally:
        sender.close()

    assert failed.value.permanent
    assert "401" in failed.value.reason
    assert key not in failed.value.reason
    assert messages(sandbox, channel) == []


@pytest.mark.parametrize("channel", ["email", "sms", "push"])
@pytest.mark.parametrize("kind", ["transient", "permanent"])
async def test_injected_failures_map_to_transient_or_permanent_and_store_nothing(
    sandbox: MessageSandboxProcess, senders: dict[str, Sender], channel: str, kind: str
) -> None:
    fail_next(sandbox, channel, kind)

    with pytest.raises(DeliveryError) as failed:
        await senders[channel].send(message_for(channel, "k1", body="секретный текст"))

    assert failed.value.permanent is (kind == "permanent")
    assert "секретный" not in failed.value.reason
    assert messages(sandbox, channel) == []
    # The failure is used up: the same delivery, sent again, arrives once.
    await senders[channel].send(message_for(channel, "k1"))
    assert len(messages(sandbox, channel)) == 1


async def test_an_http_refusal_names_the_gateways_code_not_its_message(
    sandbox: MessageSandboxProcess, senders: dict[str, Sender]
) -> None:
    fail_next(sandbox, "sms", "permanent")
    with pytest.raises(DeliveryError) as refused:
        await senders["sms"].send(message_for("sms", "k"))
    assert refused.value.reason == "the sms gateway answered 400 (recipient_rejected)"

    with pytest.raises(DeliveryError) as invalid:
        await senders["sms"].send(OutgoingMessage("k2", to="8 999 123-45-67", subject="", body="x"))
    assert invalid.value.permanent
    assert invalid.value.reason == "the sms gateway answered 400 (phone_invalid)"


@pytest.mark.parametrize("channel", ["email", "sms", "push"])
async def test_nothing_listening_is_a_transient_error(channel: str) -> None:
    sender = make_sender(channel, free_port())
    try:
        with pytest.raises(DeliveryError) as failed:
            await sender.send(message_for(channel, "k"))
    finally:
        close(sender)

    assert not failed.value.permanent
    assert "could not be reached" in failed.value.reason


async def test_a_message_that_cannot_be_written_is_refused_before_sending(
    sandbox: MessageSandboxProcess, senders: dict[str, Sender]
) -> None:
    for broken in (
        OutgoingMessage("k", to="anna@example.ru", subject="a\r\nBcc: x@evil.example", body="b"),
        OutgoingMessage("<k>@x", to="anna@example.ru", subject="s", body="b"),
    ):
        with pytest.raises(DeliveryError) as refused:
            await senders["email"].send(broken)
        assert refused.value.permanent
    with pytest.raises(DeliveryError) as bad_key:
        await senders["sms"].send(OutgoingMessage("a\r\nX-Evil: 1", PHONE, "", "b"))
    assert bad_key.value.permanent

    assert messages(sandbox, "email") == []
    assert messages(sandbox, "sms") == []


async def test_an_email_over_the_sinks_size_limit_is_refused_for_good(
    sandbox: MessageSandboxProcess, senders: dict[str, Sender]
) -> None:
    huge = OutgoingMessage("big", to="anna@example.ru", subject="s", body="x" * 300_000)

    with pytest.raises(DeliveryError) as refused:
        await senders["email"].send(huge)

    assert refused.value.permanent
    assert refused.value.reason == "the mail server answered 552"
    assert messages(sandbox, "email") == []


def test_the_sandbox_stops_on_sigterm(tmp_path: Path) -> None:
    process = MessageSandboxProcess(tmp_path)
    process.start()
    try:
        assert process.process.running
    finally:
        process.stop()
    # Stopped by its SIGTERM, cleanly, not killed.
    assert process.process.exit_code == 0
    assert process.process._stop_signal == signal.SIGTERM


class _SlowGateway(BaseHTTPRequestHandler):
    """Accepts every POST after a pause."""

    pause = 0.3

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(self.pause)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True


@pytest.fixture
def slow_gateway() -> Iterator[str]:
    server = _Server(("127.0.0.1", 0), _SlowGateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/sms"
    finally:
        server.shutdown()
        server.server_close()


async def test_the_dispatchers_32_sends_at_once_wait_for_no_thread(slow_gateway: str) -> None:
    # Each call takes 0.3 s of a 1.5 s deadline (3 x 0.5 s). On 8 threads, 48
    # sends would run in six waves and the last ones pass their deadline
    # although the gateway took them: retried, they would be sent twice.
    sender = sms_sender(slow_gateway, "k", 0.5)
    try:
        started = time.monotonic()
        await asyncio.gather(
            *(sender.send(OutgoingMessage(f"k{i}", PHONE, "", "hi")) for i in range(48))
        )
        assert time.monotonic() - started < 1.5
    finally:
        sender.close()


async def test_the_deadline_starts_when_a_send_gets_its_thread(slow_gateway: str) -> None:
    # One thread: the sixth send waits 1.5 s for it, then takes 0.3 s of its own 1.5 s.
    sender = sms_sender(slow_gateway, "k", 0.5, concurrency=1)
    try:
        await asyncio.gather(
            *(sender.send(OutgoingMessage(f"k{i}", PHONE, "", "hi")) for i in range(6))
        )
    finally:
        sender.close()


async def test_the_push_gateway_takes_the_longest_title_and_digest_we_write(
    sandbox: MessageSandboxProcess, senders: dict[str, Sender]
) -> None:
    subject = "Не работает отопление в спальне, третий день подряд. " * 4  # noqa: RUF001
    text = templates.ticket_answered("ru", subject[:200])
    reach = Reach("anna@example.ru", PHONE, "ru", True)

    def delivery(digest: bool) -> ClaimedDelivery:
        return ClaimedDelivery(
            uuid.uuid4(), uuid.uuid4(), uuid.UUID(USER_ID), "PUSH", digest, 1, "SUPPORT",
            text.title, text.body, datetime(2025, 1, 1, tzinfo=UTC), reach,
        )  # fmt: skip

    await senders["push"].send(outgoing([delivery(False)]))
    await senders["push"].send(outgoing([delivery(True) for _ in range(30)]))
    single, digest = messages(sandbox, "push")
    assert single["title"].endswith("…")
    assert digest["body"].endswith("…")


async def test_an_encoded_word_in_a_subject_stays_text_and_adds_no_header(
    sandbox: MessageSandboxProcess, senders: dict[str, Sender]
) -> None:
    # A home named so (CVE-2024-6923): decoded, its CR LF would end the headers.
    name = "Home =?utf-8?q?x=0D=0AReply-To:_attacker@evil.example=0D=0A=0D=0AURGENT?="
    await senders["email"].send(
        OutgoingMessage(
            key="5d0f3c9a-1b2e-4f6a-8c7d-9e0a1b2c3d4e",
            to="anna@example.ru",
            subject=f"DANGER: gas leak at home '{name}'",
            body=LETTER,
        )
    )

    [mail] = messages(sandbox, "email")
    assert mail["body"] == LETTER + "\n"
    assert "Reply-To:_attacker@evil.example" in mail["subject"]
    assert mail["subject"].replace("\u2060", "") == f"DANGER: gas leak at home '{name}'"
