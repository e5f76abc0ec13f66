"""HyperDHT's connection handshake: Noise IK carrying a :class:`NoisePayload` each way.

Theory of operation
-------------------
A client that wants to reach a server already knows the server's public key (it looked the
key up in the DHT), so hyperdht uses Noise IK: one message each way, relayed through DHT
nodes inside PEER_HANDSHAKE requests. The prologue is hyperdht's PEER_HANDSHAKE namespace,
so these messages can never be confused with any other Noise use of the same keys.

Each Noise message carries a compact-encoded :class:`NoisePayload`: how to reach the sender
(addresses, firewall kind, holepunch offer) and which UDX stream id it opened for the
connection. When both messages are through, :meth:`NoiseWrap.final` gives everything the rest
of the connection needs, exactly as JS's ``NoiseWrap.final()``: the secret-stream keys and
handshake hash (the encrypted stream starts from them without another handshake), the peer's
stream id, and the *holepunch secret* that keys the PEER_HOLEPUNCH payloads.

Sans-IO: bytes in, payloads out. Any failure (a bad MAC, a message for another key, a payload
that does not decode) raises :class:`~hyperlobby.errors.HandshakeError`.
"""

from __future__ import annotations

from dataclasses import dataclass

from hyperlobby.crypto.hashes import blake2b256
from hyperlobby.errors import DecodeError, HandshakeError
from hyperlobby.swarm.hyperdht import messages as m
from hyperlobby.swarm.hyperdht.constants import NS_PEER_HANDSHAKE, NS_PEER_HOLEPUNCH
from hyperlobby.wire.noise import KeyPairLike, NoiseIK, NoiseResult
from hyperlobby.wire.secret_stream import stream_id

PROLOGUE = NS_PEER_HANDSHAKE


@dataclass(frozen=True, slots=True)
class HandshakeFinal:
    """A completed hyperdht handshake, as JS ``NoiseWrap.final()`` returns it."""

    is_initiator: bool
    public_key: bytes
    remote_public_key: bytes
    remote_id: bytes  # the stream id the peer's secret stream will announce
    holepunch_secret: bytes  # keys the PEER_HOLEPUNCH payloads of this connection
    hash: bytes
    tx: bytes
    rx: bytes

    def noise_result(self) -> NoiseResult:
        """What a secret stream needs to start without its own handshake."""
        return NoiseResult(
            tx=self.tx,
            rx=self.rx,
            handshake_hash=self.hash,
            public_key=self.public_key,
            remote_public_key=self.remote_public_key,
        )


def holepunch_secret(handshake_hash: bytes) -> bytes:
    """BLAKE2b-256 of the PEER_HOLEPUNCH namespace keyed by the handshake hash."""
    return blake2b256(NS_PEER_HOLEPUNCH, key=handshake_hash)


class NoiseWrap:
    """One side of the PEER_HANDSHAKE Noise exchange.

    The client passes ``remote_public_key`` (it is the IK initiator) and calls :meth:`send`
    then :meth:`recv`; the server passes none and calls :meth:`recv` then :meth:`send`.
    """

    def __init__(
        self,
        key_pair: KeyPairLike,
        remote_public_key: bytes | None = None,
        *,
        ephemeral_key_pair: KeyPairLike | None = None,
    ) -> None:
        self.is_initiator = remote_public_key is not None
        self.key_pair = key_pair
        self.remote_public_key = remote_public_key
        self._noise = NoiseIK(
            self.is_initiator,
            key_pair,
            remote_public_key=remote_public_key,
            prologue=PROLOGUE,
            ephemeral_key_pair=ephemeral_key_pair,
        )

    @property
    def complete(self) -> bool:
        return self._noise.complete

    def send(self, payload: m.NoisePayload) -> bytes:
        """The Noise message carrying ``payload`` (msg1 for the client, msg2 for the server)."""
        return self._noise.write_message(m.encode(m.noise_payload, payload))

    def recv(self, message: bytes) -> m.NoisePayload:
        """Read the peer's message; returns its payload (the server learns the client's key here)."""
        plaintext = self._noise.read_message(message)
        try:
            payload = m.decode(m.noise_payload, plaintext)
        except DecodeError as exc:
            raise HandshakeError("malformed hyperdht noise payload", cause=str(exc)) from exc
        self.remote_public_key = self._noise.remote_public_key
        return payload

    def final(self) -> HandshakeFinal:
        result = self._noise.result
        if result is None:
            raise HandshakeError("handshake did not finish")
        return HandshakeFinal(
            is_initiator=self.is_initiator,
            public_key=self.key_pair.public_key,
            remote_public_key=result.remote_public_key,
            remote_id=stream_id(result.handshake_hash, not self.is_initiator),
            holepunch_secret=holepunch_secret(result.handshake_hash),
            hash=result.handshake_hash,
            tx=result.tx,
            rx=result.rx,
        )


__all__ = ["PROLOGUE", "HandshakeFinal", "NoiseWrap", "holepunch_secret"]
