"""Feeds `RevokedTokens` from the User service's events.

Every service replays SessionRevoked and UserDeactivated events from the last
access-token lifetime (an older token has expired anyway) and then follows
them live, so a revoked token stops working everywhere within seconds.
"""

import logging
from datetime import UTC, datetime, timedelta

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from warmhouse.user.v1 import user_pb2

from services.runtime.auth import RevokedTokens
from services.runtime.messaging import stream_config
from services.runtime.outbox import subject_of

log = logging.getLogger(__name__)
# The service whose events revoke tokens; every service follows its stream.
REVOCATIONS_FROM = "user"
_CLOCK_SKEW = timedelta(seconds=30)


def apply_revocation(revoked: RevokedTokens, subject: str, data: bytes) -> None:
    if subject == subject_of(user_pb2.SessionRevoked()):
        revoked.revoke_session(user_pb2.SessionRevoked.FromString(data).session_id)
    elif subject == subject_of(user_pb2.UserDeactivated()):
        deactivated = user_pb2.UserDeactivated.FromString(data)
        revoked.revoke_user(deactivated.user_id, deactivated.occur_time.ToDatetime(UTC).timestamp())


async def follow_revocations(
    jetstream: JetStreamContext, revoked: RevokedTokens, token_ttl_seconds: int
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=token_ttl_seconds) - _CLOCK_SKEW

    async def on_message(message: Msg) -> None:
        try:
            apply_revocation(revoked, message.subject, message.data)
        except Exception:
            log.exception("unreadable revocation event on %s", message.subject)

    for event in (user_pb2.SessionRevoked(), user_pb2.UserDeactivated()):
        await jetstream.subscribe(
            subject_of(event),
            stream=stream_config(REVOCATIONS_FROM).name,
            cb=on_message,
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=since),
        )
