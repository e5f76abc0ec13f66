"""Hypothesis state machine: a Store-backed core against a plain list model, with reopens."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hyperlobby.core.hypercore import Hypercore
from hyperlobby.core.merkle import MerkleTree
from hyperlobby.core.proofs import TreeNode
from hyperlobby.core.store import Store
from hyperlobby.crypto.signing import Verifier
from hyperlobby.errors import BlockNotAvailableError

blocks = st.binary(min_size=0, max_size=300)


class _NoNodes:
    def get_node(self, index: int) -> TreeNode | None:
        return None


def expected_tree_hash(model: list[bytes]) -> bytes:
    tree = MerkleTree(_NoNodes())
    if model:
        tree.apply(tree.append(model))
    return tree.tree_hash()


class CoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="hl-state-"))
        self.path = self.dir / "store.db"
        self.store = Store(self.path, primary_key=b"\x07" * 32)
        self.core: Hypercore = self.store.get(name="model")
        self.model: list[bytes] = []
        self.fork = 0

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(block=blocks)
    def append(self, block: bytes) -> None:
        assert self.core.append(block) == len(self.model) + 1
        self.model.append(block)

    @rule(batch=st.lists(blocks, max_size=20))
    def append_batch(self, batch: list[bytes]) -> None:
        assert self.core.append(batch) == len(self.model) + len(batch)
        self.model.extend(batch)

    @rule(data=st.data())
    def get(self, data: st.DataObject) -> None:
        i = data.draw(st.integers(min_value=0, max_value=len(self.model) + 2))
        if i < len(self.model):
            assert self.core.get(i) == self.model[i]
            assert self.core.has(i)
        else:
            assert not self.core.has(i)
            try:
                self.core.get(i)
            except BlockNotAvailableError:
                pass
            else:
                raise AssertionError("get past the end must fail")

    @precondition(lambda self: len(self.model) > 0)
    @rule(data=st.data())
    def truncate(self, data: st.DataObject) -> None:
        n = data.draw(st.integers(min_value=0, max_value=len(self.model)))
        self.core.truncate(n)
        del self.model[n:]
        self.fork += 1

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = Store(self.path)
        self.core = self.store.get(name="model")

    @rule()
    def reopen_by_key(self) -> None:
        key = self.core.key
        self.store.close()
        self.store = Store(self.path)
        self.core = self.store.get(key=key)
        assert self.core.writable

    @invariant()
    def head_matches_model(self) -> None:
        core = self.core
        assert core.length == len(self.model)
        assert core.byte_length == sum(len(b) for b in self.model)
        assert core.fork == self.fork
        assert core.tree_hash() == expected_tree_hash(self.model)
        if core.length or core.fork:
            assert core.signature is not None
            verifier = Verifier(core.manifest, core.key)
            assert verifier.verify(core.tree_hash(), core.length, core.fork, core.signature)


CoreMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
TestCoreMachine = CoreMachine.TestCase
