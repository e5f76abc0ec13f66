"""HyperDHT wire structures: the values carried inside dht-rpc requests and replies.

Theory of operation
-------------------
dht-rpc moves opaque ``value`` buffers; HyperDHT gives them meaning per command. Every
structure here is a compact-encoding struct with no tags, so the field order is the format.
Most start with a ``uint`` of presence flags; an optional field is on the wire exactly when its
bit is set, and a decoder ignores flag bits it does not know, which is how newer peers add
fields without breaking older ones. Trailing bytes are ignored for the same reason.

Presence is modelled as ``None`` versus a value. Where the JS encoder tests an array for
*truthiness* (an empty array is still "present" in JS) the field is ``tuple | None`` and an
empty tuple sets the flag; where it tests ``length`` (``addresses4``/``addresses6`` of the
noise payload) an empty tuple means absent. ``Announce.bump`` is written only when non-zero,
and a lookup reply's ``bump`` may be missing at the end (older peers), decoding as 0.

The JS encoders size a few fields as one byte (handshake/holepunch ``mode``, the payloads'
``error``/``firewall``/``round``) and would corrupt larger values; the JS *decoders* read any
``uint`` there, so we encode those fields as proper ``uint`` s, which JS reads correctly.

Sub-structures with a version (``UdxInfo``, ``SecretStreamInfo``, ``RelayThroughInfo``,
``NoisePayload``) decode whatever version arrives so the caller can react (a noise payload of
an unknown version carries no other fields), but we only *speak* version 1: encoding anything
else raises :class:`EncodeError` rather than emitting bytes JS would not produce.

Immutable records have no structure of their own: IMMUTABLE_PUT's value is the record's raw
bytes and its target is their BLAKE2b-256 (:func:`immutable_target`).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from hyperlobby.crypto.hashes import blake2b256
from hyperlobby.encoding import compact
from hyperlobby.encoding.compact import Codec, State
from hyperlobby.errors import DecodeError, EncodeError
from hyperlobby.swarm.dht_rpc.messages import Address, decode_ipv4, encode_ipv4

T = TypeVar("T")

_U16 = struct.Struct("<H")
_U16BE8 = struct.Struct(">8H")

# An array count is checked against the bytes left before anything is allocated, so a forged
# count cannot make the decoder build a huge list.
_IPV4_SIZE: Final = 6
_IPV6_SIZE: Final = 18


class _Struct(Generic[T]):
    """Adapts a writer (value -> bytes) and a reader (state -> value) to the compact Codec shape."""

    def __init__(self, write: Callable[[bytearray, T], None], read: Callable[[State], T]) -> None:
        self._write = write
        self._read = read

    def to_bytes(self, value: T) -> bytes:
        out = bytearray()
        self._write(out, value)
        return bytes(out)

    def preencode(self, state: State, value: T) -> None:
        state.end += len(self.to_bytes(value))

    def encode(self, state: State, value: T) -> None:
        state.put(self.to_bytes(value))

    def decode(self, state: State) -> T:
        return self._read(state)


def _uint(out: bytearray, n: int) -> None:
    if n > compact.MAX_SAFE_INTEGER:
        raise EncodeError("uint above 2^53-1 (not representable by JS peers)", value=n)
    out += compact.uint_bytes(n)


def _buffer(out: bytearray, data: bytes) -> None:
    out += compact.uint_bytes(len(data))
    out += data


def _fixed(out: bytearray, name: str, data: bytes, size: int) -> None:
    if len(data) != size:
        raise EncodeError(f"{name} must be {size} bytes", length=len(data))
    out += data


def _count(state: State, item_size: int) -> int:
    count = compact.uint.decode(state)
    if count * item_size > state.end - state.start:
        raise DecodeError("array runs past the end of the message", count=count)
    return count


# --- addresses --------------------------------------------------------------------------------


def _write_ipv4(out: bytearray, addr: Address) -> None:
    out += encode_ipv4(addr.host, addr.port)


def _write_ipv6(out: bytearray, addr: Address) -> None:
    try:
        packed = ipaddress.IPv6Address(addr.host).packed
    except ValueError as exc:
        raise EncodeError("not an IPv6 address", host=addr.host) from exc
    if not 0 <= addr.port <= 0xFFFF:
        raise EncodeError("port out of range", port=addr.port)
    out += packed
    out += _U16.pack(addr.port)


def _read_ipv6(state: State) -> Address:
    raw = state.take(_IPV6_SIZE)
    # JS spells every group, lowercase, without leading zeros and without "::" compression;
    # we produce the same text so decoded values compare equal across the two stacks.
    host = ":".join(format(g, "x") for g in _U16BE8.unpack(raw[:16]))
    return Address(host, raw[16] | (raw[17] << 8))


def _write_ipv4_array(out: bytearray, addrs: Sequence[Address]) -> None:
    out += compact.uint_bytes(len(addrs))
    for a in addrs:
        _write_ipv4(out, a)


def _read_ipv4_array(state: State) -> tuple[Address, ...]:
    return tuple(decode_ipv4(state) for _ in range(_count(state, _IPV4_SIZE)))


def _write_ipv6_array(out: bytearray, addrs: Sequence[Address]) -> None:
    out += compact.uint_bytes(len(addrs))
    for a in addrs:
        _write_ipv6(out, a)


def _read_ipv6_array(state: State) -> tuple[Address, ...]:
    return tuple(_read_ipv6(state) for _ in range(_count(state, _IPV6_SIZE)))


ipv4: Final[Codec[Address]] = _Struct(_write_ipv4, decode_ipv4)
ipv6: Final[Codec[Address]] = _Struct(_write_ipv6, _read_ipv6)
ipv4_array: Final[Codec[tuple[Address, ...]]] = _Struct(_write_ipv4_array, _read_ipv4_array)
ipv6_array: Final[Codec[tuple[Address, ...]]] = _Struct(_write_ipv6_array, _read_ipv6_array)


# --- PEER_HANDSHAKE / PEER_HOLEPUNCH envelopes -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Handshake:
    """PEER_HANDSHAKE's value: a Noise message plus the addresses relays fill in on the way.

    ``mode`` (``FROM_*``/``REPLY`` in constants) says which hop this is. Relaying nodes fill
    in ``peer_address`` (where the other end really is, as seen from the DHT) and, on a second
    relay hop, ``relay_address`` (the node to route the answer back through), so neither end
    has to be trusted to report addresses it cannot see.
    """

    mode: int
    noise: bytes
    peer_address: Address | None = None
    relay_address: Address | None = None


def _write_handshake(out: bytearray, m: Handshake) -> None:
    _uint(out, (1 if m.peer_address is not None else 0) | (2 if m.relay_address is not None else 0))
    _uint(out, m.mode)
    _buffer(out, m.noise)
    if m.peer_address is not None:
        _write_ipv4(out, m.peer_address)
    if m.relay_address is not None:
        _write_ipv4(out, m.relay_address)


def _read_handshake(state: State) -> Handshake:
    flags = compact.uint.decode(state)
    mode = compact.uint.decode(state)
    noise = compact.buffer.decode(state)
    peer = decode_ipv4(state) if flags & 1 else None
    relay = decode_ipv4(state) if flags & 2 else None
    return Handshake(mode, noise, peer, relay)


handshake: Final[Codec[Handshake]] = _Struct(_write_handshake, _read_handshake)


@dataclass(frozen=True, slots=True)
class Holepunch:
    """PEER_HOLEPUNCH's value: an encrypted holepunch payload routed by session ``id``."""

    mode: int
    id: int
    payload: bytes
    peer_address: Address | None = None


