"""Holepunching on real sockets: a punch socket per attempt, and both sides' rounds.

Theory of operation
-------------------
hyperdht punches from a fresh UDP socket per connection attempt (its socket pool), in the
same UDX namespace as the node's main socket so the connection's stream can run over it once
a path opens. :class:`PunchSocket` is that socket: it sends 1-byte probes, reports probes that
arrive, and speaks just enough dht-rpc to (a) ping DHT nodes so :class:`NatSampler` learns how
this very socket looks from outside, and (b) send the client's PEER_HOLEPUNCH requests *from*
it, so the relay and the server see the socket that will punch.

:class:`ServerPunch` answers PEER_HOLEPUNCH rounds the way server.js ``_onpeerholepunch`` does;
:class:`ClientPunch` runs connect.js's probe round and punch round. The decisions themselves
(NAT kind, strategy, probe schedules) are the sans-IO ones in :mod:`holepuncher`; this
module runs whichever applies. Against a port-randomizing remote we guess its ports from
our punch socket; behind a randomizing NAT of our own we open up to 255 more punch sockets
("birthday" sockets, JS's socket pool) and keep them all probing the remote's one address.
The socket a probe arrives on is the path: the connection's stream runs over it, and the
other sockets are closed. Those two strategies take the node's ration of random punches
(:class:`~hyperlobby.swarm.hyperdht.holepuncher.RandomPunches`); a server out of ration
answers ``TRY_LATER``, a client gives up the attempt (a swarm retries it with backoff;
JS's client instead waits 10-20 s itself when the server's relay can carry the retry).

Every wait is bounded; a PunchSocket that does not end up carrying the connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from hyperlobby.errors import DecodeError, HyperlobbyError, ProtocolError
from hyperlobby.swarm.dht_rpc import PING, Address, IncomingRequest, Request, Response, decode_message
from hyperlobby.swarm.dht_rpc.messages import encode_request
from hyperlobby.swarm.hyperdht import constants as C
from hyperlobby.swarm.hyperdht import messages as m
from hyperlobby.swarm.hyperdht.holepuncher import (
    HOLEPUNCH_PROBE,
    HOLEPUNCH_TTL,
    NatSampler,
    Puncher,
    Strategy,
    birthday_schedule,
    consistent_probe_schedule,
    random_probe_schedule,
)
from hyperlobby.swarm.hyperdht.noise_wrap import HandshakeFinal
from hyperlobby.swarm.hyperdht.secure_payload import SecurePayload
from hyperlobby.swarm.udx import UdxSocket

if TYPE_CHECKING:
    from hyperlobby.swarm.hyperdht.dht import HyperDht

log = logging.getLogger(__name__)

NAT_SAMPLE_TIMEOUT = 2.0
REQUEST_TIMEOUT = 1.0
PROBE_RETRY_DELAY = 1.0
REQUEST_RETRIES = 3

OnSocket = Callable[[UdxSocket, str, int], None]


class HolepunchError(ProtocolError):
    """A holepunch could not be completed (aborted, unreachable NATs, bad payloads)."""


_POOLS: weakref.WeakKeyDictionary[HyperDht, set[PunchSocket]] = weakref.WeakKeyDictionary()


class PunchSocket:
    """A UDP socket for one holepunch attempt (see the module docstring)."""

    def __init__(self, socket: UdxSocket) -> None:
        self.socket = socket
        self.on_probe: Callable[[Address], None] | None = None
        # requests that arrive here (a relay forwarding the next PEER_HOLEPUNCH round to the
        # address we answered from) are the node's to handle, as JS's socket pool hands them on
        self.on_request: Callable[[bytes, tuple[str, int]], None] | None = None
        self._inflight: dict[int, tuple[Address, asyncio.Future[Response]]] = {}
        self._tid = random.randrange(0x10000)
        self.kept = False
        self._pool: set[PunchSocket] | None = None
        socket.on_message = self._on_message

    @classmethod
    async def open(cls, dht: HyperDht) -> PunchSocket:
        """A fresh socket next to ``dht``'s; the node's close() closes it too (JS socket pool)."""
        main = dht.node.socket
        sock = await main.udx.bind(main.address[0], 0)
        punch = cls(sock)
        node = dht.node
        punch.on_request = lambda data, source: node.receive_datagram(data, source, sock)
        pool = _POOLS.get(dht)
        if pool is None:
            pool = _POOLS[dht] = set()

            async def close_all() -> None:
                for p in list(pool):
                    await p.socket.close()
                pool.clear()

            dht.on_close.append(close_all)
        pool.add(punch)
        punch._pool = pool
        return punch

    def keep(self, stream_closed: asyncio.Future[HyperlobbyError | None]) -> None:
        """A connection's stream runs over this socket: close the socket when the stream ends."""
        self.kept = True

        def done(_fut: asyncio.Future[HyperlobbyError | None]) -> None:
            self.kept = False
            asyncio.get_running_loop().create_task(self.close())

        stream_closed.add_done_callback(done)

    @property
    def address(self) -> Address:
        return Address(*self.socket.address)

    def probe(self, to: Address, ttl: int | None = None) -> None:
        self.socket.send(HOLEPUNCH_PROBE, (to.host, to.port), ttl=ttl)

    async def request(
        self,
        command: int,
        to: Address,
        *,
        target: bytes | None = None,
        value: bytes | None = None,
        internal: bool = False,
        timeout: float = REQUEST_TIMEOUT,
        retries: int = REQUEST_RETRIES,
    ) -> Response:
        """One dht-rpc request from this socket; raises :class:`HolepunchError` on timeout."""
        tid = self._tid
        self._tid = (self._tid + 1) & 0xFFFF
        data = encode_request(
            Request(tid=tid, to=to, command=command, internal=internal, target=target, value=value)
        )
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._inflight[tid] = (to, fut)
        try:
            for _ in range(retries + 1):
                if self.socket.closed:
                    break
                self.socket.send(data, (to.host, to.port))
                with contextlib.suppress(TimeoutError):
                    return await asyncio.wait_for(asyncio.shield(fut), timeout)
        finally:
            self._inflight.pop(tid, None)
            if not fut.done():
                fut.cancel()
        raise HolepunchError("no answer to a request from the punch socket", to=str(to))

    async def sample_nat(self, nat: NatSampler, nodes: list[Address], *, count: int = 4) -> None:
        """Ping up to ``count`` DHT nodes from this socket; each answer is a NAT sample."""

        async def one(node: Address) -> None:
            try:
                res = await self.request(PING, node, internal=True, timeout=0.5, retries=1)
            except HolepunchError:
                log.debug("no NAT sample from %s", node)
                return
            log.debug("NAT sample from %s: %s", node, res.to)
            nat.add(res.to, node)

        tasks = [asyncio.get_running_loop().create_task(one(n)) for n in nodes[:count]]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=NAT_SAMPLE_TIMEOUT)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        nat.give_up()

    def _on_message(self, data: bytes, source: tuple[str, int]) -> None:
        addr = Address(source[0], source[1])
        if len(data) <= 1:
            if self.on_probe is not None:
                self.on_probe(addr)
            return
        try:
            msg = decode_message(data)
        except (DecodeError, ValueError, HyperlobbyError):
            return
        if not isinstance(msg, Response):
            if self.on_request is not None:
                self.on_request(data, source)
            return
        entry = self._inflight.get(msg.tid)
        if entry is None or entry[0].host != addr.host:
            return
        if not entry[1].done():
            entry[1].set_result(msg)

    async def close(self) -> None:
        """Close unless a connection runs over it (then its stream's end closes it)."""
        if self.kept:
            return
        if self._pool is not None:
            self._pool.discard(self)
        await self.socket.close()


