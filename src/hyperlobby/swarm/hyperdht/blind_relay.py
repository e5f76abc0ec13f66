"""Blind relays: two peers that cannot holepunch meet at a third node that forwards their packets.

Theory of operation
-------------------
This is the ``blind-relay`` protocol of the JS stack (npm ``blind-relay``, used by hyperdht's
``relayThrough``). It is blind because the relay never sees plaintext: the two peers finish
their Noise handshake through the DHT as usual, then each asks the relay to *pair* its UDX
stream with the other's, and the secret stream runs end to end over the relayed path.

**Control.** Each peer opens an ordinary HyperDHT connection to the relay's public key and,
on it, a protomux channel ``blind-relay`` whose id is the peer's own public key (the relay
opens the same channel with the key it sees). Two messages exist, both compact-encoded:

* ``pair`` (type 0): a one-byte flag field (bit 0: ``is_initiator``), a 32-byte token both
  peers learnt from the handshake payload (``relayThrough``), the sender's UDX stream id and
  its initial sequence number (always 0);
* ``unpair`` (type 1): a flag byte (reserved) and the token.

**Pairing.** The relay waits until both ends of a token (one initiator, one not) asked. It
then opens one UDX stream per end, answers each end with ``pair`` carrying the id of *its*
relay stream, and links the two streams: whatever datagram an end sends to its relay stream
is forwarded to the other end, only the stream id in the header rewritten
(:meth:`UdxStream.relay_to`). Each relay stream connects to the first address that sends to
it (its firewall hook), which is where that end's pair request came from, so nothing needs
to be told about addresses. A peer, once paired, connects its own stream to its relay
stream id at the relay's address and starts the secret stream over it.

**Ending.** When either relayed stream closes, or the control channel of a session ends, the
relay destroys the streams of the pairs it made for that session. An ``unpair`` for a pairing
still waiting cancels it; for a made pair it destroys both streams.

The classes here are thin: :class:`RelayChannel` glues one protomux channel to a
:class:`~hyperlobby.swarm.hyperdht.connection.DhtConnection`; :class:`BlindRelayClient` asks
for pairings, :class:`BlindRelayServer` makes them. The relay side of a node (a HyperDHT server
whose connections are relay sessions) is :func:`serve_relay`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from hyperlobby.encoding import compact
from hyperlobby.encoding.compact import State
from hyperlobby.errors import DecodeError, EncodeError, HyperlobbyError, ProtocolError
from hyperlobby.swarm.hyperdht.connection import DhtConnection
from hyperlobby.swarm.udx import UdxSocket, UdxStream
from hyperlobby.wire.protomux import (
    ChannelClosed,
    ChannelMessage,
    ChannelOpened,
    ChannelRejected,
    Mux,
)

if TYPE_CHECKING:
    from hyperlobby.crypto.keys import KeyPair
    from hyperlobby.swarm.hyperdht.dht import HyperDht
    from hyperlobby.swarm.hyperdht.server import Server

log = logging.getLogger(__name__)

PROTOCOL: Final = "blind-relay"
TOKEN_SIZE: Final = 32
PAIR: Final = 0
UNPAIR: Final = 1
PAIR_TIMEOUT: Final = 15.0  # JS gives a relay pairing 15 s
MAX_PAIRS_PER_SESSION: Final = 64  # pairings (waiting or made) one relay connection may hold
UPGRADE_GRACE: Final = 10.0  # a relayed stream that moved to a direct path keeps the relay this long


class RelayError(ProtocolError):
    """A relay pairing failed: the relay went away, refused, or the pairing was cancelled."""


# --- messages ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pair:
    """Ask to pair (peer -> relay), or the answer with the relay's stream (relay -> peer)."""

    is_initiator: bool
    token: bytes
    id: int
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Unpair:
    """Cancel a pairing, or tear down a made pair."""

    token: bytes


def _flags_size(state: State) -> None:
    # JS encodes a bitfield of up to 7 bits as one byte; wider fields start with 0xfd..0xff
    # and a length. Only the first byte's low bit means anything here.
    state.end += 1


