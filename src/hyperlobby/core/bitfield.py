"""Block availability bitfields: ours (persisted in pages) and a peer's (fed by wire messages).

Theory of operation
-------------------
Bit ``i`` says "block ``i`` is stored and verified". Bits live in pages of 32768 bits (4 KiB),
the page size JS uses, so a page is also the unit the storage owner persists: ``to_pages`` /
``from_pages`` exchange ``{page number: 4096 bytes}``. Inside a page, bit ``j`` is bit ``j % 8`` of
byte ``j // 8`` (LSB first), which is the same layout as little-endian uint32 words, so the wire
``bitfield`` message (bit ``j`` of word ``k`` = block ``start + 32k + j``) is a plain slice of a page.
Absent pages are all zero; a core with a few blocks far apart costs a few pages only.

Writes are split like the Merkle tree's: ``preview_set_range`` returns the pages as they *would* be
after a change, the caller stores them with the blocks in one transaction, then ``apply_pages``
adopts them. Searches (first set/unset bit, ranges) work on whole pages as Python ints, so a scan
costs one big-int operation per 32768 blocks rather than one step per block.

:class:`RemoteBitfield` is what we know of a peer: its ``range`` and ``bitfield`` messages plus the
JS "remote contiguous length" rule: the peer has block ``i`` if ``i`` is below the contiguous length
it announced or its bit is set.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from hyperlobby.errors import CoreError, DecodeError

__all__ = ["BITS_PER_PAGE", "BITS_PER_SEGMENT", "BYTES_PER_PAGE", "Bitfield", "RemoteBitfield"]

BITS_PER_PAGE = 32768
BYTES_PER_PAGE = BITS_PER_PAGE // 8
BITS_PER_SEGMENT = 1 << 21  # the unit of JS "want" messages
_FULL = (1 << BITS_PER_PAGE) - 1
_ZERO_PAGE = bytes(BYTES_PER_PAGE)


def _to_int(page: bytes | bytearray) -> int:
    return int.from_bytes(page, "little")


def _to_bytes(value: int) -> bytes:
    return value.to_bytes(BYTES_PER_PAGE, "little")


def _mask(lo: int, hi: int) -> int:
    """Bits ``lo`` (inclusive) to ``hi`` (exclusive) of a page."""
    return ((1 << (hi - lo)) - 1) << lo


class Bitfield:
    """A sparse set of block indexes stored as 32768-bit pages."""

    __slots__ = ("_pages",)

    def __init__(self) -> None:
        self._pages: dict[int, bytearray] = {}

    # --- persistence ------------------------------------------------------------------------------

    @classmethod
    def from_pages(cls, pages: Mapping[int, bytes]) -> Bitfield:
        """Rebuild from stored pages (``{page number: 4096 bytes}``)."""
        bf = cls()
        bf.apply_pages(pages)
        return bf

    def to_pages(self) -> dict[int, bytes]:
        """Every non-empty page, ready to store."""
        return {n: bytes(p) for n, p in self._pages.items() if any(p)}

    def page(self, number: int) -> bytes:
        """One page's bytes (all zero when absent)."""
        p = self._pages.get(number)
        return bytes(p) if p is not None else _ZERO_PAGE

    def apply_pages(self, pages: Mapping[int, bytes]) -> None:
        """Adopt pages computed by a ``preview_*`` call (or read from storage)."""
        checked: dict[int, bytearray] = {}
        for number, raw in pages.items():
            if number < 0 or len(raw) != BYTES_PER_PAGE:
                raise DecodeError("bitfield page has the wrong number or size", page=number, size=len(raw))
            checked[number] = bytearray(raw)
        for number, page in checked.items():
            if any(page):
                self._pages[number] = page
            else:
                self._pages.pop(number, None)

    # --- single bits ------------------------------------------------------------------------------

    def get(self, index: int) -> bool:
        """Whether block ``index`` is present."""
        if index < 0:
            return False
        p = self._pages.get(index >> 15)
        if p is None:
            return False
        j = index & (BITS_PER_PAGE - 1)
        return bool(p[j >> 3] >> (j & 7) & 1)

    def set(self, index: int, value: bool = True) -> bool:
        """Set or clear one bit; returns True when it changed."""
        _check_range(index, 1)
        number = index >> 15
        p = self._pages.get(number)
        if p is None:
            if not value:
                return False
            p = self._pages[number] = bytearray(BYTES_PER_PAGE)
        j = index & (BITS_PER_PAGE - 1)
        bit = 1 << (j & 7)
        old = p[j >> 3]
        new = old | bit if value else old & ~bit
        if new == old:
            return False
        p[j >> 3] = new
        if not value and not new and not any(p):
            del self._pages[number]
        return True

    # --- ranges -------------------------------------------------------------------------------------

    def _changed_pages(self, start: int, length: int, value: bool) -> dict[int, int]:
        """Page ints after setting ``[start, start + length)`` to ``value`` (only touched pages)."""
        _check_range(start, length)
        out: dict[int, int] = {}
        end = start + length
        pos = start
        while pos < end:
            number = pos >> 15
            base = number << 15
            hi = min(end, base + BITS_PER_PAGE) - base
            lo = pos - base
            p = self._pages.get(number)
            cur = _to_int(p) if p is not None else 0
            m = _FULL if lo == 0 and hi == BITS_PER_PAGE else _mask(lo, hi)
            out[number] = cur | m if value else cur & ~m
            pos = base + hi
        return out

    def preview_set_range(self, start: int, length: int, value: bool = True) -> dict[int, bytes]:
        """The pages as they would be after setting ``length`` bits from ``start``; no mutation."""
        return {n: _to_bytes(v) for n, v in self._changed_pages(start, length, value).items()}

    def preview_clear_range(self, start: int, length: int) -> dict[int, bytes]:
        """The pages after clearing ``length`` bits from ``start`` (e.g. truncation); no mutation."""
        return self.preview_set_range(start, length, False)

    def set_range(self, start: int, length: int, value: bool = True) -> None:
        """Set (or clear) ``length`` bits from ``start`` in place."""
        self.apply_pages(self.preview_set_range(start, length, value))

    # --- searches -----------------------------------------------------------------------------------

    def _find(self, value: bool, position: int) -> int:
        if position < 0:
            position = 0
        number = position >> 15
        if value:
            for n in sorted(k for k in self._pages if k >= number):
                v = _to_int(self._pages[n])
                if n == number:
                    v &= ~((1 << (position & (BITS_PER_PAGE - 1))) - 1)
                if v:
                    return (n << 15) + ((v & -v).bit_length() - 1)
            return -1
        while True:
            p = self._pages.get(number)
            if p is None:
                return max(position, number << 15)
            v = ~_to_int(p) & _FULL
            if number == position >> 15:
                v &= ~((1 << (position & (BITS_PER_PAGE - 1))) - 1)
            if v:
                return (number << 15) + ((v & -v).bit_length() - 1)
            number += 1

    def first_set(self, position: int = 0) -> int:
        """Smallest present index ``>= position``, or -1."""
        return self._find(True, position)

    def first_unset(self, position: int = 0) -> int:
        """Smallest absent index ``>= position`` (there always is one)."""
        return self._find(False, position)

    def last_set(self, position: int | None = None) -> int:
        """Largest present index ``<= position`` (any when ``None``), or -1."""
        for n in sorted(self._pages, reverse=True):
            if position is not None and (n << 15) > position:
                continue
            v = _to_int(self._pages[n])
            if position is not None and n == position >> 15:
                v &= (1 << ((position & (BITS_PER_PAGE - 1)) + 1)) - 1
            if v:
                return (n << 15) + v.bit_length() - 1
        return -1

    def contiguous_length(self) -> int:
        """How many blocks from 0 are all present."""
        return self._find(False, 0)

    def count(self, start: int = 0, length: int | None = None) -> int:
        """Number of present blocks in ``[start, start + length)`` (to the end when ``None``)."""
        end = None if length is None else start + length
        total = 0
        for n, p in self._pages.items():
            base = n << 15
            if end is not None and base >= end:
                continue
            if base + BITS_PER_PAGE <= start:
                continue
            lo = max(start - base, 0)
            hi = BITS_PER_PAGE if end is None else min(end - base, BITS_PER_PAGE)
            total += (_to_int(p) & _mask(lo, hi)).bit_count()
        return total

    def ranges(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int]]:
        """Present runs as ``(first, end)`` half-open pairs, in order, clipped to ``[start, end)``."""
        pos = start
        while end is None or pos < end:
            first = self._find(True, pos)
            if first < 0 or (end is not None and first >= end):
                return
            stop = self._find(False, first)
            if end is not None:
                stop = min(stop, end)
            yield first, stop
            pos = stop

    # --- wire ---------------------------------------------------------------------------------------

    def insert_words(self, start: int, words: tuple[int, ...] | list[int]) -> None:
        """Overwrite ``32 * len(words)`` bits from ``start`` (a multiple of 32) with LE uint32 words."""
        if start % 32 or start < 0:
            raise CoreError("bitfield words must start on a 32-block boundary", start=start)
        data = b"".join(int(w).to_bytes(4, "little") for w in words)
        pos = start  # in bits
        offset = 0  # in bytes of data
        while offset < len(data):
            number = pos >> 15
            base = number << 15
            lo_b = (pos - base) >> 3
            take = min(BYTES_PER_PAGE - lo_b, len(data) - offset)
            chunk = data[offset : offset + take]
            p = self._pages.get(number)
            if p is None:
                if any(chunk):
                    p = self._pages[number] = bytearray(BYTES_PER_PAGE)
                    p[lo_b : lo_b + take] = chunk
            else:
                p[lo_b : lo_b + take] = chunk
                if not any(p):
                    del self._pages[number]
            offset += take
            pos += take * 8

    def words(self, start: int, length: int) -> tuple[int, ...]:
        """Bits ``[start, start + length)`` as LE uint32 words for a wire ``bitfield`` message.

        ``start`` must be a multiple of 32 (the message requires it). Bits past ``start + length`` in
        the last word are sent as zero.
        """
        if start % 32 or start < 0 or length < 0:
            raise CoreError("bitfield words must start on a 32-block boundary", start=start)
        count = (length + 31) // 32
        out = bytearray()
        pos = start
        end = start + 32 * count
        while pos < end:
            number = pos >> 15
            base = number << 15
            hi = min(end - base, BITS_PER_PAGE)
            p = self._pages.get(number)
            lo_b, hi_b = (pos - base) >> 3, hi >> 3
            out += p[lo_b:hi_b] if p is not None else bytes(hi_b - lo_b)
            pos = base + hi
        words = [int.from_bytes(out[4 * k : 4 * k + 4], "little") for k in range(count)]
        if count and length % 32:
            words[-1] &= (1 << (length % 32)) - 1
        return tuple(words)


