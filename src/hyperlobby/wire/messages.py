"""The hypercore replication messages (protocol ``hypercore/alpha``) and their codecs.

Theory of operation
-------------------
A hypercore channel is a protomux channel whose open handshake is :class:`Handshake` and whose
message types 0..9 are, in this order: sync, request, cancel, data, noData, want, unwant,
bitfield, range, extension (:data:`HYPERCORE_MESSAGES`). The mux moves ``(type, body)`` pairs;
this module turns bodies into frozen records and back, byte for byte as hypercore 11.39.5 does.

Things that look arbitrary but are required for identical bytes:

* Optional parts are announced by a leading ``uint`` bit field and then follow in bit order.
  Presence is decided by *truthiness*, as JS does: a request ``priority`` of 0 is simply not
  sent, a noData ``reason`` of 0 is "no reason".
* ``want``/``unwant`` omit their trailing flags when they are 0, and ``noData`` may arrive
  without its flags; decoders read those fields only when bytes remain.
* ``range`` with ``length == 1`` sets bit 1 and leaves the length out.
* ``data`` ends with the manifest. Its length is not written anywhere, so :func:`manifest_size`
  walks the manifest encoding (spec crypto.md §5) to find where it stops. The manifest is kept as
  its raw encoded bytes: decoding it into a record is the crypto layer's job.
* Decoders ignore unknown flag bits and trailing bytes, as JS does. A body that is too short, or
  declares more array items than remain, raises :class:`DecodeError`; no decoder allocates more
  than the input can justify (array counts are checked against the bytes actually present).
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any, Final

from hyperlobby.core.proofs import (
    BlockRequest,
    DataBlock,
    DataHash,
    DataSeek,
    DataUpgrade,
    HashRequest,
    SeekRequest,
    TreeNode,
    UpgradeRequest,
    record_builder,
    tree_node,
)
from hyperlobby.encoding import compact as c
from hyperlobby.encoding.compact import State
from hyperlobby.errors import DecodeError, EncodeError

PROTOCOL: Final = "hypercore/alpha"
ALIASES: Final = ("hypercore",)

# noData reasons (hypercore.md §5).
NOT_AVAILABLE: Final = 1
INVALID_REQUEST: Final = 2

_NODE_MIN_SIZE = 34  # uint index + uint size + 32-byte hash

_NODE_MEMO: dict[bytes, TreeNode] = {}
"""Proof nodes decoded lately, by hash. A pipelined download receives the same upper nodes in
many consecutive proofs (the sibling at level ``j`` is shared by ``2^j`` blocks), and building a
frozen record costs more than the rest of decoding a node; a node is reused only if index and
size match too, so what a message decodes to is unchanged. Bounded: cleared when full."""
_NODE_MEMO_MAX = 4096


# --- records ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Handshake:
    """The channel open payload: ``uint flags`` (bit0 = seeks supported) then the capability."""

    capability: bytes
    seeks: bool = True


@dataclass(frozen=True, slots=True)
class Sync:
    fork: int
    length: int
    remote_length: int
    can_upgrade: bool = False
    uploading: bool = False
    downloading: bool = False
    has_manifest: bool = False
    allow_push: bool = False


@dataclass(frozen=True, slots=True)
class Request:
    id: int
    fork: int
    block: BlockRequest | None = None
    hash: HashRequest | None = None
    seek: SeekRequest | None = None
    upgrade: UpgradeRequest | None = None
    manifest: bool = False
    priority: int = 0


@dataclass(frozen=True, slots=True)
class Cancel:
    request: int


@dataclass(frozen=True, slots=True)
class Data:
    """A proof answer. ``manifest`` is the manifest's encoded bytes (crypto.md §5), undecoded."""

    request: int
    fork: int
    block: DataBlock | None = None
    hash: DataHash | None = None
    seek: DataSeek | None = None
    upgrade: DataUpgrade | None = None
    manifest: bytes | None = None


# Fast positional constructors for the records a download builds per block (record_builder).
_request = record_builder(Request)
_data = record_builder(Data)
_block_request = record_builder(BlockRequest)
_data_block = record_builder(DataBlock)


@dataclass(frozen=True, slots=True)
class NoData:
    """``reason`` is None when absent; 0 is treated like None on encode (JS tests truthiness)."""

    request: int
    reason: int | None = None


