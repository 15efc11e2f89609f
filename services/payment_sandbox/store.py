"""Charges and transfers in memory, bounded: past the capacity the oldest are forgotten."""

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from services.payment_sandbox.answers import JsonObject

DEFAULT_CAPACITY = 100_000


class Stored(Protocol):
    id: str
    reference: str

    def to_json(self) -> JsonObject: ...


T = TypeVar("T", bound=Stored)


class Collection(Generic[T]):
    """Objects by id and by the caller's reference; every read is a snapshot.

    Objects change only through `change`, under the collection's lock, so a
    reader never sees half a change.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._items: OrderedDict[str, T] = OrderedDict()
        self._ids_by_reference: dict[str, list[str]] = {}

    def add(self, item: T) -> JsonObject:
        with self._lock:
            self._items[item.id] = item
            self._ids_by_reference.setdefault(item.reference, []).append(item.id)
            while len(self._items) > self._capacity:
                self._forget(self._items.popitem(last=False)[1])
            return item.to_json()

    def get(self, id_: str) -> JsonObject | None:
        with self._lock:
            item = self._items.get(id_)
            return None if item is None else item.to_json()

    def with_reference(self, reference: str) -> list[JsonObject]:
        with self._lock:
            ids = self._ids_by_reference.get(reference, [])
            return [self._items[id_].to_json() for id_ in ids]

    def all(self) -> list[JsonObject]:
        with self._lock:
            return [item.to_json() for item in self._items.values()]

    def change(self, id_: str, apply: Callable[[T], bool]) -> tuple[bool, JsonObject] | None:
        """None if `id_` is unknown; else whether `apply` changed it, and the object after."""
        with self._lock:
            item = self._items.get(id_)
            if item is None:
                return None
            changed = apply(item)
            return changed, item.to_json()

    def _forget(self, item: T) -> None:
        ids = self._ids_by_reference[item.reference]
        ids.remove(item.id)
        if not ids:
            del self._ids_by_reference[item.reference]