def _read_flags(state: State) -> int:
    first = state.take(1)[0]
    if first <= 0xFC:
        return first
    width = {0xFD: 2, 0xFE: 4, 0xFF: 8}[first]
    return state.take(width)[0]


def _check_token(token: bytes) -> None:
    if len(token) != TOKEN_SIZE:
        raise EncodeError("a blind-relay token is 32 bytes", length=len(token))


class _PairCodec:
    def preencode(self, state: State, m: Pair) -> None:
        _flags_size(state)
        state.end += TOKEN_SIZE
        compact.uint.preencode(state, m.id)
        compact.uint.preencode(state, m.seq)

    def encode(self, state: State, m: Pair) -> None:
        _check_token(m.token)
        state.put(b"\x01" if m.is_initiator else b"\x00")
        state.put(m.token)
        compact.uint.encode(state, m.id)
        compact.uint.encode(state, m.seq)

    def decode(self, state: State) -> Pair:
        flags = _read_flags(state)
        token = state.take(TOKEN_SIZE)
        return Pair(bool(flags & 1), token, compact.uint.decode(state), compact.uint.decode(state))


class _UnpairCodec:
    def preencode(self, state: State, m: Unpair) -> None:
        _flags_size(state)
        state.end += TOKEN_SIZE

    def encode(self, state: State, m: Unpair) -> None:
        _check_token(m.token)
        state.put(b"\x00")
        state.put(m.token)

    def decode(self, state: State) -> Unpair:
        _read_flags(state)
        return Unpair(state.take(TOKEN_SIZE))


pair: Final = _PairCodec()
unpair: Final = _UnpairCodec()


def new_token() -> bytes:
    """A fresh random pairing token."""
    return os.urandom(TOKEN_SIZE)


# --- one channel on one connection ---------------------------------------------------------------


class RelayChannel:
    """The ``blind-relay`` protomux channel on one connection, both ways.

    Frames arriving on the connection go through the mux; decoded ``pair``/``unpair``
    messages go to ``on_pair``/``on_unpair``. ``on_close`` runs once, when the channel or the
    connection ends. A peer that sends garbage loses the connection, not us.
    """

    def __init__(
        self,
        conn: DhtConnection,
        channel_id: bytes,
        *,
        on_pair: Callable[[Pair], None],
        on_unpair: Callable[[Unpair], None] = lambda _m: None,
        on_close: Callable[[HyperlobbyError | None], None] = lambda _e: None,
    ) -> None:
        self.conn = conn
        self.mux = Mux()
        self.opened = False
        self.closed = False
        self._on_pair = on_pair
        self._on_unpair = on_unpair
        self._on_close = on_close
        self.channel = self.mux.open_channel(PROTOCOL, channel_id, message_types=2)
        self._flush()
        conn.set_receiver(self._on_frame, self._on_conn_closed)

    def send_pair(self, message: Pair) -> None:
        self._send(PAIR, compact.encode(pair, message))

    def send_unpair(self, message: Unpair) -> None:
        self._send(UNPAIR, compact.encode(unpair, message))

    def close(self) -> None:
        """Close the channel (the connection stays: the caller owns it)."""
        if self.closed:
            return
        if not self.conn.closed.done():
            self._write(self.mux.close(self.channel))
        self._closed(None)

    def _send(self, type_: int, body: bytes) -> None:
        if not self.closed:
            self._write(self.mux.send(self.channel, type_, body))

    def _flush(self) -> None:
        self._write(self.mux.data_to_send())

    def _write(self, frames: list[bytes]) -> None:
        if self.conn.closed.done():
            return
        for frame in frames:
            self.conn.send(frame)

    def _on_frame(self, frame: bytes) -> None:
        if self.closed:
            return
        try:
            events = self.mux.receive(frame)
        except ProtocolError as err:
            self.conn.close(err)
            return
        self._flush()
        for event in events:
            if isinstance(event, ChannelOpened) and event.channel is self.channel:
                self.opened = True
            elif isinstance(event, ChannelMessage) and event.channel is self.channel:
                try:
                    if event.type == PAIR:
                        message = compact.decode(pair, event.body)
                        if message.id > 0xFFFFFFFF:
                            raise DecodeError("a UDX stream id is a uint32", id=message.id)
                        self._on_pair(message)
                    elif event.type == UNPAIR:
                        self._on_unpair(compact.decode(unpair, event.body))
                except DecodeError as err:
                    self.conn.close(ProtocolError("bad blind-relay message", cause=str(err)))
                    return
                except HyperlobbyError as err:  # what the message asked for cannot be done
                    self.conn.close(err)
                    return
            elif isinstance(event, ChannelClosed | ChannelRejected) and event.channel is self.channel:
                self._closed(RelayError("blind-relay channel closed"))
            if self.closed:
                return

    def _on_conn_closed(self, error: HyperlobbyError | None) -> None:
        self._closed(error or RelayError("relay connection closed"))

    def _closed(self, error: HyperlobbyError | None) -> None:
        if self.closed:
            return
        self.closed = True
        self._on_close(error)


