"""DhtDiscovery: the social layer's Discovery on a Swarm (here on the in-memory fake DHT).

A node joins each followed archive's discovery key; every connection the swarm makes, in
either direction, must reach the Replication (``adopt``), under the Replication's key pair.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hyperlobby.crypto.keys import key_pair
from hyperlobby.errors import SocialError
from hyperlobby.social.discovery import CombinedDiscovery, DhtDiscovery, DirectDiscovery, make_discovery
from swarm_helpers import FakeNetwork, eventually

TOPIC = b"\x07" * 32
OTHER = b"\x08" * 32


class FakeReplication:
    """What DhtDiscovery needs of a Replication: its key pair, ``closed``, and ``adopt``."""

    def __init__(self) -> None:
        self.key_pair = key_pair()
        self.closed = False
        self.adopted: list[Any] = []

    def adopt(self, conn: Any) -> asyncio.Future[None]:
        self.adopted.append(conn)
        return asyncio.ensure_future(conn.closed)


async def test_joined_topics_connect_and_every_connection_is_adopted() -> None:
    net = FakeNetwork()
    ra, rb, rc = FakeReplication(), FakeReplication(), FakeReplication()
    da, db, dc = (DhtDiscovery(dht=net.dht(), backoffs=[0.02, 0.05, 0.1, 0.5]) for _ in range(3))
    da.join(TOPIC)  # before start: joined when it starts
    await da.start(ra)  # type: ignore[arg-type]
    await db.start(rb)  # type: ignore[arg-type]
    await dc.start(rc)  # type: ignore[arg-type]
    try:
        assert da.swarm is not None and da.swarm.key_pair == ra.key_pair  # authenticates as the node
        db.join(TOPIC)
        dc.join(OTHER)  # a different archive: c must not meet a or b
        for d in (da, db, dc):
            await d.flush()
        await eventually(lambda: len(ra.adopted) == 1 and len(rb.adopted) == 1, "a and b adopted")
        (ca,), (cb,) = ra.adopted, rb.adopted
        assert (
            ca.remote_public_key == rb.key_pair.public_key and cb.remote_public_key == ra.key_pair.public_key
        )
        assert rc.adopted == []
        # leaving: the announcement goes, and the drop is not redialled
        db.leave(TOPIC)
        await eventually(lambda: rb.key_pair.public_key not in net.announcements[TOPIC], "b unannounced")
        ca.close()
        await asyncio.sleep(0.3)
        assert len(ra.adopted) == 1 and len(rb.adopted) == 1
    finally:
        for d in (da, db, dc):
            await asyncio.wait_for(d.close(), 5)
    # closing a discovery unannounced every topic it had joined
    assert not any(net.announcements.values())


async def test_closed_replication_refuses_connections() -> None:
    net = FakeNetwork()
    ra, rb = FakeReplication(), FakeReplication()
    da, db = DhtDiscovery(dht=net.dht()), DhtDiscovery(dht=net.dht())
    await da.start(ra)  # type: ignore[arg-type]
    await db.start(rb)  # type: ignore[arg-type]
    try:
        rb.closed = True
        da.join(TOPIC)
        db.join(TOPIC)
        await da.flush()
        await db.flush()
        await asyncio.sleep(0.05)
        assert rb.adopted == [] and all(c.closed.done() for c in ra.adopted)
    finally:
        await da.close()
        await db.close()


def test_make_discovery_and_arguments() -> None:
    assert isinstance(make_discovery((), None), DirectDiscovery)
    assert isinstance(make_discovery((), ("127.0.0.1:5",)), DhtDiscovery)
    from hyperlobby.social.discovery import Address

    both = make_discovery((Address("127.0.0.1", 4),), ("127.0.0.1:5",))
    assert isinstance(both, CombinedDiscovery) and len(both.parts) == 2
    with pytest.raises(SocialError):
        DhtDiscovery()


async def test_guard_applies_when_the_discovery_makes_its_own_dht() -> None:
    from hyperlobby.errors import SwarmError

    d = DhtDiscovery(bootstrap=["88.99.3.86@node1.hyperdht.org:49737"])
    with pytest.raises(SwarmError, match="off loopback"):
        await d.start(FakeReplication())  # type: ignore[arg-type]
    await d.close()
