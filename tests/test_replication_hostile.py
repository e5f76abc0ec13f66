"""Hostile peers against an honest Python Replication, while an honest reader keeps working.

The honest server serves a core S (blocks the honest reader downloads) and wants the blocks of a
core T whose signed length it already trusts but of which it holds no block; a hostile peer
offers T and misbehaves in exactly one way. For every attack the server must report a
HyperlobbyError for that connection and close it, store nothing unverified (T still holds no
block, S is unchanged), and keep the honest reader's connection working: the reader is
connected before the attack, fetches half of S, and finishes (plus a live append) during and
after it, without ever reconnecting.

The hostile peers are scripted with the sans-IO pieces: a real ReplicationSession whose
outgoing messages are rewritten (forged blocks, broken proofs, made-up request ids), a raw
protomux (wrong capabilities), or a hand-made secret-stream (garbage, huge length prefixes,
stalled handshakes). The last tests turn it around: an honest reader fetching from a hostile
server drops it and completes from an honest one.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import pytest

from hyperlobby.core.hypercore import Hypercore
from hyperlobby.core.store import Store
from hyperlobby.crypto.caps import replication_capability
from hyperlobby.errors import DecodeError, HandshakeError, HyperlobbyError, ProtocolError
from hyperlobby.wire import replication as replication_module
from hyperlobby.wire.connection import ReplicationConnection
from hyperlobby.wire.messages import (
    ALIASES,
    HYPERCORE_MESSAGES,
    PROTOCOL,
    Data,
    Handshake,
    Message,
    encode_handshake,
)
from hyperlobby.wire.protomux import Mux
from hyperlobby.wire.stream import SecretStreamConnection, connect
from replication_helpers import (
    HOST,
    WAIT,
    Node,
    Rewrite,
    ScriptedPeer,
    break_proof,
    forge_block,
    hostile_server,
    make_blocks,
    new_writer,
    raw_secret_stream,
    read_until_closed,
    renumber_data,
    stored_indexes,
    trust_length,
    wait_until,
)

HOSTILE_WAIT = 8.0  # the honest side must hang up on a hostile peer well within this
S_BLOCKS = make_blocks(160, "served")
W_BLOCKS = make_blocks(24, "wanted")


@dataclass
class Scene:
    server: Node
    port: int
    served: Hypercore  # S: the server writes it, the honest reader downloads it
    wanted: Hypercore  # T: the server trusts its length, holds no block, and wants them all
    source: Hypercore  # the writer of T, in the hostile peer's own store
    reader: Node
    reader_copy: Hypercore

    def assert_untouched(self) -> None:
        assert self.wanted.length == len(W_BLOCKS)
        assert stored_indexes(self.wanted) == []  # nothing unverified (nor anything at all) stored
        assert not self.wanted.has(0)
        assert self.served.length >= len(S_BLOCKS)
        assert [self.served.get(i) for i in range(len(S_BLOCKS))] == S_BLOCKS

    async def finish_honest_reader(self) -> None:
        """The honest reader completes S, including a block appended now, on its first connection."""
        extra = make_blocks(1, f"live-{self.served.length}")
        self.served.append(extra)
        total = self.served.length
        await self.reader.fetch_all(self.reader_copy, total)
        assert self.reader_copy.get(total - 1) == extra[0]
        assert [self.reader_copy.get(i) for i in range(len(S_BLOCKS))] == S_BLOCKS
        assert self.reader.errors == []
        assert self.reader.rep.connections == 1

    def single_error(self) -> HyperlobbyError:
        assert len(self.server.errors) == 1, self.server.errors
        return self.server.errors[0]


@asynccontextmanager
async def scene(compat: bool = False) -> AsyncIterator[Scene]:
    hostile_store = Store(":memory:")
    try:
        async with Node() as server, Node() as reader:
            served = new_writer(server.store, compat, "served")
            served.append(S_BLOCKS)
            source = new_writer(hostile_store, compat, "wanted")
            source.append(W_BLOCKS)
            wanted = server.store.get(key=source.key)
            trust_length(wanted, source)
            server.rep.add(served)
            server.rep.add(wanted)
            server.rep.download(wanted)
            port = await server.listen()

            copy = reader.store.get(key=served.key)
            reader.rep.add(copy)
            await reader.connect(port)
            await reader.rep.update(copy, timeout=WAIT)
            reader.rep.download(copy, 0, len(S_BLOCKS) // 2)
            await reader.rep.wait_downloaded(copy, len(S_BLOCKS) // 2, timeout=WAIT)
            yield Scene(server, port, served, wanted, source, reader, copy)
    finally:
        hostile_store.close()


async def during_attack(s: Scene, attack: Awaitable[object]) -> None:
    """Run the attack and the rest of the honest download at the same time."""
    await asyncio.gather(attack, s.finish_honest_reader())
    # The hostile connection is gone on the server too; the honest reader's is still there.
    await wait_until(lambda: s.server.rep.connections == 1, "the server to drop the hostile peer")


# --- hostile data: a real session whose answers are rewritten -----------------------------------


async def scripted_attack(s: Scene, rewrite: Rewrite) -> ScriptedPeer:
    conn = await asyncio.wait_for(connect(HOST, s.port), WAIT)
    hostile = ScriptedPeer(conn, [s.source], rewrite)
    ended = await hostile.run(HOSTILE_WAIT)
    # From the hostile side the connection simply ends (or breaks); it never hangs.
    assert ended is None or isinstance(ended, HyperlobbyError)
    return hostile


@pytest.mark.parametrize("compat", [False, True], ids=["manifest", "compat"])
async def test_forged_block_is_rejected(compat: bool) -> None:
    async with scene(compat) as s:
        await during_attack(s, scripted_attack(s, forge_block))
        err = s.single_error()
        assert isinstance(err, ProtocolError)
        assert "does not verify" in str(err)
        s.assert_untouched()


async def test_bad_proof_is_rejected() -> None:
    async with scene() as s:
        await during_attack(s, scripted_attack(s, break_proof))
        err = s.single_error()
        assert isinstance(err, ProtocolError)
        assert "does not verify" in str(err)
        s.assert_untouched()


async def test_data_for_a_request_never_made_is_rejected() -> None:
    """Genuine proofs, but answering request ids the server never used: dropped, connection closed."""
    async with scene() as s:
        await during_attack(s, scripted_attack(s, renumber_data))
        err = s.single_error()
        assert isinstance(err, ProtocolError)
        s.assert_untouched()


async def test_honest_source_still_works_after_the_attacks() -> None:
    """Control: the same scene with an unmodified session does deliver T (so the attacks above
    failed because of what they changed, not because the scene cannot work)."""
    async with scene() as s:
        conn = await asyncio.wait_for(connect(HOST, s.port), WAIT)
        honest = ScriptedPeer(conn, [s.source], None)
        runner = asyncio.ensure_future(honest.run(WAIT))
        try:
            await s.server.rep.wait_downloaded(s.wanted, len(W_BLOCKS), timeout=WAIT)
        finally:
            conn.close()
            await asyncio.wait_for(runner, WAIT)
        assert [s.wanted.get(i) for i in range(len(W_BLOCKS))] == W_BLOCKS
        assert s.server.errors == []


# --- hostile channel opens ----------------------------------------------------------------------


def other_core_capability(s: Scene, conn: SecretStreamConnection) -> bytes:
    return replication_capability(s.served.key, conn.handshake_hash, True)


def reflected_capability(s: Scene, conn: SecretStreamConnection) -> bytes:
    return replication_capability(s.wanted.key, conn.handshake_hash, False)


@pytest.mark.parametrize(
    "make_cap",
    [other_core_capability, reflected_capability, lambda _s, _c: os.urandom(32)],
    ids=["other-core", "reflected", "random"],
)
async def test_wrong_capability_is_rejected(
    make_cap: Callable[[Scene, SecretStreamConnection], bytes],
) -> None:
    async with scene() as s:

        async def attack() -> None:
            conn = await asyncio.wait_for(connect(HOST, s.port), WAIT)
            try:
                mux = Mux()
                handshake = encode_handshake(Handshake(capability=make_cap(s, conn)))
                mux.open_channel(
                    PROTOCOL,
                    s.wanted.discovery_key,
                    handshake,
                    aliases=ALIASES,
                    message_types=len(HYPERCORE_MESSAGES),
                )
                for frame in mux.data_to_send():
                    await conn.send(frame)
                await drain_connection(conn)
            finally:
                conn.close()

        await during_attack(s, attack())
        err = s.single_error()
        assert isinstance(err, ProtocolError)
        assert "capability" in str(err)
        s.assert_untouched()


async def drain_connection(conn: SecretStreamConnection) -> None:
    """Read until the honest side closes the connection (bounded)."""

    async def drain() -> None:
        try:
            while await conn.recv() is not None:
                pass
        except HyperlobbyError:
            pass

    try:
        await asyncio.wait_for(drain(), HOSTILE_WAIT)
    except TimeoutError:
        pytest.fail("the honest peer kept the hostile connection open")


# --- hostile bytes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [b"\x00\x01\x05ab", b"\xff" * 12, b"\x00\x00\x05\x01"],
    ids=["truncated-open", "huge-varint", "truncated-batch"],
)
async def test_garbage_message_after_handshake(garbage: bytes) -> None:
    """Well-encrypted, but not protomux."""
    async with scene() as s:

        async def attack() -> None:
            conn = await asyncio.wait_for(connect(HOST, s.port), WAIT)
            try:
                await conn.send(garbage)
                await drain_connection(conn)
            finally:
                conn.close()

        await during_attack(s, attack())
        err = s.single_error()
        assert isinstance(err, ProtocolError)
        assert "protomux" in str(err)
        s.assert_untouched()


async def test_unencrypted_garbage_after_handshake() -> None:
    async with scene() as s:

        async def attack() -> None:
            reader, writer, _ss = await raw_secret_stream(s.port)
            try:
                writer.write(b"\x20\x00\x00" + os.urandom(32))  # a frame that fails authentication
                await writer.drain()
                await read_until_closed(reader, HOSTILE_WAIT)
            finally:
                writer.close()

        await during_attack(s, attack())
        err = s.single_error()
        assert isinstance(err, ProtocolError)
        assert "authentication" in str(err)
        s.assert_untouched()


async def test_16mib_length_prefix_in_the_handshake() -> None:
    """The first frame claims 16 MiB: refused at once (handshake frames are small), not buffered."""
    async with scene() as s:

        async def attack() -> None:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, s.port), WAIT)
            try:
                writer.write(b"\xff\xff\xff" + os.urandom(1000))
                await writer.drain()
                await read_until_closed(reader, HOSTILE_WAIT)
            finally:
                writer.close()

        await during_attack(s, attack())
        err = s.single_error()
        assert isinstance(err, DecodeError)
        assert "exceeds" in str(err)
        s.assert_untouched()


async def test_16mib_length_prefix_after_the_handshake() -> None:
    """A maximal (2^24 - 1 byte) frame of junk after the handshake: read, rejected, connection closed."""
    async with scene() as s:

        async def attack() -> None:
            reader, writer, _ss = await raw_secret_stream(s.port)
            try:
                writer.write(b"\xff\xff\xff")
                chunk = os.urandom(1 << 20)
                for _ in range(16):
                    writer.write(chunk if _ < 15 else chunk[:-1])
                    try:
                        await asyncio.wait_for(writer.drain(), HOSTILE_WAIT)
                    except (ConnectionError, OSError):
                        break
                await read_until_closed(reader, HOSTILE_WAIT)
            finally:
                writer.close()

        await during_attack(s, attack())
        err = s.single_error()
        assert isinstance(err, ProtocolError)
        assert "authentication" in str(err)
        s.assert_untouched()


class QuickHandshakeConnection(ReplicationConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "handshake_timeout": 1.0})


async def test_stalled_handshake(monkeypatch: pytest.MonkeyPatch) -> None:
    """Half a Noise message, then silence: dropped after the handshake timeout (shortened to 1 s
    here), while the honest reader is served meanwhile."""
    monkeypatch.setattr(replication_module, "ReplicationConnection", QuickHandshakeConnection)
    async with scene() as s:

        async def attack() -> None:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, s.port), WAIT)
            try:
                writer.write(b"\x20\x00\x00" + os.urandom(10))  # 13 of the 35 bytes of msg1
                await writer.drain()
                await read_until_closed(reader, HOSTILE_WAIT)
            finally:
                writer.close()

        await during_attack(s, attack())
        err = s.single_error()
        assert isinstance(err, HandshakeError)
        assert "timed out" in str(err)
        s.assert_untouched()


async def test_many_hostile_peers_at_once() -> None:
    """Every attack above at the same time, next to the honest reader: one error each."""
    async with scene() as s:

        async def garbage() -> None:
            conn = await asyncio.wait_for(connect(HOST, s.port), WAIT)
            try:
                await conn.send(b"\xff" * 12)
                await drain_connection(conn)
            finally:
                conn.close()

        attacks = [
            scripted_attack(s, forge_block),
            scripted_attack(s, break_proof),
            garbage(),
        ]
        await during_attack(s, asyncio.gather(*attacks))
        await wait_until(lambda: len(s.server.errors) >= len(attacks), "one error per hostile peer")
        assert all(isinstance(e, ProtocolError) for e in s.server.errors)
        assert len(s.server.errors) == len(attacks)
        s.assert_untouched()


# --- the other way round: an honest reader and a hostile server ---------------------------------


@pytest.mark.parametrize(
    "rewrite", [forge_block, break_proof, renumber_data], ids=["forged", "bad-proof", "unsolicited"]
)
async def test_reader_drops_a_hostile_server_and_completes_from_an_honest_one(rewrite: Rewrite) -> None:
    async with Node() as honest, Node() as reader:
        core = new_writer(honest.store, False, "both")
        core.append(W_BLOCKS)
        honest.rep.add(core)
        copy = reader.store.get(key=core.key)
        reader.rep.add(copy)
        async with hostile_server(core, rewrite) as hostile_port:
            await reader.connect(hostile_port)
            assert await reader.rep.update(copy, timeout=WAIT) == len(W_BLOCKS)  # genuine upgrade
            reader.rep.download(copy)
            err = await reader.wait_error("the reader to drop the hostile server", HOSTILE_WAIT)
            assert isinstance(err, ProtocolError)
            await wait_until(lambda: reader.rep.connections == 0, "the hostile connection to close")
            assert stored_indexes(copy) == []

            await reader.connect(await honest.listen())
            await reader.rep.wait_downloaded(copy, len(W_BLOCKS), timeout=WAIT)
        assert [copy.get(i) for i in range(len(W_BLOCKS))] == W_BLOCKS
        assert len(reader.errors) == 1


def forge_upgrade(msg: Message) -> Message | None:
    """Every upgrade carries a signature with one bit flipped (tree nodes genuine)."""
    if isinstance(msg, Data) and msg.upgrade is not None:
        sig = bytearray(msg.upgrade.signature)
        sig[-1] ^= 1
        return replace(msg, upgrade=replace(msg.upgrade, signature=bytes(sig)))
    return msg


@pytest.mark.parametrize("compat", [False, True], ids=["manifest", "compat"])
async def test_reader_rejects_a_forged_upgrade_signature(compat: bool) -> None:
    async with Node() as honest, Node() as reader:
        core = new_writer(honest.store, compat, "signed")
        core.append(W_BLOCKS)
        honest.rep.add(core)
        copy = reader.store.get(key=core.key)
        reader.rep.add(copy)
        async with hostile_server(core, forge_upgrade) as hostile_port:
            await reader.connect(hostile_port)
            reader.rep.download(copy)
            err = await reader.wait_error("the reader to drop the hostile server", HOSTILE_WAIT)
            assert isinstance(err, ProtocolError)
            assert copy.length == 0 and copy.signature is None  # the forged length was not adopted

            await reader.connect(await honest.listen())
            assert await reader.fetch_all(copy) == len(W_BLOCKS)
        assert [copy.get(i) for i in range(len(W_BLOCKS))] == W_BLOCKS
        assert len(reader.errors) == 1
