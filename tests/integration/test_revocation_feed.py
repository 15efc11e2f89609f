"""Every service follows SessionRevoked events: promptly, and quietly when idle."""

import asyncio
import logging
import time
import uuid

import pytest
from warmhouse.user.v1 import user_pb2

from services.devstack.nats_process import NatsProcess
from services.runtime import messaging
from services.runtime.auth import Caller, RevokedTokens
from services.runtime.revocation import REVOCATION_SUBJECT, REVOCATIONS_FROM, RevocationFeed
from tests.polling import eventually

log = logging.getLogger(__name__)


def caller(session_id: str) -> Caller:
    return Caller(user_id="u", role="USER", session_id=session_id)


async def test_a_revocation_reaches_a_following_service_promptly_and_the_idle_feed_never_restarts(
    nats_server: NatsProcess, caplog: pytest.LogCaptureFixture
) -> None:
    client = await messaging.connect(nats_server.url, "test-revocations")
    jetstream = client.jetstream()
    config = messaging.stream_config(REVOCATIONS_FROM)
    await messaging.ensure_stream(jetstream, config, owned=True)
    revoked = RevokedTokens(remember_seconds=300)
    feed = asyncio.create_task(RevocationFeed(jetstream, revoked, 300).run())
    try:
        with caplog.at_level(logging.WARNING, logger="services.runtime.loops"):
            # Idle for several fetch timeouts: the feed must wait, not restart.
            await asyncio.sleep(3.5)
            session_id = str(uuid.uuid4())
            event = user_pb2.SessionRevoked(session_id=session_id, user_id="u")
            sent = time.monotonic()
            await jetstream.publish(
                REVOCATION_SUBJECT,
                event.SerializeToString(),
                headers={"Nats-Msg-Id": str(uuid.uuid4())},
            )
            await eventually(lambda: revoked.is_revoked(caller(session_id)), what="revocation")
            log.info("revocation followed after %.3f s", time.monotonic() - sent)
        assert not [record for record in caplog.records if "restarting" in record.getMessage()]
    finally:
        feed.cancel()
        await asyncio.gather(feed, return_exceptions=True)
        await client.close()