class _Punch:
    """What both sides of a holepunch share: the sockets it sends from (the punch socket
    first, then any birthday sockets) and the runners of the three strategies."""

    def __init__(self, dht: HyperDht, final: HandshakeFinal, punch: PunchSocket, puncher: Puncher) -> None:
        self.dht = dht
        self.payload = SecurePayload(final.holepunch_secret)
        self.punch = punch
        self.puncher = puncher
        self.nat = puncher.nat
        self.holders: list[PunchSocket] = [punch]
        self._rationed = False
        self._closing: asyncio.Task[None] | None = None
        punch.on_probe = lambda source: self._on_probe(source, punch)

    def _on_probe(self, source: Address, holder: PunchSocket) -> None:
        raise NotImplementedError

    def _done(self) -> bool:
        p = self.puncher
        return p.destroyed or p.connected or not p.punching

    def take_random_ration(self) -> bool:
        """Count this punch against the node's random punches, if the ration allows one now."""
        if self._rationed:
            return True
        ration = self.dht.random_punches
        if not ration.allowed(time.monotonic()):
            return False
        ration.begin()
        self._rationed = True
        return True

    def keep_socket(self, socket: UdxSocket, stream_closed: asyncio.Future[HyperlobbyError | None]) -> None:
        """The connection runs over ``socket``: if it is one of ours, keep it until the stream
        ends (close() then closes the others)."""
        for holder in self.holders:
            if holder.socket is socket:
                holder.keep(stream_closed)

    def _close_sockets(self) -> None:
        self.puncher.destroyed = True
        if self._rationed:
            self._rationed = False
            self.dht.random_punches.end(time.monotonic())
        closing, self.holders = self.holders, [h for h in self.holders if h.kept]
        self._closing = asyncio.get_running_loop().create_task(_close_all(closing))

    async def _run(self, strategy: Strategy) -> None:
        """Send the probes of ``strategy`` until a path opens, the punch ends or the schedule
        runs out (at most ~35 s)."""
        p = self.puncher
        remote = p.verified_address()
        if strategy is Strategy.CONSISTENT:
            await self._paced(consistent_probe_schedule(p.remote_addresses, is_initiator=p.is_initiator))
        elif strategy is Strategy.RANDOM_PROBES and remote is not None:
            await self._paced(random_probe_schedule(remote.host, random.Random()))
        elif strategy is Strategy.BIRTHDAY and remote is not None:
            await self._birthday(Address(remote.host, remote.port))

    async def _birthday(self, remote: Address) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for delay, index, low in birthday_schedule():
            wait = start + delay - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if self._done():
                return
            holder = self.holders[index] if index < len(self.holders) else await self._open_holder()
            if holder is None:
                return
            holder.probe(remote, HOLEPUNCH_TTL if low else None)

    async def _open_holder(self) -> PunchSocket | None:
        holder = await PunchSocket.open(self.dht)
        if self._done():
            await holder.close()
            return None
        holder.on_probe = lambda source: self._on_probe(source, holder)
        self.holders.append(holder)
        return holder

    async def _paced(self, schedule: Iterable[tuple[float, Address]]) -> None:
        """Probe each address from the punch socket at its time, until the punch is over."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        for delay, addr in schedule:
            wait = start + delay - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if self._done():
                return
            self.punch.probe(addr)


class ServerPunch(_Punch):
    """The server's side of one holepunch (server.js ``_onpeerholepunch``)."""

    def __init__(
        self, dht: HyperDht, final: HandshakeFinal, punch: PunchSocket, remote_firewall: int
    ) -> None:
        super().__init__(
            dht, final, punch, Puncher(False, NatSampler(firewalled=dht.node.firewalled), remote_firewall)
        )
        self.round = 0
        self.on_socket: OnSocket | None = None
        self._sampling: asyncio.Task[None] | None = None
        self._probing: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls, dht: HyperDht, final: HandshakeFinal, remote_firewall: int, on_socket: OnSocket
    ) -> ServerPunch:
        sp = cls(dht, final, await PunchSocket.open(dht), remote_firewall)
        sp.on_socket = on_socket
        nodes = _sample_nodes(dht)
        sp._sampling = asyncio.get_running_loop().create_task(sp.punch.sample_nat(sp.nat, nodes))
        return sp

    @property
    def socket(self) -> UdxSocket:
        return self.punch.socket

    def close(self) -> None:
        for task in (self._sampling, self._probing):
            if task is not None and not task.done():
                task.cancel()
        self._close_sockets()

    def _on_probe(self, source: Address, holder: PunchSocket) -> None:
        log.debug("server punch socket got a probe from %s", source)
        if self.puncher.on_probe(source):
            holder.probe(source)  # the responder echoes so the initiator's NAT lets us in

    def _abort(self, error: int = C.ERROR_ABORTED, why: str = "") -> tuple[bytes, UdxSocket | None]:
        log.debug(
            "server holepunch aborted: %s (nat %s after %d samples, remote %s)",
            why,
            self.nat.firewall,
            self.nat.sampled,
            self.puncher.remote_firewall,
        )
        sealed = self.payload.encrypt(
            m.HolepunchPayload(error=error, firewall=C.FIREWALL_UNKNOWN, round=self.round)
        )
        self.close()
        return sealed, None

    async def _analyze(self) -> bool:
        if self._sampling is not None:
            with contextlib.suppress(asyncio.CancelledError, HyperlobbyError):
                await asyncio.wait_for(asyncio.shield(self._sampling), NAT_SAMPLE_TIMEOUT + 1)
        return not self.puncher.unstable()

    async def on_round(
        self, sealed: bytes, peer_address: Address, req: IncomingRequest, from_relay: bool
    ) -> tuple[bytes, UdxSocket | None] | None:
        remote = self.payload.decrypt(sealed)
        log.debug("server holepunch round %s", remote)
        if remote is None or self.puncher.destroyed:
            return None
        if remote.error != C.ERROR_NONE:
            self.round = max(self.round, remote.round)
            return self._abort(why="remote error")
        if req.via is self.punch.socket and req.request.to is not None:
            self.nat.add(req.request.to, req.address)  # how this relay sees our punch socket
        token = self.payload.token(peer_address.host)
        echoed = from_relay and remote.remote_token is not None and remote.remote_token == token
        if remote.round >= self.round:
            self.round = remote.round
            self.puncher.update_remote(
                punching=remote.punching,
                firewall=remote.firewall,
                addresses=remote.addresses,
                verified=peer_address.host if echoed else None,
            )
        stable = await self._analyze()
        log.debug("server holepunch analysis: stable=%s nat=%s", stable, self.nat.firewall)
        if self.puncher.destroyed:
            return None
        if not stable:
            return self._abort(why="unstable")
        nat_addresses = self.nat.addresses or []
        if (
            self.nat.firewall in (C.FIREWALL_OPEN, C.FIREWALL_CONSISTENT)
            and remote.remote_address is not None
            and remote.remote_address in nat_addresses
        ):
            self.punch.probe(peer_address)  # fast open: the client already opened a session to us
        if self.puncher.remote_holepunching:
            strategy = self.puncher.strategy()
            if strategy is Strategy.NONE:
                return self._abort(why="no strategy")
            if self._probing is None:  # punch once, however many rounds ask for it (JS memoizes)
                if strategy is not Strategy.CONSISTENT and not self.take_random_ration():
                    return self._abort(C.ERROR_TRY_LATER, why="random punch rationed")
                self.puncher.punching = True
                self._probing = asyncio.get_running_loop().create_task(self._run(strategy))
        if self.nat.firewall != C.FIREWALL_UNKNOWN:
            self.nat.freeze()
        sealed_reply = self.payload.encrypt(
            m.HolepunchPayload(
                error=C.ERROR_NONE,
                firewall=self.nat.firewall,
                round=self.round,
                connected=self.puncher.connected,
                punching=self.puncher.punching,
                addresses=tuple(nat_addresses) if self.nat.addresses is not None else None,
                token=token if from_relay else None,
                remote_token=remote.token,
            )
        )
        return sealed_reply, self.punch.socket


