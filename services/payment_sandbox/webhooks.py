"""Events, and their delivery to the webhook URL: signed, retried, at least once."""

import http.client
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from services.payment_sandbox.answers import JsonObject
from services.payment_sandbox.records import new_id
from services.payment_sandbox.scheduling import DelayQueue, start_workers
from services.payment_sandbox.signing import SIGNATURE_HEADER, signature_header
from services.payment_sandbox.store import DEFAULT_CAPACITY
from services.payment_sandbox.validation import WebhookMode

log = logging.getLogger(__name__)

# Deliveries in flight at once; a slow receiver holds one worker per attempt.
DELIVERY_WORKERS = 16
MAX_ERROR_LENGTH = 200


@dataclass(frozen=True)
class RetryPolicy:
    first_delay: float = 0.5
    max_delay: float = 30.0
    max_attempts: int = 20
    give_up_after: float = 3600.0
    attempt_timeout: float = 10.0


def retry_delay(policy: RetryPolicy, attempts_made: int, rng: random.Random) -> float:
    """Seconds before the next attempt: doubling from `first_delay`, capped, with jitter.

    Jitter (half to all of the step) keeps retries of many events from
    arriving at a recovering receiver in lockstep.
    """
    step = min(policy.max_delay, policy.first_delay * 2.0 ** min(attempts_made - 1, 32))
    return step * rng.uniform(0.5, 1.0)


def should_retry(policy: RetryPolicy, attempts_made: int, seconds_since_first: float) -> bool:
    return attempts_made < policy.max_attempts and seconds_since_first < policy.give_up_after


# Posts a body with headers and a timeout; returns the HTTP status or raises
# OSError or http.client.HTTPException.
Sender = Callable[[str, bytes, dict[str, str], float], int]


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code


@dataclass
class _EventRecord:
    event: JsonObject
    # Serialised once: every copy and every retry carries the very same bytes.
    body: bytes
    attempts: int = 0
    delivered: bool = False
    last_status: int | None = None
    last_error: str | None = None

    def to_json(self) -> JsonObject:
        return {
            **self.event,
            "delivery": {
                "attempts": self.attempts,
                "delivered": self.delivered,
                "last_status": self.last_status,
                "last_error": self.last_error,
            },
        }


@dataclass
class _Delivery:
    """One copy of an event on its way, with its own retries."""

    record: _EventRecord
    attempts: int = 0
    started: float = field(default_factory=time.monotonic)


class Webhooks:
    """Turns status changes into events and delivers each until the receiver takes it."""

    def __init__(
        self,
        url: str,
        secret: bytes,
        policy: RetryPolicy | None = None,
        send: Sender = post,
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        self._url = url
        self._secret = secret
        self._policy = policy or RetryPolicy()
        self._send = send
        self._capacity = capacity
        self._rng = random.Random()
        self._lock = threading.Lock()
        self._records: OrderedDict[str, _EventRecord] = OrderedDict()
        self._mode = WebhookMode()
        self._queue: DelayQueue[_Delivery] = DelayQueue()

    def start(self) -> None:
        start_workers(self._queue, self._attempt, DELIVERY_WORKERS, "webhook")

    def stop(self) -> None:
        """Abandon every delivery not yet made."""
        self._queue.close()

    def set_mode(self, mode: WebhookMode) -> None:
        with self._lock:
            self._mode = mode

    def publish(self, event_type: str, obj: JsonObject) -> None:
        event_id = new_id("evt")
        event: JsonObject = {
            "id": event_id,
            "object": "event",
            "type": event_type,
            "created": int(time.time()),
            "data": {"object": obj},
        }
        record = _EventRecord(event, json.dumps(event).encode())
        with self._lock:
            self._records[event_id] = record
            while len(self._records) > self._capacity:
                self._records.popitem(last=False)
            mode = self._mode
        for _ in range(1 + mode.duplicates):
            self._queue.put(_Delivery(record), self._hold(mode))

    def replay(self) -> int:
        """Deliver every event kept so far once more, in random order; how many."""
        with self._lock:
            records = list(self._records.values())
        self._rng.shuffle(records)
        for record in records:
            self._queue.put(_Delivery(record))
        return len(records)

    def events(self) -> list[JsonObject]:
        with self._lock:
            return [record.to_json() for record in self._records.values()]

    def _hold(self, mode: WebhookMode) -> float:
        if not mode.shuffle:
            return mode.delay_seconds
        # Random extra holds overlap the deliveries, so they arrive in random order.
        return mode.delay_seconds + self._rng.uniform(0, mode.delay_seconds)

    def _attempt(self, delivery: _Delivery) -> None:
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(self._secret, timestamp, delivery.record.body),
        }
        status: int | None = None
        error: str | None = None
        try:
            status = self._send(
                self._url, delivery.record.body, headers, self._policy.attempt_timeout
            )
        # Whatever the receiver did wrong (refused, reset, garbled), it is retried.
        except (OSError, ValueError, http.client.HTTPException) as failure:
            error = str(failure)[:MAX_ERROR_LENGTH] or type(failure).__name__
        delivery.attempts += 1
        delivered = status is not None and 200 <= status < 300
        self._record(delivery.record, status, error, delivered)
        if delivered:
            return
        if should_retry(self._policy, delivery.attempts, time.monotonic() - delivery.started):
            self._queue.put(delivery, retry_delay(self._policy, delivery.attempts, self._rng))
        else:
            log.warning(
                "gave up delivering %s after %d attempts",
                delivery.record.event["id"],
                delivery.attempts,
            )

    def _record(
        self, record: _EventRecord, status: int | None, error: str | None, delivered: bool
    ) -> None:
        with self._lock:
            record.attempts += 1
            record.last_status = status
            record.last_error = error
            record.delivered = record.delivered or delivered
