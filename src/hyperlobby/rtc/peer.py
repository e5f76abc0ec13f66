"""The host and the guest of a session, on aiortc.

Theory of operation
-------------------
A session is a star: each guest holds exactly one ``RTCPeerConnection`` to the host, with one
data channel on it, and the host relays the room (see :mod:`.room`). Signaling is the lobby's
business; here it is two calls. The guest makes an offer (:meth:`RtcGuest.offer`), the lobby
carries it to the host, :meth:`RtcHost.accept` returns the answer (or raises
:class:`AdmissionRefused`), the lobby carries it back and :meth:`RtcGuest.complete` applies it.
aiortc gathers every candidate before it produces a description, so that is all the signaling a
guest ever costs: one offer, one answer.

The data channel is *negotiated* (both sides create it with the same fixed id) instead of being
announced in-band: that saves the DCEP open/ack round trip, and it means the host never has to
decide what to do with channels a guest invents (it closes them).

Capacity: a guest counts against ``max_peers`` from the moment :meth:`RtcHost.accept` answers it
until it is gone, so a burst of offers cannot overshoot. A guest that never opens its channel
within ``open_timeout`` gives its place back. ``peers`` counts only guests whose channel is open,
which is what ``session.json`` advertises; :attr:`RtcHost.on_peers_changed` fires whenever it
changes.

Liveness: the host pings every ``ping_interval`` and drops a guest silent for ``ping_timeout``
(nothing received, pongs included). That catches a guest whose process died or whose network
vanished, which WebRTC itself reports only after ICE consent expires (~30 s) or never. A guest
closing properly is seen at once: it says ``leave``, or its SCTP association aborts and the
channel closes. Symmetrically a guest treats ``host_timeout`` without a frame from the host (the
host's pings included) as the host being gone.

Every aiortc callback ends in a method here that cannot raise; failures become "drop this
guest" with a logged reason, never an exception in aiortc's tasks or a dead host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiortc import RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from ..errors import AdmissionRefused, DecodeError, EncodeError, RtcError, SessionFullError
from . import ice as _ice
from .ice import IceConfig
from .room import Body, Frame, Joined, Left, Message, Peers, Ping, Pong, Room, Send, check_peer_id
from .room import decode as decode_frame
from .room import encode as encode_frame
from .signal import Answer, Offer, Refusal, decode_signal, encode_signal

log = logging.getLogger(__name__)

CHANNEL_LABEL = "hyperlobby-room"
CHANNEL_ID = 0
#: A guest that lets this much pile up unread on its channel is not reading; the host drops it
#: rather than buffer for it without bound.
MAX_BUFFERED_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Closed:
    """The guest's last event: the connection to the host is over, and why."""

    reason: str


#: What iterating an :class:`RtcGuest` yields.
RoomEvent = Message | Joined | Left | Peers | Closed


def _negotiated_channel(pc: RTCPeerConnection) -> RTCDataChannel:
    return pc.createDataChannel(CHANNEL_LABEL, negotiated=True, id=CHANNEL_ID, ordered=True)


