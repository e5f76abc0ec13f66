"""The sans-IO record store against hyperdht's own signatures and decisions (vectors from
interop/vectors/hyperdht_records.js), plus forged, malformed, capped and expired input."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import load_vectors, run_node
from hyperlobby.crypto.hashes import blake2b256
from hyperlobby.crypto.keys import KeyPair, key_pair
from hyperlobby.encoding import compact
from hyperlobby.swarm.dht_rpc import Address
from hyperlobby.swarm.hyperdht import ForwardState
from hyperlobby.swarm.hyperdht import constants as C
from hyperlobby.swarm.hyperdht import messages as m
from hyperlobby.swarm.hyperdht.cache import AgingCache, RecordCache
from hyperlobby.swarm.hyperdht.persistent import (
    MAX_LOOKUP_PEERS,
    Answer,
    Persistent,
    mutable_signable,
    sign_announce,
    sign_mutable,
    sign_unannounce,
    verify_mutable,
)

V = load_vectors("hyperdht_records")
SENDER = Address("127.0.0.9", 5000)
NOW = 1_800_000_000.0  # Unix seconds: later than every bump in the vectors


class Routes:
    """The router's state part, as a plain dict (the store only needs set/get/delete)."""

    def __init__(self) -> None:
        self.states: dict[bytes, ForwardState] = {}

    def _key(self, t: bytes | str) -> bytes:
        return bytes.fromhex(t) if isinstance(t, str) else t

    def set(self, target: bytes | str, state: ForwardState) -> None:
        self.states[self._key(target)] = state

    def get(self, target: bytes | str) -> ForwardState | None:
        return self.states.get(self._key(target))

    def delete(self, target: bytes | str) -> None:
        self.states.pop(self._key(target), None)


def _store(**kw: Any) -> tuple[Persistent, Routes]:
    routes = Routes()
    return Persistent(routes, now=NOW, **kw), routes


def _as_js(answer: Answer | None) -> dict[str, Any]:
    """Our answer in the vector's shape (what the JS store did with the same request)."""
    if answer is None:
        return {"kind": "silent"}
    if answer.error:
        return {"kind": "error", "error": answer.error}
    return {
        "kind": "reply",
        "value": answer.value.hex() if answer.value is not None else None,
        "token": answer.token,
        "closerNodes": answer.closer_nodes,
    }


def _ask(
    p: Persistent,
    command: int,
    target: bytes,
    value: bytes | None,
    token: bytes | None,
    now: float = NOW,
    node_id: bytes | None = None,
) -> Answer | None:
    return p.handle(
        command,
        target=target,
        token=token,
        value=value,
        node_id=node_id or bytes.fromhex(V["announces"][0]["nodeId"]),
        sender=SENDER,
        now=now,
    )


def _kp(vec: dict[str, Any]) -> KeyPair:
    return KeyPair(bytes.fromhex(vec["publicKey"]), bytes.fromhex(vec["secretKey"]))


@pytest.mark.parametrize("vec", V["announces"], ids=lambda v: v["label"])
def test_announce_signatures_and_decisions_match_js(vec: dict[str, Any]) -> None:
    target, token, node_id = (bytes.fromhex(vec[k]) for k in ("target", "token", "nodeId"))
    kp = _kp(vec)
    relays = tuple(Address(a["host"], a["port"]) for a in vec["relayAddresses"])
    refresh = bytes.fromhex(vec["refresh"]) if vec["refresh"] else None
    ann = m.Announce(peer=m.Peer(kp.public_key, relays), refresh=refresh, bump=vec["bump"])
    sig = sign_announce(target, token, node_id, ann, kp)
    assert sig.hex() == vec["signature"]
    assert m.encode(m.announce, m.Announce(ann.peer, refresh, sig, vec["bump"])).hex() == vec["value"]
    unann = m.Announce(peer=m.Peer(kp.public_key, ()))
    usig = sign_unannounce(target, token, node_id, unann, kp)
    assert usig.hex() == vec["unannounceSignature"]

    p, routes = _store()
    value = bytes.fromhex(vec["value"])
    assert _as_js(_ask(p, C.ANNOUNCE, target, value, token)) == vec["stored"]
    assert _as_js(_ask(p, C.LOOKUP, target, None, None)) == vec["lookup"]
    assert _as_js(_ask(p, C.FIND_PEER, target, None, None)) == vec["findPeer"]
    if vec["label"] == "self":
        state = routes.get(target)
        assert state is not None and state.relay == SENDER  # a server announcing itself is a route
    assert (
        _as_js(_ask(p, C.UNANNOUNCE, target, bytes.fromhex(vec["unannounceValue"]), token)) == vec["removed"]
    )
    assert _as_js(_ask(p, C.LOOKUP, target, None, None)) == vec["afterUnannounce"]
    assert routes.get(target) is None
    # a refresh (the preimage of the announce's refresh hash, unsigned) restores it, as in JS
    assert _as_js(_ask(p, C.ANNOUNCE, target, bytes.fromhex(vec["refreshValue"]), token)) == vec["refreshed"]
    assert _as_js(_ask(p, C.LOOKUP, target, None, None)) == vec["afterRefresh"]


