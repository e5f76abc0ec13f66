"""A connection made through HyperDHT: a secret stream over a UDX stream, keys from the DHT.

Theory of operation
-------------------
By the time a :class:`DhtConnection` exists, the Noise IK handshake already ran inside
PEER_HANDSHAKE messages (:mod:`~hyperlobby.swarm.hyperdht.noise_wrap`) and a UDX stream is
connected to the peer's stream. As JS hyperdht hands ``NoiseSecretStream`` a finished
handshake, the secret stream here starts straight at the id/header exchange
(:class:`~hyperlobby.wire.secret_stream.SecretStream` with ``handshake=``): the first thing
on the wire is each side's stream id and secretstream header.

The connection is an ``asyncio.Protocol`` over a :class:`~hyperlobby.swarm.udx.UdxTransport`,
so bytes flow by callback with no task per message. Decrypted messages go to one of:

* a *batch receiver* (:meth:`set_batch_receiver`, what :meth:`Replication.adopt` installs, the
  fast path): the UDX socket reads up to a few hundred datagrams per wake-up, and everything
  decrypted from such a read is handed over as one list, right after the read (one
  ``call_soon``). The receiver can then treat the read as one unit, as the TCP path treats one
  socket read: one storage transaction, answers in batch frames;
* a *receiver* (:meth:`set_receiver`): one synchronous call per message, as it is decrypted;
* when neither is set, a bounded queue read with :meth:`recv`.
When that queue is full, or when UDX holds more unacknowledged data than its high-water mark
(``pause_writing``), the UDX stream stops reading, which closes its receive window, so a fast
sender is slowed down instead of memory growing.

Keepalive: like JS (``connectionKeepAlive``, 5 s) an encrypted empty message is written
after ``keepalive`` seconds without writes; empty messages are dropped on receipt.

Byte counters: :attr:`raw_bytes_read` / :attr:`raw_bytes_written` count encrypted messages
where JS's NoiseSecretStream does: read, every message after the id/header exchange (its
ciphertext, without the 3-byte length prefix; keepalives included); written, every message we
encrypt (with its length prefix; keepalives included). The id/header messages count on
neither side. hyperswarm's duplicate-connection rule reads them (a connection that carried
bytes both ways is presumed dead on the peer's side when the peer dials again).

The end is reported once: :attr:`closed` (an ``asyncio.Future[None]``) completes, and
:attr:`error` says why when it was not a clean end. Nothing a peer sends raises out of a
callback; a bad frame closes the connection with a :class:`HyperlobbyError`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence

from hyperlobby.errors import HyperlobbyError, ProtocolError
from hyperlobby.swarm.hyperdht.noise_wrap import HandshakeFinal
from hyperlobby.swarm.udx import UdxStream, UdxTransport
from hyperlobby.wire.secret_stream import ABYTES, Closed, Message, SecretStream

DEFAULT_KEEPALIVE = 5.0
QUEUE_MESSAGES = 256

Receiver = Callable[[bytes], None]
BatchReceiver = Callable[[list[bytes]], None]
CloseHandler = Callable[[HyperlobbyError | None], None]


class DhtConnection(asyncio.Protocol):
    """An established, authenticated, encrypted message stream to one HyperDHT peer."""

    def __init__(
        self,
        stream: UdxStream,
        final: HandshakeFinal,
        *,
        keepalive: float | None = DEFAULT_KEEPALIVE,
        close_timeout: float = 5.0,
    ) -> None:
        if stream.remote_address is None:
            raise ProtocolError("a DhtConnection needs a connected UDX stream", stream_id=stream.id)
        self.loop = asyncio.get_running_loop()
        self.is_initiator = final.is_initiator
        self.public_key = final.public_key
        self.remote_public_key = final.remote_public_key
        self.handshake_hash = final.hash
        self.remote_address: tuple[str, int] = stream.remote_address
        self.udx_stream = stream
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self.error: HyperlobbyError | None = None
        self.keepalive = keepalive
        # Empty messages are let through so that keepalives are counted like JS counts them;
        # _deliver drops them.
        self._secret = SecretStream(final.is_initiator, handshake=final.noise_result(), filter_empty=False)
        self.raw_bytes_read = 0
        self.raw_bytes_written = 0
        self._queue: deque[bytes] = deque()
        self._readable: asyncio.Future[None] | None = None
        self._receiver: Receiver | None = None
        self._batch_receiver: BatchReceiver | None = None
        self._batch: list[bytes] = []  # decrypted, waiting for the end of the socket read
        self._batch_handle: asyncio.Handle | None = None
        self._on_close: CloseHandler | None = None
        self._eof = False
        self._paused_for_queue = False
        self._writing_paused = False
        self._reading_paused = False
        self._last_write = self.loop.time()
        self._keepalive_timer: asyncio.TimerHandle | None = None
        self.transport: UdxTransport | None = None
        # Constructing the transport calls connection_made, which writes our id/header.
        UdxTransport(stream, self, close_timeout=close_timeout)

    # --- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, UdxTransport)
        self.transport = transport
        self._write(self._secret.initiate())
        self._arm_keepalive()

    def data_received(self, data: bytes) -> None:
        for event in self._secret.receive_data(data):
            if isinstance(event, Message):
                message = event.data
                self.raw_bytes_read += len(message) + ABYTES
                if message:
                    self._deliver(message)
            elif isinstance(event, Closed):
                self._deliver_batch()  # what was verified before the bad frame still counts
                self._shutdown(event.error)
                return
            if self.closed.done():
                return

    def eof_received(self) -> bool:
        self._deliver_batch()
        events = self._secret.receive_eof()
        error = next((e.error for e in events if isinstance(e, Closed)), None)
        self._eof = True
        self._wake()
        if error is not None:
            self._shutdown(error)
            return False
        # A clean end of the peer's side: end ours too (JS ends both halves the same way).
        return False

    def pause_writing(self) -> None:
        """UDX holds too much unacknowledged data: stop reading, so a peer that asks faster than
        it takes our answers is slowed down instead of growing our send buffer."""
        self._writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._update_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        error: HyperlobbyError | None
        if exc is None or isinstance(exc, HyperlobbyError):
            error = exc
        else:
            error = ProtocolError("UDX stream failed", cause=repr(exc))
        self._finish(error)

    # --- sending ---------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Encrypt and queue one message (it leaves at the end of this loop iteration)."""
        if self.closed.done():
            raise self.error or ProtocolError("connection is closed")
        self._write(self._secret.send(data), 1)

    def send_batch(self, messages: Sequence[bytes]) -> None:
        """Encrypt several messages and hand them to UDX as one write."""
        if self.closed.done() or not messages:
            return
        send = self._secret.send
        self._write(b"".join([send(msg) for msg in messages]), len(messages))

    async def drain(self) -> None:
        """Wait until the UDX stream's unacknowledged bytes fall to its high-water mark."""
        await self.udx_stream.drain()

    # --- receiving -------------------------------------------------------------------------------

    async def recv(self) -> bytes | None:
        """Next message; None once the peer ended cleanly. Raises the error that closed us."""
        while not self._queue:
            if self._eof or self.closed.done():
                if self.error is not None:
                    raise self.error
                return None
            if self._readable is None or self._readable.done():
                self._readable = self.loop.create_future()
            await self._readable
        message = self._queue.popleft()
        if self._paused_for_queue and len(self._queue) < QUEUE_MESSAGES // 2:
            self._paused_for_queue = False
            self._update_reading()
        return message

    def set_receiver(self, on_message: Receiver, on_close: CloseHandler | None = None) -> None:
        """Deliver messages to ``on_message`` from now on (queued ones first), synchronously."""
        self._deliver_batch()
        self._batch_receiver = None
        self._receiver = on_message
        self._on_close = on_close
        while self._queue and self._receiver is on_message:
            on_message(self._queue.popleft())
        if self._paused_for_queue:
            self._paused_for_queue = False
            self._update_reading()
        if self.closed.done() and on_close is not None:
            on_close(self.error)

    def set_batch_receiver(self, on_messages: BatchReceiver, on_close: CloseHandler | None = None) -> None:
        """Deliver messages to ``on_messages`` from now on, a list per UDX socket read.

        Messages that were queued before are delivered at once, as one list. ``on_close`` is
        called once when the connection ends (at once if it already has). A clean end from the
        peer, or a bad frame, is reported after the messages that came before it; when we close
        or the UDX stream fails, messages of the current read not yet handed over are dropped.
        """
        self._receiver = None
        self._batch_receiver = on_messages
        self._on_close = on_close
        if self._queue:
            self._batch.extend(self._queue)
            self._queue.clear()
            self._deliver_batch()
        if self._paused_for_queue:
            self._paused_for_queue = False
            self._update_reading()
        if self.closed.done() and on_close is not None:
            on_close(self.error)

    # --- closing ---------------------------------------------------------------------------------

    def close(self, error: HyperlobbyError | None = None) -> None:
        """End the connection: our side ends at once; the peer gets a few seconds to end theirs."""
        if error is not None and self.error is None:
            self.error = error
        if self.transport is not None and not self.transport.is_closing():
            if error is None:
                self.transport.close()
            else:
                self.transport.abort()
        self._secret.close(error)
        self._finish(self.error)

    def destroy(self) -> None:
        """Abort now (a UDX DESTROY tells the peer)."""
        if self.transport is not None:
            self.transport.abort()
        self._finish(self.error)

    async def wait_closed(self) -> None:
        await asyncio.shield(self.closed)

    # --- internals -------------------------------------------------------------------------------

    def _deliver(self, message: bytes) -> None:
        if self._batch_receiver is not None:
            self._batch.append(message)
            if self._batch_handle is None:
                # The socket hands us its datagrams one by one within one read; the read is over
                # when control returns to the loop.
                self._batch_handle = self.loop.call_soon(self._deliver_batch)
            return
        receiver = self._receiver
        if receiver is not None:
            receiver(message)
            return
        self._queue.append(message)
        self._wake()
        if len(self._queue) >= QUEUE_MESSAGES and not self._paused_for_queue:
            self._paused_for_queue = True
            self._update_reading()

    def _deliver_batch(self) -> None:
        """Hand what this read decrypted to the batch receiver (in order, once)."""
        if self._batch_handle is not None:
            self._batch_handle.cancel()
            self._batch_handle = None
        receiver = self._batch_receiver
        if not self._batch or receiver is None:
            return
        batch, self._batch = self._batch, []
        receiver(batch)

    def _update_reading(self) -> None:
        """Read iff neither a full receive queue nor a full send buffer holds us back."""
        want_paused = self._paused_for_queue or self._writing_paused
        if want_paused == self._reading_paused or self.transport is None or self.transport.is_closing():
            return
        self._reading_paused = want_paused
        if want_paused:
            self.transport.pause_reading()
        else:
            self.transport.resume_reading()

    def _wake(self) -> None:
        if self._readable is not None and not self._readable.done():
            self._readable.set_result(None)

    def _write(self, data: bytes, messages: int = 0) -> None:
        """Write ``data``; ``messages`` encrypted messages in it count toward :attr:`raw_bytes_written`
        (the id/header message does not, as in JS)."""
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
            self._last_write = self.loop.time()
            if messages:
                self.raw_bytes_written += len(data)

    def _arm_keepalive(self) -> None:
        if self.keepalive is None or self.closed.done():
            return
        delay = max(self._last_write + self.keepalive - self.loop.time(), 0.05)
        self._keepalive_timer = self.loop.call_later(delay, self._keepalive_due)

    def _keepalive_due(self) -> None:
        self._keepalive_timer = None
        if self.closed.done() or self.keepalive is None:
            return
        if self.loop.time() - self._last_write >= self.keepalive:
            try:
                self._write(self._secret.keepalive(), 1)
            except HyperlobbyError:
                return
        self._arm_keepalive()

    def _shutdown(self, error: HyperlobbyError | None) -> None:
        if error is not None and self.error is None:
            self.error = error  # before the abort: it reports the stream's end synchronously
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()
        self._finish(error)

    def _finish(self, error: HyperlobbyError | None) -> None:
        if self.closed.done():
            return
        # The peer's clean end and a bad frame deliver what came before them (eof_received,
        # data_received); when we close, or the stream fails, the undelivered rest is dropped.
        if self._batch_handle is not None:
            self._batch_handle.cancel()
            self._batch_handle = None
        self._batch.clear()
        if error is not None and self.error is None:
            self.error = error
        if self._keepalive_timer is not None:
            self._keepalive_timer.cancel()
            self._keepalive_timer = None
        self._secret.close(self.error)
        self.closed.set_result(None)
        self._wake()
        on_close = self._on_close
        if on_close is not None:
            on_close(self.error)

    def __repr__(self) -> str:
        return (
            f"DhtConnection(initiator={self.is_initiator}, remote={self.remote_public_key.hex()[:16]}, "
            f"address={self.remote_address})"
        )


__all__ = ["DhtConnection"]
