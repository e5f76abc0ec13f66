"""HyperDHT server: accept connections addressed to a key pair, through the DHT.

Theory of operation
-------------------
``listen(keypair)`` makes the server reachable under ``target = BLAKE2b(public key)``:

1. It installs a *retained* router entry for the target on our own node, with our
   PEER_HANDSHAKE / PEER_HOLEPUNCH callbacks. A handshake that reaches our node for the
   target (relayed by the node we announced through, or sent to us directly) lands in
   :meth:`Server._on_peer_handshake`.
2. It announces the target at the DHT nodes closest to it, so clients' FIND_PEER finds a
   node that relays for us (hyperdht's Announcer keeps this fresh; see ``announcer``).

A handshake is the client's Noise IK msg1 (:mod:`noise_wrap`). Identical msg1s (the client
sends the same one through several relays) share one answer. We read it, ask the user's
``firewall`` (True rejects: no answer at all, as in JS), open a UDX stream for the connection
and answer with our payload: error code, firewall kind, a holepunch offer when we are not
reachable, our addresses, the stream id. The UDX stream is connected the moment the client's
first packet for it arrives (the stream's firewall hook), or right away when the client is
reachable (OPEN) or came straight to us; either way a :class:`DhtConnection` then goes to
``on_connection``. Which of those happens is :func:`holepuncher.server_path`.

When we are not reachable, or the client is on our host, the handshake also gets a
:class:`~hyperlobby.swarm.hyperdht.punching.ServerPunch`: a punch socket of its own (the
handshake answer leaves from it when we will holepunch, so the client learns its address) that
answers the PEER_HOLEPUNCH rounds, routed to it by the ``id`` of our holepunch offer, as
hyperdht's server does. A pending handshake that does not become a connection within
``handshake_timeout`` is dropped.
``close()`` unannounces (bounded) and drops everything pending; live connections belong to
whoever got them.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from hyperlobby.crypto.hashes import blake2b256
from hyperlobby.crypto.keys import KeyPair
from hyperlobby.errors import HandshakeError, HyperlobbyError, ProtocolError
from hyperlobby.swarm.dht_rpc import Address, IncomingRequest
from hyperlobby.swarm.hyperdht import messages as m
from hyperlobby.swarm.hyperdht.announcer import Announcer
from hyperlobby.swarm.hyperdht.blind_relay import (
    PAIR_TIMEOUT,
    RelayPath,
    RelayThrough,
    new_token,
    select_relay,
)
from hyperlobby.swarm.hyperdht.connection import DhtConnection
from hyperlobby.swarm.hyperdht.constants import (
    ERROR_ABORTED,
    ERROR_NONE,
    ERROR_VERSION_MISMATCH,
    FIREWALL_OPEN,
    FIREWALL_UNKNOWN,
)
from hyperlobby.swarm.hyperdht.holepuncher import ServerPath, local_addresses, server_path
from hyperlobby.swarm.hyperdht.noise_wrap import HandshakeFinal, NoiseWrap
from hyperlobby.swarm.hyperdht.punching import ServerPunch
from hyperlobby.swarm.hyperdht.router import (
    ForwardState,
    HandshakeAnswer,
    HandshakeMessage,
    HolepunchAnswer,
    HolepunchMessage,
)
from hyperlobby.swarm.udx import UdxSocket, UdxStream
from hyperlobby.wire.noise import NoiseKeyPair

if TYPE_CHECKING:
    from hyperlobby.swarm.hyperdht.dht import HyperDht

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0  # a handshake must turn into a connection within this (JS: 10 s)
CLEAR_WAIT = 10.0  # a finished handshake's answer is kept this long for duplicate msg1s
RELAYED_PUNCH_TIME = 40.0  # a relayed connection keeps holepunching this long (a random punch: ~35 s)

# firewall(remote_public_key, payload[, client_address]) -> True rejects (may be async)
Firewall = Callable[..., "bool | Awaitable[bool]"]
OnConnection = Callable[[DhtConnection], object]


class AlreadyListening(ProtocolError):
    """listen() on a server that already listens, or a key pair another server here uses."""


class _Pending:
    """One accepted handshake waiting for its UDX stream to be connected."""

    def __init__(self, server: Server, pid: int) -> None:
        self.server = server
        self.id = pid
        self.reply: bytes | None = None
        self.final: HandshakeFinal | None = None
        self.stream: UdxStream | None = None
        self.remote_udx_id = 0
        self.punch: ServerPunch | None = None
        self.reply_socket: UdxSocket | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.done = False
        self.relay: RelayPath | None = None

    def on_socket(self, socket: UdxSocket, host: str, port: int) -> None:
        """The path is known: connect the stream there and hand the connection over. A direct
        path that opens after the relay's moves the stream over."""
        relay = self.relay
        if self.done and relay is not None and relay.stream is not None:
            relay.upgrade(socket, host, port)
            if self.punch is not None:
                self.punch.keep_socket(socket, relay.stream.closed)
            return
        self._connect(self.remote_udx_id, socket, host, port, relayed=False)

    def _connect(self, remote_id: int, socket: UdxSocket, host: str, port: int, *, relayed: bool) -> None:
        stream, final = self.stream, self.final
        if self.done or stream is None or final is None:
            return
        self.done = True
        self.stream = None
        self._stop_timer()
        stream.connect(remote_id, host, port, socket)
        punch = self.punch
        if relayed and punch is not None:
            # Holepunching goes on while relayed: it ends with the stream, or after a while.
            timer = asyncio.get_running_loop().call_later(RELAYED_PUNCH_TIME, self._end_punch)

            def stream_closed(_f: object) -> None:
                timer.cancel()
                self._end_punch()

            stream.closed.add_done_callback(stream_closed)
        else:
            if punch is not None:
                punch.keep_socket(socket, stream.closed)
                punch.close()
            if self.relay is not None:
                self.relay.close()  # a direct path won the race
            self.server._clear_later(self)
        conn = DhtConnection(stream, final)
        self.server._accepted(conn)

    async def relay_through(self, path: RelayPath) -> None:
        """Pair our stream at the blind relay and connect through it, unless a path won."""
        stream = self.stream
        if stream is None or self.done:
            return
        self.relay = path
        try:
            socket, host, port, remote_id = await path.pair(stream)
        except BaseException as err:
            path.close()  # also when cancelled: no relay connection is left behind
            if not isinstance(err, HyperlobbyError | OSError):
                raise
            log.debug("relay pairing failed: %r", err)
            return
        if self.done or self.stream is None:
            path.close()
            return
        self._connect(remote_id, socket, host, port, relayed=True)
        path.attach(stream, self.remote_udx_id)

    def _end_punch(self) -> None:
        if self.punch is not None:
            self.punch.close()
            self.punch = None
            self.server._clear_later(self)

    def abort(self) -> None:
        if self.done:
            return
        self.done = True
        self._stop_timer()
        if self.stream is not None:
            self.stream.destroy()
            self.stream = None
        if self.punch is not None:
            self.punch.close()
        if self.relay is not None:
            self.relay.close()
        self.server._clear_later(self)

    def arm(self, timeout: float) -> None:
        self._stop_timer()
        self.timer = asyncio.get_running_loop().call_later(timeout, self.abort)

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class Server:
    """Accepts HyperDHT connections for one key pair (see the module docstring)."""

    def __init__(
        self,
        dht: HyperDht,
        *,
        firewall: Firewall | None = None,
        on_connection: OnConnection | None = None,
        share_local_address: bool = True,
        holepunch: bool = True,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        relay_through: RelayThrough = None,
    ) -> None:
        self.dht = dht
        self.firewall = firewall
        self._firewall_takes_address = firewall is not None and _accepts(firewall, 3)
        self.on_connection = on_connection
        self.share_local_address = share_local_address
        self.never_punch = not holepunch
        self.handshake_timeout = handshake_timeout
        self.relay_through = relay_through
        self.target: bytes | None = None
        self.key_pair: KeyPair | None = None
        self.closed = False
        self.connections: set[DhtConnection] = set()
        self._announcer: Announcer | None = None
        self._pending: list[_Pending | None] = []
        self._connects: dict[bytes, asyncio.Future[_Pending | None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listening = False

    # --- public --------------------------------------------------------------------------------

    @property
    def public_key(self) -> bytes | None:
        return self.key_pair.public_key if self.key_pair is not None else None

    @property
    def listening(self) -> bool:
        return self._listening

    def address(self) -> tuple[bytes, str, int] | None:
        """(public key, host, port) of the node we listen on, as JS ``server.address()``."""
        if self.key_pair is None:
            return None
        addr = self.dht.address
        return (self.key_pair.public_key, addr.host, addr.port)

    @property
    def relay_addresses(self) -> list[Address]:
        """Nodes that relay for us (a client may skip FIND_PEER by naming them)."""
        return list(self._announcer.relay_addresses) if self._announcer is not None else []

    async def listen(self, keypair: KeyPair | None = None) -> Server:
        """Register with our node's router and announce ourselves; returns once announced.

        Without ``keypair`` the node's default key pair is used, as in JS.
        """
        if keypair is None:
            keypair = self.dht.default_keypair
        if self._listening or self.key_pair is not None:
            raise AlreadyListening("server already listening")
        if self.closed:
            raise ProtocolError("server is closed")
        if keypair.secret_key is None:
            raise HandshakeError("a server needs a key pair with a secret key")
        servers = _SERVERS.setdefault(self.dht, [])
        if any(s.public_key == keypair.public_key for s in servers if s is not self):
            raise AlreadyListening("key pair already used by another server on this node")
        self.key_pair = keypair
        self.target = blake2b256(keypair.public_key)
        servers.append(self)
        self.dht.on_close.append(self.close)
        record = m.encode(m.peer, m.Peer(keypair.public_key, ()))
        self.dht.router.set(
            self.target,
            ForwardState(
                relay=None,
                record=record,
                on_peer_handshake=self._on_peer_handshake,
                on_peer_holepunch=self._on_peer_holepunch,
            ),
        )
        self._listening = True
        try:
            await self._announce()
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        """Stop answering, unannounce (bounded) and drop pending handshakes."""
        if self.closed:
            return
        self.closed = True
        if self.target is not None:
            self.dht.router.delete(self.target)
        for pending in list(self._pending):
            if pending is not None:
                pending.abort()
        self._pending.clear()
        self._connects.clear()
        with contextlib.suppress(ValueError):
            self.dht.on_close.remove(self.close)
        servers = _SERVERS.get(self.dht, [])
        if self in servers:
            servers.remove(self)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._listening and self.key_pair is not None and self.target is not None:
            self._listening = False
            await self._unannounce()

    # --- announcing ------------------------------------------------------------------------------

    async def _announce(self) -> None:
        assert self.key_pair is not None and self.target is not None
        self._announcer = Announcer(self.dht, self.key_pair, self.target)
        await self._announcer.start()

    async def _unannounce(self) -> None:
        if self._announcer is None:
            return
        try:
            await asyncio.wait_for(self._announcer.stop(), 5.0)
        except (TimeoutError, HyperlobbyError, OSError):
            log.debug("unannounce did not finish")

    def _relay_infos(self) -> list[m.RelayInfo]:
        return list(self._announcer.relays) if self._announcer is not None else []

    # --- PEER_HANDSHAKE --------------------------------------------------------------------------

    async def _on_peer_handshake(self, msg: HandshakeMessage, req: IncomingRequest) -> HandshakeAnswer | None:
        if self.closed:
            return None
        key = msg.noise
        fut = self._connects.get(key)
        if fut is None:
            # Registered before the first await, so a flood of copies shares one answer.
            fut = asyncio.get_running_loop().create_future()
            self._connects[key] = fut
            try:
                result = await self._add_handshake(key, msg, req)
            except Exception as exc:  # never let one bad handshake disturb the router
                log.debug("handshake failed: %r", exc)
                result = None
            if not fut.done():
                fut.set_result(result)
        pending = await asyncio.shield(fut)
        if pending is None or pending.reply is None or self.closed:
            return None
        return HandshakeAnswer(pending.reply, pending.reply_socket)

    async def _add_handshake(
        self, key: bytes, msg: HandshakeMessage, req: IncomingRequest
    ) -> _Pending | None:
        pending = self._new_pending()
        try:
            return await self._accept_handshake(pending, key, msg, req)
        except BaseException:
            pending.abort()  # whatever went wrong, the stream and punch socket do not linger
            raise

    async def _accept_handshake(
        self, pending: _Pending, key: bytes, msg: HandshakeMessage, req: IncomingRequest
    ) -> _Pending | None:
        assert self.key_pair is not None
        assert self.key_pair.secret_key is not None
        wrap = NoiseWrap(NoiseKeyPair(self.key_pair.public_key, self.key_pair.secret_key))
        direct = msg.peer_address is None
        client_address = msg.peer_address or req.address
        try:
            remote = wrap.recv(msg.noise)
        except HandshakeError:
            self._forget(pending, key)
            return None
        remote_key = wrap.remote_public_key
        assert remote_key is not None
        if self.firewall is not None:
            try:
                if self._firewall_takes_address:
                    verdict = self.firewall(remote_key, remote, client_address)
                else:
                    verdict = self.firewall(remote_key, remote)
                if inspect.isawaitable(verdict):
                    verdict = await verdict
                rejected = bool(verdict)
            except Exception:
                log.exception("server firewall failed; rejecting")
                rejected = True
            if rejected:
                self._forget(pending, key)
                return None
        if self.closed:
            return None

        if remote.version != 1:
            error = ERROR_VERSION_MISMATCH
        elif remote.udx is None:
            error = ERROR_ABORTED
        else:
            error = ERROR_NONE
        our_remote = self.dht.remote_address()
        bound = self.dht.address
        mine = local_addresses(bound.host, bound.port) if self.share_local_address else []
        addresses = ([our_remote] if our_remote is not None else []) + mine

        if error == ERROR_NONE:
            assert remote.udx is not None
            pending.remote_udx_id = remote.udx.id
            pending.stream = self.dht.node.socket.create_stream(firewall=self._stream_firewall(pending))
        holepunch = (
            None if our_remote is not None else m.HolepunchInfo(pending.id, tuple(self._relay_infos()))
        )
        relay_key = select_relay(self.relay_through) if error == ERROR_NONE else None
        relay = m.RelayThroughInfo(relay_key, new_token()) if relay_key is not None else None
        try:
            pending.reply = wrap.send(
                m.NoisePayload(
                    error=error,
                    firewall=FIREWALL_OPEN if our_remote is not None else FIREWALL_UNKNOWN,
                    holepunch=holepunch,
                    addresses4=tuple(addresses),
                    udx=m.UdxInfo(pending.stream.id if pending.stream is not None else 0, 0),
                    secret_stream=m.SecretStreamInfo(),
                    relay_through=relay,
                    relay_addresses=tuple(self.relay_addresses) or None,
                )
            )
        except HyperlobbyError:
            pending.abort()
            return None
        pending.final = wrap.final()
        if error != ERROR_NONE:
            pending.abort()  # the answer still goes out, so the client learns why
            return pending

        path = server_path(
            remote,
            direct=direct,
            client_address=client_address,
            server_address=req.request.to if req.request.to is not None else bound,
            our_remote_address=our_remote,
            my_local_addresses=mine,
            share_local_address=self.share_local_address,
            never_punch=self.never_punch,
        )
        if path is ServerPath.CONNECT:
            sock = (req.via or self.dht.node.socket) if direct else self.dht.node.request_socket
            pending.on_socket(sock, client_address.host, client_address.port)
            return pending
        # A blind relay, ours (we pair as the initiator) or the client's, runs alongside the punch.
        if relay is not None or remote.relay_through is not None:
            if relay is not None:
                path_ = RelayPath(self.dht, relay.public_key, relay.token, True)
            else:
                assert remote.relay_through is not None
                theirs = remote.relay_through
                path_ = RelayPath(self.dht, theirs.public_key, theirs.token, False)
            pending.relay = path_
            self._spawn(pending.relay_through(path_))
        if path in (ServerPath.PREPUNCH_LAN, ServerPath.HOLEPUNCH):
            pending.punch = await ServerPunch.open(
                self.dht, pending.final, remote.firewall, pending.on_socket
            )
            if path is ServerPath.HOLEPUNCH:
                pending.reply_socket = pending.punch.socket
        pending.arm(
            max(self.handshake_timeout, PAIR_TIMEOUT + 2) if pending.relay else self.handshake_timeout
        )
        return pending

    def _stream_firewall(self, pending: _Pending) -> Callable[[UdxSocket, str, int], bool]:
        def firewall(socket: UdxSocket, host: str, port: int) -> bool:
            if not 0 < port < 65536 or pending.done:
                return True
            pending.on_socket(socket, host, port)
            return False

        return firewall

    # --- PEER_HOLEPUNCH --------------------------------------------------------------------------

    async def _on_peer_holepunch(self, msg: HolepunchMessage, req: IncomingRequest) -> HolepunchAnswer | None:
        pending = self._pending[msg.id] if 0 <= msg.id < len(self._pending) else None
        if pending is None or self.closed:
            return None
        punch = pending.punch
        if punch is None:
            return None
        from_relay = self._announcer is not None and self._announcer.is_relay(req.address)
        answer = await punch.on_round(msg.payload, msg.peer_address, req, from_relay)
        if answer is None:
            return None
        payload, socket = answer
        return HolepunchAnswer(payload, socket or self.dht.node.request_socket)

    # --- bookkeeping -----------------------------------------------------------------------------

    def _new_pending(self) -> _Pending:
        try:
            pid = self._pending.index(None)
        except ValueError:
            pid = len(self._pending)
            self._pending.append(None)
        pending = _Pending(self, pid)
        self._pending[pid] = pending
        return pending

    def _forget(self, pending: _Pending, key: bytes) -> None:
        pending.done = True
        self._clear_later(pending)

    def _clear_later(self, pending: _Pending) -> None:
        if self.closed:
            return
        asyncio.get_running_loop().call_later(CLEAR_WAIT, self._clear, pending)

    def _clear(self, pending: _Pending) -> None:
        if pending.id < len(self._pending) and self._pending[pending.id] is pending:
            self._pending[pending.id] = None
            while self._pending and self._pending[-1] is None:
                self._pending.pop()
        for key, fut in list(self._connects.items()):
            if (fut.done() and fut.result() is pending) or (fut.done() and fut.result() is None):
                del self._connects[key]

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _accepted(self, conn: DhtConnection) -> None:
        self.connections.add(conn)
        conn.closed.add_done_callback(lambda _f: self.connections.discard(conn))
        if self.on_connection is None:
            return
        try:
            result = self.on_connection(conn)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except Exception:
            log.exception("on_connection failed")


_SERVERS: weakref.WeakKeyDictionary[HyperDht, list[Server]] = weakref.WeakKeyDictionary()


def servers_of(dht: HyperDht) -> list[Server]:
    """The servers listening on ``dht`` (what close() of the node closes first)."""
    return list(_SERVERS.get(dht, []))


def _accepts(fn: Callable[..., object], n: int) -> bool:
    """Whether ``fn`` can take ``n`` positional arguments (JS passes extras silently)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    try:
        sig.bind(*([None] * n))
    except TypeError:
        return False
    return True


def create_server(
    dht: HyperDht,
    *,
    firewall: Firewall | None = None,
    on_connection: OnConnection | None = None,
    **options: Any,
) -> Server:
    """A server on ``dht``; call :meth:`Server.listen` to start accepting."""
    return Server(dht, firewall=firewall, on_connection=on_connection, **options)


__all__ = ["AlreadyListening", "Firewall", "OnConnection", "Server", "create_server", "servers_of"]
