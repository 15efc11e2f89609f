"""A room's temperature: heaters in, losses out, integrated over simulated seconds.

    dT/dt = (P_heaters - k * (T - T_out)) / C

with k the heat loss coefficient (W/K), far larger while a window is open, and
C the thermal mass (J/K). Pure: no clock, no I/O; devices advance their room to
the simulated time before reading it or changing a heater or the window.
"""

from collections import deque
from dataclasses import dataclass, field

from services.runtime.heating_model import DEFAULT_FROST_FLOOR_CELSIUS, DEFAULT_TARGET_CELSIUS

# Half the thermostat's dead band: on below target - this, off above target + this.
HYSTERESIS_CELSIUS = 0.25
# Long enough to keep thousands of rooms cheap, short enough that a heater at
# full power moves the default room by well under the dead band per step.
MAX_STEP_SECONDS = 30.0
# What an open window adds to the room's losses: from 20 °C with 0 °C outside the
# default room loses 1.5 °C in under a simulated minute, as a firmware's
# open-window detector expects of an opened window.
OPEN_WINDOW_WATTS_PER_KELVIN = 2000.0
# The temperatures after the room's latest steps that it keeps (`history`): at
# MAX_STEP_SECONDS a step, over two simulated hours, what a device looking once
# a real second on a clock up to about 7,000 times faster still sees all of.
HISTORY_STEPS = 256


@dataclass
class Thermostat:
    """A heater and its on/off regulation around the set point its firmware gives it. It has
    no off of its own: off, the firmware sets the frost floor, which it still holds.

    `floor_celsius` is its own firmware's frost floor: a set point from elsewhere (the
    room's controller) is raised to it."""

    power_watts: float = 2000.0
    target_celsius: float = DEFAULT_TARGET_CELSIUS
    on: bool = False
    floor_celsius: float = DEFAULT_FROST_FLOOR_CELSIUS

    def set_target(self, celsius: float) -> None:
        """Regulate to `celsius` from now on, never below the floor."""
        self.target_celsius = max(self.floor_celsius, celsius)

    def set_floor(self, celsius: float) -> None:
        """Its firmware's frost floor; a set point already below it is raised."""
        self.floor_celsius = celsius
        self.target_celsius = max(celsius, self.target_celsius)

    def regulate(self, room_celsius: float) -> None:
        if room_celsius < self.target_celsius - HYSTERESIS_CELSIUS:
            self.on = True
        elif room_celsius > self.target_celsius + HYSTERESIS_CELSIUS:
            self.on = False
        # Inside the band it keeps doing what it did, so it does not flicker.

    @property
    def output_watts(self) -> float:
        return self.power_watts if self.on else 0.0


@dataclass
class Room:
    """One room's air, shared by every device in it. Defaults: a small room that a
    2 kW heater warms by a few degrees an hour and holds at 20 °C down to -20 °C outside."""

    name: str
    temperature_celsius: float = 15.0
    outdoor_celsius: float = 0.0
    loss_watts_per_kelvin: float = 50.0
    capacity_joules_per_kelvin: float = 1_000_000.0
    heaters: list[Thermostat] = field(default_factory=list)
    # Change it only after advancing the room to now, as for a heater's target.
    window_open: bool = False
    # The simulated time (seconds since the clock's start) the temperature holds for.
    time_seconds: float = 0.0
    # (time_seconds, temperature_celsius) after each of the latest steps, oldest first: the
    # path between two looks of a device that looks less often than the room steps.
    history: deque[tuple[float, float]] = field(
        default_factory=lambda: deque(maxlen=HISTORY_STEPS), repr=False
    )

    def __post_init__(self) -> None:
        if not (self.loss_watts_per_kelvin > 0 and self.capacity_joules_per_kelvin > 0):
            raise ValueError("the heat loss coefficient and thermal mass must be positive")

    def add_heater(self, power_watts: float = 2000.0) -> Thermostat:
        heater = Thermostat(power_watts=power_watts)
        heater.regulate(self.temperature_celsius)
        self.heaters.append(heater)
        return heater

    @property
    def current_loss_watts_per_kelvin(self) -> float:
        """The heat loss coefficient now, with the window as it is."""
        window = OPEN_WINDOW_WATTS_PER_KELVIN if self.window_open else 0.0
        return self.loss_watts_per_kelvin + window

    @property
    def heating(self) -> bool:
        return any(heater.on for heater in self.heaters)

    def step(self, seconds: float) -> None:
        """One explicit Euler step: the thermostats decide, then the air takes `seconds`."""
        for heater in self.heaters:
            heater.regulate(self.temperature_celsius)
        power = sum(heater.output_watts for heater in self.heaters)
        loss = self.current_loss_watts_per_kelvin * (
            self.temperature_celsius - self.outdoor_celsius
        )
        self.temperature_celsius += (power - loss) / self.capacity_joules_per_kelvin * seconds
        self.time_seconds += seconds
        self.history.append((self.time_seconds, self.temperature_celsius))

    def advance(self, seconds: float, max_step: float = MAX_STEP_SECONDS) -> None:
        """`seconds` of simulated time, in steps short enough for the thermostats and
        for stability (explicit Euler diverges past the time constant C/k)."""
        limit = min(
            max_step, 0.5 * self.capacity_joules_per_kelvin / self.current_loss_watts_per_kelvin
        )
        while seconds > 0:
            step = min(seconds, limit)
            self.step(step)
            seconds -= step

    def advance_to(self, time_seconds: float) -> None:
        """Catch up to a simulated time; a time already passed changes nothing."""
        if time_seconds > self.time_seconds:
            self.advance(time_seconds - self.time_seconds)
            # The steps' sum drifts by rounding; the room holds for exactly this time.
            self.time_seconds = time_seconds

    def temperatures_after(self, time_seconds: float) -> list[tuple[float, float]]:
        """The kept (time_seconds, temperature_celsius) later than `time_seconds`, oldest first."""
        later: list[tuple[float, float]] = []
        for sample in reversed(self.history):
            if sample[0] <= time_seconds:
                break
            later.append(sample)
        later.reverse()
        return later
