"""Hyperblobs 2: file contents cut into blocks of a plain Hypercore, addressed by blob ids.

Theory of operation
-------------------
``put(data)`` cuts ``data`` into 64 KiB blocks (the last one shorter) and appends them at the end
of the core; the returned :class:`~hyperlobby.drive.entry.BlobId` records the first block, the
byte position of that block in the core, the block count and the size, exactly as JS hyperblobs
computes them. An empty blob appends nothing and points at the current end.

JS appends a blob's blocks 16 at a time under a lock; we append all of a blob's blocks in one
signed append. The blocks, and so the Merkle tree and every later signed head, are the same;
only intermediate heads (never stored by a peer that syncs to the end) differ, and a blob is
never half-visible to a reader.

Reading is local and synchronous here (:meth:`Hyperblobs.get` raises
:class:`~hyperlobby.errors.BlockNotAvailableError` for a block we do not hold); the drive's
async helpers fetch the blocks listed by :meth:`Hyperblobs.block_indexes` first.

Blob ids with ``blockMap`` (written by JS dedup streams) describe *map blocks*: compact-encoded
``uint version(0), array({uint index, uint byteLength})`` listing the data blocks, possibly
shared with other blobs. They are read here; our writer never makes them (neither does JS put).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hyperlobby.core.hypercore import Hypercore
from hyperlobby.drive.entry import BlobId
from hyperlobby.encoding import compact as c
from hyperlobby.errors import DecodeError, DriveError

BLOCK_SIZE = 65536
"""hyperblobs' default block size (2**16 bytes)."""

MAX_MAP_BLOCKS = 64
"""A block-mapped blob may use at most this many map blocks (as JS enforces)."""


@dataclass(frozen=True, slots=True)
class MapBlock:
    """One data block of a block-mapped blob: its index in the core and its size."""

    index: int
    byte_length: int


def decode_block_map(buffers: Iterable[bytes]) -> list[MapBlock]:
    """The data blocks listed by the map blocks of a block-mapped blob."""
    out: list[MapBlock] = []
    for buf in buffers:
        state = c.State(buf)
        try:
            version = c.uint.decode(state)
            if version != 0:
                raise DriveError("unsupported block map version", version=version)
            count = c.uint.decode(state)
            if count > len(buf):
                raise DriveError("block map claims more entries than it has bytes", count=count)
            for _ in range(count):
                out.append(MapBlock(c.uint.decode(state), c.uint.decode(state)))
        except DecodeError as err:
            raise DriveError("malformed block map", cause=str(err)) from err
    return out


def encode_block_map(blocks: list[MapBlock]) -> list[bytes]:
    """Map blocks for ``blocks`` (8192 entries each), as JS encodes them (used by tests)."""
    out: list[bytes] = []
    for i in range(0, max(1, len(blocks)), 8192):
        part = blocks[i : i + 8192]
        buf = bytearray(c.uint_bytes(0) + c.uint_bytes(len(part)))
        for b in part:
            buf += c.uint_bytes(b.index) + c.uint_bytes(b.byte_length)
        out.append(bytes(buf))
    return out


