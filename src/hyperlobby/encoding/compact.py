"""compact-encoding: the schema-driven binary codecs behind every Hypercore message.

Theory of operation
-------------------
A codec has three operations, as in the JS package:

* ``preencode(state, value)`` adds the encoded size of ``value`` to ``state.end``;
* ``encode(state, value)`` writes ``value`` into ``state.buffer`` at ``state.start`` and
  advances ``start``;
* ``decode(state)`` reads a value at ``state.start`` (never past ``state.end``) and advances.

Encoding a message is therefore two passes: size it, allocate once, write. Structs are plain
sequences of field codecs (there are no tags), so a decoder must know the schema. Decoding is
strict about bounds: running past ``end`` raises :class:`DecodeError` rather than returning
short data, so a truncated frame from a peer can never be mistaken for a valid one.

The integer ``uint`` is *not* LEB128: it is a prefix byte (``fd``/``fe``/``ff``) followed by a
little-endian 16/32/64-bit payload, or a single byte for values up to 252. Values at or above
2**53 are rejected on decode because the JS peer cannot represent them.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, Generic, Protocol, TypeVar

from hyperlobby.errors import DecodeError, EncodeError

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

MAX_SAFE_INTEGER = 2**53 - 1
MAX_ARRAY_LENGTH = 0x100000

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class State:
    """A cursor over a buffer: ``start`` is where the next read/write happens, ``end`` the limit."""

    __slots__ = ("buffer", "end", "start")

    def __init__(self, buffer: bytes | bytearray | memoryview = b"", start: int = 0, end: int | None = None):
        self.buffer: Any = buffer
        self.start = start
        self.end = len(buffer) if end is None else end

    def take(self, n: int) -> bytes:
        """Read ``n`` bytes and advance, or fail with a clear error if the buffer is too short."""
        start = self.start
        stop = start + n
        if n < 0 or stop > self.end:
            raise DecodeError("truncated input", need=n, available=self.end - start, offset=start)
        self.start = stop
        return bytes(self.buffer[start:stop])

    def put(self, data: bytes | bytearray | memoryview) -> None:
        n = len(data)
        self.buffer[self.start : self.start + n] = data
        self.start += n


class Codec(Protocol[T]):
    """The three operations every codec offers."""

    def preencode(self, state: State, value: T) -> None: ...

    def encode(self, state: State, value: T) -> None: ...

    def decode(self, state: State) -> T: ...


def encode(codec: Codec[T], value: T) -> bytes:
    """Encode ``value`` with ``codec`` into a new ``bytes`` object."""
    state = State()
    state.end = 0
    codec.preencode(state, value)
    state.buffer = bytearray(state.end)
    codec.encode(state, value)
    if state.start != state.end:  # a codec's preencode and encode disagree: a bug, not input
        raise EncodeError("codec wrote a different size than it announced", size=state.end, wrote=state.start)
    return bytes(state.buffer)


def decode(codec: Codec[T], data: bytes | bytearray | memoryview, *, exact: bool = False) -> T:
    """Decode one value from ``data``.

    Trailing bytes are ignored by default, as the JS decoders ignore them; ``exact=True``
    rejects them (useful for stored records, where trailing bytes mean corruption).
    """
    state = State(data)
    value = codec.decode(state)
    if exact and state.start != state.end:
        raise DecodeError("trailing bytes after value", extra=state.end - state.start)
    return value


# --- integers -------------------------------------------------------------------------------


def uint_size(n: int) -> int:
    """Encoded size of ``n`` as a compact ``uint``."""
    if n <= 0xFC:
        return 1
    if n <= 0xFFFF:
        return 3
    if n <= 0xFFFFFFFF:
        return 5
    return 9


def uint_bytes(n: int) -> bytes:
    """The compact ``uint`` encoding of ``n`` as bytes (fast path used by hot encoders)."""
    if n < 0:
        raise EncodeError("uint must be non-negative", value=n)
    if n <= 0xFC:
        return bytes((n,))
    if n <= 0xFFFF:
        return b"\xfd" + _U16.pack(n)
    if n <= 0xFFFFFFFF:
        return b"\xfe" + _U32.pack(n)
    if n > 0xFFFFFFFFFFFFFFFF:
        raise EncodeError("uint out of range", value=n)
    return b"\xff" + _U64.pack(n)


class _Uint:
    def preencode(self, state: State, value: int) -> None:
        state.end += uint_size(value)

    def encode(self, state: State, value: int) -> None:
        state.put(uint_bytes(value))

    def decode(self, state: State) -> int:
        start = state.start
        if start >= state.end:
            raise DecodeError("truncated uint", offset=start)
        first = state.buffer[start]
        if first <= 0xFC:
            state.start = start + 1
            return int(first)
        if first == 0xFD:
            return int(_U16.unpack(_take_payload(state, 2))[0])
        if first == 0xFE:
            return int(_U32.unpack(_take_payload(state, 4))[0])
        value = int(_U64.unpack(_take_payload(state, 8))[0])
        if value > MAX_SAFE_INTEGER:
            raise DecodeError("uint above 2^53-1 (not representable by JS peers)", value=value)
        return value


def _take_payload(state: State, n: int) -> bytes:
    start = state.start
    if start + 1 + n > state.end:
        raise DecodeError("truncated uint", need=1 + n, available=state.end - start, offset=start)
    state.start = start + 1 + n
    return bytes(state.buffer[start + 1 : start + 1 + n])


class _Fixed:
    """Fixed-width little-endian unsigned integer."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.limit = 1 << (8 * width)

    def preencode(self, state: State, value: int) -> None:
        state.end += self.width

    def encode(self, state: State, value: int) -> None:
        if not 0 <= value < self.limit:
            raise EncodeError(f"uint{8 * self.width} out of range", value=value)
        state.put(value.to_bytes(self.width, "little"))

    def decode(self, state: State) -> int:
        return int.from_bytes(state.take(self.width), "little")