def _write_holepunch(out: bytearray, m: Holepunch) -> None:
    _uint(out, 1 if m.peer_address is not None else 0)
    _uint(out, m.mode)
    _uint(out, m.id)
    _buffer(out, m.payload)
    if m.peer_address is not None:
        _write_ipv4(out, m.peer_address)


def _read_holepunch(state: State) -> Holepunch:
    flags = compact.uint.decode(state)
    mode = compact.uint.decode(state)
    id_ = compact.uint.decode(state)
    payload = compact.buffer.decode(state)
    peer = decode_ipv4(state) if flags & 1 else None
    return Holepunch(mode, id_, payload, peer)


holepunch: Final[Codec[Holepunch]] = _Struct(_write_holepunch, _read_holepunch)


# --- noise payload and its parts ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RelayInfo:
    """One relay a server can be holepunched through, and the server's address as it saw it."""

    relay_address: Address
    peer_address: Address


@dataclass(frozen=True, slots=True)
class HolepunchInfo:
    """A server's offer to holepunch: the session id and the relays to send PEER_HOLEPUNCH via."""

    id: int
    relays: tuple[RelayInfo, ...] = ()


def _write_holepunch_info(out: bytearray, m: HolepunchInfo) -> None:
    _uint(out, m.id)
    out += compact.uint_bytes(len(m.relays))
    for r in m.relays:
        _write_ipv4(out, r.relay_address)
        _write_ipv4(out, r.peer_address)


