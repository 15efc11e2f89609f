"""Support's settings from the environment, and the texts the safety chain writes."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from warmhouse.device.v1 import device_pb2

from services.runtime.config import ConfigError, Environment
from services.runtime.home_directory import DevicePlace
from services.runtime.timestamps import timestamp
from services.support.bootstrap import SupportSettings, definition
from services.support.hazards import describe_reading, hazard_subject


def test_defaults_without_environment() -> None:
    settings = SupportSettings.from_environment(Environment({}))
    assert settings.deadlines.of("URGENT") == timedelta(minutes=15)
    assert settings.deadlines.of("HIGH") == timedelta(hours=1)
    assert settings.deadlines.of("NORMAL") == timedelta(hours=8)
    assert settings.deadlines.of("LOW") == timedelta(hours=24)
    assert settings.sla_check_every == timedelta(seconds=30)


def test_each_deadline_and_the_sweep_come_from_their_variable() -> None:
    settings = SupportSettings.from_environment(
        Environment(
            {
                "WARMHOUSE_SUPPORT_FIRST_RESPONSE_URGENT_SECONDS": "60",
                "WARMHOUSE_SUPPORT_FIRST_RESPONSE_LOW_SECONDS": "7200",
                "WARMHOUSE_SUPPORT_SLA_CHECK_SECONDS": "2",
            }
        )
    )
    assert settings.deadlines.of("URGENT") == timedelta(seconds=60)
    assert settings.deadlines.of("LOW") == timedelta(hours=2)
    assert settings.deadlines.of("HIGH") == timedelta(hours=1)
    assert settings.sla_check_every == timedelta(seconds=2)


@pytest.mark.parametrize("value", ["0", "soon", "-5"])
def test_a_bad_deadline_fails_loudly(value: str) -> None:
    with pytest.raises(ConfigError):
        SupportSettings.from_environment(
            Environment({"WARMHOUSE_SUPPORT_FIRST_RESPONSE_HIGH_SECONDS": value})
        )


def test_the_service_consumes_device_and_space_and_migrates_the_directory() -> None:
    service = definition(SupportSettings())
    assert {"device", "space"} <= set(service.consumes_from)
    assert [component for component, _ in service.extra_migrations] == ["home-directory"]


def test_a_reading_is_described_with_what_it_holds() -> None:
    sampled = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
    reading = device_pb2.Reading(
        temperature_celsius=92.25, gas_alarm=True, sample_time=timestamp(sampled)
    )
    assert describe_reading(reading) == (
        "temperature 92.2 °C, gas alarm on (sampled 2026-03-01 08:30:00 UTC)"
    )
    assert describe_reading(device_pb2.Reading()) == "no values reported"


def test_a_subject_names_device_and_room_and_stays_within_200() -> None:
    device, room = uuid.uuid4(), uuid.uuid4()
    place = DevicePlace(device, "Boiler", room, "Kitchen", uuid.uuid4(), "Home")
    assert hazard_subject("GAS_LEAK", place, device, room) == "Gas leak alarm: Boiler in Kitchen"
    unnamed = DevicePlace(device, "", room, "", uuid.uuid4(), "")
    assert hazard_subject("OVERHEATING", unnamed, device, room) == (
        f"Overheating: device {device} in space {room}"
    )
    long = DevicePlace(device, "d" * 100, room, "r" * 100, uuid.uuid4(), "")
    subject = hazard_subject("GAS_LEAK", long, device, room)
    assert len(subject) == 200
    assert subject.endswith("…")
