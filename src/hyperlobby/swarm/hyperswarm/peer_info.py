"""What the swarm knows about one remote peer, and how eager it is to dial it again.

A :class:`PeerInfo` is plain state (no I/O, time passed in as seconds). Its numbers follow
hyperswarm 4's ``lib/peer-info.js`` so a Python swarm backs off from a flaky peer exactly as a
JS one does:

* ``attempts`` counts disconnects since the peer last held a connection for at least
  :data:`MIN_CONNECTION_TIME`; a connection that lasted that long resets it ("fast retry").
* the dial priority comes from ``attempts``: a peer that just dropped once is retried first
  (VERY_HIGH), then HIGH, then LOW; after more than three failures, or once tried without ever
  connecting ("stale"), it is VERY_LOW; after more than three it is not queued at all (an
  explicit peer is instead parked at three attempts and retried on the long timer).
* ``banned`` peers (firewalled, or banned by the application) are never dialled or accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from hyperlobby.swarm.dht_rpc.messages import Address

MIN_CONNECTION_TIME = 15.0  # seconds a connection must last for its drop not to count against the peer


class Priority(IntEnum):
    VERY_LOW = 0
    LOW = 1
    NORMAL = 2
    HIGH = 3
    VERY_HIGH = 4


@dataclass(eq=False, slots=True)
class PeerInfo:
    """One remote peer (by Noise public key). Identity semantics: one object per key per swarm."""

    public_key: bytes
    relay_addresses: tuple[Address, ...] = ()
    reconnecting: bool = True
    proven: bool = False
    connected_time: float | None = None
    disconnected_time: float = 0.0
    banned: bool = False
    tried: bool = False
    explicit: bool = False
    waiting: bool = False  # sitting in a retry timer
    queued: bool = False  # sitting in the dial queue
    client: bool = False  # our side dialled the current/last connection
    attempts: int = 0
    force_relaying: bool = False  # a dial failed for want of a punchable path: relay the next
    priority: Priority = Priority.NORMAL
    topics: list[bytes] = field(default_factory=list)
    flush_tick: int = 0  # which swarm.flush() generation queued it

    @property
    def server(self) -> bool:
        """True when the remote dialled us (or we never dialled it)."""
        return not self.client

    @property
    def prioritized(self) -> bool:
        return self.priority >= Priority.NORMAL

    def current_priority(self) -> Priority:
        stale = self.tried and not self.proven
        if stale or self.attempts > 3:
            return Priority.VERY_LOW
        if self.attempts == 3:
            return Priority.LOW
        if self.attempts == 2:
            return Priority.HIGH
        if self.attempts == 1:
            return Priority.VERY_HIGH
        return Priority.NORMAL

    def connected(self, now: float) -> None:
        self.proven = True
        self.connected_time = now

    def disconnected(self, now: float) -> None:
        self.disconnected_time = now
        if self.connected_time is not None:
            if now - self.connected_time >= MIN_CONNECTION_TIME:
                self.attempts = 0
            self.connected_time = None
        self.attempts += 1

    def deprioritize(self) -> None:
        self.attempts = 3

    def reset(self) -> None:
        """Rediscovered through a lookup: forget past failures."""
        self.client = False
        self.proven = False
        self.tried = False
        self.attempts = 0

    def update_priority(self) -> bool:
        """Recompute the priority; False means the peer must not be queued now."""
        if self.explicit and self.attempts > 3:
            self.deprioritize()
        if self.banned or self.queued or self.attempts > 3:
            return False
        self.priority = self.current_priority()
        return True

    def add_topic(self, topic: bytes) -> bool:
        """Record that a lookup of ``topic`` returned this peer; True if it is new."""
        if topic in self.topics:
            return False
        self.topics.append(topic)
        return True

    def reconnect(self, value: bool) -> None:
        """Let the application stop (or restart) reconnects to this peer."""
        self.reconnecting = bool(value)

    def ban(self, value: bool) -> None:
        self.banned = bool(value)

    def should_gc(self) -> bool:
        """True when nothing holds this record (the swarm may forget it once unconnected)."""
        return not (self.banned or self.queued or self.explicit or self.waiting)


__all__ = ["MIN_CONNECTION_TIME", "PeerInfo", "Priority"]