# --- the peer's side -----------------------------------------------------------------------------


class BlindRelayClient:
    """Asks a relay for pairings over one connection to it (JS ``relay.Client``)."""

    def __init__(self, conn: DhtConnection) -> None:
        self.conn = conn
        self._waiting: dict[bytes, tuple[bool, asyncio.Future[int]]] = {}
        self.error: HyperlobbyError | None = None
        self.channel = RelayChannel(conn, conn.public_key, on_pair=self._on_pair, on_close=self._on_close)

    async def pair(
        self, is_initiator: bool, token: bytes, stream_id: int, *, timeout: float = PAIR_TIMEOUT
    ) -> int:
        """Ask to pair our stream ``stream_id`` under ``token``; returns the id of the relay's
        stream for us, once the other end asked too. Raises :class:`RelayError`."""
        if self.channel.closed:
            raise self.error or RelayError("relay channel closed")
        if token in self._waiting:
            raise RelayError("already pairing with this token")
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting[token] = (is_initiator, fut)
        try:
            self.channel.send_pair(Pair(is_initiator, token, stream_id, 0))
            async with asyncio.timeout(timeout):
                return await fut
        except TimeoutError:
            raise RelayError("relay pairing timed out", timeout=timeout) from None
        finally:
            self._waiting.pop(token, None)

    def unpair(self, token: bytes) -> None:
        waiting = self._waiting.pop(token, None)
        if waiting is not None and not waiting[1].done():
            waiting[1].set_exception(RelayError("pairing cancelled"))
        self.channel.send_unpair(Unpair(token))

    def close(self) -> None:
        self.channel.close()

    def _on_pair(self, message: Pair) -> None:
        waiting = self._waiting.get(message.token)
        if waiting is None or waiting[0] != message.is_initiator or waiting[1].done():
            return
        waiting[1].set_result(message.id)

    def _on_close(self, error: HyperlobbyError | None) -> None:
        self.error = error or RelayError("relay channel closed")
        for _initiator, fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(self.error)


RelayThrough = bytes | Sequence[bytes] | Callable[[], "bytes | None"] | None
"""What ``relay_through`` options take, as in JS: a relay's public key, a list to pick one
from at random, or a function returning one (or None for no relay this time)."""


def select_relay(relay_through: RelayThrough) -> bytes | None:
    """The relay to use for one connection (JS ``selectRelay``)."""
    if callable(relay_through):
        relay_through = relay_through()
    if relay_through is None:
        return None
    if isinstance(relay_through, bytes | bytearray):
        key = bytes(relay_through)
    else:
        keys = list(relay_through)
        if not keys:
            return None
        key = bytes(random.choice(keys))
    if len(key) != 32:
        raise EncodeError("a relay is named by its 32-byte public key", length=len(key))
    return key