def _read_holepunch_info(state: State) -> HolepunchInfo:
    id_ = compact.uint.decode(state)
    count = _count(state, 2 * _IPV4_SIZE)
    relays = tuple(RelayInfo(decode_ipv4(state), decode_ipv4(state)) for _ in range(count))
    return HolepunchInfo(id_, relays)


@dataclass(frozen=True, slots=True)
class UdxInfo:
    """The UDX stream the sender opened for this connection (its id and first sequence number)."""

    id: int
    seq: int
    reusable_socket: bool = False
    version: int = 1


def _check_version(name: str, version: int) -> None:
    if version != 1:
        raise EncodeError(f"only version 1 of {name} can be encoded", version=version)


def _write_udx_info(out: bytearray, m: UdxInfo) -> None:
    _check_version("udx info", m.version)
    _uint(out, 1)
    _uint(out, 1 if m.reusable_socket else 0)
    _uint(out, m.id)
    _uint(out, m.seq)


def _read_udx_info(state: State) -> UdxInfo:
    version = compact.uint.decode(state)
    features = compact.uint.decode(state)
    id_ = compact.uint.decode(state)
    seq = compact.uint.decode(state)
    return UdxInfo(id_, seq, bool(features & 1), version)


@dataclass(frozen=True, slots=True)
class SecretStreamInfo:
    """Says the sender will run a secret stream over the connection (only a version so far)."""

    version: int = 1


@dataclass(frozen=True, slots=True)
class RelayThroughInfo:
    """Asks to route the connection through a blind relay identified by key, with a pairing token."""

    public_key: bytes
    token: bytes
    version: int = 1


def _write_relay_through(out: bytearray, m: RelayThroughInfo) -> None:
    _check_version("relay-through info", m.version)
    _uint(out, 1)
    _uint(out, 0)  # flags: none defined yet
    _fixed(out, "public_key", m.public_key, 32)
    _fixed(out, "token", m.token, 32)


def _read_relay_through(state: State) -> RelayThroughInfo:
    version = compact.uint.decode(state)
    compact.uint.decode(state)  # flags: none defined yet
    public_key = state.take(32)
    token = state.take(32)
    return RelayThroughInfo(public_key, token, version)


@dataclass(frozen=True, slots=True)
class NoisePayload:
    """The application payload inside the Noise handshake: how to reach and talk to the sender.

    A ``version`` other than 1 decodes with every other field at its default: the receiver
    must answer with a version mismatch rather than guess at the layout.
    """

    error: int = 0
    firewall: int = 0
    holepunch: HolepunchInfo | None = None
    addresses4: tuple[Address, ...] = ()
    addresses6: tuple[Address, ...] = ()
    udx: UdxInfo | None = None
    secret_stream: SecretStreamInfo | None = None
    relay_through: RelayThroughInfo | None = None
    relay_addresses: tuple[Address, ...] | None = None
    version: int = 1


