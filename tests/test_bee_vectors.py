"""Hyperbee against the pinned JS hyperbee: identical blocks for identical operations, identical
answers to get/range/peek/diff/history on JS-written trees, and JS reading Python-written ones."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from bee_helpers import answer, apply_op, bee_options
from conftest import load_vectors, run_node
from hyperlobby.bee import Hyperbee
from hyperlobby.core.hypercore import Hypercore

VECTORS = load_vectors("bee")
SCENARIOS = {sc["name"]: sc for sc in VECTORS["scenarios"]}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_python_writes_identical_blocks(name: str) -> None:
    sc = SCENARIOS[name]
    core = Hypercore.create()
    db = Hyperbee(core, **bee_options(sc))
    versions = [1]
    for op in sc["ops"]:
        apply_op(db, sc["text"], op)
        versions.append(core.length)
    assert versions == sc["versions"]
    assert core.length == len(sc["blocks"])
    for i, want in enumerate(sc["blocks"]):
        assert core.get(i).hex() == want, f"block {i} differs"
    for q, want in zip(sc["queries"], sc["answers"], strict=True):
        assert answer(db, sc["text"], q) == want, q


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_python_reads_js_blocks(name: str) -> None:
    sc = SCENARIOS[name]
    core = Hypercore.create()
    core.append([bytes.fromhex(b) for b in sc["blocks"]])
    db = Hyperbee(core, key_encoding=sc["keyEncoding"], value_encoding=sc["valueEncoding"])
    assert Hyperbee.is_hyperbee(core)
    for q, want in zip(sc["queries"], sc["answers"], strict=True):
        assert answer(db, sc["text"], q) == want, q


@pytest.mark.interop
def test_vectors_reproduce_with_js() -> None:
    fresh = json.loads(run_node("vectors/bee.js", timeout=300))
    assert fresh == VECTORS


def _python_scenario(seed: int, text: bool) -> dict[str, Any]:
    """Random writes made by Python (not a replay of JS's script) plus queries about them."""
    rng = random.Random(seed)
    enc = "utf-8" if text else "binary"
    core = Hypercore.create()
    db = Hyperbee(core, key_encoding=enc, value_encoding=enc)
    alphabet = ["a", "b", "é", "z", "0", "~"] if text else ["00", "01", "61", "ff"]

    def key() -> Any:
        s = "".join(rng.choice(alphabet) for _ in range(rng.randrange(6))) + str(rng.randrange(900))
        return s if text else s.encode().hex()

    def value() -> Any:
        s = "v" * rng.randrange(30)
        return s if text else s.encode().hex()

    keys = [key() for _ in range(1500)]
    valid = [1]
    for _ in range(700):
        if rng.random() < 0.25:
            ops = [
                {"op": "del", "key": rng.choice(keys)}
                if rng.random() < 0.3
                else {"op": "put", "key": rng.choice(keys), "value": value()}
                for _ in range(rng.randrange(1, 30))
            ]
            apply_op(db, text, {"op": "batch", "ops": ops})
        elif rng.random() < 0.3:
            apply_op(db, text, {"op": "del", "key": rng.choice(keys)})
        else:
            apply_op(db, text, {"op": "put", "key": rng.choice(keys), "value": value()})
        valid.append(core.length)
    queries: list[dict[str, Any]] = []
    for version in [valid[-1], *rng.sample(valid, 4)]:
        queries += [{"kind": "get", "version": version, "key": rng.choice(keys)} for _ in range(40)]
        queries.append({"kind": "range", "version": version})
        queries.append({"kind": "range", "version": version, "reverse": True, "limit": 50})
        lo, hi = sorted(rng.sample(keys, 2), key=lambda k: k.encode() if text else bytes.fromhex(k))
        queries.append({"kind": "range", "version": version, "gt": lo, "lte": hi})
        queries.append({"kind": "diff", "version": version, "other": rng.choice(valid)})
        queries.append({"kind": "peek", "version": version, "gte": lo})
    queries.append({"kind": "history", "version": valid[-1], "gte": 1, "lt": 80})
    blocks = [core.get(i).hex() for i in range(core.length)]
    answers = [answer(db, text, q) for q in queries]
    return {
        "blocks": blocks,
        "text": text,
        "keyEncoding": enc,
        "valueEncoding": enc,
        "queries": queries,
        "answers": answers,
    }


@pytest.mark.interop
def test_js_reads_python_blocks() -> None:
    scenarios = [_python_scenario(11, True), _python_scenario(12, False)]
    payload = {"scenarios": [{k: v for k, v in sc.items() if k != "answers"} for sc in scenarios]}
    out = json.loads(run_node("vectors/bee.js", "read", input=json.dumps(payload).encode(), timeout=300))
    for sc, got in zip(scenarios, out["answers"], strict=True):
        for q, mine, theirs in zip(sc["queries"], sc["answers"], got, strict=True):
            assert mine == theirs, q