@dataclass(frozen=True, slots=True)
class Want:
    start: int
    length: int
    any: bool = False


@dataclass(frozen=True, slots=True)
class Unwant:
    start: int
    length: int
    any: bool = False


@dataclass(frozen=True, slots=True)
class Bitfield:
    """``words``: little-endian uint32 words, bit j of word k = block ``start + 32k + j``."""

    start: int
    words: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Range:
    start: int
    length: int
    drop: bool = False


@dataclass(frozen=True, slots=True)
class Extension:
    """``message`` runs to the end of the body (no length prefix of its own)."""

    name: str
    message: bytes


Message = Sync | Request | Cancel | Data | NoData | Want | Unwant | Bitfield | Range | Extension


# --- helpers ------------------------------------------------------------------------------------

_uint = c.uint


def _flag(state: State) -> int:
    return _uint.decode(state)


def _tail_uint(state: State) -> int:
    """A trailing optional ``uint``: JS reads it only if the body has bytes left."""
    return _uint.decode(state) if state.start < state.end else 0


def _check_count(state: State, count: int, min_item: int) -> None:
    """Refuse an array count that cannot fit in what is left, before allocating anything."""
    if count > c.MAX_ARRAY_LENGTH:
        raise DecodeError("array too long", count=count, limit=c.MAX_ARRAY_LENGTH)
    if count * min_item > state.end - state.start:
        raise DecodeError("array count exceeds the bytes present", count=count, offset=state.start)


class _Node:
    """A tree node: ``uint index, uint size, fixed32 hash``.

    Proofs carry several nodes per block, so this codec reads and writes the buffer directly
    instead of going through three generic codec calls per node.
    """

    def preencode(self, state: State, value: TreeNode) -> None:
        state.end += c.uint_size(value.index) + c.uint_size(value.size) + 32

    def encode(self, state: State, value: TreeNode) -> None:
        if len(value.hash) != 32:
            raise EncodeError("tree node hash must be 32 bytes", got=len(value.hash))
        state.put(c.uint_bytes(value.index) + c.uint_bytes(value.size) + value.hash)

    def decode(self, state: State) -> TreeNode:
        buf = state.buffer
        pos = state.start
        end = state.end
        # Fast path for one-, three- and five-byte uints (every index and size below 2^32);
        # anything else, or a short buffer, takes the generic (checked) path.
        if pos + 43 <= end:
            first = buf[pos]
            if first < 0xFD:
                index, at = first, pos + 1
            elif first == 0xFD:
                index, at = buf[pos + 1] | buf[pos + 2] << 8, pos + 3
            elif first == 0xFE:
                index, at = int.from_bytes(buf[pos + 1 : pos + 5], "little"), pos + 5
            else:
                at = -1
            if at >= 0:
                first = buf[at]
                if first < 0xFD:
                    size, at = first, at + 1
                elif first == 0xFD:
                    size, at = buf[at + 1] | buf[at + 2] << 8, at + 3
                elif first == 0xFE:
                    size, at = int.from_bytes(buf[at + 1 : at + 5], "little"), at + 5
                else:
                    at = -1
                if at >= 0:
                    state.start = at + 32
                    return TreeNode(index, size, bytes(buf[at : at + 32]))
        index = _uint.decode(state)
        size = _uint.decode(state)
        return TreeNode(index, size, c.fixed32.decode(state))


_node = _Node()


class _Nodes:
    def preencode(self, state: State, value: tuple[TreeNode, ...]) -> None:
        state.end += c.uint_size(len(value))
        for n in value:
            _node.preencode(state, n)

    def encode(self, state: State, value: tuple[TreeNode, ...]) -> None:
        _uint.encode(state, len(value))
        for n in value:
            _node.encode(state, n)

    def decode(self, state: State) -> tuple[TreeNode, ...]:
        count = _uint.decode(state)
        _check_count(state, count, _NODE_MIN_SIZE)
        return tuple(_node.decode(state) for _ in range(count))


_nodes = _Nodes()


# --- manifest length scanner --------------------------------------------------------------------


def _skip_signer(state: State) -> None:
    alg = _uint.decode(state)
    if alg != 0:
        raise DecodeError("unknown manifest signature algorithm", id=alg)
    state.take(64)


