"""Keeping a server announced at the DHT nodes closest to it (hyperdht's lib/announcer.js).

Theory of operation
-------------------
A server is found through the target BLAKE2b(public key). The announcer walks toward that
target (FIND_PEER) and signs an ANNOUNCE of the server's bare record (no relay addresses) for
each of the best three closest nodes. Because the target is the hash of the announced key,
those nodes store a *route* (see ``router``): they will forward handshakes to the address they
saw the announce come from. The nodes that took it become the server's *relays*; their
addresses (after our own public address, when we are reachable) are the ``relay_addresses``
a server hands to clients so they can skip the lookup next time.

Routes age out at the relays, so the announcer keeps them fresh: it pings its relays every
``ping_interval`` seconds and re-announces after ``pings_per_cycle`` rounds (JS: 3 s x 100,
about five minutes), or at once when fewer than ``min(relays, 3)`` answer or :meth:`refresh`
is called. Relays are remembered over three generations; a relay that dropped out of the
latest round is sent an UNANNOUNCE, and :meth:`stop` unannounces the current ones.

Everything it waits on is bounded (queries by their timeout, requests by their retries) and
:meth:`stop` wakes the background loop at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Final

from hyperlobby.crypto.hashes import blake2b256
from hyperlobby.crypto.keys import KeyPair
from hyperlobby.errors import HyperlobbyError
from hyperlobby.swarm.dht_rpc import Address, QueryReply
from hyperlobby.swarm.hyperdht import constants as C
from hyperlobby.swarm.hyperdht import messages as m

if TYPE_CHECKING:
    from hyperlobby.swarm.hyperdht.dht import HyperDht

log = logging.getLogger(__name__)

MIN_ACTIVE: Final = 3
BEST_RELAYS: Final = 3
MAX_RELAY_ADDRESSES: Final = 3
DEFAULT_PING_INTERVAL: Final = 3.0
DEFAULT_PINGS_PER_CYCLE: Final = 100


class Announcer:
    """Announces ``keypair`` under ``target`` (default BLAKE2b(public key)) until stopped."""

    def __init__(
        self,
        dht: HyperDht,
        keypair: KeyPair,
        target: bytes | None = None,
        *,
        ping_interval: float = DEFAULT_PING_INTERVAL,
        pings_per_cycle: int = DEFAULT_PINGS_PER_CYCLE,
        query_timeout: float = 20.0,
    ) -> None:
        self.dht = dht
        self.keypair = keypair
        self.target = target if target is not None else blake2b256(keypair.public_key)
        self.record = m.encode(m.peer, m.Peer(keypair.public_key, ()))
        self.ping_interval = ping_interval
        self.pings_per_cycle = pings_per_cycle
        self.query_timeout = query_timeout
        self.relays: list[m.RelayInfo] = []
        self.relay_addresses: list[Address] = []
        self.stopped = False
        self.updates = 0  # completed announce rounds (observability and tests)
        self._closest: list[Address] = []
        # three generations of relays: [oldest, previous, latest]
        self._generations: list[dict[Address, Address]] = [{}, {}, {}]
        self._refreshing = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def is_relay(self, address: Address) -> bool:
        """True if ``address`` is one of the nodes we announced through in the last rounds."""
        return any(address in gen for gen in self._generations)

    def refresh(self) -> None:
        """Re-announce at the next chance (e.g. after a network change)."""
        if self.stopped:
            return
        self._refreshing = True
        self._wake.set()

    async def start(self) -> None:
        """Announce once (returns when that round is done), then keep it fresh in the background."""
        if self.stopped or self._task is not None:
            return
        # closing the DHT stops us too (unannounced first, while the node can still send)
        self.dht.on_close.append(self.stop)
        await self._update()
        if self.stopped:
            return
        self._task = asyncio.get_running_loop().create_task(self._background())

    async def stop(self) -> None:
        """Stop refreshing and unannounce from the current relays (bounded by request retries)."""
        if self.stopped:
            return
        self.stopped = True
        with contextlib.suppress(ValueError):
            self.dht.on_close.remove(self.stop)
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        async with self._lock:
            await self._unannounce_all(list(self._generations[2].values()))

    # --- background ---------------------------------------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _background(self) -> None:
        while not self.stopped and not self.dht.closed:
            try:
                self._refreshing = False
                for _ in range(self.pings_per_cycle):
                    if self.stopped or self._refreshing:
                        break
                    relays = list(self._generations[2].values())
                    answers = await asyncio.gather(
                        *(self.dht.node.ping(r) for r in relays), return_exceptions=True
                    )
                    alive = sum(1 for a in answers if not isinstance(a, BaseException))
                    if alive < min(len(relays), MIN_ACTIVE):
                        self._refreshing = True  # lost too many relays: announce again now
                    if self.stopped or self._refreshing:
                        break
                    await self._sleep(self.ping_interval)
                if not self.stopped:
                    await self._update()
                    if not self.relays:
                        await self._sleep(self.ping_interval)  # nothing took it: do not spin
            except asyncio.CancelledError:
                raise
            except Exception:  # keep announcing whatever one round hit
                log.exception("announcer round failed")
                await self._sleep(self.ping_interval)

    # --- one round ----------------------------------------------------------------------------

    async def _update(self) -> None:
        async with self._lock:
            if self.stopped:
                return
            gens = self._generations
            gens[0], gens[1], gens[2] = gens[1], gens[2], gens[0]
            gens[2].clear()
            try:
                query = await self.dht.find_peer(
                    self.target, hash=False, nodes=self._closest, timeout=self.query_timeout
                ).finished()
            except HyperlobbyError:
                return
            if self.stopped:
                return
            relays: list[m.RelayInfo] = []
            relay_addresses: list[Address] = []
            own = self.dht.remote_address()
            if own is not None:
                relay_addresses.append(own)
            best = query.closest_replies[:BEST_RELAYS]
            await asyncio.gather(*(self._commit(r, relays, relay_addresses) for r in best))
            if self.stopped:
                return
            self._closest = list(query.closest_nodes)
            self.relays = relays
            self.relay_addresses = relay_addresses
            self.updates += 1
            dropped = [addr for key, addr in gens[1].items() if key not in gens[2]]
            await self._unannounce_all(dropped)

    async def _commit(
        self, reply: QueryReply, relays: list[m.RelayInfo], relay_addresses: list[Address]
    ) -> None:
        token = reply.response.token
        if token is None or reply.id is None:
            return
        try:
            res = await self.dht.request_announce(self.target, self.keypair, token, reply.address, reply.id)
        except HyperlobbyError:
            return
        if res.error != 0:
            return
        if len(relay_addresses) < MAX_RELAY_ADDRESSES:
            relay_addresses.append(reply.address)
        relays.append(m.RelayInfo(relay_address=reply.address, peer_address=reply.response.to))
        self._generations[2][reply.address] = reply.address

    async def _unannounce_all(self, nodes: list[Address]) -> None:
        await asyncio.gather(*(self._unannounce(n) for n in nodes), return_exceptions=True)

    async def _unannounce(self, to: Address) -> None:
        # a fresh token from that node first: the one of the announce may have expired
        res = await self.dht.node.request(C.FIND_PEER, to, target=self.target)
        token = res.token
        if token is None or res.id is None or res.value is None:
            return
        await self.dht.request_unannounce(self.target, self.keypair, token, to, res.id)


__all__ = ["Announcer"]
