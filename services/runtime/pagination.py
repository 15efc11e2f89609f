"""Page sizes and opaque, signed page tokens for every List RPC (AIP-158).

A token carries a keyset cursor: the sort key (create time, id) of the last
item returned, so a page is one index range scan however deep the client
pages. Tokens are HMAC-signed with a key of the service's, so a client cannot
forge a cursor: whatever it sends is either one we issued or refused. The
signature also covers the listing that issued the token (e.g. "devices:<space
id>"), so a token works only on the list it came from.
"""

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from services.runtime.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_PAGE_TOKEN_LENGTH = 512
_SIGNATURE_BYTES = 16
T = TypeVar("T")


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument("INVALID_PAGE_SIZE", "pageSize must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


@dataclass(frozen=True)
class Cursor:
    """Where the previous page ended, in (create time, id) order."""

    created_at: datetime
    id: uuid.UUID


def _invalid_token() -> InvalidArgument:
    return InvalidArgument("INVALID_PAGE_TOKEN", "pageToken is not one this API issued")


class PageTokens:
    """Encodes cursors into signed tokens and back."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _sign(self, listing: str, payload: bytes) -> bytes:
        signed = listing.encode() + b"\0" + payload
        return hmac.new(self._key, signed, hashlib.sha256).digest()[:_SIGNATURE_BYTES]

    def encode(self, cursor: Cursor, *, listing: str) -> str:
        payload = json.dumps([cursor.created_at.isoformat(), str(cursor.id)]).encode()
        signature = self._sign(listing, payload)
        return base64.urlsafe_b64encode(signature + payload).decode().rstrip("=")

    def decode(self, token: str, *, listing: str) -> Cursor | None:
        """The cursor inside `token` (issued by `listing`), or None for the first page."""
        if not token:
            return None
        if len(token) > MAX_PAGE_TOKEN_LENGTH:
            raise _invalid_token()
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise _invalid_token() from None
        signature, payload = raw[:_SIGNATURE_BYTES], raw[_SIGNATURE_BYTES:]
        if not hmac.compare_digest(signature, self._sign(listing, payload)):
            raise _invalid_token()
        created_at, item_id = json.loads(payload)
        return Cursor(datetime.fromisoformat(created_at), uuid.UUID(item_id))

    def page(
        self, rows: Sequence[T], limit: int, cursor_of: Callable[[T], Cursor], *, listing: str
    ) -> tuple[list[T], str]:
        """Given up to `limit + 1` rows, the page and the token of the next one."""
        if len(rows) <= limit:
            return list(rows), ""
        items = list(rows[:limit])
        return items, self.encode(cursor_of(items[-1]), listing=listing)
