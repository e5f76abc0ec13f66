"""Protomux 3 channel multiplexing, sans-IO.

Theory of operation
-------------------
One :class:`Mux` sits on one message-oriented connection (in practice a secret-stream). It
never touches a socket: the caller hands every received frame to :meth:`Mux.receive`, which
returns what happened as events, and writes to the transport whatever :meth:`Mux.data_to_send`
returns. Every frame the mux produces — opens, messages, batches, closes and the rejects it
sends on its own while receiving — goes into **one ordered outbox**, because order matters on
the wire: a message written before its channel's open is silently dropped by the peer. For
convenience :meth:`Mux.send`, :meth:`Mux.close` and :meth:`Mux.uncork` return the drained
outbox, so "write what the call returned" is always correct; after :meth:`Mux.open_channel`,
:meth:`Mux.receive` or :meth:`Mux.decline` call :meth:`Mux.data_to_send`.

Events likewise go into one queue. :meth:`Mux.receive` returns it drained; opening a channel
that answers a remote open produces events too (the channel opens at once and frames the peer
sent early are delivered), and those are fetched with :meth:`Mux.events`.

Channel ids. Each side numbers its own channels from 1 and reuses ids of closed channels (last
freed first). An id is reused only after the peer has acknowledged the channel (with its own
open, or a reject), so a late frame can never be confused with a new channel. The remote's ids
are tracked in a separate table; a remote open may use a new id only one above the highest
seen, or a free slot. Anything else is fatal, as in JS.

Pairing. JS calls a registered async handler for remote opens nobody asked for. Here that is an
event instead: :meth:`Mux.pair` registers interest in a protocol (optionally a specific id), and
a matching remote open yields :class:`RemoteOpenRequest`. The application answers it either by
calling :meth:`Mux.open_channel` for the same ``(protocol, id)`` — which claims the waiting open
and opens the channel immediately — or by :meth:`Mux.decline`, which sends the reject. A remote
open matching no registration is rejected on the spot. Frames the peer sends on a channel that
is still waiting are buffered; past 32 KiB (each frame counted as 512 + its size, as JS does)
:attr:`Mux.paused` turns true and the transport should stop reading until the application
answers; a peer that keeps going past ``max_buffered`` is cut off with :class:`ProtocolError`.

Batches. Between :meth:`Mux.cork` and :meth:`Mux.uncork`, messages and control frames are
collected and written as one batch frame with the same layout, separators and 8 MiB split
point as JS. Received batches are unpacked transparently. Like JS, a received batch of several
entries corks the mux while it is processed, so rejects sent meanwhile leave as one batch; JS
also keeps its application replies in that batch, which a caller can mirror by corking while it
handles the events when :attr:`Mux.received_batch` is set (framing only: either way is valid).

Fatal peer behaviour raises :class:`ProtocolError` from :meth:`Mux.receive` and marks the mux
destroyed; events that the frame caused before its fatal part stay queued (:meth:`Mux.events`,
as JS has already acted on them), and the caller closes the transport and may call
:meth:`Mux.shutdown` to learn which channels closed. Unknown channels, unknown control types
and message types beyond a channel's declared count are ignored, as in JS.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from hyperlobby.core.proofs import record_builder
from hyperlobby.encoding import compact as c
from hyperlobby.encoding.compact import State, uint_bytes, uint_size
from hyperlobby.errors import DecodeError, HyperlobbyError, ProtocolError

MAX_BUFFERED: Final = 32768
"""Buffered bytes (512 + size per frame) beyond which the mux asks to pause reading (JS value)."""
MAX_BATCH: Final = 8 * 1024 * 1024
"""A batch under construction is flushed once it holds this many bytes (JS value)."""
BUFFERED_OVERHEAD: Final = 512
MAX_BATCH_DEPTH: Final = 32
"""Batches nested inside batches: legal, never produced by JS, and bounded here to avoid recursion."""

_CONTROL_BATCH = 0
_CONTROL_OPEN = 1
_CONTROL_REJECT = 2
_CONTROL_CLOSE = 3


class MuxUsageError(HyperlobbyError):
    """The local application misused the mux (duplicate channel, unbalanced uncork, ...)."""


class Channel:
    """One end of a protomux channel. Identity matters: events refer to this object.

    ``local_id`` is our id (what we put in frames), ``remote_id`` the peer's; both are 0 once the
    channel is closed. ``remote_handshake`` is the peer's open payload once the channel opened.
    """

    __slots__ = (
        "_info",
        "_mux",
        "aliases",
        "closed",
        "handshake",
        "id",
        "local_id",
        "message_types",
        "opened",
        "protocol",
        "remote_handshake",
        "remote_id",
        "user_data",
    )

    def __init__(
        self,
        mux: Mux,
        info: _Info,
        protocol: str,
        id: bytes | None,
        handshake: bytes,
        aliases: tuple[str, ...],
        message_types: int | None,
        user_data: Any,
    ) -> None:
        self._mux = mux
        self._info = info
        self.protocol = protocol
        self.id = id
        self.handshake = handshake
        self.aliases = aliases
        self.message_types = message_types
        self.user_data = user_data
        self.local_id = 0
        self.remote_id = 0
        self.opened = False
        self.closed = False
        self.remote_handshake: bytes | None = None

    def __repr__(self) -> str:
        ident = self.id.hex()[:16] if self.id else ""
        state = "closed" if self.closed else "open" if self.opened else "opening"
        return f"<Channel {self.protocol}#{ident} local={self.local_id} remote={self.remote_id} {state}>"


# --- events ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelOpened:
    """Both sides have opened ``channel``; ``remote_handshake`` is the peer's open payload."""

    channel: Channel
    remote_handshake: bytes


