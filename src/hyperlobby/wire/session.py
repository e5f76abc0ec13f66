"""One replication connection, sans-IO: protomux plus one :class:`Peer` per replicated core.

Theory of operation
-------------------
A :class:`ReplicationSession` sits on an authenticated secret-stream (it needs only the
stream's role and handshake hash). It owns a protomux :class:`~hyperlobby.wire.protomux.Mux`
and opens one ``hypercore/alpha`` channel per core, keyed by the core's discovery key; the
remote's opens for cores we did not offer are answered by looking the discovery key up with
``resolve`` (the Store), exactly as corestore answers them, or rejected.

Bytes in: :meth:`receive` takes one decrypted message (a protomux frame). Bytes out:
:meth:`data_to_send` returns the frames to encrypt and write, in order. A peer that breaks the
protocol makes :meth:`receive` raise :class:`~hyperlobby.errors.ProtocolError`; the caller then
closes the connection, and :meth:`close` releases every peer so other connections take over
their requests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from hyperlobby.errors import DecodeError, ProtocolError
from hyperlobby.wire.messages import (
    ALIASES,
    HYPERCORE_MESSAGES,
    PROTOCOL,
    Message,
    decode_handshake,
    decode_message,
    encode_handshake,
    encode_message,
)
from hyperlobby.wire.protomux import (
    Channel,
    ChannelClosed,
    ChannelMessage,
    ChannelOpened,
    ChannelRejected,
    Mux,
    MuxEvent,
    RemoteOpenRequest,
)
from hyperlobby.wire.replicator import CoreReplicator, Peer

Resolver = Callable[[bytes], CoreReplicator | None]

FLUSH_EVERY = 16
"""Messages handled between two calls of :attr:`ReplicationSession.on_output`.

A reader that handled a whole read (or a whole batch frame) of answers before writing its next
requests, and a server that did the same with requests, would take turns instead of working at
the same time: handing out what the first messages produced while the rest wait lets the
remote start on it at once."""

FLUSH_BYTES = 64 * 1024
"""A held batch this large is handed out even before :data:`FLUSH_EVERY` messages (large
blocks: the remote decrypts a frame only once all of it arrived)."""

FLUSH_RECEIVED = 256 * 1024
"""Message bytes handled after which what they produced is handed out, even before
:data:`FLUSH_EVERY` messages.

