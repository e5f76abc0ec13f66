"""Noise IK, hyperdht's NoiseWrap and SecurePayload against golden vectors from the real JS.

Vectors: interop/vectors/hyperdht_noise.js (hyperdht 6.34.0, noise-handshake, noise-curve-ed,
@hyperswarm/secret-stream), with ephemeral keys, nonces and token secrets forced from seeds.
"""

from __future__ import annotations

from typing import Any

import pytest

from conftest import load_vectors
from hyperlobby.errors import HandshakeError
from hyperlobby.swarm.hyperdht import messages as m
from hyperlobby.swarm.hyperdht.constants import NS_PEER_HANDSHAKE, NS_PEER_HOLEPUNCH
from hyperlobby.swarm.hyperdht.noise_wrap import HandshakeFinal, NoiseWrap
from hyperlobby.swarm.hyperdht.secure_payload import SecurePayload
from hyperlobby.wire.noise import NoiseIK, NoiseKeyPair
from hyperlobby.wire.secret_stream import Closed, Message, SecretStream

V = load_vectors("hyperdht_noise")


def kp(hex_seed: str) -> NoiseKeyPair:
    return NoiseKeyPair.from_seed(bytes.fromhex(hex_seed))


def test_namespaces_match_js() -> None:
    assert NS_PEER_HANDSHAKE.hex() == V["prologue"]
    assert NS_PEER_HOLEPUNCH.hex() == V["ns_peer_holepunch"]


def test_plain_ik_is_byte_identical() -> None:
    v = V["plain_ik"]
    prologue = bytes.fromhex(v["prologue"])
    responder = kp(v["responder_seed"])
    i = NoiseIK(
        True,
        kp(v["initiator_seed"]),
        remote_public_key=responder.public_key,
        prologue=prologue,
        ephemeral_key_pair=kp(v["initiator_ephemeral_seed"]),
    )
    r = NoiseIK(False, responder, prologue=prologue, ephemeral_key_pair=kp(v["responder_ephemeral_seed"]))
    msg1 = i.write_message(bytes.fromhex(v["payload1"]))
    assert msg1.hex() == v["msg1"]
    assert r.read_message(msg1).hex() == v["received1"]
    assert r.remote_public_key == kp(v["initiator_seed"]).public_key
    msg2 = r.write_message(bytes.fromhex(v["payload2"]))
    assert msg2.hex() == v["msg2"]
    assert i.read_message(msg2).hex() == v["received2"]
    assert i.result is not None and r.result is not None
    assert i.result.handshake_hash.hex() == v["hash"] == r.result.handshake_hash.hex()
    assert i.result.tx.hex() == v["initiator_tx"] and i.result.rx.hex() == v["initiator_rx"]
    assert r.result.tx.hex() == v["responder_tx"] and r.result.rx.hex() == v["responder_rx"]


def _finals(f: HandshakeFinal, v: dict[str, Any]) -> None:
    assert f.is_initiator == v["is_initiator"]
    assert f.public_key.hex() == v["public_key"]
    assert f.remote_public_key.hex() == v["remote_public_key"]
    assert f.remote_id.hex() == v["remote_id"]
    assert f.holepunch_secret.hex() == v["holepunch_secret"]
    assert f.hash.hex() == v["hash"]
    assert f.tx.hex() == v["tx"]
    assert f.rx.hex() == v["rx"]


@pytest.mark.parametrize("session", V["sessions"], ids=lambda s: s["name"])
def test_noise_wrap_sessions_are_byte_identical(session: dict[str, Any]) -> None:
    client_kp, server_kp = kp(session["initiator_seed"]), kp(session["responder_seed"])
    client = NoiseWrap(
        client_kp, server_kp.public_key, ephemeral_key_pair=kp(session["initiator_ephemeral_seed"])
    )
    server = NoiseWrap(server_kp, ephemeral_key_pair=kp(session["responder_ephemeral_seed"]))
    client_payload = m.decode(m.noise_payload, bytes.fromhex(session["client_payload"]))
    server_payload = m.decode(m.noise_payload, bytes.fromhex(session["server_payload"]))
    assert m.encode(m.noise_payload, client_payload).hex() == session["client_payload"]
    assert m.encode(m.noise_payload, server_payload).hex() == session["server_payload"]

    msg1 = client.send(client_payload)
    assert msg1.hex() == session["msg1"]
    seen = server.recv(msg1)
    assert m.encode(m.noise_payload, seen).hex() == session["payload_seen_by_server"]
    assert server.remote_public_key == client_kp.public_key
    msg2 = server.send(server_payload)
    assert msg2.hex() == session["msg2"]
    seen2 = client.recv(msg2)
    assert m.encode(m.noise_payload, seen2).hex() == session["payload_seen_by_client"]
    _finals(client.final(), session["client"])
    _finals(server.final(), session["server"])


