"""The swarm: join topics, find peers through the DHT, keep one connection per peer.

Theory of operation
-------------------
This is hyperswarm 4 (``index.js``) over our :class:`~hyperlobby.swarm.hyperdht.dht.HyperDht`
(any object fitting :class:`~hyperlobby.swarm.hyperswarm.dht_protocol.Dht`):

* ``join(topic)`` creates (or reuses) the topic's :class:`PeerDiscovery`, which announces us as
  a server under the topic and looks it up as a client. Every peer a lookup returns becomes a
  :class:`PeerInfo` (one per remote public key) and is put in the dial queue by priority.
* The queue is drained while fewer than ``max_parallel`` dials are in flight, the peer count is
  under ``max_peers`` (each explicit peer makes room for fewer discovered ones, as in JS) and
  client connections are under ``max_client_connections``. A dial is a task awaiting
  ``dht.connect``; while it runs it holds the peer's slot in the :class:`ConnectionSet`, so we
  never dial a peer twice.
* The DHT server hands us the connections peers dial to us. The firewall runs first: our own
  key, banned peers, the application's ``firewall`` (which bans what it rejects), and, unlike
  hyperswarm, a full swarm (``max_peers`` / ``max_server_connections`` reached) refuse.
  A second connection to a peer we already hold is resolved by :func:`keep_new_connection`
  (the same rule on both ends, so both keep the same one); a winning newcomer waits for the
  loser to finish closing before it takes the slot.
* When a connection ends, the peer is scheduled on the :class:`RetryTimer` if a joined topic
  (or ``join_peer``) still wants it, and requeued when its bucket fires; peers nothing wants are
  forgotten. ``leave(topic)`` therefore stops reconnects to that topic's peers (connections
  already open stay, as in JS; close them if that is what you want).
* ``flush()`` resolves when every joined topic has been announced and looked up, and every peer
  that was queued or dialling at that moment has connected or failed (or the swarm is full).
* With ``relay_through`` (a blind relay's key), a dial that fails for want of a punchable path
  marks the peer: its next dial goes through the relay, after the shortest backoff. While our
  own NAT randomizes ports, every dial and every server handshake offers the relay.

Everything the swarm decides (retry buckets, priorities, the duplicate rule, the queue) lives in
the sans-IO modules next to this one; this class only wires them to asyncio. ``close()`` is
bounded: it unannounces every topic, closes the server and every connection, and with
``owns_dht`` the DHT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from hyperlobby.crypto.keys import KeyPair, key_pair
from hyperlobby.errors import SwarmError
from hyperlobby.swarm.dht_rpc.messages import Address
from hyperlobby.swarm.hyperdht.connect import relay_may_help
from hyperlobby.swarm.hyperswarm.connection_set import (
    ConnectionSet,
    PeerQueue,
    keep_new_connection,
    wants_reconnect,
    within_max_peers,
)
from hyperlobby.swarm.hyperswarm.dht_protocol import Connection, Dht
from hyperlobby.swarm.hyperswarm.peer_discovery import PeerDiscovery, PeerDiscoverySession
from hyperlobby.swarm.hyperswarm.peer_info import PeerInfo
from hyperlobby.swarm.hyperswarm.retry_timer import RetryTimer

_log = logging.getLogger(__name__)

MAX_PEERS = 64
MAX_PARALLEL = 3
EXPLICIT_MAX_ATTEMPTS = 5
CLOSE_STEP_TIMEOUT = 5.0  # seconds each step of close() may take

ConnectionHook = Callable[[Connection, PeerInfo], None]


class _Slot:
    """A peer's entry in the connection set: a dial in flight, or an open connection."""

    __slots__ = ("conn", "ended", "is_initiator", "remote_public_key", "task")

    def __init__(self, remote_public_key: bytes, is_initiator: bool) -> None:
        self.remote_public_key = remote_public_key
        self.is_initiator = is_initiator
        self.conn: Connection | None = None
        self.task: asyncio.Task[None] | None = None
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def established(self) -> bool:
        """Carried bytes both ways, so the far end thought it open: hyperswarm's "outdated" test.

        Uses the connection's ``raw_bytes_read``/``raw_bytes_written`` when it counts them (a
        :class:`~hyperlobby.swarm.hyperdht.connection.DhtConnection` counts them as JS's
        secret-stream does: encrypted messages after the id/header exchange, keepalives
        included), so a connection that is open but has carried nothing yet is not established,
        exactly as in JS. A connection without counters counts as established once it is open.
        A dial still in flight never is.
        """
        c = self.conn
        if c is None or c.closed.done():
            return False
        read, written = getattr(c, "raw_bytes_read", None), getattr(c, "raw_bytes_written", None)
        if read is None or written is None:
            return True
        return int(read) > 0 and int(written) > 0

    def destroy(self) -> None:
        if self.conn is not None:
            self.conn.close()
        elif self.task is not None:
            self.task.cancel()

    def keepalive(self) -> None:
        send = getattr(self.conn, "send_keepalive", None)
        if callable(send):
            with contextlib.suppress(Exception):
                send()


