"""How Notification reaches people: e-mail over SMTP, SMS and push over HTTP gateways.

Each delivery carries a stable `key`. The gateways take it as the
Idempotency-Key, so a send retried after a timeout or a crash never makes a
second SMS or push; e-mail has no such thing, and carries it as the Message-ID
(`<key@warmhouse>`), by which a receiver can recognise a repeat.

Every failure is a DeliveryError saying whether trying again can help
(`permanent=False`: the server is down, busy or unreachable) or not (the
recipient or the message was refused). Its reason never holds a secret, nor
any of the message's text.
"""

import asyncio
import email.utils
import http.client
import json
import re
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol
from urllib.parse import urlsplit

# Calls in flight at once per sender, by default: the dispatcher's default
# concurrency (DispatchSettings.concurrency), so that none of its sends waits
# for a thread. Each holds a thread (smtplib and urllib block) of a pool of its
# own, so a hanging server never starves the default executor.
CONCURRENT_SENDS = 32
MAX_RESPONSE_BYTES = 64 * 1024
# Also the local part of a Message-ID and a header value: nothing to escape.
KEY = re.compile(r"[A-Za-z0-9_-]{1,128}")
ERROR_CODE = re.compile(r"[a-z0-9_]{1,64}")
MESSAGE_ID_DOMAIN = "warmhouse"
# Statuses worth another attempt although 4xx: timeout, too early, too many.
RETRYABLE_CLIENT_STATUSES = frozenset({408, 425, 429})


@dataclass(frozen=True)
class OutgoingMessage:
    # A stable id of this delivery: the Idempotency-Key for HTTP, the
    # Message-ID's local part for e-mail. Letters, digits, "_" and "-" (a UUID).
    key: str
    # E-mail address, E.164 phone number or user id (push).
    to: str
    # E-mail subject, push title; ignored for SMS.
    subject: str
    # Plain text.
    body: str


class DeliveryError(Exception):
    """The message was not delivered; `permanent`: retrying cannot help."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Sender(Protocol):
    async def send(self, message: OutgoingMessage) -> None:
        """Deliver `message` or raise DeliveryError."""
        ...


def _checked_key(message: OutgoingMessage) -> str:
    if not KEY.fullmatch(message.key):
        raise DeliveryError("the delivery key is not 1-128 letters, digits, _ or -", permanent=True)
    return message.key


class _Blocking:
    """Blocking calls on a thread pool of their own, each within a whole-call deadline
    (smtplib's and urllib's timeouts count per socket operation).

    The deadline starts when the call starts on a thread, not while it waits for
    one: a call that timed out while queued would never have run, but one that
    ran late and was abandoned mid-send may still deliver, and its retry would
    be a second e-mail. A call abandoned before it starts never starts."""

    def __init__(self, name: str, timeout_seconds: float, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError("a sender needs at least one thread")
        self._name = name
        self._deadline = 3 * timeout_seconds
        self._threads = ThreadPoolExecutor(concurrency, thread_name_prefix=name)

    async def run(self, call: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        waiting = True
        try:
            async with asyncio.timeout(None) as deadline:

                def start() -> None:  # on the loop, as the call begins
                    if waiting:
                        deadline.reschedule(loop.time() + self._deadline)

                def running() -> None:  # on a pool thread
                    loop.call_soon_threadsafe(start)
                    call()

                try:
                    await loop.run_in_executor(self._threads, running)
                finally:
                    waiting = False
        except TimeoutError:
            raise DeliveryError(f"the {self._name} server took too long", permanent=False) from None

    def close(self) -> None:
        """Wait for calls under way (bounded by their timeouts) and stop the threads."""
        self._threads.shutdown(wait=True, cancel_futures=True)


class EmailSender:
    """One SMTP connection per message, optionally STARTTLS and AUTH."""

    def __init__(
        self,
        host: str,
        port: int,
        from_address: str,
        username: str | None,
        password: str | None,
        starttls: bool,
        timeout_seconds: float,
        concurrency: int = CONCURRENT_SENDS,
    ) -> None:
        """`concurrency`: sends at once, each on a thread; give the dispatcher's."""
        self._host = host
        self._port = port
        self._from = from_address
        self._username = username
        self._password = password
        self._starttls = starttls
        self._timeout = timeout_seconds
        self._blocking = _Blocking("smtp", timeout_seconds, concurrency)

    async def send(self, message: OutgoingMessage) -> None:
        mail = self._mail(message)
        await self._blocking.run(lambda: self._send_blocking(mail, message.to))

    def close(self) -> None:
        self._blocking.close()

    def _mail(self, message: OutgoingMessage) -> EmailMessage:
        mail = EmailMessage()
        try:
            mail["From"] = self._from
            mail["To"] = message.to
            mail["Subject"] = _as_plain_text(message.subject)
            mail["Date"] = email.utils.formatdate(usegmt=True)
            mail["Message-ID"] = f"<{_checked_key(message)}@{MESSAGE_ID_DOMAIN}>"
            # UTF-8, in a transfer encoding any server carries.
            mail.set_content(message.body)
        except ValueError:
            # A line break in a header, say: the same message would fail again.
            raise DeliveryError("the message cannot be written as e-mail", permanent=True) from None
        return mail

    def _send_blocking(self, mail: EmailMessage, to: str) -> None:
        try:
            with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
                if self._starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self._username is not None:
                    smtp.login(self._username, self._password or "")
                smtp.send_message(mail, from_addr=self._from, to_addrs=[to])
        except smtplib.SMTPRecipientsRefused as refused:
            codes = [code for code, _ in refused.recipients.values()]
            raise DeliveryError(
                f"the mail server refused the recipient ({', '.join(map(str, codes))})",
                permanent=all(code >= 500 for code in codes),
            ) from None
        except smtplib.SMTPResponseException as error:
            # Its text may quote the address or the message: the code alone.
            raise DeliveryError(
                f"the mail server answered {error.smtp_code}", permanent=error.smtp_code >= 500
            ) from None
        except smtplib.SMTPNotSupportedError:
            # STARTTLS, AUTH or SMTPUTF8 (a non-ASCII address) asked of a server
            # without it: configuration, not chance.
            raise DeliveryError(
                "the mail server lacks STARTTLS, AUTH or SMTPUTF8", permanent=True
            ) from None
        except UnicodeError:
            # Text smtplib must send as ASCII (a login, say) and cannot: it never will.
            raise DeliveryError("the mail cannot be sent as ASCII", permanent=True) from None
        except (smtplib.SMTPException, OSError):
            # Disconnected, refused, timed out, TLS failed: another attempt may pass.
            raise DeliveryError("the mail server could not be reached", permanent=False) from None


