"""Connections by remote public key, the duplicate rule, and the dial queue (all sans-IO).

Two swarms that find each other on a topic usually dial each other at the same moment, so each
ends up with two connections to the same peer. Both sides must keep the *same* one without
talking about it. hyperswarm 4 decides when the second connection arrives on the server side
(:func:`keep_new_connection`):

* if the existing connection has already carried bytes both ways it is presumed dead on the
  other side (the peer would not redial a live connection), so the new one wins;
* otherwise the connection dialled by the peer with the larger public key (compared as bytes)
  wins. Both sides compute the same answer from the same two keys, so they agree.

The loser is closed; the winner is the only entry for that key in the :class:`ConnectionSet`.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterator, Sequence
from typing import Generic, Protocol, TypeVar

from hyperlobby.swarm.hyperswarm.peer_info import PeerInfo, Priority


class _Keyed(Protocol):
    @property
    def remote_public_key(self) -> bytes: ...


C = TypeVar("C", bound=_Keyed)


def keep_new_connection(
    *, local_public_key: bytes, remote_public_key: bytes, new_is_initiator: bool, existing_established: bool
) -> bool:
    """True if a new connection to a peer replaces the one we already have (see module doc)."""
    if existing_established:
        return True
    we_dial = local_public_key > remote_public_key  # the larger key's outgoing connection survives
    return we_dial == new_is_initiator


def within_max_peers(*, connections: int, explicit_peers: int, max_peers: int) -> bool:
    """May we dial one more discovered peer? (hyperswarm's rule)

    Each explicit peer (``join_peer``) leaves room for fewer discovered ones: with ``e`` explicit
    peers every connection counts 1, 2, 3 or 4 times (``e`` = 0, 1, 2-3, 4+) against
    ``max_peers``, so an application that pins peers keeps slots free for them.
    """
    e = explicit_peers
    factor = 1 if e == 0 else 2 if e < 2 else 3 if e < 4 else 4
    return factor * connections < max_peers


def wants_reconnect(*, explicit: bool, topics: Sequence[bytes], joined: Collection[bytes]) -> bool:
    """After a drop, is this peer still wanted? Explicit peers always; others while a topic they
    were found under is still joined (so ``leave(topic)`` ends the reconnects to its peers)."""
    return explicit or any(t in joined for t in topics)


class ConnectionSet(Generic[C]):
    """At most one connection per remote public key (pending dials included)."""

    def __init__(self) -> None:
        self._by_key: dict[bytes, C] = {}

    def __iter__(self) -> Iterator[C]:
        return iter(list(self._by_key.values()))

    def __len__(self) -> int:
        return len(self._by_key)

    def __contains__(self, public_key: object) -> bool:
        return public_key in self._by_key

    def get(self, public_key: bytes) -> C | None:
        return self._by_key.get(public_key)

    def add(self, conn: C) -> None:
        self._by_key[bytes(conn.remote_public_key)] = conn

    def delete(self, conn: C) -> None:
        """Remove ``conn`` if it is still the entry for its key (a replaced one leaves the winner)."""
        key = bytes(conn.remote_public_key)
        if self._by_key.get(key) is conn:
            del self._by_key[key]


class PeerQueue:
    """Peers waiting to be dialled: highest priority first, random order within a priority.

    Random order within a level keeps a crowd of swarms that learnt the same peer list from
    dialling the same peer first (hyperswarm's shuffled-priority-queue).
    """

    def __init__(self, rng: random.Random | None = None) -> None:
        self._levels: dict[Priority, list[PeerInfo]] = {p: [] for p in Priority}
        self._rng = rng or random.Random()

    def __len__(self) -> int:
        return sum(len(v) for v in self._levels.values())

    def add(self, peer: PeerInfo) -> None:
        self._levels[peer.priority].append(peer)

    def shift(self) -> PeerInfo | None:
        for level in sorted(self._levels, reverse=True):
            bucket = self._levels[level]
            if bucket:
                i = self._rng.randrange(len(bucket))
                bucket[i], bucket[-1] = bucket[-1], bucket[i]
                return bucket.pop()
        return None

    def remove(self, peer: PeerInfo) -> bool:
        for bucket in self._levels.values():
            if peer in bucket:
                bucket.remove(peer)
                return True
        return False

    def clear(self) -> None:
        for bucket in self._levels.values():
            bucket.clear()


__all__ = ["ConnectionSet", "PeerQueue", "keep_new_connection", "wants_reconnect", "within_max_peers"]
