"""How a node finds peers: join a topic (a discovery key), get connections.

The social layer asks for nothing more than :class:`Discovery`: ``start`` it with the node's
:class:`~hyperlobby.wire.replication.Replication`, ``join``/``leave`` topics as friends come and
go, ``close`` it at the end. Every connection a discovery makes is handed to the Replication,
which offers every core in the store on it, so one connection to a friend's node serves all
archives both sides hold (friends of friends included).

:class:`DirectDiscovery` is the implementation for static addresses (``--peer HOST:PORT``): it
keeps one connection to each address, reconnecting with a capped backoff when it drops, and
ignores topics (any peer may hold any archive). :class:`DhtDiscovery` finds peers on the
HyperDHT instead: each topic is joined on a :class:`~hyperlobby.swarm.hyperswarm.Swarm` (so we
announce ourselves under every archive we follow and look up everyone else who does), and every
connection the swarm makes, in either direction, is adopted by the Replication. The swarm
authenticates with the Replication's key pair, so a friend's node is recognised by its Noise
key exactly as over ``--peer``. :class:`CombinedDiscovery` runs several at once (``--peer`` and
the DHT together).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from hyperlobby.errors import HyperlobbyError, SocialError
from hyperlobby.swarm.bootstrap import check_loopback, parse_bootstrap
from hyperlobby.swarm.hyperswarm import PeerDiscoverySession, PeerInfo, Swarm
from hyperlobby.swarm.hyperswarm.dht_protocol import Connection, Dht
from hyperlobby.wire.replication import Replication

_log = logging.getLogger(__name__)


class Discovery(Protocol):
    async def start(self, replication: Replication) -> None: ...

    def join(self, topic: bytes) -> None: ...

    def leave(self, topic: bytes) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_address(text: str, *, default_host: str = "127.0.0.1") -> Address:
    """``HOST:PORT`` (or ``:PORT`` / ``PORT``) -> :class:`Address`; errors say what was wrong."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep:
        host, port_text = "", text.strip()
    host = host.strip("[]") or default_host
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise SocialError("an address is HOST:PORT with a port from 0 to 65535", address=text)
    return Address(host, int(port_text))


class DirectDiscovery:
    """Keep connections to a fixed list of addresses; topics are ignored."""

    def __init__(
        self,
        addresses: list[Address],
        *,
        min_backoff: float = 0.2,
        max_backoff: float = 5.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.addresses = list(addresses)
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.connect_timeout = connect_timeout
        self.connected: set[Address] = set()
        self.last_error: dict[Address, str] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, replication: Replication) -> None:
        loop = asyncio.get_running_loop()
        for addr in self.addresses:
            self._tasks.append(loop.create_task(self._keep(replication, addr)))

    def join(self, topic: bytes) -> None:
        """Static peers are asked for every archive already; nothing to do per topic."""

    def leave(self, topic: bytes) -> None:
        """See :meth:`join`."""

    async def _keep(self, replication: Replication, addr: Address) -> None:
        backoff = self.min_backoff
        while not replication.closed:
            try:
                closed = await replication.connect(addr.host, addr.port, timeout=self.connect_timeout)
            except HyperlobbyError as err:
                self.last_error[addr] = err.message
                _log.debug("peer %s unreachable: %s", addr, err)
                await asyncio.sleep(backoff)
                backoff = min(self.max_backoff, backoff * 2)
                continue
            self.connected.add(addr)
            self.last_error.pop(addr, None)
            backoff = self.min_backoff
            try:
                await asyncio.shield(closed)
            except asyncio.CancelledError:
                closed.cancel()
                raise
            except Exception as err:  # the connection ended with an error: reconnect
                self.last_error[addr] = str(err)
            finally:
                self.connected.discard(addr)
            await asyncio.sleep(backoff)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()


