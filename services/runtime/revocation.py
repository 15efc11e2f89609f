"""Feeds `RevokedTokens` from the User service's events.

Logout and deactivation end sessions, each with a SessionRevoked event. Every
service replays those events from the last access-token lifetime (an older
token has expired anyway) and then follows them live, so a revoked token stops
working everywhere within seconds. After a broker restart the feed resumes
from the last stream sequence it saw.
"""

import contextlib
import logging
from datetime import UTC, datetime, timedelta

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from warmhouse.user.v1 import user_pb2

from services.runtime.auth import RevokedTokens
from services.runtime.loops import keep_running
from services.runtime.messaging import pull_batches, stream_config
from services.runtime.outbox import subject_of

log = logging.getLogger(__name__)
# The service whose events revoke tokens; every service follows its stream.
REVOCATIONS_FROM = "user"
REVOCATION_SUBJECT = subject_of(user_pb2.SessionRevoked())
_CLOCK_SKEW = timedelta(seconds=30)


def apply_revocation(revoked: RevokedTokens, subject: str, data: bytes) -> None:
    if subject == REVOCATION_SUBJECT:
        revoked.revoke_session(user_pb2.SessionRevoked.FromString(data).session_id)


class RevocationFeed:
    def __init__(
        self, jetstream: JetStreamContext, revoked: RevokedTokens, token_ttl_seconds: int
    ) -> None:
        self._jetstream = jetstream
        self._revoked = revoked
        self._since = datetime.now(UTC) - timedelta(seconds=token_ttl_seconds) - _CLOCK_SKEW
        self._next_sequence: int | None = None

    def _consumer_config(self) -> ConsumerConfig:
        # Ephemeral and unacknowledged: each replica keeps its own copy in memory.
        config = ConsumerConfig(
            filter_subject=REVOCATION_SUBJECT, ack_policy=AckPolicy.NONE, inactive_threshold=60.0
        )
        if self._next_sequence is None:
            config.deliver_policy = DeliverPolicy.BY_START_TIME
            config.opt_start_time = self._since
        else:
            config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = self._next_sequence
        return config

    async def run(self) -> None:
        await keep_running("revocation feed", self._follow)

    async def _follow(self) -> None:
        pull = await self._jetstream.pull_subscribe(
            "", stream=stream_config(REVOCATIONS_FROM).name, config=self._consumer_config()
        )
        try:
            async for messages in pull_batches(pull, batch_size=256):
                for message in messages:
                    self._next_sequence = message.metadata.sequence.stream + 1
                    try:
                        apply_revocation(self._revoked, message.subject, message.data)
                    except Exception:
                        log.exception("unreadable revocation event on %s", message.subject)
        finally:
            with contextlib.suppress(Exception):
                await pull.unsubscribe()