def _skip_signers(state: State) -> None:
    count = _uint.decode(state)
    _check_count(state, count, 65)
    for _ in range(count):
        _skip_signer(state)


def _skip_hash_id(state: State) -> None:
    hash_id = _uint.decode(state)
    if hash_id != 0:
        raise DecodeError("unknown manifest hash", id=hash_id)


def _skip_manifest(state: State) -> None:
    """Advance ``state`` past one encoded manifest, validating what JS validates on decode."""
    version = _uint.decode(state)
    if version == 0:
        _skip_hash_id(state)
        kind = _uint.decode(state)
        if kind == 0:
            state.take(32)
        elif kind == 1:
            _skip_signer(state)
        elif kind == 2:
            _uint.decode(state)  # flags
            _uint.decode(state)  # quorum
            _skip_signers(state)
        else:
            raise DecodeError("unknown manifest v0 type", type=kind)
        return
    if version > 3:
        raise DecodeError("unknown manifest version", version=version)
    flags = _uint.decode(state)
    _skip_hash_id(state)
    _uint.decode(state)  # quorum
    _skip_signers(state)
    if flags & 2:  # prologue
        state.take(32)
        _uint.decode(state)
    if flags & 4:  # linked cores
        count = _uint.decode(state)
        _check_count(state, count, 32)
        state.take(32 * count)
    if flags & 8:  # user data
        c.buffer.decode(state)


def manifest_size(data: bytes | bytearray | memoryview, offset: int = 0) -> int:
    """Byte length of the encoded manifest starting at ``offset`` (raises DecodeError if malformed)."""
    state = State(data, offset)
    _skip_manifest(state)
    return state.start - offset


# --- message codecs -----------------------------------------------------------------------------


class _HandshakeCodec:
    def preencode(self, state: State, m: Handshake) -> None:
        state.end += 33

    def encode(self, state: State, m: Handshake) -> None:
        _uint.encode(state, 1 if m.seeks else 0)
        c.fixed32.encode(state, m.capability)

    def decode(self, state: State) -> Handshake:
        flags = _flag(state)
        return Handshake(capability=c.fixed32.decode(state), seeks=bool(flags & 1))


class _SyncCodec:
    def preencode(self, state: State, m: Sync) -> None:
        state.end += 1 + c.uint_size(m.fork) + c.uint_size(m.length) + c.uint_size(m.remote_length)

    def encode(self, state: State, m: Sync) -> None:
        flags = (
            (1 if m.can_upgrade else 0)
            | (2 if m.uploading else 0)
            | (4 if m.downloading else 0)
            | (8 if m.has_manifest else 0)
            | (16 if m.allow_push else 0)
        )
        _uint.encode(state, flags)
        _uint.encode(state, m.fork)
        _uint.encode(state, m.length)
        _uint.encode(state, m.remote_length)

    def decode(self, state: State) -> Sync:
        flags = _flag(state)
        return Sync(
            fork=_uint.decode(state),
            length=_uint.decode(state),
            remote_length=_uint.decode(state),
            can_upgrade=bool(flags & 1),
            uploading=bool(flags & 2),
            downloading=bool(flags & 4),
            has_manifest=bool(flags & 8),
            allow_push=bool(flags & 16),
        )


def _pair_size(a: int, b: int) -> int:
    return c.uint_size(a) + c.uint_size(b)


