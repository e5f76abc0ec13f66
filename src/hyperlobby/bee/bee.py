"""The Hyperbee 2 public API: a sorted key/value store in one Hypercore.

Theory of operation
-------------------
:class:`Hyperbee` is a *view*: a core, a version (the live length, or a pinned checkout), a key
prefix (for sub-databases) and the key/value codecs. Views of one bee share a
:class:`~hyperlobby.bee.tree.BlockCache` (each block is fetched and decoded once) and one write
lock (a batch holds it from its first write until it is flushed or dropped, as in JS).

Application keys and values go through a codec into bytes; everything below compares raw bytes
(memcmp order), so bounds of a range are encoded with the key codec first. A sub-database only
changes the key codec: it prepends ``parent prefix ‖ name ‖ sep`` and strips it again, and its
default range is ``gt = prefix ‖ 00``, ``lt = prefix`` with its last byte incremented
(spec/hyperbee.md §4).

Everything is synchronous: the core answers from local storage. When replication plugs into
:meth:`BlockCache._get_block <hyperlobby.bee.tree.BlockCache._get_block>`, reads will wait there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from hyperlobby.bee.messages import PROTOCOL, Header, Metadata
from hyperlobby.bee.tree import (
    BlockCache,
    Bounds,
    CoreLike,
    DecodedBlock,
    DiffWalk,
    Entry,
    RangeWalk,
    Reader,
    Writer,
)
from hyperlobby.errors import CoreError, DecodeError

SEP = b"\x00"


class Codec(Protocol):
    """Maps application values to bytes and back (JS ``codecs``)."""

    def encode(self, value: Any) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...


class BinaryCodec:
    """Bytes stay bytes; a ``str`` is written as UTF-8 (as JS ``binary`` does)."""

    name = "binary"

    def encode(self, value: Any) -> bytes:
        if isinstance(value, str):
            return value.encode()
        return bytes(value)

    def decode(self, data: bytes) -> Any:
        return data


class Utf8Codec:
    name = "utf-8"

    def encode(self, value: Any) -> bytes:
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        return str(value).encode()

    def decode(self, data: bytes) -> Any:
        try:
            return data.decode()
        except UnicodeDecodeError as err:
            raise DecodeError("stored bytes are not UTF-8") from err


class JsonCodec:
    """UTF-8 JSON, compact like JS ``JSON.stringify`` (no spaces, non-ASCII kept)."""

    name = "json"

    def encode(self, value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()

    def decode(self, data: bytes) -> Any:
        try:
            return json.loads(data)
        except ValueError as err:
            raise DecodeError("stored bytes are not JSON") from err


BINARY = BinaryCodec()
UTF8 = Utf8Codec()
JSON = JsonCodec()


def codec(spec: str | Codec | None) -> Codec:
    """A codec from a name (``binary``, ``utf-8``/``utf8``, ``json``) or a codec object."""
    if spec is None or spec == "binary":
        return BINARY
    if isinstance(spec, str):
        if spec in ("utf-8", "utf8"):
            return UTF8
        if spec == "json":
            return JSON
        raise ValueError(f"unknown encoding {spec!r}")
    return spec


class _PrefixCodec:
    """Keys of a sub-database: ``prefix ‖ key``. Bytes keys skip the inner codec (as in JS)."""

    def __init__(self, prefix: bytes, inner: Codec) -> None:
        self.prefix = prefix
        self.inner = inner

    def encode(self, value: Any) -> bytes:
        if isinstance(value, bytes | bytearray | memoryview):
            return self.prefix + bytes(value)
        return self.prefix + self.inner.encode(value)

    def decode(self, data: bytes) -> Any:
        return self.inner.decode(data[len(self.prefix) :])


@dataclass(frozen=True, slots=True)
class BeeEntry:
    """A decoded entry: ``seq`` is the block that wrote it."""

    seq: int
    key: Any
    value: Any


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One block of the history: ``type`` is ``"put"`` or ``"del"``."""

    type: str
    seq: int
    key: Any
    value: Any


