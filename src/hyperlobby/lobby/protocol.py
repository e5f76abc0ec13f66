"""The lobby's records and their cryptography, without IO.

Theory of operation
-------------------
Archives are public to anyone who has their key, and SDP carries network addresses, so every
signal a lobby publishes is **signed by its sender, then sealed to its recipient**:

* the inner record (:class:`SignalRecord`) names the lobby, the host's session epoch, the guest,
  the kind (offer/answer), a sequence number and the rtc signal bytes; the sender signs it with
  the Ed25519 key that signs its own writer (the lobby core for the host, the guest's writer
  core for a guest);
* the signed record is sealed (libsodium sealed box, X25519 converted from the recipient's
  Ed25519 signer key) so only the recipient can open it. A sealed box alone is anonymous; the
  inner signature is what says who sent it, and epoch + sequence are what make an old copy
  useless (a record from an earlier session, or an offer we already answered, is ignored).

``host.offer.bin`` (:class:`HostRecord`) is not sealed: it has no single recipient and carries
no address, only the room protocol, the limits, the session epoch and whether a password is
needed.

Admission (:class:`Challenge`, :class:`Request`, :class:`Verdict`) runs over a protomux channel
of ours on the live, encrypted replication connection. Every message there is bound to that
connection's Noise handshake hash, so a transcript cannot be replayed on another connection:

* the host signs the challenge with the lobby key, so a guest reveals a password proof only to
  the lobby's real owner, never to a peer that merely relays the archive;
* the guest proves it holds its identity key (signature over the handshake hash and the host's
  nonce) and binds its writer to that identity (:class:`Binding`, a signature over lobby key
  and writer key, which the host records in the lobby, so every reader can check it);
* for a protected session the guest answers the nonce with an HMAC keyed by scrypt(password,
  salt). Nothing that could check a password guess is ever written to an archive: the salt
  travels with the challenge, the key stays in the host's memory, and a proof is seen only by
  the host over the encrypted channel. Guessing means asking the host, one online attempt at a
  time, and the host stops answering after :data:`MAX_PASSWORD_FAILURES`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from nacl.bindings import crypto_sign_ed25519_pk_to_curve25519, crypto_sign_ed25519_sk_to_curve25519
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from hyperlobby.crypto.keys import KeyPair, sign, verify
from hyperlobby.crypto.manifest import Manifest, manifest_hash
from hyperlobby.errors import DecodeError

PROTOCOL = "hyperlobby/lobby"
VERSION = 1
MAX_RECORD_BYTES = 96 * 1024
MAX_PASSWORD_FAILURES = 5
#: scrypt cost: ~50 ms per guess on a laptop, which only matters for online guessing anyway.
SCRYPT_N = 1 << 14
SCRYPT_R = 8
SCRYPT_P = 1

_CHALLENGE = b"hyperlobby/lobby/challenge\x00"
_ADMIT = b"hyperlobby/lobby/admit\x00"
_BIND = b"hyperlobby/lobby/writer\x00"
_PASSWORD = b"hyperlobby/lobby/password\x00"
_SIGNAL = b"hyperlobby/lobby/signal\x00"

# Admission channel message types.
MSG_CHALLENGE = 0
MSG_REQUEST = 1
MSG_VERDICT = 2


# --- small codecs ----------------------------------------------------------------------------------


def _dump(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def _load(data: bytes, what: str) -> dict[str, Any]:
    if len(data) > MAX_RECORD_BYTES:
        raise DecodeError(f"{what} too large", size=len(data))
    try:
        obj = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DecodeError(f"{what} is not UTF-8 JSON") from exc
    if not isinstance(obj, dict):
        raise DecodeError(f"{what} is not a JSON object")
    return obj


def _hex(obj: dict[str, Any], key: str, size: int | None = 32) -> bytes:
    value = obj.get(key)
    if not isinstance(value, str):
        raise DecodeError(f"field {key!r} must be a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError as exc:
        raise DecodeError(f"field {key!r} is not hex") from exc
    if size is not None and len(raw) != size:
        raise DecodeError(f"field {key!r} must be {size} bytes", length=len(raw))
    return raw


def _int(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value > 2**53:
        raise DecodeError(f"field {key!r} must be a non-negative integer")
    return value


def _str(obj: dict[str, Any], key: str, limit: int = 200) -> str:
    value = obj.get(key, "")
    if not isinstance(value, str):
        raise DecodeError(f"field {key!r} must be a string")
    return value[:limit]


def _bool(obj: dict[str, Any], key: str) -> bool:
    value = obj.get(key, False)
    if not isinstance(value, bool):
        raise DecodeError(f"field {key!r} must be a boolean")
    return value


def _b64(obj: dict[str, Any], key: str) -> bytes:
    value = obj.get(key)
    if not isinstance(value, str):
        raise DecodeError(f"field {key!r} must be base64")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise DecodeError(f"field {key!r} is not base64") from exc


def _enc64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- keys ------------------------------------------------------------------------------------------


def key_of_signer(public_key: bytes) -> bytes:
    """The key of a core signed by ``public_key`` alone (the default manifest's hash)."""
    return manifest_hash(Manifest.default(public_key))


def signs_core(public_key: bytes, core_key: bytes) -> bool:
    """True if ``public_key`` is the single signer of the core ``core_key`` (either form)."""
    return core_key in (public_key, key_of_signer(public_key))


def guest_id(identity_key: bytes) -> str:
    """A guest's name in the lobby: the hex key of its identity archive (the seed's dat-hash)."""
    return identity_key.hex()


def seal(data: bytes, recipient_signer: bytes) -> bytes:
    """Seal ``data`` to the owner of Ed25519 key ``recipient_signer``."""
    box_key = PublicKey(crypto_sign_ed25519_pk_to_curve25519(recipient_signer))
    return bytes(SealedBox(box_key).encrypt(data))


def unseal(data: bytes, pair: KeyPair) -> bytes:
    """Open a sealed box addressed to ``pair``; :class:`DecodeError` if it is not for us."""
    if pair.secret_key is None:
        raise DecodeError("cannot open a sealed signal without the secret key")
    private = PrivateKey(crypto_sign_ed25519_sk_to_curve25519(pair.secret_key))
    try:
        return bytes(SealedBox(private).decrypt(bytes(data)))
    except (CryptoError, ValueError, TypeError) as exc:
        raise DecodeError("sealed signal does not open with our key") from exc


def password_key(password: str, salt: bytes) -> bytes:
    """The key a password proof is made with. Only the host (in memory) and the guest hold it."""
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        maxmem=64 * 1024 * 1024,
        dklen=32,
    )


