"""What the runtime's messaging module shows of its broker."""

from services.runtime import messaging


def test_logs_never_show_the_brokers_token() -> None:
    shown = messaging._without_credentials("nats://s3cret@127.0.0.1:4222")
    assert shown == "nats://127.0.0.1:4222"
    assert messaging._without_credentials("nats://127.0.0.1:4222") == "nats://127.0.0.1:4222"