class _RequestCodec:
    def preencode(self, state: State, m: Request) -> None:
        state.end += 1 + _pair_size(m.id, m.fork)
        if m.block:
            state.end += _pair_size(m.block.index, m.block.nodes)
        if m.hash:
            state.end += _pair_size(m.hash.index, m.hash.nodes)
        if m.seek:
            state.end += _pair_size(m.seek.bytes, m.seek.padding)
        if m.upgrade:
            state.end += _pair_size(m.upgrade.start, m.upgrade.length)
        if m.priority:
            state.end += c.uint_size(m.priority)

    def encode(self, state: State, m: Request) -> None:
        flags = (
            (1 if m.block else 0)
            | (2 if m.hash else 0)
            | (4 if m.seek else 0)
            | (8 if m.upgrade else 0)
            | (16 if m.manifest else 0)
            | (32 if m.priority else 0)
        )
        _uint.encode(state, flags)
        _uint.encode(state, m.id)
        _uint.encode(state, m.fork)
        if m.block:
            _uint.encode(state, m.block.index)
            _uint.encode(state, m.block.nodes)
        if m.hash:
            _uint.encode(state, m.hash.index)
            _uint.encode(state, m.hash.nodes)
        if m.seek:
            _uint.encode(state, m.seek.bytes)
            _uint.encode(state, m.seek.padding)
        if m.upgrade:
            _uint.encode(state, m.upgrade.start)
            _uint.encode(state, m.upgrade.length)
        if m.priority:
            _uint.encode(state, m.priority)

    def decode(self, state: State) -> Request:
        flags = _flag(state)
        rid = _uint.decode(state)
        fork = _uint.decode(state)
        block = BlockRequest(_uint.decode(state), _uint.decode(state)) if flags & 1 else None
        hash_ = HashRequest(_uint.decode(state), _uint.decode(state)) if flags & 2 else None
        seek = SeekRequest(_uint.decode(state), _uint.decode(state)) if flags & 4 else None
        upgrade = UpgradeRequest(_uint.decode(state), _uint.decode(state)) if flags & 8 else None
        priority = _uint.decode(state) if flags & 32 else 0
        return Request(rid, fork, block, hash_, seek, upgrade, bool(flags & 16), priority)


class _CancelCodec:
    def preencode(self, state: State, m: Cancel) -> None:
        state.end += c.uint_size(m.request)

    def encode(self, state: State, m: Cancel) -> None:
        _uint.encode(state, m.request)

    def decode(self, state: State) -> Cancel:
        return Cancel(_uint.decode(state))


class _DataCodec:
    def preencode(self, state: State, m: Data) -> None:
        state.end += 1 + _pair_size(m.request, m.fork)
        if m.block:
            state.end += c.uint_size(m.block.index)
            c.buffer.preencode(state, m.block.value)
            _nodes.preencode(state, m.block.nodes)
        if m.hash:
            state.end += c.uint_size(m.hash.index)
            _nodes.preencode(state, m.hash.nodes)
        if m.seek:
            state.end += c.uint_size(m.seek.bytes)
            _nodes.preencode(state, m.seek.nodes)
        if m.upgrade:
            u = m.upgrade
            state.end += _pair_size(u.start, u.length)
            _nodes.preencode(state, u.nodes)
            _nodes.preencode(state, u.additional_nodes)
            c.optional_buffer.preencode(state, u.signature)
        if m.manifest:
            state.end += len(m.manifest)

    def encode(self, state: State, m: Data) -> None:
        flags = (
            (1 if m.block else 0)
            | (2 if m.hash else 0)
            | (4 if m.seek else 0)
            | (8 if m.upgrade else 0)
            | (16 if m.manifest else 0)
        )
        _uint.encode(state, flags)
        _uint.encode(state, m.request)
        _uint.encode(state, m.fork)
        if m.block:
            _uint.encode(state, m.block.index)
            c.buffer.encode(state, m.block.value)
            _nodes.encode(state, m.block.nodes)
        if m.hash:
            _uint.encode(state, m.hash.index)
            _nodes.encode(state, m.hash.nodes)
        if m.seek:
            _uint.encode(state, m.seek.bytes)
            _nodes.encode(state, m.seek.nodes)
        if m.upgrade:
            u = m.upgrade
            _uint.encode(state, u.start)
            _uint.encode(state, u.length)
            _nodes.encode(state, u.nodes)
            _nodes.encode(state, u.additional_nodes)
            c.optional_buffer.encode(state, u.signature)
        if m.manifest:
            # The bytes must be one well-formed manifest, or the peer misparses what follows.
            try:
                size = manifest_size(m.manifest)
            except DecodeError as exc:
                raise EncodeError("manifest bytes are not a valid manifest", reason=str(exc)) from None
            if size != len(m.manifest):
                raise EncodeError("manifest bytes hold trailing data", size=len(m.manifest))
            state.put(m.manifest)

    def decode(self, state: State) -> Data:
        flags = _flag(state)
        request = _uint.decode(state)
        fork = _uint.decode(state)
        block = hash_ = seek = upgrade = None
        manifest = None
        if flags & 1:
            block = DataBlock(_uint.decode(state), c.buffer.decode(state), _nodes.decode(state))
        if flags & 2:
            hash_ = DataHash(_uint.decode(state), _nodes.decode(state))
        if flags & 4:
            seek = DataSeek(_uint.decode(state), _nodes.decode(state))
        if flags & 8:
            upgrade = DataUpgrade(
                start=_uint.decode(state),
                length=_uint.decode(state),
                nodes=_nodes.decode(state),
                additional_nodes=_nodes.decode(state),
                signature=c.optional_buffer.decode(state) or b"",
            )
        if flags & 16:
            start = state.start
            _skip_manifest(state)
            manifest = bytes(state.buffer[start : state.start])
        return Data(request, fork, block, hash_, seek, upgrade, manifest)


