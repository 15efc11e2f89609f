"""The Device Adapter's settings and self-description."""

import pytest

from services.device_adapter.bootstrap import AdapterSettings, shutdown_budget
from services.device_adapter.description import DESCRIPTION, DEVICE_ADAPTER_SERVICE
from services.runtime.config import ConfigError, Environment
from services.runtime.service import Access


def test_defaults_follow_the_design() -> None:
    settings = AdapterSettings.from_environment(Environment({}))
    assert settings == AdapterSettings(
        device_address="device:50051",
        heartbeat_seconds=5,
        presence_seconds=5,
        hello_seconds=10,
        auth_failures_per_minute=10,
    )


def test_settings_come_from_the_environment() -> None:
    settings = AdapterSettings.from_environment(
        Environment(
            {
                "WARMHOUSE_DEVICE_ADDRESS": "127.0.0.1:6000",
                "WARMHOUSE_DEVICE_ADAPTER_HEARTBEAT_SECONDS": "1",
                "WARMHOUSE_DEVICE_ADAPTER_PRESENCE_SECONDS": "2",
                "WARMHOUSE_DEVICE_ADAPTER_HELLO_SECONDS": "3",
                "WARMHOUSE_DEVICE_ADAPTER_AUTH_FAILURES_PER_MINUTE": "1000",
            }
        )
    )
    assert settings == AdapterSettings("127.0.0.1:6000", 1, 2, 3, 1000)


@pytest.mark.parametrize(
    "variable",
    [
        "WARMHOUSE_DEVICE_ADAPTER_HEARTBEAT_SECONDS",
        "WARMHOUSE_DEVICE_ADAPTER_PRESENCE_SECONDS",
        "WARMHOUSE_DEVICE_ADAPTER_HELLO_SECONDS",
        "WARMHOUSE_DEVICE_ADAPTER_AUTH_FAILURES_PER_MINUTE",
    ],
)
def test_zero_is_refused_at_start_up(variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        AdapterSettings.from_environment(Environment({variable: "0"}))


def test_only_connect_is_open_to_hardware() -> None:
    assert DESCRIPTION.access(f"/{DEVICE_ADAPTER_SERVICE}/Connect") is Access.PUBLIC
    for method in ("SendCommand", "GetConnection"):
        assert DESCRIPTION.access(f"/{DEVICE_ADAPTER_SERVICE}/{method}") is Access.INTERNAL
    assert not DESCRIPTION.owns_database
    assert not DESCRIPTION.behind_edge
    assert DESCRIPTION.module == "services.device_adapter"


def test_ending_the_streams_takes_part_of_the_drain_time() -> None:
    assert shutdown_budget(10) == 5.0
    assert shutdown_budget(60) == 5.0
    assert shutdown_budget(0) == 0.5
    assert shutdown_budget(None) == 0.5
