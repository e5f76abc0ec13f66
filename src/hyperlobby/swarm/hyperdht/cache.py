"""Bounded, aging key/value caches for a DHT node's soft state, with time passed in.

Theory of operation
-------------------
A DHT node stores what strangers send it (announcements, mutable and immutable records,
forwarding routes), so everything it keeps must be bounded in size and forgotten after a
while. HyperDHT does this with two generations, as npm ``xache``/``record-cache`` do: new
entries go to the *latest* generation; every ``2/3 * max_age`` (or as soon as the latest one
holds ``max_size`` entries) the latest becomes the *oldest* and the previous oldest is dropped.
Reading an old entry moves it back to the latest generation. An entry therefore lives between
about 0.66 and 1.33 ``max_age`` after its last touch, and the cache never holds more than about
``2 * max_size`` entries.

Entries can also be *retained*: kept outside the generations until deleted. A node keeps its own
servers' routes that way, so they never age out.

No clock is read here: every call that may age entries takes ``now`` (seconds, any monotonic
clock), and rotation happens lazily on the next call after a period has passed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class _Generations:
    """The rotation clock shared by both caches: how many generations have passed by ``now``."""

    def __init__(self, max_age: float, now: float) -> None:
        self.max_age = max_age
        self.period = (2 / 3) * max_age if max_age > 0 else 0.0
        self.rotated_at = now

    def due(self, now: float) -> int:
        """Rotations owed at ``now`` (0, 1 or 2: two or more clear both generations)."""
        if self.period <= 0 or now < self.rotated_at + self.period:
            return 0
        steps = int((now - self.rotated_at) // self.period)
        self.rotated_at += steps * self.period
        return min(steps, 2)


class AgingCache(Generic[K, V]):
    """A two-generation map (npm ``xache``): bounded by ``max_size`` per generation and by age.

    With ``weigh`` (a value's size in bytes) and ``max_bytes``, the latest generation also
    rotates once it holds ``max_bytes / 2``, so the two generations together stay near
    ``max_bytes`` whatever the values' sizes. (hyperdht bounds only the count; a node storing
    other people's values wants a bound on the memory too.)
    """

    def __init__(
        self,
        max_size: int,
        max_age: float,
        now: float = 0.0,
        *,
        max_bytes: int | None = None,
        weigh: Callable[[V], int] | None = None,
    ) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self.max_bytes = max_bytes
        self._weigh = weigh if max_bytes is not None else None
        self._clock = _Generations(max_age, now)
        self._latest: dict[K, V] = {}
        self._oldest: dict[K, V] = {}
        self._retained: dict[K, V] = {}
        self._latest_bytes = 0

    def _age(self, now: float | None) -> None:
        if now is None:
            return
        for _ in range(self._clock.due(now)):
            self._rotate()

    def _rotate(self) -> None:
        self._oldest = self._latest
        self._latest = {}
        self._latest_bytes = 0

    def _put_latest(self, key: K, value: V) -> None:
        if self._weigh is not None:
            old = self._latest.get(key)
            if old is not None:
                self._latest_bytes -= self._weigh(old)
            self._latest_bytes += self._weigh(value)
        self._latest[key] = value

    def _pop_latest(self, key: K) -> None:
        value = self._latest.pop(key, None)
        if value is not None and self._weigh is not None:
            self._latest_bytes -= self._weigh(value)

    def _full(self) -> bool:
        if len(self._latest) >= self.max_size:
            return True
        return self.max_bytes is not None and self._latest_bytes >= self.max_bytes // 2

    def __len__(self) -> int:
        return len(self._latest) + len(self._oldest) + len(self._retained)

    def __contains__(self, key: object) -> bool:
        return key in self._latest or key in self._oldest or key in self._retained

    def keys(self) -> Iterator[K]:
        yield from list(self._latest)
        yield from list(self._oldest)
        yield from list(self._retained)

    def set(self, key: K, value: V, now: float | None = None) -> None:
        """Store ``value`` (unless ``key`` is retained: a retained entry wins until deleted)."""
        self._age(now)
        if key in self._retained:
            return
        self._put_latest(key, value)
        self._oldest.pop(key, None)
        if self._full():
            self._rotate()

    def retain(self, key: K, value: V) -> None:
        """Store ``value`` outside the generations: it never ages out, only :meth:`delete` drops it."""
        self._retained[key] = value
        self._pop_latest(key)
        self._oldest.pop(key, None)

    def get(self, key: K, now: float | None = None) -> V | None:
        self._age(now)
        if key in self._latest:
            return self._latest[key]
        if key in self._oldest:
            value = self._oldest.pop(key)
            self._put_latest(key, value)
            return value
        return self._retained.get(key)

    def delete(self, key: K) -> bool:
        if key in self._latest:
            self._pop_latest(key)
            return True
        for gen in (self._oldest, self._retained):
            if key in gen:
                del gen[key]
                return True
        return False

    def clear(self) -> None:
        self._latest.clear()
        self._oldest.clear()
        self._retained.clear()
        self._latest_bytes = 0


class RecordCache(Generic[V]):
    """Sets of records per topic (npm ``record-cache``), aging as :class:`AgingCache`.

    Records are keyed within a topic by their owner (a public key), so re-adding one refreshes
    it instead of duplicating it. ``max_size`` bounds the records of the latest generation over
    all topics together.
    """

    def __init__(self, max_size: int, max_age: float, now: float = 0.0) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self._clock = _Generations(max_age, now)
        self._fresh: dict[bytes, dict[bytes, V]] = {}
        self._stale: dict[bytes, dict[bytes, V]] = {}
        self._fresh_size = 0
        self._stale_size = 0

    def _age(self, now: float | None) -> None:
        if now is None:
            return
        for _ in range(self._clock.due(now)):
            self._rotate()

    def _rotate(self) -> None:
        self._stale, self._stale_size = self._fresh, self._fresh_size
        self._fresh, self._fresh_size = {}, 0

    def __len__(self) -> int:
        return self._fresh_size + self._stale_size

    @staticmethod
    def _pop(store: dict[bytes, dict[bytes, V]], topic: bytes, owner: bytes) -> bool:
        records = store.get(topic)
        if records is None or owner not in records:
            return False
        del records[owner]
        if not records:
            del store[topic]
        return True

    def add(self, topic: bytes, owner: bytes, value: V, now: float | None = None) -> None:
        self._age(now)
        if self._pop(self._stale, topic, owner):
            self._stale_size -= 1
        records = self._fresh.setdefault(topic, {})
        if owner not in records:
            self._fresh_size += 1
        records[owner] = value
        if self._fresh_size > self.max_size:
            self._rotate()

    def remove(self, topic: bytes, owner: bytes) -> None:
        if self._pop(self._fresh, topic, owner):
            self._fresh_size -= 1
        if self._pop(self._stale, topic, owner):
            self._stale_size -= 1

    def count(self, topic: bytes, now: float | None = None) -> int:
        self._age(now)
        return len(self._fresh.get(topic, {})) + len(self._stale.get(topic, {}))

    def get(
        self, topic: bytes, limit: int, now: float | None = None, rng: random.Random | None = None
    ) -> list[V]:
        """Up to ``limit`` records of ``topic``, a uniform random pick when there are more."""
        self._age(now)
        pool = list(self._fresh.get(topic, {}).values()) + list(self._stale.get(topic, {}).values())
        if len(pool) <= limit:
            return pool
        return (rng or random).sample(pool, limit)

    def clear(self) -> None:
        self._fresh.clear()
        self._stale.clear()
        self._fresh_size = self._stale_size = 0


__all__ = ["AgingCache", "RecordCache"]
