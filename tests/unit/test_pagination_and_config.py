from pathlib import Path

import pytest

from services.runtime.config import ConfigError, Environment, RuntimeSettings
from services.runtime.errors import InvalidArgument
from services.runtime.pagination import (
    MAX_PAGE_SIZE,
    decode_page_token,
    encode_page_token,
    page_size,
)
from services.runtime.tracing import configure_tracing

KEYS = frozenset({"createdAt", "id"})


def test_page_size_defaults_caps_and_refuses_negatives() -> None:
    assert page_size(0) == 20
    assert page_size(7) == 7
    assert page_size(10_000) == MAX_PAGE_SIZE
    with pytest.raises(InvalidArgument):
        page_size(-1)


def test_page_tokens_round_trip_and_garbage_is_refused() -> None:
    cursor = {"createdAt": "2026-01-01T00:00:00+00:00", "id": "x"}
    assert decode_page_token(encode_page_token(cursor), KEYS) == cursor
    assert decode_page_token("", KEYS) is None
    for garbage in ("%%%", "bm90IGpzb24", encode_page_token({"other": 1})):
        with pytest.raises(InvalidArgument):
            decode_page_token(garbage, KEYS)


def test_settings_are_read_with_types(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text("{}")
    env = Environment(
        {
            "WARMHOUSE_DATABASE_URL": "postgresql+asyncpg://x/y",
            "WARMHOUSE_JWKS_FILE": str(jwks),
            "WARMHOUSE_ACCESS_TOKEN_TTL_SECONDS": "120",
        }
    )
    settings = RuntimeSettings.from_environment(env)
    assert settings.access_token_ttl_seconds == 120
    assert settings.jwks_file == jwks


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