@dataclass(slots=True)
class _Flush:
    done: asyncio.Future[bool]
    missing: int
    tick: int


RelayOption = bytes | Sequence[bytes] | Callable[[bool, "Swarm"], Any] | None
"""A swarm's ``relay_through``: a blind relay's public key (or a list to pick from), used as
hyperswarm uses it: for a peer whose last dial failed for want of a punchable path, and for
every connection while our own NAT randomizes ports; or a function ``(force, swarm)``
returning the relay to use (None: none) for full control."""


def _relay_function(option: RelayOption) -> Callable[[bool, Swarm], Any] | None:
    if option is None:
        return None
    if callable(option):
        return option
    keys = option
    return lambda force, swarm: keys if force or swarm.randomized else None


@dataclass(slots=True)
class SwarmStats:
    client_attempted: int = 0
    client_opened: int = 0
    client_closed: int = 0
    server_opened: int = 0
    server_closed: int = 0
    server_rejected: int = 0
    duplicates: int = 0
    banned: int = 0


class Swarm:
    """Topic-based peer discovery with one deduplicated connection per peer."""

    def __init__(
        self,
        dht: Dht,
        *,
        keypair: KeyPair | None = None,
        max_peers: int = MAX_PEERS,
        max_client_connections: float = math.inf,
        max_server_connections: float = math.inf,
        max_parallel: int = MAX_PARALLEL,
        firewall: Callable[[bytes], bool] | None = None,
        on_connection: ConnectionHook | None = None,
        backoffs: Sequence[float] | None = None,
        jitter: float | None = None,
        refresh_interval: float | None = None,
        refresh_jitter: float | None = None,
        owns_dht: bool = False,
        rng: random.Random | None = None,
        relay_through: RelayOption = None,
    ) -> None:
        self.dht = dht  # a HyperDht, or anything else with the Dht protocol (tests: a fake)
        self.key_pair = keypair or key_pair()
        if self.key_pair.secret_key is None:
            raise SwarmError("a swarm needs a key pair with a secret key (it authenticates as it)")
        self.max_peers = max_peers
        self.max_client_connections = max_client_connections
        self.max_server_connections = max_server_connections
        self.max_parallel = max_parallel
        self.firewall = firewall
        self.on_connection = on_connection
        self.owns_dht = owns_dht
        self.relay_through = _relay_function(relay_through)
        self._rng = rng or random.Random()
        timer_kwargs: dict[str, Any] = {"rng": self._rng}
        if jitter is not None:
            timer_kwargs["jitter"] = jitter
        self._timer = RetryTimer(backoffs, **timer_kwargs)
        self._timer_handle: asyncio.TimerHandle | None = None
        self._refresh_interval = refresh_interval
        self._refresh_jitter = refresh_jitter
        self.destroyed = False
        self.connections: set[Connection] = set()  # open connections (both directions)
        self.peers: dict[bytes, PeerInfo] = {}
        self.explicit_peers: list[PeerInfo] = []
        self.stats = SwarmStats()
        self.listening: asyncio.Task[None] | None = None
        self.relay_addresses: tuple[Address, ...] = ()
        self.connecting = 0
        self._server: Any = None
        self._discovery: dict[bytes, PeerDiscovery] = {}
        self._queue = PeerQueue(self._rng)
        self._all = ConnectionSet[_Slot]()
        self._client_connections = 0
        self._server_connections = 0
        self._pending_flushes: list[_Flush] = []
        self._flush_tick = 0
        self._draining = False
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- public API ----------------------------------------------------------------------------

    @property
    def randomized(self) -> bool:
        """Our node's NAT picks a new port per destination (hyperswarm relays every
        connection then, when it has a relay)."""
        node = getattr(self.dht, "node", None)
        return bool(getattr(node, "randomized", False))

    def _maybe_relay(self, force: bool) -> Any:
        return None if self.relay_through is None else self.relay_through(force, self)

    async def listen(self) -> None:
        """Start the DHT server under our key pair (once; joins as a server call this).

        A failed start (no DHT node would take our announcement, say) is forgotten, so the
        next refresh of a topic tries again with a new server.
        """
        if self.listening is None:
            if self.destroyed:
                raise SwarmError("the swarm is closed")
            relay: dict[str, Any] = {}
            if self.relay_through is not None:
                relay["relay_through"] = lambda: self._maybe_relay(False)
            self._server = self.dht.create_server(
                firewall=self._server_firewall, on_connection=self._on_server_connection, **relay
            )
            self.listening = asyncio.get_running_loop().create_task(self._listen(self._server))
        await asyncio.shield(self.listening)

    async def _listen(self, server: Any) -> None:
        try:
            await server.listen(self.key_pair)
        except BaseException:
            if self._server is server:
                self._server, self.listening = None, None
            with contextlib.suppress(Exception):
                await server.close()
            raise
        self.relay_addresses = tuple(getattr(server, "relay_addresses", ()) or ())

    def join(self, topic: bytes, *, server: bool = True, client: bool = True) -> PeerDiscoverySession:
        """Announce (server) and/or look up (client) ``topic``, connecting to the peers found."""
        if self.destroyed:
            raise SwarmError("the swarm is closed")
        topic = _topic(topic)
        discovery = self._discovery.get(topic)
        if discovery is not None and not discovery.destroyed:
            return discovery.session(server=server, client=client)
        options: dict[str, Any] = {"rng": self._rng}
        if self._refresh_interval is not None:
            options["refresh_interval"] = self._refresh_interval
        if self._refresh_jitter is not None:
            options["jitter"] = self._refresh_jitter
        discovery = PeerDiscovery(
            self,
            topic,
            wait=None if discovery is None else discovery.destroy(),
            on_peer=lambda peer: self._on_peer(peer, topic),
            **options,
        )
        self._discovery[topic] = discovery
        return discovery.session(server=server, client=client)

    async def leave(self, topic: bytes) -> None:
        """Stop announcing and looking up ``topic``; its peers are not redialled after a drop."""
        topic = _topic(topic)
        discovery = self._discovery.get(topic)
        if discovery is None:
            return
        with contextlib.suppress(Exception):
            await discovery.destroy()
        if self._discovery.get(topic) is discovery:
            del self._discovery[topic]

    def status(self, topic: bytes) -> PeerDiscovery | None:
        return self._discovery.get(_topic(topic))

    @property
    def topics(self) -> list[bytes]:
        return list(self._discovery)

    def join_peer(self, public_key: bytes) -> None:
        """Keep a connection to this peer (by its public key) whatever the topics say."""
        public_key = _key(public_key)
        if self.destroyed:
            raise SwarmError("the swarm is closed")
        peer = self._upsert_peer(public_key, ())
        if peer is None:
            return
        if not peer.explicit:
            peer.explicit = True
            self.explicit_peers.append(peer)
        if public_key in self._all:
            return
        if peer.update_priority():
            self._enqueue(peer)

    def leave_peer(self, public_key: bytes) -> None:
        peer = self.peers.get(_key(public_key))
        if peer is None:
            return
        peer.explicit = False
        with contextlib.suppress(ValueError):
            self.explicit_peers.remove(peer)
        self._maybe_delete_peer(peer)

    async def flush(self) -> bool:
        """Wait until joined topics are announced/looked up and queued dials have settled."""
        await asyncio.gather(*(d.flushed() for d in list(self._discovery.values())))
        if self._flush_all_maybe():
            return True
        pending = len(self._all) - len(self.connections)
        if not len(self._queue) and pending <= 0:
            return True
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending_flushes.append(_Flush(done, len(self._queue) + pending, self._flush_tick))
        self._flush_tick += 1
        return await done

    async def close(self) -> None:
        """Unannounce every topic, close the server and every connection (each step bounded)."""
        if self.destroyed:
            return
        self.destroyed = True
        self._timer.destroy()
        if self._timer_handle is not None:
            self._timer_handle.cancel()
        self._queue.clear()
        teardown = [d.destroy() for d in self._discovery.values()]
        self._discovery.clear()
        if teardown:
            await _bounded(asyncio.gather(*teardown, return_exceptions=True))
        if self._server is not None:
            await _bounded(self._server.close())
        if self.listening is not None and not self.listening.done():
            self.listening.cancel()
        slots = list(self._all)
        for slot in slots:
            slot.destroy()
        for conn in list(self.connections):
            conn.close()
        if slots:
            await _bounded(asyncio.gather(*(asyncio.shield(s.ended) for s in slots), return_exceptions=True))
        for task in list(self._tasks):
            task.cancel()
        while self._pending_flushes:
            f = self._pending_flushes.pop()
            if not f.done.done():
                f.done.set_result(False)
        if self.owns_dht:
            await _bounded(self.dht.close())

    # --- discovery ------------------------------------------------------------------------------

    def _on_peer(self, record: Any, topic: bytes) -> None:
        """A lookup returned ``record``: queue a dial unless we hold it or just failed it."""
        public_key = bytes(record.public_key)
        relays = tuple(getattr(record, "relay_addresses", ()) or ())
        peer = self._upsert_peer(public_key, relays)
        if peer is None:
            return
        peer.add_topic(topic)
        if public_key in self._all:
            return
        if not peer.prioritized or peer.server:
            peer.reset()  # found again: past failures no longer count
        if peer.update_priority():
            self._enqueue(peer)

    def _upsert_peer(self, public_key: bytes, relays: tuple[Address, ...]) -> PeerInfo | None:
        if public_key == self.key_pair.public_key:
            return None
        peer = self.peers.get(public_key)
        if peer is not None:
            peer.relay_addresses = relays  # newer relays are always better
            return peer
        peer = PeerInfo(public_key, relays)
        self.peers[public_key] = peer
        return peer

    def _maybe_delete_peer(self, peer: PeerInfo) -> None:
        if not peer.should_gc() or peer.public_key in self._all:
            return
        if self.peers.get(peer.public_key) is peer:
            del self.peers[peer.public_key]

    def _should_requeue(self, peer: PeerInfo) -> bool:
        if self.destroyed:
            return False
        return wants_reconnect(explicit=peer.explicit, topics=peer.topics, joined=self._discovery.keys())

    def ban(self, public_key: bytes, banned: bool = True) -> None:
        """Never dial or accept this peer again (or lift the ban)."""
        peer = self._upsert_peer(_key(public_key), ())
        if peer is not None:
            self._ban(peer, banned)

    def _ban(self, peer: PeerInfo, banned: bool) -> None:
        peer.ban(banned)
        self.stats.banned += 1

    # --- the dial queue -------------------------------------------------------------------------

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _enqueue(self, peer: PeerInfo) -> None:
        if peer.queued:
            return
        peer.queued = True
        peer.flush_tick = self._flush_tick
        self._queue.add(peer)
        self._attempt_client_connections()

    def _requeue(self, batch: list[PeerInfo]) -> None:
        for peer in batch:
            peer.waiting = False
            if not peer.update_priority() or peer.public_key in self._all or peer.queued:
                self._maybe_delete_peer(peer)
                continue
            peer.queued = True
            peer.flush_tick = self._flush_tick
            self._queue.add(peer)
        self._attempt_client_connections()

    def _schedule_timer(self) -> None:
        if self._timer_handle is not None:
            self._timer_handle.cancel()
            self._timer_handle = None
        deadline = self._timer.next_deadline()
        if deadline is None or self.destroyed:
            return
        self._timer_handle = asyncio.get_running_loop().call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer_handle = None
        batch = self._timer.poll(self._now())
        if batch:
            self._requeue(batch)
        self._schedule_timer()

    def _within_max_peers(self) -> bool:
        return within_max_peers(
            connections=len(self._all), explicit_peers=len(self.explicit_peers), max_peers=self.max_peers
        )

    def _should_connect(self) -> bool:
        return (
            not self.destroyed
            and self.connecting < self.max_parallel
            and self._within_max_peers()
            and self._client_connections < self.max_client_connections
        )

    def _attempt_client_connections(self) -> None:
        if self._draining or self.destroyed:
            return
        self._draining = True
        try:
            now = self._now()
            for peer in list(self.explicit_peers):
                if self.destroyed or self.connecting >= self.max_parallel:
                    break
                if (
                    peer.attempts >= EXPLICIT_MAX_ATTEMPTS
                    or now - peer.disconnected_time < peer.attempts * 1.0
                ):
                    continue
                self._connect(peer, queued=False)
            while len(self._queue) and self._should_connect():
                queued = self._queue.shift()
                assert queued is not None
                queued.queued = False
                self._connect(queued, queued=True)
        finally:
            self._draining = False
        if self.connecting == 0:
            self._flush_all_maybe()

    def _flush_maybe(self, peer: PeerInfo) -> None:
        """A queued peer settled: count it off every flush() that was waiting for it."""
        for f in list(self._pending_flushes):
            if peer.flush_tick > f.tick:
                continue
            f.missing -= 1
            if f.missing > 0:
                continue
            if not f.done.done():
                f.done.set_result(True)
            self._pending_flushes.remove(f)

    def _flush_all_maybe(self) -> bool:
        """Nothing more can connect now (full, or nothing dialling): every flush() is done."""
        if self.connecting > 0 or (
            self._within_max_peers() and self._client_connections < self.max_client_connections
        ):
            return False
        while self._pending_flushes:
            f = self._pending_flushes.pop()
            if not f.done.done():
                f.done.set_result(True)
        return True

    # --- client connections ---------------------------------------------------------------------

    def _connect(self, peer: PeerInfo, *, queued: bool) -> None:
        if peer.banned or peer.public_key in self._all:
            if queued:
                self._flush_maybe(peer)
            return
        if self._reject(peer.public_key):
            if queued:
                self._flush_maybe(peer)
            return
        slot = _Slot(peer.public_key, True)
        self._all.add(slot)
        self.stats.client_attempted += 1
        self.connecting += 1
        self._client_connections += 1
        slot.task = asyncio.get_running_loop().create_task(self._dial(peer, slot, queued))
        self._tasks.add(slot.task)
        slot.task.add_done_callback(self._tasks.discard)

    async def _dial(self, peer: PeerInfo, slot: _Slot, queued: bool) -> None:
        opened = False
        conn: Connection | None = None
        try:
            relay: dict[str, Any] = {}
            if self.relay_through is not None:
                relay["relay_through"] = self._maybe_relay(peer.force_relaying)
            try:
                conn = cast(
                    Connection,
                    await self.dht.connect(
                        peer.public_key, keypair=self.key_pair, relay_addresses=peer.relay_addresses, **relay
                    ),
                )
            except asyncio.CancelledError:
                return  # replaced by the peer's own connection to us, or the swarm closed
            except Exception as err:
                _log.debug("dial to %s failed: %s", peer.public_key.hex()[:16], err)
                if self.relay_through is not None and relay_may_help(err):
                    # As hyperswarm does: the next dial to this peer goes through the relay,
                    # and soon (the failed attempts so far do not count).
                    peer.force_relaying = True
                    peer.attempts = 0
                return
            if self.destroyed or self._all.get(peer.public_key) is not slot:
                conn.close()
                return
            opened = True
            slot.conn = conn
            self.stats.client_opened += 1
            self._connect_done()
            self.connections.add(conn)
            peer.connected(self._now())
            peer.client = True
            self._emit(conn, peer)
            if queued:
                self._flush_maybe(peer)
            await asyncio.wait([conn.closed])
        except asyncio.CancelledError:
            if conn is not None:
                conn.close()
            raise
        finally:
            self._client_closed(peer, slot, conn, opened, queued)

    def _client_closed(
        self, peer: PeerInfo, slot: _Slot, conn: Connection | None, opened: bool, queued: bool
    ) -> None:
        if not opened:
            self._connect_done()
        self.stats.client_closed += 1
        if conn is not None:
            self.connections.discard(conn)
        self._all.delete(slot)
        self._client_connections -= 1
        peer.disconnected(self._now())
        peer.waiting = self._should_requeue(peer) and self._timer.add(peer, self._now())
        if peer.waiting:
            self._schedule_timer()
        self._maybe_delete_peer(peer)
        if not opened and queued:
            self._flush_maybe(peer)
        if not slot.ended.done():
            slot.ended.set_result(None)
        self._attempt_client_connections()

    def _connect_done(self) -> None:
        self.connecting -= 1
        if self.connecting < self.max_parallel:
            self._attempt_client_connections()
        if self.connecting == 0:
            self._flush_all_maybe()

    # --- server connections ---------------------------------------------------------------------

    def _reject(self, remote_public_key: bytes) -> bool:
        """Our own key, a banned peer, or one the application's firewall refuses (then banned)."""
        if remote_public_key == self.key_pair.public_key:
            return True
        peer = self.peers.get(remote_public_key)
        if peer is not None and peer.banned:
            return True
        if self.firewall is not None and self.firewall(remote_public_key):
            target = peer or self._upsert_peer(remote_public_key, ())
            if target is not None:
                self._ban(target, True)
            return True
        return False

    def _server_firewall(self, remote_public_key: bytes, *_handshake: Any) -> bool:
        """The DHT server's firewall: True rejects the incoming handshake."""
        key = bytes(remote_public_key)
        if self.destroyed or self._reject(key):
            self.stats.server_rejected += 1
            return True
        if key not in self._all and (
            len(self._all) >= self.max_peers or self._server_connections >= self.max_server_connections
        ):
            self.stats.server_rejected += 1  # full: a stranger cannot make us hold more
            return True
        return False

    def _on_server_connection(self, conn: Connection) -> None:
        if self.destroyed:
            conn.close()
            return
        key = bytes(conn.remote_public_key)
        existing = self._all.get(key)
        if existing is not None:
            keep_new = keep_new_connection(
                local_public_key=self.key_pair.public_key,
                remote_public_key=key,
                new_is_initiator=bool(conn.is_initiator),
                existing_established=existing.established,
            )
            self.stats.duplicates += 1
            if not keep_new:
                existing.keepalive()
                conn.close()
                return
            existing.destroy()

            def swap(_: asyncio.Future[None]) -> None:
                if not conn.closed.done():
                    self._on_server_connection(conn)

            existing.ended.add_done_callback(swap)
            return
        if self._reject(key):
            conn.close()
            return
        self.stats.server_opened += 1
        peer = self._upsert_peer(key, ())
        assert peer is not None  # our own key was rejected above
        slot = _Slot(key, False)
        slot.conn = conn
        self.connections.add(conn)
        self._all.add(slot)
        self._server_connections += 1

        def on_close(_: asyncio.Future[None]) -> None:
            self.connections.discard(conn)
            self._all.delete(slot)
            self._server_connections -= 1
            self.stats.server_closed += 1
            self._maybe_delete_peer(peer)
            if not slot.ended.done():
                slot.ended.set_result(None)
            self._attempt_client_connections()

        conn.closed.add_done_callback(on_close)
        peer.client = False
        self._emit(conn, peer)

    def _emit(self, conn: Connection, peer: PeerInfo) -> None:
        if self.on_connection is None:
            return
        try:
            self.on_connection(conn, peer)
        except Exception:
            _log.exception("on_connection hook failed; closing that connection")
            conn.close()


def _key(public_key: bytes) -> bytes:
    raw = bytes(public_key)
    if len(raw) != 32:
        raise SwarmError("a public key is 32 bytes", length=len(raw))
    return raw


def _topic(topic: bytes) -> bytes:
    raw = bytes(topic)
    if len(raw) != 32:
        raise SwarmError("a topic is 32 bytes", length=len(raw))
    return raw


async def _bounded(aw: Any) -> None:
    try:
        await asyncio.wait_for(aw, CLOSE_STEP_TIMEOUT)
    except (TimeoutError, Exception) as err:
        _log.debug("swarm close step: %r", err)


__all__ = ["MAX_PARALLEL", "MAX_PEERS", "Swarm", "SwarmStats"]
