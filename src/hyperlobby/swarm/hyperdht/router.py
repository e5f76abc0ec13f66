"""The HyperDHT router: forwarding PEER_HANDSHAKE and PEER_HOLEPUNCH between client and server.

Theory of operation
-------------------
A server behind a NAT cannot be reached directly, so it *announces itself* (target =
BLAKE2b(public key)) at the DHT nodes closest to that target. Each of those nodes then keeps a
:class:`ForwardState` for the target: the server's address as it saw it (``relay``) and the
server's peer record. A client that wants the server sends PEER_HANDSHAKE (its first Noise
message) to one of those nodes, which forwards it; the server's answer travels back the same
way, and the same path carries PEER_HOLEPUNCH rounds afterwards. The node running the server
itself holds a ForwardState too, with the server's callbacks (``on_peer_handshake``,
``on_peer_holepunch``) and no relay: that is how a message is recognised as having arrived.

Every hop is one dht-rpc request with the *same* transaction id: a relaying node re-sends the
request (``IncomingRequest.relay``) with a new value and the end of the chain answers the
original requester directly (``reply(to=...)``), so the client sees a normal response. The
message's ``mode`` says which hop it is on, exactly as hyperdht's lib/router.js:

handshake
  * FROM_CLIENT at a relay: forward to the server (or to the relay address the client named)
    as FROM_RELAY, carrying the client's address as ``peer_address``. Without a route the node
    answers empty with closer nodes, to help the client route.
  * FROM_CLIENT at the server: answer REPLY directly (a direct connection).
  * FROM_RELAY at a node that only relays: forward as FROM_SECOND_RELAY to its own route,
    with itself as ``relay_address``.
  * FROM_RELAY at the server: send the answer back to the relay as FROM_SERVER.
  * FROM_SECOND_RELAY at the server: send FROM_SERVER to the ``relay_address`` named.
  * FROM_SERVER at a relay: answer the client (``peer_address``) with REPLY, carrying the
    server's address as seen by the relay.

holepunch
  * FROM_CLIENT: forward as FROM_RELAY to ``peer_address`` if the client named one, else to
    the route's relay.
  * FROM_RELAY at the server: its callback's payload goes back as FROM_SERVER.
  * FROM_SERVER: answer the client with REPLY.

Malformed messages, unknown targets and callbacks that fail are dropped silently (the client
times out), as in JS. Addresses a message names (``peer_address``, ``relay_address``) are
checked against the node's ``filter_node`` before anything is sent there. Routes live in an
:class:`~hyperlobby.swarm.hyperdht.cache.AgingCache` so announced routes age out; a local
server's route is *retained* until deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from hyperlobby.encoding.compact import Codec
from hyperlobby.errors import DecodeError, HyperlobbyError, ProtocolError
from hyperlobby.swarm.dht_rpc import Address, DhtNode, IncomingRequest
from hyperlobby.swarm.hyperdht import constants as C
from hyperlobby.swarm.hyperdht import messages as m
from hyperlobby.swarm.hyperdht.cache import AgingCache
from hyperlobby.swarm.udx import UdxSocket

log = logging.getLogger(__name__)

DEFAULT_MAX_FORWARDS: Final = 65536
DEFAULT_FORWARD_AGE: Final = 20 * 60.0  # seconds, as hyperdht's default maxAge
MAX_PENDING: Final = 1024  # server callbacks running at once; more are dropped


class BadHandshakeReply(ProtocolError):
    """A PEER_HANDSHAKE reply that is malformed or not from the node we asked."""


class BadHolepunchReply(ProtocolError):
    """A PEER_HOLEPUNCH reply that is malformed or not from the node we asked."""


@dataclass(frozen=True, slots=True)
class HandshakeMessage:
    """What a server's ``on_peer_handshake`` receives: the client's Noise message.

    ``peer_address`` is the client's address as the relaying node saw it, or ``None`` when the
    client reached the server directly (then the request's own source address is the client).
    """

    noise: bytes
    peer_address: Address | None


@dataclass(frozen=True, slots=True)
class HandshakeAnswer:
    """A server's answer to a handshake: its Noise reply, sent from ``socket`` if given."""

    noise: bytes
    socket: UdxSocket | None = None


@dataclass(frozen=True, slots=True)
class HolepunchMessage:
    """What a server's ``on_peer_holepunch`` receives (``payload`` is still encrypted)."""

    id: int
    payload: bytes
    peer_address: Address


@dataclass(frozen=True, slots=True)
class HolepunchAnswer:
    """A server's answer to a holepunch round: the (encrypted) payload, sent from ``socket``."""

    payload: bytes
    socket: UdxSocket | None = None


HandshakeCallback = Callable[[HandshakeMessage, IncomingRequest], Awaitable[HandshakeAnswer | None]]
HolepunchCallback = Callable[[HolepunchMessage, IncomingRequest], Awaitable[HolepunchAnswer | None]]


@dataclass(slots=True)
class ForwardState:
    """The routing entry of one target (BLAKE2b of a server's public key).

    * ``relay``: where to forward to. At a DHT node the server announced itself through, the
      server's address as that node saw it; ``None`` on the server's own node.
    * ``record``: the server's encoded peer record (``messages.peer``), returned to LOOKUP and
      FIND_PEER for this target.
    * ``on_peer_handshake`` / ``on_peer_holepunch``: set only by a local server (helper B's
      ``Server.listen``). Their presence marks the target as served *here*; such an entry is
      retained (never ages out) until :meth:`Router.delete`. A callback returns ``None`` to
      drop the message; an exception is logged and the message dropped.
    """

    relay: Address | None
    record: bytes
    on_peer_handshake: HandshakeCallback | None = None
    on_peer_holepunch: HolepunchCallback | None = None


@dataclass(frozen=True, slots=True)
class HandshakeResult:
    """The client's view after a PEER_HANDSHAKE round trip.

    ``relayed`` is True when the answer came through a relay; ``server_address`` is then the
    server's address as the relay saw it, else the node we asked (the server itself).
    ``client_address`` is how the answering node saw us.
    """

    noise: bytes
    relayed: bool
    server_address: Address
    client_address: Address


@dataclass(frozen=True, slots=True)
class HolepunchResult:
    """The client's view after a PEER_HOLEPUNCH round trip (``payload`` still encrypted)."""

    from_address: Address
    to: Address
    payload: bytes
    peer_address: Address


def _target_key(target: bytes | str) -> bytes:
    return bytes.fromhex(target) if isinstance(target, str) else bytes(target)


class Router:
    """Forwarding state per target plus the relay logic of PEER_HANDSHAKE / PEER_HOLEPUNCH."""

    def __init__(
        self,
        node: DhtNode,
        *,
        max_size: int = DEFAULT_MAX_FORWARDS,
        max_age: float = DEFAULT_FORWARD_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node = node
        self._clock = clock
        self.forwards: AgingCache[bytes, ForwardState] = AgingCache(max_size, max_age, clock())
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closed = False
        # messages forwarded for others / answered for a local server (JS keeps similar stats)
        self.stats: dict[str, int] = {
            "relayed_handshakes": 0,
            "relayed_holepunches": 0,
            "served": 0,
            "dropped": 0,
        }

    # --- state --------------------------------------------------------------------------------

    def set(self, target: bytes | str, state: ForwardState) -> None:
        """Install the route for ``target``; a local server's route (with callbacks) is retained."""
        key = _target_key(target)
        if state.on_peer_handshake is not None:
            self.forwards.retain(key, state)
        else:
            self.forwards.set(key, state, self._clock())

    def get(self, target: bytes | str) -> ForwardState | None:
        return self.forwards.get(_target_key(target), self._clock())

    def delete(self, target: bytes | str) -> None:
        self.forwards.delete(_target_key(target))

    async def close(self) -> None:
        """Drop all routes and stop any callback still running (bounded: tasks are cancelled)."""
        self.closed = True
        self.forwards.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- incoming (dispatched by HyperDht) ---------------------------------------------------

    def handle(self, req: IncomingRequest) -> bool:
        """Take a PEER_HANDSHAKE / PEER_HOLEPUNCH request; False for any other command."""
        if req.command == C.PEER_HANDSHAKE:
            self.on_peer_handshake(req)
            return True
        if req.command == C.PEER_HOLEPUNCH:
            self.on_peer_holepunch(req)
            return True
        return False

    def _may_send(self, address: Address) -> bool:
        """Addresses named inside a message come from the sender: the node's filter applies.

        (A node restricted with ``filter_node``, e.g. to loopback, must not be steered into
        sending elsewhere by a forged ``peer_address`` / ``relay_address``.)
        """
        accept = self.node.filter_node
        return 0 < address.port < 0x10000 and (accept is None or accept(address))

    def _spawn(self, coro: Any) -> None:
        # Relaying is synchronous; only a local server's callbacks run as tasks, and a flood of
        # them is cut off at MAX_PENDING (the client retries or times out, as with any drop).
        if self.closed or len(self._tasks) >= MAX_PENDING:
            self.stats["dropped"] += 1
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def on_peer_handshake(self, req: IncomingRequest) -> None:
        if req.value is None:
            return
        try:
            hs = m.decode(m.handshake, req.value)
        except (DecodeError, ValueError):
            return
        state = self.get(req.target) if req.target is not None else None
        relay = state.relay if state is not None else None
        if state is not None and state.on_peer_handshake is not None:
            if hs.noise:
                self._spawn(self._serve_handshake(req, hs, state.on_peer_handshake))
            return
        if hs.mode == C.FROM_CLIENT:
            if not hs.noise:
                return
            to = hs.relay_address or relay
            if to is not None and not self._may_send(to):
                return
            if to is None:
                # no route here: answer with closer nodes so the client can look elsewhere
                req.reply(None, token=False, closer_nodes=True)
                return
            fwd = m.Handshake(C.FROM_RELAY, hs.noise, peer_address=req.address, relay_address=None)
            self.stats["relayed_handshakes"] += 1
            req.relay(m.encode(m.handshake, fwd), to)
        elif hs.mode == C.FROM_RELAY:
            if relay is None or not hs.noise:
                return
            fwd = m.Handshake(
                C.FROM_SECOND_RELAY, hs.noise, peer_address=hs.peer_address, relay_address=req.address
            )
            self.stats["relayed_handshakes"] += 1
            req.relay(m.encode(m.handshake, fwd), relay)
        elif hs.mode == C.FROM_SERVER:
            if hs.peer_address is None or not hs.noise or not self._may_send(hs.peer_address):
                return
            back = m.Handshake(C.REPLY, hs.noise, peer_address=req.address, relay_address=None)
            req.reply(m.encode(m.handshake, back), to=hs.peer_address, token=False, closer_nodes=False)

    async def _serve_handshake(
        self, req: IncomingRequest, hs: m.Handshake, callback: HandshakeCallback
    ) -> None:
        if not hs.noise:
            return
        try:
            answer = await callback(HandshakeMessage(hs.noise, hs.peer_address), req)
        except asyncio.CancelledError:
            raise
        except Exception:  # a failing server callback drops this message only
            log.exception("on_peer_handshake failed")
            return
        if answer is None or not answer.noise:
            return
        self.stats["served"] += 1
        if hs.mode == C.FROM_CLIENT:
            reply = m.Handshake(C.REPLY, answer.noise, peer_address=None)
            req.reply(m.encode(m.handshake, reply), token=False, closer_nodes=False, socket=answer.socket)
        elif hs.mode == C.FROM_RELAY:
            back = m.Handshake(C.FROM_SERVER, answer.noise, peer_address=hs.peer_address)
            req.relay(m.encode(m.handshake, back), req.address, socket=answer.socket)
        elif hs.mode == C.FROM_SECOND_RELAY:
            if hs.relay_address is None or not self._may_send(hs.relay_address):
                return
            back = m.Handshake(C.FROM_SERVER, answer.noise, peer_address=hs.peer_address)
            req.relay(m.encode(m.handshake, back), hs.relay_address, socket=answer.socket)

    def on_peer_holepunch(self, req: IncomingRequest) -> None:
        if req.value is None:
            return
        try:
            hp = m.decode(m.holepunch, req.value)
        except (DecodeError, ValueError):
            return
        state = self.get(req.target) if req.target is not None else None
        relay = state.relay if state is not None else None
        if hp.mode == C.FROM_CLIENT:
            to = hp.peer_address or relay
            if to is None or not self._may_send(to):
                return
            fwd = m.Holepunch(C.FROM_RELAY, hp.id, hp.payload, peer_address=req.address)
            self.stats["relayed_holepunches"] += 1
            req.relay(m.encode(m.holepunch, fwd), to)
        elif hp.mode == C.FROM_RELAY:
            if state is None or state.on_peer_holepunch is None or hp.peer_address is None:
                return
            message = HolepunchMessage(hp.id, hp.payload, hp.peer_address)
            self._spawn(self._serve_holepunch(req, message, state.on_peer_holepunch))
        elif hp.mode == C.FROM_SERVER:
            if hp.peer_address is None or not self._may_send(hp.peer_address):
                return
            reply = m.Holepunch(C.REPLY, hp.id, hp.payload, peer_address=req.address)
            req.reply(m.encode(m.holepunch, reply), to=hp.peer_address, token=False, closer_nodes=False)

    async def _serve_holepunch(
        self, req: IncomingRequest, message: HolepunchMessage, callback: HolepunchCallback
    ) -> None:
        try:
            answer = await callback(message, req)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("on_peer_holepunch failed")
            return
        if answer is None:
            return
        self.stats["served"] += 1
        back = m.Holepunch(C.FROM_SERVER, 0, answer.payload, peer_address=message.peer_address)
        req.relay(m.encode(m.holepunch, back), req.address, socket=answer.socket)

    # --- client side --------------------------------------------------------------------------

    async def peer_handshake(
        self,
        target: bytes,
        noise: bytes,
        to: Address,
        *,
        peer_address: Address | None = None,
        relay_address: Address | None = None,
        retries: int | None = None,
        timeout: float | None = None,
    ) -> HandshakeResult:
        """Send our Noise message for ``target`` to node ``to``; the server's answer comes back.

        ``to`` is a node the server announced through (a relay) or the server itself. Raises
        :class:`BadHandshakeReply` if the answer is malformed or not from ``to``, and the
        node's :class:`~hyperlobby.swarm.dht_rpc.RequestTimeout` if nothing comes back.
        """
        value = m.encode(
            m.handshake,
            m.Handshake(C.FROM_CLIENT, noise, peer_address=peer_address, relay_address=relay_address),
        )
        res = await self.node.request(
            C.PEER_HANDSHAKE, to, target=target, value=value, retries=retries, timeout=timeout
        )
        hs = _decode_or_none(m.handshake, res.value)
        if hs is None or hs.mode != C.REPLY or res.address != to or not hs.noise:
            raise BadHandshakeReply("bad handshake reply", node=f"{to.host}:{to.port}")
        return HandshakeResult(
            noise=hs.noise,
            relayed=hs.peer_address is not None,
            server_address=hs.peer_address or to,
            client_address=res.to,
        )

    async def peer_holepunch(
        self,
        target: bytes,
        id: int,
        payload: bytes,
        to: Address,
        *,
        peer_address: Address | None = None,
        retries: int | None = None,
        timeout: float | None = None,
    ) -> HolepunchResult:
        """One holepunch round for ``target`` through relay ``to`` (``payload`` already encrypted)."""
        value = m.encode(m.holepunch, m.Holepunch(C.FROM_CLIENT, id, payload, peer_address=peer_address))
        res = await self.node.request(
            C.PEER_HOLEPUNCH, to, target=target, value=value, retries=retries, timeout=timeout
        )
        hp = _decode_or_none(m.holepunch, res.value)
        if hp is None or hp.mode != C.REPLY or res.address != to:
            raise BadHolepunchReply("bad holepunch reply", node=f"{to.host}:{to.port}")
        return HolepunchResult(
            from_address=res.address, to=res.to, payload=hp.payload, peer_address=hp.peer_address or to
        )


def _decode_or_none(codec: Codec[Any], value: bytes | None) -> Any:
    if value is None:
        return None
    with contextlib.suppress(DecodeError, ValueError, HyperlobbyError):
        return m.decode(codec, value)
    return None


__all__ = [
    "BadHandshakeReply",
    "BadHolepunchReply",
    "ForwardState",
    "HandshakeAnswer",
    "HandshakeCallback",
    "HandshakeMessage",
    "HandshakeResult",
    "HolepunchAnswer",
    "HolepunchCallback",
    "HolepunchMessage",
    "HolepunchResult",
    "Router",
]
