"""Streams belong to the service that publishes on them."""

from dataclasses import replace

from services.devstack.nats_process import NatsProcess
from services.runtime import messaging


async def test_a_consumer_never_rewrites_a_stream_it_does_not_own(nats_server: NatsProcess) -> None:
    client = await messaging.connect(nats_server.url, "test-streams")
    try:
        jetstream = client.jetstream()
        owners = replace(messaging.stream_config("ownership-probe"), max_age=3600.0)
        await messaging.ensure_stream(jetstream, owners, owned=True)
        consumers_idea = replace(owners, max_age=7200.0)
        await messaging.ensure_stream(jetstream, consumers_idea, owned=False)
        assert (await jetstream.stream_info(str(owners.name))).config.max_age == 3600.0
        await messaging.ensure_stream(jetstream, consumers_idea, owned=True)
        assert (await jetstream.stream_info(str(owners.name))).config.max_age == 7200.0
        await jetstream.delete_stream(str(owners.name))
    finally:
        await client.close()