def _write_noise_payload(out: bytearray, m: NoisePayload) -> None:
    _check_version("noise payload", m.version)
    flags = (
        (1 if m.holepunch is not None else 0)
        | (2 if m.addresses4 else 0)
        | (4 if m.addresses6 else 0)
        | (8 if m.udx is not None else 0)
        | (16 if m.secret_stream is not None else 0)
        | (32 if m.relay_through is not None else 0)
        | (64 if m.relay_addresses is not None else 0)
    )
    _uint(out, 1)
    _uint(out, flags)
    _uint(out, m.error)
    _uint(out, m.firewall)
    if m.holepunch is not None:
        _write_holepunch_info(out, m.holepunch)
    if m.addresses4:
        _write_ipv4_array(out, m.addresses4)
    if m.addresses6:
        _write_ipv6_array(out, m.addresses6)
    if m.udx is not None:
        _write_udx_info(out, m.udx)
    if m.secret_stream is not None:
        _check_version("secret-stream info", m.secret_stream.version)
        _uint(out, 1)
    if m.relay_through is not None:
        _write_relay_through(out, m.relay_through)
    if m.relay_addresses is not None:
        _write_ipv4_array(out, m.relay_addresses)


def _read_noise_payload(state: State) -> NoisePayload:
    version = compact.uint.decode(state)
    if version != 1:
        return NoisePayload(version=version)
    flags = compact.uint.decode(state)
    error = compact.uint.decode(state)
    firewall = compact.uint.decode(state)
    return NoisePayload(
        error=error,
        firewall=firewall,
        holepunch=_read_holepunch_info(state) if flags & 1 else None,
        addresses4=_read_ipv4_array(state) if flags & 2 else (),
        addresses6=_read_ipv6_array(state) if flags & 4 else (),
        udx=_read_udx_info(state) if flags & 8 else None,
        secret_stream=SecretStreamInfo(compact.uint.decode(state)) if flags & 16 else None,
        relay_through=_read_relay_through(state) if flags & 32 else None,
        relay_addresses=_read_ipv4_array(state) if flags & 64 else None,
        version=version,
    )


noise_payload: Final[Codec[NoisePayload]] = _Struct(_write_noise_payload, _read_noise_payload)


# --- holepunch payload -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HolepunchPayload:
    """The encrypted body of a PEER_HOLEPUNCH round: each side's punching state and addresses.

    ``token``/``remote_token`` let each side prove a probe really came from the other end.
    """

    error: int = 0
    firewall: int = 0
    round: int = 0
    connected: bool = False
    punching: bool = False
    addresses: tuple[Address, ...] | None = None
    remote_address: Address | None = None
    token: bytes | None = None
    remote_token: bytes | None = None


def _write_holepunch_payload(out: bytearray, m: HolepunchPayload) -> None:
    flags = (
        (1 if m.connected else 0)
        | (2 if m.punching else 0)
        | (4 if m.addresses is not None else 0)
        | (8 if m.remote_address is not None else 0)
        | (16 if m.token is not None else 0)
        | (32 if m.remote_token is not None else 0)
    )
    _uint(out, flags)
    _uint(out, m.error)
    _uint(out, m.firewall)
    _uint(out, m.round)
    if m.addresses is not None:
        _write_ipv4_array(out, m.addresses)
    if m.remote_address is not None:
        _write_ipv4(out, m.remote_address)
    if m.token is not None:
        _fixed(out, "token", m.token, 32)
    if m.remote_token is not None:
        _fixed(out, "remote_token", m.remote_token, 32)


