"""The fast path: one asyncio Protocol per TCP connection, driving the sans-IO pieces directly.

Theory of operation
-------------------
Replication is a ping-pong of many small messages, so per-message overhead decides throughput.
This adapter keeps that overhead to a function call: bytes arrive in :meth:`data_received`, go
through the :class:`~hyperlobby.wire.secret_stream.SecretStream` (decryption) into the
:class:`~hyperlobby.wire.session.ReplicationSession` (protomux + replication), and everything
the session wants to send is encrypted and written as **one** ``transport.write`` before the
callback returns (and every few messages of a large read: see
:data:`~hyperlobby.wire.session.FLUSH_EVERY`). No task, queue or future is created per message.

Back-pressure: when the socket's send buffer fills (asyncio calls :meth:`pause_writing`) we stop
reading, so a peer that requests faster than it reads our answers is slowed down instead of
making us buffer without bound.

Timers (all with ``loop.call_later``): the handshake must finish within ``handshake_timeout``;
an encrypted empty keepalive is written after ``keepalive`` seconds without writes (Hypercore's
JS stream uses 5 s); once a second the session's replicators check request timeouts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol

from hyperlobby.errors import HandshakeError, HyperlobbyError, ProtocolError
from hyperlobby.wire.noise import KeyPairLike
from hyperlobby.wire.secret_stream import Closed, Event, HandshakeComplete, Message, SecretStream
from hyperlobby.wire.session import ReplicationSession

_log = logging.getLogger(__name__)

TICK_SECONDS = 1.0


class ConnectionOwner(Protocol):
    """What a connection needs from the object that manages replication (``Replication``)."""

    def _session_for(self, is_initiator: bool, handshake_hash: bytes) -> ReplicationSession: ...

    def _connected(self, conn: ReplicationConnection) -> None: ...

    def _disconnected(self, conn: ReplicationConnection, error: HyperlobbyError | None) -> None: ...

    def _write_group(self) -> AbstractContextManager[None]: ...


class ReplicationConnection(asyncio.Protocol):
    """A secret-stream + replication session over one asyncio transport."""

    def __init__(
        self,
        owner: ConnectionOwner,
        is_initiator: bool,
        key_pair: KeyPairLike,
        *,
        handshake_timeout: float = 10.0,
        keepalive: float | None = 5.0,
    ) -> None:
        self.owner = owner
        self.is_initiator = is_initiator
        self.stream = SecretStream(is_initiator, key_pair)
        self.session: ReplicationSession | None = None
        self.handshake_timeout = handshake_timeout
        self.keepalive = keepalive
        self.error: HyperlobbyError | None = None
        self.remote_public_key: bytes | None = None
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = self.loop.create_future()
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self._timers: list[asyncio.TimerHandle] = []
        self._last_write = self.loop.time()
        self._writing_paused = False

    # --- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._write(self.stream.initiate())
        self._later(self.handshake_timeout, self._handshake_expired)

    def data_received(self, data: bytes) -> None:
        stream = self.stream
        events = stream.receive_data(data)
        out = stream.data_to_send()
        if out:
            self._write(out)
        held = self.session
        try:
            # Everything verified from this read is committed in one storage transaction, and
            # what it produces leaves in batch frames (see ReplicationSession.hold).
            with self.owner._write_group():
                if held is not None:
                    held.hold()
                try:
                    if not self._handle(events):
                        return
                finally:
                    if held is not None:
                        held.release()
        except HyperlobbyError as err:  # the group's commit failed: storage is unusable for now
            self.abort(err)
            return
        self.flush()

    def _handle(self, events: list[Event]) -> bool:
        """Feed the stream's events to the session; False once the connection was aborted."""
        session = self.session
        for event in events:
            if isinstance(event, Message):
                if session is None:  # pragma: no cover - the stream reports the handshake first
                    continue
                try:
                    session.receive(event.data)
                except HyperlobbyError as err:  # a peer fault, or storage failing under it
                    self.abort(err)
                    return False
                except Exception as exc:  # a bug of ours: drop this peer, keep the node alive
                    _log.exception("replication session failed")
                    self.abort(ProtocolError("internal error while handling a peer message", cause=repr(exc)))
                    return False
            elif isinstance(event, HandshakeComplete):
                session = self._start_session(event)
            elif isinstance(event, Closed):
                self.abort(event.error)
                return False
        return True

    def eof_received(self) -> bool | None:
        events = self.stream.receive_eof()
        error = next((e.error for e in events if isinstance(e, Closed)), None)
        self.abort(error)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self.error is None:
            self.error = ProtocolError("connection lost", cause=repr(exc))
        self._finish()

    def pause_writing(self) -> None:
        self._writing_paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    # --- public --------------------------------------------------------------------------------

    def flush(self) -> None:
        """Encrypt and write whatever the session has queued, as one write."""
        session = self.session
        if session is None or self.transport is None or self.transport.is_closing():
            return
        frames = session.data_to_send()
        if not frames:
            return
        send = self.stream.send
        try:
            self._write(b"".join([send(frame) for frame in frames]))
        except HyperlobbyError as err:
            self.abort(err)

    def abort(self, error: HyperlobbyError | None = None) -> None:
        """Close the connection (``error`` says why; None is a clean close)."""
        if error is not None and self.error is None:
            self.error = error
        self.stream.close(error)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        self._finish()

    # --- internals -----------------------------------------------------------------------------

    def _start_session(self, event: HandshakeComplete) -> ReplicationSession:
        self.remote_public_key = event.remote_public_key
        session = self.owner._session_for(self.is_initiator, event.handshake_hash)
        self.session = session
        # Large reads are answered in several writes, so that both ends work at the same time.
        session.on_output = self.flush
        self._cancel_timers()
        if self.keepalive:
            self._later(self.keepalive, self._keepalive_due)
        self._later(TICK_SECONDS, self._tick)
        self.owner._connected(self)
        if not self.ready.done():
            self.ready.set_result(None)
        return session

    def _write(self, data: bytes) -> None:
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
            self._last_write = self.loop.time()

    def _later(self, delay: float, callback: Callable[[], None]) -> None:
        self._timers.append(self.loop.call_later(delay, callback))

    def _cancel_timers(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def _handshake_expired(self) -> None:
        if self.session is None:
            self.abort(HandshakeError("handshake timed out", timeout=self.handshake_timeout))

    def _keepalive_due(self) -> None:
        if self.transport is None or self.transport.is_closing() or self.keepalive is None:
            return
        idle = self.loop.time() - self._last_write
        if idle >= self.keepalive:
            try:
                self._write(self.stream.keepalive())
            except HyperlobbyError:
                return
            idle = 0.0
        self._later(max(self.keepalive - idle, 0.05), self._keepalive_due)

    def _tick(self) -> None:
        session = self.session
        if session is None or session.closed:
            return
        session.tick(self.loop.time())
        self.flush()
        self._later(TICK_SECONDS, self._tick)

    def _finish(self) -> None:
        if self.closed.done():
            return
        self._cancel_timers()
        if self.session is not None:
            self.session.close()
        if not self.ready.done():
            self.ready.set_exception(self.error or HandshakeError("connection closed during the handshake"))
            self.ready.exception()  # mark retrieved: the caller may have stopped waiting
        self.closed.set_result(None)
        self.owner._disconnected(self, self.error)
