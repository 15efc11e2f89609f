"""datetime ↔ google.protobuf.Timestamp, for messages and events."""

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from services.runtime.errors import InvalidArgument

# From 1970-01-01T00:00:00Z up to (not including) 9999-01-01T00:00:00Z: nothing
# we store lies outside, and the very end of year 9999 is no instant at all
# to asyncpg, which writes datetime.max as PostgreSQL's 'infinity'.
_FIRST_SECOND = 0
_END_SECOND = 253_370_764_800


def timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def moment(stamp: Timestamp, field: str) -> datetime:
    """A Timestamp from a client, from 1970 to before 9999 (else INVALID_ARGUMENT)."""
    if not (_FIRST_SECOND <= stamp.seconds < _END_SECOND and 0 <= stamp.nanos < 10**9):
        raise InvalidArgument(
            "INVALID_TIMESTAMP", f"{field} must be from 1970 to before the year 9999", field=field
        )
    return stamp.ToDatetime(tzinfo=UTC)


def event_time(stamp: Timestamp) -> datetime | None:
    """When an event says something happened; None when it left the time unset."""
    return stamp.ToDatetime(tzinfo=UTC) if stamp.seconds or stamp.nanos else None
