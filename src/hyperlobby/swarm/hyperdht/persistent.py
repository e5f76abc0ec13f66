"""What a persistent HyperDHT node stores for others, without sockets or clocks.

Theory of operation
-------------------
Once a node is persistent (it has an id others can verify), it answers HyperDHT's storage
commands. Nothing here trusts the sender: every record either proves itself or is refused
without being stored, and the answer is silence (as JS does) so a forger learns nothing.

* ANNOUNCE stores a peer record under a topic. The record is signed by its owner over
  ``NS_ANNOUNCE ‖ BLAKE2b(target ‖ node id ‖ token ‖ peer ‖ refresh)``: the token binds it to
  the announcer's IP (dht-rpc already checked the token), the node id to *this* node, so a
  signed announce cannot be replayed elsewhere or later. A record whose topic is the hash of
  its own public key is a server announcing itself: it becomes a route
  (:class:`~hyperlobby.swarm.hyperdht.router.ForwardState`, relay = the announcer's address)
  instead of a plain record. At most 3 relay addresses are kept per record. An announce may
  carry a ``refresh`` hash; a later announce with only the preimage renews the record without
  a new signature (and without the owner's key being online).
* UNANNOUNCE removes a record, signed the same way under ``NS_UNANNOUNCE``.
* LOOKUP returns up to 20 records of a topic (a random pick when there are more), plus the
  route's record, and the highest ``bump`` (a refresh timestamp, accepted at most 60 s in the
  future) seen for the topic. FIND_PEER returns the route's record.
* MUTABLE_PUT stores ``(seq, value, signature)`` under BLAKE2b(public key); the signature
  covers ``NS_MUTABLE_PUT ‖ BLAKE2b(seq ‖ value)``. A lower seq is refused with SEQ_TOO_LOW,
  the same seq with another value with SEQ_REUSED. MUTABLE_GET answers the record if its seq
  is at least the one asked for.
* IMMUTABLE_PUT stores a value under its own BLAKE2b-256 hash; IMMUTABLE_GET returns it.

Bounds are hyperdht's: records and routes age out after ~20 minutes, mutable and immutable
records after ~48 hours, each store holding a bounded count (see
:mod:`~hyperlobby.swarm.hyperdht.cache`). Per topic, hyperdht caps what it *returns* (20
records, 3 relay addresses each) rather than what it stores; so do we, so a popular topic
behaves the same against JS and Python nodes. Empty values are refused, as JS's decoder reads
an empty buffer as "no value"; otherwise hyperdht sets no size limit, so a value is bounded
only by the datagram that carried it. hyperdht bounds its mutable and immutable stores by
count alone (32768 values per generation, which at datagram-sized values is gigabytes); we
also bound their bytes (``max_value_bytes``, 64 MiB per store by default): past it the stores
age faster, as they do when the count fills, and nothing else changes on the wire.
(hyperdht 6's mutable records have no salt: the target is always BLAKE2b of the public key.)

Each handler returns an :class:`Answer` for the adapter to send, or ``None`` for silence.
Time (``now``, Unix seconds) is always passed in.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final, Protocol

from hyperlobby.crypto.hashes import blake2b256
from hyperlobby.crypto.keys import KeyPair, sign, verify
from hyperlobby.encoding import compact
from hyperlobby.errors import DecodeError, EncodeError, HyperlobbyError
from hyperlobby.swarm.dht_rpc import Address
from hyperlobby.swarm.hyperdht import constants as C
from hyperlobby.swarm.hyperdht import messages as m
from hyperlobby.swarm.hyperdht.cache import AgingCache, RecordCache
from hyperlobby.swarm.hyperdht.router import ForwardState

MAX_LOOKUP_PEERS: Final = 20
MAX_RELAY_ADDRESSES: Final = 3
MAX_BUMP_DRIFT: Final = 60.0  # seconds a bump may lie in the future
DEFAULT_MAX_SIZE: Final = 65536
DEFAULT_MAX_AGE: Final = 20 * 60.0
DEFAULT_RECORD_MAX_AGE: Final = 48 * 60 * 60.0  # mutable / immutable records
DEFAULT_MAX_VALUE_BYTES: Final = 64 * 1024 * 1024  # per store (mutable, immutable), both generations


class Routes(Protocol):
    """The part of the router the store needs (servers announcing themselves become routes)."""

    def set(self, target: bytes | str, state: ForwardState) -> None: ...
    def get(self, target: bytes | str) -> ForwardState | None: ...
    def delete(self, target: bytes | str) -> None: ...


@dataclass(frozen=True, slots=True)
class Answer:
    """A reply to send: ``value`` or ``error``, and whether to include a token / closer nodes.

    The defaults are dht-rpc's for a plain reply; storage acknowledgements send neither a token
    nor closer nodes, as JS does, and errors carry no token.
    """

    value: bytes | None = None
    error: int = 0
    token: bool = True
    closer_nodes: bool = True


_ACK: Final = Answer(None, token=False, closer_nodes=False)


# --- signables --------------------------------------------------------------------------------


def announce_signable(
    target: bytes, token: bytes, node_id: bytes, ann: m.Announce, namespace: bytes
) -> bytes:
    """What an (un)announce signature covers: namespace ‖ BLAKE2b(target, id, token, peer, refresh)."""
    if ann.peer is None:
        raise EncodeError("an announce signable needs a peer record")
    h = hashlib.blake2b(digest_size=32)
    for part in (target, node_id, token, m.encode(m.peer, ann.peer), ann.refresh or b""):
        h.update(part)
    return namespace + h.digest()


def sign_announce(target: bytes, token: bytes, node_id: bytes, ann: m.Announce, keypair: KeyPair) -> bytes:
    """The owner's signature of an ANNOUNCE for node ``node_id`` that handed out ``token``."""
    return _sign(announce_signable(target, token, node_id, ann, C.NS_ANNOUNCE), keypair)


