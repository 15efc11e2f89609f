"""Page sizes and opaque page tokens for every List RPC (AIP-158).

Tokens carry a keyset cursor (the sort key of the last item returned), so a
page is one index range scan however deep the client pages.
"""

import base64
import binascii
import json
from typing import Any

from services.runtime.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument("INVALID_PAGE_SIZE", "pageSize must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_page_token(cursor: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(cursor, separators=(",", ":")).encode()).decode()


def decode_page_token(token: str, expected_keys: frozenset[str]) -> dict[str, Any] | None:
    """The cursor inside `token`, or None for the first page."""
    if not token:
        return None
    try:
        cursor = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        cursor = None
    if not isinstance(cursor, dict) or set(cursor) != expected_keys:
        raise InvalidArgument("INVALID_PAGE_TOKEN", "pageToken is not one this API issued")
    return cursor
