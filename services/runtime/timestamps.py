"""datetime ↔ google.protobuf.Timestamp, for messages and events."""

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from services.runtime.errors import InvalidArgument

# 1970-01-01T00:00:00Z and 9999-12-31T23:59:59Z: earlier or later is a client's mistake.
_FIRST_SECOND = 0
_LAST_SECOND = 253_402_300_799


def timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def moment(stamp: Timestamp, field: str) -> datetime:
    """A Timestamp from a client, between 1970 and 9999 (else INVALID_ARGUMENT)."""
    if not (_FIRST_SECOND <= stamp.seconds <= _LAST_SECOND and 0 <= stamp.nanos < 10**9):
        raise InvalidArgument(
            "INVALID_TIMESTAMP", f"{field} must be between 1970 and 9999", field=field
        )
    return stamp.ToDatetime(tzinfo=UTC)
