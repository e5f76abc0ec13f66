"""Writer equivocation: two cores signed by one key pair with different histories on one fork.

When they meet, the side whose check fails first asks for the other's whole signed tree
(request id 0), sees a valid signature over a different tree at a length it holds, freezes its
core and shows the other side its own tree, which freezes too. Tested Python<->Python and
against JS hypercore in both roles (JS finding it first, Python finding it first), plus the
pieces alone: ``Hypercore.check_conflict``, the frozen core refusing appends across a reopen,
and a peer that never answers the probe.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from hyperlobby.core.hypercore import Hypercore
from hyperlobby.core.proofs import ProofRequest, UpgradeRequest
from hyperlobby.core.store import Store
from hyperlobby.crypto.keys import key_pair
from hyperlobby.errors import ConflictError, CoreError, ProtocolError, VerificationError
from hyperlobby.wire.messages import Data, Message
from replication_helpers import (
    WAIT,
    Node,
    Processes,
    forge_block,
    hexes,
    hostile_server,
    js_core_spec,
    make_blocks,
    seed_of,
    wait_until,
)

SEED = seed_of("equivocating writer")
A_BLOCKS = make_blocks(3, "history-a")
B_BLOCKS = make_blocks(5, "history-b")


def writer(store: Store, blocks: list[bytes]) -> Hypercore:
    core = Hypercore.create(store.storage, key_pair(SEED))
    core.append(blocks)
    return core


def whole_tree(core: Hypercore, length: int) -> ProofRequest:
    return ProofRequest(fork=core.fork, upgrade=UpgradeRequest(0, length))


# --- the check alone ------------------------------------------------------------------------------


def test_check_conflict_decides_on_the_signed_trees() -> None:
    a = writer(Store(":memory:"), A_BLOCKS)
    b = writer(Store(":memory:"), B_BLOCKS)
    twin = writer(Store(":memory:"), A_BLOCKS)  # same key, same history: no conflict
    assert a.key == b.key == twin.key
    assert not a.check_conflict(twin.proof(whole_tree(twin, 3)))
    assert not a.check_conflict(b.proof(whole_tree(b, 5)))  # longer than a: cannot judge
    forged = b.proof(whole_tree(b, 3))
    assert forged.upgrade is not None
    bad = bytearray(forged.upgrade.signature)
    bad[-1] ^= 1
    with pytest.raises(VerificationError):
        a.check_conflict(replace(forged, upgrade=replace(forged.upgrade, signature=bytes(bad))))
    assert not a.frozen
    seen: list[int] = []
    a.on_conflict(seen.append)
    assert a.check_conflict(b.proof(whole_tree(b, 2)))  # a shorter tree of b than a holds
    assert a.frozen and a.frozen_length == 2 and seen == [2]


def test_frozen_core_refuses_to_write_even_after_reopening(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    store = Store(path)
    a = writer(store, A_BLOCKS)
    key = a.key
    b = writer(Store(":memory:"), B_BLOCKS)
    assert a.check_conflict(b.proof(whole_tree(b, 3)))
    with pytest.raises(CoreError, match="frozen"):
        a.append(b"more")
    with pytest.raises(CoreError, match="frozen"):
        a.truncate(1)
    store.close()
    store = Store(path)
    try:
        again = store.get(key=key)
        assert again.frozen and again.frozen_length == 3 and again.length == 3
        with pytest.raises(CoreError, match="frozen"):
            again.append(b"more")
    finally:
        store.close()


# --- Python <-> Python ----------------------------------------------------------------------------


@pytest.mark.parametrize("shorter_connects", [True, False], ids=["shorter-dials", "longer-dials"])
async def test_two_python_writers_of_one_key_both_freeze(shorter_connects: bool) -> None:
    async with Node() as short_node, Node() as long_node:
        short = writer(short_node.store, A_BLOCKS)
        long = writer(long_node.store, B_BLOCKS)
        short_node.rep.add(short)
        long_node.rep.add(long)
        if shorter_connects:
            await short_node.connect(await long_node.listen())
        else:
            await long_node.connect(await short_node.listen())
        await wait_until(lambda: short.frozen and long.frozen, "both cores to freeze")
        await wait_until(lambda: bool(short_node.errors and long_node.errors), "both sides to report")
        for node in (short_node, long_node):
            assert isinstance(node.errors[0], ConflictError), node.errors
        assert short.frozen_length == long.frozen_length == len(A_BLOCKS)
        with pytest.raises(CoreError, match="frozen"):
            long.append(b"after the conflict")
        assert short.length == len(A_BLOCKS) and long.length == len(B_BLOCKS)  # nothing adopted


async def test_probe_without_answer_ends_in_the_original_error() -> None:
    """A peer whose block fails to verify and who then ignores the probe is dropped after the
    request timeout with the verification error (its channel closed), and nothing is stored."""

    def forge_and_ignore_probe(msg: Message) -> Message | None:
        if isinstance(msg, Data) and msg.request == 0:
            return None
        return forge_block(msg)

    async with Node(request_timeout=1.0) as reader:
        source = writer(Store(":memory:"), B_BLOCKS)
        copy = reader.store.get(key=source.key)
        reader.rep.add(copy)
        async with hostile_server(source, forge_and_ignore_probe) as port:
            await reader.connect(port)
            assert await reader.rep.update(copy, timeout=WAIT) == len(B_BLOCKS)
            reader.rep.download(copy)
            err = await reader.wait_error("the probe to time out", 10)
            assert isinstance(err, ProtocolError) and not isinstance(err, ConflictError)
            assert "does not verify" in str(err)
            assert not copy.frozen and not any(copy.has(i) for i in range(copy.length))


# --- against JS hypercore -------------------------------------------------------------------------


@pytest.mark.interop
@pytest.mark.parametrize("python_holds", ["shorter", "longer"])
async def test_equivocation_with_js_freezes_both(tmp_path: Path, python_holds: str) -> None:
    """Python dials a JS writer using the same key pair. Python shorter: Python's upgrade fails,
    it probes, freezes, and its tree makes JS freeze. Python longer: JS's upgrade fails, JS
    probes us, freezes, and its tree makes Python freeze."""
    ours, theirs = (A_BLOCKS, B_BLOCKS) if python_holds == "shorter" else (B_BLOCKS, A_BLOCKS)
    async with Processes(tmp_path) as procs, Node() as node:
        js, info = await procs.js_serve([js_core_spec(tmp_path, "js", seed=SEED.hex(), blocks=hexes(theirs))])
        core = writer(node.store, ours)
        assert info["cores"][0]["key"] == core.key.hex()
        node.rep.add(core)
        await node.connect(int(info["port"]))
        event = await js.expect("conflict")
        assert event["length"] == len(A_BLOCKS) and event["fork"] == 0
        await wait_until(lambda: core.frozen, "the Python core to freeze")
        await wait_until(lambda: bool(node.errors), "Python to report the conflict")
        assert isinstance(node.errors[0], ConflictError)
        assert core.frozen_length == len(A_BLOCKS) and core.length == len(ours)
