"""Protocol Buffers wire primitives: varints, ZigZag, field keys, length-delimited fields.

Hyperbee stores one protobuf message per block (see spec/hyperbee.md); it uses only wire type 0
(varint) and wire type 2 (length-delimited bytes/strings/sub-messages). These are *not* the
compact-encoding ``uint``: a protobuf varint is LEB128, 7 bits per byte, least significant
group first, high bit set on every byte but the last.

Limits are enforced on decode because the bytes come from other peers: at most 10 bytes per
varint and a value below 2**64 (what protobuf allows); truncation raises :class:`DecodeError`.
Encoders write the shortest form and refuse negative values (callers that need signed numbers
ZigZag them first, as ``sint64`` does). Note the JS ``protocol-buffers-encodings`` package
writes negative ``int64`` in a non-standard way; nothing in the stack uses negative int64,
so it is not reproduced here.
"""

from __future__ import annotations

from dataclasses import dataclass

from hyperlobby.errors import DecodeError, EncodeError

WIRE_VARINT = 0
WIRE_FIXED64 = 1
WIRE_LENGTH_DELIMITED = 2
WIRE_FIXED32 = 5

MAX_VARINT_BYTES = 10
_U64_LIMIT = 1 << 64

BytesLike = bytes | bytearray | memoryview


def varint_size(value: int) -> int:
    """Encoded length of ``value`` as a varint."""
    return max(1, -(-value.bit_length() // 7))


def encode_varint(value: int) -> bytes:
    """LEB128 bytes of a non-negative integer below 2**64."""
    if not isinstance(value, int) or value < 0 or value >= _U64_LIMIT:
        raise EncodeError("a varint must be an integer in 0 .. 2^64-1", value=value)
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(data: BytesLike, offset: int = 0) -> tuple[int, int]:
    """Read a varint at ``offset``; returns ``(value, next_offset)``."""
    view = memoryview(data)
    value = 0
    shift = 0
    pos = offset
    end = len(view)
    while True:
        if pos >= end:
            raise DecodeError("truncated varint", offset=offset)
        if pos - offset >= MAX_VARINT_BYTES:
            raise DecodeError("varint longer than 10 bytes", offset=offset)
        byte = view[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            break
    if value >= _U64_LIMIT:
        raise DecodeError("varint above 2^64-1", offset=offset)
    return value, pos


def zigzag_encode(value: int) -> int:
    """Map a signed 64-bit value to unsigned so small magnitudes stay short (sint64)."""
    if not -(1 << 63) <= value < (1 << 63):
        raise EncodeError("sint64 out of range", value=value)
    return value * 2 if value >= 0 else -value * 2 - 1


def zigzag_decode(value: int) -> int:
    """Inverse of :func:`zigzag_encode`."""
    return (value >> 1) ^ -(value & 1)


def encode_signed_varint(value: int) -> bytes:
    """A ``sint32``/``sint64`` field value: ZigZag, then varint."""
    return encode_varint(zigzag_encode(value))


def decode_signed_varint(data: BytesLike, offset: int = 0) -> tuple[int, int]:
    """Read a ZigZag varint; returns ``(value, next_offset)``."""
    raw, pos = decode_varint(data, offset)
    return zigzag_decode(raw), pos


@dataclass(frozen=True, slots=True)
class FieldKey:
    """A field tag: field number and wire type, written as ``varint(number << 3 | wire_type)``."""

    number: int
    wire_type: int


def encode_key(number: int, wire_type: int) -> bytes:
    """The tag bytes that precede a field."""
    if number < 1 or number >= 1 << 29:
        raise EncodeError("field number out of range", number=number)
    if wire_type not in (WIRE_VARINT, WIRE_FIXED64, WIRE_LENGTH_DELIMITED, WIRE_FIXED32):
        raise EncodeError("unsupported wire type", wire_type=wire_type)
    return encode_varint((number << 3) | wire_type)


def decode_key(data: BytesLike, offset: int = 0) -> tuple[FieldKey, int]:
    """Read a field tag; returns ``(FieldKey, next_offset)``."""
    raw, pos = decode_varint(data, offset)
    number = raw >> 3
    if number < 1:
        raise DecodeError("field number 0 is invalid", offset=offset)
    return FieldKey(number, raw & 7), pos


def encode_varint_field(number: int, value: int) -> bytes:
    """A whole wire-type-0 field: tag and varint value."""
    return encode_key(number, WIRE_VARINT) + encode_varint(value)


def encode_bytes_field(number: int, value: BytesLike) -> bytes:
    """A whole wire-type-2 field: tag, varint length, bytes."""
    raw = bytes(value)
    return encode_key(number, WIRE_LENGTH_DELIMITED) + encode_varint(len(raw)) + raw


def encode_length_delimited(value: BytesLike) -> bytes:
    """``varint(len) ‖ bytes`` (the value part of a wire-type-2 field)."""
    raw = bytes(value)
    return encode_varint(len(raw)) + raw


def decode_length_delimited(data: BytesLike, offset: int = 0) -> tuple[bytes, int]:
    """Read ``varint(len) ‖ bytes``; returns ``(bytes, next_offset)``."""
    length, pos = decode_varint(data, offset)
    end = pos + length
    if end > len(data):
        raise DecodeError("truncated length-delimited field", need=length, available=len(data) - pos)
    return bytes(memoryview(data)[pos:end]), end


def skip_field(data: BytesLike, wire_type: int, offset: int) -> int:
    """Offset just past a field value of ``wire_type`` (to step over unknown fields)."""
    if wire_type == WIRE_VARINT:
        return decode_varint(data, offset)[1]
    if wire_type == WIRE_LENGTH_DELIMITED:
        return decode_length_delimited(data, offset)[1]
    width = {WIRE_FIXED64: 8, WIRE_FIXED32: 4}.get(wire_type)
    if width is None:
        raise DecodeError("unsupported wire type (groups are not supported)", wire_type=wire_type)
    if offset + width > len(data):
        raise DecodeError("truncated fixed-width field", offset=offset)
    return offset + width


def iter_fields(data: BytesLike) -> list[tuple[FieldKey, int | bytes]]:
    """All fields of a message in order: varints as ``int``, length-delimited as ``bytes``.

    Fixed-width fields are returned as their raw bytes. This is the generic reader message
    decoders build on; it raises :class:`DecodeError` on any malformed field.
    """
    fields: list[tuple[FieldKey, int | bytes]] = []
    pos = 0
    end = len(data)
    while pos < end:
        key, pos = decode_key(data, pos)
        value: int | bytes
        if key.wire_type == WIRE_VARINT:
            value, pos = decode_varint(data, pos)
        elif key.wire_type == WIRE_LENGTH_DELIMITED:
            value, pos = decode_length_delimited(data, pos)
        else:
            nxt = skip_field(data, key.wire_type, pos)
            value = bytes(memoryview(data)[pos:nxt])
            pos = nxt
        fields.append((key, value))
    return fields
