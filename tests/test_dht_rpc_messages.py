"""dht-rpc codecs, ids, tokens and routing-table choices against vectors made by dht-rpc itself.

``interop/vectors/dht_rpc.js`` drives dht-rpc's own IO layer (fake sockets capture the bytes)
and kademlia-routing-table; here the Python side must produce and accept exactly the same.
Hypothesis then throws arbitrary bytes at the decoders and at a live node.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import load_vectors, run_node
from hyperlobby.errors import DecodeError
from hyperlobby.swarm.dht_rpc import (
    Address,
    Request,
    Response,
    RoutingNode,
    RoutingTable,
    decode_message,
    encode_request,
    encode_response,
    peer_id,
)
from hyperlobby.swarm.dht_rpc.messages import make_token
from hyperlobby.swarm.dht_rpc.nat import NatSampler

VECTORS = load_vectors("dht_rpc")


def _b(value: str | None) -> bytes | None:
    return None if value is None else bytes.fromhex(value)


def _addr(d: dict[str, Any]) -> Address:
    return Address(d["host"], d["port"])


@pytest.mark.parametrize("case", VECTORS["requests"], ids=lambda c: c["name"])
def test_request_vectors(case: dict[str, Any]) -> None:
    req = Request(
        tid=case["tid"],
        to=_addr(case["to"]),
        command=case["command"],
        internal=case["internal"],
        id=_b(case["id"]),
        token=_b(case["token"]),
        target=_b(case["target"]),
        value=_b(case["value"]),
    )
    assert encode_request(req).hex() == case["hex"]
    assert decode_message(bytes.fromhex(case["hex"])) == req


@pytest.mark.parametrize("case", VECTORS["responses"], ids=lambda c: c["name"])
def test_response_vectors(case: dict[str, Any]) -> None:
    inbound = decode_message(bytes.fromhex(case["request_hex"]))
    assert isinstance(inbound, Request)
    assert inbound.tid == case["tid"]
    res = Response(
        tid=case["tid"],
        to=_addr(case["to"]),
        id=_b(case["id"]),
        token=_b(case["token"]),
        closer_nodes=tuple(_addr(n) for n in case["closer_nodes"]),
        error=case["error"],
        value=_b(case["value"]),
    )
    assert encode_response(res).hex() == case["hex"]
    assert decode_message(bytes.fromhex(case["hex"])) == res
    assert case["sent_to"] == case["from"]


@pytest.mark.parametrize("case", VECTORS["decoding"], ids=lambda c: c["hex"][:24])
def test_decoder_accepts_what_js_accepts(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["hex"])
    expected = case["request"] or case["response"]
    if expected is None:
        with pytest.raises(DecodeError):
            decode_message(data)
        return
    msg = decode_message(data)
    assert msg.tid == expected["tid"]
    assert msg.to == _addr(expected["to"])
    assert msg.token == _b(expected["token"])
    assert msg.value == _b(expected["value"])
    if isinstance(msg, Request):
        assert case["request"] is not None
        assert msg.command == expected["command"]
        assert msg.internal == expected["internal"]
        assert msg.target == _b(expected["target"])
    else:
        assert case["response"] is not None
        assert msg.error == expected["error"]
        assert list(msg.closer_nodes) == [_addr(n) for n in expected["closer_nodes"]]


@pytest.mark.parametrize("case", VECTORS["ids"], ids=lambda c: f"{c['host']}:{c['port']}")
def test_peer_ids(case: dict[str, Any]) -> None:
    assert peer_id(case["host"], case["port"]).hex() == case["id"]


@pytest.mark.parametrize("case", VECTORS["tokens"], ids=lambda c: c["host"])
def test_tokens(case: dict[str, Any]) -> None:
    assert make_token(bytes.fromhex(case["secret0"]), case["host"]).hex() == case["token0"]
    assert make_token(bytes.fromhex(case["secret1"]), case["host"]).hex() == case["token1"]


@pytest.mark.parametrize("case", VECTORS["routing"], ids=lambda c: f"k{c['k']}")
def test_routing_table_matches_js(case: dict[str, Any]) -> None:
    table = RoutingTable(bytes.fromhex(case["id"]), k=case["k"])
    for n in case["nodes"]:
        added = table.add(RoutingNode(peer_id(n["host"], n["port"]), n["host"], n["port"]))
        assert added == n["added"]
    assert len(table) == case["size"]
    for probe in case["closest"]:
        got = [f"{n.host}:{n.port}" for n in table.closest(bytes.fromhex(probe["target"]))]
        assert got == probe["nodes"]


def test_routing_table_remove_and_get() -> None:
    table = RoutingTable(bytes(32), k=2)
    a = RoutingNode(peer_id("127.0.0.1", 1), "127.0.0.1", 1)
    assert table.add(a)
    assert table.get(a.id) is a
    assert table.remove(a.id)
    assert not table.remove(a.id)
    assert table.get(a.id) is None
    assert len(table) == 0
    assert table.random() is None


@given(st.binary(max_size=200))
def test_decoder_never_raises_anything_but_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_message(data)


@given(st.sampled_from([c["hex"] for c in VECTORS["requests"] + VECTORS["responses"]]), st.data())
def test_mutated_vectors_decode_or_fail_cleanly(base: str, data: st.DataObject) -> None:
    raw = bytearray.fromhex(base)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    try:
        msg = decode_message(bytes(raw[:cut]))
    except DecodeError:
        return
    # whatever decodes must re-encode to a datagram that decodes to the same message
    again = encode_request(msg) if isinstance(msg, Request) else encode_response(msg)
    assert decode_message(again) == msg


@pytest.mark.interop
def test_vectors_regenerate() -> None:
    assert json.loads(run_node("vectors/dht_rpc.js", timeout=60)) == VECTORS


@pytest.mark.parametrize("seq", VECTORS["nat"], ids=lambda s: f"{len(s)}-samples")
def test_nat_sampler_matches_js(seq: list[dict[str, Any]]) -> None:
    sampler = NatSampler()
    for step in seq:
        assert sampler.add(step["host"], step["port"]) == step["hits"]
        assert [sampler.host, sampler.port, sampler.size] == step["verdict"]
