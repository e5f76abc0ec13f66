"""hypercore/alpha message codecs against bytes printed by JS hypercore 11.39.5 (vectors/messages.js)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import load_vectors, run_node
from hyperlobby.core.proofs import (
    BlockRequest,
    DataBlock,
    DataHash,
    DataSeek,
    DataUpgrade,
    HashRequest,
    SeekRequest,
    TreeNode,
    UpgradeRequest,
)
from hyperlobby.errors import DecodeError, EncodeError
from hyperlobby.wire.messages import (
    HYPERCORE_MESSAGES,
    Bitfield,
    Cancel,
    Data,
    Extension,
    Handshake,
    Message,
    NoData,
    Range,
    Request,
    Sync,
    Unwant,
    Want,
    decode_handshake,
    decode_message,
    encode_handshake,
    encode_message,
    manifest_size,
)

VECTORS = load_vectors("messages")


def _b(h: str | None) -> bytes | None:
    return None if h is None else bytes.fromhex(h)


def _nodes(items: list[dict[str, Any]]) -> tuple[TreeNode, ...]:
    return tuple(TreeNode(n["index"], n["size"], bytes.fromhex(n["hash"])) for n in items)


def from_js(name: str, v: dict[str, Any]) -> Message:
    """Build our record from the JS object as printed by the vector script."""
    if name == "sync":
        return Sync(
            v["fork"],
            v["length"],
            v["remoteLength"],
            v["canUpgrade"],
            v["uploading"],
            v["downloading"],
            v["hasManifest"],
            v["allowPush"],
        )
    if name == "request":

        def pair(cls: Any, key: str, a: str, b: str) -> Any:
            return cls(v[key][a], v[key][b]) if v[key] else None

        return Request(
            v["id"],
            v["fork"],
            pair(BlockRequest, "block", "index", "nodes"),
            pair(HashRequest, "hash", "index", "nodes"),
            pair(SeekRequest, "seek", "bytes", "padding"),
            pair(UpgradeRequest, "upgrade", "start", "length"),
            v["manifest"],
            v["priority"],
        )
    if name == "cancel":
        return Cancel(v["request"])
    if name == "data":
        blk, hsh, sk, up = v["block"], v["hash"], v["seek"], v["upgrade"]
        return Data(
            v["request"],
            v["fork"],
            DataBlock(blk["index"], bytes.fromhex(blk["value"]), _nodes(blk["nodes"])) if blk else None,
            DataHash(hsh["index"], _nodes(hsh["nodes"])) if hsh else None,
            DataSeek(sk["bytes"], _nodes(sk["nodes"])) if sk else None,
            DataUpgrade(
                up["start"],
                up["length"],
                _nodes(up["nodes"]),
                _nodes(up["additionalNodes"]),
                _b(up["signature"]) or b"",
            )
            if up
            else None,
            _b(v["manifest"]),
        )
    if name == "noData":
        return NoData(v["request"], v["reason"] or None)
    if name in ("want", "unwant"):
        return (Want if name == "want" else Unwant)(v["start"], v["length"], v["any"])
    if name == "bitfield":
        return Bitfield(v["start"], tuple(v["bitfield"]))
    if name == "range":
        return Range(v["start"], v["length"], v["drop"])
    if name == "extension":
        return Extension(v["name"], bytes.fromhex(v["message"]))
    raise AssertionError(name)


def _normalise(msg: Message) -> Message:
    # JS reports an absent noData reason as 0 and a present reason 0 also as 0.
    if isinstance(msg, NoData) and msg.reason == 0:
        return NoData(msg.request, None)
    return msg


@pytest.mark.parametrize("vec", VECTORS["encode"], ids=lambda v: f"{v['name']}-{v['hex'][:24]}")
def test_encode_matches_js(vec: dict[str, Any]) -> None:
    msg = from_js(vec["name"], vec["value"])
    assert encode_message(msg) == (vec["type"], bytes.fromhex(vec["hex"]))
    assert _normalise(decode_message(vec["type"], bytes.fromhex(vec["hex"]))) == from_js(
        vec["name"], vec["decoded"]
    )


@pytest.mark.parametrize("vec", VECTORS["decode"], ids=lambda v: f"{v['name']}-{v['hex']}")
def test_decode_tolerates_like_js(vec: dict[str, Any]) -> None:
    got = _normalise(decode_message(vec["type"], bytes.fromhex(vec["hex"])))
    assert got == from_js(vec["name"], vec["decoded"])


@pytest.mark.parametrize("vec", VECTORS["reject"], ids=lambda v: f"{v['name']}-{v['hex']}")
def test_decode_rejects_like_js(vec: dict[str, Any]) -> None:
    with pytest.raises(DecodeError):
        decode_message(vec["type"], bytes.fromhex(vec["hex"]))


@pytest.mark.parametrize("vec", VECTORS["handshake"], ids=lambda v: v["hex"][:8])
def test_handshake(vec: dict[str, Any]) -> None:
    data = bytes.fromhex(vec["hex"])
    want = Handshake(bytes.fromhex(vec["decoded"]["capability"]), vec["decoded"]["seeks"])
    assert decode_handshake(data) == want
    if vec["value"] is not None:
        value = Handshake(bytes.fromhex(vec["value"]["capability"]), vec["value"]["seeks"])
        assert encode_handshake(value) == data


def test_table_order_and_spec_examples() -> None:
    assert [m.name for m in HYPERCORE_MESSAGES] == [
        "sync",
        "request",
        "cancel",
        "data",
        "noData",
        "want",
        "unwant",
        "bitfield",
        "range",
        "extension",
    ]
    assert [m.type for m in HYPERCORE_MESSAGES] == list(range(10))
    # hypercore.md §9 transcript bodies
    assert encode_message(Sync(0, 0, 0, True, True, True)) == (0, bytes.fromhex("07000000"))
    req = Request(1, 0, upgrade=UpgradeRequest(0, 3), manifest=True)
    assert encode_message(req) == (1, bytes.fromhex("1801000003"))
    assert encode_message(Request(1, 0, block=BlockRequest(2, 0), priority=1)) == (
        1,
        bytes.fromhex("2101000200" + "01"),
    )


def test_unknown_type_and_bad_inputs() -> None:
    with pytest.raises(DecodeError):
        decode_message(10, b"\x00")
    with pytest.raises(DecodeError):
        decode_message(-1, b"\x00")
    with pytest.raises(EncodeError):
        encode_message("nope")  # type: ignore[arg-type]
    with pytest.raises(EncodeError):
        encode_handshake(Handshake(b"short"))
    manifest = next(
        bytes.fromhex(v["value"]["manifest"])
        for v in VECTORS["encode"]
        if v["name"] == "data" and v["value"]["manifest"]
    )
    with pytest.raises(EncodeError):
        encode_message(Data(1, 0, manifest=manifest + b"\x00"))
    with pytest.raises(EncodeError):
        encode_message(Data(1, 0, manifest=manifest[:-1]))


def test_manifest_size_on_every_vector_manifest() -> None:
    seen = 0
    for vec in VECTORS["encode"]:
        if vec["name"] == "data" and vec["value"]["manifest"]:
            mf = bytes.fromhex(vec["value"]["manifest"])
            assert manifest_size(mf + b"\xff\xff") == len(mf)
            seen += 1
    assert seen >= 7


def test_huge_counts_are_refused_without_allocation() -> None:
    # 1,048,576 nodes declared in a tiny body: refused before any list is built.
    with pytest.raises(DecodeError):
        decode_message(3, bytes.fromhex("010100" + "00" + "00" + "fe00001000"))
    with pytest.raises(DecodeError):
        decode_message(7, bytes.fromhex("00" + "fe00001000"))


@pytest.mark.interop
def test_vector_script_reproduces_committed_json() -> None:
    assert json.loads(run_node("vectors/messages.js")) == VECTORS


# --- properties -----------------------------------------------------------------------------------

u = st.integers(min_value=0, max_value=2**53 - 1)
small = st.integers(min_value=0, max_value=70000)
pos = st.integers(min_value=1, max_value=2**53 - 1)
h32 = st.binary(min_size=32, max_size=32)
nodes = st.lists(st.builds(TreeNode, u, u, h32), max_size=4).map(tuple)
manifests = st.sampled_from(
    [
        bytes.fromhex(v["value"]["manifest"])
        for v in VECTORS["encode"]
        if v["name"] == "data" and v["value"]["manifest"]
    ]
)

messages = st.one_of(
    st.builds(Sync, u, u, u, st.booleans(), st.booleans(), st.booleans(), st.booleans(), st.booleans()),
    st.builds(
        Request,
        u,
        u,
        st.none() | st.builds(BlockRequest, u, u),
        st.none() | st.builds(HashRequest, u, u),
        st.none() | st.builds(SeekRequest, u, u),
        st.none() | st.builds(UpgradeRequest, u, u),
        st.booleans(),
        st.just(0) | pos,
    ),
    st.builds(Cancel, u),
    st.builds(
        Data,
        u,
        u,
        st.none() | st.builds(DataBlock, u, st.binary(max_size=300), nodes),
        st.none() | st.builds(DataHash, u, nodes),
        st.none() | st.builds(DataSeek, u, nodes),
        st.none() | st.builds(DataUpgrade, u, u, nodes, nodes, st.binary(max_size=80)),
        st.none() | manifests,
    ),
    st.builds(NoData, u, st.none() | pos),
    st.builds(Want, u, u, st.booleans()),
    st.builds(Unwant, u, u, st.booleans()),
    st.builds(Bitfield, u, st.lists(st.integers(0, 2**32 - 1), max_size=8).map(tuple)),
    st.builds(Range, u, u, st.booleans()),
    st.builds(Extension, st.text(max_size=20), st.binary(max_size=50)),
)


@given(messages)
@settings(max_examples=400)
def test_round_trip(msg: Message) -> None:
    type_, body = encode_message(msg)
    assert decode_message(type_, body) == msg


@given(st.integers(min_value=0, max_value=12), st.binary(max_size=200))
@settings(max_examples=2000)
def test_fuzz_decode_only_raises_decode_error(type_: int, body: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_message(type_, body)


@given(messages, st.data())
@settings(max_examples=300)
def test_fuzz_truncated_and_mutated(msg: Message, data: st.DataObject) -> None:
    type_, body = encode_message(msg)
    cut = data.draw(st.integers(0, len(body)))
    flip = data.draw(st.integers(0, max(0, len(body) - 1)))
    mutated = bytearray(body[:cut])
    if mutated and flip < len(mutated):
        mutated[flip] ^= data.draw(st.integers(1, 255))
    with contextlib.suppress(DecodeError):
        decode_message(type_, bytes(mutated))


# --- the download fast paths agree with the generic codecs ------------------------------------------

block_messages = st.one_of(
    st.builds(Request, u, u, st.builds(BlockRequest, u, u), priority=st.just(0) | pos),
    st.builds(
        Data,
        u,
        u,
        st.builds(
            DataBlock,
            u,
            st.binary(max_size=300),
            st.lists(st.builds(TreeNode, u, u, h32), max_size=12).map(tuple),
        ),
    ),
    messages,
)


def _generic(msg: Message) -> tuple[int, bytes]:
    from hyperlobby.encoding import compact as c
    from hyperlobby.wire.messages import HYPERCORE_MESSAGES

    entry = next(m for m in HYPERCORE_MESSAGES if m.cls is type(msg))
    return entry.type, c.encode(entry.codec, msg)


def _generic_decode(type_: int, body: bytes) -> Message | str:
    from hyperlobby.encoding.compact import State
    from hyperlobby.wire.messages import HYPERCORE_MESSAGES

    try:
        return HYPERCORE_MESSAGES[type_].codec.decode(State(body))  # type: ignore[no-any-return]
    except DecodeError as exc:
        return f"error: {exc}"


def _fast_decode(type_: int, body: bytes) -> Message | str:
    try:
        return decode_message(type_, body)
    except DecodeError as exc:
        return f"error: {exc}"


@given(block_messages, st.data())
@settings(max_examples=600)
def test_fast_paths_match_the_generic_codecs(msg: Message, data: st.DataObject) -> None:
    """Request and data (block only) skip the generic codecs: same bytes out, same records (or
    the same error) back, also for truncated, mutated and extended bodies."""
    type_, body = encode_message(msg)
    assert (type_, body) == _generic(msg)
    assert decode_message(type_, body) == msg
    cut = data.draw(st.integers(0, len(body)))
    flip = data.draw(st.integers(0, max(0, len(body) - 1)))
    mutated = bytearray(body[:cut])
    if mutated and flip < len(mutated):
        mutated[flip] ^= data.draw(st.integers(1, 255))
    mutated += data.draw(st.binary(max_size=4))
    for kind in (1, 3):
        assert _fast_decode(kind, bytes(mutated)) == _generic_decode(kind, bytes(mutated))


def test_reused_proof_nodes_match_index_and_size() -> None:
    """Decoded proof nodes are shared between messages by hash: a node with the same hash but
    another index or size must still decode to its own values."""
    h = bytes(range(32))
    first = Data(1, 0, DataBlock(4, b"a", (TreeNode(6, 2, h),)))
    again = Data(2, 0, DataBlock(8, b"b", (TreeNode(6, 2, h),)))
    moved = Data(3, 0, DataBlock(8, b"b", (TreeNode(10, 2, h),)))
    resized = Data(4, 0, DataBlock(8, b"b", (TreeNode(6, 3, h),)))
    for msg in (first, again, moved, resized, first):
        assert decode_message(*encode_message(msg)) == msg
