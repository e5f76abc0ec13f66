"""When to dial a dropped peer again: hyperswarm 4's retry timer, sans-IO (time passed in).

Theory of operation
-------------------
Dropped peers wait in one of four buckets (short ~1 s, medium ~5 s, long ~15 s, extra-long
~10 min). Each bucket is a :class:`BulkTimer`: it ticks every ``0.66 * delay`` once anything was
ever added, and a peer added between two ticks is released on the tick after the next one, so
it waits between 0.66 and 1.32 times the bucket's delay and peers dropped together are retried
together. The bucket follows ``lib/retry-timer.js``:

=========  =========================  ==========================
attempts   proven (has connected)     never connected
=========  =========================  ==========================
0          short                      short
1          short                      medium
2          medium                     long
3          long                       long
> 3        extra-long if explicit, else never
=========  =========================  ==========================

A banned peer, or one whose ``reconnecting`` was switched off, is never scheduled. Delays carry
the same random jitter as JS (so a crowd that dropped together does not redial in lockstep);
tests pass their own ``backoffs`` and ``jitter=0``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Generic, TypeVar

from hyperlobby.swarm.hyperswarm.peer_info import PeerInfo

BACKOFF_JITTER = 0.5  # seconds


class Backoff(Enum):
    SHORT = 0
    MEDIUM = 1
    LONG = 2
    EXTRA_LONG = 3


def default_backoffs(rng: random.Random | None = None) -> tuple[float, float, float, float]:
    """The four delays in seconds, each with its own random spread, as hyperswarm draws them."""
    r = rng or random.Random()
    j = BACKOFF_JITTER
    return (
        1.0 + round(j * r.random(), 3),
        5.0 + round(2 * j * r.random(), 3),
        15.0 + round(4 * j * r.random(), 3),
        600.0 + round(240 * j * r.random(), 3),
    )


def select_backoff(peer: PeerInfo) -> Backoff | None:
    """Which bucket a dropped ``peer`` waits in, or None if it is not to be retried."""
    if peer.banned or not peer.reconnecting:
        return None
    if peer.attempts > 3:
        return Backoff.EXTRA_LONG if peer.explicit else None
    if peer.attempts == 0:
        return Backoff.SHORT
    if peer.proven:
        return (Backoff.SHORT, Backoff.MEDIUM, Backoff.LONG)[peer.attempts - 1]
    return (Backoff.MEDIUM, Backoff.LONG, Backoff.LONG)[peer.attempts - 1]


T = TypeVar("T")


@dataclass(slots=True)
class BulkTimer(Generic[T]):
    """Releases items in batches on a fixed tick; an item waits for one full tick after its add.

    The ticks are ``origin + k * period`` (origin: the first add, when JS starts its interval).
    An item added between ticks ``k`` and ``k + 1`` is released by tick ``k + 2``.
    """

    period: float
    _origin: float | None = None
    _waiting: list[tuple[int, T]] = field(default_factory=list)  # (release tick, item), in add order

    def _tick_at(self, now: float) -> int:
        assert self._origin is not None
        # the epsilon keeps a poll at exactly a deadline computed by next_deadline() on that tick
        return math.floor((now - self._origin) / self.period + 1e-9)

    def add(self, item: T, now: float) -> None:
        if self._origin is None:
            self._origin = now
        self._waiting.append((self._tick_at(now) + 2, item))

    def next_deadline(self) -> float | None:
        """When the next tick that releases something is due (None: nothing waiting)."""
        if self._origin is None or not self._waiting:
            return None
        return self._origin + min(k for k, _ in self._waiting) * self.period

    def poll(self, now: float) -> list[T]:
        """Everything whose release tick has come by ``now``, in the order added."""
        if self._origin is None or not self._waiting:
            return []
        tick = self._tick_at(now)
        out = [item for k, item in self._waiting if k <= tick]
        self._waiting = [(k, item) for k, item in self._waiting if k > tick]
        return out

    def __len__(self) -> int:
        return len(self._waiting)


class RetryTimer:
    """The four buckets; ``add`` a dropped peer, ``poll`` for the peers due to be requeued."""

    def __init__(
        self,
        backoffs: Sequence[float] | None = None,
        *,
        jitter: float = BACKOFF_JITTER,
        rng: random.Random | None = None,
    ) -> None:
        r = rng or random.Random()
        self.backoffs = tuple(backoffs) if backoffs is not None else default_backoffs(r)
        if len(self.backoffs) != 4 or min(self.backoffs) <= 0:
            raise ValueError("backoffs are four positive delays: short, medium, long, extra-long")
        self.jitter = jitter
        self._timers = [BulkTimer[PeerInfo](0.66 * (b + jitter * r.random())) for b in self.backoffs]
        self.destroyed = False

    def period(self, backoff: Backoff) -> float:
        return self._timers[backoff.value].period

    def add(self, peer: PeerInfo, now: float) -> bool:
        """Schedule ``peer`` for a retry; False if it is not to be retried at all."""
        which = select_backoff(peer)
        if which is None or self.destroyed:
            return False
        self._timers[which.value].add(peer, now)
        return True

    def next_deadline(self) -> float | None:
        deadlines = [d for t in self._timers if (d := t.next_deadline()) is not None]
        return min(deadlines) if deadlines else None

    def poll(self, now: float) -> list[PeerInfo]:
        if self.destroyed:
            return []
        out: list[PeerInfo] = []
        for t in self._timers:
            out.extend(t.poll(now))
        return out

    def destroy(self) -> None:
        self.destroyed = True


__all__ = ["BACKOFF_JITTER", "Backoff", "BulkTimer", "RetryTimer", "default_backoffs", "select_backoff"]