class _NoDataCodec:
    def preencode(self, state: State, m: NoData) -> None:
        state.end += c.uint_size(m.request) + 1
        if m.reason:
            state.end += c.uint_size(m.reason)

    def encode(self, state: State, m: NoData) -> None:
        _uint.encode(state, m.request)
        _uint.encode(state, 1 if m.reason else 0)
        if m.reason:
            _uint.encode(state, m.reason)

    def decode(self, state: State) -> NoData:
        request = _uint.decode(state)
        flags = _tail_uint(state)
        return NoData(request, _uint.decode(state) if flags & 1 else None)


class _WantCodec:
    """Shared by want and unwant, which have the same layout."""

    def __init__(self, cls: type[Want] | type[Unwant]) -> None:
        self.cls = cls

    def preencode(self, state: State, m: Want | Unwant) -> None:
        state.end += _pair_size(m.start, m.length) + (1 if m.any else 0)

    def encode(self, state: State, m: Want | Unwant) -> None:
        _uint.encode(state, m.start)
        _uint.encode(state, m.length)
        if m.any:
            _uint.encode(state, 1)

    def decode(self, state: State) -> Want | Unwant:
        start = _uint.decode(state)
        length = _uint.decode(state)
        flags = _tail_uint(state)
        return self.cls(start, length, bool(flags & 1))


class _BitfieldCodec:
    def preencode(self, state: State, m: Bitfield) -> None:
        state.end += c.uint_size(m.start)
        c.uint32array.preencode(state, list(m.words))

    def encode(self, state: State, m: Bitfield) -> None:
        _uint.encode(state, m.start)
        c.uint32array.encode(state, list(m.words))

    def decode(self, state: State) -> Bitfield:
        start = _uint.decode(state)
        save = state.start
        count = _uint.decode(state)
        _check_count(state, count, 4)
        state.start = save
        return Bitfield(start, tuple(c.uint32array.decode(state)))


class _RangeCodec:
    def preencode(self, state: State, m: Range) -> None:
        state.end += 1 + c.uint_size(m.start) + (0 if m.length == 1 else c.uint_size(m.length))

    def encode(self, state: State, m: Range) -> None:
        _uint.encode(state, (1 if m.drop else 0) | (2 if m.length == 1 else 0))
        _uint.encode(state, m.start)
        if m.length != 1:
            _uint.encode(state, m.length)

    def decode(self, state: State) -> Range:
        flags = _flag(state)
        start = _uint.decode(state)
        length = 1 if flags & 2 else _uint.decode(state)
        return Range(start, length, bool(flags & 1))


class _ExtensionCodec:
    def preencode(self, state: State, m: Extension) -> None:
        c.string.preencode(state, m.name)
        state.end += len(m.message)

    def encode(self, state: State, m: Extension) -> None:
        c.string.encode(state, m.name)
        state.put(m.message)

    def decode(self, state: State) -> Extension:
        name = _decode_lenient_string(state)
        return Extension(name, c.raw.decode(state))


def _decode_lenient_string(state: State) -> str:
    """JS decodes UTF-8 with replacement characters instead of failing; so do we."""
    return c.buffer.decode(state).decode("utf-8", errors="replace")


handshake_codec: Final[c.Codec[Handshake]] = _HandshakeCodec()
sync_codec: Final[c.Codec[Sync]] = _SyncCodec()
request_codec: Final[c.Codec[Request]] = _RequestCodec()
cancel_codec: Final[c.Codec[Cancel]] = _CancelCodec()
data_codec: Final[c.Codec[Data]] = _DataCodec()
no_data_codec: Final[c.Codec[NoData]] = _NoDataCodec()
want_codec: Final[c.Codec[Want | Unwant]] = _WantCodec(Want)
unwant_codec: Final[c.Codec[Want | Unwant]] = _WantCodec(Unwant)
bitfield_codec: Final[c.Codec[Bitfield]] = _BitfieldCodec()
range_codec: Final[c.Codec[Range]] = _RangeCodec()
extension_codec: Final[c.Codec[Extension]] = _ExtensionCodec()


