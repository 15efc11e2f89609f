"""The SMTP sink: aiosmtpd's server on an event loop of its own, in a thread."""

import asyncio
import logging
import threading
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from aiosmtpd.smtp import SMTP, Envelope, Session

from services.message_sandbox.store import (
    EMAIL,
    TRANSIENT,
    DeliveryRefused,
    MessageStore,
    StoredMessage,
)

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 256 * 1024
STOP_TIMEOUT_SECONDS = 5.0
# Replies to DATA for an injected failure, and for mail we cannot read.
TRANSIENT_REPLY = "451 4.3.0 Mail system temporarily unavailable, try again later"
PERMANENT_REPLY = "550 5.1.1 Recipient address rejected"
UNREADABLE_REPLY = "554 5.6.0 Message content could not be read"


class _Handler:
    """aiosmtpd's hooks: every envelope is accepted, each message stored at DATA."""

    def __init__(self, store: MessageStore) -> None:
        self._store = store

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        try:
            parsed = BytesParser(policy=policy.default).parsebytes(content)
            text = parsed.get_body(preferencelist=("plain",))
            message = StoredMessage(
                channel=EMAIL,
                recipients=tuple(envelope.rcpt_tos),
                subject=str(parsed.get("Subject", "")),
                # Line ends as the sender wrote them, not as SMTP carried them.
                body=_text(text).replace("\r\n", "\n"),
                key=str(parsed.get("Message-ID", "")).strip(),
                received_at=time.time(),
                sender=envelope.mail_from or "",
            )
        except Exception:
            log.exception("unreadable message")
            return UNREADABLE_REPLY
        try:
            self._store.deliver(message, idempotent=False)
        except DeliveryRefused as refused:
            return TRANSIENT_REPLY if refused.kind == TRANSIENT else PERMANENT_REPLY
        return "250 OK: message stored"


def _text(part: object) -> str:
    return str(part.get_content()) if isinstance(part, EmailMessage) else ""


class SmtpSink:
    """Listening on (host, port) once made; `stop()` closes it and ends its thread."""

    def __init__(self, store: MessageStore, host: str, port: int) -> None:
        self._loop = asyncio.new_event_loop()
        handler = _Handler(store)
        self._server = self._loop.run_until_complete(
            self._loop.create_server(
                lambda: SMTP(
                    handler,
                    data_size_limit=MAX_MESSAGE_BYTES,
                    enable_SMTPUTF8=True,
                    hostname="message-sandbox",
                    loop=self._loop,
                ),
                host,
                port,
            )
        )
        self._thread = threading.Thread(target=self._loop.run_forever, name="smtp", daemon=True)

    @property
    def port(self) -> int:
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop listening; sessions still open are dropped with the loop."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._server.close)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(STOP_TIMEOUT_SECONDS)
        else:
            self._server.close()
        if not self._loop.is_running():
            self._loop.close()
