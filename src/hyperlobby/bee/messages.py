"""Protobuf codecs for Hyperbee 2 blocks: the header, tree nodes, the yolo index, the extension.

Every Hyperbee block is one protobuf message (spec/hyperbee.md §1). Byte equality with the JS
``protocol-buffers`` generated code depends on a few encoder habits reproduced here:

* fields are written in tag order;
* a packed repeated field is written only when it holds at least one number, so an empty
  ``Level`` is the two bytes ``0a 00`` inside its ``YoloIndex``;
* an optional bytes field is written whenever it is set, even when empty (``1a 00`` is an
  empty value, which is *not* a deletion), and an optional sub-message whenever it is set, even
  when all of its fields are absent (``12 00`` for an empty header metadata).

Decoders are strict about what they need and lenient about what they do not: unknown fields are
skipped (as JS does), but a missing required field, a truncated field, a field with the wrong
wire type or an odd number of child coordinates raises :class:`DecodeError`, because these
bytes come from peers.
"""

from __future__ import annotations

from dataclasses import dataclass

from hyperlobby.encoding.protobuf import (
    WIRE_LENGTH_DELIMITED,
    WIRE_VARINT,
    decode_key,
    decode_length_delimited,
    decode_varint,
    skip_field,
)
from hyperlobby.errors import DecodeError, EncodeError

BytesLike = bytes | bytearray | memoryview

PROTOCOL = "hyperbee"

# JS numbers are doubles: a seq or offset above 2^53 - 1 cannot come from a real writer.
_MAX_SAFE = (1 << 53) - 1