A JS server answers a batch of requests with one batch frame, held back until every answer in
it is ready, and answers requests that queued up meanwhile the same way: a reader of 64 KiB
blocks that sent its requests 16 at a time got 1 MiB frames (up to 8 MiB), each of which has to
arrive whole before it can be decrypted, so the two ends took turns. Requests now leave every
256 KiB of data, and the answers come back in frames a quarter that size (JS server to Python
reader, 4000 x 64 KiB, six alternating pairs: ~7% more blocks/s, ~7% less reader CPU). Small
blocks are unaffected (16 messages come first)."""


class Extension(Protocol):
    """A protocol of our own next to replication on the same connection (e.g. the lobby's
    admission channel). The session pairs ``protocol`` and hands the extension every event of
    its channels; the extension writes with ``session.mux`` and queues the frames with
    :meth:`ReplicationSession.queue`."""

    protocol: str

    def attached(self, session: ReplicationSession) -> None:
        """A connection is up (its session is ready to open channels)."""

    def event(self, session: ReplicationSession, event: MuxEvent) -> None:
        """An event for a channel of ``protocol`` (or a remote open of it)."""

    def detached(self, session: ReplicationSession) -> None:
        """The connection is gone."""


class _ChannelTransport:
    """Adapts one protomux channel to what a :class:`Peer` expects."""

    __slots__ = ("channel", "session")

    def __init__(self, session: ReplicationSession, channel: Channel | None = None) -> None:
        self.session = session
        self.channel = channel

    def send(self, message: Message) -> None:
        ch = self.channel
        if ch is None or ch.closed:
            return
        type_, body = encode_message(message)
        self.session._out.extend(self.session.mux.send(ch, type_, body))

    def cork(self) -> None:
        self.session.mux.cork()

    def uncork(self) -> None:
        self.session._out.extend(self.session.mux.uncork())

    def close(self) -> None:
        ch = self.channel
        if ch is not None and not ch.closed:
            self.session._out.extend(self.session.mux.close(ch))


class ReplicationSession:
    """Replication over one connection (see the module docstring)."""

    def __init__(
        self,
        resolve: Resolver,
        *,
        is_initiator: bool,
        handshake_hash: bytes,
        extensions: Sequence[Extension] = (),
    ) -> None:
        self.resolve = resolve
        self.is_initiator = is_initiator
        self.handshake_hash = handshake_hash
        self.mux = Mux()
        self.mux.pair(PROTOCOL)
        for alias in ALIASES:
            self.mux.pair(alias)
        self.extensions: dict[str, Extension] = {}
        for ext in extensions:
            self.add_extension(ext)
        self._out: list[bytes] = []
        self.peers: dict[bytes, Peer] = {}  # discovery key -> peer
        self.closed = False
        self.on_output: Callable[[], None] | None = None
        """Called every :data:`FLUSH_EVERY` messages to write out what is queued (optional)."""
        self._handled = 0
        self._handled_bytes = 0
        self._held = 0  # cork levels of the mux that belong to this session (see _emit)

    # --- outputs -------------------------------------------------------------------------------

    def data_to_send(self) -> list[bytes]:
        out = self._out
        out.extend(self.mux.data_to_send())
        self._out = []
        return out

    def queue(self, frames: list[bytes]) -> None:
        """Queue frames an extension produced with ``self.mux`` (sent in order with the rest)."""
        self._out.extend(frames)

    def add_extension(self, ext: Extension) -> None:
        self.extensions[ext.protocol] = ext
        self.mux.pair(ext.protocol)

    # --- channels ------------------------------------------------------------------------------

    def open(self, replicator: CoreReplicator) -> Peer:
        """Offer ``replicator``'s core on this connection (idempotent)."""
        dk = replicator.core.discovery_key
        existing = self.peers.get(dk)
        if existing is not None:
            return existing
        transport = _ChannelTransport(self)
        peer = Peer(replicator, transport, is_initiator=self.is_initiator, handshake_hash=self.handshake_hash)
        self.peers[dk] = peer
        channel = self.mux.open_channel(
            PROTOCOL,
            dk,
            encode_handshake(peer.local_handshake()),
            aliases=ALIASES,
            message_types=len(HYPERCORE_MESSAGES),
            user_data=peer,
        )
        transport.channel = channel
        self._handle(self.mux.events())
        return peer

    # --- input ---------------------------------------------------------------------------------

    def receive(self, frame: bytes) -> None:
        """Handle one received protomux frame; raises ProtocolError if the peer broke the rules."""
        if self.closed:
            return
        batched = len(frame) > 0 and frame[0] == 0 and len(frame) > 1 and frame[1] == 0
        if batched:
            # Answer a batch with one batch, as JS does (fewer, larger frames).
            self.hold()
        try:
            self._handle(self.mux.receive(frame))
        finally:
            if batched:
                self.release()

    def hold(self) -> None:
        """Collect what the next messages produce into batch frames until :meth:`release`.

        The TCP connection holds the session for each socket read: the answers to many small
        messages then leave as a few batch frames (one encryption each) instead of one frame
        apiece. :data:`FLUSH_EVERY` still cuts them, so the remote is never kept waiting.
        """
        self.mux.cork()
        self._held += 1

    def release(self) -> None:
        """End one :meth:`hold`; the last one queues the batch."""
        self._held -= 1
        if not self.mux.destroyed:
            self._out.extend(self.mux.uncork())

    def tick(self, now: float) -> None:
        for peer in list(self.peers.values()):
            peer.replicator.tick(now)

    def close(self) -> None:
        """The connection is gone: every peer leaves its core's replicator."""
        if self.closed:
            return
        self.closed = True
        events = self.mux.shutdown()
        for ext in list(self.extensions.values()):
            for event in events:
                if isinstance(event, ChannelClosed) and event.channel.protocol == ext.protocol:
                    ext.event(self, event)
            ext.detached(self)
        for peer in list(self.peers.values()):
            peer.on_close()
        self.peers.clear()

    # --- events --------------------------------------------------------------------------------

    def _handle(self, events: list[MuxEvent]) -> None:
        while events:
            for event in events:
                self._dispatch(event)
                if self.on_output is not None and isinstance(event, ChannelMessage):
                    self._handled += 1
                    self._handled_bytes += len(event.body)
                    if (
                        self._handled >= FLUSH_EVERY
                        or self._handled_bytes >= FLUSH_RECEIVED
                        or self.mux.batched_bytes >= FLUSH_BYTES
                    ):
                        self._handled = 0
                        self._handled_bytes = 0
                        self._emit()
            events = self.mux.events()

    def _emit(self) -> None:
        """Hand what is queued to :attr:`on_output` (a batch being answered is cut in two)."""
        mux = self.mux
        held = self._held
        if mux.destroyed or self.on_output is None or mux.corked != held:
            return  # inside someone else's cork: wait for the next chance
        if held:
            for _ in range(held):
                self._out.extend(mux.uncork())
            for _ in range(held):
                mux.cork()
        self.on_output()

    def _dispatch(self, event: MuxEvent) -> None:
        if self.extensions:
            protocol = event.protocol if isinstance(event, RemoteOpenRequest) else event.channel.protocol
            ext = self.extensions.get(protocol)
            if ext is not None:
                ext.event(self, event)
                return
        if isinstance(event, ChannelMessage):
            peer = event.channel.user_data
            if not isinstance(peer, Peer) or not peer.active:
                return
            try:
                message = decode_message(event.type, event.body)
            except DecodeError as exc:
                raise ProtocolError("malformed hypercore message", type=event.type, reason=str(exc)) from exc
            peer.on_message(message)
        elif isinstance(event, ChannelOpened):
            peer = event.channel.user_data
            if isinstance(peer, Peer):
                try:
                    handshake = decode_handshake(event.remote_handshake)
                except DecodeError as exc:
                    raise ProtocolError("malformed hypercore channel handshake", reason=str(exc)) from exc
                peer.on_open(handshake)
        elif isinstance(event, RemoteOpenRequest):
            replicator = self.resolve(event.id) if event.id is not None and len(event.id) == 32 else None
            if replicator is None or event.id in self.peers:
                self.mux.decline(event)
            else:
                self.open(replicator)
        elif isinstance(event, ChannelRejected | ChannelClosed):
            peer = event.channel.user_data
            if isinstance(peer, Peer):
                self.peers.pop(peer.core.discovery_key, None)
                peer.on_close()