class RelayPath:
    """One connection's use of a blind relay: our stream paired there, and later perhaps
    replaced by a direct path (as hyperdht does: holepunching goes on while relayed).

    :meth:`pair` connects to the relay and returns where our stream must connect. Once it is
    connected there, :meth:`attach` lets a direct path take over: a packet for the stream from
    any other path moves the stream there (:meth:`upgrade`), as does the caller's own punch
    succeeding. After a move, packets still coming through the relay are taken too, and the
    relay connection is closed :data:`UPGRADE_GRACE` seconds later, by which time the peer has
    seen our packets on the direct path and moved as well. Closing the stream closes the
    relay connection.
    """

    def __init__(self, dht: HyperDht, relay_key: bytes, token: bytes, is_initiator: bool) -> None:
        self.dht = dht
        self.relay_key = relay_key
        self.token = token
        self.is_initiator = is_initiator
        self.conn: DhtConnection | None = None
        self.client: BlindRelayClient | None = None
        self.relay_path: tuple[UdxSocket, str, int] | None = None
        self.stream: UdxStream | None = None
        self.remote_id = 0
        self.upgraded = False
        self.closed = False
        self._close_timer: asyncio.TimerHandle | None = None

    async def pair(
        self, stream: UdxStream, *, timeout: float = PAIR_TIMEOUT
    ) -> tuple[UdxSocket, str, int, int]:
        """Pair ``stream`` at the relay: (socket, host, port, remote stream id) to connect it
        to. Raises :class:`RelayError` (or the connect error) on failure."""
        async with asyncio.timeout(timeout):
            conn = await self.dht.connect(self.relay_key, timeout=timeout)
            self.conn = conn
            if self.closed:
                conn.close()
                raise RelayError("relay path closed")
            self.client = BlindRelayClient(conn)
            remote_id = await self.client.pair(self.is_initiator, self.token, stream.id, timeout=timeout)
        udx = conn.udx_stream
        socket, address = udx.socket, udx.remote_address
        if socket is None or address is None or self.closed:
            raise RelayError("relay connection went away")
        self.relay_path = (socket, address[0], address[1])
        return socket, address[0], address[1], remote_id

    def attach(self, stream: UdxStream, remote_id: int) -> None:
        """``stream`` now runs through the relay: follow a direct path when one shows up."""
        self.stream = stream
        self.remote_id = remote_id
        stream.on_new_path = self._on_new_path
        stream.closed.add_done_callback(lambda _f: self.close())

    def is_relay(self, socket: UdxSocket, host: str, port: int) -> bool:
        return self.relay_path == (socket, host, port)

    def upgrade(self, socket: UdxSocket, host: str, port: int, remote_id: int | None = None) -> None:
        """Move the stream to a direct path (``remote_id``: the peer's stream id, unchanged by
        default). Once only; the relay connection closes after the grace period."""
        stream = self.stream
        if stream is None or self.upgraded or self.closed or stream.closed.done():
            return
        if self.is_relay(socket, host, port):
            return
        self.upgraded = True
        stream.change_remote(self.remote_id if remote_id is None else remote_id, host, port, socket)
        with contextlib.suppress(HyperlobbyError):
            stream.send_message(b"")  # so the peer sees the direct path at once (JS does too)
        self._close_timer = asyncio.get_running_loop().call_later(UPGRADE_GRACE, self.close)

    def _on_new_path(self, socket: UdxSocket, host: str, port: int) -> bool:
        if self.closed:
            return False
        if not self.is_relay(socket, host, port):
            self.upgrade(socket, host, port)
        return True

    def close(self) -> None:
        """Stop using the relay (the stream, if it moved, carries on)."""
        if self.closed:
            return
        self.closed = True
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if self.stream is not None and self.stream.on_new_path == self._on_new_path:
            self.stream.on_new_path = None  # from now on only the stream's own path counts
        if self.client is not None:
            self.client.close()
        if self.conn is not None:
            self.conn.close()


# --- the relay's side ----------------------------------------------------------------------------

CreateStream = Callable[[Callable[[UdxSocket, str, int], bool]], UdxStream]


@dataclass
class RelayStats:
    """Counters in the shape of JS ``server.stats`` (cumulative; ``active`` ones are current)."""

    sessions_accepted: int = 0
    sessions_closed: int = 0
    pairings_requested: int = 0
    pairings_matched: int = 0
    pairings_cancelled: int = 0
    pairings_pending: int = 0
    streams_opened: int = 0
    streams_closed: int = 0

    @property
    def sessions_active(self) -> int:
        return self.sessions_accepted - self.sessions_closed

    @property
    def streams_active(self) -> int:
        return self.streams_opened - self.streams_closed