def sign_unannounce(target: bytes, token: bytes, node_id: bytes, ann: m.Announce, keypair: KeyPair) -> bytes:
    """The owner's signature of an UNANNOUNCE (same shape as an announce, another namespace)."""
    return _sign(announce_signable(target, token, node_id, ann, C.NS_UNANNOUNCE), keypair)


def mutable_signable(seq: int, value: bytes) -> bytes:
    """The 64 bytes a mutable record's signature covers: NS_MUTABLE_PUT ‖ BLAKE2b(seq ‖ value)."""
    return C.NS_MUTABLE_PUT + blake2b256(m.encode(m.mutable_signable, m.MutableSignable(seq, value)))


def sign_mutable(seq: int, value: bytes, keypair: KeyPair) -> bytes:
    return _sign(mutable_signable(seq, value), keypair)


def verify_mutable(signature: bytes, seq: int, value: bytes, public_key: bytes) -> bool:
    """True if ``signature`` is ``public_key``'s over ``(seq, value)``; never raises."""
    try:
        signable = mutable_signable(seq, value)
    except (EncodeError, ValueError, OverflowError):
        return False
    return verify(signable, signature, public_key)


def _sign(signable: bytes, keypair: KeyPair) -> bytes:
    if keypair.secret_key is None:
        raise EncodeError("signing needs a key pair with its secret key")
    return sign(signable, keypair.secret_key)


def _decode_announce(value: bytes | None) -> m.Announce | None:
    if not value:
        return None
    try:
        return m.decode(m.announce, value)
    except (DecodeError, ValueError, HyperlobbyError):
        return None


@dataclass(frozen=True, slots=True)
class _Refresh:
    topic: bytes
    record: bytes
    announce_self: bool


