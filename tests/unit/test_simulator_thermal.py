"""The simulator's room model, thermostat, clock and reconnection backoff: pure, no network."""

import itertools
import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from services.simulator.backoff import Backoff
from services.simulator.clock import SimClock
from services.simulator.thermal import (
    HISTORY_STEPS,
    HYSTERESIS_CELSIUS,
    MAX_STEP_SECONDS,
    Room,
    Thermostat,
)


def trace(room: Room, seconds: float, every: float = 30.0) -> list[tuple[float, bool]]:
    """(temperature, heating) after each `every` simulated seconds."""
    points = []
    for _ in range(int(seconds / every)):
        room.advance(every)
        points.append((room.temperature_celsius, room.heating))
    return points


def test_a_heater_warms_a_cold_room_to_its_target_and_holds_it_within_the_band() -> None:
    room = Room("living", temperature_celsius=15.0, outdoor_celsius=0.0)
    heater = room.add_heater(2000.0)
    assert heater.on

    warming = trace(room, 6 * 3600)
    held = [celsius for celsius, _ in warming[len(warming) // 2 :]]

    assert warming[0][0] > 15.0
    # The steps overshoot the band by at most one step's change (2 kW over 30 s ~ 0.06 K).
    assert min(held) >= 20.0 - HYSTERESIS_CELSIUS - 0.1
    assert max(held) <= 20.0 + HYSTERESIS_CELSIUS + 0.1
    states = [on for _, on in warming[len(warming) // 2 :]]
    assert True in states
    assert False in states  # it cycles instead of staying on


def test_inside_the_band_the_thermostat_keeps_what_it_was_doing() -> None:
    heater = Thermostat(target_celsius=20.0)
    heater.regulate(19.0)
    assert heater.on
    heater.regulate(20.2)
    assert heater.on
    heater.regulate(20.3)
    assert not heater.on
    heater.regulate(19.8)
    assert not heater.on
    heater.regulate(19.7)
    assert heater.on


def test_a_room_without_heating_cools_toward_outdoors() -> None:
    room = Room("bedroom", temperature_celsius=20.0, outdoor_celsius=0.0)

    cooling = trace(room, 24 * 3600, every=600)

    temperatures = [celsius for celsius, _ in cooling]
    assert all(later < earlier for earlier, later in itertools.pairwise(temperatures))
    # Newton's law of cooling: T_out + (T0 - T_out) e^(-k t / C).
    expected = 20.0 * math.exp(-50.0 * 24 * 3600 / 1_000_000.0)
    assert temperatures[-1] == pytest.approx(expected, abs=0.05)
    assert temperatures[-1] > 0.0


def test_a_heater_at_the_frost_floor_stays_off_until_the_room_nears_it_then_holds_it() -> None:
    room = Room("bedroom", temperature_celsius=20.0, outdoor_celsius=-10.0)
    heater = room.add_heater()
    heater.target_celsius = 7.0

    cooling = trace(room, 48 * 3600, every=600)

    first_on = next(index for index, (_, on) in enumerate(cooling) if on)
    assert cooling[first_on - 1][0] > 7.0 - HYSTERESIS_CELSIUS
    held = [celsius for celsius, _ in cooling[first_on:]]
    assert min(held) >= 7.0 - HYSTERESIS_CELSIUS - 0.1
    assert max(held) <= 7.0 + HYSTERESIS_CELSIUS + 0.1


def test_an_open_window_cools_the_room_fast_and_closing_it_slows_it_again() -> None:
    room = Room("living", temperature_celsius=20.0, outdoor_celsius=0.0)
    room.add_heater()

    room.window_open = True
    room.advance(60)
    after_a_minute_open = room.temperature_celsius
    room.window_open = False
    room.advance(60)

    assert 20.0 - after_a_minute_open >= 1.5
    # Closed again, the heater (on since the room fell below its band) warms it.
    assert room.temperature_celsius > after_a_minute_open


def test_a_heater_always_on_approaches_the_analytic_equilibrium() -> None:
    room = Room("hall", temperature_celsius=0.0, outdoor_celsius=-10.0)
    heater = room.add_heater(1000.0)
    heater.target_celsius = 100.0  # never reached: always on

    room.advance(10 * 3600)

    equilibrium = -10.0 + 1000.0 / 50.0
    decay = math.exp(-50.0 * 10 * 3600 / 1_000_000.0)
    assert room.temperature_celsius == pytest.approx(
        equilibrium + (0.0 - equilibrium) * decay, abs=0.05
    )


def test_heaters_in_one_room_add_up() -> None:
    one = Room("a", temperature_celsius=10.0)
    two = Room("b", temperature_celsius=10.0)
    one.add_heater(1000.0)
    two.add_heater(1000.0)
    two.add_heater(1000.0)

    one.advance(600)
    two.advance(600)

    assert two.temperature_celsius - 10.0 > 1.5 * (one.temperature_celsius - 10.0)


def test_advance_to_catches_up_once_and_never_goes_back() -> None:
    room = Room("a", temperature_celsius=20.0, outdoor_celsius=0.0)
    room.advance_to(3600.0)
    after_an_hour = room.temperature_celsius
    room.advance_to(3600.0)
    room.advance_to(1800.0)
    assert room.temperature_celsius == after_an_hour
    assert room.time_seconds == 3600.0
    assert after_an_hour < 20.0


def test_a_room_keeps_the_path_of_its_latest_steps() -> None:
    room = Room("a", temperature_celsius=20.0, outdoor_celsius=0.0)
    room.advance_to(600.0)  # twenty steps of 30 s

    path = room.temperatures_after(300.0)

    assert [seconds for seconds, _ in path] == pytest.approx(
        [300.0 + MAX_STEP_SECONDS * step for step in range(1, 11)]
    )
    assert [celsius for _, celsius in path] == sorted((c for _, c in path), reverse=True)
    assert path[-1][1] == room.temperature_celsius
    assert room.temperatures_after(600.0) == []
    room.advance_to(600.0 + MAX_STEP_SECONDS * 2 * HISTORY_STEPS)
    assert len(room.temperatures_after(0.0)) == HISTORY_STEPS  # the oldest forgotten


def test_a_thermostat_never_regulates_below_its_own_floor() -> None:
    heater = Thermostat(floor_celsius=10.0)

    heater.set_target(7.0)
    lowered_to = heater.target_celsius
    heater.set_target(18.0)
    heater.set_floor(19.0)

    assert lowered_to == 10.0
    assert heater.target_celsius == 19.0


def test_a_room_without_losses_or_mass_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        Room("a", loss_watts_per_kelvin=0.0)


def test_the_clock_runs_speed_times_faster_than_real_time() -> None:
    real = [100.0]
    start = datetime(2030, 1, 1, tzinfo=UTC)
    clock = SimClock(speed=60.0, start=start, monotonic=lambda: real[0])

    real[0] += 1.5

    assert clock.elapsed() == pytest.approx(90.0)
    assert clock.now() == start + timedelta(seconds=90)
    assert clock.at(30.0) == start + timedelta(seconds=30)


def test_the_speed_factor_drives_the_room() -> None:
    real = [0.0]
    slow = SimClock(speed=1.0, monotonic=lambda: real[0])
    fast = SimClock(speed=60.0, monotonic=lambda: real[0])
    rooms = [Room("slow", temperature_celsius=20.0), Room("fast", temperature_celsius=20.0)]

    real[0] = 60.0
    rooms[0].advance_to(slow.elapsed())
    rooms[1].advance_to(fast.elapsed())

    assert rooms[0].time_seconds == pytest.approx(60.0)
    assert rooms[1].time_seconds == pytest.approx(3600.0)
    # Outdoors is 0 °C: each has cooled as Newton's law says for its simulated time.
    for room in rooms:
        expected = 20.0 * math.exp(-50.0 * room.time_seconds / 1_000_000.0)
        assert room.temperature_celsius == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize("speed", [0.5, 0.0, -1.0, math.nan])
def test_a_clock_slower_than_real_time_is_refused(speed: float) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SimClock(speed=speed)


def test_backoff_grows_with_full_jitter_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(base_seconds=0.2, factor=2.0, cap_seconds=1.0, rng=random.Random(7))

    ceilings = []
    for _ in range(6):
        ceiling = backoff.ceiling()
        assert 0.0 <= backoff.next_delay() <= ceiling
        ceilings.append(ceiling)

    assert ceilings == pytest.approx([0.2, 0.4, 0.8, 1.0, 1.0, 1.0])
    for _ in range(5000):  # stays at the cap, without overflowing
        backoff.next_delay()
    assert backoff.ceiling() == 1.0
    backoff.reset()
    assert backoff.ceiling() == pytest.approx(0.2)


def test_backoff_delays_are_spread_not_equal() -> None:
    backoff = Backoff(cap_seconds=30.0, rng=random.Random(1))
    delays = set()
    for _ in range(20):
        backoff.reset()
        delays.add(backoff.next_delay())
    assert len(delays) > 1
