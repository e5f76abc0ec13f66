"""Noise XX (Ed25519 / ChaChaPoly / BLAKE2b) against bytes printed by noise-handshake 4.2.0."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import load_vectors
from hyperlobby.errors import HandshakeError
from hyperlobby.wire.noise import NoiseHandshake, NoiseKeyPair, hkdf2

VEC = load_vectors("secret_stream")
SESSIONS = {s["name"]: s for s in VEC["sessions"]}


def kp(seed_hex: str) -> NoiseKeyPair:
    return NoiseKeyPair.from_seed(bytes.fromhex(seed_hex))


def unframe(frame_hex: str) -> bytes:
    raw = bytes.fromhex(frame_hex)
    assert int.from_bytes(raw[:3], "little") == len(raw) - 3
    return raw[3:]


def pair(s: dict[str, Any]) -> tuple[NoiseHandshake, NoiseHandshake]:
    i = NoiseHandshake(True, kp(s["initiator_seed"]), ephemeral_key_pair=kp(s["initiator_ephemeral_seed"]))
    r = NoiseHandshake(False, kp(s["responder_seed"]), ephemeral_key_pair=kp(s["responder_ephemeral_seed"]))
    return i, r


@pytest.mark.parametrize("name", ["spec_keys", "other_keys"])
def test_handshake_bytes_match_js(name: str) -> None:
    s = SESSIONS[name]
    i, r = pair(s)
    m1 = i.write_message()
    assert m1 == unframe(s["initiator_frames"][0])
    assert r.read_message(m1) == b""
    m2 = r.write_message()
    assert m2 == unframe(s["responder_frames"][0])
    i.read_message(m2)
    m3 = i.write_message()
    assert m3 == unframe(s["initiator_frames"][1])
    r.read_message(m3)
    assert i.result is not None and r.result is not None
    assert i.result.handshake_hash.hex() == s["handshake_hash"] == r.result.handshake_hash.hex()
    assert i.result.tx.hex() == s["initiator_tx"] and i.result.rx.hex() == s["initiator_rx"]
    assert r.result.tx.hex() == s["responder_tx"] and r.result.rx.hex() == s["responder_rx"]
    assert i.result.remote_public_key.hex() == s["responder_public_key"]
    assert r.result.remote_public_key.hex() == s["initiator_public_key"]
    assert (len(m1), len(m2), len(m3)) == (32, 96, 64)


def test_key_pairs_match_js() -> None:
    for s in VEC["sessions"]:
        assert kp(s["initiator_seed"]).public_key.hex() == s["initiator_public_key"]
        assert kp(s["responder_seed"]).public_key.hex() == s["responder_public_key"]


@pytest.mark.parametrize("case", sorted(VEC["responder_msg1_verdicts"]))
def test_responder_accepts_msg1_exactly_when_js_does(case: str) -> None:
    v = VEC["responder_msg1_verdicts"][case]
    r = NoiseHandshake(False, kp("02" * 32), ephemeral_key_pair=kp("e1" * 32))
    # JS judges msg1 in one step (read it, then write msg2): a bad point fails at the ee DH.
    if v["accepted"]:
        r.read_message(bytes.fromhex(v["msg1"]))
        assert r.write_message() == unframe(v["reply"])
    else:
        with pytest.raises(HandshakeError):
            r.read_message(bytes.fromhex(v["msg1"]))
            r.write_message()


def test_tampered_msg2_is_rejected_like_js() -> None:
    v = VEC["initiator_msg2_verdicts"]["tampered_msg2"]
    assert v["accepted"] is False
    i = NoiseHandshake(True, kp("01" * 32), ephemeral_key_pair=kp("e0" * 32))
    i.write_message()
    with pytest.raises(HandshakeError, match="authentication"):
        i.read_message(bytes.fromhex(v["msg2"]))
    with pytest.raises(HandshakeError, match="failed"):
        i.write_message()


def test_random_ephemeral_keys_agree() -> None:
    i = NoiseHandshake(True, NoiseKeyPair.generate())
    r = NoiseHandshake(False, NoiseKeyPair.generate())
    r.read_message(i.write_message())
    i.read_message(r.write_message())
    r.read_message(i.write_message())
    assert i.result is not None and r.result is not None
    assert (i.result.tx, i.result.rx) == (r.result.rx, r.result.tx)
    assert i.result.handshake_hash == r.result.handshake_hash


def test_payloads_are_carried_and_authenticated() -> None:
    i = NoiseHandshake(True, NoiseKeyPair.generate())
    r = NoiseHandshake(False, NoiseKeyPair.generate())
    assert r.read_message(i.write_message(b"one")) == b"one"
    assert i.read_message(r.write_message(b"two")) == b"two"
    assert r.read_message(i.write_message(b"three")) == b"three"


def test_out_of_turn_calls_fail_cleanly() -> None:
    i = NoiseHandshake(True, NoiseKeyPair.generate())
    with pytest.raises(HandshakeError, match="out of turn"):
        i.read_message(b"\x00" * 96)
    r = NoiseHandshake(False, NoiseKeyPair.generate())
    with pytest.raises(HandshakeError, match="out of turn"):
        r.write_message()


def test_hkdf_is_rfc5869_with_hmac_blake2b() -> None:
    # Cross-check the two-output HKDF against the generic RFC 5869 definition.
    import hashlib
    import hmac

    ck, ikm = bytes(range(64)), b"input key material"
    prk = hmac.new(ck, ikm, hashlib.blake2b).digest()
    t1 = hmac.new(prk, b"\x01", hashlib.blake2b).digest()
    t2 = hmac.new(prk, t1 + b"\x02", hashlib.blake2b).digest()
    assert hkdf2(ck, ikm) == (t1, t2)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_responder_msg1(data: bytes) -> None:
    r = NoiseHandshake(False, kp("02" * 32))
    try:
        r.read_message(data)
        reply = r.write_message()
    except HandshakeError:
        return
    assert len(data) >= 32
    assert len(reply) == 96


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_initiator_msg2(data: bytes) -> None:
    i = NoiseHandshake(True, kp("01" * 32))
    i.write_message()
    with pytest.raises(HandshakeError):
        i.read_message(data)  # random bytes never pass the MAC


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=200))
def test_fuzz_responder_msg3(data: bytes) -> None:
    s = SESSIONS["spec_keys"]
    r = NoiseHandshake(False, kp(s["responder_seed"]), ephemeral_key_pair=kp(s["responder_ephemeral_seed"]))
    r.read_message(unframe(s["initiator_frames"][0]))
    r.write_message()
    with pytest.raises(HandshakeError):
        r.read_message(data)