class _Int:
    """Signed integer: ZigZag-mapped, then written as a compact ``uint``."""

    def preencode(self, state: State, value: int) -> None:
        uint.preencode(state, _zigzag(value))

    def encode(self, state: State, value: int) -> None:
        uint.encode(state, _zigzag(value))

    def decode(self, state: State) -> int:
        n = uint.decode(state)
        return (n >> 1) ^ -(n & 1)


def _zigzag(value: int) -> int:
    return value * 2 if value >= 0 else -value * 2 - 1


class _Bool:
    def preencode(self, state: State, value: bool) -> None:
        state.end += 1

    def encode(self, state: State, value: bool) -> None:
        state.put(b"\x01" if value else b"\x00")

    def decode(self, state: State) -> bool:
        # JS reads true only for exactly 0x01; any other byte is false.
        return state.take(1) == b"\x01"


# --- bytes and strings ------------------------------------------------------------------------


class _Buffer:
    """``uint(length) ‖ bytes``."""

    def preencode(self, state: State, value: bytes) -> None:
        n = len(value)
        state.end += uint_size(n) + n

    def encode(self, state: State, value: bytes) -> None:
        state.put(uint_bytes(len(value)))
        state.put(value)

    def decode(self, state: State) -> bytes:
        return state.take(uint.decode(state))


class _OptionalBuffer:
    """Like ``buffer``, but ``None`` is written as length 0 and length 0 decodes to ``None``."""

    def preencode(self, state: State, value: bytes | None) -> None:
        buffer.preencode(state, value or b"")

    def encode(self, state: State, value: bytes | None) -> None:
        buffer.encode(state, value or b"")

    def decode(self, state: State) -> bytes | None:
        data = buffer.decode(state)
        return data if data else None


