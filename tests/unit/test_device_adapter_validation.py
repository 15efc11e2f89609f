"""What the Device Adapter accepts from a device's frames."""

import math
import uuid

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from warmhouse.device_adapter.v1 import device_adapter_pb2 as pb
from warmhouse.heating.v1 import heating_pb2

from services.device_adapter.validation import (
    MAX_RESULT_MESSAGE_LENGTH,
    accepted_heating_status,
    accepted_telemetry,
    canonical_uuid,
    check_hello,
    command_answer,
    heating_status_problem,
    plausible_sample_time,
    stamp,
    telemetry_problem,
)
from services.runtime.errors import InvalidArgument, Unauthenticated
from tests.protobuf_padding import unknown_field

NOW = 1_800_000_000.0
DEVICE = "0b7e8f3c-5a1d-4c2e-9f6a-1d2e3f4a5b6c"


def at(seconds: float) -> Timestamp:
    return stamp(seconds)


def test_a_hello_names_the_device_by_its_canonical_id() -> None:
    fields = check_hello(
        pb.Hello(device_id=DEVICE.upper(), device_secret="s3cret", firmware_version="2.1.0")
    )
    assert fields.device_id == DEVICE
    assert (fields.secret, fields.firmware_version) == ("s3cret", "2.1.0")


@pytest.mark.parametrize(
    ("device_id", "secret"),
    [
        ("not-a-uuid", "s3cret"),
        (DEVICE + "0" * 30, "s3cret"),
        ("", "s3cret"),
        (DEVICE, ""),
        (DEVICE, "x" * 257),
    ],
)
def test_malformed_credentials_are_refused_like_wrong_ones(device_id: str, secret: str) -> None:
    with pytest.raises(Unauthenticated) as refused:
        check_hello(pb.Hello(device_id=device_id, device_secret=secret))
    assert refused.value.reason == "DEVICE_CREDENTIALS_INVALID"
    assert device_id not in refused.value.message or not device_id


def test_the_longest_secret_is_accepted() -> None:
    assert check_hello(pb.Hello(device_id=DEVICE, device_secret="x" * 256)).secret == "x" * 256


