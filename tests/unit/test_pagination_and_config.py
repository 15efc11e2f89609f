import base64
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.runtime.config import ConfigError, Environment, RuntimeSettings
from services.runtime.errors import InvalidArgument
from services.runtime.messaging import stream_config
from services.runtime.pagination import MAX_PAGE_SIZE, Cursor, PageTokens, page_size
from services.runtime.tracing import configure_tracing

TOKENS = PageTokens(b"k" * 32)


def test_page_size_defaults_caps_and_refuses_negatives() -> None:
    assert page_size(0) == 20
    assert page_size(7) == 7
    assert page_size(10_000) == MAX_PAGE_SIZE
    with pytest.raises(InvalidArgument):
        page_size(-1)


def test_page_tokens_round_trip() -> None:
    cursor = Cursor(datetime(2026, 1, 1, tzinfo=UTC), uuid.uuid4())
    assert TOKENS.decode(TOKENS.encode(cursor, listing="a"), listing="a") == cursor
    assert TOKENS.decode("", listing="a") is None


def test_a_token_works_only_on_the_listing_that_issued_it() -> None:
    cursor = Cursor(datetime(2026, 1, 1, tzinfo=UTC), uuid.uuid4())
    token = TOKENS.encode(cursor, listing="devices:home-a")
    with pytest.raises(InvalidArgument):
        TOKENS.decode(token, listing="devices:home-b")


def test_forged_or_garbled_page_tokens_are_refused() -> None:
    genuine = TOKENS.encode(Cursor(datetime(2026, 1, 1, tzinfo=UTC), uuid.uuid4()), listing="a")
    # The shapes that used to reach the database: a wrong type, an out-of-range time.
    forged = [
        base64.urlsafe_b64encode(b"\0" * 16 + json.dumps(payload).encode()).decode()
        for payload in (["2026-01-01T00:00:00+00:00", 123], ["0001-01-01T00:00:00+14:00", "x"])
    ]
    other_key = PageTokens(b"o" * 32).encode(Cursor(datetime.now(UTC), uuid.uuid4()), listing="a")
    for garbage in ("%%%", "bm90IGpzb24", genuine[:-2], other_key, "A" * 6000, *forged):
        with pytest.raises(InvalidArgument) as refused:
            TOKENS.decode(garbage, listing="a")
        assert garbage not in refused.value.message


def test_a_page_has_a_next_token_only_when_more_rows_came_back() -> None:
    rows = [Cursor(datetime(2026, 1, day, tzinfo=UTC), uuid.uuid4()) for day in range(1, 4)]
    items, token = TOKENS.page(rows, 2, lambda row: row, listing="a")
    assert items == rows[:2]
    assert TOKENS.decode(token, listing="a") == rows[1]
    assert TOKENS.page(rows, 3, lambda row: row, listing="a") == (rows, "")


def test_settings_are_read_with_types(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text("{}")
    secret = tmp_path / "secret"
    secret.write_text("s" * 40 + "\n")
    env = Environment(
        {
            "WARMHOUSE_DATABASE_URL": "postgresql+asyncpg://x/y",
            "WARMHOUSE_JWKS_FILE": str(jwks),
            "WARMHOUSE_SERVICE_SECRET_FILE": str(secret),
            "WARMHOUSE_TRUSTED_PROXIES": "127.0.0.2, 10.0.0.0/8",
            "WARMHOUSE_ACCESS_TOKEN_TTL_SECONDS": "120",
        }
    )
    settings = RuntimeSettings.from_environment(env)
    assert settings.access_token_ttl_seconds == 120
    assert settings.jwks_file == jwks
    assert settings.service_secret == b"s" * 40
    assert [str(network) for network in settings.trusted_proxies] == ["127.0.0.2/32", "10.0.0.0/8"]
    assert settings.derived_key("a") != settings.derived_key("b")
    assert settings.nats_stream_replicas == 1


def test_stream_replicas_are_read_from_the_environment_and_reach_the_stream(
    tmp_path: Path,
) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text("{}")
    secret = tmp_path / "secret"
    secret.write_text("s" * 40)
    environ = {
        "WARMHOUSE_DATABASE_URL": "postgresql://x/y",
        "WARMHOUSE_JWKS_FILE": str(jwks),
        "WARMHOUSE_SERVICE_SECRET_FILE": str(secret),
        "WARMHOUSE_NATS_STREAM_REPLICAS": "3",
    }
    settings = RuntimeSettings.from_environment(Environment(environ))
    assert settings.nats_stream_replicas == 3
    config = stream_config("user", replicas=settings.nats_stream_replicas)
    assert config.num_replicas == 3
    assert stream_config("user").num_replicas == 1
    with pytest.raises(ConfigError, match="WARMHOUSE_NATS_STREAM_REPLICAS must be at least 1"):
        RuntimeSettings.from_environment(
            Environment({**environ, "WARMHOUSE_NATS_STREAM_REPLICAS": "0"})
        )


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "WARMHOUSE_DATABASE_URL is required"),
        (
            {"WARMHOUSE_DATABASE_URL": "u", "WARMHOUSE_JWKS_FILE": "/nonexistent"},
            "not a readable file",
        ),
    ],
)
def test_missing_or_bad_settings_fail_loudly(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RuntimeSettings.from_environment(Environment(environ))


def test_a_flag_reads_true_or_false_and_nothing_else() -> None:
    env = Environment({"ON": " Yes ", "OFF": "0", "BAD": "maybe"})
    assert env.flag("ON") is True
    assert env.flag("OFF", default=True) is False
    assert env.flag("UNSET") is False
    assert env.flag("UNSET", default=True) is True
    with pytest.raises(ConfigError, match="BAD must be true or false"):
        env.flag("BAD")


def test_a_malformed_number_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="WARMHOUSE_X must be a whole number"):
        Environment({"WARMHOUSE_X": "ten"}).integer("WARMHOUSE_X", 1)
    with pytest.raises(ConfigError, match="at least 10"):
        Environment({"WARMHOUSE_X": "3"}).integer("WARMHOUSE_X", 10, minimum=10)


def test_an_unknown_trace_exporter_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin-over-carrier-pigeon")
    with pytest.raises(ConfigError, match="OTEL_TRACES_EXPORTER"):
        configure_tracing("test")