def password_proof(key: bytes, handshake_hash: bytes, nonce: bytes, identity: bytes, lobby: bytes) -> bytes:
    return hmac.new(key, _PASSWORD + handshake_hash + nonce + identity + lobby, hashlib.sha256).digest()


def check_proof(
    key: bytes, proof: bytes, handshake_hash: bytes, nonce: bytes, identity: bytes, lobby: bytes
) -> bool:
    return hmac.compare_digest(password_proof(key, handshake_hash, nonce, identity, lobby), proof)


# --- host.offer.bin -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostRecord:
    """``host.offer.bin``: the host's initial signal (rtc's HostHello) for this session epoch."""

    lobby: bytes
    epoch: bytes
    host: bytes  # the host's identity archive key
    protected: bool
    hello: bytes

    def encode(self) -> bytes:
        return _dump(
            {
                "v": VERSION,
                "type": "host",
                "lobby": self.lobby.hex(),
                "epoch": self.epoch.hex(),
                "host": self.host.hex(),
                "protected": self.protected,
                "hello": _enc64(self.hello),
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> HostRecord:
        obj = _load(data, "host.offer.bin")
        if obj.get("type") != "host" or obj.get("v") != VERSION:
            raise DecodeError("not a host record of a known version")
        return cls(
            _hex(obj, "lobby"),
            _hex(obj, "epoch", 16),
            _hex(obj, "host"),
            _bool(obj, "protected"),
            _b64(obj, "hello"),
        )


# --- writer binding -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Binding:
    """A guest's writer, bound to its identity: the identity's signer signs (lobby, writer).

    The host records it in the lobby (``admitted/<guest>.bin`` in a drive lobby, an ``admit``
    entry in a log lobby), so anyone reading the lobby can check who each writer belongs to."""

    lobby: bytes
    identity: bytes  # identity archive key
    identity_signer: bytes
    writer: bytes  # writer core (or drive) key
    writer_signer: bytes
    signature: bytes

    @property
    def guest(self) -> str:
        return guest_id(self.identity)

    @staticmethod
    def message(lobby: bytes, writer: bytes) -> bytes:
        return _BIND + lobby + writer

    @classmethod
    def make(
        cls, lobby: bytes, identity: bytes, identity_pair: KeyPair, writer: bytes, writer_signer: bytes
    ) -> Binding:
        assert identity_pair.secret_key is not None
        sig = sign(cls.message(lobby, writer), identity_pair.secret_key)
        return cls(lobby, identity, identity_pair.public_key, writer, writer_signer, sig)

    def valid(self, lobby: bytes) -> bool:
        return (
            self.lobby == lobby
            and signs_core(self.identity_signer, self.identity)
            and signs_core(self.writer_signer, self.writer)
            and verify(self.message(self.lobby, self.writer), self.signature, self.identity_signer)
        )

    def to_obj(self) -> dict[str, Any]:
        return {
            "lobby": self.lobby.hex(),
            "identity": self.identity.hex(),
            "identity_signer": self.identity_signer.hex(),
            "writer": self.writer.hex(),
            "writer_signer": self.writer_signer.hex(),
            "signature": self.signature.hex(),
        }

    @classmethod
    def from_obj(cls, obj: dict[str, Any]) -> Binding:
        return cls(
            _hex(obj, "lobby"),
            _hex(obj, "identity"),
            _hex(obj, "identity_signer"),
            _hex(obj, "writer"),
            _hex(obj, "writer_signer"),
            _hex(obj, "signature", 64),
        )

    def encode(self) -> bytes:
        return _dump({"v": VERSION, "type": "binding", **self.to_obj()})

    @classmethod
    def decode(cls, data: bytes) -> Binding:
        obj = _load(data, "binding")
        if obj.get("type") != "binding":
            raise DecodeError("not a writer binding")
        return cls.from_obj(obj)


# --- admission channel ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Challenge:
    lobby: bytes
    epoch: bytes
    nonce: bytes
    protected: bool
    salt: bytes
    signature: bytes

    @staticmethod
    def message(
        handshake_hash: bytes, lobby: bytes, epoch: bytes, nonce: bytes, protected: bool, salt: bytes
    ) -> bytes:
        return _CHALLENGE + handshake_hash + lobby + epoch + nonce + bytes([protected]) + salt

    @classmethod
    def make(
        cls,
        handshake_hash: bytes,
        lobby: bytes,
        lobby_pair: KeyPair,
        epoch: bytes,
        nonce: bytes,
        protected: bool,
        salt: bytes,
    ) -> Challenge:
        assert lobby_pair.secret_key is not None
        sig = sign(cls.message(handshake_hash, lobby, epoch, nonce, protected, salt), lobby_pair.secret_key)
        return cls(lobby, epoch, nonce, protected, salt, sig)

    def valid(self, handshake_hash: bytes, lobby_signer: bytes) -> bool:
        msg = self.message(handshake_hash, self.lobby, self.epoch, self.nonce, self.protected, self.salt)
        return verify(msg, self.signature, lobby_signer)

    def encode(self) -> bytes:
        return _dump(
            {
                "lobby": self.lobby.hex(),
                "epoch": self.epoch.hex(),
                "nonce": self.nonce.hex(),
                "protected": self.protected,
                "salt": self.salt.hex(),
                "signature": self.signature.hex(),
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> Challenge:
        obj = _load(data, "challenge")
        return cls(
            _hex(obj, "lobby"),
            _hex(obj, "epoch", 16),
            _hex(obj, "nonce"),
            _bool(obj, "protected"),
            _hex(obj, "salt", None),
            _hex(obj, "signature", 64),
        )


@dataclass(frozen=True, slots=True)
class Request:
    """The guest asks to be admitted: its binding, a live signature, and (protected) a proof."""

    binding: Binding
    auth: bytes  # identity signature over (handshake hash, nonce, writer)
    proof: bytes  # password proof, or b""

    @staticmethod
    def auth_message(handshake_hash: bytes, nonce: bytes, writer: bytes) -> bytes:
        return _ADMIT + handshake_hash + nonce + writer

    def encode(self) -> bytes:
        return _dump({"binding": self.binding.to_obj(), "auth": self.auth.hex(), "proof": self.proof.hex()})

    @classmethod
    def decode(cls, data: bytes) -> Request:
        obj = _load(data, "admission request")
        binding = obj.get("binding")
        if not isinstance(binding, dict):
            raise DecodeError("admission request has no binding")
        return cls(Binding.from_obj(binding), _hex(obj, "auth", 64), _hex(obj, "proof", None))


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reason: str = ""
    message: str = ""

    def encode(self) -> bytes:
        return _dump({"ok": self.ok, "reason": self.reason, "message": self.message})

    @classmethod
    def decode(cls, data: bytes) -> Verdict:
        obj = _load(data, "verdict")
        return cls(_bool(obj, "ok"), _str(obj, "reason"), _str(obj, "message", 1000))


# --- signals -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignalRecord:
    """One signal between host and one guest (before signing and sealing)."""

    lobby: bytes
    epoch: bytes
    guest: str
    kind: str  # "offer" (guest -> host) or "answer" (host -> guest)
    seq: int
    signal: bytes

    def _body(self) -> bytes:
        return _dump(
            {
                "lobby": self.lobby.hex(),
                "epoch": self.epoch.hex(),
                "guest": self.guest,
                "kind": self.kind,
                "seq": self.seq,
                "signal": _enc64(self.signal),
            }
        )

    def seal(self, sender: KeyPair, recipient_signer: bytes) -> bytes:
        """Sign with ``sender`` and seal to ``recipient_signer``: the bytes of the file/entry."""
        assert sender.secret_key is not None
        body = self._body()
        return seal(sign(_SIGNAL + body, sender.secret_key) + body, recipient_signer)

    @classmethod
    def open(cls, data: bytes, recipient: KeyPair, sender_signer: bytes) -> SignalRecord:
        """Unseal and check the sender's signature; :class:`DecodeError` for anything else."""
        inner = unseal(data, recipient)
        if len(inner) < 64:
            raise DecodeError("sealed signal too short")
        sig, body = inner[:64], inner[64:]
        if not verify(_SIGNAL + body, sig, sender_signer):
            raise DecodeError("signal is not signed by the expected sender")
        obj = _load(body, "signal")
        kind = _str(obj, "kind")
        if kind not in ("offer", "answer"):
            raise DecodeError("unknown signal kind")
        return cls(
            _hex(obj, "lobby"),
            _hex(obj, "epoch", 16),
            _str(obj, "guest", 128),
            kind,
            _int(obj, "seq"),
            _b64(obj, "signal"),
        )


__all__ = [
    "MAX_PASSWORD_FAILURES",
    "MSG_CHALLENGE",
    "MSG_REQUEST",
    "MSG_VERDICT",
    "PROTOCOL",
    "Binding",
    "Challenge",
    "HostRecord",
    "Request",
    "SignalRecord",
    "Verdict",
    "check_proof",
    "guest_id",
    "key_of_signer",
    "password_key",
    "password_proof",
    "seal",
    "signs_core",
    "unseal",
]
