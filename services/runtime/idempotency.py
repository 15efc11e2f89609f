"""Request idempotency for mutating RPCs, with Stripe's semantics.

A client sends a key with a mutating request (`request_id` in the message,
or the `Idempotency-Key` HTTP header, which reaches us as metadata). The
first request with a key claims it in the same transaction as its effect and
stores its response there; a retry with the same key from the same caller
gets that stored response; the same key with other parameters is a conflict;
of two concurrent requests with one key, the second waits for the first to
commit (the key's primary key makes it) and then gets its response. Keys are
kept at least `RETENTION` (24 h).
"""

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from google.protobuf.message import Message
from sqlalchemy import text

from services.runtime.database import Connection, Database, Query
from services.runtime.errors import Conflict, InvalidArgument
from services.runtime.grpc_types import ServicerContext
from services.runtime.request import metadata_value

RETENTION = timedelta(hours=24)
HEADER = "idempotency-key"
MAX_KEY_LENGTH = 255

_CLAIM = Query(
    text(
        "INSERT INTO idempotency_keys (caller, key, method, request_hash)"
        " VALUES (:caller, :key, :method, :request_hash)"
        " ON CONFLICT DO NOTHING RETURNING 1"
    )
)
_STORED = Query(
    text(
        "SELECT method, request_hash, response FROM idempotency_keys"
        " WHERE caller = :caller AND key = :key"
    )
)
_REMEMBER = Query(
    text("UPDATE idempotency_keys SET response = :response WHERE caller = :caller AND key = :key")
)
_PRUNE = Query(
    text("DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => :age)")
)


@dataclass(frozen=True)
class IdempotencyKey:
    # Whose key: a user id, or a service name; one caller's keys never meet another's.
    caller: str
    key: str
    # The full RPC path: the same key on another method is a conflict too.
    method: str


def key_of(
    context: ServicerContext, request_id: str, caller: str, method: str
) -> IdempotencyKey | None:
    """The request's idempotency key (its `request_id`, else the header), if any."""
    key = request_id or metadata_value(context.invocation_metadata(), HEADER)
    if not key:
        return None
    if len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidArgument(
            "INVALID_IDEMPOTENCY_KEY",
            f"an idempotency key is 1 to {MAX_KEY_LENGTH} printable characters",
        )
    return IdempotencyKey(caller, key, method)


def _digest(request: Message) -> bytes:
    return hashlib.sha256(request.SerializeToString(deterministic=True)).digest()


async def claim(connection: Connection, key: IdempotencyKey, request: Message) -> bytes | None:
    """Claim `key` for this request; return the stored response if it was already served."""
    fields = {"caller": key.caller, "key": key.key}
    request_hash = _digest(request)
    if await connection.fetchval(_CLAIM, **fields, method=key.method, request_hash=request_hash):
        return None
    stored = await connection.fetchrow(_STORED, **fields)
    # A row without a response was claimed outside `remember`'s contract;
    # answering it as a conflict is the safe side.
    if stored is None or stored["response"] is None:
        raise _conflict()
    if stored["method"] != key.method or bytes(stored["request_hash"]) != request_hash:
        raise _conflict()
    return bytes(stored["response"])


async def remember(connection: Connection, key: IdempotencyKey, response: Message) -> None:
    await connection.execute(
        _REMEMBER, caller=key.caller, key=key.key, response=response.SerializeToString()
    )


async def prune(database: Database, retention: timedelta = RETENTION) -> None:
    async with database.connection() as connection:
        await connection.execute(_PRUNE, age=retention.total_seconds())


def _conflict() -> Conflict:
    return Conflict(
        "IDEMPOTENCY_KEY_REUSED",
        "this idempotency key was already used for a different request",
    )