def _varint(value: int) -> bytes:
    """LEB128 without the argument checks of the generic encoder (callers pass block numbers)."""
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field whose tag fits in one byte (all tags used here do)."""
    return bytes((tag,)) + _varint(len(payload)) + payload


# Varints of 0 .. 2^14-1 (one or two bytes), precomputed: block numbers of bees up to 16k writes,
# and offsets always, are encoded by a table lookup on the write path.
_SMALL = 1 << 14
_VARINTS: list[bytes] = [bytes((i,)) for i in range(0x80)] + [
    bytes(((i & 0x7F) | 0x80, i >> 7)) for i in range(0x80, _SMALL)
]


def _packed(numbers: tuple[int, ...] | list[int]) -> bytes:
    """Concatenated varints (the payload of a packed repeated field)."""
    if numbers and min(numbers) < 0:
        raise EncodeError("hyperbee index numbers are non-negative", value=min(numbers))
    try:
        return b"".join(map(_VARINTS.__getitem__, numbers))
    except IndexError:
        return b"".join([_VARINTS[n] if n < _SMALL else _varint(n) for n in numbers])


def _read_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """A varint inside ``data[:end]``; the hot loop of index decoding, so no generic helpers."""
    if pos >= end:
        raise DecodeError("truncated varint", offset=pos)
    b = data[pos]
    if b < 0x80:
        return b, pos + 1
    value = b & 0x7F
    shift = 7
    start = pos
    pos += 1
    while True:
        if pos >= end:
            raise DecodeError("truncated varint", offset=start)
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise DecodeError("varint longer than 10 bytes", offset=start)


def _decode_packed_range(data: bytes, pos: int, end: int, out: list[int]) -> None:
    while pos < end:
        b = data[pos]
        if b < 0x80:
            out.append(b)
            pos += 1
            continue
        value, pos = _read_varint(data, pos, end)
        if value > _MAX_SAFE:
            raise DecodeError("index value above 2^53-1", value=value)
        out.append(value)


def _decode_packed(data: bytes, what: str) -> list[int]:
    out: list[int] = []
    try:
        _decode_packed_range(data, 0, len(data), out)
    except DecodeError as err:
        raise DecodeError(f"malformed packed {what}", **err.context) from err
    return out


def _skip(data: bytes, wire_type: int, pos: int, end: int) -> int:
    if wire_type == WIRE_VARINT:
        return _read_varint(data, pos, end)[1]
    if wire_type == WIRE_LENGTH_DELIMITED:
        length, pos = _read_varint(data, pos, end)
        if pos + length > end:
            raise DecodeError("truncated length-delimited field", offset=pos)
        return pos + length
    width = {1: 8, 5: 4}.get(wire_type)
    if width is None or pos + width > end:
        raise DecodeError("unsupported or truncated field", wire_type=wire_type, offset=pos)
    return pos + width


def decode_index_levels(data: bytes) -> list[tuple[list[int], list[int]]]:
    """Decode a YoloIndex straight to ``(keys, flattened children)`` lists.

    This runs for most blocks a walk touches, so it reads the bytes directly. It enforces what
    :class:`YoloIndex`/:class:`Level` decoding would: known fields are length-delimited, unknown
    ones are skipped, nothing overruns its enclosing field, and children come in pairs.
    """
    levels: list[tuple[list[int], list[int]]] = []
    pos = 0
    end = len(data)
    while pos < end:
        tag, pos = _read_varint(data, pos, end)
        if tag >> 3 != 1:
            if tag >> 3 == 0:
                raise DecodeError("field number 0 is invalid", offset=pos)
            pos = _skip(data, tag & 7, pos, end)
            continue
        if tag & 7 != WIRE_LENGTH_DELIMITED:
            raise DecodeError("wrong wire type for field", field="YoloIndex.levels", wire_type=tag & 7)
        length, pos = _read_varint(data, pos, end)
        lend = pos + length
        if lend > end:
            raise DecodeError("truncated yolo index level", need=length, available=end - pos)
        keys: list[int] = []
        children: list[int] = []
        while pos < lend:
            ltag, pos = _read_varint(data, pos, lend)
            number = ltag >> 3
            if number == 1 or number == 2:
                if ltag & 7 != WIRE_LENGTH_DELIMITED:
                    raise DecodeError("wrong wire type for field", field="Level", wire_type=ltag & 7)
                plen, pos = _read_varint(data, pos, lend)
                pend = pos + plen
                if pend > lend:
                    raise DecodeError("truncated packed field in yolo index", need=plen)
                _decode_packed_range(data, pos, pend, keys if number == 1 else children)
                pos = pend
            elif number == 0:
                raise DecodeError("field number 0 is invalid", offset=pos)
            else:
                pos = _skip(data, ltag & 7, pos, lend)
        if len(children) % 2:
            raise DecodeError("yolo index level has an odd number of child coordinates", count=len(children))
        levels.append((keys, children))
    return levels


def _expect(wire_type: int, want: int, field: str) -> None:
    if wire_type != want:
        raise DecodeError("wrong wire type for field", field=field, wire_type=wire_type)


# --- YoloIndex --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Level:
    """One tree node of a yolo index: entry seqs (``keys``) and flattened ``(seq, offset)`` children."""

    keys: tuple[int, ...] = ()
    children: tuple[int, ...] = ()

    def encode(self) -> bytes:
        out = b""
        if self.keys:
            out += _field(0x0A, _packed(self.keys))
        if self.children:
            out += _field(0x12, _packed(self.children))
        return out

    @classmethod
    def decode(cls, data: bytes) -> Level:
        keys: list[int] = []
        children: list[int] = []
        pos = 0
        end = len(data)
        while pos < end:
            fk, pos = decode_key(data, pos)
            if fk.number == 1 or fk.number == 2:
                _expect(fk.wire_type, WIRE_LENGTH_DELIMITED, "Level.keys/children")
                raw, pos = decode_length_delimited(data, pos)
                (keys if fk.number == 1 else children).extend(_decode_packed(raw, "Level"))
            else:
                pos = skip_field(data, fk.wire_type, pos)
        if len(children) % 2:
            raise DecodeError("yolo index level has an odd number of child coordinates", count=len(children))
        return cls(tuple(keys), tuple(children))


@dataclass(frozen=True, slots=True)
class YoloIndex:
    """The tree nodes written by one block: level 0 is the root of that version."""

    levels: tuple[Level, ...] = ()

    def encode(self) -> bytes:
        return b"".join(_field(0x0A, level.encode()) for level in self.levels)

    @classmethod
    def decode(cls, data: BytesLike) -> YoloIndex:
        return cls(tuple(Level(tuple(k), tuple(c)) for k, c in decode_index_levels(bytes(data))))


def encode_index(levels: list[tuple[list[int], list[int]]]) -> bytes:
    """Encode a yolo index straight from ``(keys, flattened children)`` lists (the write path)."""
    parts: list[bytes] = []
    table = _VARINTS
    for keys, children in levels:
        size = 0
        if keys:
            kb = _packed(keys)
            kh = b"\x0a" + _varint(len(kb))
            size += len(kh) + len(kb)
        if children:
            cb = _packed(children)
            ch = b"\x12" + _varint(len(cb))
            size += len(ch) + len(cb)
        parts.append(b"\x0a")
        parts.append(table[size] if size < _SMALL else _varint(size))
        if keys:
            parts.append(kh)
            parts.append(kb)
        if children:
            parts.append(ch)
            parts.append(cb)
    return b"".join(parts)


# --- Node ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Node:
    """One write: the entry (``key``, ``value``; ``None`` for a deletion) and its encoded index."""

    index: bytes
    key: bytes
    value: bytes | None = None

    def encode(self) -> bytes:
        out = _field(0x0A, self.index) + _field(0x12, self.key)
        if self.value is not None:
            out += _field(0x1A, self.value)
        return out

    @classmethod
    def decode(cls, data: BytesLike) -> Node:
        raw = bytes(data)
        index: bytes | None = None
        key: bytes | None = None
        value: bytes | None = None
        pos = 0
        end = len(raw)
        while pos < end:
            tag, pos = _read_varint(raw, pos, end)
            number = tag >> 3
            if 1 <= number <= 3:
                if tag & 7 != WIRE_LENGTH_DELIMITED:
                    raise DecodeError("wrong wire type for field", field="Node", wire_type=tag & 7)
                length, pos = _read_varint(raw, pos, end)
                fend = pos + length
                if fend > end:
                    raise DecodeError("truncated hyperbee node field", need=length, available=end - pos)
                field = raw[pos:fend]
                pos = fend
                if number == 1:
                    index = field
                elif number == 2:
                    key = field
                else:
                    value = field
            elif number == 0:
                raise DecodeError("field number 0 is invalid", offset=pos)
            else:
                pos = _skip(raw, tag & 7, pos, end)
        if index is None or key is None:
            raise DecodeError("hyperbee node block lacks its index or key", length=len(raw))
        return cls(index, key, value)


# --- Header --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Metadata:
    """Header metadata: Hyperdrive stores its blobs core key in ``content_feed``."""

    content_feed: bytes | None = None
    user_data: bytes | None = None

    def encode(self) -> bytes:
        out = b""
        if self.content_feed is not None:
            out += _field(0x0A, self.content_feed)
        if self.user_data is not None:
            out += _field(0x12, self.user_data)
        return out

    @classmethod
    def decode(cls, data: bytes) -> Metadata:
        content_feed: bytes | None = None
        user_data: bytes | None = None
        pos = 0
        while pos < len(data):
            fk, pos = decode_key(data, pos)
            if fk.number in (1, 2):
                _expect(fk.wire_type, WIRE_LENGTH_DELIMITED, "Metadata")
                field, pos = decode_length_delimited(data, pos)
                if fk.number == 1:
                    content_feed = field
                else:
                    user_data = field
            else:
                pos = skip_field(data, fk.wire_type, pos)
        return cls(content_feed, user_data)


@dataclass(frozen=True, slots=True)
class Header:
    """Block 0 of every Hyperbee."""

    protocol: str = PROTOCOL
    metadata: Metadata | None = None

    def encode(self) -> bytes:
        out = _field(0x0A, self.protocol.encode())
        if self.metadata is not None:
            out += _field(0x12, self.metadata.encode())
        return out

    @classmethod
    def decode(cls, data: BytesLike) -> Header:
        raw = bytes(data)
        protocol: str | None = None
        metadata: Metadata | None = None
        pos = 0
        while pos < len(raw):
            fk, pos = decode_key(raw, pos)
            if fk.number in (1, 2):
                _expect(fk.wire_type, WIRE_LENGTH_DELIMITED, "Header")
                field, pos = decode_length_delimited(raw, pos)
                if fk.number == 1:
                    try:
                        protocol = field.decode()
                    except UnicodeDecodeError as err:
                        raise DecodeError("header protocol is not UTF-8") from err
                else:
                    metadata = Metadata.decode(field)
            else:
                pos = skip_field(raw, fk.wire_type, pos)
        if protocol is None:
            raise DecodeError("hyperbee header lacks its protocol")
        return cls(protocol, metadata)


# --- Extension (prefetch hints; never needed for correctness) ------------------------------------


@dataclass(frozen=True, slots=True)
class ExtGet:
    version: int | None = None
    key: bytes | None = None


@dataclass(frozen=True, slots=True)
class ExtCache:
    start: int = 0
    end: int = 0
    blocks: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ExtIterator:
    version: int | None = None
    gte: bytes | None = None
    gt: bytes | None = None
    lte: bytes | None = None
    lt: bytes | None = None
    limit: int | None = None
    reverse: bool | None = None
    checkpoint: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Extension:
    """The ``hyperbee`` extension message: a peer asks for (``get``/``iterator``) or offers
    (``cache``) the block numbers a lookup touches, so they can be fetched in one go."""

    cache: ExtCache | None = None
    get: ExtGet | None = None
    iterator: ExtIterator | None = None

    def encode(self) -> bytes:
        out = b""
        if self.cache is not None:
            c = self.cache
            body = b"\x08" + _varint(c.start) + b"\x10" + _varint(c.end)
            if c.blocks:
                body += _field(0x1A, _packed(c.blocks))
            out += _field(0x0A, body)
        if self.get is not None:
            g = self.get
            body = b""
            if g.version is not None:
                body += b"\x08" + _varint(g.version)
            if g.key is not None:
                body += _field(0x12, g.key)
            out += _field(0x12, body)
        if self.iterator is not None:
            it = self.iterator
            body = b""
            if it.version is not None:
                body += b"\x08" + _varint(it.version)
            for tag, bound in ((0x12, it.gte), (0x1A, it.gt), (0x22, it.lte), (0x2A, it.lt)):
                if bound is not None:
                    body += _field(tag, bound)
            if it.limit is not None:
                body += b"\x30" + _varint(it.limit)
            if it.reverse is not None:
                body += b"\x38" + (b"\x01" if it.reverse else b"\x00")
            if it.checkpoint:
                body += _field(0x42, _packed(it.checkpoint))
            out += _field(0x1A, body)
        return out

    @classmethod
    def decode(cls, data: BytesLike) -> Extension:
        raw = bytes(data)
        cache: ExtCache | None = None
        get: ExtGet | None = None
        iterator: ExtIterator | None = None
        for number, body in _length_delimited_fields(raw, {1, 2, 3}, "Extension"):
            if number == 1:
                cache = _decode_cache(body)
            elif number == 2:
                get = _decode_get(body)
            else:
                iterator = _decode_iterator(body)
        return cls(cache, get, iterator)


def _length_delimited_fields(raw: bytes, wanted: set[int], what: str) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(raw):
        fk, pos = decode_key(raw, pos)
        if fk.number in wanted:
            _expect(fk.wire_type, WIRE_LENGTH_DELIMITED, what)
            body, pos = decode_length_delimited(raw, pos)
            out.append((fk.number, body))
        else:
            pos = skip_field(raw, fk.wire_type, pos)
    return out


def _scan(raw: bytes, varints: set[int], blobs: set[int], what: str) -> dict[int, int | bytes]:
    """Last value of each known field (protobuf's last-one-wins rule for scalars)."""
    out: dict[int, int | bytes] = {}
    pos = 0
    while pos < len(raw):
        fk, pos = decode_key(raw, pos)
        if fk.number in varints:
            _expect(fk.wire_type, WIRE_VARINT, what)
            out[fk.number], pos = decode_varint(raw, pos)
        elif fk.number in blobs:
            _expect(fk.wire_type, WIRE_LENGTH_DELIMITED, what)
            out[fk.number], pos = decode_length_delimited(raw, pos)
        else:
            pos = skip_field(raw, fk.wire_type, pos)
    return out


def _int(fields: dict[int, int | bytes], n: int) -> int | None:
    v = fields.get(n)
    return v if isinstance(v, int) else None


def _bytes(fields: dict[int, int | bytes], n: int) -> bytes | None:
    v = fields.get(n)
    return v if isinstance(v, bytes) else None


def _decode_cache(raw: bytes) -> ExtCache:
    f = _scan(raw, {1, 2}, {3}, "Extension.Cache")
    if 1 not in f or 2 not in f:
        raise DecodeError("extension cache lacks start or end")
    blocks = _bytes(f, 3)
    return ExtCache(_int(f, 1) or 0, _int(f, 2) or 0, tuple(_decode_packed(blocks or b"", "Cache.blocks")))


def _decode_get(raw: bytes) -> ExtGet:
    f = _scan(raw, {1}, {2}, "Extension.Get")
    return ExtGet(_int(f, 1), _bytes(f, 2))


def _decode_iterator(raw: bytes) -> ExtIterator:
    f = _scan(raw, {1, 6, 7}, {2, 3, 4, 5, 8}, "Extension.Iterator")
    rev = _int(f, 7)
    checkpoint = _bytes(f, 8)
    return ExtIterator(
        version=_int(f, 1),
        gte=_bytes(f, 2),
        gt=_bytes(f, 3),
        lte=_bytes(f, 4),
        lt=_bytes(f, 5),
        limit=_int(f, 6),
        reverse=None if rev is None else rev != 0,
        checkpoint=tuple(_decode_packed(checkpoint or b"", "Iterator.checkpoint")),
    )
