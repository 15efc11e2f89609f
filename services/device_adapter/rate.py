"""A token bucket: a sustained rate with room for a burst, for one stream's samples.

A device that sends faster than the platform can use loses its excess
samples, not its stream: the bucket refills at `rate` tokens a second up to
`burst`, and each sample takes one.
"""


class TokenBucket:
    __slots__ = ("_at", "_burst", "_rate", "_tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        """Full at `now` (monotonic seconds): a new stream may start with a burst."""
        if rate <= 0 or burst < 1:
            raise ValueError("a bucket needs a positive rate and room for one token")
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._at = now

    def take(self, now: float) -> bool:
        """Take a token at `now` (monotonic seconds); False when none is left."""
        # A clock that went backwards (it should not) refills nothing.
        elapsed = max(0.0, now - self._at)
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        self._at = max(self._at, now)
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