class _Shared:
    """State common to every view of one bee: the cache, the write lock, truncation tracking."""

    def __init__(self, core: CoreLike, cache_size: int, cache_bytes: int) -> None:
        self.cache = BlockCache(core, cache_size, cache_bytes)
        self.batch: Batch | None = None
        self.unsubscribe: Callable[[], None] | None = None
        on_append = getattr(core, "on_append", None)
        if on_append is not None:
            self.unsubscribe = on_append(self._on_append)

    def _on_append(self, event: Any) -> None:
        if getattr(event, "truncated", False):
            self.cache.forget_from(event.length)


class Hyperbee:
    """A Hyperbee over ``core``. See the module docstring; the JS names map as follows:
    ``get``, ``put``, ``delete`` (``del``), ``batch``, ``range`` (``createReadStream``), ``peek``,
    ``sub``, ``checkout``, ``snapshot``, ``diff`` (``createDiffStream``), ``history``
    (``createHistoryStream``), ``watch``, ``get_header``."""

    def __init__(
        self,
        core: CoreLike,
        *,
        key_encoding: str | Codec | None = None,
        value_encoding: str | Codec | None = None,
        metadata: Metadata | None = None,
        always_duplicate: bool = True,
        readonly: bool = False,
        sep: bytes = SEP,
        cache_size: int = 8192,
        cache_bytes: int = 32 << 20,
        _shared: _Shared | None = None,
        _prefix: bytes | None = None,
        _checkout: int = 0,
        _checkout_fork: int = 0,
    ) -> None:
        self.core = core
        self._shared = _shared if _shared is not None else _Shared(core, cache_size, cache_bytes)
        self._unprefixed_key_codec = codec(key_encoding)
        self.value_codec = codec(value_encoding)
        self.metadata = metadata
        self.always_duplicate = always_duplicate
        self.readonly = readonly
        self.sep = sep
        self.prefix = _prefix
        self._checkout = _checkout
        self._checkout_fork = _checkout_fork
        self.key_codec: Codec = (
            _PrefixCodec(_prefix, self._unprefixed_key_codec)
            if _prefix is not None
            else self._unprefixed_key_codec
        )

    # -- identity --

    @property
    def version(self) -> int:
        """Core length this view reads (at least 1: the header-only bee is empty)."""
        return max(1, self._checkout or self.core.length)

    @property
    def key(self) -> bytes:
        return bytes(getattr(self.core, "key", b""))

    @property
    def writable(self) -> bool:
        return self.core.writable and not self.readonly and not self._checkout

    @property
    def cache(self) -> BlockCache:
        return self._shared.cache

    def _reader(self) -> Reader:
        if self._checkout and self.core.fork != self._checkout_fork:
            raise CoreError("snapshot not available: the core was truncated", version=self._checkout)
        return Reader(self._shared.cache, self.version)

    def _view(self, **changes: Any) -> Hyperbee:
        args: dict[str, Any] = {
            "key_encoding": self._unprefixed_key_codec,
            "value_encoding": self.value_codec,
            "metadata": self.metadata,
            "always_duplicate": self.always_duplicate,
            "readonly": self.readonly,
            "sep": self.sep,
            "_shared": self._shared,
            "_prefix": self.prefix,
            "_checkout": self._checkout,
            "_checkout_fork": self._checkout_fork,
        }
        args.update(changes)
        return Hyperbee(self.core, **args)

    # -- entries --

    def _final(self, blk: DecodedBlock | Entry, value_codec: Codec | None = None) -> BeeEntry:
        vc = value_codec or self.value_codec
        return BeeEntry(
            blk.seq, self.key_codec.decode(blk.key), None if blk.value is None else vc.decode(blk.value)
        )

    def _enc_key(self, key: Any) -> bytes:
        return self.key_codec.encode(key)

    # -- reads --

    def get(self, key: Any) -> BeeEntry | None:
        """The entry for ``key`` at this view's version, or None."""
        blk = self._reader().get(self._enc_key(key))
        return None if blk is None else self._final(blk)

    def get_by_seq(self, seq: int) -> BeeEntry:
        """The entry written by block ``seq`` (its value is None for a deletion)."""
        if not 1 <= seq < self.version:
            raise CoreError("seq is not a node block of this version", seq=seq, version=self.version)
        return self._final(self._shared.cache.get(seq))

    def _bounds(self, gt: Any, gte: Any, lt: Any, lte: Any) -> Bounds:
        enc = self._enc_key
        b_gt = None if gt is None else enc(gt)
        b_gte = None if gte is None else enc(gte)
        b_lt = None if lt is None else enc(lt)
        b_lte = None if lte is None else enc(lte)
        if self.prefix is not None:
            if not b_gt and not b_gte:
                b_gt = self.prefix + SEP
            if not b_lt and not b_lte:
                b_lt = self.prefix[:-1] + bytes(((self.prefix[-1] + 1) & 0xFF,))
        return Bounds(b_gt, b_gte, b_lt, b_lte)

    def range(
        self,
        *,
        gt: Any = None,
        gte: Any = None,
        lt: Any = None,
        lte: Any = None,
        reverse: bool = False,
        limit: int = -1,
    ) -> Iterator[BeeEntry]:
        """Entries in key order (or reversed) within the bounds, at most ``limit`` (-1: all)."""
        walk = RangeWalk(self._reader(), self._bounds(gt, gte, lt, lte), reverse, limit)
        for blk in walk:
            yield self._final(blk)

    def __iter__(self) -> Iterator[BeeEntry]:
        return self.range()

    def peek(
        self, *, gt: Any = None, gte: Any = None, lt: Any = None, lte: Any = None, reverse: bool = False
    ) -> BeeEntry | None:
        """The first entry of the range, or None."""
        return next(self.range(gt=gt, gte=gte, lt=lt, lte=lte, reverse=reverse, limit=1), None)

    def diff(
        self,
        other: int | Hyperbee,
        *,
        gt: Any = None,
        gte: Any = None,
        lt: Any = None,
        lte: Any = None,
        limit: int = -1,
    ) -> Iterator[tuple[BeeEntry | None, BeeEntry | None]]:
        """``(left, right)`` for each key whose entry differs between this view (left) and
        ``other`` (right, a version number or another view of the same core)."""
        right = self.checkout(max(1, other)) if isinstance(other, int) else other
        walk = DiffWalk(self._reader(), right._reader(), self._bounds(gt, gte, lt, lte), limit)
        for left_blk, right_blk in walk:
            yield (
                None if left_blk is None else self._final(left_blk),
                None if right_blk is None else right._final(right_blk),
            )

    def history(
        self,
        *,
        gte: int | None = None,
        gt: int | None = None,
        lt: int | None = None,
        lte: int | None = None,
        reverse: bool = False,
        limit: int = -1,
    ) -> Iterator[HistoryEntry]:
        """Every write in block order (seq 1 on); negative bounds count back from the version."""
        version = self.version
        if gt is not None and gt != 0:
            start = (gt + version if gt < 0 else gt) + 1
        else:
            g = gte or 1
            start = g + version if g < 0 else g
        if lte == 0 or lt == 0:
            stop = 0
        elif lte:
            stop = (lte + version if lte < 0 else lte) + 1
        else:
            ll = lt or version
            stop = ll + version if ll < 0 else ll
        cache = self._shared.cache
        while limit != 0 and start < stop:
            if limit > 0:
                limit -= 1
            if reverse:
                if stop <= 1:
                    return
                stop -= 1
                seq = stop
            else:
                seq = start
                start += 1
            blk = cache.get(seq)
            e = self._final(blk)
            yield HistoryEntry("del" if blk.is_deletion() else "put", e.seq, e.key, e.value)

    # -- writes --

    def _writer(self, auto_flush: bool) -> Writer:
        if not self.writable:
            raise CoreError("this Hyperbee view is not writable", version=self.version)
        return Writer(
            self._shared.cache,
            auto_flush=auto_flush,
            metadata=self.metadata,
            always_duplicate=self.always_duplicate,
        )

    def _check_unlocked(self) -> None:
        if self._shared.batch is not None:
            raise CoreError("a batch holds the write lock; flush or close it first")

    def put(self, key: Any, value: Any, *, cas: Callable[[BeeEntry, BeeEntry], bool] | None = None) -> bool:
        """Write ``key`` = ``value`` as one block. Returns False when nothing was written
        (``cas(prev, new)`` returned false, or ``always_duplicate=False`` and the value is
        unchanged)."""
        self._check_unlocked()
        return self._writer(True).put(self._enc_key(key), self.value_codec.encode(value), self._cas(cas))

    def delete(self, key: Any, *, cas: Callable[[BeeEntry, BeeEntry], bool] | None = None) -> bool:
        """Delete ``key``: one block without a value. Returns False (writing nothing) when the
        key is absent."""
        self._check_unlocked()
        return self._writer(True).delete(self._enc_key(key), self._cas(cas))

    del_ = delete

    def _cas(self, cas: Callable[[BeeEntry, BeeEntry], bool] | None) -> Callable[[Entry, Entry], bool] | None:
        if cas is None:
            return None

        def raw(prev: Entry, new: Entry) -> bool:
            return bool(cas(self._final(prev), self._final(new)))

        return raw

    def batch(self) -> Batch:
        """Several writes appended to the core at once by :meth:`Batch.flush`."""
        return Batch(self)

    # -- views --

    def sub(
        self,
        name: str | bytes,
        *,
        sep: bytes | None = None,
        key_encoding: str | Codec | None = None,
        value_encoding: str | Codec | None = None,
    ) -> Hyperbee:
        """A sub-database: keys are stored as ``prefix ‖ name ‖ sep ‖ key``."""
        raw_name = name.encode() if isinstance(name, str) else bytes(name)
        prefix = (self.prefix or b"") + raw_name + (sep if sep is not None else self.sep)
        return self._view(
            key_encoding=key_encoding if key_encoding is not None else self._unprefixed_key_codec,
            value_encoding=value_encoding if value_encoding is not None else self.value_codec,
            _prefix=prefix,
        )

    def checkout(
        self,
        version: int,
        *,
        key_encoding: str | Codec | None = None,
        value_encoding: str | Codec | None = None,
    ) -> Hyperbee:
        """A read-only view pinned at ``version`` (a core length; 0 means 1)."""
        changes: dict[str, Any] = {"_checkout": max(1, version), "_checkout_fork": self.core.fork}
        if key_encoding is not None:
            changes["key_encoding"] = key_encoding
        if value_encoding is not None:
            changes["value_encoding"] = value_encoding
        return self._view(**changes)

    def snapshot(self) -> Hyperbee:
        """A read-only view of the current version."""
        return self.checkout(self.version)

    # -- header --

    def get_header(self) -> Header:
        try:
            return Header.decode(self.core.get(0))
        except DecodeError:
            raise
        except ValueError as err:  # pragma: no cover - Header.decode only raises DecodeError
            raise DecodeError("undecodable hyperbee header") from err

    @staticmethod
    def is_hyperbee(core: CoreLike) -> bool:
        """True if block 0 is a Hyperbee header (raises if block 0 is not available)."""
        raw = core.get(0)
        try:
            return Header.decode(raw).protocol == PROTOCOL
        except DecodeError:
            return False

    # -- watching --

    def watch(self, *, gt: Any = None, gte: Any = None, lt: Any = None, lte: Any = None) -> Watcher:
        """An async iterator of ``(current, previous)`` snapshots, one per change of the range."""
        return Watcher(self, Bounds(gt, gte, lt, lte))

    def close(self) -> None:
        """Stop tracking the core (only needed to drop the append listener of the main view)."""
        if self._shared.unsubscribe is not None:
            self._shared.unsubscribe()
            self._shared.unsubscribe = None

    def __repr__(self) -> str:
        prefix = "" if self.prefix is None else f" prefix={self.prefix!r}"
        return f"<Hyperbee version={self.version}{prefix}>"


