"""Hyperdrive 13: a file system in two Hypercores, byte- and wire-compatible with JS hyperdrive.

Theory of operation
-------------------
A drive is a **db** core holding a Hyperbee (path -> JSON entry) and a **blobs** core holding
file contents (:mod:`hyperlobby.drive.blobs`). The drive key is the db core key.

*Which cores.* A new drive is the store's core named ``"db"`` in the store's namespace, which
is what JS ``new Hyperdrive(corestore)`` opens. The blobs core is found as JS finds it: if the
db header (block 0) carries ``metadata.contentFeed`` its first 32 bytes are the blobs key
(compat drives); otherwise the blobs core is *derived* from the db manifest: the same signers
and quorum, each signer namespace replaced by ``H(HYPERDRIVE_BLOBS ‖ drive key ‖ namespace)``,
no prologue; its key is that manifest's hash, and the writer signs it with the db key pair.
A reader can therefore name (and verify) the blobs core as soon as it holds the db manifest.

*Entries.* The bee keys are ``"files" 00 <path>`` (a Hyperbee sub), paths normalised like JS
(:mod:`hyperlobby.drive.paths`), values the JSON of :class:`~hyperlobby.drive.entry.EntryValue`.
``put`` appends the blob first, then the db entry that points at it, so a reader that sees the
entry can always find its blocks. ``delete`` writes a Hyperbee deletion; blob data stays.

*Local and remote.* Every plain method (``get``, ``entry``, ``list``...) is synchronous and reads
local blocks only; a missing block raises :class:`~hyperlobby.errors.BlockNotAvailableError`.
For a drive replicated from a peer, give it a :class:`~hyperlobby.wire.replication.Replication`
and use the ``async`` helpers: :meth:`Hyperdrive.ready` / :meth:`update` (find the peer's
version and open the blobs core), :meth:`entry_async` / :meth:`get_async` (sparse: a lookup
retries after fetching exactly the db block it missed, then fetches only the blob's blocks), and
:meth:`download` (the whole db, then the blobs of one folder). Waits are bounded by an *idle*
timeout: a transfer fails only when no block has arrived for that long.

*Views.* :meth:`checkout` pins a version (blobs are shared: they are append-only);
:meth:`batch` collects db writes and appends them atomically on ``flush`` (blob blocks are
appended at once, as in JS, so the entries of a flushed batch always find their data).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from hyperlobby.bee import Hyperbee
from hyperlobby.bee.bee import Batch, BeeEntry
from hyperlobby.bee.messages import Header, Metadata
from hyperlobby.core.hypercore import Hypercore
from hyperlobby.core.store import Store
from hyperlobby.crypto.hashes import blake2b256
from hyperlobby.crypto.manifest import Manifest, Signer
from hyperlobby.crypto.namespaces import HYPERDRIVE_BLOBS
from hyperlobby.drive import paths
from hyperlobby.drive.blobs import Hyperblobs
from hyperlobby.drive.entry import BlobId, Entry, EntryValue, js_stringify
from hyperlobby.errors import BlockNotAvailableError, CoreError, DecodeError, DriveError

if TYPE_CHECKING:
    from hyperlobby.wire.replication import Replication

T = TypeVar("T")

DB_NAME = "db"
"""The corestore name of a drive's db core (``makeBee`` in JS hyperdrive)."""

FILES = "files"
"""The Hyperbee sub holding the entries: stored keys are ``files 00 <path>``."""

MAX_SYMLINK_HOPS = 16
DEFAULT_TIMEOUT = 20.0
_MAX_LOOKUP_FETCHES = 100_000


# --- records ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stat:
    """What a path is: a file, a symlink, or a directory (a prefix of other entries)."""

    path: str
    kind: Literal["file", "symlink", "directory"]
    size: int = 0
    executable: bool = False
    seq: int | None = None
    linkname: str | None = None
    blob: BlobId | None = None
    metadata: Any = None