@pytest.mark.interop
def test_vectors_regenerate() -> None:
    """The vectors are what today's JS produces (the script is deterministic)."""
    assert json.loads(run_node("vectors/hyperdht_records.js", timeout=60)) == V


def test_forged_announces_are_refused_and_not_stored() -> None:
    vec = V["announces"][0]
    target, token, node_id = (bytes.fromhex(vec[k]) for k in ("target", "token", "nodeId"))
    kp = _kp(vec)
    ann = m.Announce(peer=m.Peer(kp.public_key))
    good = sign_announce(target, token, node_id, ann, kp)
    forged = [
        sign_announce(target, token, os.urandom(32), ann, kp),  # for another node
        sign_announce(target, os.urandom(32), node_id, ann, kp),  # with another token
        sign_announce(os.urandom(32), token, node_id, ann, kp),  # for another topic
        sign_announce(target, token, node_id, ann, key_pair()),  # by another key
        sign_unannounce(target, token, node_id, ann, kp),  # an unannounce signature
        bytes(64),
    ]
    p, _ = _store()
    for sig in forged:
        assert (
            _ask(p, C.ANNOUNCE, target, m.encode(m.announce, m.Announce(ann.peer, None, sig)), token) is None
        )
    # unsigned, no token, no id, truncated, garbage
    assert _ask(p, C.ANNOUNCE, target, m.encode(m.announce, ann), token) is None
    signed = m.encode(m.announce, m.Announce(ann.peer, None, good))
    assert _ask(p, C.ANNOUNCE, target, signed, None) is None
    assert (
        p.handle(C.ANNOUNCE, target=target, token=token, value=signed, node_id=None, sender=SENDER, now=NOW)
        is None
    )
    for junk in (signed[:-1], signed[:10], b"", b"\x07", os.urandom(100)):
        assert _ask(p, C.ANNOUNCE, target, junk, token) is None
    assert _ask(p, C.LOOKUP, target, None, None) == Answer(None)
    # the real one is accepted
    assert _ask(p, C.ANNOUNCE, target, signed, token) is not None
    assert _ask(p, C.LOOKUP, target, None, None) != Answer(None)
    # and a forged unannounce cannot remove it
    bad_un = sign_unannounce(target, token, node_id, ann, key_pair())
    assert (
        _ask(p, C.UNANNOUNCE, target, m.encode(m.announce, m.Announce(ann.peer, None, bad_un)), token) is None
    )
    assert _ask(p, C.LOOKUP, target, None, None) != Answer(None)


def test_mutable_decisions_match_js() -> None:
    vec0 = V["announces"][0]
    kp = _kp(vec0)
    token = bytes.fromhex(vec0["token"])
    target = blake2b256(kp.public_key)
    p, _ = _store()
    for step in V["mutables"]:
        value = bytes.fromhex(step["value"])
        assert mutable_signable(step["seq"], value).hex() == step["signable"]
        assert sign_mutable(step["seq"], value, kp).hex() == step["signature"]
        assert verify_mutable(bytes.fromhex(step["signature"]), step["seq"], value, kp.public_key)
        assert _as_js(_ask(p, C.MUTABLE_PUT, target, bytes.fromhex(step["put"]), token)) == step["res"]
        get0 = _ask(p, C.MUTABLE_GET, target, compact.encode(compact.uint, 0), None)
        assert _as_js(get0) == step["get0"]
        high = _ask(p, C.MUTABLE_GET, target, compact.encode(compact.uint, 1000), None)
        assert _as_js(high) == step["getHigh"]


def test_forged_mutables_are_refused() -> None:
    kp = key_pair()
    token = os.urandom(32)
    target = blake2b256(kp.public_key)
    p, _ = _store()
    sig = sign_mutable(9, b"real", kp)
    cases = [
        (target, m.MutablePutRequest(kp.public_key, 9, b"fake", sig), token),  # signature over other value
        (target, m.MutablePutRequest(kp.public_key, 10, b"real", sig), token),  # over another seq
        (os.urandom(32), m.MutablePutRequest(kp.public_key, 9, b"real", sig), token),  # wrong target
        (target, m.MutablePutRequest(kp.public_key, 9, b"real", sig), None),  # no token
        (target, m.MutablePutRequest(kp.public_key, 9, b"", sign_mutable(9, b"", kp)), token),  # empty
    ]
    for tgt, put, tok in cases:
        assert _ask(p, C.MUTABLE_PUT, tgt, m.encode(m.mutable_put_request, put), tok) is None
    for junk in (b"\x00" * 10, os.urandom(97), b""):
        assert _ask(p, C.MUTABLE_PUT, target, junk, token) is None
    assert _ask(p, C.MUTABLE_GET, target, compact.encode(compact.uint, 0), None) == Answer(None)
    assert _ask(p, C.MUTABLE_GET, target, b"\xfd", None) is None  # malformed seq
    assert not verify_mutable(b"\x00" * 10, 1, b"x", kp.public_key)
    assert not verify_mutable(sig, 9, b"real", b"short")