@pytest.mark.parametrize("case", sorted(V["server_msg1_verdicts"]))
def test_server_accepts_and_refuses_msg1_as_js(case: str) -> None:
    v = V["server_msg1_verdicts"][case]
    server = NoiseWrap(kp("02" * 32), ephemeral_key_pair=kp("73" * 32))
    try:
        server.recv(bytes.fromhex(v["msg1"]))
        accepted = True
    except HandshakeError:
        accepted = False
    assert accepted == v["accepted"]


def test_final_before_completion_and_out_of_turn_fail_cleanly() -> None:
    server_kp = kp("02" * 32)
    client = NoiseWrap(kp("01" * 32), server_kp.public_key)
    with pytest.raises(HandshakeError):
        client.final()
    with pytest.raises(HandshakeError):
        client.recv(b"\x00" * 80)  # the client must write first
    server = NoiseWrap(server_kp)
    with pytest.raises(HandshakeError):
        server.send(m.NoisePayload())
    with pytest.raises(ValueError):
        NoiseIK(True, server_kp)  # an IK initiator needs the responder's key


def test_secure_payload_matches_js() -> None:
    sp_v = V["secure_payload"]
    secret = bytes.fromhex(sp_v["secret"])
    assert secret.hex() == V["sessions"][0]["client"]["holepunch_secret"]
    for box in sp_v["boxes"]:
        local = bytes([box["nonce_byte"]]) * 32  # JS drew the local secret with the same forced bytes
        sp = SecurePayload(secret, local_secret=local)
        payload = m.decode(m.holepunch_payload, bytes.fromhex(box["plain"]))
        sealed = sp.encrypt(payload, nonce=bytes([box["nonce_byte"]]) * 24)
        assert sealed.hex() == box["encrypted"]
        opened = sp.decrypt(bytes.fromhex(box["encrypted"]))
        assert opened is not None and m.encode(m.holepunch_payload, opened).hex() == box["decrypted_again"]
        assert sp.token("127.0.0.1").hex() == box["token_127_0_0_1"]
        assert sp.token("10.1.2.3").hex() == box["token_10_1_2_3"]


def test_secure_payload_refuses_what_js_refuses() -> None:
    sp_v = V["secure_payload"]
    secret = bytes.fromhex(sp_v["secret"])
    enc = bytes.fromhex(sp_v["boxes"][0]["encrypted"])
    flipped = enc[:-1] + bytes([enc[-1] ^ 1])
    verdicts = sp_v["verdicts"]
    sp = SecurePayload(secret)
    assert (sp.decrypt(enc) is not None) == verdicts["good"]
    assert (sp.decrypt(flipped) is not None) == verdicts["flipped"]
    assert (SecurePayload(b"\x01" * 32).decrypt(enc) is not None) == verdicts["other_key"]
    assert (sp.decrypt(enc[:39]) is not None) == verdicts["short"]
    assert (sp.decrypt(enc[:40]) is not None) == verdicts["only_nonce_and_mac"]
    assert (sp.decrypt(b"") is not None) == verdicts["empty"]


def test_secret_stream_from_js_completed_handshake() -> None:
    """A JS NoiseSecretStream started from NoiseWrap.final(): Python, holding the server's
    final(), reads its id/header and messages (zero-length ones are keepalives)."""
    session = V["sessions"][0]
    server = NoiseWrap(
        kp(session["responder_seed"]), ephemeral_key_pair=kp(session["responder_ephemeral_seed"])
    )
    server.recv(bytes.fromhex(session["msg1"]))
    server.send(m.decode(m.noise_payload, bytes.fromhex(session["server_payload"])))
    final = server.final()
    assert final.remote_id.hex() == V["secret_stream"]["initiator_stream_id"]
    stream = SecretStream(False, handshake=final.noise_result())
    first = stream.initiate()
    # our id/header frame starts with the id the JS client expects from its server
    assert len(first) == 3 + 56 and first[3:35].hex() == session["client"]["remote_id"]
    events = stream.receive_data(bytes.fromhex(V["secret_stream"]["wire"]))
    got = [e.data.hex() for e in events if isinstance(e, Message)]
    assert got == [h for h in V["secret_stream"]["messages"] if h]
    assert not any(isinstance(e, Closed) for e in events)

    tampered = bytearray.fromhex(V["secret_stream"]["wire"])
    tampered[-1] ^= 1
    stream2 = SecretStream(False, handshake=final.noise_result())
    stream2.initiate()
    events2 = stream2.receive_data(bytes(tampered))
    assert isinstance(events2[-1], Closed) and events2[-1].error is not None