@dataclass(frozen=True, slots=True)
class DiffEntry:
    """One changed path between two versions: ``left`` (this view) and ``right`` (the other)."""

    left: Entry | None
    right: Entry | None

    @property
    def key(self) -> str:
        e = self.left if self.left is not None else self.right
        assert e is not None
        return e.key


@dataclass(frozen=True, slots=True)
class DownloadStats:
    """What :meth:`Hyperdrive.download` fetched (counts include blocks already held)."""

    files: int
    db_blocks: int
    blob_blocks: int
    bytes: int


# --- blobs key derivation ----------------------------------------------------------------------


def content_manifest(db_manifest: Manifest, drive_key: bytes) -> Manifest | None:
    """The blobs core manifest JS derives from a db manifest (``None`` for version-0 manifests,
    whose drives name their blobs core in the header instead)."""
    if db_manifest.version < 1:
        return None
    signers = tuple(
        Signer(s.public_key, blake2b256(HYPERDRIVE_BLOBS + drive_key + s.namespace), s.signature)
        for s in db_manifest.signers
    )
    return Manifest(
        version=db_manifest.version,
        allow_patch=db_manifest.allow_patch,
        quorum=db_manifest.quorum,
        signers=signers,
        prologue=None,
    )


def content_key(db_manifest: Manifest, drive_key: bytes) -> bytes | None:
    """The blobs core key of the drive with this db manifest and key (``getContentKey``)."""
    m = content_manifest(db_manifest, drive_key)
    return None if m is None else m.key


# --- the drive -------------------------------------------------------------------------------


