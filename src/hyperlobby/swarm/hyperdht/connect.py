"""HyperDHT client: connect to a server by its public key.

Theory of operation
-------------------
``connect(dht, public_key)`` follows hyperdht's connect.js:

1. **Handshake through the DHT.** Our Noise IK msg1 (:mod:`noise_wrap`) carries our payload:
   firewall kind (OPEN when our node is reachable), addresses, and the id of the UDX stream we
   opened for this connection. It goes in PEER_HANDSHAKE requests to the nodes the server is
   reachable through: the ``relay_addresses`` given (the server's own node works too; when
   none are given, those that reached this key last time, as JS caches them), then
   every node that answers FIND_PEER for ``BLAKE2b(public key)``. The same msg1 goes to each
   (the server answers duplicates once); the first valid answer wins. A reply tells us whether
   it was relayed and where the relay saw the server.
2. **The path.** :func:`holepuncher.client_path` decides as connect.js ``holepunch()`` does:
   an OPEN server (or a relayed one not offering to holepunch) is dialled at its first public
   address, else where the relay saw it; an OPEN client waits for the server to connect; a
   server on the same host is tried at its best-matching LAN address (a dht-rpc ping first);
   otherwise both sides holepunch (:class:`~hyperlobby.swarm.hyperdht.punching.ClientPunch`),
   raced against that LAN shortcut.
3. **The stream.** Whichever path wins first connects our UDX stream to the server's stream id
   at that address; if the server reaches us first, our stream's firewall hook sees its
   packet and connects there. The secret stream then starts from the finished handshake
   (:class:`DhtConnection`).

Failures map to hyperdht's: nobody routes to the key (:class:`PeerNotFound`), every relay
failed or timed out (:class:`PeerConnectionFailed`), the server answered with an error
(:class:`ServerError`), or no path opened in time (:class:`HolepunchError`). Every wait is
bounded by ``timeout``; on failure the stream and any punch socket are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import OrderedDict
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from hyperlobby.crypto.hashes import blake2b256
from hyperlobby.crypto.keys import KeyPair
from hyperlobby.crypto.keys import key_pair as new_key_pair
from hyperlobby.errors import HandshakeError, HyperlobbyError, ProtocolError
from hyperlobby.swarm.dht_rpc import Address
from hyperlobby.swarm.hyperdht import messages as m
from hyperlobby.swarm.hyperdht.blind_relay import RelayPath, RelayThrough, new_token, select_relay
from hyperlobby.swarm.hyperdht.connection import DhtConnection
from hyperlobby.swarm.hyperdht.constants import ERROR_NONE, FIREWALL_OPEN, FIREWALL_UNKNOWN
from hyperlobby.swarm.hyperdht.holepuncher import ClientPath, client_path, local_addresses
from hyperlobby.swarm.hyperdht.noise_wrap import HandshakeFinal, NoiseWrap
from hyperlobby.swarm.hyperdht.punching import ClientPunch, HolepunchError, PunchSocket
from hyperlobby.swarm.udx import UdxSocket, UdxStream
from hyperlobby.wire.noise import NoiseKeyPair

if TYPE_CHECKING:
    from hyperlobby.swarm.hyperdht.dht import HyperDht

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 20.0
PASSIVE_TIMEOUT = 10.0  # an OPEN client waits this long for the server to connect (JS: 10 s)
PARALLEL_HANDSHAKES = 2
RELAY_CACHE_SIZE = 512  # keys whose relays we remember for the next connect (JS: 512)


class PeerNotFound(ProtocolError):
    """No DHT node knows a route to that public key."""


class PeerConnectionFailed(ProtocolError):
    """Nodes route to the key, but no handshake through them succeeded."""


class HolepunchFailed(PeerConnectionFailed):
    """The handshake went through but no path to the peer could be punched (aborted, both
    NATs randomizing, out of ration): the case a blind relay is for (hyperswarm relays the
    next attempt when it has one)."""


class CannotHolepunch(HolepunchError):
    """The server offered no way to reach it: not reachable and not holepunchable."""


class HolepunchAborted(HolepunchError):
    """The one path left did not open (the server never dialled back, the LAN shortcut to a
    server that cannot be punched failed)."""


def relay_may_help(err: BaseException) -> bool:
    """Whether a failed connect is one a blind relay gets around (hyperswarm's
    ``shouldForceRelaying``): the peer was found, only no direct path opened."""
    return isinstance(err, HolepunchFailed | CannotHolepunch | HolepunchAborted)


class ServerError(HandshakeError):
    """The server answered the handshake with an error (or an incompatible version)."""


class _Attempt:
    """State of one connect() call."""

    def __init__(
        self,
        dht: HyperDht,
        key_pair: KeyPair,
        remote_public_key: bytes,
        lan: bool,
        fast_open: bool = True,
        relay_through: bytes | None = None,
    ) -> None:
        self.dht = dht
        self.key_pair = key_pair
        self.remote_public_key = remote_public_key
        self.target = blake2b256(remote_public_key)
        self.lan = lan
        self.fast_open = fast_open
        self.wrap = NoiseWrap(_noise_keys(key_pair), remote_public_key)
        self.stream: UdxStream = dht.node.socket.create_stream(firewall=self._stream_firewall)
        self.msg1: bytes | None = None
        self.own_firewall = FIREWALL_UNKNOWN  # what msg1 told the server about us
        self.final: HandshakeFinal | None = None
        self.payload: m.NoisePayload | None = None
        self.remote_udx_id = 0
        self.early: tuple[UdxSocket, str, int] | None = None  # the server reached us first
        self.loop = asyncio.get_running_loop()
        self.connected: asyncio.Future[DhtConnection] = self.loop.create_future()
        self.punch: ClientPunch | None = None
        self.attempts = 0
        self.through_nodes: list[Address] = []  # nodes our msg1 went to (JS remoteRelayAddresses)
        self.errors: list[HyperlobbyError] = []
        self.tasks: set[asyncio.Task[None]] = set()
        # blind relay: ours (named in msg1) or the server's (named in its answer)
        self.relay_through = relay_through
        self.relay_token = new_token() if relay_through is not None else None
        self.relay: RelayPath | None = None
        self.relay_pending = False  # pairing in progress: other paths failing is not the end
        self.punch_task: asyncio.Task[None] | None = None
        self.deferred: HyperlobbyError | None = None

    # --- the stream --------------------------------------------------------------------------------

    def _stream_firewall(self, socket: UdxSocket, host: str, port: int) -> bool:
        if not 0 < port < 65536 or self.connected.done():
            return True
        if self.final is None:
            self.early = (socket, host, port)
            return True  # not ours to accept yet: the server retransmits once we know its id
        self.on_socket(socket, host, port)
        return False

    def on_socket(self, socket: UdxSocket, host: str, port: int) -> None:
        """A path to the server is open: connect the stream there (first path wins; a direct
        path that opens after the relay's moves the stream over)."""
        final = self.final
        if final is None:
            return
        if self.connected.done():
            if self.relay is not None and self.relay.stream is self.stream:
                self.relay.upgrade(socket, host, port)
                if self.punch is not None:
                    self.punch.keep_socket(socket, self.stream.closed)
            return
        self._connect_stream(final, self.remote_udx_id, socket, host, port)

    def _connect_stream(
        self, final: HandshakeFinal, remote_id: int, socket: UdxSocket, host: str, port: int
    ) -> None:
        self.stream.connect(remote_id, host, port, socket)
        conn = DhtConnection(self.stream, final)
        # remember how to reach this key next time: the server's own view of its relays first
        served = self.payload.relay_addresses if self.payload is not None else None
        _remember_relays(self.dht, self.remote_public_key, list(served or self.through_nodes))
        if self.punch is not None:
            self.punch.keep_socket(socket, self.stream.closed)
        self.connected.set_result(conn)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # --- handshake -----------------------------------------------------------------------------

    def first_message(self) -> bytes:
        if self.msg1 is None:
            ours = self.dht.remote_address()
            bound = self.dht.address
            addresses = ([ours] if ours is not None else []) + (
                local_addresses(bound.host, bound.port) if self.lan else []
            )
            self.own_firewall = FIREWALL_OPEN if ours is not None else FIREWALL_UNKNOWN
            self.msg1 = self.wrap.send(
                m.NoisePayload(
                    error=ERROR_NONE,
                    firewall=self.own_firewall,
                    addresses4=tuple(addresses),
                    udx=m.UdxInfo(self.stream.id, 0),
                    secret_stream=m.SecretStreamInfo(),
                    relay_through=(
                        m.RelayThroughInfo(self.relay_through, self.relay_token)
                        if self.relay_through is not None and self.relay_token is not None
                        else None
                    ),
                )
            )
        return self.msg1

    async def through(self, node: Address) -> None:
        """Send msg1 through ``node``; on the first valid answer, choose the path."""
        if self.final is not None or self.connected.done():
            return
        self.attempts += 1
        self.through_nodes.append(node)
        try:
            res = await self.dht.router.peer_handshake(self.target, self.first_message(), node)
        except HyperlobbyError as err:
            self.errors.append(err)
            return
        if self.final is not None or self.connected.done():
            return
        payload = self.wrap.recv(res.noise)  # a bad answer spoils the handshake: raise
        if payload.version != 1:
            raise ServerError("server uses an incompatible version", version=payload.version)
        if payload.error != ERROR_NONE:
            raise ServerError("server returned an error", error=payload.error)
        if payload.udx is None:
            raise ServerError("server did not send UDX data")
        self.payload = payload
        self.remote_udx_id = payload.udx.id
        self.final = self.wrap.final()
        if payload.relay_through is not None:  # the server's relay: it pairs first
            theirs = payload.relay_through
            self.spawn(self._relay(RelayPath(self.dht, theirs.public_key, theirs.token, False)))
        elif self.relay_through is not None and self.relay_token is not None:
            self.spawn(self._relay(RelayPath(self.dht, self.relay_through, self.relay_token, True)))
        if self.early is not None:
            self.on_socket(*self.early)
            return
        if not res.relayed:
            self.on_socket(self.dht.node.request_socket, node.host, node.port)
            return
        self.choose_path(res.server_address, node, res.client_address)

    def choose_path(self, server_address: Address, relay_address: Address, client_address: Address) -> None:
        payload = self.payload
        assert payload is not None and self.final is not None
        bound = self.dht.address
        plan = client_path(
            payload,
            server_address=server_address,
            relay_address=relay_address,
            client_address=client_address,
            own_firewall=self.own_firewall,
            lan=self.lan,
            my_local_addresses=local_addresses(bound.host, bound.port),
        )
        log.debug("connect path %s", plan)
        if plan.path is ClientPath.DIRECT:
            assert plan.address is not None
            self.on_socket(self.dht.node.request_socket, plan.address.host, plan.address.port)
            return
        if plan.path is ClientPath.PASSIVE:
            self.loop.call_later(
                PASSIVE_TIMEOUT, self._give_up, HolepunchAborted("server did not connect to us")
            )
            return
        if plan.path is ClientPath.CANNOT:
            self._give_up(CannotHolepunch("cannot holepunch to the server"))
            return
        if plan.lan_ping is not None:
            self.spawn(self._lan(plan.lan_ping, alone=plan.path is ClientPath.LAN))
        if plan.path is ClientPath.HOLEPUNCH:
            assert payload.holepunch is not None
            relays = payload.holepunch.relays
            relay = next((r for r in relays if r.relay_address == relay_address), relays[0])
            hid, fw = payload.holepunch.id, payload.firewall
            self.punch_task = self.spawn(self._holepunch(server_address, relay, relay_address, hid, fw))

    async def _lan(self, addr: Address, *, alone: bool) -> None:
        try:
            await self.dht.node.ping(addr, retries=1)
        except HyperlobbyError as err:
            if alone:
                self._give_up(HolepunchAborted("LAN shortcut failed", address=str(addr), cause=str(err)))
            return
        self.on_socket(self.dht.node.socket, addr.host, addr.port)

    async def _holepunch(
        self, server_address: Address, relay: m.RelayInfo, client_relay: Address, hid: int, fw: int
    ) -> None:
        assert self.final is not None
        punch_socket = await PunchSocket.open(self.dht)
        self.punch = ClientPunch(self.dht, self.final, punch_socket, self.target, hid, fw, self.on_socket)
        try:
            await self.punch.run(server_address, relay, client_relay, fast_open=self.fast_open)
        except HyperlobbyError as err:
            if not self.connected.done():
                # The punch cannot happen (aborted, unpunchable, rationed): fail now, as JS
                # does, instead of waiting out the connect timeout.
                self.errors.append(err)
                self.punch.close()
                self._give_up(HolepunchFailed("holepunch failed", attempts=self.attempts, cause=str(err)))

    async def _relay(self, path: RelayPath) -> None:
        """Pair our stream at the blind relay; connect through it unless a path won already."""
        self.relay = path
        self.relay_pending = True
        try:
            socket, host, port, remote_id = await path.pair(self.stream)
        except BaseException as err:
            path.close()  # also when cancelled: no relay connection is left behind
            self.relay_pending = False
            if not isinstance(err, HyperlobbyError | OSError):
                raise
            self.errors.append(err if isinstance(err, HyperlobbyError) else ProtocolError(str(err)))
            if self.deferred is not None:
                self._give_up(self.deferred)
            return
        self.relay_pending = False
        final = self.final
        if self.connected.done() or final is None:
            path.close()  # a direct path won the race
            return
        self._connect_stream(final, remote_id, socket, host, port)
        path.attach(self.stream, self.remote_udx_id)

    def _give_up(self, err: HyperlobbyError) -> None:
        if self.relay_pending:
            self.deferred = self.deferred or err  # the relay may still connect us
            return
        if not self.connected.done():
            self.connected.set_exception(err)

    async def finish(self) -> None:
        """Stop whatever is still trying; on failure also drop the stream. A connection that
        runs through a relay keeps holepunching (bounded by the punch itself, and by the
        stream's life): a direct path that opens takes over from the relay."""
        failed = not self.connected.done() or self.connected.exception() is not None
        punch_task = self.punch_task
        keep_punching = (
            not failed
            and self.relay is not None
            and self.relay.stream is self.stream
            and punch_task is not None
            and not punch_task.done()
        )
        stopping = [t for t in self.tasks if not (keep_punching and t is punch_task)]
        for task in stopping:
            task.cancel()
        if stopping:
            await asyncio.gather(*stopping, return_exceptions=True)
        if failed:
            self.stream.destroy()
            if self.relay is not None:
                self.relay.close()
        punch = self.punch
        if keep_punching and punch_task is not None and punch is not None:
            self.stream.closed.add_done_callback(lambda _f: punch_task.cancel())
            punch_task.add_done_callback(lambda _t: punch.close())
        elif punch is not None:
            punch.close()  # every punch socket but the one the connection runs over


async def _find_and_connect(a: _Attempt, relay_addresses: Sequence[Address], timeout: float) -> None:
    """Relay addresses first, then every node FIND_PEER turns up; two handshakes at a time."""
    sem = asyncio.Semaphore(PARALLEL_HANDSHAKES)
    running: set[asyncio.Task[None]] = set()
    failure: list[BaseException] = []

    async def one(node: Address) -> None:
        async with sem:
            try:
                await a.through(node)
            except HyperlobbyError as err:
                failure.append(err)
                a._give_up(err)

    tried: set[Address] = set()

    def start(node: Address) -> None:
        if node in tried or a.final is not None:
            return
        tried.add(node)
        task = a.loop.create_task(one(node))
        running.add(task)
        task.add_done_callback(running.discard)

    # a node that relays for the target itself knows where the server is: go straight there
    route = a.dht.router.get(a.target)
    if route is not None and route.relay is not None:
        relay_addresses = [route.relay]
    for node in relay_addresses:
        start(node)
    if running:
        await asyncio.wait(set(running))
    if a.final is None and not a.connected.done():
        query = a.dht.find_peer(a.remote_public_key, timeout=timeout)
        try:
            async for reply in query:
                start(reply.from_address)
                if a.final is not None or a.connected.done():
                    break
        finally:
            await query.aclose()  # stop walking once we are through (or given up)
        if running:
            await asyncio.wait(set(running))
    if a.final is None and not a.connected.done():
        if a.attempts == 0:
            a._give_up(PeerNotFound("no node knows a route to this key", key=a.remote_public_key.hex()))
        else:
            cause = str(a.errors[-1]) if a.errors else None
            a._give_up(
                PeerConnectionFailed("could not connect to the peer", attempts=a.attempts, cause=cause)
            )


async def connect(
    dht: HyperDht,
    remote_public_key: bytes,
    *,
    keypair: KeyPair | None = None,
    relay_addresses: Sequence[Address | tuple[str, int]] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    lan: bool = True,
    fast_open: bool = True,
    relay_through: RelayThrough = None,
) -> DhtConnection:
    """Connect to the server listening on ``remote_public_key`` (see the module docstring).

    ``lan=False`` skips the same-host/LAN shortcut (JS ``localConnection: false``);
    ``fast_open=False`` skips the early probe of a holepunch (JS ``fastOpen: false``);
    ``relay_through`` names a blind relay (public key, list of keys, or a function giving
    one) to route the connection through while holepunching goes on (JS ``relayThrough``).
    """
    if len(remote_public_key) != 32:
        raise HandshakeError("a HyperDHT public key is 32 bytes", length=len(remote_public_key))
    kp = keypair or getattr(dht, "default_keypair", None) or new_key_pair()
    relays = [a if isinstance(a, Address) else Address(a[0], int(a[1])) for a in relay_addresses or ()]
    if not relays:
        relays = cached_relays(dht, remote_public_key)
    attempt = _Attempt(dht, kp, remote_public_key, lan, fast_open, select_relay(relay_through))
    finder = attempt.loop.create_task(_find_and_connect(attempt, relays, timeout))
    try:
        async with asyncio.timeout(timeout):
            return await asyncio.shield(attempt.connected)
    except TimeoutError:
        raise HolepunchError("connect timed out", timeout=timeout) from None
    finally:
        finder.cancel()
        with contextlib.suppress(asyncio.CancelledError, HyperlobbyError):
            await finder
        await attempt.finish()
        if attempt.connected.done() and not attempt.connected.cancelled():
            attempt.connected.exception()  # retrieved: a late failure is not "never retrieved"


_RELAY_CACHE: weakref.WeakKeyDictionary[HyperDht, OrderedDict[bytes, list[Address]]] = (
    weakref.WeakKeyDictionary()
)


def cached_relays(dht: HyperDht, public_key: bytes) -> list[Address]:
    """Relay addresses that worked for ``public_key`` before (JS ``_relayAddressesCache``)."""
    cache = _RELAY_CACHE.get(dht)
    return list(cache.get(public_key, ())) if cache is not None else []


def _remember_relays(dht: HyperDht, public_key: bytes, relays: list[Address]) -> None:
    if not relays:
        return
    cache = _RELAY_CACHE.get(dht)
    if cache is None:
        cache = _RELAY_CACHE[dht] = OrderedDict()
    cache[public_key] = relays
    cache.move_to_end(public_key)
    while len(cache) > RELAY_CACHE_SIZE:
        cache.popitem(last=False)


def _noise_keys(kp: KeyPair) -> NoiseKeyPair:
    if kp.secret_key is None:
        raise HandshakeError("connecting needs a key pair with a secret key")
    return NoiseKeyPair(kp.public_key, kp.secret_key)


__all__ = [
    "CannotHolepunch",
    "HolepunchAborted",
    "HolepunchFailed",
    "PeerConnectionFailed",
    "PeerNotFound",
    "ServerError",
    "cached_relays",
    "connect",
    "relay_may_help",
]