class _Link:
    """One end of a made pair: the relay's stream for one peer."""

    def __init__(self, session: _Session, is_initiator: bool, remote_id: int) -> None:
        self.session = session
        self.is_initiator = is_initiator
        self.remote_id = remote_id
        self.stream: UdxStream | None = None
        self.other: _Link | None = None
        self.token: bytes | None = None  # set once paired

    def firewall(self, socket: UdxSocket, host: str, port: int) -> bool:
        """The first packet to our stream says where the peer is: connect there."""
        stream = self.stream
        if stream is None or not 0 < port < 65536:
            return True
        stream.connect(self.remote_id, host, port, socket)
        return False

    def destroy(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            stream.destroy(notify=False)  # the peers' streams are theirs to end


@dataclass
class _Pairing:
    token: bytes
    links: list[_Link | None] = field(default_factory=lambda: [None, None])

    @property
    def complete(self) -> bool:
        return self.links[0] is not None and self.links[1] is not None


class _Session:
    """One peer's control connection to the relay."""

    def __init__(self, server: BlindRelayServer, conn: DhtConnection, channel_id: bytes) -> None:
        self.server = server
        self.conn = conn
        self.pending: set[bytes] = set()  # tokens this session asked for, not yet paired
        self.links: dict[bytes, _Link] = {}
        self.channel = RelayChannel(
            conn, channel_id, on_pair=self._on_pair, on_unpair=self._on_unpair, on_close=self._on_close
        )

    def _on_pair(self, message: Pair) -> None:
        server = self.server
        if len(self.pending) + len(self.links) >= server.max_pairs_per_session:
            # Each pairing holds memory and, once made, two streams: a peer asking for more
            # than any honest one needs is cut off (JS sets no bound).
            self.conn.close(
                RelayError("too many relay pairings on one connection", limit=server.max_pairs_per_session)
            )
            return
        pairing = server._pairings.get(message.token)
        if pairing is None:
            if message.token in server._made:
                return  # already paired under this token
            pairing = server._pairings[message.token] = _Pairing(message.token)
            server.stats.pairings_pending += 1
        elif pairing.links[message.is_initiator] is not None:
            return  # this end already asked
        self.pending.add(message.token)
        server.stats.pairings_requested += 1
        pairing.links[message.is_initiator] = _Link(self, message.is_initiator, message.id)
        if pairing.complete:
            server._match(pairing)

    def _on_unpair(self, message: Unpair) -> None:
        server = self.server
        pairing = server._pairings.pop(message.token, None)
        if pairing is not None:
            for link in pairing.links:
                if link is not None:
                    link.session.pending.discard(message.token)
            server.stats.pairings_pending -= 1
            server.stats.pairings_cancelled += 1
            return
        link = self.links.get(message.token)
        if link is not None:
            server._unlink(link)
            server.stats.pairings_cancelled += 1

    def _on_close(self, _error: HyperlobbyError | None) -> None:
        server = self.server
        for token in list(self.pending):
            pairing = server._pairings.get(token)
            if pairing is not None and any(
                link is not None and link.session is self for link in pairing.links
            ):
                del server._pairings[token]
                server.stats.pairings_pending -= 1
                server.stats.pairings_cancelled += 1
        self.pending.clear()
        for link in list(self.links.values()):
            server._unlink(link)
        server._sessions.discard(self)
        server.stats.sessions_closed += 1


class BlindRelayServer:
    """Makes pairings for the sessions it accepts (JS ``relay.Server``).

    ``create_stream(firewall)`` makes a fresh unconnected UDX stream whose firewall hook is
    ``firewall``; relayed traffic flows through whatever socket that stream is reached on.
    """

    def __init__(
        self, create_stream: CreateStream, *, max_pairs_per_session: int = MAX_PAIRS_PER_SESSION
    ) -> None:
        self._create_stream = create_stream
        self.max_pairs_per_session = max_pairs_per_session
        self._pairings: dict[bytes, _Pairing] = {}
        self._made: dict[bytes, tuple[_Link, _Link]] = {}
        self._sessions: set[_Session] = set()
        self.stats = RelayStats()

    def accept(self, conn: DhtConnection, channel_id: bytes | None = None) -> None:
        """Serve relay requests on ``conn`` (the channel id defaults to the peer's public key,
        which is what a JS or Python client uses)."""
        session = _Session(self, conn, channel_id if channel_id is not None else conn.remote_public_key)
        self._sessions.add(session)
        self.stats.sessions_accepted += 1

    def close(self) -> None:
        """Tear down every pairing and session."""
        self._pairings.clear()
        for session in list(self._sessions):
            session.channel.close()
            session._on_close(None)

    def _match(self, pairing: _Pairing) -> None:
        del self._pairings[pairing.token]
        self.stats.pairings_pending -= 1
        self.stats.pairings_matched += 1
        initiator, responder = pairing.links[1], pairing.links[0]
        assert initiator is not None and responder is not None
        try:
            for link in (initiator, responder):
                link.stream = self._create_stream(link.firewall)
                self.stats.streams_opened += 1
        except HyperlobbyError as err:  # our socket is gone: the peers time out and go elsewhere
            log.debug("relay could not open streams: %r", err)
            for link in (initiator, responder):
                if link.stream is not None:
                    self.stats.streams_closed += 1
                link.destroy()
                link.session.pending.discard(pairing.token)
            return
        initiator.other, responder.other = responder, initiator
        assert initiator.stream is not None and responder.stream is not None
        initiator.stream.relay_to(responder.stream)
        responder.stream.relay_to(initiator.stream)
        self._made[pairing.token] = (initiator, responder)
        for link in (initiator, responder):
            link.token = pairing.token
            stream = link.stream
            assert stream is not None
            stream.closed.add_done_callback(self._unlinker(link))
            link.session.pending.discard(pairing.token)
            link.session.links[pairing.token] = link
            link.session.channel.send_pair(Pair(link.is_initiator, pairing.token, stream.id, 0))

    def _unlinker(self, link: _Link) -> Callable[[object], None]:
        return lambda _f: self._unlink(link)

    def _unlink(self, link: _Link) -> None:
        """Destroy a made pair (both streams) and forget it."""
        token = link.token
        made = self._made.get(token) if token is not None else None
        if token is None or made is None or link not in made:
            return
        del self._made[token]
        for end in made:
            end.session.links.pop(token, None)
            if end.stream is not None:
                self.stats.streams_closed += 1
            end.destroy()


# --- a node that relays -------------------------------------------------------------------------


@dataclass
class RelayNode:
    """A HyperDHT server whose every connection is a relay session (see :func:`serve_relay`)."""

    server: Server
    relay: BlindRelayServer

    @property
    def public_key(self) -> bytes:
        key = self.server.public_key
        assert key is not None
        return key

    async def close(self) -> None:
        self.relay.close()
        await self.server.close()


async def serve_relay(dht: HyperDht, keypair: KeyPair | None = None) -> RelayNode:
    """Relay for anyone who connects to ``keypair``'s public key on ``dht``; peers name that
    key as their ``relay_through``."""
    from hyperlobby.swarm.hyperdht.server import create_server

    def create_stream(firewall: Callable[[UdxSocket, str, int], bool]) -> UdxStream:
        return dht.node.socket.create_stream(firewall=firewall)

    relay = BlindRelayServer(create_stream)
    server = create_server(dht, on_connection=relay.accept)
    await server.listen(keypair)
    return RelayNode(server, relay)


__all__ = [
    "PROTOCOL",
    "BlindRelayClient",
    "BlindRelayServer",
    "Pair",
    "RelayChannel",
    "RelayError",
    "RelayNode",
    "RelayPath",
    "RelayStats",
    "RelayThrough",
    "Unpair",
    "new_token",
    "pair",
    "select_relay",
    "serve_relay",
    "unpair",
]