def test_immutable_decisions_match_js() -> None:
    vec = V["immutable"]
    value, target = bytes.fromhex(vec["value"]), bytes.fromhex(vec["target"])
    p, _ = _store()
    token = os.urandom(32)
    assert _as_js(_ask(p, C.IMMUTABLE_PUT, os.urandom(32), value, token)) == vec["wrongHash"]
    assert _as_js(_ask(p, C.IMMUTABLE_GET, os.urandom(32), None, None)) == vec["missing"]
    assert _ask(p, C.IMMUTABLE_PUT, target, value, None) is None  # no token
    assert _as_js(_ask(p, C.IMMUTABLE_PUT, target, value, token)) == vec["put"]
    assert _as_js(_ask(p, C.IMMUTABLE_GET, target, None, None)) == vec["get"]


def test_lookup_caps_peers_and_relay_addresses() -> None:
    p, routes = _store()
    topic, token, node_id = os.urandom(32), os.urandom(32), os.urandom(32)
    relays = tuple(Address("127.0.0.1", 1000 + i) for i in range(5))
    owners = [key_pair() for _ in range(30)]
    for kp in owners:
        ann = m.Announce(peer=m.Peer(kp.public_key, relays))
        sig = sign_announce(topic, token, node_id, ann, kp)
        value = m.encode(m.announce, m.Announce(ann.peer, None, sig))
        assert _ask(p, C.ANNOUNCE, topic, value, token, node_id=node_id) is not None
    assert p.records.count(topic) == 30
    answer = _ask(p, C.LOOKUP, topic, None, None)
    assert answer is not None and answer.value is not None
    reply = m.decode(m.lookup_raw_reply, answer.value)
    assert len(reply.peers) == MAX_LOOKUP_PEERS
    assert len({p.public_key for p in reply.peers}) == MAX_LOOKUP_PEERS
    assert all(p.relay_addresses == relays[:3] for p in reply.peers)
    # a route for the same topic is only added when there is room
    routes.set(topic, ForwardState(None, m.encode(m.peer, m.Peer(os.urandom(32)))))
    answer = _ask(p, C.LOOKUP, topic, None, None)
    assert answer is not None and answer.value is not None
    assert len(m.decode(m.lookup_raw_reply, answer.value).peers) == MAX_LOOKUP_PEERS


def test_records_expire_and_stores_are_bounded() -> None:
    p, _ = _store(max_size=8, max_age=60.0, record_max_age=600.0)
    topic, token, node_id = os.urandom(32), os.urandom(32), os.urandom(32)
    kp = key_pair()
    ann = m.Announce(peer=m.Peer(kp.public_key))
    value = m.encode(m.announce, m.Announce(ann.peer, None, sign_announce(topic, token, node_id, ann, kp)))
    assert _ask(p, C.ANNOUNCE, topic, value, token, NOW, node_id) is not None
    assert _ask(p, C.LOOKUP, topic, None, None, NOW + 30) != Answer(None)  # still there
    assert _ask(p, C.LOOKUP, topic, None, None, NOW + 200) == Answer(None)  # aged out
    imm = b"kept for a while"
    assert _ask(p, C.IMMUTABLE_PUT, blake2b256(imm), imm, token, NOW) is not None
    assert _ask(p, C.IMMUTABLE_GET, blake2b256(imm), None, None, NOW + 200) == Answer(imm)
    assert _ask(p, C.IMMUTABLE_GET, blake2b256(imm), None, None, NOW + 2000) == Answer(None)
    # many values: the store never holds much more than twice its generation size
    for i in range(100):
        v = f"value {i}".encode()
        _ask(p, C.IMMUTABLE_PUT, blake2b256(v), v, token, NOW + 2000)
    assert len(p.immutables) <= 2 * 4