class _Tasks:
    """Background tasks we own, so close() can wait for them and none is garbage collected."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("rtc task %s failed: %r", task.get_name(), task.exception())

    async def wait(self, timeout: float) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)


class _Guest:
    __slots__ = ("channel", "gone", "id", "open", "open_timer", "pc")

    def __init__(self, guest_id: str, pc: RTCPeerConnection) -> None:
        self.id = guest_id
        self.pc = pc
        self.channel: RTCDataChannel | None = None
        self.open = False
        self.gone = False
        self.open_timer: asyncio.TimerHandle | None = None


class RtcHost:
    """Accepts guests up to ``max_peers`` and relays their room."""

    def __init__(
        self,
        max_peers: int,
        *,
        ice: IceConfig | None = None,
        on_peers_changed: Callable[[int], None] | None = None,
        on_message: Callable[[str, Message], None] | None = None,
        ping_interval: float = 5.0,
        ping_timeout: float = 15.0,
        open_timeout: float = 30.0,
    ) -> None:
        if max_peers < 1:
            raise RtcError("max_peers must be at least 1", max_peers=max_peers)
        if ping_timeout <= ping_interval:
            raise RtcError("ping_timeout must exceed ping_interval", interval=ping_interval)
        self.max_peers = max_peers
        self.ice = ice if ice is not None else IceConfig()
        #: Called with the new ``peers`` count whenever it changes (the social layer rewrites
        #: session.json from it). Must not block; exceptions are logged and ignored.
        self.on_peers_changed = on_peers_changed
        #: Called with (guest id, message) for every room message a guest sends (the host relays
        #: them anyway; this lets it show them too). Must not block; exceptions are logged.
        self.on_message = on_message
        self.ping_interval = ping_interval
        self.open_timeout = open_timeout
        self._room = Room(ping_timeout)
        self._guests: dict[str, _Guest] = {}
        self._peers = 0
        self._closed = False
        self._tasks = _Tasks()
        self._pinger: asyncio.Task[None] | None = None

    @property
    def peers(self) -> int:
        """Guests whose channel is open (what ``session.json`` calls ``peers``)."""
        return self._peers

    @property
    def guests(self) -> tuple[str, ...]:
        """Ids of the guests in the room (channel open), in arrival order."""
        return self._room.members

    @property
    def reserved(self) -> int:
        """Places taken, including guests answered but not yet open."""
        return len(self._guests)

    @property
    def dropped_frames(self) -> dict[str, int]:
        """Frames refused from guests since start, by reason."""
        return dict(self._room.dropped)

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> RtcHost:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- admission -------------------------------------------------------------------------

    def check_admission(self, guest_id: str) -> None:
        """Raise the refusal :meth:`accept` would give, without spending anything on it (a
        lobby can call this before it bothers reading a sealed offer)."""
        if self._closed:
            raise AdmissionRefused("the session is closed", reason="closed", guest=guest_id)
        try:
            check_peer_id(guest_id)
        except DecodeError as exc:
            raise AdmissionRefused("unusable guest id", reason="bad-id") from exc
        taken = len(self._guests) - (1 if guest_id in self._guests else 0)
        if taken >= self.max_peers:
            raise SessionFullError(
                "the session is full", reason="full", guest=guest_id, max_peers=self.max_peers
            )

    async def accept(self, guest_id: str, offer: bytes) -> bytes:
        """Answer ``guest_id``'s offer (the bytes of ``<guest>.offer.bin``) and return the bytes
        of ``<guest>.answer.bin``. A guest already here under the same id is replaced (it is the
        same identity, reconnecting before we noticed it had gone).

        Raises :class:`SessionFullError` at ``max_peers``, :class:`AdmissionRefused` when closed
        or for a bad id, :class:`RtcError` for an offer that cannot be used.
        """
        self.check_admission(guest_id)
        try:
            signal = decode_signal(offer)
        except DecodeError as exc:
            raise RtcError("guest offer is not a signal", guest=guest_id) from exc
        if not isinstance(signal, Offer):
            raise RtcError("guest signal is not an offer", guest=guest_id, type=type(signal).__name__)
        old = self._guests.get(guest_id)
        if old is not None:
            self._drop(old, "replaced by a new connection")
        self._ensure_pinger()
        pc = RTCPeerConnection(self.ice.rtc_configuration())
        guest = _Guest(guest_id, pc)
        self._guests[guest_id] = guest  # the place is taken before the first await
        loop = asyncio.get_running_loop()
        guest.open_timer = loop.call_later(self.open_timeout, self._drop, guest, "did not connect in time")
        try:
            remote = _ice.filter_remote_sdp(signal.sdp, self.ice)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=remote, type="offer"))
            if pc.sctp is None:
                raise RtcError("guest offer has no data channel section", guest=guest_id)
            channel = _negotiated_channel(pc)
            guest.channel = channel
            self._wire(guest, channel)
            if self.ice.loopback_only:
                _ice.pin_loopback(pc)
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            self._drop(guest, "could not answer")
            if isinstance(exc, RtcError):
                raise
            raise RtcError("could not answer the guest's offer", guest=guest_id, error=str(exc)) from exc
        if guest.gone:
            # Replaced or the host closed while we were answering.
            raise AdmissionRefused("the guest was dropped while being answered", reason="gone")
        return encode_signal(Answer(pc.localDescription.sdp))

    def _wire(self, guest: _Guest, channel: RTCDataChannel) -> None:
        pc = guest.pc

        @channel.on("open")
        def _open() -> None:
            self._on_open(guest)

        @channel.on("message")
        def _message(data: str | bytes) -> None:
            self._on_message(guest, data)

        @channel.on("close")
        def _close() -> None:
            self._drop(guest, "channel closed")

        @pc.on("connectionstatechange")
        def _state() -> None:
            if pc.connectionState in ("failed", "closed"):
                self._drop(guest, f"connection {pc.connectionState}")

        @pc.on("datachannel")
        def _extra(other: RTCDataChannel) -> None:
            log.info("rtc host: closing unexpected channel %r from %s", other.label, guest.id[:16])
            other.close()

    # -- events from aiortc (none of these may raise) -------------------------------------

    def _on_open(self, guest: _Guest) -> None:
        if guest.gone or guest.open:
            return
        guest.open = True
        if guest.open_timer is not None:
            guest.open_timer.cancel()
            guest.open_timer = None
        self._deliver(self._room.join(guest.id, _now()))
        self._set_peers(len(self._room))

    def _on_message(self, guest: _Guest, data: str | bytes) -> None:
        if guest.gone or not guest.open:
            return
        if self.on_message is not None:
            self._notify_message(guest.id, data)
        out = self._room.receive(guest.id, data, _now())
        self._deliver(out.sends)
        if out.leaving:
            self._drop(guest, "left")

    def _notify_message(self, sender: str, data: str | bytes) -> None:
        callback = self.on_message
        if callback is None:
            return
        try:
            frame = decode_frame(data)
        except DecodeError:
            return  # the room drops it and logs why
        if isinstance(frame, Message):
            try:
                callback(sender, frame)
            except Exception:
                log.exception("rtc host: on_message callback failed")

    def _drop(self, guest: _Guest, reason: str) -> None:
        """End ``guest`` for ``reason``: give back its place, tell the room, close its connection.
        Idempotent, so every failure signal (close, failed state, timeout, send error) may call
        it."""
        if guest.gone:
            return
        guest.gone = True
        if guest.open_timer is not None:
            guest.open_timer.cancel()
            guest.open_timer = None
        if self._guests.get(guest.id) is guest:
            del self._guests[guest.id]
        log.info("rtc host: guest %s gone: %s", guest.id[:16], reason)
        if guest.open:
            self._deliver(self._room.leave(guest.id, reason))
            self._set_peers(len(self._room))
        with contextlib.suppress(RuntimeError):  # no running loop: interpreter shutdown
            self._tasks.spawn(_close_pc(guest.pc), f"close-{guest.id[:16]}")

    def _deliver(self, sends: list[Send]) -> None:
        failed: list[tuple[_Guest, str]] = []
        for send in sends:
            guest = self._guests.get(send.to)
            if guest is None or guest.gone or guest.channel is None:
                continue
            channel = guest.channel
            if channel.bufferedAmount > MAX_BUFFERED_BYTES:
                failed.append((guest, "not reading its channel"))
                continue
            try:
                channel.send(send.data)
            except Exception as exc:  # closed under us, or aiortc refused the size
                failed.append((guest, f"send failed: {exc!r}"))
        for guest, reason in failed:
            self._drop(guest, reason)

    def _set_peers(self, count: int) -> None:
        if count == self._peers:
            return
        self._peers = count
        callback = self.on_peers_changed
        if callback is None:
            return
        try:
            callback(count)
        except Exception:
            log.exception("rtc host: on_peers_changed failed")

    def _ensure_pinger(self) -> None:
        if self._pinger is None:
            self._pinger = asyncio.get_running_loop().create_task(self._ping_loop(), name="rtc-host-ping")

    async def _ping_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.ping_interval)
            sends, expired = self._room.tick(_now())
            for guest_id in expired:
                guest = self._guests.get(guest_id)
                if guest is not None:
                    self._drop(guest, "timeout")
            self._deliver(sends)

    # -- ending ----------------------------------------------------------------------------

    async def kick(self, guest_id: str, reason: str = "kicked") -> None:
        guest = self._guests.get(guest_id)
        if guest is not None:
            self._drop(guest, reason)
            await self._tasks.wait(5.0)

    async def close(self) -> None:
        """End the session: refuse new guests, close every connection (guests see their channel
        close), and report ``peers`` 0. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinger
        for guest in list(self._guests.values()):
            # No Left frames: everyone is leaving together.
            guest.open = False
            self._drop(guest, "host closed")
        for guest_id in self._room.members:
            self._room.leave(guest_id, "host closed")
        self._set_peers(0)
        await self._tasks.wait(10.0)


