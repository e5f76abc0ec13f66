"""Hypothesis state machine: a Hyperbee on a SQLite Store against a sorted dict, with batches,
range queries, old versions (checkout + diff) and reopening the store."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from hyperlobby.bee import Hyperbee
from hyperlobby.core.store import Store

# A tiny alphabet makes shared prefixes, empty keys and repeated keys common.
keys = st.binary(min_size=0, max_size=4).map(lambda b: bytes(x % 4 for x in b))
values = st.binary(max_size=8)
ops = st.lists(st.tuples(st.booleans(), keys, values), min_size=1, max_size=25)


def expect_range(
    model: dict[bytes, bytes],
    gt: bytes | None,
    gte: bytes | None,
    lt: bytes | None,
    lte: bytes | None,
    reverse: bool,
    limit: int,
) -> list[tuple[bytes, bytes]]:
    out = []
    for k in sorted(model):
        if gt is not None and not k > gt:
            continue
        if gt is None and gte is not None and not k >= gte:
            continue
        if lt is not None and not k < lt:
            continue
        if lt is None and lte is not None and not k <= lte:
            continue
        out.append((k, model[k]))
    if reverse:
        out.reverse()
    return out if limit < 0 else out[:limit]


class BeeMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="hl-bee-"))
        self.store = Store(self.dir / "bee.db")
        self.bee = Hyperbee(self.store.get(name="bee"))
        self.model: dict[bytes, bytes] = {}
        # version -> model at that version (only versions between operations)
        self.history: dict[int, dict[bytes, bytes]] = {1: {}}

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _record(self) -> None:
        self.history[self.bee.version] = dict(self.model)

    @rule(key=keys, value=values)
    def put(self, key: bytes, value: bytes) -> None:
        assert self.bee.put(key, value)
        self.model[key] = value
        self._record()

    @rule(key=keys)
    def delete(self, key: bytes) -> None:
        before = self.bee.core.length
        assert self.bee.delete(key) == (key in self.model)
        if key not in self.model:
            # nothing is written for a missing key (except the header of a fresh bee)
            assert self.bee.core.length == max(before, 1)
        self.model.pop(key, None)
        self._record()

    @rule(batch=ops)
    def batch(self, batch: list[tuple[bool, bytes, bytes]]) -> None:
        with self.bee.batch() as b:
            for is_put, key, value in batch:
                if is_put:
                    b.put(key, value)
                    self.model[key] = value
                else:
                    b.delete(key)
                    self.model.pop(key, None)
                got = b.get(key)
                assert (got.value if got else None) == self.model.get(key)
        self._record()

    @rule(key=keys)
    def get(self, key: bytes) -> None:
        got = self.bee.get(key)
        assert (got.value if got else None) == self.model.get(key)

    @rule(
        gt=st.none() | keys,
        gte=st.none() | keys,
        lt=st.none() | keys,
        lte=st.none() | keys,
        reverse=st.booleans(),
        limit=st.integers(-1, 6),
    )
    def range(
        self,
        gt: bytes | None,
        gte: bytes | None,
        lt: bytes | None,
        lte: bytes | None,
        reverse: bool,
        limit: int,
    ) -> None:
        got = [
            (e.key, e.value)
            for e in self.bee.range(gt=gt, gte=gte, lt=lt, lte=lte, reverse=reverse, limit=limit)
        ]
        assert got == expect_range(self.model, gt, gte, lt, lte, reverse, limit)

    @rule(data=st.data())
    def old_version(self, data: st.DataObject) -> None:
        version = data.draw(st.sampled_from(sorted(self.history)))
        old = self.history[version]
        snap = self.bee.checkout(version)
        assert [(e.key, e.value) for e in snap.range()] == sorted(old.items())
        changed = {k for k in set(old) | set(self.model) if old.get(k) != self.model.get(k)}
        seen = set()
        for left, right in self.bee.diff(version):
            key = (left or right).key  # type: ignore[union-attr]
            assert (left.value if left else None) == self.model.get(key)
            assert (right.value if right else None) == old.get(key)
            seen.add(key)
        # the diff may also list rewritten keys whose value did not change
        assert changed <= seen

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = Store(self.dir / "bee.db")
        self.bee = Hyperbee(self.store.get(name="bee"))

    @invariant()
    def size(self) -> None:
        assert sum(1 for _ in self.bee.range()) == len(self.model)


TestBeeModel = BeeMachine.TestCase
TestBeeModel.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