class Persistent:
    """The record stores of one persistent node, answering HyperDHT's storage commands."""

    def __init__(
        self,
        routes: Routes,
        *,
        max_size: int = DEFAULT_MAX_SIZE,
        max_age: float = DEFAULT_MAX_AGE,
        record_max_age: float = DEFAULT_RECORD_MAX_AGE,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        now: float = 0.0,
    ) -> None:
        self.routes = routes
        half = max(1, max_size // 2)
        self.records: RecordCache[bytes] = RecordCache(max_size, max_age, now)
        self.bumps: AgingCache[bytes, int] = AgingCache(max_size, max_age, now)
        self.refreshes: AgingCache[bytes, _Refresh] = AgingCache(max_size, max_age, now)
        self.mutables: AgingCache[bytes, bytes] = AgingCache(
            half, record_max_age, now, max_bytes=max_value_bytes, weigh=len
        )
        self.immutables: AgingCache[bytes, bytes] = AgingCache(
            half, record_max_age, now, max_bytes=max_value_bytes, weigh=len
        )

    # --- dispatch -----------------------------------------------------------------------------

    def handle(
        self,
        command: int,
        *,
        target: bytes | None,
        token: bytes | None,
        value: bytes | None,
        node_id: bytes | None,
        sender: Address,
        now: float,
    ) -> Answer | None:
        """Answer one storage command (``token`` already verified by dht-rpc); None = stay silent."""
        if target is None or len(target) != 32:
            return None
        if command == C.LOOKUP:
            return self.on_lookup(target, now)
        if command == C.FIND_PEER:
            return self.on_find_peer(target)
        if command == C.ANNOUNCE:
            return self.on_announce(target, token, value, node_id, sender, now)
        if command == C.UNANNOUNCE:
            return self.on_unannounce(target, token, value, node_id)
        if command == C.MUTABLE_PUT:
            return self.on_mutable_put(target, token, value, now)
        if command == C.MUTABLE_GET:
            return self.on_mutable_get(target, value, now)
        if command == C.IMMUTABLE_PUT:
            return self.on_immutable_put(target, token, value, now)
        if command == C.IMMUTABLE_GET:
            return self.on_immutable_get(target, now)
        return None

    # --- announcements ------------------------------------------------------------------------

    def on_lookup(self, target: bytes, now: float) -> Answer:
        records = self.records.get(target, MAX_LOOKUP_PEERS, now)
        bump = self.bumps.get(target, now) or 0
        route = self.routes.get(target)
        if route is not None and len(records) < MAX_LOOKUP_PEERS:
            records.append(route.record)
        return Answer(m.encode_lookup_raw_reply(records, bump) if records else None)

    def on_find_peer(self, target: bytes) -> Answer:
        route = self.routes.get(target)
        return Answer(route.record if route is not None else None)

    def unannounce(self, target: bytes, public_key: bytes) -> None:
        """Forget ``public_key``'s record (and its route, if it announced itself) under ``target``."""
        if blake2b256(public_key) == target:
            self.routes.delete(target)
        self.records.remove(target, public_key)

    def on_unannounce(
        self, target: bytes, token: bytes | None, value: bytes | None, node_id: bytes | None
    ) -> Answer | None:
        if token is None or node_id is None:
            return None
        ann = _decode_announce(value)
        if ann is None or ann.peer is None or ann.signature is None:
            return None
        signable = announce_signable(target, token, node_id, ann, C.NS_UNANNOUNCE)
        if not verify(signable, ann.signature, ann.peer.public_key):
            return None
        self.unannounce(target, ann.peer.public_key)
        return _ACK

    def on_announce(
        self,
        target: bytes,
        token: bytes | None,
        value: bytes | None,
        node_id: bytes | None,
        sender: Address,
        now: float,
    ) -> Answer | None:
        if token is None or node_id is None:
            return None
        ann = _decode_announce(value)
        if ann is None:
            return None
        if ann.peer is None:
            return self._on_refresh(ann.refresh, sender, now) if ann.refresh is not None else None
        if ann.signature is None:
            return None
        signable = announce_signable(target, token, node_id, ann, C.NS_ANNOUNCE)
        if not verify(signable, ann.signature, ann.peer.public_key):
            return None
        peer = m.Peer(ann.peer.public_key, ann.peer.relay_addresses[:MAX_RELAY_ADDRESSES])
        record = m.encode(m.peer, peer)
        announce_self = blake2b256(peer.public_key) == target
        if announce_self:
            self.routes.set(target, ForwardState(relay=sender, record=record))
            self.records.remove(target, peer.public_key)
        else:
            current = self.bumps.get(target, now) or 0
            if current < ann.bump <= int((now + MAX_BUMP_DRIFT) * 1000):
                self.bumps.set(target, ann.bump, now)
            self.records.add(target, peer.public_key, record, now)
        if ann.refresh is not None:
            self.refreshes.set(ann.refresh, _Refresh(target, record, announce_self), now)
        return _ACK

    def _on_refresh(self, token: bytes, sender: Address, now: float) -> Answer | None:
        # The announce stored BLAKE2b(next); whoever shows ``next`` renews the record, and the
        # entry moves to ``next`` itself so the chain continues with the following preimage.
        key = blake2b256(token)
        entry = self.refreshes.get(key, now)
        if entry is None:
            return None
        public_key = entry.record[:32]
        if entry.announce_self:
            self.routes.set(entry.topic, ForwardState(relay=sender, record=entry.record))
            self.records.remove(entry.topic, public_key)
        else:
            self.records.add(entry.topic, public_key, entry.record, now)
        self.refreshes.delete(key)
        self.refreshes.set(bytes(token), entry, now)
        return _ACK

    # --- mutable / immutable records ----------------------------------------------------------

    def on_mutable_get(self, target: bytes, value: bytes | None, now: float) -> Answer | None:
        if not value:
            return None
        try:
            seq = compact.decode(compact.uint, value)
        except (DecodeError, ValueError):
            return None
        stored = self.mutables.get(target, now)
        if stored is None:
            return Answer(None)
        local_seq = compact.decode(compact.uint, stored)
        return Answer(None if local_seq < seq else stored)

    def on_mutable_put(
        self, target: bytes, token: bytes | None, value: bytes | None, now: float
    ) -> Answer | None:
        if token is None or not value:
            return None
        try:
            put = m.decode(m.mutable_put_request, value)
        except (DecodeError, ValueError, HyperlobbyError):
            return None
        if blake2b256(put.public_key) != target:
            return None
        if not put.value or not verify_mutable(put.signature, put.seq, put.value, put.public_key):
            return None
        stored = self.mutables.get(target, now)
        if stored is not None:
            existing = m.decode(m.mutable_get_response, stored)
            if existing.value and existing.seq == put.seq and existing.value != put.value:
                return Answer(error=C.ERROR_SEQ_REUSED, token=False)
            if put.seq < existing.seq:
                return Answer(error=C.ERROR_SEQ_TOO_LOW, token=False)
        record = m.MutableGetResponse(put.seq, put.value, put.signature)
        self.mutables.set(target, m.encode(m.mutable_get_response, record), now)
        return Answer(None)

    def on_immutable_get(self, target: bytes, now: float) -> Answer:
        return Answer(self.immutables.get(target, now))

    def on_immutable_put(
        self, target: bytes, token: bytes | None, value: bytes | None, now: float
    ) -> Answer | None:
        if token is None or not value:
            return None
        if blake2b256(value) != target:
            return None
        self.immutables.set(target, bytes(value), now)
        return Answer(None)

    def clear(self) -> None:
        for store in (self.bumps, self.refreshes, self.mutables, self.immutables):
            store.clear()
        self.records.clear()


__all__ = [
    "MAX_LOOKUP_PEERS",
    "MAX_RELAY_ADDRESSES",
    "Answer",
    "Persistent",
    "Routes",
    "announce_signable",
    "mutable_signable",
    "sign_announce",
    "sign_mutable",
    "sign_unannounce",
    "verify_mutable",
]