def test_refresh_renews_without_signature() -> None:
    p, _ = _store(max_age=60.0)
    topic, token, node_id = os.urandom(32), os.urandom(32), os.urandom(32)
    kp = key_pair()
    secret = os.urandom(32)
    ann = m.Announce(peer=m.Peer(kp.public_key), refresh=blake2b256(secret))
    sig = sign_announce(topic, token, node_id, ann, kp)
    assert (
        _ask(
            p,
            C.ANNOUNCE,
            topic,
            m.encode(m.announce, m.Announce(ann.peer, ann.refresh, sig)),
            token,
            NOW,
            node_id,
        )
        is not None
    )
    # a wrong preimage does nothing; the right one renews the record
    assert (
        _ask(
            p,
            C.ANNOUNCE,
            topic,
            m.encode(m.announce, m.Announce(refresh=os.urandom(32))),
            token,
            NOW + 50,
            node_id,
        )
        is None
    )
    assert (
        _ask(p, C.ANNOUNCE, topic, m.encode(m.announce, m.Announce(refresh=secret)), token, NOW + 50, node_id)
        is not None
    )
    assert _ask(p, C.LOOKUP, topic, None, None, NOW + 110) != Answer(None)


def test_bump_is_bounded_in_the_future() -> None:
    p, _ = _store()
    topic, token, node_id = os.urandom(32), os.urandom(32), os.urandom(32)
    for bump in (int(NOW * 1000) + 10_000, int(NOW * 1000) + 3_600_000):
        kp = key_pair()
        ann = m.Announce(peer=m.Peer(kp.public_key), bump=bump)
        sig = sign_announce(topic, token, node_id, ann, kp)
        _ask(
            p,
            C.ANNOUNCE,
            topic,
            m.encode(m.announce, m.Announce(ann.peer, None, sig, bump)),
            token,
            NOW,
            node_id,
        )
    answer = _ask(p, C.LOOKUP, topic, None, None)
    assert answer is not None and answer.value is not None
    assert m.decode(m.lookup_raw_reply, answer.value).bump == int(NOW * 1000) + 10_000


@settings(max_examples=200, deadline=None)
@given(
    command=st.sampled_from(sorted(C.COMMANDS.values())),
    value=st.binary(max_size=300),
    token=st.one_of(st.none(), st.binary(min_size=32, max_size=32)),
)
def test_random_input_never_crashes_or_stores(command: int, value: bytes, token: bytes | None) -> None:
    p, routes = _store()
    target = os.urandom(32)
    _ask(p, command, target, value, token)
    # nothing random can carry a valid signature or hash, so nothing is stored
    assert len(p.records) == 0 and len(p.mutables) == 0 and not routes.states
    assert len(p.immutables) == 0 or blake2b256(value) == target


def test_caches_age_and_retain() -> None:
    c: AgingCache[str, int] = AgingCache(100, 30.0, now=0.0)
    c.set("a", 1, now=0.0)
    c.retain("kept", 2)
    assert c.get("a", now=15.0) == 1  # read: moves back to the latest generation
    assert c.get("a", now=35.0) == 1
    assert c.get("a", now=100.0) is None
    assert c.get("kept", now=10_000.0) == 2
    c.set("kept", 3, now=10_000.0)  # a retained entry wins until deleted
    assert c.get("kept") == 2
    assert c.delete("kept") and c.get("kept") is None
    r: RecordCache[bytes] = RecordCache(100, 30.0, now=0.0)
    r.add(b"t", b"k1", b"v1", now=0.0)
    r.add(b"t", b"k1", b"v1b", now=1.0)
    assert r.get(b"t", 10, now=1.0) == [b"v1b"] and len(r) == 1
    r.remove(b"t", b"k1")
    assert r.get(b"t", 10) == [] and len(r) == 0


def test_value_stores_are_bounded_in_bytes() -> None:
    p, _ = _store(max_value_bytes=100_000)
    token = os.urandom(32)
    big = [os.urandom(10_000) for _ in range(40)]  # 400 kB offered, 4x the budget
    for value in big:
        assert _ask(p, C.IMMUTABLE_PUT, blake2b256(value), value, token) is not None
    held = [v for v in big if _ask(p, C.IMMUTABLE_GET, blake2b256(v), None, None) == Answer(v)]
    assert 0 < len(held) <= 10 and held == big[-len(held) :]  # the newest survive
    c: AgingCache[str, bytes] = AgingCache(1000, 0, max_bytes=100, weigh=len)
    c.set("a", b"x" * 30)
    c.set("a", b"x" * 10)  # replacing a value counts its new size only
    c.set("b", b"x" * 30)
    assert c.get("a") == b"x" * 10 and c.get("b") == b"x" * 30
    c.set("c", b"x" * 20)  # 60 bytes in the latest generation: rotate
    c.set("d", b"x")
    assert c.get("a") is not None  # read back from the older generation
    c.set("e", b"x" * 60)  # rotates again: what was only in the oldest generation is gone
    assert c.get("d") is not None and c.get("b") is None