@dataclass(frozen=True, slots=True)
class MessageType:
    """One row of :data:`HYPERCORE_MESSAGES`: protomux type number, record class, codec."""

    type: int
    name: str
    cls: builtins.type[Any]
    codec: c.Codec[Any]


HYPERCORE_MESSAGES: Final[tuple[MessageType, ...]] = (
    MessageType(0, "sync", Sync, sync_codec),
    MessageType(1, "request", Request, request_codec),
    MessageType(2, "cancel", Cancel, cancel_codec),
    MessageType(3, "data", Data, data_codec),
    MessageType(4, "noData", NoData, no_data_codec),
    MessageType(5, "want", Want, want_codec),
    MessageType(6, "unwant", Unwant, unwant_codec),
    MessageType(7, "bitfield", Bitfield, bitfield_codec),
    MessageType(8, "range", Range, range_codec),
    MessageType(9, "extension", Extension, extension_codec),
)

_TYPE_OF: Final[dict[type[Any], MessageType]] = {m.cls: m for m in HYPERCORE_MESSAGES}


# --- fast paths for the messages of a download ------------------------------------------------------
#
# A download is one request and one data message per block, so these two are written and read
# without the generic State/codec machinery: bytes are joined once, and reads walk the buffer
# with local indexes. They produce and accept exactly what the codecs above do (the tests compare
# both on random messages); a decoder that meets anything unusual (other parts present, a 9-byte
# uint, a short buffer) gives up with _Slow and the generic codec handles the body, with its errors.

_ub = c.uint_bytes


class _Slow(Exception):
    """The fast decoder met something it leaves to the generic codec."""


