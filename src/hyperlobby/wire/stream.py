"""asyncio adapter: runs a sans-IO :class:`SecretStream` over an asyncio (reader, writer) pair.

Theory of operation
-------------------
All protocol logic lives in :mod:`hyperlobby.wire.secret_stream`; this module only moves bytes
and keeps time. :func:`open_secret_stream` runs the handshake inline (bounded by
``handshake_timeout``) and returns a :class:`SecretStreamConnection` once Noise is done. From
then on two background tasks exist per connection:

* the **reader** pulls chunks off the socket, feeds the core, and puts decrypted messages on a
  bounded queue. When the queue is full the reader stops reading, so TCP flow control pushes
  back on a fast sender instead of memory growing without bound.
* the **keepalive** task writes an encrypted empty message whenever nothing was written for
  ``keepalive`` seconds (Hypercore's JS stream uses 5 s), so idle connections stay alive
  through NATs and the peer's idle timers.

Encryption and ``writer.write`` happen in one synchronous step, so frames from ``send`` and
from the keepalive task can never interleave out of nonce order.

The end of the stream is reported once: :meth:`SecretStreamConnection.recv` returns ``None``
after a clean EOF, or raises the :class:`~hyperlobby.errors.HyperlobbyError` that tore the
stream down (a protocol violation, a timeout, or a transport failure wrapped in
:class:`~hyperlobby.errors.ProtocolError`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType

from hyperlobby.errors import HandshakeError, HyperlobbyError, ProtocolError
from hyperlobby.wire.noise import KeyPairLike
from hyperlobby.wire.secret_stream import (
    MAX_PLAINTEXT,
    Closed,
    Event,
    HandshakeComplete,
    Message,
    SecretStream,
)

log = logging.getLogger(__name__)

DEFAULT_KEEPALIVE = 5.0
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
READ_SIZE = 1 << 20
# StreamReader's buffer limit; asyncio pauses the socket at twice this much unread data.
STREAM_LIMIT = 1 << 20
QUEUE_MESSAGES = 64

_EOF = object()


class SecretStreamConnection:
    """An open, authenticated, encrypted message stream to one peer."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        core: SecretStream,
        pending: list[Event],
        *,
        keepalive: float | None,
        timeout: float | None,
    ) -> None:
        remote, hhash = core.remote_public_key, core.handshake_hash
        if remote is None or hhash is None:
            raise HandshakeError("connection created before the handshake completed")
        self.remote_public_key: bytes = remote
        self.handshake_hash: bytes = hhash
        self.public_key: bytes = core.public_key
        self.is_initiator = core.is_initiator
        self._reader = reader
        self._writer = writer
        self._core = core
        self._timeout = timeout
        self._keepalive = keepalive
        self._queue: asyncio.Queue[object] = asyncio.Queue(QUEUE_MESSAGES)
        self._error: HyperlobbyError | None = None
        self._closed = False
        loop = asyncio.get_running_loop()
        self._last_write = loop.time()
        # Events that arrived in the same chunk as the end of the handshake.
        self._backlog = [e.data for e in pending if isinstance(e, Message)]
        self._backlog_closed: Closed | None = next((e for e in pending if isinstance(e, Closed)), None)
        self._reader_task = loop.create_task(self._read_loop())
        self._keepalive_task = (
            loop.create_task(self._keepalive_loop()) if keepalive is not None and keepalive > 0 else None
        )

    # -- public API -------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def error(self) -> HyperlobbyError | None:
        """Why the stream was torn down, or None (still open, or closed cleanly)."""
        return self._error

    async def send(self, message: bytes) -> None:
        """Encrypt and write one message, waiting while the socket buffer is full."""
        if self._closed:
            raise self._error or ProtocolError("stream is closed")
        frame = self._core.send(message)
        self._writer.write(frame)
        self._last_write = asyncio.get_running_loop().time()
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            err = ProtocolError("transport failed while sending", cause=repr(exc))
            self._teardown(err)
            raise err from exc

    async def recv(self) -> bytes | None:
        """The next message; None once the peer ended the stream cleanly (or we closed it).

        Raises the error that destroyed the stream, every time it is called afterwards.
        """
        item = await self._queue.get()
        if item is _EOF:
            self._queue.put_nowait(_EOF)  # later calls see the end too
            if self._error is not None:
                raise self._error
            return None
        assert isinstance(item, bytes)
        return item

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        while (msg := await self.recv()) is not None:
            yield msg

    def close(self) -> None:
        """Close now: stop the tasks and the socket. Pending and later ``recv`` calls return None."""
        self._teardown(None)

    async def aclose(self) -> None:
        """Close and wait for the socket to finish closing."""
        self.close()
        await self.wait_closed()

    async def wait_closed(self) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()

    async def __aenter__(self) -> SecretStreamConnection:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- internals --------------------------------------------------------------------

    def _teardown(self, error: HyperlobbyError | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._error = error
        self._core.close(error)
        current = asyncio.current_task()
        for task in (self._reader_task, self._keepalive_task):
            if task is not None and task is not current:
                task.cancel()
        self._writer.close()
        # Wake readers even when the queue is full: drop what is unread only on error.
        if error is not None:
            while not self._queue.empty():
                self._queue.get_nowait()
        try:
            self._queue.put_nowait(_EOF)
        except asyncio.QueueFull:
            # A clean close keeps unread messages; the end marker queues up behind them.
            asyncio.get_running_loop().create_task(self._queue.put(_EOF))

    async def _deliver(self, events: list[Event]) -> bool:
        """Queue messages; returns False once the stream has ended."""
        for ev in events:
            if isinstance(ev, Message):
                await self._queue.put(ev.data)
            elif isinstance(ev, Closed):
                self._teardown(ev.error)
                return False
        return True

    async def _read_loop(self) -> None:
        try:
            for data in self._backlog:
                await self._queue.put(data)
            self._backlog.clear()
            if self._backlog_closed is not None:
                self._teardown(self._backlog_closed.error)
                return
            while not self._closed:
                try:
                    if self._timeout is None:
                        chunk = await self._reader.read(READ_SIZE)
                    else:
                        async with asyncio.timeout(self._timeout):
                            chunk = await self._reader.read(READ_SIZE)
                except TimeoutError:
                    self._teardown(ProtocolError("stream timed out", timeout=self._timeout))
                    return
                except (ConnectionError, OSError) as exc:
                    self._teardown(ProtocolError("transport failed while receiving", cause=repr(exc)))
                    return
                events = self._core.receive_data(chunk) if chunk else self._core.receive_eof()
                if not await self._deliver(events):
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug, not a peer: still end the stream instead of hanging readers
            log.exception("secret-stream reader crashed")
            self._teardown(ProtocolError("internal error in the stream reader", cause=repr(exc)))

    async def _keepalive_loop(self) -> None:
        interval = self._keepalive
        assert interval is not None
        loop = asyncio.get_running_loop()
        while not self._closed:
            idle = loop.time() - self._last_write
            if idle < interval:
                await asyncio.sleep(interval - idle)
                continue
            try:
                self._writer.write(self._core.keepalive())
            except HyperlobbyError:
                return
            self._last_write = loop.time()


async def open_secret_stream(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    is_initiator: bool,
    key_pair: KeyPairLike | None = None,
    *,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    keepalive: float | None = DEFAULT_KEEPALIVE,
    timeout: float | None = None,
    filter_empty: bool = True,
    max_message_size: int = MAX_PLAINTEXT,
) -> SecretStreamConnection:
    """Run the handshake over (reader, writer) and return the open connection.

    ``keepalive``: seconds of write silence before an empty message is sent (None: never).
    ``timeout``: seconds without any incoming bytes before the stream is destroyed (None:
    never, as in Hypercore). On any failure the writer is closed and the error raised
    (HandshakeError for a failed or stalled handshake).
    """
    core = SecretStream(is_initiator, key_pair, filter_empty=filter_empty, max_message_size=max_message_size)
    try:
        async with asyncio.timeout(handshake_timeout):
            pending = await _handshake(reader, writer, core)
    except TimeoutError:
        writer.close()
        raise HandshakeError("handshake timed out", timeout=handshake_timeout) from None
    except HyperlobbyError:
        writer.close()
        raise
    except (ConnectionError, OSError) as exc:
        writer.close()
        raise HandshakeError("transport failed during the handshake", cause=repr(exc)) from exc
    except BaseException:
        writer.close()
        raise
    return SecretStreamConnection(reader, writer, core, pending, keepalive=keepalive, timeout=timeout)


async def _handshake(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, core: SecretStream
) -> list[Event]:
    """Pump bytes until Noise completes; returns the events that followed it in the same chunk."""
    out = core.initiate()
    if out:
        writer.write(out)
    while True:
        chunk = await reader.read(READ_SIZE)
        events = core.receive_data(chunk) if chunk else core.receive_eof()
        out = core.data_to_send()
        if out:
            writer.write(out)
            await writer.drain()
        for i, ev in enumerate(events):
            if isinstance(ev, Closed):
                raise ev.error or HandshakeError("connection closed during the handshake")
            if isinstance(ev, HandshakeComplete):
                return events[i + 1 :]


async def connect(
    host: str,
    port: int,
    key_pair: KeyPairLike | None = None,
    *,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    keepalive: float | None = DEFAULT_KEEPALIVE,
    timeout: float | None = None,
    filter_empty: bool = True,
    max_message_size: int = MAX_PLAINTEXT,
) -> SecretStreamConnection:
    """Open a TCP connection and run the handshake as initiator (both within ``handshake_timeout``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + handshake_timeout
    try:
        async with asyncio.timeout(handshake_timeout):
            reader, writer = await asyncio.open_connection(host, port, limit=STREAM_LIMIT)
    except TimeoutError:
        raise HandshakeError("TCP connect timed out", host=host, port=port) from None
    except OSError as exc:
        raise ProtocolError("TCP connect failed", host=host, port=port, cause=repr(exc)) from exc
    return await open_secret_stream(
        reader,
        writer,
        True,
        key_pair,
        handshake_timeout=max(deadline - loop.time(), 0.001),
        keepalive=keepalive,
        timeout=timeout,
        filter_empty=filter_empty,
        max_message_size=max_message_size,
    )


Handler = Callable[[SecretStreamConnection], Awaitable[None]]


async def serve(
    host: str,
    port: int,
    key_pair: KeyPairLike | None,
    handler: Handler,
    *,
    on_error: Callable[[HyperlobbyError], None] | None = None,
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    keepalive: float | None = DEFAULT_KEEPALIVE,
    timeout: float | None = None,
    filter_empty: bool = True,
    max_message_size: int = MAX_PLAINTEXT,
) -> asyncio.Server:
    """Accept TCP connections; each one handshakes as responder and is passed to ``handler``.

    The connection is closed when the handler returns. Failed handshakes never reach the
    handler; they and errors the handler lets escape go to ``on_error`` (default: a debug
    log line), so one bad peer never disturbs the server.
    """

    def report(err: HyperlobbyError) -> None:
        if on_error is not None:
            on_error(err)
        else:
            log.debug("secret-stream peer failed: %s", err)

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            conn = await open_secret_stream(
                reader,
                writer,
                False,
                key_pair,
                handshake_timeout=handshake_timeout,
                keepalive=keepalive,
                timeout=timeout,
                filter_empty=filter_empty,
                max_message_size=max_message_size,
            )
        except HyperlobbyError as err:
            report(err)
            return
        try:
            await handler(conn)
        except HyperlobbyError as err:
            report(err)
        finally:
            await conn.aclose()

    return await asyncio.start_server(on_client, host, port, limit=STREAM_LIMIT)


__all__ = [
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_KEEPALIVE",
    "SecretStreamConnection",
    "connect",
    "open_secret_stream",
    "serve",
]
