"""``Replication.adopt`` over any MessageConnection: an in-memory pair, no sockets, no DHT.

This pins down the contract wire offers to the layers that make connections (HyperDHT's
DhtConnection is one): messages in by a synchronous receiver, a list per read, frames out in
batches, one storage write group per read, the end reported once, cancelling the returned
future closes the connection, a peer's garbage is reported and ends only that connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from hyperlobby.core.store import Store
from hyperlobby.errors import HyperlobbyError
from hyperlobby.wire.replication import MessageConnection, Replication

WAIT = 10.0


class MemoryConnection:
    """One end of an in-memory message connection (delivery on the next loop iteration).

    Everything sent within one loop iteration arrives as one read (one list), as the datagrams
    a UDX socket read takes in at once would.
    """

    def __init__(self, is_initiator: bool, handshake_hash: bytes) -> None:
        self.is_initiator = is_initiator
        self.handshake_hash = handshake_hash
        self.peer: MemoryConnection | None = None
        self.on_messages: Callable[[list[bytes]], None] | None = None
        self.on_close: Callable[[HyperlobbyError | None], None] | None = None
        self.pending: list[bytes] = []
        self.closed = False
        self.error: HyperlobbyError | None = None
        self.sent = 0
        self.batches = 0  # send_batch calls that sent something
        self.reads: list[int] = []  # messages per read delivered to the receiver
        self._outgoing: list[bytes] = []

    @classmethod
    def pair(cls) -> tuple[MemoryConnection, MemoryConnection]:
        h = bytes(range(64))
        a, b = cls(True, h), cls(False, h)
        a.peer, b.peer = b, a
        return a, b

    def send_batch(self, messages: Sequence[bytes]) -> None:
        if self.closed or self.peer is None:
            return
        if not messages:
            return
        self.sent += len(messages)
        self.batches += 1
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self._transmit)
        self._outgoing.extend(bytes(m) for m in messages)

    def _transmit(self) -> None:
        out, self._outgoing = self._outgoing, []
        if self.peer is not None and not self.closed:
            self.peer._deliver(out)

    def _deliver(self, messages: list[bytes]) -> None:
        if self.closed or not messages:
            return
        if self.on_messages is None:
            self.pending.extend(messages)
        else:
            self.reads.append(len(messages))
            self.on_messages(messages)

    def set_batch_receiver(
        self,
        on_messages: Callable[[list[bytes]], None],
        on_close: Callable[[HyperlobbyError | None], None] | None = None,
    ) -> None:
        self.on_messages, self.on_close = on_messages, on_close
        if self.pending:
            pending, self.pending = self.pending, []
            self._deliver(pending)
        if self.closed and on_close is not None:
            on_close(self.error)

    def close(self, error: HyperlobbyError | None = None) -> None:
        if self.closed:
            return
        self.closed, self.error = True, error
        if self.on_close is not None:
            self.on_close(error)
        if self.peer is not None and not self.peer.closed:
            asyncio.get_running_loop().call_soon(self.peer.close)


def _typed(conn: MemoryConnection) -> MessageConnection:
    return conn  # mypy checks the fake against the Protocol wire publishes


async def test_adopt_replicates_and_ends_once() -> None:
    writer_store, reader_store = Store(":memory:"), Store(":memory:")
    errors: list[HyperlobbyError] = []
    writer, reader = Replication(writer_store), Replication(reader_store, on_error=errors.append)
    try:
        core = writer_store.get(name="adopted")
        blocks = [f"adopted {i}".encode() * (i + 1) for i in range(50)]
        core.append(blocks)
        writer.add(core)
        a, b = MemoryConnection.pair()
        done_w = writer.adopt(_typed(b))
        done_r = reader.adopt(_typed(a))
        copy = reader_store.get(key=core.key)
        assert await reader.update(copy, timeout=WAIT) == len(blocks)
        reader.download(copy, 0, len(blocks))
        await reader.wait_downloaded(copy, len(blocks), timeout=WAIT)
        assert [copy.get(i) for i in range(len(blocks))] == blocks
        assert a.sent > 0 and b.sent > 0
        done_r.cancel()  # cancelling closes our end; the other side sees the end too
        await asyncio.wait_for(done_w, WAIT)
        assert a.closed and b.closed
        assert reader.connections == 0 and writer.connections == 0
        assert errors == []
    finally:
        await reader.close()
        await writer.close()
        writer_store.close()
        reader_store.close()


async def test_adopt_reports_garbage_and_drops_only_that_connection() -> None:
    store = Store(":memory:")
    errors: list[HyperlobbyError] = []
    rep = Replication(store, on_error=errors.append)
    try:
        bad_ours, bad_theirs = MemoryConnection.pair()
        good_ours, _good_theirs = MemoryConnection.pair()
        done_bad = rep.adopt(_typed(bad_ours))
        rep.adopt(_typed(good_ours))
        assert rep.connections == 2
        bad_theirs.send_batch([b"\xff\xff\xff\xff not a protomux frame"])
        await asyncio.wait_for(done_bad, WAIT)
        assert bad_ours.closed and bad_ours.error is not None
        assert errors and errors[0] is bad_ours.error
        assert rep.connections == 1 and not good_ours.closed
    finally:
        await rep.close()
        store.close()


async def test_adopting_a_closed_connection_ends_at_once() -> None:
    store = Store(":memory:")
    rep = Replication(store)
    try:
        a, _b = MemoryConnection.pair()
        a.closed = True
        done = rep.adopt(_typed(a))
        assert done.done() and rep.connections == 0
    finally:
        await rep.close()
        store.close()


async def test_one_read_is_one_write_group_and_few_answer_frames(tmp_path: Path) -> None:
    """A read of many requests: one storage transaction for all it verified, answers in batches.

    The reader's store counts its write groups; the writer's side counts the frames it sent.
    With a whole read held, 200 blocks arriving in a handful of reads cannot take 200 groups,
    and 200 requests arriving in a few reads cannot be answered with 200 separate sends.
    """
    writer_store, reader_store = Store(tmp_path / "w.db"), Store(tmp_path / "r.db")
    writer, reader = Replication(writer_store), Replication(reader_store)
    groups = 0
    real_group = reader_store.storage.group

    @contextlib.contextmanager
    def counting_group() -> Iterator[None]:
        nonlocal groups
        groups += 1
        with real_group():
            yield

    reader._write_group = counting_group  # type: ignore[method-assign]
    try:
        core = writer_store.get(name="batched")
        n = 200
        blocks = [bytes([i % 256]) * 512 for i in range(n)]
        core.append(blocks)
        writer.add(core)
        a, b = MemoryConnection.pair()
        writer.adopt(_typed(b))
        reader.adopt(_typed(a))
        copy = reader_store.get(key=core.key)
        reader.download(copy, 0, n)
        await reader.wait_downloaded(copy, n, timeout=WAIT)
        assert [copy.get(i) for i in range(n)] == blocks
        # every read the reader handled is one group (plus none per message)
        assert groups == len(a.reads)
        assert sum(a.reads) > groups  # reads really carried several messages each
        # the writer answered 200 requests in far fewer sends than messages
        assert b.batches < n // 4
    finally:
        await reader.close()
        await writer.close()
        writer_store.close()
        reader_store.close()