@dataclass(frozen=True, slots=True)
class ChannelRejected:
    """The peer refused our open of ``channel``; the channel is closed."""

    channel: Channel


@dataclass(frozen=True, slots=True)
class ChannelClosed:
    """The peer closed ``channel`` (or :meth:`Mux.shutdown` closed it). Local closes emit nothing."""

    channel: Channel


@dataclass(frozen=True, slots=True)
class ChannelMessage:
    """Message ``type`` with ``body`` (undecoded) arrived on ``channel``."""

    channel: Channel
    type: int
    body: bytes


_channel_message = record_builder(ChannelMessage)  # one per message received: built fast


@dataclass(frozen=True, slots=True)
class RemoteOpenRequest:
    """The peer opened ``(protocol, id)`` and a :meth:`Mux.pair` registration matches.

    Answer with :meth:`Mux.open_channel` (accept) or :meth:`Mux.decline` (reject).
    """

    protocol: str
    id: bytes | None
    handshake: bytes
    remote_id: int
    token: int


MuxEvent = ChannelOpened | ChannelRejected | ChannelClosed | ChannelMessage | RemoteOpenRequest


# --- internal bookkeeping ---------------------------------------------------------------------------


def _key(protocol: str, id: bytes | None) -> str:
    # Same key shape as JS; an empty id counts as no id there too.
    return protocol + "##" + (id.hex() if id else "")


class _Info:
    """Per ``(protocol, id)`` state: open count, our unacknowledged opens, waiting remote opens."""

    __slots__ = ("alias_keys", "id", "incoming", "key", "opened", "outgoing", "protocol")

    def __init__(self, key: str, protocol: str, id: bytes | None) -> None:
        self.key = key
        self.protocol = protocol
        self.id = id
        self.alias_keys: list[str] = []
        self.opened = 0
        self.incoming: list[int] = []
        self.outgoing: list[int] = []


class _Remote:
    """A slot of the remote id table: the peer's open, and frames buffered until we answer."""

    __slots__ = ("channel", "handshake", "pending", "token")

    def __init__(self, handshake: bytes, pending: list[tuple[int, bytes]] | None, token: int) -> None:
        self.handshake = handshake
        self.pending = pending
        self.channel: Channel | None = None
        self.token = token


# --- the mux ------------------------------------------------------------------------------------