async def _close_pc(pc: RTCPeerConnection) -> None:
    try:
        await asyncio.wait_for(pc.close(), 5.0)
    except asyncio.CancelledError:
        # A second close() waits on the first one's future inside aiortc; under load that wait
        # was seen ending in CancelledError although nobody cancelled us (the guest then exited
        # with a traceback instead of leaving). Only our own cancellation is passed on.
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.debug("rtc: closing a peer connection was cancelled inside aiortc")
    except Exception as exc:  # closing is best effort; the sockets go either way
        log.debug("rtc: closing a peer connection failed: %r", exc)


def _now() -> float:
    return asyncio.get_running_loop().time()


class RtcGuest:
    """One guest: make an offer, apply the answer, then talk to the room.

    Iterate it (``async for event in guest``) for :class:`Message`, :class:`Joined`,
    :class:`Left` and :class:`Peers` events; iteration ends after one :class:`Closed`.
    """

    def __init__(self, guest_id: str, *, ice: IceConfig | None = None, host_timeout: float = 15.0) -> None:
        check_peer_id(guest_id)
        self.guest_id = guest_id
        self.ice = ice if ice is not None else IceConfig()
        self.host_timeout = host_timeout
        self._pc: RTCPeerConnection | None = None
        self._channel: RTCDataChannel | None = None
        self._events: asyncio.Queue[RoomEvent] = asyncio.Queue()
        self._opened: asyncio.Future[None] | None = None
        self._closed_reason: str | None = None
        self._peers: list[str] = []
        self._last_heard = 0.0
        self._tasks = _Tasks()
        self._watchdog: asyncio.Task[None] | None = None

    @property
    def opened(self) -> asyncio.Future[None]:
        """Resolves when the host has welcomed us into the room (our channel is open and the host
        counts us); fails with :class:`RtcError` if the connection ends before that."""
        if self._opened is None:
            self._opened = asyncio.get_running_loop().create_future()
            # Nobody may be awaiting it when it fails; do not let asyncio complain about that.
            self._opened.add_done_callback(lambda f: f.cancelled() or f.exception())
        return self._opened

    @property
    def peers(self) -> tuple[str, ...]:
        """The other guests in the room, as far as the host has told us."""
        return tuple(self._peers)

    @property
    def closed(self) -> bool:
        return self._closed_reason is not None

    @property
    def peer_connection(self) -> RTCPeerConnection | None:
        """The underlying aiortc connection (for stats and tests; do not close it behind our back)."""
        return self._pc

    async def offer(self) -> bytes:
        """Make the offer (the bytes of ``<guest>.offer.bin``). Candidates are all in it."""
        if self._pc is not None:
            raise RtcError("this guest has already made its offer", guest=self.guest_id)
        _ = self.opened
        pc = RTCPeerConnection(self.ice.rtc_configuration())
        self._pc = pc
        channel = _negotiated_channel(pc)
        self._channel = channel
        self._wire(pc, channel)
        if self.ice.loopback_only:
            _ice.pin_loopback(pc)
        await pc.setLocalDescription(await pc.createOffer())
        return encode_signal(Offer(pc.localDescription.sdp))

    async def complete(self, answer: bytes) -> None:
        """Apply the host's answer (the bytes of ``<guest>.answer.bin``). A refusal raises
        :class:`AdmissionRefused` (:class:`SessionFullError` when full) and closes the guest."""
        if self._pc is None:
            raise RtcError("offer() first", guest=self.guest_id)
        try:
            signal = decode_signal(answer)
        except DecodeError as exc:
            await self._close("unusable answer")
            raise RtcError("host answer is not a signal", guest=self.guest_id) from exc
        if isinstance(signal, Refusal):
            await self._close(f"refused: {signal.reason}")
            error = SessionFullError if signal.reason == "full" else AdmissionRefused
            raise error(signal.message or "the host refused us", reason=signal.reason, guest=self.guest_id)
        if not isinstance(signal, Answer):
            await self._close("unusable answer")
            raise RtcError("host signal is not an answer", type=type(signal).__name__)
        try:
            remote = _ice.filter_remote_sdp(signal.sdp, self.ice)
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=remote, type="answer"))
        except Exception as exc:
            await self._close("unusable answer")
            raise RtcError("could not apply the host's answer", error=str(exc)) from exc

    def _wire(self, pc: RTCPeerConnection, channel: RTCDataChannel) -> None:
        @channel.on("message")
        def _message(data: str | bytes) -> None:
            self._on_message(data)

        @channel.on("close")
        def _close() -> None:
            self._end("host closed the channel")

        @pc.on("connectionstatechange")
        def _state() -> None:
            if pc.connectionState in ("failed", "closed"):
                self._end(f"connection {pc.connectionState}")

    def _on_message(self, data: str | bytes) -> None:
        if self.closed:
            return
        self._last_heard = _now()
        try:
            frame: Frame = decode_frame(data)
        except DecodeError as exc:
            log.info("rtc guest %s: dropped a frame from the host: %s", self.guest_id[:16], exc)
            return
        if isinstance(frame, Ping):
            self._send_frame(Pong(frame.seq))
            return
        if isinstance(frame, Pong):
            return
        if isinstance(frame, Peers):
            self._peers = list(frame.peers)
            opened = self.opened
            if not opened.done():
                opened.set_result(None)
                self._watchdog = asyncio.get_running_loop().create_task(
                    self._watch_host(), name=f"rtc-guest-watch-{self.guest_id[:16]}"
                )
        elif isinstance(frame, Joined):
            if frame.peer not in self._peers:
                self._peers.append(frame.peer)
        elif isinstance(frame, Left) and frame.peer in self._peers:
            self._peers.remove(frame.peer)
        self._events.put_nowait(frame)

    async def _watch_host(self) -> None:
        while not self.closed:
            silent = _now() - self._last_heard
            if silent > self.host_timeout:
                await self._close("host timeout")
                return
            await asyncio.sleep(max(0.05, min(self.host_timeout - silent, self.host_timeout / 4)))

    # -- talking ---------------------------------------------------------------------------

    def send(self, body: Body) -> None:
        """Say ``body`` (text or bytes) to everyone else in the room."""
        self._send_frame(Message("", body))

    def send_to(self, peer: str, body: Body) -> None:
        """Say ``body`` to ``peer`` only (the host drops it if ``peer`` is not in the room)."""
        self._send_frame(Message("", body, check_peer_id(peer)))

    def _send_frame(self, frame: Frame) -> None:
        channel = self._channel
        if channel is None or channel.readyState != "open" or self.closed:
            raise RtcError("not connected to the host", guest=self.guest_id)
        try:
            data = encode_frame(frame)
        except EncodeError as exc:
            raise RtcError("message too large for the room", guest=self.guest_id) from exc
        try:
            channel.send(data)
        except Exception as exc:
            raise RtcError("sending to the host failed", error=str(exc)) from exc

    def __aiter__(self) -> AsyncIterator[RoomEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[RoomEvent]:
        while True:
            event = await self._events.get()
            yield event
            if isinstance(event, Closed):
                return

    async def next_event(self, timeout: float) -> RoomEvent:
        """The next event, or :class:`TimeoutError` after ``timeout`` seconds."""
        return await asyncio.wait_for(self._events.get(), timeout)

    # -- ending ----------------------------------------------------------------------------

    async def leave(self) -> None:
        """Say goodbye to the room and close. Idempotent."""
        channel = self._channel
        if not self.closed and channel is not None and channel.readyState == "open":
            with contextlib.suppress(RtcError):
                self._send_frame(Left("", "left"))
            # Give the goodbye a moment to leave before the association is torn down; without
            # it the host still notices (the abort closes the channel), only less politely.
            for _ in range(20):
                if channel.bufferedAmount == 0:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.01)
        await self._close("left")

    def _end(self, reason: str) -> None:
        """The connection ended under us (sync, from an aiortc callback)."""
        if self.closed:
            return
        self._finish(reason)
        with contextlib.suppress(RuntimeError):
            if self._pc is not None:
                self._tasks.spawn(_close_pc(self._pc), "rtc-guest-close")

    def _finish(self, reason: str) -> None:
        self._closed_reason = reason
        opened = self.opened
        if not opened.done():
            opened.set_exception(RtcError("connection ended before the host welcomed us", reason=reason))
        self._events.put_nowait(Closed(reason))
        if self._watchdog is not None and self._watchdog is not asyncio.current_task():
            self._watchdog.cancel()

    async def _close(self, reason: str) -> None:
        if not self.closed:
            self._finish(reason)
        if self._pc is not None:
            await _close_pc(self._pc)
        await self._tasks.wait(5.0)