def _check_range(start: int, length: int) -> None:
    if start < 0 or length < 0:
        raise CoreError("negative bitfield range", start=start, length=length)


class RemoteBitfield:
    """What one peer has, from its ``range`` and ``bitfield`` messages (the JS replicator's rules).

    ``max_length`` bounds the bits kept per peer: a peer announcing absurd ranges could otherwise make
    us allocate without limit. Bits at or past it are ignored; the contiguous length is kept as a number.
    """

    __slots__ = ("_bits", "_contiguous", "max_length")

    def __init__(self, max_length: int = 1 << 28) -> None:
        self._bits = Bitfield()
        self._contiguous = 0
        self.max_length = max_length

    @property
    def contiguous_length(self) -> int:
        """Blocks from 0 the peer has, counting set bits just past what it announced."""
        return (
            self._bits.first_unset(self._contiguous)
            if self._contiguous < self.max_length
            else self._contiguous
        )

    def has(self, index: int) -> bool:
        """Whether the peer has block ``index``."""
        return index < self._contiguous or self._bits.get(index)

    def _set(self, start: int, end: int, value: bool) -> None:
        end = min(end, self.max_length)
        if start < end:
            self._bits.set_range(start, end - start, value)

    def on_range(self, start: int, length: int, drop: bool = False) -> None:
        """Apply a ``range`` message: the peer has (or, with ``drop``, no longer has) the blocks."""
        if start < 0 or length < 0:
            raise DecodeError("negative range", start=start, length=length)
        has = not drop
        if drop and start < self._contiguous:
            end = start + length
            if end < self._contiguous:
                # Only the dropped part goes: keep what followed it as explicit bits.
                self._set(end, self._contiguous, True)
            self._contiguous = start
        if start == 0 and not drop:
            self._contiguous = max(self._contiguous, length)
        elif length == 1:
            if start < self.max_length:
                self._bits.set(start, has)
        else:
            first = self._bits.first_unset(start) if has else self._bits.first_set(start)
            end = start + length
            if first != -1 and first < end:
                self._set(first, end, has)

    def on_bitfield(self, start: int, words: tuple[int, ...] | list[int]) -> bool:
        """Apply a ``bitfield`` message: the words *replace* our knowledge of that span.

        Returns False (and changes nothing) for a ``start`` that is not a multiple of 32, as JS does.
        """
        if start % 32 or start < 0:
            return False
        if start < self._contiguous:
            self._contiguous = start  # the bitfield is the truth for its span
        limit = max(0, (self.max_length - start + 31) // 32)
        words = tuple(words[:limit])
        if any(not 0 <= w < 1 << 32 for w in words):
            raise DecodeError("bitfield word out of range", start=start)
        self._bits.insert_words(start, words)
        return True

    def first_missing(self, position: int = 0) -> int:
        """First block at or after ``position`` the peer does not have."""
        pos = max(position, self._contiguous)
        return self._bits.first_unset(pos)
