"""dht-rpc wire format: the request and response datagrams, node ids and peer addresses.

Theory of operation
-------------------
Every dht-rpc datagram starts with one byte holding a 2-bit protocol version (3) in the low
bits and the message type above it: ``0x03`` is a request, ``0x13`` a response. What follows
is a compact-encoding ``uint`` of presence flags, a little-endian ``uint16`` transaction id
(the response echoes the request's), and the *to* address: the address the sender sent the
datagram to, as a 6-byte compact IPv4 address (4 address bytes, ``uint16`` LE port). Echoing
it lets a node learn how the network sees it (its NAT mapping) from every reply.

Optional fields follow in a fixed order, each present only if its flag bit is set:

* request: ``id`` (1), ``token`` (2), then always ``command`` (a ``uint``; flag 4 marks it as
  one of dht-rpc's *internal* commands rather than the application's), ``target`` (8),
  ``value`` (16, a length-prefixed buffer);
* response: ``id`` (1), ``token`` (2), ``closer_nodes`` (4, a ``uint`` count of 6-byte
  addresses), ``error`` (8, a ``uint``; 0 when absent), ``value`` (16).

``id`` and ``token``/``target`` are exactly 32 bytes. A node only sends its ``id`` when it is
persistent (reachable, not ephemeral); that id must equal :func:`peer_id` of the address the
*receiver* saw the datagram come from, otherwise the receiver treats the sender as having no
id. So ids cannot be chosen, only earned by owning an address, which is what keeps Sybil
placement in the keyspace expensive.

A zero-length ``value`` with its flag set is distinct from no value (the flag is what says
"present"), so values are ``bytes | None`` here. Decoders raise :class:`DecodeError` on
anything short or malformed; trailing bytes are ignored as the JS decoder ignores them.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from dataclasses import dataclass
from typing import Final

from hyperlobby.encoding import compact
from hyperlobby.encoding.compact import State
from hyperlobby.errors import DecodeError, EncodeError

VERSION: Final = 0b11
REQUEST_ID: Final = (0b0000 << 4) | VERSION
RESPONSE_ID: Final = (0b0001 << 4) | VERSION

# Internal commands (flag 4 on a request).
PING: Final = 0
PING_NAT: Final = 1
FIND_NODE: Final = 2
DOWN_HINT: Final = 3
DELAYED_PING: Final = 4

# Error codes carried in responses.
OK: Final = 0
ERROR_UNKNOWN_COMMAND: Final = 1
ERROR_INVALID_TOKEN: Final = 2

ID_LENGTH: Final = 32

_FLAG_ID = 1
_FLAG_TOKEN = 2
_FLAG_INTERNAL = 4
_FLAG_CLOSER = 4
_FLAG_TARGET = 8
_FLAG_ERROR = 8
_FLAG_VALUE = 16

_U16 = struct.Struct("<H")


@dataclass(frozen=True, slots=True)
class Address:
    """An IPv4 host and UDP port, as dht-rpc puts them on the wire (no ids here: ids are derived)."""

    host: str
    port: int

    def as_tuple(self) -> tuple[str, int]:
        return (self.host, self.port)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@functools.lru_cache(maxsize=4096)
def encode_ipv4(host: str, port: int) -> bytes:
    """The 6-byte compact IPv4 address: four address bytes, then the port as uint16 LE.

    Cached: a DHT node encodes the same few hundred addresses over and over (every reply lists
    closer nodes, every table entry is hashed into an id), and parsing dotted text dominated.
    """
    parts = host.split(".")
    if len(parts) != 4:
        raise EncodeError("not an IPv4 address", host=host)
    try:
        octets = bytes(int(p) for p in parts)
    except ValueError as exc:
        raise EncodeError("not an IPv4 address", host=host) from exc
    if not 0 <= port <= 0xFFFF:
        raise EncodeError("port out of range", port=port)
    return octets + _U16.pack(port)


def decode_ipv4(state: State) -> Address:
    raw = state.take(6)
    return Address(f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}", raw[4] | (raw[5] << 8))


@functools.lru_cache(maxsize=4096)
def peer_id(host: str, port: int) -> bytes:
    """A node's id: unkeyed BLAKE2b-256 of its 6-byte compact address.

    Deriving the id from the address means a receiver can check a claimed id against where the
    packet came from, so no one can pick a position in the keyspace at will.
    """
    return hashlib.blake2b(encode_ipv4(host, port), digest_size=32).digest()


def make_token(secret: bytes, host: str) -> bytes:
    """A round-trip token: BLAKE2b-256 of the requester's IP text, keyed with a node secret.

    Handing it out in a reply and requiring it back later proves the requester receives
    datagrams at that IP, without the responder keeping per-requester state.
    """
    return hashlib.blake2b(host.encode(), key=secret, digest_size=32).digest()


def _fixed32(state: State) -> bytes:
    return state.take(ID_LENGTH)


def _check32(name: str, value: bytes | None) -> None:
    if value is not None and len(value) != ID_LENGTH:
        raise EncodeError(f"{name} must be 32 bytes", length=len(value))


@dataclass(frozen=True, slots=True)
class Request:
    """A dht-rpc request datagram (type byte ``0x03``)."""

    tid: int
    to: Address
    command: int
    internal: bool = False
    id: bytes | None = None
    token: bytes | None = None
    target: bytes | None = None
    value: bytes | None = None


@dataclass(frozen=True, slots=True)
class Response:
    """A dht-rpc response datagram (type byte ``0x13``); ``error`` 0 means success."""

    tid: int
    to: Address
    id: bytes | None = None
    token: bytes | None = None
    closer_nodes: tuple[Address, ...] = ()
    error: int = 0
    value: bytes | None = None


def encode_request(req: Request) -> bytes:
    """Serialise a request; fields are written in the order and under the flags listed above."""
    _check32("id", req.id)
    _check32("token", req.token)
    _check32("target", req.target)
    if not 0 <= req.tid <= 0xFFFF:
        raise EncodeError("tid out of range", tid=req.tid)
    flags = (
        (_FLAG_ID if req.id is not None else 0)
        | (_FLAG_TOKEN if req.token is not None else 0)
        | (_FLAG_INTERNAL if req.internal else 0)
        | (_FLAG_TARGET if req.target is not None else 0)
        | (_FLAG_VALUE if req.value is not None else 0)
    )
    out = bytearray((REQUEST_ID,))
    out += compact.uint_bytes(flags)
    out += _U16.pack(req.tid)
    out += encode_ipv4(req.to.host, req.to.port)
    if req.id is not None:
        out += req.id
    if req.token is not None:
        out += req.token
    out += compact.uint_bytes(req.command)
    if req.target is not None:
        out += req.target
    if req.value is not None:
        out += compact.uint_bytes(len(req.value))
        out += req.value
    return bytes(out)


def encode_response(res: Response) -> bytes:
    """Serialise a response (the closer nodes list is written only when non-empty, as in JS)."""
    _check32("id", res.id)
    _check32("token", res.token)
    if not 0 <= res.tid <= 0xFFFF:
        raise EncodeError("tid out of range", tid=res.tid)
    if res.error < 0:
        raise EncodeError("error code must be non-negative", error=res.error)
    flags = (
        (_FLAG_ID if res.id is not None else 0)
        | (_FLAG_TOKEN if res.token is not None else 0)
        | (_FLAG_CLOSER if res.closer_nodes else 0)
        | (_FLAG_ERROR if res.error > 0 else 0)
        | (_FLAG_VALUE if res.value is not None else 0)
    )
    out = bytearray((RESPONSE_ID,))
    out += compact.uint_bytes(flags)
    out += _U16.pack(res.tid)
    out += encode_ipv4(res.to.host, res.to.port)
    if res.id is not None:
        out += res.id
    if res.token is not None:
        out += res.token
    if res.closer_nodes:
        out += compact.uint_bytes(len(res.closer_nodes))
        for node in res.closer_nodes:
            out += encode_ipv4(node.host, node.port)
    if res.error > 0:
        out += compact.uint_bytes(res.error)
    if res.value is not None:
        out += compact.uint_bytes(len(res.value))
        out += res.value
    return bytes(out)


# A reply can carry at most a datagram's worth of addresses; refuse absurd counts up front.
MAX_CLOSER_NODES: Final = 0x10000 // 6


def _decode_header(state: State) -> tuple[int, int, Address]:
    flags = compact.uint.decode(state)
    tid = _U16.unpack(state.take(2))[0]
    to = decode_ipv4(state)
    return flags, tid, to


def decode_request_body(state: State) -> Request:
    """Decode a request after its type byte (``state`` positioned just past it)."""
    flags, tid, to = _decode_header(state)
    id_ = _fixed32(state) if flags & _FLAG_ID else None
    token = _fixed32(state) if flags & _FLAG_TOKEN else None
    command = compact.uint.decode(state)
    target = _fixed32(state) if flags & _FLAG_TARGET else None
    value = compact.buffer.decode(state) if flags & _FLAG_VALUE else None
    return Request(
        tid=tid,
        to=to,
        command=command,
        internal=bool(flags & _FLAG_INTERNAL),
        id=id_,
        token=token,
        target=target,
        value=value,
    )


def decode_response_body(state: State) -> Response:
    """Decode a response after its type byte."""
    flags, tid, to = _decode_header(state)
    id_ = _fixed32(state) if flags & _FLAG_ID else None
    token = _fixed32(state) if flags & _FLAG_TOKEN else None
    closer: tuple[Address, ...] = ()
    if flags & _FLAG_CLOSER:
        count = compact.uint.decode(state)
        if count > MAX_CLOSER_NODES or count * 6 > state.end - state.start:
            raise DecodeError("closer nodes run past the datagram", count=count)
        closer = tuple(decode_ipv4(state) for _ in range(count))
    error = compact.uint.decode(state) if flags & _FLAG_ERROR else 0
    value = compact.buffer.decode(state) if flags & _FLAG_VALUE else None
    return Response(tid=tid, to=to, id=id_, token=token, closer_nodes=closer, error=error, value=value)


def decode_message(data: bytes | bytearray | memoryview) -> Request | Response:
    """Decode one datagram as a request or response; anything else raises :class:`DecodeError`."""
    raw = bytes(data)
    if len(raw) < 2:
        raise DecodeError("datagram too short for dht-rpc", length=len(raw))
    state = State(raw, 1)
    if raw[0] == REQUEST_ID:
        return decode_request_body(state)
    if raw[0] == RESPONSE_ID:
        return decode_response_body(state)
    raise DecodeError("not a dht-rpc datagram", first_byte=raw[0])


def encode_message(msg: Request | Response) -> bytes:
    return encode_request(msg) if isinstance(msg, Request) else encode_response(msg)


def encode_down_hint(host: str, port: int) -> bytes:
    """DOWN_HINT's value: the compact address of the node the sender found unresponsive."""
    return encode_ipv4(host, port)


def encode_port(port: int) -> bytes:
    """PING_NAT's value: the uint16 LE port the reply should be sent to."""
    return _U16.pack(port)