class Mux:
    """Sans-IO protomux for one connection. See the module docstring for the model."""

    def __init__(self, *, max_buffered: int = 1 << 20, max_pending_opens: int = 4096) -> None:
        self.max_buffered = max_buffered
        self.max_pending_opens = max_pending_opens
        self.corked = 0
        self.destroyed = False
        self._outbox: list[bytes] = []
        self._events: list[MuxEvent] = []
        self._local: list[Channel | None] = []
        self._free: list[int] = []
        self._remote: list[_Remote | None] = []
        self._infos: dict[str, _Info] = {}
        self._pairs: set[str] = set()
        self._buffered = 0
        self._pending_opens = 0
        self._tokens = itertools.count(1)
        self._batch: list[tuple[int, bytes]] | None = None
        self._batch_size = 0
        self._receive_corks = 0
        self.received_batch = False
        """True if the last received frame was a batch of several entries. JS peers answer those
        with one batch; a caller wanting the same framing corks while handling the events."""

    # -- queries ---------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Channel]:
        """The channels that hold a local id (open or opening)."""
        return (ch for ch in self._local if ch is not None)

    @property
    def paused(self) -> bool:
        """True while more than 32 KiB of early frames wait for the application to answer an open."""
        return self._buffered > MAX_BUFFERED

    @property
    def buffered(self) -> int:
        return self._buffered

    def is_idle(self) -> bool:
        return len(self._local) == len(self._free)

    def opened(self, protocol: str, id: bytes | None = None) -> bool:
        info = self._infos.get(_key(protocol, id))
        return info is not None and info.opened > 0

    # -- outputs ---------------------------------------------------------------------------------

    def data_to_send(self) -> list[bytes]:
        """Drain the outbox: the frames to write, in order."""
        out, self._outbox = self._outbox, []
        return out

    def events(self) -> list[MuxEvent]:
        """Drain the event queue."""
        out, self._events = self._events, []
        return out

    # -- pairing ---------------------------------------------------------------------------------

    def pair(self, protocol: str, id: bytes | None = None) -> None:
        """Turn remote opens of ``protocol`` (with ``id``, or any id if None) into events."""
        self._pairs.add(_key(protocol, id))

    def unpair(self, protocol: str, id: bytes | None = None) -> None:
        self._pairs.discard(_key(protocol, id))

    def decline(self, request: RemoteOpenRequest) -> None:
        """Reject a remote open we were told about, unless it was claimed meanwhile."""
        rid = request.remote_id - 1
        slot = self._remote[rid] if 0 <= rid < len(self._remote) else None
        if slot is None or slot.token != request.token or slot.channel is not None:
            return
        info = self._infos.get(_key(request.protocol, request.id))
        if info is not None and request.remote_id in info.incoming:
            info.incoming.remove(request.remote_id)
            self._reject(request.remote_id)
            self._gc(info)

    # -- channels --------------------------------------------------------------------------------

    def open_channel(
        self,
        protocol: str,
        id: bytes | None = None,
        handshake: bytes = b"",
        *,
        aliases: Sequence[str] = (),
        message_types: int | None = None,
        unique: bool = True,
        user_data: Any = None,
    ) -> Channel:
        """Create and open a channel; its open frame goes to the outbox.

        If the peer already opened ``(protocol, id)`` and is waiting for an answer, the channel
        claims that open and is open at once (:class:`ChannelOpened` and any early messages are
        queued; see :meth:`events`). ``message_types`` is the number of declared message types:
        received types at or above it are dropped, as JS drops them (None keeps them all).
        """
        info = self._get(protocol, id, aliases)
        if unique and info.opened > 0:
            raise MuxUsageError("channel already open", protocol=protocol, id=id)
        ch = Channel(self, info, protocol, id, handshake, tuple(aliases), message_types, user_data)
        remote_id = 0
        if info.incoming:
            remote_id = info.incoming.pop(0)
            slot = self._remote[remote_id - 1]
            if slot is None:  # pragma: no cover - incoming ids always have a slot
                remote_id = 0
            else:
                self._pending_opens -= 1
                ch.remote_id = remote_id
                slot.channel = ch
        self._send_open(ch)
        if remote_id:
            self._fully_open(ch)
        return ch

    def send(self, channel: Channel, type: int, body: bytes) -> list[bytes]:
        """Send message ``type`` on ``channel``; returns the drained outbox.

        Sending on a closed channel does nothing (JS returns false); while corked the message
        joins the batch and usually nothing is returned yet.
        """
        self._check_owner(channel)
        if not channel.closed:
            if type < 0:
                raise MuxUsageError("message type must be non-negative", type=type)
            if self._batch is not None:
                self._push_batch(channel.local_id, uint_bytes(type) + bytes(body))
            else:
                self._outbox.append(uint_bytes(channel.local_id) + uint_bytes(type) + bytes(body))
        return self.data_to_send()

    def close(self, channel: Channel) -> list[bytes]:
        """Close ``channel`` (sends ``close``); returns the drained outbox."""
        self._check_owner(channel)
        if not channel.closed:
            frame = b"\x00\x03" + uint_bytes(channel.local_id)
            self._close(channel)
            self._write_control(frame)
        return self.data_to_send()

    @property
    def batched_bytes(self) -> int:
        """Size of the batch being collected while corked (0 when not corked)."""
        return self._batch_size if self._batch else 0

    def cork(self) -> None:
        """Start (or nest) collecting frames into one batch."""
        self.corked += 1
        if self.corked == 1:
            self._batch = []
            self._batch_size = 1

    def uncork(self) -> list[bytes]:
        """End one cork level; at the outermost, the batch frame is queued. Returns the outbox."""
        if self.corked == 0:
            raise MuxUsageError("uncork without cork")
        self._uncork()
        return self.data_to_send()

    def _uncork(self) -> None:
        self.corked -= 1
        if self.corked == 0:
            batch, self._batch = self._batch, None
            if batch:
                self._send_batch(batch)

    def shutdown(self) -> list[MuxEvent]:
        """The connection is gone: close every channel. Returns the queued events."""
        self.destroyed = True
        for ch in list(self._local):
            if ch is not None and not ch.closed:
                self._close(ch)
                self._events.append(ChannelClosed(ch))
        return self.events()

    # -- receiving -------------------------------------------------------------------------------

    def receive(self, frame: bytes | bytearray | memoryview) -> list[MuxEvent]:
        """Process one received frame; returns the queued events (frames may await in the outbox).

        Raises :class:`ProtocolError` for anything JS treats as fatal; the mux is then destroyed.
        """
        if self.destroyed:
            raise ProtocolError("mux is destroyed")
        self.received_batch = False
        if len(frame) > 0:
            state = State(bytes(frame))
            try:
                self._decode(c.uint.decode(state), state, 0)
            except DecodeError as exc:
                self.destroyed = True
                raise ProtocolError("malformed protomux frame", reason=str(exc)) from exc
            except ProtocolError:
                self.destroyed = True
                raise
            finally:
                while self._receive_corks:
                    self._receive_corks -= 1
                    self._uncork()
        return self.events()

    def _decode(self, remote_id: int, state: State, depth: int) -> None:
        type_ = c.uint.decode(state)
        if remote_id == 0:
            self._on_control(type_, state, depth)
            return
        slot = self._remote[remote_id - 1] if remote_id <= len(self._remote) else None
        if slot is None:
            return  # closed or unknown: normal when frames cross a close
        body = bytes(state.buffer[state.start : state.end])
        if slot.pending is not None:
            slot.pending.append((type_, body))
            self._buffered += BUFFERED_OVERHEAD + len(body)
            if self._buffered > self.max_buffered:
                raise ProtocolError(
                    "peer sent too much on channels we have not opened", buffered=self._buffered
                )
            return
        if slot.channel is not None:
            self._deliver(slot.channel, type_, body)

    def _deliver(self, ch: Channel, type_: int, body: bytes) -> None:
        if ch.message_types is None or type_ < ch.message_types:
            self._events.append(_channel_message(ch, type_, body))

    def _on_control(self, type_: int, state: State, depth: int) -> None:
        if type_ == _CONTROL_BATCH:
            self._on_batch(state, depth + 1)
        elif type_ == _CONTROL_OPEN:
            self._on_open(state)
        elif type_ == _CONTROL_REJECT:
            self._on_reject(state)
        elif type_ == _CONTROL_CLOSE:
            self._on_close(state)
        # other control types are ignored, as in JS

    def _on_batch(self, state: State, depth: int) -> None:
        if depth > MAX_BATCH_DEPTH:
            raise ProtocolError("batches nested too deeply", depth=depth)
        end = state.end
        remote_id = c.uint.decode(state)
        corked = False
        while state.end > state.start:
            length = c.uint.decode(state)
            if length == 0:
                remote_id = c.uint.decode(state)
                continue
            state.end = min(state.start + length, end)
            if state.end != end and not corked:
                # Several entries: like JS, answer them (e.g. rejects) with one batch.
                corked = True
                self.received_batch = True
                self._receive_corks += 1
                self.cork()
            self._decode(remote_id, state, depth)
            state.start = state.end
            state.end = end

    def _on_open(self, state: State) -> None:
        remote_id = c.uint.decode(state)
        protocol = c.buffer.decode(state).decode("utf-8", errors="replace")
        id = c.optional_buffer.decode(state)
        if remote_id == 0:
            # JS tries to reject id 0 but fails doing so and tears the connection down.
            raise ProtocolError("open with channel id 0")
        rid = remote_id - 1
        if rid == len(self._remote):
            self._remote.append(None)
        if rid >= len(self._remote) or self._remote[rid] is not None:
            raise ProtocolError("Invalid open message", remote_id=remote_id)
        handshake = bytes(state.buffer[state.start : state.end])
        info = self._get(protocol, id)

        if info.outgoing:
            local_id = info.outgoing.pop(0)
            ch = self._local[local_id - 1]
            if ch is None:
                # We closed it before the peer's open arrived; the id is free only now.
                self._free.append(local_id - 1)
                self._gc(info)
                return
            slot = _Remote(handshake, None, 0)
            slot.channel = ch
            self._remote[rid] = slot
            ch.remote_id = remote_id
            self._fully_open(ch)
            return

        if self._pending_opens >= self.max_pending_opens:
            raise ProtocolError("too many unanswered channel opens", limit=self.max_pending_opens)
        token = next(self._tokens)
        self._remote[rid] = _Remote(handshake, [], token)
        info.incoming.append(remote_id)
        self._pending_opens += 1
        if _key(protocol, id) in self._pairs or _key(protocol, None) in self._pairs:
            self._events.append(RemoteOpenRequest(protocol, id, handshake, remote_id, token))
        else:
            info.incoming.remove(remote_id)
            self._reject(remote_id)
            self._gc(info)

    def _on_reject(self, state: State) -> None:
        local_id = c.uint.decode(state)
        for info in self._unique_infos():
            if local_id not in info.outgoing:
                continue
            info.outgoing.remove(local_id)
            ch = self._local[local_id - 1]
            self._free.append(local_id - 1)
            if ch is not None:
                self._close(ch)
                self._events.append(ChannelRejected(ch))
            self._gc(info)
            return
        raise ProtocolError("Invalid reject message", local_id=local_id)

    def _on_close(self, state: State) -> None:
        remote_id = c.uint.decode(state)
        if remote_id == 0 or remote_id > len(self._remote):
            return
        slot = self._remote[remote_id - 1]
        if slot is None or slot.channel is None:
            return
        ch = slot.channel
        if not ch.closed:
            self._close(ch)
            self._events.append(ChannelClosed(ch))

    # -- internals -------------------------------------------------------------------------------

    def _check_owner(self, ch: Channel) -> None:
        if ch._mux is not self:
            raise MuxUsageError("channel belongs to another mux")

    def _unique_infos(self) -> list[_Info]:
        seen: dict[int, _Info] = {}
        for info in self._infos.values():
            seen.setdefault(id(info), info)
        return list(seen.values())

    def _get(self, protocol: str, id: bytes | None, aliases: Sequence[str] = ()) -> _Info:
        key = _key(protocol, id)
        info = self._infos.get(key)
        if info is not None:
            return info
        info = _Info(key, protocol, id)
        self._infos[key] = info
        for alias in aliases:
            akey = _key(alias, id)
            info.alias_keys.append(akey)
            self._infos[akey] = info
        return info

    def _gc(self, info: _Info) -> None:
        if info.opened == 0 and not info.outgoing and not info.incoming:
            if self._infos.get(info.key) is info:
                del self._infos[info.key]
            for akey in info.alias_keys:
                if self._infos.get(akey) is info:
                    del self._infos[akey]

    def _send_open(self, ch: Channel) -> None:
        if self._free:
            index = self._free.pop()
        else:
            index = len(self._local)
            self._local.append(None)
        ch._info.opened += 1
        ch.local_id = index + 1
        self._local[index] = ch
        if ch.remote_id == 0:
            ch._info.outgoing.append(ch.local_id)
        protocol = ch.protocol.encode("utf-8")
        ident = ch.id or b""
        frame = b"".join(
            (
                b"\x00\x01",
                uint_bytes(ch.local_id),
                uint_bytes(len(protocol)),
                protocol,
                uint_bytes(len(ident)),
                ident,
                ch.handshake,
            )
        )
        self._write_control(frame)

    def _fully_open(self, ch: Channel) -> None:
        if ch.opened or ch.closed:
            return
        slot = self._remote[ch.remote_id - 1]
        assert slot is not None
        handshake, slot.handshake = slot.handshake, b""
        ch.remote_handshake = handshake
        slot.channel = ch
        self._events.append(ChannelOpened(ch, handshake))
        pending, slot.pending = slot.pending, None
        if pending:
            for type_, body in pending:
                self._buffered -= BUFFERED_OVERHEAD + len(body)
                self._deliver(ch, type_, body)
        ch.opened = True

    def _close(self, ch: Channel) -> None:
        if ch.closed:
            return
        ch.closed = True
        ch._info.opened -= 1
        if ch.remote_id > 0:
            self._remote[ch.remote_id - 1] = None
            ch.remote_id = 0
            # The peer has acknowledged this id with its open, so it may be reused now.
            self._free.append(ch.local_id - 1)
        self._local[ch.local_id - 1] = None
        ch.local_id = 0
        self._gc(ch._info)

    def _reject(self, remote_id: int) -> None:
        slot = self._remote[remote_id - 1]
        if slot is not None:
            if slot.pending is not None:
                for _, body in slot.pending:
                    self._buffered -= BUFFERED_OVERHEAD + len(body)
                self._pending_opens -= 1
            self._remote[remote_id - 1] = None
        self._write_control(b"\x00\x02" + uint_bytes(remote_id))

    def _write_control(self, frame: bytes) -> None:
        if self._batch is not None:
            self._push_batch(0, frame[1:])
        else:
            self._outbox.append(frame)

    def _push_batch(self, local_id: int, entry: bytes) -> None:
        assert self._batch is not None
        if self._batch_size >= MAX_BATCH:
            self._send_batch(self._batch)
            self._batch = []
            self._batch_size = 1
        if not self._batch or self._batch[-1][0] != local_id:
            self._batch_size += 1 + uint_size(local_id)
        self._batch_size += uint_size(len(entry)) + len(entry)
        self._batch.append((local_id, entry))

    def _send_batch(self, batch: list[tuple[int, bytes]]) -> None:
        if not batch:
            return
        prev = batch[0][0]
        parts = [b"\x00\x00", uint_bytes(prev)]
        for local_id, entry in batch:
            if local_id != prev:
                prev = local_id
                parts.append(b"\x00")
                parts.append(uint_bytes(local_id))
            parts.append(uint_bytes(len(entry)))
            parts.append(entry)
        self._outbox.append(b"".join(parts))
