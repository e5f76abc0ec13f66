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

    Copies: a frame lying wholly inside one fed chunk is a single slice of that chunk. Only a
    frame that straddles chunks is assembled in ``_head``, and only its own bytes are copied
    there (never the rest of the chunk that completes it).
    """

    __slots__ = ("_data", "_failed", "_head", "_off", "max_frame")

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        if not 0 <= max_frame <= MAX_FRAME:
            raise ValueError("max_frame must fit a uint24")
        self.max_frame = max_frame
        self._head = bytearray()  # start of a frame that straddles chunks
        self._data = b""  # the current chunk; _data[_off:] is not consumed yet
        self._off = 0
        self._failed = False

    @property
    def buffered(self) -> int:
        """Bytes not yet returned as frames (non-zero at EOF means a truncated frame)."""
        return len(self._head) + len(self._data) - self._off

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
            self._head += memoryview(self._data)[self._off :]
        self._data = data
        self._off = 0

    def _fail(self, length: int) -> DecodeError:
        self._failed = True
        self._head = bytearray()
        self._data = b""
        self._off = 0
        return DecodeError("frame length exceeds the limit", length=length, limit=self.max_frame)

    def next_frame(self) -> bytes | None:
        """The next complete frame payload, or None until more bytes arrive."""
        if self._failed:
            raise DecodeError("frame decoder already failed")
        if self._head:
            return self._next_from_head()
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

    def _next_from_head(self) -> bytes | None:
        head = self._head
        if len(head) < HEADER_SIZE:
            self._take(HEADER_SIZE - len(head))
            if len(head) < HEADER_SIZE:
                return None
        length = head[0] | (head[1] << 8) | (head[2] << 16)
        if length > self.max_frame:
            raise self._fail(length)
        stop = HEADER_SIZE + length
        if len(head) < stop:
            self._take(stop - len(head))
            if len(head) < stop:
                return None
        frame = bytes(memoryview(head)[HEADER_SIZE:stop])
        del head[:stop]  # usually empties it; more remains only if append() ran before pulling
        return frame

    def _take(self, n: int) -> None:
        """Move up to ``n`` bytes from the current chunk into ``_head``."""
        end = min(self._off + n, len(self._data))
        self._head += memoryview(self._data)[self._off : end]
        self._off = end
