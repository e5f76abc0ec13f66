"""asyncio adapter: replicate a whole :class:`~hyperlobby.core.store.Store` over connections.

Theory of operation
-------------------
:class:`Replication` owns one :class:`~hyperlobby.wire.replicator.CoreReplicator` per core and
runs a :class:`~hyperlobby.wire.session.ReplicationSession` for every connection it is given
(TCP from :meth:`connect` / :meth:`listen`, or any
:class:`~hyperlobby.wire.stream.SecretStreamConnection` a discovery layer made). On each
connection it offers the cores added with :meth:`add` (a core added later is offered on the live
connections at once) and answers the remote's offers for any core the store holds, as corestore
does. The only I/O here is moving frames between the sessions and the
sockets, and a one-second tick that lets silent peers' requests time out.

User-facing calls (:meth:`get`, :meth:`update`, :meth:`download`) translate into wants on the
core's replicator and wait on the core's own events, with timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from hyperlobby.core.hypercore import Hypercore
from hyperlobby.core.store import Store
from hyperlobby.crypto.keys import KeyPair
from hyperlobby.crypto.keys import key_pair as new_key_pair
from hyperlobby.errors import (
    BlockNotAvailableError,
    CoreError,
    HandshakeError,
    HyperlobbyError,
    ProtocolError,
)
from hyperlobby.wire.connection import TICK_SECONDS, ReplicationConnection
from hyperlobby.wire.replicator import CoreReplicator, DownloadRange
from hyperlobby.wire.session import Extension, ReplicationSession
from hyperlobby.wire.stream import SecretStreamConnection

_log = logging.getLogger(__name__)


class Replication:
    """Keeps the cores of a Store in sync with every connected peer."""

    def __init__(
        self,
        store: Store,
        *,
        key_pair: KeyPair | None = None,
        request_timeout: float = 20.0,
        max_inflight: int = 128,
        handshake_timeout: float = 10.0,
        keepalive: float | None = 5.0,
        on_error: Callable[[HyperlobbyError], None] | None = None,
    ) -> None:
        self.store = store
        kp = key_pair or new_key_pair()
        if kp.secret_key is None:
            raise CoreError("replication needs a key pair with a secret key for the Noise handshake")
        self.key_pair = kp
        self._noise_keys = _NoiseKeys(kp.public_key, kp.secret_key)
        self.request_timeout = request_timeout
        self.max_inflight = max_inflight
        self.handshake_timeout = handshake_timeout
        self.keepalive = keepalive
        self.on_error = on_error
        self._replicators: dict[bytes, CoreReplicator] = {}  # discovery key -> replicator
        self._connections: dict[object, _Flushable] = {}  # live connections, each able to flush
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._extensions: list[Extension] = []
        self.closed = False

    # --- cores ---------------------------------------------------------------------------------

    def add(self, core: Hypercore) -> CoreReplicator:
        """Replicate ``core`` (idempotent): offered on every current and future connection."""
        rep = self._replicators.get(core.discovery_key)
        if rep is not None and not rep.closed:
            return rep
        rep = CoreReplicator(
            core, max_inflight=self.max_inflight, request_timeout=self.request_timeout, on_error=self._report
        )
        self._replicators[core.discovery_key] = rep
        # The replicator reacts to local appends by queueing syncs; write them out right after.
        core.on_append(lambda _event: self._flush_all())
        for link in self._connections.values():
            if link.session is not None:
                link.session.open(rep)
            link.flush()
        return rep

    def add_extension(self, ext: Extension) -> None:
        """Run protocol ``ext`` on every current and future connection (see :class:`Extension`)."""
        self._extensions.append(ext)
        for link in self._connections.values():
            if link.session is not None:
                link.session.add_extension(ext)
                ext.attached(link.session)
            link.flush()

    def flush(self) -> None:
        """Write out what sessions queued outside a receive (an extension replying later)."""
        self._flush_all()

    def replicator(self, core: Hypercore) -> CoreReplicator:
        return self.add(core)

    def _resolve(self, discovery_key: bytes) -> CoreReplicator | None:
        rep = self._replicators.get(discovery_key)
        if rep is not None:
            return rep
        core = self.store.get_by_discovery_key(discovery_key)
        return None if core is None else self.add(core)

    # --- what users call -------------------------------------------------------------------------

    def download(self, core: Hypercore, start: int = 0, end: int | None = None) -> DownloadRange:
        """Fetch ``[start, end)`` in the background (``end=None``: everything, live)."""
        rep = self.add(core)
        r = rep.download(start, end)
        self._flush_all()
        return r

    async def get(self, core: Hypercore, index: int, *, timeout: float | None = 10.0) -> bytes:
        """Block ``index``: from local storage, or fetched (and verified) from peers."""
        if core.has(index):
            return core.get(index)
        rep = self.add(core)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def on_block(i: int) -> None:
            if i == index and not fut.done():
                fut.set_result(None)

        def on_append(_event: object) -> None:
            if not fut.done() and core.has(index):
                fut.set_result(None)

        unsubscribe_block = rep.on_block(on_block)
        unsubscribe_append = core.on_append(on_append)
        rep.want_block(index)
        self._flush_all()
        try:
            if not core.has(index):
                await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise BlockNotAvailableError(
                "block not received from any peer in time", index=index, timeout=timeout
            ) from None
        finally:
            unsubscribe_block()
            unsubscribe_append()
            rep.unwant_block(index)
        return core.get(index)

    async def update(self, core: Hypercore, *, timeout: float | None = 10.0) -> int:
        """Wait until we know (and have verified) the longest length our peers offer.

        Returns once a peer has synced and we are at least as long as every synced peer; waits
        for the first peer if there is none yet.
        """
        rep = self.add(core)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            synced = [p for p in rep.peers if p.remote_synced]
            if synced and core.length >= rep.remote_length() and not rep.reorg_pending:
                return core.length
            rep.schedule()
            self._flush_all()
            if deadline is not None and loop.time() >= deadline:
                raise BlockNotAvailableError("no peer brought this core up to date in time", key=core.key)
            await asyncio.sleep(0.005)

    async def wait_downloaded(self, core: Hypercore, end: int, *, timeout: float | None = 60.0) -> None:
        """Wait until blocks ``[0, end)`` are all stored locally."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while core.contiguous_length < end:
            if deadline is not None and loop.time() >= deadline:
                raise BlockNotAvailableError("download did not finish in time", end=end)
            await asyncio.sleep(0.005)

    # --- connections -----------------------------------------------------------------------------

    async def run(self, conn: SecretStreamConnection) -> None:
        """Replicate over ``conn`` until it closes (returns then; raises nothing for peer faults)."""
        session = ReplicationSession(
            self._resolve,
            is_initiator=conn.is_initiator,
            handshake_hash=conn.handshake_hash,
            extensions=self._extensions,
        )
        link = _Link(conn, session, self._write_group)
        self._connections[conn] = link
        try:
            self._open_all(session)
            link.flush()
            await link.pump()
        except HyperlobbyError as err:
            self._report(err)
        finally:
            self._connections.pop(conn, None)
            session.close()
            conn.close()
            self._flush_all()

    def attach(self, conn: SecretStreamConnection) -> asyncio.Task[None]:
        """Start replicating over ``conn`` in the background."""
        task = asyncio.get_running_loop().create_task(self.run(conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def adopt(self, conn: MessageConnection) -> asyncio.Future[None]:
        """Replicate over a connection someone else established (a HyperDHT connection).

        ``conn`` is already authenticated and encrypted; its messages are fed to a session
        synchronously, a list per read (no task per message), and handled like one TCP read:
        one storage write group, answers collected into batch frames and written every
        :data:`~hyperlobby.wire.session.FLUSH_EVERY` messages. Returns a future that completes
        when the connection ends; cancelling it closes the connection.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        session = self._session_for(conn.is_initiator, conn.handshake_hash)
        link = _Adopted(self, conn, session, done)
        self._connections[conn] = link
        self._open_all(session)
        link.flush()
        session.on_output = link.flush
        conn.set_batch_receiver(link.receive_batch, link.ended)
        if not done.done():
            link.start_ticks()

        def on_done(fut: asyncio.Future[None]) -> None:
            if fut.cancelled():
                conn.close()

        done.add_done_callback(on_done)
        return done

    async def connect(self, host: str, port: int, *, timeout: float = 10.0) -> asyncio.Future[None]:
        """Connect to a peer over TCP and replicate in the background.

        Returns once the handshake is done; the returned future completes when the connection
        closes (cancelling it closes the connection).
        """
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(lambda: self._protocol(True), host, port)
                await conn.ready
        except TimeoutError:
            raise HandshakeError("connect timed out", host=host, port=port) from None
        except OSError as exc:
            raise ProtocolError("TCP connect failed", host=host, port=port, cause=repr(exc)) from exc
        closed = conn.closed

        def on_done(fut: asyncio.Future[None]) -> None:
            if fut.cancelled():
                conn.abort()

        closed.add_done_callback(on_done)
        return closed

    async def listen(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Accept peers on ``host:port``; returns the bound address."""
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: ReplicationConnection(self, False, self._noise_keys), host, port
        )
        self._servers.append(server)
        sock = server.sockets[0].getsockname()
        return str(sock[0]), int(sock[1])

    # --- hooks for ReplicationConnection ---------------------------------------------------------

    def _protocol(self, is_initiator: bool) -> ReplicationConnection:
        return ReplicationConnection(
            self,
            is_initiator,
            self._noise_keys,
            handshake_timeout=self.handshake_timeout,
            keepalive=self.keepalive,
        )

    def _session_for(self, is_initiator: bool, handshake_hash: bytes) -> ReplicationSession:
        return ReplicationSession(
            self._resolve,
            is_initiator=is_initiator,
            handshake_hash=handshake_hash,
            extensions=self._extensions,
        )

    def _connected(self, conn: ReplicationConnection) -> None:
        session = conn.session
        assert session is not None
        self._connections[conn] = conn
        self._open_all(session)

    def _disconnected(self, conn: ReplicationConnection, error: HyperlobbyError | None) -> None:
        self._connections.pop(conn, None)
        if error is not None:
            self._report(error)
        self._flush_all()

    def _write_group(self) -> AbstractContextManager[None]:
        return self.store.storage.group()

    def _open_all(self, session: ReplicationSession) -> None:
        """Offer the cores we replicate on a new connection.

        Like corestore, only cores someone asked to replicate (:meth:`add`) are offered up front;
        the remote's opens for any other core in the store are answered when they arrive, so a
        store with thousands of cores does not open thousands of channels per connection.
        """
        for rep in list(self._replicators.values()):
            session.open(rep)
        for ext in self._extensions:
            ext.attached(session)

    @property
    def connections(self) -> int:
        return len(self._connections)

    async def close(self) -> None:
        self.closed = True
        for server in self._servers:
            server.close()
        for conn in list(self._connections):
            if isinstance(conn, ReplicationConnection):
                conn.abort()
            elif isinstance(conn, SecretStreamConnection):
                conn.close()
        for link in list(self._connections.values()):
            if isinstance(link, _Adopted):
                link.conn.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        for rep in self._replicators.values():
            rep.close()
        self._replicators.clear()

    # --- internals -------------------------------------------------------------------------------

    def _flush_all(self) -> None:
        for link in list(self._connections.values()):
            link.flush()

    def _report(self, err: HyperlobbyError) -> None:
        if self.on_error is not None:
            self.on_error(err)
        else:
            _log.info("replication peer dropped: %s", err)


class _Flushable(Protocol):
    @property
    def session(self) -> ReplicationSession | None: ...

    def flush(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _NoiseKeys:
    """The static key pair secret-stream authenticates with (always holds the secret half)."""

    public_key: bytes
    secret_key: bytes


class _Link:
    """One connection's I/O: frames from the socket into the session and back."""

    def __init__(
        self,
        conn: SecretStreamConnection,
        session: ReplicationSession,
        group: Callable[[], AbstractContextManager[None]],
    ) -> None:
        self.conn = conn
        self.session = session
        self.group = group
        self._writer: asyncio.Task[None] | None = None
        self._queue: list[bytes] = []
        self._wake = asyncio.Event()

    def flush(self) -> None:
        """Queue what the session wants to send; the writer task sends it in order."""
        frames = self.session.data_to_send()
        if frames:
            self._queue.extend(frames)
            self._wake.set()

    async def _write_loop(self) -> None:
        while not self.conn.closed:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                frames, self._queue = self._queue, []
                for frame in frames:
                    await self.conn.send(frame)

    async def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            self.session.tick(loop.time())
            self.flush()

    async def pump(self) -> None:
        loop = asyncio.get_running_loop()
        self._writer = loop.create_task(self._write_loop())
        ticker = loop.create_task(self._tick(loop))
        try:
            while True:
                recv = loop.create_task(self.conn.recv())
                done, _ = await asyncio.wait({recv, self._writer}, return_when=asyncio.FIRST_COMPLETED)
                if self._writer in done:
                    recv.cancel()
                    exc = self._writer.exception()
                    if exc is not None:
                        raise exc
                    return
                frame = recv.result()
                if frame is None:
                    return
                with self.group():
                    self.session.receive(frame)
                self.flush()
        finally:
            ticker.cancel()
            if not self._writer.done():
                self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, HyperlobbyError, ConnectionError, OSError):
                await self._writer


class MessageConnection(Protocol):
    """An established, encrypted message connection made outside wire (e.g. by HyperDHT).

    Only what replication needs: the role and handshake hash (they key the session), a way to
    send encrypted messages, and a synchronous receiver hook that marks read boundaries (it
    gets every message of one read as one list, so the read can be handled as a unit, as the
    TCP path handles a socket read). Lives here so wire never imports the layer that makes
    such connections.
    """

    @property
    def is_initiator(self) -> bool: ...

    @property
    def handshake_hash(self) -> bytes: ...

    def send_batch(self, messages: Sequence[bytes]) -> None: ...

    def set_batch_receiver(
        self,
        on_messages: Callable[[list[bytes]], None],
        on_close: Callable[[HyperlobbyError | None], None] | None = None,
    ) -> None: ...

    def close(self, error: HyperlobbyError | None = None) -> None: ...


class _Adopted:
    """Replication over a :class:`MessageConnection`: a read's messages in by callback, frames out
    in batches (the session's ``on_output`` writes out every few messages of a large read)."""

    def __init__(
        self,
        owner: Replication,
        conn: MessageConnection,
        session: ReplicationSession,
        done: asyncio.Future[None],
    ) -> None:
        self.owner = owner
        self.conn = conn
        self.session: ReplicationSession | None = session
        self.done = done
        self._timer: asyncio.TimerHandle | None = None

    def receive_batch(self, messages: list[bytes]) -> None:
        """One read's messages: verified data is committed in one write group, and the answers
        leave as batch frames (see ``ReplicationSession.hold``)."""
        session = self.session
        if session is None:
            return
        try:
            with self.owner._write_group():
                session.hold()
                try:
                    if not self._handle(session, messages):
                        return
                finally:
                    session.release()
        except HyperlobbyError as err:  # the group's commit failed: storage is unusable for now
            self.conn.close(err)
            return
        self.flush()

    def _handle(self, session: ReplicationSession, messages: list[bytes]) -> bool:
        """Feed ``messages`` to the session; False once the connection was closed."""
        for message in messages:
            if self.session is not session:  # ended while handling an earlier one
                return False
            try:
                session.receive(message)
            except HyperlobbyError as err:  # a peer fault, or storage failing under it
                self.conn.close(err)
                return False
            except Exception as exc:  # a bug of ours: drop this peer, keep the node alive
                _log.exception("replication session failed")
                self.conn.close(
                    ProtocolError("internal error while handling a peer message", cause=repr(exc))
                )
                return False
        return True

    def flush(self) -> None:
        session = self.session
        if session is None:
            return
        frames = session.data_to_send()
        if frames:
            try:
                self.conn.send_batch(frames)
            except HyperlobbyError as err:
                self.conn.close(err)

    def start_ticks(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(TICK_SECONDS, self._tick)

    def _tick(self) -> None:
        session = self.session
        if session is None or session.closed:
            return
        session.tick(asyncio.get_running_loop().time())
        self.flush()
        self.start_ticks()

    def ended(self, error: HyperlobbyError | None) -> None:
        if self.session is None:
            return
        session, self.session = self.session, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        session.close()
        self.owner._connections.pop(self.conn, None)
        if error is not None:
            self.owner._report(error)
        self.owner._flush_all()
        if not self.done.done():
            self.done.set_result(None)


__all__ = ["MessageConnection", "Replication"]
