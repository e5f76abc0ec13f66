"""Reorgs: a reader follows its writer's truncation (fork + 1) the way JS hypercore does.

A reorg (hypercore.md §8) replaces a trusted signed head with one on a newer fork, so it is the
one place where a reader deletes verified data. These tests pin down both halves:

* it happens, and keeps exactly the shared prefix: the core-level tests narrow the divergence
  with hash proofs like the JS ``ReorgBatch`` and check ``ancestors`` equals the truncation point;
  the replication tests show a Python reader following a Python writer and a JS writer (and a
  second Python reader following the first), and a JS reader following a Python writer, with the
  kept blocks still held (not refetched), the dropped ones gone, and the new ones downloadable;
* it never happens on bad evidence: a badly signed tree, a lower or equal fork, a tampered
  narrowing proof or a stale batch is refused with nothing changed, and a hostile peer that
  sends one over the wire is disconnected.

Every wait is bounded and only 127.0.0.1 is used; interop tests fail (never skip) without node.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from hyperlobby.core.hypercore import AppendEvent, Hypercore
from hyperlobby.core.merkle import ReorgBatch
from hyperlobby.core.proofs import BlockRequest, HashRequest, Proof, ProofRequest, UpgradeRequest
from hyperlobby.core.storage.memory import MemoryStorage
from hyperlobby.core.store import Store
from hyperlobby.errors import CoreError, HyperlobbyError, ProtocolError, VerificationError
from hyperlobby.wire.messages import Data, Message, Request, Sync
from hyperlobby.wire.replicator import Peer
from hyperlobby.wire.stream import connect
from replication_helpers import (
    HOST,
    WAIT,
    Node,
    Processes,
    ScriptedPeer,
    hexes,
    js_core_spec,
    make_blocks,
    new_writer,
    seed_of,
    sha,
    stored_indexes,
    wait_stored,
    wait_until,
)

COMPAT = pytest.mark.parametrize("compat", [False, True], ids=["manifest", "compat"])


# --- helpers ------------------------------------------------------------------------------------


def copy_all(src: Hypercore, dst: Hypercore) -> None:
    """Give ``dst`` the signed head and every block of ``src`` through verified proofs."""
    if dst.manifest is None and src.manifest is not None and not src.compat:
        dst.set_manifest(src.manifest)
    if dst.length < src.length:
        up = UpgradeRequest(dst.length, src.length - dst.length)
        dst.verify_and_store(src.proof(ProofRequest(fork=src.fork, upgrade=up)))
    for i in range(src.length):
        if not dst.has(i):
            req = BlockRequest(i, dst.missing_nodes(i))
            dst.verify_and_store(src.proof(ProofRequest(fork=src.fork, block=req)))


def full_tree(src: Hypercore) -> Proof:
    return src.proof(ProofRequest(fork=src.fork, upgrade=UpgradeRequest(0, src.length)))


def narrow(batch: ReorgBatch, src: Hypercore) -> int:
    """Answer the batch's hash requests from ``src`` until it is finished; returns how many."""
    steps = 0
    while not batch.finished:
        req = HashRequest(2 * batch.want_start, batch.want_nodes)
        batch.update(src.proof(ProofRequest(fork=src.fork, hash=req)))
        steps += 1
        assert steps < 64
    return steps


def snapshot(core: Hypercore) -> tuple[object, ...]:
    blocks = tuple(core.get(i) if core.has(i) else None for i in range(core.length))
    return (core.fork, core.length, core.byte_length, core.roots, core.signature, blocks)


