"""uint24 little-endian length-prefixed frames, the only framing secret-stream uses.

Every message on the raw byte stream (Noise handshake messages, the id/header message and
encrypted data) is ``u24le(len) ‖ payload``. TCP delivers arbitrary chunks, so
:class:`FrameDecoder` buffers bytes until whole frames are present and hands them out in
order. It never waits for more than ``max_frame`` payload bytes: a length prefix above the
limit is rejected at once instead of making the receiver buffer up to 16 MiB of garbage.

Hot path: when a chunk holds complete frames and nothing is buffered, frames are sliced out of
the chunk directly; only a frame that straddles chunks goes through the reassembly buffer.
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
    """

    __slots__ = ("_data", "_failed", "_off", "max_frame")

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        if not 0 <= max_frame <= MAX_FRAME:
            raise ValueError("max_frame must fit a uint24")
        self.max_frame = max_frame
        # Unconsumed input is _data[_off:]. While no frame straddles chunks, _data is the
        # caller's own bytes object (no copy); a straddling frame switches it to a bytearray
        # that grows by amortised appends until the frame is whole.
        self._data: bytes | bytearray = b""
        self._off = 0
        self._failed = False

    @property
    def buffered(self) -> int:
        """Bytes not yet returned as frames (non-zero at EOF means a truncated frame)."""
        return len(self._data) - self._off

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
        if self._off >= len(self._data):
            self._data = data
            self._off = 0
            return
        if isinstance(self._data, bytes):
            self._data = bytearray(memoryview(self._data)[self._off :])
            self._off = 0
        elif self._off > 65536 and self._off * 2 > len(self._data):
            del self._data[: self._off]
            self._off = 0
        self._data += data

    def next_frame(self) -> bytes | None:
        """The next complete frame payload, or None until more bytes arrive."""
        if self._failed:
            raise DecodeError("frame decoder already failed")
        data = self._data
        off = self._off
        if len(data) - off < HEADER_SIZE:
            return None
        length = data[off] | (data[off + 1] << 8) | (data[off + 2] << 16)
        if length > self.max_frame:
            self._failed = True
            self._data = b""
            self._off = 0
            raise DecodeError("frame length exceeds the limit", length=length, limit=self.max_frame)
        start = off + HEADER_SIZE
        stop = start + length
        if stop > len(data):
            return None
        self._off = stop
        if isinstance(data, bytes):
            return data[start:stop]
        return bytes(memoryview(data)[start:stop])