@pytest.mark.parametrize("firmware", ["v" * 65, "1.0\n", "1.0\x00", "\u202e1.0"])
def test_a_firmware_version_is_short_and_printable(firmware: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        check_hello(pb.Hello(device_id=DEVICE, device_secret="s", firmware_version=firmware))
    assert refused.value.reason == "FIRMWARE_VERSION_INVALID"


def test_a_uuid_is_recognised_only_in_its_usual_forms() -> None:
    assert canonical_uuid(DEVICE.upper()) == DEVICE
    assert canonical_uuid("x" * 36) is None
    assert canonical_uuid(DEVICE + " ") is None


@pytest.mark.parametrize(
    "telemetry",
    [
        pb.Telemetry(temperature_celsius=math.nan),
        pb.Telemetry(temperature_celsius=math.inf),
        pb.Telemetry(temperature_celsius=-100.5),
        pb.Telemetry(temperature_celsius=200.01),
        pb.Telemetry(power_watts=-0.1),
        pb.Telemetry(power_watts=100_000.5),
        pb.Telemetry(power_watts=-math.inf),
    ],
)
def test_impossible_numbers_drop_the_sample(telemetry: pb.Telemetry) -> None:
    assert telemetry_problem(telemetry) is not None
    assert accepted_telemetry(telemetry, NOW) is None


def test_the_limits_themselves_are_accepted() -> None:
    for telemetry in (
        pb.Telemetry(temperature_celsius=-100.0, power_watts=0.0),
        pb.Telemetry(temperature_celsius=200.0, power_watts=100_000.0),
        pb.Telemetry(heater_on=True, gas_alarm=False),
    ):
        assert telemetry_problem(telemetry) is None
        assert accepted_telemetry(telemetry, NOW) is not None


def test_a_plausible_sample_time_is_kept() -> None:
    sent = pb.Telemetry(temperature_celsius=21.5, sample_time=at(NOW - 3600))
    accepted = accepted_telemetry(sent, NOW)
    assert accepted is not None
    assert accepted.sample_time == at(NOW - 3600)
    assert accepted.temperature_celsius == 21.5


@pytest.mark.parametrize("offset", [-86_401.0, 61.0, -NOW])
def test_an_implausible_sample_time_becomes_the_receive_time(offset: float) -> None:
    sent = pb.Telemetry(temperature_celsius=21.5, sample_time=at(NOW + offset))
    accepted = accepted_telemetry(sent, NOW)
    assert accepted is not None
    assert accepted.sample_time == at(NOW)


def test_a_missing_sample_time_becomes_the_receive_time() -> None:
    accepted = accepted_telemetry(pb.Telemetry(power_watts=5.0), NOW)
    assert accepted is not None
    assert accepted.sample_time == at(NOW)


def test_sample_time_window_edges() -> None:
    assert plausible_sample_time(at(NOW - 86_400), NOW)
    assert plausible_sample_time(at(NOW + 60), NOW)
    assert not plausible_sample_time(Timestamp(seconds=int(NOW), nanos=-1), NOW)
    assert not plausible_sample_time(Timestamp(seconds=int(NOW), nanos=10**9), NOW)


def test_accepting_a_sample_leaves_the_received_one_alone() -> None:
    sent = pb.Telemetry(temperature_celsius=20.0)
    accepted_telemetry(sent, NOW)
    assert not sent.HasField("sample_time")


@pytest.mark.parametrize("sample_time", [at(NOW - 60), None])
def test_fields_the_proto_does_not_know_never_reach_the_accepted_sample(
    sample_time: Timestamp | None,
) -> None:
    clean = pb.Telemetry(temperature_celsius=21.5, power_watts=0.0, heater_on=False)
    if sample_time is not None:
        padded_time = Timestamp.FromString(sample_time.SerializeToString() + unknown_field(1000))
        clean.sample_time.CopyFrom(sample_time)
    padded = pb.Telemetry.FromString(clean.SerializeToString() + unknown_field(900_000))
    if sample_time is not None:
        padded.sample_time.CopyFrom(padded_time)
    assert padded.ByteSize() > 900_000
    accepted = accepted_telemetry(padded, NOW)
    assert accepted is not None
    expected = pb.Telemetry()
    expected.CopyFrom(clean)
    expected.sample_time.CopyFrom(sample_time or at(NOW))
    assert accepted.SerializeToString() == expected.SerializeToString()
    assert accepted.HasField("power_watts")
    assert accepted.HasField("heater_on")
    assert not accepted.HasField("gas_alarm")


def test_a_command_answer_names_a_uuid_and_keeps_a_bounded_message() -> None:
    command_id = str(uuid.uuid4())
    answer = command_answer(
        pb.CommandResult(command_id=command_id.upper(), ok=False, message="é" * 600)
    )
    assert answer is not None
    assert answer.command_id == command_id
    assert not answer.ok
    assert answer.message == "é" * MAX_RESULT_MESSAGE_LENGTH


def test_an_answer_to_no_command_is_dropped() -> None:
    assert command_answer(pb.CommandResult(command_id="42", ok=True)) is None


def heating_status() -> heating_pb2.HeatingStatus:
    """A status with every field set, as a heating device in AUTO reports it."""
    return heating_pb2.HeatingStatus(
        plan_version=12,
        mode=heating_pb2.AUTO,
        preset=heating_pb2.ECO,
        preset_end_time=at(NOW + 3600),
        target_celsius=18.0,
        reason=heating_pb2.SCHEDULE,
        schedule_slot=heating_pb2.ScheduleSlot(
            day=heating_pb2.SUNDAY, start_time="23:59", target_celsius=17.5
        ),
        window_open=True,
        window_open_until=at(NOW + 1800),
        heater_on=False,
        temperature_celsius=16.25,
        # A simulated clock may run days ahead of ours.
        device_time=at(NOW + 30 * 86_400),
    )


def test_a_heating_status_is_accepted_whole() -> None:
    sent = heating_status()
    assert heating_status_problem(sent) is None
    assert accepted_heating_status(sent) == sent


def test_a_heating_status_with_only_what_a_reset_device_knows_is_accepted() -> None:
    sent = heating_pb2.HeatingStatus(
        plan_version=0,
        mode=heating_pb2.HEAT,
        preset=heating_pb2.NONE,
        target_celsius=20.0,
        reason=heating_pb2.MANUAL_TARGET,
    )
    assert accepted_heating_status(sent) == sent


def test_the_heating_temperature_limits_themselves_are_accepted() -> None:
    for celsius in (-50.0, 150.0):
        sent = heating_status()
        sent.target_celsius = sent.temperature_celsius = celsius
        sent.schedule_slot.target_celsius = celsius
        assert heating_status_problem(sent) is None


def spoiled(path: str, value: object) -> heating_pb2.HeatingStatus:
    """heating_status() with the field at `path` (e.g. "schedule_slot.day") set to `value`."""
    status = heating_status()
    *parents, name = path.split(".")
    owner: object = status
    for parent in parents:
        owner = getattr(owner, parent)
    setattr(owner, name, value)
    return status


@pytest.mark.parametrize(
    ("status", "problem"),
    [
        (spoiled("target_celsius", math.nan), "target_celsius"),
        (spoiled("target_celsius", -50.01), "target_celsius"),
        (spoiled("target_celsius", 150.01), "target_celsius"),
        (spoiled("temperature_celsius", math.inf), "temperature_celsius"),
        (spoiled("temperature_celsius", -math.inf), "temperature_celsius"),
        (spoiled("schedule_slot.target_celsius", math.nan), "schedule_slot.target_celsius"),
        (spoiled("schedule_slot.target_celsius", 1e300), "schedule_slot.target_celsius"),
        (spoiled("mode", heating_pb2.HEATING_MODE_UNSPECIFIED), "mode"),
        (spoiled("mode", 99), "mode"),
        (spoiled("preset", heating_pb2.PRESET_UNSPECIFIED), "preset"),
        (spoiled("preset", 7), "preset"),
        (spoiled("reason", heating_pb2.HEATING_REASON_UNSPECIFIED), "reason"),
        (spoiled("reason", -1), "reason"),
        (spoiled("schedule_slot.day", heating_pb2.DAY_OF_WEEK_UNSPECIFIED), "schedule_slot.day"),
        (spoiled("schedule_slot.day", 8), "schedule_slot.day"),
        (spoiled("schedule_slot.start_time", "07:000"), "schedule_slot.start_time"),
        (spoiled("schedule_slot.start_time", "7:00"), "schedule_slot.start_time"),
        (spoiled("schedule_slot.start_time", "24:00"), "schedule_slot.start_time"),
        (spoiled("schedule_slot.start_time", "07:60"), "schedule_slot.start_time"),
        (spoiled("schedule_slot.start_time", "07:0\n"), "schedule_slot.start_time"),
        # Digits, but not ASCII ones.
        (spoiled("schedule_slot.start_time", "\uff10\uff17:00"), "schedule_slot.start_time"),
        (spoiled("schedule_slot.start_time", ""), "schedule_slot.start_time"),
        (spoiled("plan_version", -1), "plan_version"),
        (spoiled("device_time.nanos", -1), "device_time"),
        (spoiled("preset_end_time.nanos", 10**9), "preset_end_time"),
        (spoiled("window_open_until.seconds", 253_402_300_800), "window_open_until"),
    ],
)
def test_a_heating_status_that_cannot_be_believed_is_dropped(
    status: heating_pb2.HeatingStatus, problem: str
) -> None:
    found = heating_status_problem(status)
    assert found is not None
    assert found.startswith(problem + " ")
    assert accepted_heating_status(status) is None


def test_fields_the_proto_does_not_know_never_reach_the_accepted_status() -> None:
    clean = heating_status()
    slot = heating_pb2.ScheduleSlot.FromString(
        clean.schedule_slot.SerializeToString() + unknown_field(1000)
    )
    padded = heating_pb2.HeatingStatus.FromString(clean.SerializeToString() + unknown_field(50_000))
    padded.schedule_slot.CopyFrom(slot)
    assert padded.ByteSize() > 51_000
    accepted = accepted_heating_status(padded)
    assert accepted is not None
    assert accepted.SerializeToString() == clean.SerializeToString()
    # The received one is left alone.
    assert padded.ByteSize() > 51_000