def _read_holepunch_payload(state: State) -> HolepunchPayload:
    flags = compact.uint.decode(state)
    error = compact.uint.decode(state)
    firewall = compact.uint.decode(state)
    round_ = compact.uint.decode(state)
    return HolepunchPayload(
        error=error,
        firewall=firewall,
        round=round_,
        connected=bool(flags & 1),
        punching=bool(flags & 2),
        addresses=_read_ipv4_array(state) if flags & 4 else None,
        remote_address=decode_ipv4(state) if flags & 8 else None,
        token=state.take(32) if flags & 16 else None,
        remote_token=state.take(32) if flags & 32 else None,
    )


holepunch_payload: Final[Codec[HolepunchPayload]] = _Struct(_write_holepunch_payload, _read_holepunch_payload)


# --- announce / lookup -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Peer:
    """A peer record: its public key and the DHT nodes it can be reached through."""

    public_key: bytes
    relay_addresses: tuple[Address, ...] = ()


def _write_peer(out: bytearray, m: Peer) -> None:
    _fixed(out, "public_key", m.public_key, 32)
    _write_ipv4_array(out, m.relay_addresses)


def _read_peer(state: State) -> Peer:
    public_key = state.take(32)
    return Peer(public_key, _read_ipv4_array(state))


def _write_peers(out: bytearray, peers: Sequence[Peer]) -> None:
    out += compact.uint_bytes(len(peers))
    for p in peers:
        _write_peer(out, p)


def _read_peers(state: State) -> tuple[Peer, ...]:
    # A peer is at least 33 bytes (key + empty relay count).
    return tuple(_read_peer(state) for _ in range(_count(state, 33)))


peer: Final[Codec[Peer]] = _Struct(_write_peer, _read_peer)
peers: Final[Codec[tuple[Peer, ...]]] = _Struct(_write_peers, _read_peers)


@dataclass(frozen=True, slots=True)
class LookupReply:
    """LOOKUP/ANNOUNCE's reply value: the peers stored under the target.

    ``bump`` is the newest refresh timestamp a node has seen; replies from older nodes lack it
    and decode with 0.
    """

    peers: tuple[Peer, ...] = ()
    bump: int = 0


def _write_lookup_reply(out: bytearray, m: LookupReply) -> None:
    _write_peers(out, m.peers)
    _uint(out, m.bump)


def _read_lookup_reply(state: State) -> LookupReply:
    found = _read_peers(state)
    bump = compact.uint.decode(state) if state.start < state.end else 0
    return LookupReply(found, bump)


lookup_raw_reply: Final[Codec[LookupReply]] = _Struct(_write_lookup_reply, _read_lookup_reply)


def encode_lookup_raw_reply(raw_peers: Sequence[bytes], bump: int = 0) -> bytes:
    """A lookup reply from peer records kept in their encoded form.

    A DHT node stores announced peers as the bytes it received, so it can answer lookups by
    concatenation without decoding and re-encoding every record.
    """
    out = bytearray(compact.uint_bytes(len(raw_peers)))
    for raw in raw_peers:
        out += raw
    _uint(out, bump)
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Announce:
    """ANNOUNCE/UNANNOUNCE's value: the peer record, a refresh token and the owner's signature."""

    peer: Peer | None = None
    refresh: bytes | None = None
    signature: bytes | None = None
    bump: int = 0


def _write_announce(out: bytearray, m: Announce) -> None:
    flags = (
        (1 if m.peer is not None else 0)
        | (2 if m.refresh is not None else 0)
        | (4 if m.signature is not None else 0)
        | (8 if m.bump else 0)
    )
    _uint(out, flags)
    if m.peer is not None:
        _write_peer(out, m.peer)
    if m.refresh is not None:
        _fixed(out, "refresh", m.refresh, 32)
    if m.signature is not None:
        _fixed(out, "signature", m.signature, 64)
    if m.bump:
        _uint(out, m.bump)


def _read_announce(state: State) -> Announce:
    flags = compact.uint.decode(state)
    return Announce(
        peer=_read_peer(state) if flags & 1 else None,
        refresh=state.take(32) if flags & 2 else None,
        signature=state.take(64) if flags & 4 else None,
        bump=compact.uint.decode(state) if flags & 8 else 0,
    )