def _sample_nodes(dht: HyperDht) -> list[Address]:
    """Nodes to ask how our punch socket looks: the routing table, newest first as JS picks
    them, then the bootstrap nodes when the table is short (a small network)."""
    nodes = list(reversed(dht.node.nodes()))
    for addr in dht.node.bootstrap_nodes:
        if addr not in nodes:
            nodes.append(addr)
    return nodes


async def _close_all(holders: list[PunchSocket]) -> None:
    for holder in holders:
        await holder.close()  # a kept one stays open until its stream ends


class ClientPunch(_Punch):
    """The client's side: connect.js ``probeRound`` then ``roundPunch`` through one relay."""

    def __init__(
        self,
        dht: HyperDht,
        final: HandshakeFinal,
        punch: PunchSocket,
        target: bytes,
        holepunch_id: int,
        remote_firewall: int,
        on_socket: OnSocket,
    ) -> None:
        super().__init__(
            dht, final, punch, Puncher(True, NatSampler(firewalled=dht.node.firewalled), remote_firewall)
        )
        self.target = target
        self.id = holepunch_id
        self.round = 0
        self.on_socket = on_socket

    def _on_probe(self, source: Address, holder: PunchSocket) -> None:
        was = self.puncher.connected
        self.puncher.on_probe(source)
        if self.puncher.connected and not was:
            self.on_socket(holder.socket, source.host, source.port)

    async def _round(
        self, to: Address, payload: m.HolepunchPayload, peer_address: Address
    ) -> tuple[m.HolepunchPayload, Address]:
        """One PEER_HOLEPUNCH through relay ``to`` toward the server at ``peer_address``; returns
        the server's payload and where the relay saw the server answer from."""
        value = m.encode(
            m.holepunch,
            m.Holepunch(C.FROM_CLIENT, self.id, self.payload.encrypt(payload), peer_address=peer_address),
        )
        res = await self.punch.request(C.PEER_HOLEPUNCH, to, target=self.target, value=value)
        try:
            hp = m.decode(m.holepunch, res.value or b"")
        except (DecodeError, ValueError, HyperlobbyError):
            raise HolepunchError("bad holepunch reply") from None
        if hp.mode != C.REPLY:
            raise HolepunchError("bad holepunch reply", mode=hp.mode)
        self.nat.add(res.to, to)
        remote = self.payload.decrypt(hp.payload)
        if remote is None:
            raise HolepunchError("invalid holepunch payload")
        if remote.error != C.ERROR_NONE:
            raise HolepunchError("remote aborted the holepunch", error=remote.error)
        echoed = (
            remote.remote_token is not None
            and payload.token is not None
            and remote.remote_token == payload.token
        )
        self.puncher.update_remote(
            punching=remote.punching,
            firewall=remote.firewall,
            addresses=remote.addresses,
            verified=peer_address.host if echoed else None,
        )
        return remote, hp.peer_address or to

    async def run(
        self,
        server_address: Address,
        server_relay: m.RelayInfo,
        client_relay: Address,
        *,
        fast_open: bool = True,
    ) -> None:
        """Probe, then punch (connect.js ``probeRound`` + ``roundPunch``); returns once probing
        started (the connection comes by on_socket).

        Probe rounds go through the relay the server named (``server_relay``), the punch round
        through the one our handshake went through (``client_relay``) straight to where that
        relay saw the server. ``fast_open`` first probes ``server_address`` (and says so in the
        first round), which on a friendly path connects before any punching; JS's
        ``fastOpen: false`` skips it, leaving the connection to the punch round.
        """
        opened = server_address if fast_open else None
        nodes = _sample_nodes(self.dht)
        sampling = asyncio.get_running_loop().create_task(self.punch.sample_nat(self.nat, nodes))
        if opened is not None:
            self.punch.probe(opened)  # fast open toward where the relay saw the server
        try:
            await asyncio.wait_for(asyncio.shield(sampling), NAT_SAMPLE_TIMEOUT + 1)
        except TimeoutError:
            sampling.cancel()
        first, seen_at = await self._probe_round(server_relay, opened)
        if first.token is None or self.puncher.remote_firewall == C.FIREWALL_UNKNOWN:
            # the server may not know its NAT yet: give it a second, then ask again (once)
            await asyncio.sleep(PROBE_RETRY_DELAY)
            first, seen_at = await self._probe_round(server_relay, opened)
        if (
            self.puncher.unstable()
            or self.puncher.remote_firewall == C.FIREWALL_UNKNOWN
            or first.token is None
        ):
            await self._abort_round(server_relay)
            raise HolepunchError(
                "holepunch probe did not settle", remote_firewall=self.puncher.remote_firewall
            )
        if self.puncher.remote_firewall >= C.FIREWALL_RANDOM and self.nat.firewall >= C.FIREWALL_RANDOM:
            await self._abort_round(server_relay)
            raise HolepunchError("both NATs are randomized")
        if server_relay.relay_address == client_relay and seen_at != server_address:
            # the server answered from another socket than the handshake's: punch toward that
            server_address = seen_at
            self.punch.probe(server_address)
        randomized = (
            self.puncher.remote_firewall >= C.FIREWALL_RANDOM or self.nat.firewall >= C.FIREWALL_RANDOM
        )
        if randomized and not self.dht.random_punches.allowed(time.monotonic()):
            await self._abort_round(server_relay)
            raise HolepunchError("random punch rationed: try again later")
        self.nat.freeze()
        punch = m.HolepunchPayload(
            firewall=self.nat.firewall,
            round=self.round,
            punching=True,
            addresses=tuple(self.nat.addresses) if self.nat.addresses is not None else None,
            token=self.payload.token(server_address.host),
            remote_token=first.token,
        )
        self.round += 1
        await self._round(client_relay, punch, server_address)
        if not self.puncher.remote_holepunching:
            raise HolepunchError("remote is not holepunching")
        strategy = self.puncher.strategy()
        if strategy is Strategy.NONE:
            raise HolepunchError("remote is not holepunchable from here")
        if strategy is not Strategy.CONSISTENT and not self.take_random_ration():
            raise HolepunchError("random punch rationed: try again later")
        self.puncher.punching = True
        await self._run(strategy)

    async def _probe_round(
        self, relay: m.RelayInfo, server_address: Address | None
    ) -> tuple[m.HolepunchPayload, Address]:
        probe = m.HolepunchPayload(
            firewall=self.nat.firewall,
            round=self.round,
            addresses=tuple(self.nat.addresses) if self.nat.addresses is not None else None,
            remote_address=server_address,
        )
        self.round += 1
        return await self._round(relay.relay_address, probe, relay.peer_address)

    async def _abort_round(self, relay: m.RelayInfo) -> None:
        """Tell the server we give up (best effort), so it drops its puncher at once."""
        abort = m.HolepunchPayload(error=C.ERROR_ABORTED, firewall=C.FIREWALL_UNKNOWN, round=self.round)
        self.round += 1
        with contextlib.suppress(HyperlobbyError):
            await self._round(relay.relay_address, abort, relay.peer_address)

    def close(self) -> None:
        self._close_sockets()


__all__ = ["ClientPunch", "HolepunchError", "PunchSocket", "ServerPunch"]