class _String:
    def preencode(self, state: State, value: str) -> None:
        buffer.preencode(state, value.encode("utf-8"))

    def encode(self, state: State, value: str) -> None:
        buffer.encode(state, value.encode("utf-8"))

    def decode(self, state: State) -> str:
        raw = buffer.decode(state)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError("string is not valid UTF-8", offset=exc.start) from None


class _Raw:
    """Bytes with no length prefix; on decode it takes the rest of the message."""

    def preencode(self, state: State, value: bytes) -> None:
        state.end += len(value)

    def encode(self, state: State, value: bytes) -> None:
        state.put(value)

    def decode(self, state: State) -> bytes:
        return state.take(state.end - state.start)


class FixedBytes:
    """Exactly ``size`` bytes, no length prefix."""

    def __init__(self, size: int) -> None:
        self.size = size

    def preencode(self, state: State, value: bytes) -> None:
        state.end += self.size

    def encode(self, state: State, value: bytes) -> None:
        if len(value) != self.size:
            raise EncodeError(f"expected exactly {self.size} bytes", got=len(value))
        state.put(value)

    def decode(self, state: State) -> bytes:
        return state.take(self.size)


class Array(Generic[T]):
    """``uint(count) ‖ count × item``; decoding refuses counts above ``max_length``."""

    def __init__(self, item: Codec[T], max_length: int = MAX_ARRAY_LENGTH) -> None:
        self.item = item
        self.max_length = max_length

    def preencode(self, state: State, value: Sequence[T]) -> None:
        uint.preencode(state, len(value))
        for v in value:
            self.item.preencode(state, v)

    def encode(self, state: State, value: Sequence[T]) -> None:
        uint.encode(state, len(value))
        for v in value:
            self.item.encode(state, v)

    def decode(self, state: State) -> list[T]:
        count = uint.decode(state)
        if count > self.max_length:
            raise DecodeError("array too long", count=count, limit=self.max_length)
        return [self.item.decode(state) for _ in range(count)]


class _Uint32Array:
    """``uint(count) ‖ count × uint32 LE``."""

    def preencode(self, state: State, value: Sequence[int]) -> None:
        uint.preencode(state, len(value))
        state.end += 4 * len(value)

    def encode(self, state: State, value: Sequence[int]) -> None:
        uint.encode(state, len(value))
        state.put(struct.pack(f"<{len(value)}I", *value))

    def decode(self, state: State) -> list[int]:
        count = uint.decode(state)
        if count > MAX_ARRAY_LENGTH:
            raise DecodeError("uint32array too long", count=count, limit=MAX_ARRAY_LENGTH)
        return list(struct.unpack(f"<{count}I", state.take(4 * count)))


uint: Codec[int] = _Uint()
uint8: Codec[int] = _Fixed(1)
uint16: Codec[int] = _Fixed(2)
uint24: Codec[int] = _Fixed(3)
uint32: Codec[int] = _Fixed(4)
uint40: Codec[int] = _Fixed(5)
uint48: Codec[int] = _Fixed(6)
uint56: Codec[int] = _Fixed(7)
uint64: Codec[int] = _Fixed(8)
int_: Codec[int] = _Int()
bool_: Codec[bool] = _Bool()
buffer: Codec[bytes] = _Buffer()
optional_buffer: Codec[bytes | None] = _OptionalBuffer()
string: Codec[str] = _String()
utf8 = string
raw: Codec[bytes] = _Raw()
fixed32: Codec[bytes] = FixedBytes(32)
fixed64: Codec[bytes] = FixedBytes(64)
uint32array: Codec[list[int]] = _Uint32Array()


def fixed(size: int) -> Codec[bytes]:
    """A codec for exactly ``size`` bytes."""
    return FixedBytes(size)


def array(item: Codec[T], max_length: int = MAX_ARRAY_LENGTH) -> Codec[list[T]]:
    """A codec for a length-prefixed list of ``item``.

    The declared type is ``list[T]`` for decoding; any sequence encodes.
    """
    return Array(item, max_length)