announce: Final[Codec[Announce]] = _Struct(_write_announce, _read_announce)


# --- mutable / immutable records ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MutableSignable:
    """What a mutable record's signature covers (after hashing): its sequence number and value."""

    seq: int
    value: bytes


def _write_mutable_signable(out: bytearray, m: MutableSignable) -> None:
    _uint(out, m.seq)
    _buffer(out, m.value)


def _read_mutable_signable(state: State) -> MutableSignable:
    seq = compact.uint.decode(state)
    return MutableSignable(seq, compact.buffer.decode(state))


mutable_signable: Final[Codec[MutableSignable]] = _Struct(_write_mutable_signable, _read_mutable_signable)


@dataclass(frozen=True, slots=True)
class MutablePutRequest:
    """MUTABLE_PUT's value: a signed record stored under BLAKE2b-256 of ``public_key``."""

    public_key: bytes
    seq: int
    value: bytes
    signature: bytes


def _write_mutable_put(out: bytearray, m: MutablePutRequest) -> None:
    _fixed(out, "public_key", m.public_key, 32)
    _uint(out, m.seq)
    _buffer(out, m.value)
    _fixed(out, "signature", m.signature, 64)


def _read_mutable_put(state: State) -> MutablePutRequest:
    public_key = state.take(32)
    seq = compact.uint.decode(state)
    value = compact.buffer.decode(state)
    return MutablePutRequest(public_key, seq, value, state.take(64))


mutable_put_request: Final[Codec[MutablePutRequest]] = _Struct(_write_mutable_put, _read_mutable_put)


@dataclass(frozen=True, slots=True)
class MutableGetResponse:
    """MUTABLE_GET's reply: the stored record (the asker already knows the key it looked up)."""

    seq: int
    value: bytes
    signature: bytes


def _write_mutable_get(out: bytearray, m: MutableGetResponse) -> None:
    _uint(out, m.seq)
    _buffer(out, m.value)
    _fixed(out, "signature", m.signature, 64)


def _read_mutable_get(state: State) -> MutableGetResponse:
    seq = compact.uint.decode(state)
    value = compact.buffer.decode(state)
    return MutableGetResponse(seq, value, state.take(64))


mutable_get_response: Final[Codec[MutableGetResponse]] = _Struct(_write_mutable_get, _read_mutable_get)


def immutable_target(value: bytes) -> bytes:
    """Where an immutable record lives: BLAKE2b-256 of its bytes, so any reader can verify it."""
    return blake2b256(value)


def mutable_target(public_key: bytes) -> bytes:
    """Where a mutable record lives: BLAKE2b-256 of the signing key."""
    return blake2b256(public_key)


# --- plugins ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PluginRequest:
    """PLUGIN's value: a named, versioned extension command with an optional argument."""

    plugin: str
    version: int
    command: int
    value: bytes | None = None


def _write_plugin_request(out: bytearray, m: PluginRequest) -> None:
    _buffer(out, m.plugin.encode("utf-8"))
    _uint(out, m.version)
    _uint(out, m.command)
    _uint(out, 1 if m.value is not None else 0)
    if m.value is not None:
        _buffer(out, m.value)


def _read_plugin_request(state: State) -> PluginRequest:
    plugin = compact.string.decode(state)
    version = compact.uint.decode(state)
    command = compact.uint.decode(state)
    flags = compact.uint.decode(state)
    value = compact.buffer.decode(state) if flags & 1 else None
    return PluginRequest(plugin, version, command, value)


plugin_request: Final[Codec[PluginRequest]] = _Struct(_write_plugin_request, _read_plugin_request)


def encode(codec: Codec[T], value: T) -> bytes:
    """Encode one HyperDHT structure (a thin alias so callers need only this module)."""
    return compact.encode(codec, value)


def decode(codec: Codec[T], data: bytes | bytearray | memoryview) -> T:
    """Decode one HyperDHT structure; trailing bytes are ignored, as JS ignores them."""
    return compact.decode(codec, data)
