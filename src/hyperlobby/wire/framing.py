"""uint24 little-endian length-prefixed frames, the only framing secret-stream uses.

Every message on the raw byte stream (Noise handshake messages, the id/header message and
encrypted data) is ``u24le(len) ‖ payload``. TCP delivers arbitrary chunks, so
:class:`FrameDecoder` buffers bytes until whole frames are present and hands them out in
order. It never waits for more than ``max_frame`` payload bytes: a length prefix above the
limit is rejected at once instead of making the receiver buffer up to 16 MiB of garbage.

Hot path: when a chunk holds complete frames and nothing is buffered, frames are sliced out of
the chunk directly; only a frame that straddles chunks is reassembled (joined once, complete).
"""

from __future__ import annotations

from hyperlobby.errors import DecodeError

HEADER_SIZE = 3
# The largest length a uint24 can carry; JS refuses writes above it.
MAX_FRAME = (1 << 24) - 1


def encode_header(length: int) -> bytes:
    """The 3-byte prefix for a payload of ``length`` bytes."""
    if not 0 <= length <= MAX_FRAME:
        raise DecodeError("frame too large for a uint24 length prefix", length=length)
    return length.to_bytes(HEADER_SIZE, "little")


def encode_frame(payload: bytes) -> bytes:
    """``u24le(len(payload)) ‖ payload``."""
    return encode_header(len(payload)) + payload


class FrameDecoder:
    """Feed raw bytes, take complete frame payloads out one at a time.

    ``max_frame`` is checked per frame when its header is parsed, so a caller may change it
    between :meth:`next_frame` calls (secret-stream tightens it during the handshake and
    relaxes it for data). After a :class:`DecodeError` the decoder is poisoned: the byte
    stream has lost sync and nothing later in it can be trusted.

    Copies: a frame lying wholly inside one fed chunk is a single slice of that chunk. A frame
    that straddles chunks is kept as views of the chunks holding it (``_parts``, header
    included) and joined once when its last byte arrives: one copy, one allocation. (Growing a
    buffer chunk by chunk cost ~100 us per 64 KiB for the 1 MiB batch frames a JS server sends,
    mostly reallocation and fresh pages.)
    """

    __slots__ = ("_data", "_failed", "_off", "_parts", "_pending", "max_frame")

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        if not 0 <= max_frame <= MAX_FRAME:
            raise ValueError("max_frame must fit a uint24")
        self.max_frame = max_frame
        self._parts: list[bytes | memoryview] = []  # start of a frame that straddles chunks
        self._pending = 0  # bytes held in _parts
        self._data = b""  # the current chunk; _data[_off:] is not consumed yet
        self._off = 0
        self._failed = False

    @property
    def buffered(self) -> int:
        """Bytes not yet returned as frames (non-zero at EOF means a truncated frame)."""
        return self._pending + len(self._data) - self._off

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data`` and return every frame now complete, oldest first."""
        self.append(data)
        frames: list[bytes] = []
        while (frame := self.next_frame()) is not None:
            frames.append(frame)
        return frames

    def append(self, data: bytes) -> None:
        """Add ``data`` without parsing anything yet."""
        if self._failed:
            raise DecodeError("frame decoder already failed")
        if not data:
            return
        if not isinstance(data, bytes):
            data = bytes(data)  # never keep a reference to a buffer the caller may reuse
        if self._off < len(self._data):
            # Unparsed tail of the previous chunk: an incomplete frame, or frames the caller
            # has not pulled yet. Either way it is older than ``data`` and must go first.
            tail = memoryview(self._data)[self._off :]
            self._parts.append(tail)
            self._pending += len(tail)
        self._data = data
        self._off = 0

    def _fail(self, length: int) -> DecodeError:
        self._failed = True
        self._parts = []
        self._pending = 0
        self._data = b""
        self._off = 0
        return DecodeError("frame length exceeds the limit", length=length, limit=self.max_frame)

    def next_frame(self) -> bytes | None:
        """The next complete frame payload, or None until more bytes arrive."""
        if self._failed:
            raise DecodeError("frame decoder already failed")
        if self._pending:
            return self._next_from_parts()
        data = self._data
        off = self._off
        if len(data) - off < HEADER_SIZE:
            return None
        length = data[off] | (data[off + 1] << 8) | (data[off + 2] << 16)
        if length > self.max_frame:
            raise self._fail(length)
        stop = off + HEADER_SIZE + length
        if stop > len(data):
            return None
        self._off = stop
        return data[off + HEADER_SIZE : stop]

    def _next_from_parts(self) -> bytes | None:
        parts = self._parts
        if self._pending < HEADER_SIZE:
            self._take(HEADER_SIZE - self._pending)
            if self._pending < HEADER_SIZE:
                return None
        if len(parts[0]) < HEADER_SIZE:  # the header itself is split: gather it (a few bytes)
            parts[:] = [b"".join(parts)]
        first = parts[0]
        length = first[0] | (first[1] << 8) | (first[2] << 16)
        if length > self.max_frame:
            raise self._fail(length)
        stop = HEADER_SIZE + length
        if self._pending < stop:
            self._take(stop - self._pending)
            if self._pending < stop:
                return None
        if self._pending == stop:  # the usual case: exactly this frame is held
            parts[0] = memoryview(first)[HEADER_SIZE:]
            frame = b"".join(parts)
            self._parts = []
            self._pending = 0
            return frame
        joined = b"".join(parts)  # more than this frame was held (append() ran before pulling)
        rest = joined[stop:]
        self._parts = [rest]
        self._pending = len(rest)
        return joined[HEADER_SIZE:stop]

    def _take(self, n: int) -> None:
        """Move up to ``n`` bytes of the current chunk into ``_parts`` (a view, not a copy)."""
        end = min(self._off + n, len(self._data))
        if end > self._off:
            self._parts.append(memoryview(self._data)[self._off : end])
            self._pending += end - self._off
            self._off = end