class Hyperdrive:
    """A Hyperdrive over cores of ``store``: a new (or the store's own) drive when ``key`` is
    None, else the drive with that key (read-only unless the store holds its secret key)."""

    def __init__(
        self,
        store: Store,
        key: bytes | None = None,
        *,
        replication: Replication | None = None,
    ) -> None:
        self.store = store
        self.replication = replication
        if key is None:
            core = store.get(name=DB_NAME)
        else:
            if not isinstance(key, bytes | bytearray) or len(key) != 32:
                raise DriveError("a drive key is 32 bytes")
            core = store.get(key=bytes(key))
        self.core: Hypercore = core
        self.db = Hyperbee(core, key_encoding="utf-8", value_encoding="binary", metadata=Metadata())
        self._files = self.db.sub(FILES)
        self._blobs: Hyperblobs | None = None
        self._checkout: Hyperdrive | None = None
        if replication is not None:
            replication.add(core)
        self._open_blobs()

    @classmethod
    def _view(cls, parent: Hyperdrive, files: Hyperbee) -> Hyperdrive:
        """A checkout of ``parent``: same cores and blobs, another Hyperbee view."""
        view = cls.__new__(cls)
        view.store = parent.store
        view.replication = parent.replication
        view.core = parent.core
        view.db = parent.db
        view._files = files
        view._blobs = parent._blobs
        view._checkout = parent._checkout or parent
        return view

    # --- identity ----------------------------------------------------------------------------

    @property
    def key(self) -> bytes:
        return self.core.key

    @property
    def discovery_key(self) -> bytes:
        return self.core.discovery_key

    @property
    def id(self) -> str:
        return self.core.id

    @property
    def url(self) -> str:
        """``hyper://<z32 id>/``, the drive's canonical address."""
        return f"hyper://{self.core.id}/"

    @property
    def version(self) -> int:
        """The db version this view reads (db core length; at least 1)."""
        return self._files.version

    @property
    def writable(self) -> bool:
        return self._files.writable

    @property
    def blobs(self) -> Hyperblobs | None:
        """The blobs store, once known (a remote drive needs its db header or manifest first)."""
        if self._blobs is None and self._checkout is not None:
            self._blobs = self._checkout._blobs
        if self._blobs is None:
            self._open_blobs()
        return self._blobs

    @property
    def content_key(self) -> bytes | None:
        b = self.blobs
        return None if b is None else b.key

    # --- blobs core ---------------------------------------------------------------------------

    def _header_content_feed(self) -> tuple[bool, bytes | None]:
        """(header known, contentFeed key or None)."""
        core = self.core
        if core.length == 0 or not core.has(0):
            return False, None
        try:
            header = Header.decode(core.get(0))
        except DecodeError as err:
            raise DriveError("db block 0 is not a Hyperbee header", key=core.key) from err
        feed = header.metadata.content_feed if header.metadata is not None else None
        if feed:
            if len(feed) < 32:
                raise DriveError("header names a blobs core key shorter than 32 bytes", key=core.key)
            return True, bytes(feed[:32])
        return True, None

    def _open_blobs(self) -> Hyperblobs | None:
        """Open the blobs core if we can tell its key from what we hold; idempotent."""
        if self._blobs is not None:
            return self._blobs
        if self._checkout is not None:
            self._blobs = self._checkout.blobs
            return self._blobs
        known, feed = self._header_content_feed()
        core = self.core
        if feed is not None:
            blobs_core = self.store.get(key=feed)
        elif not known and not core.writable:
            return None  # like JS, a reader decides only once it holds the header
        else:
            manifest = core.manifest
            m = None if manifest is None or core.compat else content_manifest(manifest, core.key)
            if m is None:
                if manifest is None and not core.writable:
                    return None  # the manifest comes with the first upgrade from a peer
                raise DriveError(
                    "this drive's header names no blobs core and its db manifest cannot derive one",
                    key=core.key,
                )
            blobs_core = self._derived_blobs_core(m)
        self._blobs = Hyperblobs(blobs_core)
        if self.replication is not None:
            self.replication.add(blobs_core)
        return self._blobs

    def _derived_blobs_core(self, m: Manifest) -> Hypercore:
        key = m.key
        core = self.core
        if key not in self.store and core.writable:
            kp = core.key_pair
            assert kp is not None
            # Store.get(name=...) cannot take a manifest: create the record, then open it through
            # the store so every part of the program shares one Hypercore object.
            Hypercore.create(self.store.storage, kp, manifest=m).close()
        blobs_core = self.store.get(key=key)
        if blobs_core.manifest is None:
            blobs_core.set_manifest(m)
        return blobs_core

    def _require_blobs(self) -> Hyperblobs:
        b = self.blobs
        if b is None:
            raise DriveError(
                "the blobs core of this drive is not known yet (replicate its db first: await drive.ready())",
                key=self.key,
            )
        return b

    # --- reads (local) --------------------------------------------------------------------------

    def _to_entry(self, found: BeeEntry) -> Entry:
        try:
            value = EntryValue.decode(found.value)
        except DriveError as err:
            raise DriveError(f"malformed entry for {found.key!r}: {err.message}", seq=found.seq) from err
        return Entry(found.seq, found.key, value)

    def _entry(self, name: str) -> Entry | None:
        found = self._files.get(paths.normalize(name))
        if found is None or found.value is None:
            return None
        return self._to_entry(found)

    def entry(self, name: str, *, follow: bool = False) -> Entry | None:
        """The entry at ``name`` (``follow``: through up to 16 symlinks), or None."""
        node = self._entry(name)
        if not follow:
            return node
        for _ in range(MAX_SYMLINK_HOPS):
            if node is None or node.value.linkname is None:
                return node
            node = self._entry(paths.resolve_link(node.key, node.value.linkname))
        raise DriveError("too many levels of symlinks", path=name)

    def exists(self, name: str) -> bool:
        return self.entry(name) is not None

    def get(
        self, name: str, *, follow: bool = False, start: int = 0, length: int | None = None
    ) -> bytes | None:
        """A file's bytes (or a byte range), or None if there is no such file or it has no blob."""
        node = self.entry(name, follow=follow)
        if node is None or node.value.blob is None:
            return None
        return self._read_blob(node, start, length)

    def _read_blob(self, node: Entry, start: int = 0, length: int | None = None) -> bytes:
        blob = node.value.blob
        assert blob is not None
        return self._require_blobs().get(blob, start, length)

    def stat(self, name: str) -> Stat | None:
        """File, symlink or directory information for ``name``; None if nothing is there."""
        if paths.folder(name) == "":
            return Stat("/", "directory")
        node = self.entry(name)
        if node is not None:
            v = node.value
            if v.linkname is not None:
                return Stat(node.key, "symlink", 0, v.executable, node.seq, v.linkname, None, v.metadata)
            size = v.size
            if v.blob is not None and v.blob.block_map:
                size = self._require_blobs().byte_length(v.blob)
            return Stat(node.key, "file", size, v.executable, node.seq, None, v.blob, v.metadata)
        path = paths.folder(name)
        if self._files.peek(gt=path + "/", lt=path + "0") is not None:
            return Stat(path, "directory")
        return None

    def list(self, folder: str = "/", *, recursive: bool = True) -> Iterator[Entry]:
        """Entries under ``folder`` in path order (``recursive=False``: the first entry of each
        immediate child name, as JS ``list(folder, {recursive: false})``)."""
        prefix = paths.folder(folder)
        if not recursive:
            yield from self._shallow(prefix, keys=False)  # type: ignore[misc]
            return
        for found in self._files.range(gt=prefix + "/", lt=prefix + "0"):
            if found.value is not None:
                yield self._to_entry(found)

    def readdir(self, folder: str = "/") -> Iterator[str]:
        """Names directly inside ``folder`` (files and sub-directories), sorted."""
        yield from self._shallow(paths.folder(folder), keys=True)  # type: ignore[misc]

    def _shallow(self, prefix: str, *, keys: bool) -> Iterator[str | Entry]:
        prev = "/"
        prev_name: str | None = None
        while True:
            found = self._files.peek(gt=prefix + prev, lt=prefix + "0")
            if found is None:
                return
            suffix = found.key[len(prefix) + 1 :]
            i = suffix.find("/")
            name = suffix if i == -1 else suffix[:i]
            prev = "/" + name + ("" if i == -1 else "0")
            if name == prev_name:
                continue
            prev_name = name
            yield name if keys else self._to_entry(found)

    def __iter__(self) -> Iterator[Entry]:
        return self.list("/")

    def diff(self, version: int, folder: str = "/") -> Iterator[DiffEntry]:
        """Paths under ``folder`` whose entries differ between this view (left) and ``version``."""
        prefix = paths.folder(folder)
        for left, right in self._files.diff(version, gt=prefix + "/", lt=prefix + "0"):
            yield DiffEntry(self._maybe_entry(left), self._maybe_entry(right))

    def _maybe_entry(self, found: BeeEntry | None) -> Entry | None:
        if found is None or found.value is None:
            return None
        return self._to_entry(found)

    def checkout(self, version: int) -> Hyperdrive:
        """A read-only view of the drive at ``version`` (a db length)."""
        if version < 0:
            raise DriveError("a version is a non-negative db length", version=version)
        return Hyperdrive._view(self, self._files.checkout(version))

    def snapshot(self) -> Hyperdrive:
        return self.checkout(self.version)

    # --- writes ---------------------------------------------------------------------------------

    def _check_writable(self) -> None:
        if not self.writable:
            raise DriveError("this drive (or view) is not writable", key=self.key)

    def put(
        self,
        name: str,
        data: bytes | bytearray | memoryview | str,
        *,
        executable: bool = False,
        metadata: Any = None,
    ) -> Entry:
        """Write a file: its bytes go to the blobs core, then its entry to the db."""
        self._check_writable()
        key = paths.normalize(name)
        raw = _as_bytes(data)
        js_stringify(metadata)  # refuse bad metadata before any block is appended
        blob = self._require_blobs().put(raw)
        return self._put_value(key, EntryValue(bool(executable), None, blob, metadata))

    def put_entry(self, name: str, value: EntryValue) -> Entry:
        """Write an entry as given (e.g. to point a second path at an existing blob)."""
        self._check_writable()
        return self._put_value(paths.normalize(name), value)

    def symlink(self, name: str, target: str, *, metadata: Any = None) -> Entry:
        """A symlink entry; ``target`` is stored as given (resolved only when followed)."""
        self._check_writable()
        if not isinstance(target, str) or not target:
            raise DriveError("a symlink target is a non-empty string", path=name)
        return self._put_value(paths.normalize(name), EntryValue(False, target, None, metadata))

    def _put_value(self, key: str, value: EntryValue) -> Entry:
        encoded = value.encode()
        self._files.put(key, encoded)
        return Entry(self.core.length - 1, key, value)

    def delete(self, name: str) -> bool:
        """Remove the entry at ``name`` (True if there was one). Its blob stays in the blobs core."""
        self._check_writable()
        return self._files.delete(paths.normalize(name))

    def batch(self) -> DriveBatch:
        """Collect db writes and append them together (see :class:`DriveBatch`)."""
        self._check_writable()
        return DriveBatch(self)

    def truncate(self, version: int) -> None:
        """Cut the drive back to ``version``: the db to that length, the blobs to the end of the
        last blob any entry of that version uses (as JS ``truncate``)."""
        self._check_writable()
        if not 0 <= version <= self.core.length:
            raise DriveError("bad truncation version", version=version, length=self.core.length)
        blobs = self._require_blobs()
        old = self.checkout(version)
        end = 0
        for e in old.list("/"):
            if e.value.blob is not None:
                end = max(end, e.value.blob.block_end)
        if end > blobs.core.length:
            raise DriveError("bad truncation length for the blobs core", blobs=end)
        self.core.truncate(version)
        blobs.core.truncate(end)

    # --- watching -----------------------------------------------------------------------------

    def watch(
        self,
        folder: str = "/",
        on_change: Callable[[Hyperdrive, Hyperdrive], object] | None = None,
    ) -> DriveWatcher:
        """Changes under ``folder``: an async iterator of ``(current, previous)`` checkouts, or,
        with ``on_change``, a background task calling ``on_change(current, previous)``.

        For a replicated drive, the blocks each diff needs are fetched from peers."""
        watcher = DriveWatcher(self, paths.folder(folder))
        if on_change is not None:
            watcher.start(on_change)
        return watcher

    # --- mirroring (see mirror.py) ------------------------------------------------------------

    def mirror_from(self, source: str, prefix: str = "/", *, prune: bool = True) -> Any:
        """Make ``prefix`` in the drive match the local folder ``source`` (adds, changes, deletes)."""
        from hyperlobby.drive.mirror import mirror_folder_to_drive

        return mirror_folder_to_drive(source, self, prefix, prune=prune)

    def mirror_to(self, dest: str, prefix: str = "/", *, prune: bool = False) -> Any:
        """Write the files under ``prefix`` into the local folder ``dest``."""
        from hyperlobby.drive.mirror import mirror_drive_to_folder

        return mirror_drive_to_folder(self, dest, prefix, prune=prune)

    # --- replication helpers (async) -----------------------------------------------------------

    def _rep(self) -> Replication:
        if self.replication is None:
            raise DriveError("this drive has no Replication attached (pass replication=...)")
        return self.replication

    async def ready(self, *, timeout: float = DEFAULT_TIMEOUT) -> Hyperdrive:
        """Make sure the blobs core is known: for a remote drive, wait for the peer's db head,
        fetch the header block, and open the blobs core it implies."""
        if self.blobs is not None:
            return self
        rep = self._rep()
        if self.core.length == 0:
            await rep.update(self.core, timeout=timeout)
        if self.core.length == 0:
            raise DriveError("the peer has an empty drive (no db header yet)", key=self.key)
        await rep.get(self.core, 0, timeout=timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._open_blobs() is None:
            # A non-compat drive needs the db manifest, which arrives with the first upgrade.
            if loop.time() >= deadline:
                raise DriveError("could not learn the blobs core of this drive in time", key=self.key)
            await asyncio.sleep(0.01)
        return self

    async def update(self, *, timeout: float = DEFAULT_TIMEOUT) -> int:
        """Catch up with the peers' latest db version (and the blobs core's length); returns it."""
        rep = self._rep()
        if not self.core.writable:
            await rep.update(self.core, timeout=timeout)
        await self.ready(timeout=timeout)
        blobs = self._require_blobs()
        if not blobs.core.writable:
            with contextlib.suppress(BlockNotAvailableError):
                await rep.update(blobs.core, timeout=timeout)
        return self.version

    async def _fetching(self, fn: Callable[[], T], timeout: float) -> T:
        """Run a local db read, fetching each db block it misses, until it succeeds (sparse)."""
        for _ in range(_MAX_LOOKUP_FETCHES):
            try:
                return fn()
            except BlockNotAvailableError as err:
                index = err.context.get("index")
                if self.replication is None or not isinstance(index, int):
                    raise
                await self.replication.get(self.core, index, timeout=timeout)
        raise DriveError("db lookup kept missing blocks", key=self.key)  # pragma: no cover

    async def entry_async(
        self, name: str, *, follow: bool = False, timeout: float = DEFAULT_TIMEOUT
    ) -> Entry | None:
        """:meth:`entry`, fetching the db blocks the lookup needs."""
        return await self._fetching(lambda: self.entry(name, follow=follow), timeout)

    async def get_async(
        self, name: str, *, follow: bool = False, timeout: float = DEFAULT_TIMEOUT
    ) -> bytes | None:
        """:meth:`get`, fetching only the db blocks of the lookup and the file's blob blocks."""
        node = await self.entry_async(name, follow=follow, timeout=timeout)
        if node is None or node.value.blob is None:
            return None
        await self.ready(timeout=timeout)
        await self._fetch_blob(node.value.blob, timeout)
        return self._read_blob(node)

    async def stat_async(self, name: str, *, timeout: float = DEFAULT_TIMEOUT) -> Stat | None:
        """:meth:`stat`, fetching the db blocks (and a block map) it needs."""
        st = await self._fetching(lambda: self._stat_or_blob(name), timeout)
        if isinstance(st, BlobId):
            await self._fetch_range(self._require_blobs().core, st.block_offset, st.block_end, timeout)
            return self.stat(name)
        return st

    def _stat_or_blob(self, name: str) -> Stat | BlobId | None:
        """A stat, or the block-mapped blob whose map must be fetched before its size is known."""
        if paths.folder(name) == "":
            return self.stat(name)
        node = self.entry(name)
        if node is not None and node.value.blob is not None and node.value.blob.block_map:
            blobs = self._require_blobs()
            if not all(
                blobs.core.has(i) for i in range(node.value.blob.block_offset, node.value.blob.block_end)
            ):
                return node.value.blob
        return self.stat(name)

    async def download_entries(
        self,
        entries: Iterable[Entry],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        on_entry: Callable[[Entry], object] | None = None,
    ) -> int:
        """Fetch the blobs of ``entries`` (calling ``on_entry`` after each); returns blocks."""
        await self.ready(timeout=timeout)
        blocks = 0
        for e in entries:
            if e.value.blob is not None:
                blocks += await self._fetch_blob(e.value.blob, timeout)
            if on_entry is not None:
                on_entry(e)
        return blocks

    async def list_async(
        self, folder: str = "/", *, timeout: float = DEFAULT_TIMEOUT
    ) -> builtins.list[Entry]:
        """All entries under ``folder`` (downloads the db blocks first)."""
        await self._fetch_db(timeout)
        return list(self.list(folder))

    async def download(self, folder: str = "/", *, timeout: float = DEFAULT_TIMEOUT) -> DownloadStats:
        """Fetch the whole db at this version and every blob under ``folder``."""
        await self.ready(timeout=timeout)
        db_blocks = await self._fetch_db(timeout)
        entries = [e for e in self.list(folder) if e.value.blob is not None]
        blob_blocks = await self.download_entries(entries, timeout=timeout)
        size = sum(e.value.blob.byte_length for e in entries if e.value.blob is not None)
        return DownloadStats(len(entries), db_blocks, blob_blocks, size)

    async def _fetch_db(self, timeout: float) -> int:
        end = self.version if self._checkout is not None else self.core.length
        await self._fetch_range(self.core, 0, end, timeout)
        return end

    async def _fetch_blob(self, blob: BlobId, timeout: float) -> int:
        blobs = self._require_blobs()
        core = blobs.core
        if blob.block_end > core.length and self.replication is not None:
            await self.replication.update(core, timeout=timeout)
            if blob.block_end > core.length:
                raise DriveError(
                    "the peer's blobs core is shorter than the entry says", needed=blob.block_end
                )
        await self._fetch_range(core, blob.block_offset, blob.block_end, timeout)
        if blob.block_map:
            indexes = blobs.block_indexes(blob)
            for i in indexes:
                if not core.has(i):
                    await self._fetch_range(core, i, i + 1, timeout)
            return blob.block_length + len(indexes)
        return blob.block_length

    async def _fetch_range(self, core: Hypercore, start: int, end: int, timeout: float) -> None:
        """Fetch blocks ``[start, end)`` of ``core``; fail after ``timeout`` s without progress."""
        pos = start
        while pos < end and core.has(pos):
            pos += 1
        if pos >= end:
            return
        rep = self._rep()
        replicator = rep.replicator(core)
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def on_block(_index: int) -> None:
            wake.set()

        unsubscribe = replicator.on_block(on_block)
        wanted = rep.download(core, pos, end)
        try:
            idle_deadline = loop.time() + timeout
            while True:
                before = pos
                while pos < end and core.has(pos):
                    pos += 1
                if pos >= end:
                    return
                now = loop.time()
                if pos != before:
                    idle_deadline = now + timeout
                if now >= idle_deadline:
                    raise BlockNotAvailableError(
                        "no peer sent the missing blocks in time", key=core.key, index=pos, end=end
                    )
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), min(0.25, idle_deadline - now))
        finally:
            unsubscribe()
            replicator.undownload(wanted)

    def close(self) -> None:
        """Stop listening to the db core (the store and its cores stay open)."""
        if self._checkout is None:
            self.db.close()

    def __repr__(self) -> str:
        mode = "writable" if self.writable else "read-only"
        return f"<Hyperdrive {self.id} version={self.version} {mode}>"