class DhtDiscovery:
    """Find peers by topic on the HyperDHT through a :class:`Swarm`; see the module doc.

    Give either ``bootstrap`` (``HOST:PORT`` strings; a DHT node is created on ``start`` and
    closed by ``close``) or a ready ``dht``. ``swarm_options`` go to :class:`Swarm` (max_peers,
    firewall, backoffs, ...). Topics joined before ``start`` are joined when it runs.
    """

    def __init__(
        self,
        *,
        bootstrap: Sequence[str] = (),
        dht: Dht | None = None,
        host: str | None = None,
        port: int = 0,
        **swarm_options: Any,
    ) -> None:
        if dht is None and not bootstrap:
            raise SocialError("DHT discovery needs bootstrap nodes (or a DHT)")
        self.bootstrap = tuple(str(n) for n in parse_bootstrap(list(bootstrap)))
        self.dht = dht
        self.host = host
        self.port = port
        self.swarm: Swarm | None = None
        self.swarm_options = swarm_options
        self.adopted = 0
        self._replication: Replication | None = None
        self._topics: dict[bytes, PeerDiscoverySession | None] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self, replication: Replication) -> None:
        self._replication = replication
        owns = self.dht is None
        if self.dht is None:
            nodes = parse_bootstrap(list(self.bootstrap))
            check_loopback(nodes)
            from hyperlobby.swarm.hyperdht.dht import HyperDht

            # a loopback network binds loopback; otherwise all interfaces, to be reachable
            host = self.host or ("127.0.0.1" if all(n.loopback for n in nodes) else "0.0.0.0")
            self.dht = await HyperDht.create(bootstrap=self.bootstrap, host=host, port=self.port)
        self.swarm = Swarm(
            self.dht,
            keypair=replication.key_pair,
            on_connection=self._on_connection,
            owns_dht=owns,
            **self.swarm_options,
        )
        for topic in list(self._topics):
            self._topics[topic] = self.swarm.join(topic)

    def join(self, topic: bytes) -> None:
        if topic in self._topics:
            return
        self._topics[topic] = None if self.swarm is None else self.swarm.join(topic)

    def leave(self, topic: bytes) -> None:
        if topic not in self._topics:
            return
        del self._topics[topic]
        if self.swarm is not None and not self.swarm.destroyed:
            self._spawn(self.swarm.leave(topic))

    async def flush(self) -> bool:
        """Wait until every joined topic is announced/looked up and dials have settled."""
        return True if self.swarm is None else await self.swarm.flush()

    def _on_connection(self, conn: Connection, info: PeerInfo) -> None:
        rep = self._replication
        if rep is None or rep.closed:
            conn.close()
            return
        self.adopted += 1
        done = rep.adopt(cast(Any, conn))  # a DHT connection: handshake done, messages framed

        def finished(fut: asyncio.Future[None]) -> None:
            if not fut.cancelled() and fut.exception() is not None:
                _log.debug("replication with %s ended: %s", info.public_key.hex()[:16], fut.exception())

        done.add_done_callback(finished)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if self.swarm is not None:
            await self.swarm.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class CombinedDiscovery:
    """Several discoveries at once (say ``--peer`` addresses and the DHT); each gets every call."""

    def __init__(self, parts: Sequence[Discovery]) -> None:
        self.parts = list(parts)

    async def start(self, replication: Replication) -> None:
        for part in self.parts:
            await part.start(replication)

    def join(self, topic: bytes) -> None:
        for part in self.parts:
            part.join(topic)

    def leave(self, topic: bytes) -> None:
        for part in self.parts:
            part.leave(topic)

    async def close(self) -> None:
        for part in self.parts:
            with contextlib.suppress(Exception):
                await part.close()


def make_discovery(
    peers: Sequence[Address], bootstrap: Sequence[str] | None, relay_through: Sequence[bytes] = ()
) -> Discovery:
    """``--peer`` addresses, the DHT (``bootstrap`` not None), or both. ``relay_through``:
    blind relays the swarm uses for peers it cannot holepunch to (see :class:`Swarm`)."""
    direct = DirectDiscovery(list(peers))
    if bootstrap is None:
        return direct
    relays: dict[str, Any] = {"relay_through": list(relay_through)} if relay_through else {}
    dht = DhtDiscovery(bootstrap=bootstrap, **relays)
    return dht if not peers else CombinedDiscovery([direct, dht])


__all__ = [
    "Address",
    "CombinedDiscovery",
    "DhtDiscovery",
    "DirectDiscovery",
    "Discovery",
    "make_discovery",
    "parse_address",
]
