"""Hyperbee: block codecs against JS vectors, the API (subs, checkouts, batches, cas, history,
watch, truncation), and malformed blocks from a peer (always DecodeError, never another crash)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import load_vectors
from hyperlobby.bee import Header, Hyperbee, Metadata, Node, YoloIndex
from hyperlobby.bee.messages import (
    ExtCache,
    Extension,
    ExtGet,
    ExtIterator,
    Level,
    decode_index_levels,
)
from hyperlobby.core.hypercore import Hypercore
from hyperlobby.crypto.keys import key_pair
from hyperlobby.errors import CoreError, DecodeError

MESSAGES = load_vectors("bee")["messages"]


def hx(s: str | None) -> bytes | None:
    return None if s is None else bytes.fromhex(s)


# --- codecs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", MESSAGES["header"], ids=lambda c: c["encoded"][:24])
def test_header_codec(case: dict[str, Any]) -> None:
    v = case["value"]
    md = v.get("metadata")
    metadata = None if md is None else Metadata(hx(md.get("contentFeed")), hx(md.get("userData")))
    header = Header(v["protocol"], metadata)
    assert header.encode().hex() == case["encoded"]
    assert Header.decode(bytes.fromhex(case["encoded"])) == header


@pytest.mark.parametrize("case", MESSAGES["node"], ids=lambda c: c["encoded"][:24])
def test_node_codec(case: dict[str, Any]) -> None:
    v = case["value"]
    node = Node(bytes.fromhex(v["index"]), bytes.fromhex(v["key"]), hx(v["value"]))
    assert node.encode().hex() == case["encoded"]
    assert Node.decode(bytes.fromhex(case["encoded"])) == node


@pytest.mark.parametrize("case", MESSAGES["index"], ids=lambda c: c["encoded"][:24] or "empty")
def test_index_codec(case: dict[str, Any]) -> None:
    index = YoloIndex(tuple(Level(tuple(lv["keys"]), tuple(lv["children"])) for lv in case["value"]))
    assert index.encode().hex() == case["encoded"]
    assert YoloIndex.decode(bytes.fromhex(case["encoded"])) == index


def _ext(v: dict[str, Any]) -> Extension:
    cache = get = iterator = None
    if "cache" in v:
        c = v["cache"]
        cache = ExtCache(c["start"], c["end"], tuple(c["blocks"]))
    if "get" in v:
        g = v["get"]
        get = ExtGet(g.get("version"), hx(g.get("key")))
    if "iterator" in v:
        i = v["iterator"]
        iterator = ExtIterator(
            i.get("version"),
            hx(i.get("gte")),
            hx(i.get("gt")),
            hx(i.get("lte")),
            hx(i.get("lt")),
            i.get("limit"),
            i.get("reverse"),
            tuple(i.get("checkpoint", ())),
        )
    return Extension(cache, get, iterator)


@pytest.mark.parametrize("case", MESSAGES["extension"], ids=lambda c: c["encoded"][:24])
def test_extension_codec(case: dict[str, Any]) -> None:
    ext = _ext(case["value"])
    assert ext.encode().hex() == case["encoded"]
    assert Extension.decode(bytes.fromhex(case["encoded"])) == ext


def test_unknown_fields_are_skipped() -> None:
    raw = Node(b"", b"k", b"v").encode() + bytes.fromhex("2005") + bytes.fromhex("2a0100")
    assert Node.decode(raw) == Node(b"", b"k", b"v")
    assert decode_index_levels(bytes.fromhex("0a051801220100") + bytes.fromhex("1000")) == [([], [])]


# --- API ------------------------------------------------------------------------------------------


def make_bee(**opts: Any) -> Hyperbee:
    return Hyperbee(Hypercore.create(), **opts)


def test_spec_example_blocks() -> None:
    core = Hypercore.create(key_pair=key_pair(bytes(32)), compat=True)
    db = Hyperbee(core, key_encoding="utf-8", value_encoding="utf-8")
    db.put("b", "2")
    db.put("a", "1")
    db.put("c", "3")
    assert db.delete("a")
    assert not db.delete("zzz")
    assert core.length == 5
    assert core.get(4).hex() == "0a060a040a020103120161"
    assert db.get("a") is None
    assert db.checkout(4).get("a").value == "1"  # type: ignore[union-attr]
    assert [h.type for h in db.history()] == ["put", "put", "put", "del"]
    assert db.get_by_seq(4).value is None


def test_encodings_and_peek() -> None:
    db = make_bee(key_encoding="utf-8", value_encoding="json")
    for i, name in enumerate(["émile", "bob", "alice", "✓"]):
        db.put(name, {"n": i, "name": name})
    assert db.get("bob").value == {"n": 1, "name": "bob"}  # type: ignore[union-attr]
    assert db.core.get(2).endswith(b'{"n":1,"name":"bob"}')
    assert [e.key for e in db.range()] == ["alice", "bob", "émile", "✓"]
    assert [e.key for e in db.range(reverse=True, limit=2)] == ["✓", "émile"]
    assert db.peek().key == "alice"  # type: ignore[union-attr]
    assert db.peek(reverse=True, lt="émile").key == "bob"  # type: ignore[union-attr]
    assert db.peek(gt="✓") is None
    assert db.version == 5


def test_sub_prefixes_match_js() -> None:
    db = make_bee(key_encoding="utf-8", value_encoding="utf-8")
    users = db.sub("users")
    users.put("alice", "1")
    users.sub("x").put("k", "2")
    db.put("users", "main")
    db.put("usersz", "after")
    assert db.core.get(1).hex().endswith("120b" + b"users\x00alice".hex() + "1a0131")
    assert db.get(b"users\x00x\x00k").value == "2"  # type: ignore[union-attr]
    # the sub's default range: gt prefix||00, lt = prefix with its last byte bumped
    assert [(e.key, e.value) for e in users.range()] == [("alice", "1"), ("x\x00k", "2")]
    assert users.get("alice").key == "alice"  # type: ignore[union-attr]
    assert [e.key for e in users.sub("x").range()] == ["k"]
    assert users.prefix == b"users\x00"
    custom = db.sub("c", sep=b"!")
    assert custom.prefix == b"c!"
    assert custom.sub("d").prefix == b"c!d\x00"  # nested subs use the parent's sep (as JS)


def test_batch_atomic_and_locked() -> None:
    db = make_bee()
    db.put(b"a", b"1")
    length = db.core.length
    with db.batch() as b:
        b.put(b"b", b"2")
        b.delete(b"a")
        assert b.get(b"b").value == b"2"  # type: ignore[union-attr]
        assert b.get(b"a") is None
        assert db.core.length == length  # nothing appended yet
        with pytest.raises(CoreError):
            db.put(b"c", b"3")
    assert db.core.length == length + 2
    assert db.get(b"a") is None
    with pytest.raises(RuntimeError), db.batch() as b:
        b.put(b"z", b"z")
        raise RuntimeError("boom")
    assert db.get(b"z") is None
    db.put(b"c", b"3")  # the lock was released
    assert db.batch().flush() == db.version  # an empty batch appends nothing


def test_cas_and_always_duplicate() -> None:
    db = make_bee(always_duplicate=False)
    assert db.put(b"k", b"v")
    length = db.core.length
    assert not db.put(b"k", b"v")
    assert db.core.length == length
    assert not db.put(b"k", b"w", cas=lambda prev, new: prev.value == b"nope")
    assert db.put(b"k", b"w", cas=lambda prev, new: prev.value == b"v" and new.value == b"w")
    assert not db.delete(b"k", cas=lambda prev, new: False)
    assert db.get(b"k").value == b"w"  # type: ignore[union-attr]


def test_checkout_snapshot_and_diff() -> None:
    db = make_bee()
    for i in range(50):
        db.put(b"k%02d" % i, b"%d" % i)
    snap = db.snapshot()
    v = snap.version
    db.delete(b"k10")
    db.put(b"k20", b"new")
    db.put(b"zz", b"z")
    assert snap.get(b"k10").value == b"10"  # type: ignore[union-attr]
    assert not snap.writable
    with pytest.raises(CoreError):
        snap.put(b"x", b"y")
    diff = [
        (a.key if a else None, b.key if b else None, a.value if a else None, b.value if b else None)
        for a, b in db.diff(v)
    ]
    assert diff == [
        (None, b"k10", None, b"10"),
        (b"k20", b"k20", b"new", b"20"),
        (b"zz", None, b"z", None),
    ]
    assert list(db.diff(v, gte=b"k15", lt=b"z")) == list(db.diff(snap, gte=b"k15", lt=b"z"))
    assert len(list(db.diff(v, limit=1))) == 1
    assert db.checkout(0).version == 1 and list(db.checkout(1).range()) == []


def test_header_metadata() -> None:
    feed = bytes(range(32))
    db = make_bee(metadata=Metadata(content_feed=feed))
    assert db.delete(b"nothing") is False  # still writes the header, like JS
    assert db.core.length == 1
    assert db.get_header().metadata == Metadata(content_feed=feed)
    assert db.core.get(0).hex() == "0a0868797065726265651222" + "0a20" + feed.hex()
    assert Hyperbee.is_hyperbee(db.core)
    other = Hypercore.create()
    other.append(b"not a header")
    assert not Hyperbee.is_hyperbee(other)


def test_truncation_drops_cached_blocks() -> None:
    db = make_bee()
    for i in range(20):
        db.put(b"%02d" % i, b"a")
    snap = db.snapshot()
    db.core.truncate(10)  # type: ignore[attr-defined]
    with pytest.raises(CoreError):
        snap.get(b"01")
    assert db.get(b"15") is None
    db.put(b"15", b"b")
    assert db.get(b"15").value == b"b"  # type: ignore[union-attr]
    assert [e.key for e in db.range()] == [b"%02d" % i for i in range(9)] + [b"15"]


def test_cache_is_bounded_by_bytes() -> None:
    db = make_bee(cache_bytes=1 << 20)
    big = b"x" * (200 << 10)
    for i in range(30):
        db.put(b"%02d" % i, big)
    assert db.cache._bytes <= 1 << 20 and 1 <= len(db.cache) < 10
    assert all(e.value == big for e in db.range())  # evicted blocks are read again


async def test_watch_yields_on_changes_in_range() -> None:
    db = make_bee()
    db.put(b"a", b"1")
    watcher = db.watch(gte=b"m")
    got: list[tuple[int, int]] = []

    async def consume() -> None:
        async for current, previous in watcher:
            got.append((current.version, previous.version))
            if len(got) == 2:
                return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)
    db.put(b"b", b"outside")  # not in range: no event
    await asyncio.sleep(0.01)
    assert got == []
    db.put(b"n", b"inside")
    await asyncio.sleep(0.01)
    assert got == [(4, 3)]
    with db.batch() as b:
        b.put(b"x", b"1")
        b.put(b"y", b"2")
    await asyncio.wait_for(task, 2)
    assert got == [(4, 3), (6, 4)]
    watcher.close()
    assert [x async for x in watcher] == []


# --- malformed blocks -----------------------------------------------------------------------------


def bee_with_block(raw: bytes, before: int = 3) -> Hyperbee:
    """A bee whose last block is ``raw`` (after a few valid puts)."""
    db = make_bee()
    for i in range(before):
        db.put(b"k%d" % i, b"v")
    db.core.append(raw)  # type: ignore[arg-type]
    return db


def node_block(
    levels: list[tuple[list[int], list[int]]], key: bytes = b"k9", value: bytes | None = b"v"
) -> bytes:
    index = YoloIndex(tuple(Level(tuple(k), tuple(c)) for k, c in levels)).encode()
    return Node(index, key, value).encode()


def exercise(db: Hyperbee) -> None:
    db.get(b"k1")
    db.get(b"zz")
    list(db.range())
    list(db.range(reverse=True, gte=b"k0"))
    list(db.diff(2))
    db.put(b"new", b"v")
    db.delete(b"k1")


MALFORMED = {
    "truncated": Node(b"", b"key", b"value").encode()[:-2],
    "missing key": bytes.fromhex("0a00"),
    "missing index": bytes.fromhex("1201611a0162"),
    "wrong wire type": bytes.fromhex("0800120161"),
    "varint too long": bytes.fromhex("0a") + b"\xff" * 11,
    "header as node": Header().encode(),
    "garbage index": Node(b"\x0a\x05\x0a\x09\x01", b"k", b"v").encode(),
    "odd children": Node(bytes.fromhex("0a050a0101120101"), b"k", b"v").encode(),
    "key in the future": node_block([([9], [])]),
    "key zero": node_block([([0], [])]),
    "child in the future": node_block([([1], [99, 0, 1, 0])]),
    "child offset past index": node_block([([1], [4, 7, 3, 0])]),
    "too few children": node_block([([1, 2], [3, 0, 3, 0])]),
    "self cycle": node_block([([1], [4, 0, 4, 0])]),
    "index field huge": bytes.fromhex("0aff7f"),
    "packed overruns level": Node(bytes.fromhex("0a030a0501"), b"k", b"v").encode(),
    "empty root level": node_block([]),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_blocks_raise_decode_error(name: str) -> None:
    db = bee_with_block(MALFORMED[name])
    with pytest.raises(DecodeError):
        exercise(db)


def test_reference_to_malformed_older_block() -> None:
    # the root is fine but points (as key and child) at a broken block 2
    db = make_bee()
    db.put(b"a", b"1")
    db.core.append(b"\x0a\x00")  # type: ignore[arg-type]  (block 2: no key)
    db.core.append(node_block([([1, 3], [])], key=b"c"))  # type: ignore[arg-type]
    db.core.append(node_block([([1], [2, 0, 3, 0])], key=b"d"))  # type: ignore[arg-type]
    with pytest.raises(DecodeError):
        list(db.range())


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_fuzzed_blocks_only_raise_decode_error(data: st.DataObject) -> None:
    db = make_bee()
    for i in range(12):
        db.put(b"k%02d" % i, b"v%d" % i)
    last = bytearray(db.core.get(db.core.length - 1))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(last) - 1))
        last[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(last)))
    db.core.append(bytes(last[:cut]))
    with contextlib.suppress(DecodeError):
        exercise(db)
