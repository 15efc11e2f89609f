"""Simulated time: the thermal model runs faster than the wall clock."""

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class SimClock:
    """start + real elapsed * speed; `speed` 60 makes a real second a simulated minute.

    Only the thermal model reads it: what goes on the wire (sample times,
    command deadlines) is real UTC, which is what the adapter checks.
    """

    def __init__(
        self,
        speed: float = 1.0,
        start: datetime | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not speed >= 1.0:  # also refuses NaN
            raise ValueError("speed must be at least 1")
        self.speed = speed
        self.start = start if start is not None else datetime.now(UTC)
        self._monotonic = monotonic
        self._origin = monotonic()

    def elapsed(self) -> float:
        """Simulated seconds since the clock started."""
        return (self._monotonic() - self._origin) * self.speed

    def now(self) -> datetime:
        return self.at(self.elapsed())

    def at(self, elapsed_seconds: float) -> datetime:
        """The simulated time `elapsed_seconds` after the start (a room's time_seconds)."""
        return self.start + timedelta(seconds=elapsed_seconds)
