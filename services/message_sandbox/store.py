"""Received messages, remembered idempotency keys and injected failures, in memory."""

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

EMAIL, SMS, PUSH = "email", "sms", "push"
CHANNELS = (EMAIL, SMS, PUSH)
TRANSIENT, PERMANENT = "transient", "permanent"
FAILURE_KINDS = (TRANSIENT, PERMANENT)
DEFAULT_CAPACITY = 10_000
DEFAULT_KEY_CAPACITY = 100_000
MAX_PENDING_FAILURES = 1000

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class StoredMessage:
    """One delivered message; `key` is the Message-ID (e-mail) or the Idempotency-Key."""

    channel: str
    recipients: tuple[str, ...]
    subject: str
    body: str
    key: str
    received_at: float
    sender: str = ""
    id: str = ""

    def is_for(self, to: str) -> bool:
        return to in self.recipients

    def to_json(self) -> JsonObject:
        if self.channel == EMAIL:
            return {
                "channel": EMAIL,
                "from": self.sender,
                "recipients": list(self.recipients),
                "subject": self.subject,
                "body": self.body,
                "messageId": self.key,
                "receivedAt": self.received_at,
            }
        titled = {"title": self.subject} if self.channel == PUSH else {}
        return {
            "channel": self.channel,
            "id": self.id,
            "to": self.recipients[0],
            **titled,
            "body": self.body,
            "idempotencyKey": self.key,
            "receivedAt": self.received_at,
        }


class DeliveryRefused(Exception):
    """An injected failure: nothing was stored."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"injected {kind} failure")
        self.kind = kind


class MessageStore:
    """Thread-safe: the SMTP loop and every HTTP request thread share one store."""

    def __init__(
        self, capacity: int = DEFAULT_CAPACITY, key_capacity: int = DEFAULT_KEY_CAPACITY
    ) -> None:
        self._lock = threading.Lock()
        self._messages: deque[StoredMessage] = deque(maxlen=capacity)
        self._key_capacity = key_capacity
        # (channel, key) → the message first delivered with it (SMS and push only).
        self._by_key: OrderedDict[tuple[str, str], StoredMessage] = OrderedDict()
        self._failures: dict[str, deque[str]] = {channel: deque() for channel in CHANNELS}

    def deliver(self, message: StoredMessage, *, idempotent: bool) -> StoredMessage:
        """Store `message` and return it; with `idempotent`, a key seen before on its
        channel returns the first message instead and stores nothing.

        Raises DeliveryRefused (storing nothing) when a failure is pending.
        """
        with self._lock:
            if idempotent:
                first = self._by_key.get((message.channel, message.key))
                if first is not None:
                    return first
            failures = self._failures[message.channel]
            if failures:
                raise DeliveryRefused(failures.popleft())
            self._messages.append(message)
            if idempotent:
                self._by_key[(message.channel, message.key)] = message
                while len(self._by_key) > self._key_capacity:
                    self._by_key.popitem(last=False)
            return message

    def add_failures(self, channel: str, count: int, kind: str) -> int:
        """Queue `count` failures of `kind` on `channel`; how many are now pending."""
        with self._lock:
            failures = self._failures[channel]
            failures.extend([kind] * min(count, MAX_PENDING_FAILURES - len(failures)))
            return len(failures)

    def messages(self, channel: str, to: str | None = None) -> list[JsonObject]:
        """Every kept message of `channel` in arrival order (for `to` only, if given)."""
        with self._lock:
            return [
                message.to_json()
                for message in self._messages
                if message.channel == channel and (to is None or message.is_for(to))
            ]

    def reset(self) -> None:
        with self._lock:
            self._messages.clear()
            self._by_key.clear()
            for failures in self._failures.values():
                failures.clear()
