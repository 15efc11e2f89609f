"""Device tokens: signed by the service, naming the user, bounded, ageing out."""

import uuid
from datetime import UTC, datetime, timedelta

from services.user.domain import DEVICE_TOKEN_MAX_LENGTH
from services.user.tokens import DeviceTokens

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY = b"device-token-key-for-unit-tests-0123456789"


def test_a_device_token_names_its_user_and_is_bounded() -> None:
    tokens = DeviceTokens(KEY)
    user_id = uuid.uuid4()
    token = tokens.issue(user_id, T0)
    assert len(token) <= DEVICE_TOKEN_MAX_LENGTH
    device = tokens.read(token, T0 + timedelta(days=1))
    assert device is not None
    assert device.user_id == user_id
    other = tokens.read(tokens.issue(user_id, T0), T0)
    assert other is not None
    assert other.device_id != device.device_id, "each login's token is a device of its own"


def test_only_tokens_signed_with_our_key_are_read() -> None:
    token = DeviceTokens(KEY).issue(uuid.uuid4(), T0)
    assert DeviceTokens(b"another key, also 32 bytes long!!").read(token, T0) is None
    _, nonce, issued, signature = token.split(".")
    assert DeviceTokens(KEY).read(f"{uuid.uuid4().hex}.{nonce}.{issued}.{signature}", T0) is None
    for garbage in ("", ".", "...", "a.b.c.d", "x" * 256, token + "x"):
        assert DeviceTokens(KEY).read(garbage, T0) is None


def test_old_tokens_are_ignored() -> None:
    tokens = DeviceTokens(KEY, max_age=timedelta(days=30))
    token = tokens.issue(uuid.uuid4(), T0)
    assert tokens.read(token, T0 + timedelta(days=30)) is not None
    assert tokens.read(token, T0 + timedelta(days=31)) is None