def tamper(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# --- the core: verify, narrow, apply ------------------------------------------------------------

CUTS = [
    (10, 7, 2),  # the new block 7 changes root 7: narrowed down to leaf 14
    (10, 8, 0),  # truncated to a whole root: no hash request needed
    (16, 5, 20),  # the new fork is much longer than the old one
    (5, 5, 3),  # nothing dropped, but the writer moved to a new fork and grew
    (33, 17, 1),
    (10, 0, 4),  # everything replaced
    (64, 63, 1),
]


@COMPAT
@pytest.mark.parametrize(("n", "cut", "extra"), CUTS)
def test_reorg_keeps_exactly_the_shared_prefix(compat: bool, n: int, cut: int, extra: int) -> None:
    w = Hypercore.create(compat=compat)
    w.append(make_blocks(n, "old"))
    r = Hypercore.open(MemoryStorage(), w.key)
    copy_all(w, r)
    events: list[AppendEvent] = []
    r.on_append(events.append)

    w.truncate(cut)
    w.append(make_blocks(extra, "new"))
    batch = r.verify_reorg(full_tree(w))
    assert r.fork == 0 and r.length == n  # verifying changes nothing
    narrow(batch, w)
    update = r.reorg(batch)

    assert update.ancestors == cut
    assert (r.fork, r.length, r.byte_length) == (1, w.length, w.byte_length)
    assert r.roots == w.roots and r.signature == w.signature
    assert stored_indexes(r) == list(range(cut))
    assert [r.get(i) for i in range(cut)] == [w.get(i) for i in range(cut)]
    assert r.contiguous_length == cut
    assert events == [AppendEvent(w.length, w.byte_length, 1, truncated=True)]
    assert (events[0].ancestors, events[0].dropped) == (cut, n - cut)
    # The new blocks verify against the adopted tree, using the nodes it kept.
    copy_all(w, r)
    assert [r.get(i) for i in range(w.length)] == [w.get(i) for i in range(w.length)]


@pytest.mark.parametrize("cut", [70, 64, 45, 41, 20])
def test_sparse_reader_reorg(cut: int) -> None:
    """A reader holding scattered blocks (and so only some nodes) narrows as far as its nodes
    allow: it keeps every block it held before the divergence and never a node of the old fork."""
    w = Hypercore.create()
    w.append(make_blocks(100, "sparse-old"))
    r = Hypercore.open(MemoryStorage(), w.key)
    assert w.manifest is not None
    r.set_manifest(w.manifest)
    r.verify_and_store(full_tree(w))
    held = [*range(40, 51), *range(60, 67)]
    for i in held:
        r.verify_and_store(w.proof(ProofRequest(fork=0, block=BlockRequest(i, r.missing_nodes(i)))))
    w.truncate(cut)
    w.append(make_blocks(5, "sparse-new"))
    batch = r.verify_reorg(full_tree(w))
    narrow(batch, w)
    update = r.reorg(batch)
    assert update.ancestors <= cut
    assert stored_indexes(r) == [i for i in held if i < update.ancestors]
    assert r.roots == w.roots and r.fork == 1
    kept = [i for i in range(256) if r.get_node(i) is not None]
    assert all(r.get_node(i) == w.get_node(i) for i in kept)  # nothing left over from fork 0
    copy_all(w, r)
    assert [r.get(i) for i in range(r.length)] == [w.get(i) for i in range(w.length)]


def test_reorg_is_stored_in_one_transaction(tmp_path: Path) -> None:
    """After a reorg the SQLite store reopens on the new fork, with the prefix and nothing else."""
    w = Hypercore.create()
    w.append(make_blocks(40, "persist"))
    path = str(tmp_path / "reader.db")
    with Store(path) as store:
        copy_all(w, store.get(key=w.key))
    w.truncate(25)
    w.append(make_blocks(3, "persist-new"))
    with Store(path) as store:
        r = store.get(key=w.key)
        batch = r.verify_reorg(full_tree(w))
        narrow(batch, w)
        r.reorg(batch)
    with Store(path) as store:
        r = store.get(key=w.key)
        assert (r.fork, r.length, r.roots, r.signature) == (1, 28, w.roots, w.signature)
        assert stored_indexes(r) == list(range(25))
        copy_all(w, r)
        assert [r.get(i) for i in range(28)] == [w.get(i) for i in range(28)]


def test_reorg_from_a_bare_proof_drops_the_differing_root() -> None:
    """Without hash proofs the divergence is known only to root precision: the whole root goes
    (safe: those blocks are fetched again), and the rest is as after a narrowed reorg."""
    w = Hypercore.create()
    w.append(make_blocks(10, "bare"))
    r = Hypercore.open(MemoryStorage(), w.key)
    copy_all(w, r)
    w.truncate(7)
    w.append(make_blocks(2, "bare-new"))
    update = r.reorg(full_tree(w))
    assert update.ancestors == 0  # root 7 (blocks 0-7) differs
    assert (r.fork, r.length, r.roots) == (1, 9, w.roots)
    assert stored_indexes(r) == []
    copy_all(w, r)
    assert [r.get(i) for i in range(9)] == [w.get(i) for i in range(9)]


def test_forged_reorgs_change_nothing() -> None:
    w = Hypercore.create()
    w.append(make_blocks(12, "forge"))
    r = Hypercore.open(MemoryStorage(), w.key)
    copy_all(w, r)
    before = snapshot(r)
    same_fork = full_tree(w)
    w.truncate(9)
    w.append(make_blocks(2, "forge-new"))
    good = full_tree(w)
    assert good.upgrade is not None

    bad_signature = replace(good, upgrade=replace(good.upgrade, signature=tamper(good.upgrade.signature)))
    other_key = Hypercore.create()
    other_key.truncate(0)
    other_key.append(make_blocks(11, "forge-other"))
    foreign = full_tree(other_key)  # genuinely signed, fork 1, but by another writer
    node0 = good.upgrade.nodes[0]
    bad_tree = replace(
        good,
        upgrade=replace(
            good.upgrade, nodes=(replace(node0, hash=tamper(node0.hash)), *good.upgrade.nodes[1:])
        ),
    )
    lower = replace(good, fork=0)  # the new tree, presented as our own fork
    for proof in (bad_signature, foreign, bad_tree, same_fork, lower, replace(good, upgrade=None)):
        with pytest.raises(VerificationError):
            r.reorg(proof)
        assert snapshot(r) == before

    # A narrowing proof that does not lead to the signed divergence node is refused too.
    batch = r.verify_reorg(good)
    assert not batch.finished
    honest = w.proof(ProofRequest(fork=w.fork, hash=HashRequest(2 * batch.want_start, batch.want_nodes)))
    assert honest.hash is not None
    leaf = honest.hash.nodes[0]
    forged = replace(
        honest,
        hash=replace(honest.hash, nodes=(replace(leaf, hash=tamper(leaf.hash)), *honest.hash.nodes[1:])),
    )
    with pytest.raises(VerificationError):
        batch.update(forged)
    assert snapshot(r) == before

    # A batch verified against an older head cannot be applied once the core moved on.
    narrow(batch, w)
    r.reorg(batch)
    with pytest.raises(CoreError):
        r.reorg(batch)
    assert r.fork == 1


# --- Python writer, Python readers --------------------------------------------------------------


@COMPAT
async def test_python_reader_follows_python_truncation(compat: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A live reader follows truncate + append, a sparse one keeps what it had and refetches
    nothing, and one that connects only after the truncation finds the divergence with hash
    requests (the writer's answers to its early requests cannot tell it where the trees part)."""
    asked: list[tuple[str, int]] = []
    original = Peer.on_request

    def on_request(self: Peer, msg: Request) -> None:
        if self.core.fork > 0 and msg.block is not None:
            asked.append(("block", msg.block.index))
        if msg.hash is not None:
            asked.append(("hash", msg.hash.index))
        original(self, msg)

    monkeypatch.setattr(Peer, "on_request", on_request)
    blocks = make_blocks(60, "py-trunc")
    fresh = make_blocks(8, "py-trunc-new")
    async with Node() as writer, Node() as live, Node() as sparse, Node() as late:
        core = new_writer(writer.store, compat)
        core.append(blocks)
        writer.rep.add(core)
        port = await writer.listen()
        live_copy = live.store.get(key=core.key)
        live.rep.add(live_copy)
        sparse_copy = sparse.store.get(key=core.key)
        sparse.rep.add(sparse_copy)
        await live.connect(port)
        await sparse.connect(port)
        await live.fetch_all(live_copy)
        live.rep.download(live_copy)  # everything, following the writer
        await sparse.rep.update(sparse_copy, timeout=WAIT)
        wanted = sparse.rep.download(sparse_copy, 0, len(blocks))
        await sparse.rep.wait_downloaded(sparse_copy, len(blocks), timeout=WAIT)
        sparse.rep.replicator(sparse_copy).undownload(wanted)  # done: it wants nothing more

        late_copy = late.store.get(key=core.key)
        copy_all(core, late_copy)
        late.rep.add(late_copy)

        core.truncate(41)
        core.append(fresh)
        total = 41 + len(fresh)
        assert [a for a in asked if a[0] == "hash"] == []
        await late.connect(port)
        await wait_until(lambda: late_copy.fork == 1 and late_copy.length == total, "late reorg")
        assert stored_indexes(late_copy) == list(range(41))
        # Root 79 (blocks 32-47) differs: one hash proof narrows it to 87 (40-47), one more to block 41.
        assert [a for a in asked if a[0] == "hash"] == [("hash", 64), ("hash", 80)]
        await wait_until(lambda: sparse_copy.fork == 1 and sparse_copy.length == total, "sparse reorg")
        assert not sparse.rep.replicator(sparse_copy).reorg_pending
        await wait_until(lambda: live_copy.fork == 1 and live_copy.length == total, "live reorg")
        # The sparse reader keeps the shared prefix and holds none of the replaced blocks.
        assert stored_indexes(sparse_copy) == list(range(41))
        assert sparse_copy.roots == core.roots and sparse_copy.signature == core.signature
        # The live reader fetches the new blocks by itself.
        await wait_stored(live_copy, range(total))
        expected = blocks[:41] + fresh
        assert [live_copy.get(i) for i in range(total)] == expected
        # Only the new blocks were fetched after the truncation (the prefix was kept, not refetched).
        assert sorted({i for kind, i in asked if kind == "block"}) == list(range(41, total))

        sparse.rep.download(sparse_copy, 0, total)
        await sparse.rep.wait_downloaded(sparse_copy, total, timeout=WAIT)
        assert [sparse_copy.get(i) for i in range(total)] == expected
        assert writer.errors == [] and live.errors == [] and sparse.errors == [] and late.errors == []


async def test_reorg_travels_through_a_reader_and_survives_repeated_truncations(tmp_path: Path) -> None:
    """writer -> A -> B: B never talks to the writer and learns of each fork from A's sync."""
    blocks = make_blocks(50, "chain")
    async with Node() as writer, Node(Store(str(tmp_path / "a.db"))) as a, Node() as b:
        core = new_writer(writer.store, False)
        core.append(blocks)
        writer.rep.add(core)
        a_copy = a.store.get(key=core.key)
        a.rep.add(a_copy)
        b_copy = b.store.get(key=core.key)
        b.rep.add(b_copy)
        await a.connect(await writer.listen())
        await b.connect(await a.listen())
        await a.fetch_all(a_copy)
        a.rep.download(a_copy)
        await b.fetch_all(b_copy, len(blocks))
        b.rep.download(b_copy)

        core.truncate(30)
        core.append(make_blocks(5, "chain-1"))
        core.truncate(33)  # fork 2, before the readers may have caught up with fork 1
        core.append(make_blocks(4, "chain-2"))
        expected = [core.get(i) for i in range(core.length)]
        for copy in (a_copy, b_copy):
            await wait_until(lambda copy=copy: copy.fork == 2 and copy.length == 37, "both readers on fork 2")
            await wait_stored(copy, range(37))
            assert [copy.get(i) for i in range(37)] == expected
            assert copy.roots == core.roots
        assert writer.errors == [] and a.errors == [] and b.errors == []


# --- hostile newer forks ------------------------------------------------------------------------


def bad_signature(msg: Message) -> Message | None:
    if isinstance(msg, Data) and msg.upgrade is not None:
        return replace(msg, upgrade=replace(msg.upgrade, signature=tamper(msg.upgrade.signature)))
    return msg


def bad_narrowing(msg: Message) -> Message | None:
    if isinstance(msg, Data) and msg.hash is not None and msg.hash.nodes:
        first = msg.hash.nodes[0]
        bad = replace(first, hash=tamper(first.hash))
        return replace(msg, hash=replace(msg.hash, nodes=(bad, *msg.hash.nodes[1:])))
    return msg


@pytest.mark.parametrize("rewrite", [bad_signature, bad_narrowing], ids=["signature", "narrowing"])
async def test_forged_newer_fork_closes_the_connection(rewrite: object) -> None:
    """A peer that really is on a newer fork, but sends a badly signed tree or a tampered hash
    proof: the reader hangs up on it and its core is exactly as before."""
    blocks = make_blocks(20, "hostile")
    hostile_store = Store(":memory:")
    try:
        async with Node() as reader:
            source = new_writer(hostile_store, False, "hostile")
            source.append(blocks)
            copy = reader.store.get(key=source.key)
            copy_all(source, copy)
            reader.rep.add(copy)
            reader.rep.download(copy)
            port = await reader.listen()
            before = snapshot(copy)

            source.truncate(13)
            source.append(make_blocks(3, "hostile-new"))
            conn = await asyncio.wait_for(connect(HOST, port), WAIT)
            hostile = ScriptedPeer(conn, [source], rewrite)  # type: ignore[arg-type]
            ended = await hostile.run(8.0)
            assert ended is None or isinstance(ended, HyperlobbyError)
            await wait_until(lambda: bool(reader.errors), "the reader to report the forged fork")
            err = reader.errors[0]
            assert isinstance(err, ProtocolError) and "newer fork" in str(err)
            assert snapshot(copy) == before
            await wait_until(lambda: reader.rep.connections == 0, "the reader to drop the hostile peer")
    finally:
        hostile_store.close()


# --- against JS ---------------------------------------------------------------------------------


@pytest.mark.interop
@COMPAT
async def test_python_reader_follows_js_truncation(
    compat: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connected reader follows two truncations; one that was offline during the first asks
    the JS writer for hash proofs to find the divergence, and keeps exactly the shared blocks."""
    hash_requests: list[int] = []
    original = Peer.request

    def request(self: Peer, **kw: Any) -> Any:
        if kw.get("hash") is not None:
            hash_requests.append(kw["hash"].index)
        return original(self, **kw)

    monkeypatch.setattr(Peer, "request", request)
    blocks = make_blocks(45, "js-trunc")
    fresh = make_blocks(6, "js-trunc-new")
    late_path = str(tmp_path / "late.db")
    async with Processes(tmp_path) as procs, Node() as reader:
        spec = js_core_spec(
            tmp_path, "w", seed=seed_of("js-trunc").hex(), compat=compat, blocks=hexes(blocks)
        )
        js, info = await procs.js_serve([spec])
        key = bytes.fromhex(info["cores"][0]["key"])
        copy = reader.store.get(key=key)
        reader.rep.add(copy)
        await reader.connect(info["port"])
        await reader.fetch_all(copy)
        reader.rep.download(copy)
        old_roots = copy.roots
        async with Node(Store(late_path)) as late:
            late_copy = late.store.get(key=key)
            late.rep.add(late_copy)
            await late.connect(info["port"])
            await late.fetch_all(late_copy)

        await js.send({"cmd": "truncate", "core": 0, "length": 30})
        assert (await js.expect("truncated"))["fork"] == 1
        await wait_until(lambda: copy.fork == 1 and copy.length == 30, "the reader to follow the truncation")
        assert stored_indexes(copy) == list(range(30))
        assert copy.roots != old_roots

        assert await js.append(0, fresh) == 30 + len(fresh)
        await copy.wait_for_length(30 + len(fresh), timeout=WAIT)
        await wait_stored(copy, range(30 + len(fresh)))
        assert [copy.get(i) for i in range(30 + len(fresh))] == blocks[:30] + fresh
        assert hash_requests == []  # the connected reader saw each step: no narrowing needed

        async with Node(Store(late_path)) as late:
            late_copy = late.store.get(key=key)
            assert (late_copy.fork, late_copy.length) == (0, len(blocks))
            late.rep.add(late_copy)
            await late.connect(info["port"])
            await wait_until(lambda: late_copy.fork == 1, "the late reader to reorg")
            assert late_copy.length == 30 + len(fresh)
            assert stored_indexes(late_copy) == list(range(30))
            # Root 31 (blocks 0-31) differs; each JS hash proof halves the candidates down to block 30.
            assert hash_requests == [0, 32, 48, 56, 60]
            await late.fetch_all(late_copy)
            assert [late_copy.get(i) for i in range(36)] == blocks[:30] + fresh
            assert late.errors == []

        await js.send({"cmd": "truncate", "core": 0, "length": 33})  # fork 2, inside the new blocks
        await js.append(0, fresh[:1])
        await wait_until(lambda: copy.fork == 2 and copy.length == 34, "the reader to follow fork 2")
        await wait_stored(copy, range(34))
        assert [copy.get(i) for i in range(34)] == blocks[:30] + fresh[:3] + fresh[:1]
        assert reader.errors == []


@pytest.mark.interop
@COMPAT
async def test_js_reader_follows_python_truncation(
    compat: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hash_requests: list[int] = []
    original = Peer.on_request

    def on_request(self: Peer, msg: Request) -> None:
        if msg.hash is not None:
            hash_requests.append(msg.hash.index)
        original(self, msg)

    monkeypatch.setattr(Peer, "on_request", on_request)
    blocks = make_blocks(45, "py-js-trunc")
    fresh = make_blocks(6, "py-js-trunc-new")
    async with Processes(tmp_path) as procs, Node() as writer:
        core = new_writer(writer.store, compat)
        core.append(blocks)
        writer.rep.add(core)
        js = await procs.js(
            {
                "role": "watch",
                "port": await writer.listen(),
                "cores": [js_core_spec(tmp_path, "r", key=core.key.hex(), compat=compat)],
            }
        )
        assert (await js.expect("watching"))["cores"][0]["length"] == len(blocks)
        await js.send({"cmd": "report", "core": 0})
        first = await js.expect("report")
        assert first["digests"] == [sha(b) for b in blocks]

        core.truncate(30)
        core.append(fresh)
        ev = await js.expect("truncate")
        # Root 31 (blocks 0-31) differs; JS narrowed that down with hash requests our writer
        # answered, and kept exactly the 30 shared blocks.
        assert (ev["ancestors"], ev["fork"]) == (30, 1)
        assert hash_requests
        # The reorg adopts the writer's whole new head at once (JS emits no "append" for it).
        await js.send({"cmd": "report", "core": 0})
        rep = await js.expect("report")
        assert (rep["length"], rep["fork"]) == (30 + len(fresh), 1)
        assert rep["digests"] == [sha(b) for b in blocks[:30] + fresh]
        assert writer.errors == []


@COMPAT
async def test_truncation_during_a_download(compat: bool) -> None:
    """The writer truncates while the reader has hundreds of block requests in flight: those are
    withdrawn (their late answers are for the old fork), and the download finishes on the new one."""
    blocks = make_blocks(3000, "mid")
    fresh = make_blocks(40, "mid-new")
    async with Node() as writer, Node() as reader:
        core = new_writer(writer.store, compat)
        core.append(blocks)
        writer.rep.add(core)
        copy = reader.store.get(key=core.key)
        reader.rep.add(copy)
        await reader.connect(await writer.listen())
        await reader.rep.update(copy, timeout=WAIT)
        rep = reader.rep.replicator(copy)
        cut: list[int] = []

        def on_block(_index: int) -> None:
            # The writer truncates the moment the reader has stored 300 blocks (it has others in flight).
            if not cut and len(stored_indexes(copy)) >= 300:
                cut.append(sum(len(p.inflight) for p in rep.peers))
                core.truncate(1500)
                core.append(fresh)

        rep.on_block(on_block)
        reader.rep.download(copy)
        total = 1500 + len(fresh)
        await wait_until(lambda: copy.fork == 1 and copy.length == total, "the reader to follow")
        await wait_stored(copy, range(total))
        expected = blocks[:1500] + fresh
        assert all(copy.get(i) == expected[i] for i in range(total))
        assert copy.roots == core.roots
        assert cut and cut[0] > 0  # requests were in flight when the fork changed
        assert writer.errors == [] and reader.errors == []


@COMPAT
async def test_fresh_reader_of_a_truncated_core(compat: bool) -> None:
    """A reader that never saw fork 0 adopts the writer's fork straight away (an empty reorg)."""
    async with Node() as writer, Node() as reader:
        core = new_writer(writer.store, compat)
        core.append(make_blocks(30, "fresh-old"))
        core.truncate(12)
        core.append(make_blocks(5, "fresh-new"))
        writer.rep.add(core)
        copy = reader.store.get(key=core.key)
        reader.rep.add(copy)
        await reader.connect(await writer.listen())
        await wait_until(lambda: copy.fork == 1 and copy.length == 17, "the reader to adopt fork 1")
        reader.rep.download(copy, 0, 17)
        await reader.rep.wait_downloaded(copy, 17, timeout=WAIT)
        assert [copy.get(i) for i in range(17)] == [core.get(i) for i in range(17)]
        assert writer.errors == [] and reader.errors == []


async def test_an_unproven_fork_claim_does_not_block_the_real_one() -> None:
    """A peer claims a huge fork it cannot prove (its answer is noData); the reader asks it once
    and then follows the honest writer's real fork 1."""
    blocks = make_blocks(20, "claim")
    hostile_store = Store(":memory:")
    try:
        async with Node() as writer, Node() as reader:
            core = new_writer(writer.store, False, "claim")
            core.append(blocks)
            writer.rep.add(core)
            copy = reader.store.get(key=core.key)
            copy_all(core, copy)
            reader.rep.add(copy)
            port = await reader.listen()
            liar_copy = hostile_store.get(key=core.key)
            copy_all(core, liar_copy)

            def huge_fork(msg: Message) -> Message | None:
                return replace(msg, fork=10**12) if isinstance(msg, Sync) else msg

            conn = await asyncio.wait_for(connect(HOST, port), WAIT)
            liar = ScriptedPeer(conn, [liar_copy], huge_fork)
            runner = asyncio.ensure_future(liar.run(WAIT))
            try:
                asked = reader.rep.replicator(copy)
                await wait_until(
                    lambda: any(p.fork_asked == 10**12 for p in asked.peers), "the reader to ask the liar"
                )
                core.truncate(14)
                core.append(make_blocks(2, "claim-new"))
                await writer.connect(port)
                await wait_until(lambda: copy.fork == 1 and copy.length == 16, "the reader to follow fork 1")
                assert stored_indexes(copy) == list(range(14))
                assert reader.errors == [] and writer.errors == []
            finally:
                conn.close()
                await asyncio.wait_for(runner, WAIT)
    finally:
        hostile_store.close()


@pytest.mark.interop
async def test_js_reader_follows_a_python_reader_that_reorged(tmp_path: Path) -> None:
    """writer -> Python reader -> JS reader: the Python reader serves its adopted fork (the new
    tree and the hash proofs JS narrows with) well enough for JS to land on the same head."""
    blocks = make_blocks(45, "relay")
    fresh = make_blocks(6, "relay-new")
    async with Processes(tmp_path) as procs, Node() as writer, Node() as relay:
        core = new_writer(writer.store, False)
        core.append(blocks)
        writer.rep.add(core)
        copy = relay.store.get(key=core.key)
        relay.rep.add(copy)
        await relay.connect(await writer.listen())
        await relay.fetch_all(copy)
        relay.rep.download(copy)
        js = await procs.js(
            {
                "role": "watch",
                "port": await relay.listen(),
                "cores": [js_core_spec(tmp_path, "r", key=core.key.hex())],
            }
        )
        assert (await js.expect("watching"))["cores"][0]["length"] == len(blocks)
        await js.send({"cmd": "report", "core": 0})
        assert (await js.expect("report"))["digests"] == [sha(b) for b in blocks]

        core.truncate(30)
        core.append(fresh)
        ev = await js.expect("truncate")
        assert (ev["ancestors"], ev["fork"]) == (30, 1)
        await js.send({"cmd": "report", "core": 0})
        rep = await js.expect("report")
        assert (rep["length"], rep["fork"]) == (36, 1)
        assert rep["digests"] == [sha(b) for b in blocks[:30] + fresh]
        assert writer.errors == [] and relay.errors == []
