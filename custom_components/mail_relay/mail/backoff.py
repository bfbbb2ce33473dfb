"""One backoff policy: how long to wait before the next try after failures."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with a cap and a random factor (jitter).

    ``delay(attempt)`` is ``min(maximum, initial * factor ** (attempt - 1))``
    times a factor drawn uniformly from ``jitter``; attempt 1 is the wait
    after the first failure. The defaults are the watcher's: 1 s doubling up
    to 5 minutes, each wait between half and all of that.
    """

    initial: float = 1.0
    maximum: float = 300.0
    factor: float = 2.0
    jitter: tuple[float, float] = (0.5, 1.0)

    def base(self, attempt: int) -> float:
        """Return the wait before ``attempt`` without jitter (attempt >= 1)."""
        try:
            grown = self.initial * self.factor ** max(attempt - 1, 0)
        except OverflowError:
            return self.maximum
        return min(self.maximum, grown)

    def delay(self, attempt: int) -> float:
        """Return the wait before ``attempt``, jittered (attempt >= 1)."""
        low, high = self.jitter
        return self.base(attempt) * random.uniform(low, high)