class Hyperblobs:
    """Blob storage over one core (writable for ``put``)."""

    def __init__(self, core: Hypercore, block_size: int = BLOCK_SIZE) -> None:
        if block_size <= 0:
            raise DriveError("block size must be positive", block_size=block_size)
        self.core = core
        self.block_size = block_size

    @property
    def key(self) -> bytes:
        return self.core.key

    # --- writes ---------------------------------------------------------------------------------

    def cut(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """The blocks ``put`` would append for ``data``."""
        view = memoryview(data)
        size = self.block_size
        return [bytes(view[i : i + size]) for i in range(0, len(view), size)]

    def put(self, data: bytes | bytearray | memoryview) -> BlobId:
        """Append ``data`` as blocks; returns its id."""
        core = self.core
        blob = BlobId(core.length, core.byte_length, 0, 0)
        blocks = self.cut(data)
        if not blocks:
            return blob
        core.append(blocks)
        return BlobId(blob.block_offset, blob.byte_offset, len(blocks), len(data))

    def put_many(self, items: Iterable[bytes | bytearray | memoryview]) -> list[BlobId]:
        """Several blobs appended in one signed append (ids are what separate puts would give)."""
        core = self.core
        block_at = core.length
        byte_at = core.byte_length
        ids: list[BlobId] = []
        blocks: list[bytes] = []
        for data in items:
            cut = self.cut(data)
            ids.append(BlobId(block_at, byte_at, len(cut), len(data)))
            blocks.extend(cut)
            block_at += len(cut)
            byte_at += len(data)
        if blocks:
            core.append(blocks)
        return ids

    # --- reads ----------------------------------------------------------------------------------

    def block_map(self, blob: BlobId) -> list[MapBlock]:
        """The data blocks of a block-mapped blob (its map blocks must be held)."""
        if not blob.block_map:
            raise DriveError("blob has no block map")
        if blob.block_length > MAX_MAP_BLOCKS:
            raise DriveError("block map is too large", blocks=blob.block_length)
        return decode_block_map(self.core.get(i) for i in range(blob.block_offset, blob.block_end))

    def block_indexes(self, blob: BlobId) -> list[int]:
        """Every block index needed to read ``blob`` (map blocks must be held for a mapped blob)."""
        if blob.block_map:
            return [b.index for b in self.block_map(blob)]
        return list(range(blob.block_offset, blob.block_end))

    def has(self, blob: BlobId) -> bool:
        """True if every block of ``blob`` is stored locally."""
        core = self.core
        if blob.block_map and not all(core.has(i) for i in range(blob.block_offset, blob.block_end)):
            return False
        return all(core.has(i) for i in self.block_indexes(blob))

    def byte_length(self, blob: BlobId) -> int:
        """The blob's size (a mapped blob's size is the sum of its data blocks)."""
        if not blob.block_map or blob.byte_length == 0:
            return blob.byte_length
        return sum(b.byte_length for b in self.block_map(blob))

    def get(self, blob: BlobId, start: int = 0, length: int | None = None) -> bytes:
        """The blob's bytes (or ``length`` bytes from ``start``), from local blocks."""
        if start < 0 or (length is not None and length < 0):
            raise DriveError("byte range must be non-negative", start=start, length=length)
        if blob.block_map:
            pieces = [self.core.get(b.index) for b in self.block_map(blob)]
        else:
            if blob.block_length == 0:
                return b""
            if start == 0 and length is None:
                if blob.block_length == 1:
                    data = self.core.get(blob.block_offset)
                else:
                    data = b"".join(self.core.get(i) for i in range(blob.block_offset, blob.block_end))
                if len(data) != blob.byte_length:
                    raise DriveError(
                        "blob blocks do not add up to the blob size", expected=blob.byte_length, got=len(data)
                    )
                return data
            pieces = self._range_pieces(blob, start, length)
            data = b"".join(pieces)
            return data[: length if length is not None else len(data)]
        data = b"".join(pieces)
        end = len(data) if length is None else start + length
        return data[start:end]

    def _range_pieces(self, blob: BlobId, start: int, length: int | None) -> list[bytes]:
        """Blocks covering ``[start, start+length)``, the first one trimmed to start at ``start``."""
        end = blob.byte_length if length is None else min(blob.byte_length, start + length)
        out: list[bytes] = []
        pos = 0
        for i in range(blob.block_offset, blob.block_end):
            if pos >= end:
                break
            block = self.core.get(i)
            nxt = pos + len(block)
            if nxt > start:
                out.append(block[max(0, start - pos) :])
            pos = nxt
        return out


__all__ = ["BLOCK_SIZE", "Hyperblobs", "MapBlock", "decode_block_map", "encode_block_map"]