Payload = Callable[[OutgoingMessage], dict[str, str]]


class HttpGatewaySender:
    """POSTs each message as JSON to a gateway, with its key as the Idempotency-Key."""

    def __init__(
        self,
        name: str,
        url: str,
        api_key: str,
        payload: Payload,
        timeout_seconds: float,
        concurrency: int = CONCURRENT_SENDS,
    ) -> None:
        """`name`: the gateway in reasons ("sms"); `payload`: the body for a message;
        `concurrency`: sends at once, each on a thread (give the dispatcher's)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the {name} gateway's URL must be an http:// or https:// URL")
        self._name = name
        self._url = url
        self._api_key = api_key
        self._payload = payload
        self._timeout = timeout_seconds
        self._blocking = _Blocking(name, timeout_seconds, concurrency)

    async def send(self, message: OutgoingMessage) -> None:
        key = _checked_key(message)
        body = json.dumps(self._payload(message)).encode()
        await self._blocking.run(lambda: self._post_blocking(key, body))

    def close(self) -> None:
        self._blocking.close()

    def _post_blocking(self, key: str, body: bytes) -> None:
        request = urllib.request.Request(
            self._url,
            data=body,
            headers={
                "Authorization": f"Bearer {self._api_key}",
                "Content-Type": "application/json",
                "Accept": "application/json",
                "Idempotency-Key": key,
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                response.read(MAX_RESPONSE_BYTES)
        except urllib.error.HTTPError as error:
            raise self._refusal(error) from None
        except (OSError, http.client.HTTPException, ValueError):
            raise DeliveryError(
                f"the {self._name} gateway could not be reached", permanent=False
            ) from None

    def _refusal(self, error: urllib.error.HTTPError) -> DeliveryError:
        """A non-2xx answer: 4xx is for good (but 408, 425, 429), anything else may pass."""
        try:
            with error:
                code = _error_code(error.read(MAX_RESPONSE_BYTES))
        except (OSError, http.client.HTTPException):
            code = ""
        status = error.code
        permanent = 400 <= status < 500 and status not in RETRYABLE_CLIENT_STATUSES
        reason = f"the {self._name} gateway answered {status}"
        return DeliveryError(f"{reason} ({code})" if code else reason, permanent=permanent)


def _error_code(raw: bytes) -> str:
    """The gateway's error code if it is a plain identifier; "" otherwise. Its message
    is never used: it might quote the request."""
    try:
        document: Any = json.loads(raw)
        code = document["error"]["code"]
    except (ValueError, TypeError, KeyError, RecursionError):
        return ""
    return code if isinstance(code, str) and ERROR_CODE.fullmatch(code) else ""


def sms_sender(
    url: str, api_key: str, timeout_seconds: float, concurrency: int = CONCURRENT_SENDS
) -> HttpGatewaySender:
    """SMS through a gateway taking `{"to": "+E164", "body"}`."""
    return HttpGatewaySender(
        "sms", url, api_key, lambda m: {"to": m.to, "body": m.body}, timeout_seconds, concurrency
    )


def push_sender(
    url: str, api_key: str, timeout_seconds: float, concurrency: int = CONCURRENT_SENDS
) -> HttpGatewaySender:
    """Push through a gateway taking `{"userId", "title", "body"}`."""
    return HttpGatewaySender(
        "push",
        url,
        api_key,
        lambda m: {"userId": m.to, "title": m.subject, "body": m.body},
        timeout_seconds,
        concurrency,
    )


# Invisible, and enough to keep "=?" from opening an RFC 2047 encoded word.
_WORD_JOINER = "\u2060"


def _as_plain_text(header: str) -> str:
    """`header` read as the text it is. Python's email package (before 3.11.10
    and 3.12.5, CVE-2024-6923) decodes an encoded word in a header it is
    given and writes a CR LF inside it out raw: a device named
    "=?utf-8?q?x=0D=0ABcc:...?=" would add headers, or end them and replace
    the body, of a gas alarm's e-mail to every member of the home."""
    return header.replace("=?", f"={_WORD_JOINER}?")