class Batch:
    """Writes collected in memory and appended together (all or nothing) by :meth:`flush`.

    Each write still gets its own block. The batch takes the bee's write lock at its first write
    and releases it at :meth:`flush` or :meth:`close`; used as a context manager it flushes on
    success and drops the writes on an exception. :meth:`get` sees the pending writes.
    """

    def __init__(self, bee: Hyperbee) -> None:
        self.bee = bee
        self._writer: Writer | None = None

    def _lock(self) -> Writer:
        if self._writer is None:
            shared = self.bee._shared
            if shared.batch is not None and shared.batch is not self:
                raise CoreError("another batch holds the write lock")
            self._writer = self.bee._writer(False)
            shared.batch = self
        return self._writer

    def put(self, key: Any, value: Any, *, cas: Callable[[BeeEntry, BeeEntry], bool] | None = None) -> bool:
        bee = self.bee
        return self._lock().put(bee._enc_key(key), bee.value_codec.encode(value), bee._cas(cas))

    def delete(self, key: Any, *, cas: Callable[[BeeEntry, BeeEntry], bool] | None = None) -> bool:
        return self._lock().delete(self.bee._enc_key(key), self.bee._cas(cas))

    del_ = delete

    def get(self, key: Any) -> BeeEntry | None:
        if self._writer is None:
            return self.bee.get(key)
        found = self._writer.get(self.bee._enc_key(key))
        return None if found is None else self.bee._final(found)

    @property
    def length(self) -> int:
        """Pending writes."""
        return 0 if self._writer is None else self._writer.length

    def to_blocks(self) -> list[bytes]:
        """The pending writes as the blocks :meth:`flush` would append (does not append)."""
        return [] if self._writer is None else self._writer.to_blocks()

    def flush(self) -> int:
        """Append the pending writes in one core append; returns the bee's new version."""
        try:
            if self._writer is not None:
                self._writer.flush()
        finally:
            self._release()
        return self.bee.version

    def close(self) -> None:
        """Drop the pending writes and release the lock."""
        if self._writer is not None:
            self._writer.discard()
        self._release()

    def _release(self) -> None:
        self._writer = None
        if self.bee._shared.batch is self:
            self.bee._shared.batch = None

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.flush()
        else:
            self.close()


