"""Reconnection delays: exponential with full jitter, so a fleet that lost its
adapter at one instant does not come back at one instant."""

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base_seconds: float = 0.2
    factor: float = 2.0
    cap_seconds: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def ceiling(self) -> float:
        """The longest the next delay can be."""
        return min(self.cap_seconds, self.base_seconds * self.factor**self.attempts)

    def next_delay(self) -> float:
        ceiling = self.ceiling()
        if ceiling < self.cap_seconds:
            # Counting on past the cap would only overflow the power, in time.
            self.attempts += 1
        return self.rng.uniform(0.0, ceiling)

    def reset(self) -> None:
        """After a successful connection the next failure starts from the base again."""
        self.attempts = 0
