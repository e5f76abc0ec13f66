"""HyperDHT message codecs against vectors made by hyperdht's own ``lib/messages.js``.

``interop/vectors/hyperdht.js`` encodes a spread of values with the JS codecs and records what
the JS decoders make of the bytes (and of some hand-made ones); Python must produce the same
bytes and the same values. Hypothesis then round-trips arbitrary values and feeds the decoders
random bytes, where the only acceptable failure is :class:`DecodeError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import load_vectors, run_node
from hyperlobby.encoding.compact import Codec
from hyperlobby.errors import DecodeError, EncodeError
from hyperlobby.swarm.dht_rpc.messages import Address
from hyperlobby.swarm.hyperdht import constants
from hyperlobby.swarm.hyperdht import messages as m

VECTORS = load_vectors("hyperdht")


def _b(value: str | None) -> bytes | None:
    return None if value is None else bytes.fromhex(value)


def _bb(value: str) -> bytes:
    return bytes.fromhex(value)


def _addr(d: dict[str, Any] | None) -> Address | None:
    return None if d is None else Address(d["host"], d["port"])


def _a(d: dict[str, Any]) -> Address:
    return Address(d["host"], d["port"])


def _addrs(v: list[dict[str, Any]] | None) -> tuple[Address, ...] | None:
    return None if v is None else tuple(_a(x) for x in v)


def _peer(d: dict[str, Any]) -> m.Peer:
    return m.Peer(_bb(d["publicKey"]), tuple(_a(x) for x in d["relayAddresses"]))


def _noise_payload(d: dict[str, Any]) -> m.NoisePayload:
    hp = d["holepunch"]
    udx = d["udx"]
    rt = d["relayThrough"]
    return m.NoisePayload(
        version=d["version"],
        error=d["error"],
        firewall=d["firewall"],
        holepunch=None
        if hp is None
        else m.HolepunchInfo(
            hp["id"], tuple(m.RelayInfo(_a(r["relayAddress"]), _a(r["peerAddress"])) for r in hp["relays"])
        ),
        addresses4=tuple(_a(x) for x in d["addresses4"]),
        addresses6=tuple(_a(x) for x in d["addresses6"]),
        udx=None if udx is None else m.UdxInfo(udx["id"], udx["seq"], udx["reusableSocket"], udx["version"]),
        secret_stream=None if d["secretStream"] is None else m.SecretStreamInfo(d["secretStream"]["version"]),
        relay_through=None
        if rt is None
        else m.RelayThroughInfo(_bb(rt["publicKey"]), _bb(rt["token"]), rt["version"]),
        relay_addresses=_addrs(d["relayAddresses"]),
    )


# JS codec name -> (Python codec, JSON value -> Python value)
CODECS: dict[str, tuple[Codec[Any], Callable[[Any], Any]]] = {
    "handshake": (
        m.handshake,
        lambda d: m.Handshake(d["mode"], _bb(d["noise"]), _addr(d["peerAddress"]), _addr(d["relayAddress"])),
    ),
    "holepunch": (
        m.holepunch,
        lambda d: m.Holepunch(d["mode"], d["id"], _bb(d["payload"]), _addr(d["peerAddress"])),
    ),
    "noisePayload": (m.noise_payload, _noise_payload),
    "holepunchPayload": (
        m.holepunch_payload,
        lambda d: m.HolepunchPayload(
            error=d["error"],
            firewall=d["firewall"],
            round=d["round"],
            connected=d["connected"],
            punching=d["punching"],
            addresses=_addrs(d["addresses"]),
            remote_address=_addr(d["remoteAddress"]),
            token=_b(d["token"]),
            remote_token=_b(d["remoteToken"]),
        ),
    ),
    "peer": (m.peer, _peer),
    "peers": (m.peers, lambda d: tuple(_peer(p) for p in d)),
    "lookupRawReply": (
        m.lookup_raw_reply,
        lambda d: m.LookupReply(tuple(_peer(p) for p in d["peers"]), d["bump"]),
    ),
    "announce": (
        m.announce,
        lambda d: m.Announce(
            None if d["peer"] is None else _peer(d["peer"]), _b(d["refresh"]), _b(d["signature"]), d["bump"]
        ),
    ),
    "mutableSignable": (m.mutable_signable, lambda d: m.MutableSignable(d["seq"], _bb(d["value"]))),
    "mutablePutRequest": (
        m.mutable_put_request,
        lambda d: m.MutablePutRequest(_bb(d["publicKey"]), d["seq"], _bb(d["value"]), _bb(d["signature"])),
    ),
    "mutableGetResponse": (
        m.mutable_get_response,
        lambda d: m.MutableGetResponse(d["seq"], _bb(d["value"]), _bb(d["signature"])),
    ),
    "pluginRequest": (
        m.plugin_request,
        lambda d: m.PluginRequest(d["plugin"], d["version"], d["command"], _b(d["value"])),
    ),
}

ENCODED = [(name, case) for name in CODECS for case in VECTORS[name]]


@pytest.mark.parametrize(("codec", "case"), ENCODED, ids=[f"{n}-{c['name']}" for n, c in ENCODED])
def test_encode_and_decode_match_js(codec: str, case: dict[str, Any]) -> None:
    py_codec, from_json = CODECS[codec]
    value = from_json(case["value"])
    assert m.encode(py_codec, value).hex() == case["hex"]
    assert m.decode(py_codec, bytes.fromhex(case["hex"])) == value


@pytest.mark.parametrize("case", VECTORS["decoding"], ids=lambda c: f"{c['codec']}-{c['name']}")
def test_handmade_bytes_decode_like_js(case: dict[str, Any]) -> None:
    py_codec, from_json = CODECS[case["codec"]]
    assert m.decode(py_codec, bytes.fromhex(case["hex"])) == from_json(case["value"])


def test_truncations_rejected_where_js_rejects_them() -> None:
    accepted = {(t["codec"], t["name"], t["n"]) for t in VECTORS["truncated_accepted"]}
    checked = 0
    for name, case in ENCODED:
        py_codec, _ = CODECS[name]
        data = bytes.fromhex(case["hex"])
        for n in range(len(data)):
            if (name, case["name"], n) in accepted:
                m.decode(py_codec, data[:n])
            else:
                with pytest.raises(DecodeError):
                    m.decode(py_codec, data[:n])
            checked += 1
    assert checked > 1000


def test_lookup_reply_from_raw_peer_records() -> None:
    for case in VECTORS["lookupRawReply"]:
        reply = CODECS["lookupRawReply"][1](case["value"])
        raw = [m.encode(m.peer, p) for p in reply.peers]
        assert m.encode_lookup_raw_reply(raw, reply.bump).hex() == case["hex"]


def test_constants_match_js() -> None:
    js = VECTORS["constants"]
    assert js["COMMANDS"] == constants.COMMANDS
    assert js["ERROR"] == constants.ERRORS
    assert js["FIREWALL"] == constants.FIREWALL
    assert js["BOOTSTRAP_NODES"] == list(constants.BOOTSTRAP_NODES)
    assert js["NS"] == {k: v.hex() for k, v in constants.NS.items()}


def test_record_targets() -> None:
    hello = "324dcf027dd4a30a932c441f365a25e86b173defa4b8e58948253471b81b72cf"
    assert m.immutable_target(b"hello").hex() == hello
    assert m.mutable_target(bytes(32)) == m.immutable_target(bytes(32))


@pytest.mark.interop
def test_vectors_regenerate() -> None:
    assert json.loads(run_node("vectors/hyperdht.js", timeout=60)) == VECTORS


# --- encoder refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("codec", "value"),
    [
        (m.peer, m.Peer(b"short")),
        (m.announce, m.Announce(signature=bytes(63))),
        (m.holepunch_payload, m.HolepunchPayload(token=bytes(31))),
        (m.handshake, m.Handshake(0, b"", peer_address=Address("1.2.3", 1))),
        (m.noise_payload, m.NoisePayload(addresses6=(Address("1.2.3.4", 1),))),
        (m.noise_payload, m.NoisePayload(addresses6=(Address("::1", 65536),))),
        (m.noise_payload, m.NoisePayload(version=2)),
        (m.noise_payload, m.NoisePayload(udx=m.UdxInfo(0, 0, version=2))),
        (m.noise_payload, m.NoisePayload(secret_stream=m.SecretStreamInfo(0))),
        (m.noise_payload, m.NoisePayload(relay_through=m.RelayThroughInfo(bytes(32), bytes(32), 3))),
        (m.mutable_put_request, m.MutablePutRequest(bytes(32), 2**53, b"", bytes(64))),
    ],
)
def test_encoders_refuse_what_js_could_not_read(codec: Codec[Any], value: Any) -> None:
    with pytest.raises(EncodeError):
        m.encode(codec, value)


def test_ipv6_hosts_decode_in_js_spelling() -> None:
    data = m.encode(m.ipv6, Address("::1", 80))
    assert m.decode(m.ipv6, data) == Address("0:0:0:0:0:0:0:1", 80)


# --- properties ---------------------------------------------------------------------------------

uints = st.integers(0, 2**53 - 1)
small = st.integers(0, 300)
key32 = st.binary(min_size=32, max_size=32)
key64 = st.binary(min_size=64, max_size=64)
blobs = st.binary(max_size=80)
ipv4s = st.builds(
    Address, st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t))), st.integers(0, 65535)
)
ipv6s = st.builds(
    Address,
    st.lists(st.integers(0, 0xFFFF), min_size=8, max_size=8).map(lambda g: ":".join(f"{x:x}" for x in g)),
    st.integers(0, 65535),
)
addr_lists = st.lists(ipv4s, max_size=4).map(tuple)
opt_addr = st.none() | ipv4s
peers_st = st.builds(m.Peer, key32, addr_lists)

relays = st.builds(m.RelayInfo, ipv4s, ipv4s)
noise_payloads = st.builds(
    m.NoisePayload,
    error=uints,
    firewall=small,
    holepunch=st.none() | st.builds(m.HolepunchInfo, uints, st.lists(relays, max_size=3).map(tuple)),
    addresses4=addr_lists,
    addresses6=st.lists(ipv6s, max_size=3).map(tuple),
    udx=st.none() | st.builds(m.UdxInfo, uints, uints, st.booleans()),
    secret_stream=st.none() | st.just(m.SecretStreamInfo()),
    relay_through=st.none() | st.builds(m.RelayThroughInfo, key32, key32),
    relay_addresses=st.none() | addr_lists,
)

STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "handshake": st.builds(m.Handshake, small, blobs, opt_addr, opt_addr),
    "holepunch": st.builds(m.Holepunch, small, uints, blobs, opt_addr),
    "noisePayload": noise_payloads,
    "holepunchPayload": st.builds(
        m.HolepunchPayload,
        error=small,
        firewall=small,
        round=uints,
        connected=st.booleans(),
        punching=st.booleans(),
        addresses=st.none() | addr_lists,
        remote_address=opt_addr,
        token=st.none() | key32,
        remote_token=st.none() | key32,
    ),
    "peer": peers_st,
    "peers": st.lists(peers_st, max_size=3).map(tuple),
    "lookupRawReply": st.builds(m.LookupReply, st.lists(peers_st, max_size=3).map(tuple), uints),
    "announce": st.builds(m.Announce, st.none() | peers_st, st.none() | key32, st.none() | key64, uints),
    "mutableSignable": st.builds(m.MutableSignable, uints, blobs),
    "mutablePutRequest": st.builds(m.MutablePutRequest, key32, uints, blobs, key64),
    "mutableGetResponse": st.builds(m.MutableGetResponse, uints, blobs, key64),
    "pluginRequest": st.builds(m.PluginRequest, st.text(max_size=20), uints, uints, st.none() | blobs),
}


@pytest.mark.parametrize("name", list(CODECS))
def test_round_trip(name: str) -> None:
    codec = CODECS[name][0]

    @given(STRATEGIES[name])
    def check(value: Any) -> None:
        data = m.encode(codec, value)
        assert m.decode(codec, data) == value
        assert m.decode(codec, data + b"\x00\xff") == value  # trailing bytes are ignored, as in JS

    check()


@pytest.mark.parametrize("name", list(CODECS))
def test_decoders_only_raise_decode_error(name: str) -> None:
    codec = CODECS[name][0]

    @given(st.binary(max_size=200))
    def check(data: bytes) -> None:
        try:
            value = m.decode(codec, data)
        except DecodeError:
            return
        # Whatever decodes must re-encode (modulo JS's quirks for versions and bump).
        try:
            m.encode(codec, value)
        except EncodeError:
            assert name == "noisePayload"

    check()