def _uint_at(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """The compact uint at ``pos`` and the position after it (1-, 3- and 5-byte forms only)."""
    if pos >= end:
        raise _Slow
    first = buf[pos]
    if first < 0xFD:
        return first, pos + 1
    if first == 0xFD:
        if pos + 3 > end:
            raise _Slow
        return buf[pos + 1] | buf[pos + 2] << 8, pos + 3
    if first == 0xFE:
        if pos + 5 > end:
            raise _Slow
        return int.from_bytes(buf[pos + 1 : pos + 5], "little"), pos + 5
    raise _Slow


def _encode_request(m: Request) -> bytes:
    flags = (
        (1 if m.block else 0)
        | (2 if m.hash else 0)
        | (4 if m.seek else 0)
        | (8 if m.upgrade else 0)
        | (16 if m.manifest else 0)
        | (32 if m.priority else 0)
    )
    out = _ub(flags) + _ub(m.id) + _ub(m.fork)
    if m.block:
        out += _ub(m.block.index) + _ub(m.block.nodes)
    if m.hash:
        out += _ub(m.hash.index) + _ub(m.hash.nodes)
    if m.seek:
        out += _ub(m.seek.bytes) + _ub(m.seek.padding)
    if m.upgrade:
        out += _ub(m.upgrade.start) + _ub(m.upgrade.length)
    if m.priority:
        out += _ub(m.priority)
    return out


def _decode_block_request(buf: bytes) -> Request:
    """A request for one block (flags 1, or 1|32 with a priority)."""
    end = len(buf)
    flags = buf[0] if end else -1
    if flags != 1 and flags != 33:
        raise _Slow
    rid, pos = _uint_at(buf, 1, end)
    fork, pos = _uint_at(buf, pos, end)
    index, pos = _uint_at(buf, pos, end)
    nodes, pos = _uint_at(buf, pos, end)
    priority = _uint_at(buf, pos, end)[0] if flags == 33 else 0
    return _request(rid, fork, _block_request(index, nodes), None, None, None, False, priority)


def _encode_data_block(m: Data, block: DataBlock) -> bytes:
    parts = [b"\x01", _ub(m.request), _ub(m.fork), _ub(block.index), _ub(len(block.value)), block.value]
    nodes = block.nodes
    parts.append(_ub(len(nodes)))
    for n in nodes:
        if len(n.hash) != 32:
            raise EncodeError("tree node hash must be 32 bytes", got=len(n.hash))
        parts.append(_ub(n.index))
        parts.append(_ub(n.size))
        parts.append(n.hash)
    return b"".join(parts)


def _decode_data_block(buf: bytes) -> Data:
    """A data message holding only a block and its proof nodes (flags 1)."""
    end = len(buf)
    if not end or buf[0] != 1:
        raise _Slow
    request, pos = _uint_at(buf, 1, end)
    fork, pos = _uint_at(buf, pos, end)
    index, pos = _uint_at(buf, pos, end)
    size, pos = _uint_at(buf, pos, end)
    stop = pos + size
    if stop > end:
        raise _Slow
    value = buf[pos:stop]
    count, pos = _uint_at(buf, stop, end)
    if count > c.MAX_ARRAY_LENGTH or count * _NODE_MIN_SIZE > end - pos:
        raise _Slow
    nodes: list[TreeNode] = []
    append = nodes.append
    memo = _NODE_MEMO
    memo_get = memo.get
    for _ in range(count):
        # Index and size written out for the 1-, 3- and 5-byte forms (proofs carry ~8 nodes).
        if pos + 43 > end:  # the largest fast-path node; shorter tails take the careful path
            node_index, pos = _uint_at(buf, pos, end)
            node_size, pos = _uint_at(buf, pos, end)
        else:
            first = buf[pos]
            if first < 0xFD:
                node_index = first
                pos += 1
            elif first == 0xFD:
                node_index = buf[pos + 1] | buf[pos + 2] << 8
                pos += 3
            elif first == 0xFE:
                node_index = int.from_bytes(buf[pos + 1 : pos + 5], "little")
                pos += 5
            else:
                raise _Slow
            first = buf[pos]
            if first < 0xFD:
                node_size = first
                pos += 1
            elif first == 0xFD:
                node_size = buf[pos + 1] | buf[pos + 2] << 8
                pos += 3
            elif first == 0xFE:
                node_size = int.from_bytes(buf[pos + 1 : pos + 5], "little")
                pos += 5
            else:
                raise _Slow
        stop = pos + 32
        if stop > end:
            raise _Slow
        h = buf[pos:stop]
        node = memo_get(h)
        if node is None or node.index != node_index or node.size != node_size:
            node = tree_node(node_index, node_size, h)
            if len(memo) >= _NODE_MEMO_MAX:
                memo.clear()
            memo[h] = node
        append(node)
        pos = stop
    return _data(request, fork, _data_block(index, value, tuple(nodes)), None, None, None, None)


def encode_message(msg: Message) -> tuple[int, bytes]:
    """``(protomux message type, body)`` for a replication message."""
    kind = type(msg)
    if kind is Request:
        assert isinstance(msg, Request)
        return 1, _encode_request(msg)
    if kind is Data:
        assert isinstance(msg, Data)
        block = msg.block
        if (
            block is not None
            and msg.hash is None
            and msg.seek is None
            and msg.upgrade is None
            and not msg.manifest
            and type(block.value) is bytes
        ):
            return 3, _encode_data_block(msg, block)
    entry = _TYPE_OF.get(kind)
    if entry is None:
        raise EncodeError("not a hypercore message", type=kind.__name__)
    return entry.type, c.encode(entry.codec, msg)


def decode_message(type_: int, body: bytes | bytearray | memoryview) -> Message:
    """Decode the body of message ``type_``; trailing bytes are ignored, as JS ignores them.

    Raises :class:`DecodeError` for an unknown type (protomux drops those before they get
    here, see ``wire.protomux``) or a malformed body.
    """
    if type(body) is bytes:
        try:
            if type_ == 3:
                return _decode_data_block(body)
            if type_ == 1:
                return _decode_block_request(body)
        except _Slow:
            pass
    if not 0 <= type_ < len(HYPERCORE_MESSAGES):
        raise DecodeError("unknown hypercore message type", type=type_)
    msg: Message = HYPERCORE_MESSAGES[type_].codec.decode(State(body))
    return msg


def encode_handshake(h: Handshake) -> bytes:
    return c.encode(handshake_codec, h)


def decode_handshake(data: bytes | bytearray | memoryview) -> Handshake:
    return c.decode(handshake_codec, data)