def _as_bytes(data: bytes | bytearray | memoryview | str) -> bytes | bytearray | memoryview:
    if isinstance(data, str):
        return data.encode()
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DriveError("file contents must be bytes", type=type(data).__name__)
    return data


class DriveBatch:
    """Writes to one drive appended to the db in one step by :meth:`flush`.

    Blob blocks are appended at once (a later entry must find them); the db entries become
    visible together. As a context manager it flushes on success and drops the db writes on an
    exception (the blob blocks then stay unreferenced, as in JS).
    """

    def __init__(self, drive: Hyperdrive) -> None:
        self.drive = drive
        self._batch: Batch = drive._files.batch()

    def put(
        self,
        name: str,
        data: bytes | bytearray | memoryview | str,
        *,
        executable: bool = False,
        metadata: Any = None,
    ) -> None:
        key = paths.normalize(name)
        raw = _as_bytes(data)
        js_stringify(metadata)
        blob = self.drive._require_blobs().put(raw)
        self._batch.put(key, EntryValue(bool(executable), None, blob, metadata).encode())

    def put_many(self, files: list[tuple[str, bytes]]) -> None:
        """Several files whose blobs go to the blobs core in a single append."""
        keys = [paths.normalize(n) for n, _ in files]
        ids = self.drive._require_blobs().put_many(_as_bytes(d) for _, d in files)
        for key, blob in zip(keys, ids, strict=True):
            self._batch.put(key, EntryValue(False, None, blob, None).encode())

    def symlink(self, name: str, target: str, *, metadata: Any = None) -> None:
        if not isinstance(target, str) or not target:
            raise DriveError("a symlink target is a non-empty string", path=name)
        self._batch.put(paths.normalize(name), EntryValue(False, target, None, metadata).encode())

    def delete(self, name: str) -> None:
        self._batch.delete(paths.normalize(name))

    def entry(self, name: str) -> Entry | None:
        found = self._batch.get(paths.normalize(name))
        return None if found is None or found.value is None else self.drive._to_entry(found)

    def flush(self) -> int:
        """Append the collected db writes; returns the drive's new version."""
        return self._batch.flush()

    def close(self) -> None:
        self._batch.close()

    def __enter__(self) -> DriveBatch:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.flush()
        else:
            self.close()


