"""Core NATS subjects that reach the Device Adapter replica holding a device's stream.

A replica subscribes to a device's subjects while it holds the stream and
unsubscribes when the stream ends, so interest disappears with the
connection (or the replica's process): "no responders" means the device is
not connected, and nothing can route to a replica that is gone. These
subjects lie outside every JetStream stream (warmhouse.<service>.v1.>), so a
request is never stored and acknowledged by the broker instead.
"""

import uuid
from datetime import timedelta
from enum import Enum

import nats.errors
from nats.aio.client import Client as NatsClient

_PREFIX = "warmhouse.live.device_adapter"
# How long the Device Adapter's events (telemetry, presence, connections,
# answers) stay in JetStream: worth minutes, kept a day to cover an outage of
# their consumer; the byte cap keeps a burst of telemetry from filling the disk.
ADAPTER_EVENT_RETENTION = timedelta(days=1)
ADAPTER_EVENT_BYTES = 8 * 2**30
# How long an asker waits for the holder: longer than the holder waits for a
# write (the adapter's routing.WRITE_TIMEOUT_SECONDS), so that it hears "not
# written" rather than nothing.
REQUEST_TIMEOUT_SECONDS = 5.0
# A reply carrying this header: the replica could not write to the stream.
ERROR_HEADER = "Warmhouse-Error"
NOT_CONNECTED = "not-connected"


class LiveAction(Enum):
    # Request: a serialized device_adapter Command; the reply, once it is
    # written, carries the stream's connection_id.
    COMMAND = "command"
    # Publish: the newer stream's connection_id; older streams end (REPLACED).
    REPLACE = "replace"
    # Publish: the device was retired or its secret rotated; its stream ends.
    REVOKE = "revoke"
    # Request: answered with a serialized GetConnectionResponse.
    CONNECTION = "connection"
    # Request: a serialized heating HeatingPlan; the reply as for COMMAND.
    PLAN = "plan"


def live_subject(device_id: uuid.UUID | str, action: LiveAction) -> str:
    return f"{_PREFIX}.{uuid.UUID(str(device_id))}.{action.value}"


def live_wildcard(device_id: uuid.UUID | str) -> str:
    """Every action for one device: what the holding replica subscribes to."""
    return f"{_PREFIX}.{uuid.UUID(str(device_id))}.*"


def action_of(subject: str) -> LiveAction | None:
    """The action a live subject names; None for anything else."""
    _, _, last = subject.rpartition(".")
    try:
        return LiveAction(last)
    except ValueError:
        return None


async def ask_holder(
    client: NatsClient,
    device_id: uuid.UUID | str,
    action: LiveAction,
    payload: bytes,
    timeout: float = REQUEST_TIMEOUT_SECONDS,  # noqa: ASYNC109 - nats-py's own timeout
) -> bytes | None:
    """The reply of the replica holding the device's stream; None when no
    replica holds it (no responders) or the holder could not act (the error
    header). A broker that cannot answer raises (nats-py's errors, TimeoutError)."""
    try:
        reply = await client.request(live_subject(device_id, action), payload, timeout=timeout)
    except nats.errors.NoRespondersError:
        return None
    if reply.headers and reply.headers.get(ERROR_HEADER):
        return None
    return bytes(reply.data)