class Watcher:
    """Yields ``(current, previous)`` snapshots whenever the watched range changes (or the core
    was truncated). It wakes on the core's append events; :meth:`close` ends the iteration."""

    def __init__(self, bee: Hyperbee, bounds: Bounds) -> None:
        self.bee = bee
        self._range = bounds
        self.current = bee.snapshot()
        self._fork = bee.core.fork
        self._closed = False
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        on_append = getattr(bee.core, "on_append", None)
        self._unsubscribe: Callable[[], None] | None = on_append(self._on_append) if on_append else None

    def _on_append(self, _event: Any) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    def __aiter__(self) -> Watcher:
        return self

    async def __anext__(self) -> tuple[Hyperbee, Hyperbee]:
        if self._wake is None:
            self._loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
        while not self._closed:
            self._wake.clear()
            bee = self.bee
            if bee.version == self.current.version and bee.core.fork == self._fork:
                await self._wake.wait()
                continue
            previous = self.current
            self.current = bee.snapshot()
            fork = bee.core.fork
            truncated = fork != self._fork
            self._fork = fork
            if truncated:
                return self.current, previous
            r = self._range
            changes = self.current.diff(previous, gt=r.gt, gte=r.gte, lt=r.lt, lte=r.lte, limit=1)
            if next(changes, None) is not None:
                return self.current, previous
        raise StopAsyncIteration

    def close(self) -> None:
        self._closed = True
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._loop is not None and self._wake is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def aclose(self) -> None:
        self.close()

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.close()