def _has_changes(current: Hyperdrive, version: int, prefix: str) -> bool:
    return next(current.diff(version, prefix or "/"), None) is not None


class DriveWatcher:
    """``(current, previous)`` drive checkouts each time the watched folder changes.

    It wakes on every append (or verified upgrade) of the db core, and compares the new version
    with the last one it reported, restricted to the folder. For a replicated drive the diff
    fetches the db blocks it needs (sparse), so watching a remote drive works without a full
    download. A truncation is always reported.
    """

    def __init__(self, drive: Hyperdrive, prefix: str) -> None:
        self.drive = drive
        self._prefix = prefix
        self._current = drive.snapshot()
        self._fork = drive.core.fork
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = drive.core.on_append(self._on_append)

    def _on_append(self, _event: object) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    def __aiter__(self) -> AsyncIterator[tuple[Hyperdrive, Hyperdrive]]:
        return self

    async def __anext__(self) -> tuple[Hyperdrive, Hyperdrive]:
        if self._wake is None:
            self._loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
        drive = self.drive
        while not self._closed:
            self._wake.clear()
            core = drive.core
            if max(1, core.length) == self._current.version and core.fork == self._fork:
                await self._wake.wait()
                continue
            previous = self._current
            current = drive.snapshot()
            self._current = current
            if core.fork != self._fork:
                self._fork = core.fork
                return current, previous
            changed = await drive._fetching(
                functools.partial(_has_changes, current, previous.version, self._prefix), DEFAULT_TIMEOUT
            )
            if changed:
                return current, previous
        raise StopAsyncIteration

    def start(self, on_change: Callable[[Hyperdrive, Hyperdrive], object]) -> None:
        """Call ``on_change`` for each change from a background task (needs a running loop)."""

        async def run() -> None:
            async for current, previous in self:
                result = on_change(current, previous)
                if asyncio.iscoroutine(result):
                    await result

        self._task = asyncio.get_running_loop().create_task(run())

    def close(self) -> None:
        self._closed = True
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._loop is not None and self._wake is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)
        if self._task is not None:
            self._task.cancel()

    async def aclose(self) -> None:
        self.close()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, CoreError):
                await self._task


__all__ = [
    "DB_NAME",
    "DiffEntry",
    "DownloadStats",
    "DriveBatch",
    "DriveWatcher",
    "Hyperdrive",
    "Stat",
    "content_key",
    "content_manifest",
]
