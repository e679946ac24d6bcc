"""Per-connection message rate and per-process connection count: pure bookkeeping, no I/O."""

from __future__ import annotations

import enum


class Verdict(enum.Enum):
    """What to do with one message, as :meth:`RateLimiter.check` decides."""

    ALLOW = "allow"
    REFUSE = "refuse"  # tell the peer, drop the message
    CLOSE = "close"  # the peer keeps going over the limit: close with 1008


class RateLimiter:
    """A token bucket for one connection's messages.

    The bucket holds up to ``burst`` tokens and refills at ``rate`` per second;
    each message takes one. A message that finds it empty is refused. A peer
    that collects more than ``burst`` refusals without letting the bucket fill
    up again is not slowing down, and the verdict becomes :attr:`Verdict.CLOSE`.

    Args:
        rate: Tokens added per second.
        burst: Size of the bucket, and refusals allowed before closing.
        now: The current time in seconds, from a monotonic clock.
    """

    __slots__ = ("_refusals", "_tokens", "_updated", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._updated = now
        self._refusals = 0

    def check(self, now: float) -> Verdict:
        """Take a token for one message arriving at ``now``; say what to do with it."""
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= self.burst:
            self._refusals = 0  # the peer paused long enough: its slate is clean
        if self._tokens >= 1:
            self._tokens -= 1
            return Verdict.ALLOW
        self._refusals += 1
        return Verdict.CLOSE if self._refusals > self.burst else Verdict.REFUSE


class ConnectionLimit:
    """Counts the open websockets of a process against a cap.

    Args:
        maximum: How many may be open at once.
    """

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.count = 0

    def acquire(self) -> bool:
        """Count one more connection; return False, counting nothing, if at the cap."""
        if self.count >= self.maximum:
            return False
        self.count += 1
        return True

    def release(self) -> None:
        """Count one connection fewer."""
        self.count -= 1

    def place(self) -> Place:
        """A connection's place under this cap, for a ``with`` block (see :class:`Place`)."""
        return Place(self)


class Place:
    """One connection's place under a :class:`ConnectionLimit`, as a context manager:
    True inside if a place was free (and given back on the way out), False at the cap.

    A class, not a generator: it is held for as long as its connection lasts, and a
    generator's frame would be held, in memory, with it.
    """

    __slots__ = ("held", "limit")

    def __init__(self, limit: ConnectionLimit) -> None:
        self.limit = limit
        self.held = False

    def __enter__(self) -> bool:
        self.held = self.limit.acquire()
        return self.held

    def __exit__(self, *exc_info: object) -> None:
        if self.held:
            self.held = False
            self.limit.release()
