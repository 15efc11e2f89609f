"""Idempotency keys: the first answer for a key is every later request's answer."""

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.payment_sandbox.answers import Answer, error_answer
from services.payment_sandbox.errors import ApiError, IdempotencyConflict
from services.payment_sandbox.store import DEFAULT_CAPACITY

log = logging.getLogger(__name__)

FAILED_MESSAGE = "the sandbox failed on this request"


def fingerprint(endpoint: str, request: dict[str, Any]) -> str:
    """Equal for equal requests, whatever the order of their JSON fields."""
    canonical = json.dumps([endpoint, request], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class _Entry:
    fingerprint: str
    done: threading.Event = field(default_factory=threading.Event)
    answer: Answer | None = None


class IdempotencyLedger:
    """Runs a request once per key; repeats wait for and get the same answer.

    Only requests that passed validation get here (as with Stripe, a 400 is
    not remembered: the caller may fix the request and retry with its key).
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def run(self, key: str, request_fingerprint: str, produce: Callable[[], Answer]) -> Answer:
        """`produce()` for a new key; the first answer for a known key with the same request.

        Raises IdempotencyConflict when the key was used for a different request.
        """
        entry, is_first = self._entry(key, request_fingerprint)
        if entry.fingerprint != request_fingerprint:
            raise IdempotencyConflict(
                "this Idempotency-Key was used with a different request", "idempotency_key_reused"
            )
        if is_first:
            try:
                entry.answer = produce()
            except Exception:
                log.exception("request failed")
            finally:
                # Waiters must get an answer however the first request ended.
                entry.answer = entry.answer or error_answer(ApiError(FAILED_MESSAGE))
                entry.done.set()
        entry.done.wait()
        return entry.answer or error_answer(ApiError(FAILED_MESSAGE))

    def _entry(self, key: str, request_fingerprint: str) -> tuple[_Entry, bool]:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                return entry, False
            entry = self._entries[key] = _Entry(request_fingerprint)
            while len(self._entries) > self._capacity:
                # A request still in progress keeps its entry alive for its waiters.
                self._entries.popitem(last=False)
            return entry, True
