"""SQLite storage backend: every core of a Store in one WAL-mode database file.

Theory of operation
-------------------
Layout (schema version in ``PRAGMA user_version``):

* ``meta(name, value)``: store-wide values (the primary key).
* ``cores``: one row per core: identity (key, discovery key, manifest, secret key) **and** its
  head (fork, length, byte length, packed roots, signature). Keeping the head in the same row
  means opening a core is one indexed read, and an append updates one small row.
* ``blocks(k, data)``: a rowid table keyed by ``core_id << 40 | index``. A plain integer rowid
  is the cheapest key SQLite has, and rowid tables are the right home for large blobs (they
  spill into overflow pages without disturbing the b-tree).
* ``nodes(k, v)``: Merkle nodes grouped by the block they end at. Every node's span ends at one
  leaf (its ``right_span``); the nodes ending at block ``g`` are the leaf ``2g`` and its first
  ``trailing_ones(g)`` ancestors, i.e. exactly the nodes an append of block ``g`` creates. So one
  row keyed like ``blocks`` (``core_id << 40 | g``) holds that *group*, as 41-byte entries
  ``(u8 depth, u64le size, hash32)`` sorted by depth. An append of one block writes one node row
  instead of ~2, a batch of 100 writes 100 instead of ~200 (rows, not bytes, are what SQLite
  charges for), and a full group, the only kind an append produces, is written blindly with
  ``INSERT OR REPLACE``. Nodes that arrive piecemeal (proofs) are merged into their group's row
  (read, merge, write); deleting nodes rewrites the rows they sit in.
* ``bitfield(core, page, data)``, ``user_data(core, name, value)``: small rows, stored
  ``WITHOUT ROWID`` so the primary key is the b-tree itself.

Atomicity and durability: each :meth:`SqliteStorage.write` is one ``BEGIN IMMEDIATE … COMMIT``
transaction, so a reader (another connection, another process, or the same process after a
crash) sees a core either before or after a batch, never in between. With WAL the commit is
an append to the ``-wal`` file; ``synchronous`` decides when it is fsync'ed:

* ``"normal"`` (default): the WAL is fsync'ed at checkpoints only. A committed transaction
  survives the process being killed (the data is in the OS page cache, and SQLite replays the
  WAL on the next open), but the last few commits may be lost on a power cut or kernel panic
  (the database itself stays consistent: it rolls back to an earlier commit).
* ``"full"``: the WAL is fsync'ed on every commit, so a returned append also survives a power
  cut. It costs one fsync per append (the benchmark prints both).

Speed: an append is one transaction of three statements (blocks, node groups, head row); an
in-order append writes no bitfield page (the contiguous length lives in the head row).
Statements are fixed strings, so the ``sqlite3`` module's statement cache prepares each once.

Checkpoints: a checkpoint (copying the WAL back into the database) fsyncs twice even in
``normal`` mode, and with SQLite's default of doing it inside the commit that crosses the
threshold it dominated the cost of appends (most of the time of a 1 MiB append). So a
background thread with its own connection runs ``PASSIVE`` checkpoints once the writer has
put ~``_CHECKPOINT_BYTES`` into the WAL since it was last reset. A passive checkpoint never
blocks the writer, but the WAL only starts over from its beginning when a write finds it fully
copied, which never happens while the writer keeps appending. So once a background round has
copied most of it, the writer itself checkpoints the small remainder (``_TAIL_BYTES``; the
writer waits for that copy and its fsyncs) and its next commit restarts the WAL; a writer too
fast for the remainder ever to get that small does it anyway once the WAL holds
``_RESTART_BYTES``. If the writer outpaces the disk, SQLite's own
``wal_autocheckpoint`` at ``_WAL_HARD_LIMIT_BYTES`` makes it wait, so the WAL stays bounded.
Checkpoints are SQLite's own crash-safe operation: none of this changes what a commit means.

Groups: :meth:`SqliteStorage.group` lets several writes share one transaction. Replication uses
it to commit all the blocks verified from one socket read together, instead of one commit per
block; a crash before the group commits only loses downloaded blocks, which are fetched again.
Inside a group, a write that only adds (blocks, nodes, bitfield pages, a head: every verified
block) is checked and then *staged* in memory, where reads find it; at commit the staged rows go
out with one ``executemany`` per table and one head update per core, instead of ~6 statements
per block. Any other write (truncation, deletion, manifest, user data) first writes out what is
staged, then runs as a SAVEPOINT inside the transaction, so it still applies whole or not at
all. Local appends never run in a group: they stay durable when they return. If the group's
COMMIT (or writing out its staged rows) fails, the storage refuses further writes (memory may be
ahead of disk), and the store must be reopened.

Threads: the connection is created with ``check_same_thread=False`` so an asyncio program may
use it from an executor thread, but callers must not use one Store from two threads at once.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import struct
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from hyperlobby.core.proofs import TreeNode
from hyperlobby.core.storage.base import (
    MAX_BLOCKS_PER_CORE,
    SCHEMA_VERSION,
    CoreRecord,
    Head,
    WriteBatch,
    validate_batch,
)
from hyperlobby.errors import StorageError

Durability = Literal["normal", "full"]

_SHIFT = 40
_CHECKPOINT_BYTES = 32 << 20
"""WAL growth (estimated from what we commit) after which a background checkpoint starts."""
_TAIL_BYTES = 4 << 20
"""Once a background round is done and at most this was committed meanwhile, the writer copies
the remainder itself so that its next commit restarts the WAL from the beginning (if more, one
more background round goes first). The writer waits for that copy and its two fsyncs, so the
remainder is kept small: with 32 MiB, a reader storing 64 KiB blocks spent ~20% of its time
(~150-250 ms per WAL restart, four per 200 MB) waiting there."""
_RESTART_BYTES = 128 << 20
"""A writer faster than the background rounds (say, 1 MiB appends) never leaves a remainder
that small; once the WAL holds this much, the writer copies whatever is left after a round."""
_WAL_HARD_LIMIT_BYTES = 256 << 20
"""SQLite's own (blocking) autocheckpoint (set in pages): only reached when the background
thread cannot keep up, and then it throttles the writer to the disk's speed."""
_PAGE_SIZE = 4096
"""Page size of a new database file (an existing one keeps its own). 16 KiB pages made a reader
storing 64 KiB blocks cheaper (~400 instead of ~450-500 us per block in process, fewer chained
overflow pages), but single local appends of 1 KiB blocks got ~25% slower (bench_core, same
run: 3,736 vs 5,133 blocks/s), and local appends are the common write; so SQLite's 4 KiB."""
_ROOT = struct.Struct("<QQ32s")
_ENTRY = struct.Struct("<BQ32s")
_ENTRY_SIZE = _ENTRY.size
_MAX_INDEX = MAX_BLOCKS_PER_CORE - 1
_READ_CHUNK = 500
"""Node rows read per query when a group merges what it staged (under SQLite's variable limit)."""
_LOOKAHEAD = 64
"""Node rows looked at past a missing one (see ``SqliteStorage._absent``)."""
_ABSENT_LIMIT = 1 << 16
"""Bound on the remembered missing rows (forgotten all at once beyond it)."""

_SCHEMA = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID",
    """CREATE TABLE cores (
        id INTEGER PRIMARY KEY,
        key BLOB NOT NULL UNIQUE,
        discovery_key BLOB NOT NULL UNIQUE,
        manifest BLOB,
        secret_key BLOB,
        fork INTEGER NOT NULL DEFAULT 0,
        length INTEGER NOT NULL DEFAULT 0,
        byte_length INTEGER NOT NULL DEFAULT 0,
        roots BLOB NOT NULL DEFAULT x'',
        signature BLOB,
        contiguous INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE TABLE blocks (k INTEGER PRIMARY KEY, data BLOB NOT NULL)",
    "CREATE TABLE nodes (k INTEGER PRIMARY KEY, v BLOB NOT NULL)",
    """CREATE TABLE bitfield (
        core INTEGER NOT NULL, page INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (core, page)
    ) WITHOUT ROWID""",
    """CREATE TABLE user_data (
        core INTEGER NOT NULL, name TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (core, name)
    ) WITHOUT ROWID""",
)

_CORE_COLUMNS = "id, key, discovery_key, manifest, secret_key"


def pack_roots(roots: tuple[TreeNode, ...] | list[TreeNode]) -> bytes:
    """Roots as ``(u64 index, u64 size, hash32)`` records, concatenated."""
    pack = _ROOT.pack
    return b"".join([pack(r.index, r.size, r.hash) for r in roots])


def unpack_roots(raw: bytes) -> tuple[TreeNode, ...]:
    if len(raw) % _ROOT.size:
        raise StorageError("stored roots are corrupt", length=len(raw))
    return tuple(TreeNode(i, s, h) for i, s, h in _ROOT.iter_unpack(raw))


def _depth(index: int) -> int:
    return ((index + 1) & -(index + 1)).bit_length() - 1


def _group_of(index: int) -> tuple[int, int]:
    """(group, depth) of tree node ``index``: the block its span ends at, and its height."""
    d = ((index + 1) & -(index + 1)).bit_length() - 1
    return (index + (1 << d) - 1) >> 1, d


def _trailing_ones(g: int) -> int:
    return ((g + 1) & -(g + 1)).bit_length() - 1


def _only_adds(batch: WriteBatch) -> bool:
    """True for a batch that only adds blocks, nodes, pages or a head (what a group stages)."""
    return (
        batch.truncate_blocks_from is None
        and batch.truncate_nodes_from is None
        and not batch.delete_nodes
        and batch.manifest is None
        and not batch.user_data
    )


def _unpack_group(g: int, raw: bytes) -> dict[int, TreeNode]:
    """Nodes of group ``g`` by depth."""
    if len(raw) % _ENTRY_SIZE:
        raise StorageError("stored tree nodes are corrupt", group=g, length=len(raw))
    out: dict[int, TreeNode] = {}
    two_g = 2 * g
    for d, size, h in _ENTRY.iter_unpack(raw):
        out[d] = TreeNode(two_g - (1 << d) + 1, size, h)
    return out


def _pack_group(nodes: dict[int, TreeNode]) -> bytes:
    pack = _ENTRY.pack
    return b"".join([pack(d, nodes[d].size, nodes[d].hash) for d in sorted(nodes)])


def _write_head(db: sqlite3.Connection, core_id: int, head: Head) -> None:
    """Store a core's head (the signed length, roots and contiguous length) in one UPDATE."""
    cur = db.execute(
        "UPDATE cores SET fork = ?, length = ?, byte_length = ?, roots = ?, signature = ?,"
        " contiguous = ? WHERE id = ?",
        (
            head.fork,
            head.length,
            head.byte_length,
            pack_roots(head.roots),
            head.signature,
            head.contiguous_length,
            core_id,
        ),
    )
    if cur.rowcount != 1:
        raise StorageError("no such core in storage", core_id=core_id)


class SqliteStorage:
    """A :class:`~hyperlobby.core.storage.base.StorageBackend` in one SQLite file (or ``:memory:``)."""

    def __init__(self, path: str | Path, *, durability: Durability = "normal") -> None:
        if durability not in ("normal", "full"):
            raise ValueError("durability must be 'normal' or 'full'")
        self.path = str(path)
        self.durability: Durability = durability
        try:
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, cached_statements=256
            )
            self._db.execute("PRAGMA busy_timeout = 5000")
            self._db.execute(f"PRAGMA page_size = {_PAGE_SIZE}")  # no effect on an existing file
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if self.path != ":memory:" and str(mode).lower() != "wal":
                raise StorageError("could not switch the database to WAL mode", path=self.path, mode=mode)
            self._db.execute(f"PRAGMA synchronous = {durability.upper()}")
            self._db.execute("PRAGMA cache_size = -65536")
            self._page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
            self._db.execute(f"PRAGMA wal_autocheckpoint = {_WAL_HARD_LIMIT_BYTES // self._page_size}")
            self._db.execute("PRAGMA temp_store = MEMORY")
            self._init_schema()
        except sqlite3.Error as err:
            raise StorageError("cannot open the storage database", path=self.path, reason=str(err)) from err
        self._closed = False
        self._failed: str | None = None
        self._group_depth = 0
        self._group_batches: list[WriteBatch] = []
        # Inside a group, writes that only add (blocks, nodes, pages, a head) are staged here and
        # written with one statement per table at commit (see "Groups" in the module docstring).
        # Staged node rows hold only what the group added; reads fall back to the table.
        self._staged_rows: dict[int, dict[int, TreeNode]] = {}
        self._staged_blocks: dict[int, bytes] = {}
        self._staged_pages: dict[tuple[int, int], bytes] = {}
        self._staged_heads: dict[int, Head] = {}
        self._known_cores: set[int] = set()
        # Node row keys known to be in neither the table nor the staged rows. A reader asks for
        # many nodes it does not have yet (the right-hand part of the tree it is filling), so a
        # miss also looks at the next rows; any write that is not staged forgets them all, a
        # staged one the rows it adds.
        self._absent: set[int] = set()
        self._wal_bytes = 0
        self._next_round = _CHECKPOINT_BYTES
        self._checkpointer: _Checkpointer | None = None
        if self.path != ":memory:" and not self.path.startswith("file:"):
            self._checkpointer = _Checkpointer(self.path, durability)

    def _init_schema(self) -> None:
        db = self._db
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version != 0:
            raise StorageError(
                "storage schema version is not supported", found=version, supported=SCHEMA_VERSION
            )
        tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if tables:
            raise StorageError("the file is an SQLite database, but not a hyperlobby store", path=self.path)
        db.execute("BEGIN IMMEDIATE")
        try:
            for stmt in _SCHEMA:
                db.execute(stmt)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # --- helpers ---------------------------------------------------------------------------------

    def _check_open(self) -> sqlite3.Connection:
        if self._closed:
            raise StorageError("storage is closed", path=self.path)
        return self._db

    @staticmethod
    def _record(row: tuple[int, bytes, bytes, bytes | None, bytes | None]) -> CoreRecord:
        return CoreRecord(row[0], row[1], row[2], row[3], row[4])

    # --- store-wide ------------------------------------------------------------------------------

    def get_primary_key(self) -> bytes | None:
        row = self._check_open().execute("SELECT value FROM meta WHERE name = 'primary_key'").fetchone()
        return None if row is None else bytes(row[0])

    def set_primary_key(self, key: bytes) -> bytes:
        if len(key) != 32:
            raise StorageError("primary key must be 32 bytes", length=len(key))
        db = self._check_open()
        try:
            db.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('primary_key', ?)", (bytes(key),))
        except sqlite3.Error as err:
            raise StorageError("cannot store the primary key", reason=str(err)) from err
        kept = self.get_primary_key()
        assert kept is not None
        return kept

    def create_core(
        self, key: bytes, discovery_key: bytes, manifest: bytes | None, secret_key: bytes | None
    ) -> CoreRecord:
        if len(key) != 32 or len(discovery_key) != 32:
            raise StorageError("core key and discovery key must be 32 bytes")
        db = self._check_open()
        try:
            cur = db.execute(
                "INSERT INTO cores (key, discovery_key, manifest, secret_key) VALUES (?, ?, ?, ?)",
                (bytes(key), bytes(discovery_key), manifest, secret_key),
            )
        except sqlite3.IntegrityError as err:
            raise StorageError("core already stored", key=key) from err
        except sqlite3.Error as err:
            raise StorageError("cannot store a new core", key=key, reason=str(err)) from err
        core_id = cur.lastrowid
        assert core_id is not None
        if core_id >= 1 << (63 - _SHIFT):
            raise StorageError("too many cores in one store", core_id=core_id)
        return CoreRecord(core_id, bytes(key), bytes(discovery_key), manifest, secret_key)

    def update_core_auth(self, core_id: int, manifest: bytes | None, secret_key: bytes | None) -> CoreRecord:
        db = self._check_open()
        try:
            db.execute(
                "UPDATE cores SET manifest = coalesce(?, manifest), secret_key = coalesce(?, secret_key)"
                " WHERE id = ?",
                (manifest, secret_key, core_id),
            )
        except sqlite3.Error as err:
            raise StorageError("cannot update a core", core_id=core_id, reason=str(err)) from err
        row = db.execute(f"SELECT {_CORE_COLUMNS} FROM cores WHERE id = ?", (core_id,)).fetchone()
        if row is None:
            raise StorageError("no such core in storage", core_id=core_id)
        return self._record(row)

    def find_core(self, key: bytes) -> CoreRecord | None:
        row = (
            self._check_open()
            .execute(f"SELECT {_CORE_COLUMNS} FROM cores WHERE key = ?", (bytes(key),))
            .fetchone()
        )
        return None if row is None else self._record(row)

    def find_core_by_discovery_key(self, discovery_key: bytes) -> CoreRecord | None:
        row = (
            self._check_open()
            .execute(f"SELECT {_CORE_COLUMNS} FROM cores WHERE discovery_key = ?", (bytes(discovery_key),))
            .fetchone()
        )
        return None if row is None else self._record(row)

    def list_cores(self) -> list[CoreRecord]:
        rows = self._check_open().execute(f"SELECT {_CORE_COLUMNS} FROM cores ORDER BY id").fetchall()
        return [self._record(r) for r in rows]

    # --- one core --------------------------------------------------------------------------------

    def get_head(self, core_id: int) -> Head:
        staged = self._staged_heads.get(core_id)
        if staged is not None:
            return staged
        row = (
            self._check_open()
            .execute(
                "SELECT fork, length, byte_length, roots, signature, contiguous FROM cores WHERE id = ?",
                (core_id,),
            )
            .fetchone()
        )
        if row is None:
            raise StorageError("no such core in storage", core_id=core_id)
        fork, length, byte_length, roots, signature, contiguous = row
        sig = None if signature is None else bytes(signature)
        return Head(fork, length, byte_length, unpack_roots(roots), sig, contiguous)

    def get_block(self, core_id: int, index: int) -> bytes | None:
        if not 0 <= index <= _MAX_INDEX:
            return None
        key = (core_id << _SHIFT) | index
        if self._staged_blocks:
            staged = self._staged_blocks.get(key)
            if staged is not None:
                return staged
        row = self._check_open().execute("SELECT data FROM blocks WHERE k = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def has_block(self, core_id: int, index: int) -> bool:
        if not 0 <= index <= _MAX_INDEX:
            return False
        key = (core_id << _SHIFT) | index
        if key in self._staged_blocks:
            return True
        row = self._check_open().execute("SELECT 1 FROM blocks WHERE k = ?", (key,)).fetchone()
        return row is not None

    def get_node(self, core_id: int, index: int) -> TreeNode | None:
        if index < 0:
            return None
        d = ((index + 1) & -(index + 1)).bit_length() - 1
        g = (index + (1 << d) - 1) >> 1
        if g > _MAX_INDEX:
            return None
        key = (core_id << _SHIFT) | g
        if self._staged_rows:
            staged = self._staged_rows.get(key)
            if staged is not None:
                node = staged.get(d)
                if node is not None:
                    return node
        if key in self._absent:
            return None
        db = self._check_open()
        row = db.execute("SELECT v FROM nodes WHERE k = ?", (key,)).fetchone()
        if row is None:
            self._note_absent(db, key, (core_id + 1) << _SHIFT)
            return None
        raw: bytes = row[0]
        at = d * _ENTRY_SIZE
        if len(raw) > at and raw[at] == d:  # a full group: depth d is entry d
            _, size, h = _ENTRY.unpack_from(raw, at)
            return TreeNode(index, size, h)
        return _unpack_group(g, raw).get(d)

    def _note_absent(self, db: sqlite3.Connection, key: int, limit: int) -> None:
        """Row ``key`` is not stored: remember it, and which of the next rows are not either."""
        absent = self._absent
        if len(absent) > _ABSENT_LIMIT:
            absent.clear()
        stop = min(key + _LOOKAHEAD, limit)
        found = {k for (k,) in db.execute("SELECT k FROM nodes WHERE k > ? AND k < ?", (key, stop))}
        staged = self._staged_rows  # rows a group is about to write are not missing
        for k in range(key, stop):
            if k not in found and k not in staged:
                absent.add(k)

    def get_bitfield_pages(self, core_id: int) -> dict[int, bytes]:
        rows = self._check_open().execute("SELECT page, data FROM bitfield WHERE core = ?", (core_id,))
        pages = {page: bytes(data) for page, data in rows}
        for (core, page), data in self._staged_pages.items():
            if core == core_id:
                pages[page] = data
        return pages

    def get_user_data(self, core_id: int, name: str) -> bytes | None:
        row = (
            self._check_open()
            .execute("SELECT value FROM user_data WHERE core = ? AND name = ?", (core_id, name))
            .fetchone()
        )
        return None if row is None else bytes(row[0])

    def write(self, core_id: int, batch: WriteBatch) -> None:
        db = self._check_open()
        if self._failed is not None:
            raise StorageError("storage refused writes after a failed commit; reopen it", reason=self._failed)
        validate_batch(batch)
        base = core_id << _SHIFT
        grouped = self._group_depth > 0
        if grouped and _only_adds(batch):
            self._stage(db, core_id, batch)
            self._group_batches.append(batch)
            return
        self._absent.clear()
        groups = self._group_nodes(batch.nodes) if batch.nodes else None
        if grouped:
            # Anything but plain additions sees the group's staged writes applied first. Those
            # writes already changed cores in memory: if they cannot reach the transaction, the
            # storage refuses to go on (as when the group's commit fails).
            try:
                self._flush_staged(db)
            except (sqlite3.Error, StorageError) as err:
                self._failed = str(err)
                raise StorageError("writing a group's staged rows failed", reason=str(err)) from err
        try:
            db.execute("SAVEPOINT w" if grouped else "BEGIN IMMEDIATE")
            try:
                staged: dict[int, dict[int, TreeNode]] | None = {} if grouped else None
                if batch.truncate_blocks_from is not None:
                    db.execute(
                        "DELETE FROM blocks WHERE k >= ? AND k < ?",
                        (base + batch.truncate_blocks_from, base + MAX_BLOCKS_PER_CORE),
                    )
                if batch.truncate_nodes_from is not None:
                    self._truncate_nodes(db, base, batch.truncate_nodes_from)
                if batch.delete_nodes:
                    self._delete_nodes(db, base, batch.delete_nodes)
                blocks = batch.blocks
                if len(blocks) == 1:
                    db.execute(
                        "INSERT OR REPLACE INTO blocks (k, data) VALUES (?, ?)",
                        (base + blocks[0][0], blocks[0][1]),
                    )
                elif blocks:
                    db.executemany(
                        "INSERT OR REPLACE INTO blocks (k, data) VALUES (?, ?)",
                        [(base + i, v) for i, v in blocks],
                    )
                if groups is not None:
                    self._write_groups(db, base, *groups, staged=staged)
                if batch.bitfield_pages:
                    db.executemany(
                        "INSERT OR REPLACE INTO bitfield (core, page, data) VALUES (?, ?, ?)",
                        [(core_id, p, d) for p, d in batch.bitfield_pages.items()],
                    )
                for name, value in batch.user_data.items():
                    if value is None:
                        db.execute("DELETE FROM user_data WHERE core = ? AND name = ?", (core_id, name))
                    else:
                        db.execute(
                            "INSERT OR REPLACE INTO user_data (core, name, value) VALUES (?, ?, ?)",
                            (core_id, name, value),
                        )
                if batch.manifest is not None:
                    db.execute("UPDATE cores SET manifest = ? WHERE id = ?", (batch.manifest, core_id))
                if batch.head is not None:
                    _write_head(db, core_id, batch.head)
                db.execute("RELEASE w" if grouped else "COMMIT")
            except BaseException:
                if grouped:
                    db.execute("ROLLBACK TO w")
                    db.execute("RELEASE w")
                elif db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as err:
            raise StorageError("write to storage failed", core_id=core_id, reason=str(err)) from err
        if grouped:
            self._group_batches.append(batch)
            if staged:
                self._staged_rows.update(staged)
        elif self._checkpointer is not None:
            self._after_commit(batch)

    def _stage(self, db: sqlite3.Connection, core_id: int, batch: WriteBatch) -> None:
        """Keep a write of plain additions in memory until the group commits.

        Everything that can fail is checked before anything is staged, so a refused write
        stages nothing (as a rolled-back savepoint would leave nothing).
        """
        if batch.head is not None and core_id not in self._known_cores:
            if db.execute("SELECT 1 FROM cores WHERE id = ?", (core_id,)).fetchone() is None:
                raise StorageError("no such core in storage", core_id=core_id)
            self._known_cores.add(core_id)
        base = core_id << _SHIFT
        entries: list[tuple[int, int, TreeNode]] = []
        for node in batch.nodes:
            index = node.index
            d = ((index + 1) & -(index + 1)).bit_length() - 1
            g = (index + (1 << d) - 1) >> 1
            if g > _MAX_INDEX:
                raise StorageError("tree node is outside the largest possible tree", index=index)
            entries.append((base + g, d, node))
        blocks = self._staged_blocks
        for i, value in batch.blocks:
            blocks[base + i] = value if isinstance(value, bytes) else bytes(value)
        rows = self._staged_rows
        absent = self._absent
        for key, d, node in entries:
            absent.discard(key)
            row = rows.get(key)
            if row is None:
                rows[key] = {d: node}
            else:
                row[d] = node
        for page, data in batch.bitfield_pages.items():
            self._staged_pages[(core_id, page)] = bytes(data)
        if batch.head is not None:
            self._staged_heads[core_id] = batch.head

    @contextlib.contextmanager
    def group(self) -> Iterator[None]:
        """Let the writes made inside share one transaction, committed when the block exits."""
        db = self._check_open()
        if self._group_depth > 0:
            self._group_depth += 1
            try:
                yield
            finally:
                self._group_depth -= 1
            return
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            raise StorageError("cannot start a write group", reason=str(err)) from err
        self._group_depth = 1
        ok = False
        try:
            yield
            ok = True
        finally:
            self._group_depth = 0
            batches, self._group_batches = self._group_batches, []
            try:
                if ok:
                    self._flush_staged(db)
                    db.execute("COMMIT")
                else:
                    self._drop_staged()
                    db.execute("ROLLBACK")
            except (sqlite3.Error, StorageError) as err:
                self._drop_staged()
                # The writes already changed cores in memory: refuse to go on from a state that
                # disk does not have. Reopening the store reloads what was committed.
                self._failed = str(err)
                if db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                if ok:
                    raise StorageError("committing a write group failed", reason=str(err)) from err
            if ok and self._checkpointer is not None:
                for batch in batches:
                    self._after_commit(batch)

    # --- node groups (see the module docstring) --------------------------------------------------

    @staticmethod
    def _group_nodes(
        nodes: Iterable[TreeNode],
    ) -> tuple[list[tuple[int, bytes]], dict[int, dict[int, TreeNode]]]:
        """Split nodes into whole groups (packed, ready to write) and partial ones (to merge).

        An append lists each group's nodes leaf first, then upwards, so a whole group is
        recognised as a run of depths 0, 1, ..., ``trailing_ones(g)``; anything else is partial.
        A node given twice keeps its last value, as with one row per node.
        """
        pack = _ENTRY.pack
        whole: dict[int, bytes] = {}
        partial: dict[int, dict[int, TreeNode]] = {}

        def add_partial(g: int, d: int, node: TreeNode) -> None:
            if g in whole:
                partial[g] = _unpack_group(g, whole.pop(g))
            partial.setdefault(g, {})[d] = node

        run: list[TreeNode] = []
        run_group = -1
        for node in nodes:
            index = node.index
            d = ((index + 1) & -(index + 1)).bit_length() - 1
            g = (index + (1 << d) - 1) >> 1
            if g > _MAX_INDEX:
                raise StorageError("tree node is outside the largest possible tree", index=index)
            if not (g == run_group and d == len(run)):
                for k, pending in enumerate(run):  # an unfinished run: its nodes are pieces
                    add_partial(run_group, k, pending)
                run = []
                run_group = -1
                if d:
                    add_partial(g, d, node)
                    continue
                run_group = g
            run.append(node)
            if len(run) == ((g + 1) & -(g + 1)).bit_length():  # depths 0 ..= trailing_ones(g)
                if g in partial:
                    partial[g].update(enumerate(run))
                else:
                    whole[g] = b"".join([pack(k, n.size, n.hash) for k, n in enumerate(run)])
                run = []
                run_group = -1
        for k, pending in enumerate(run):
            add_partial(run_group, k, pending)
        return list(whole.items()), partial

    def _write_groups(
        self,
        db: sqlite3.Connection,
        base: int,
        whole: list[tuple[int, bytes]],
        partial: dict[int, dict[int, TreeNode]],
        *,
        staged: dict[int, dict[int, TreeNode]] | None = None,
    ) -> None:
        """Write whole groups blindly and merge partial ones into their rows.

        With ``staged`` (inside a write group) merged partial rows go there instead of to the
        database, and rows already staged by earlier writes of the group are merged in memory.
        """
        committed = self._staged_rows
        if staged is not None:
            kept = []
            for g, raw in whole:
                key = base + g
                if key in committed or key in staged:
                    partial.setdefault(g, {}).update(_unpack_group(g, raw))
                else:
                    kept.append((g, raw))
            whole = kept
        if len(whole) == 1:
            db.execute("INSERT OR REPLACE INTO nodes (k, v) VALUES (?, ?)", (base + whole[0][0], whole[0][1]))
        elif whole:
            db.executemany(
                "INSERT OR REPLACE INTO nodes (k, v) VALUES (?, ?)", [(base + g, v) for g, v in whole]
            )
        for g, nodes in partial.items():
            key = base + g
            if staged is not None:
                current = staged.get(key)
                if current is None:
                    current = committed.get(key)
                    current = dict(current) if current is not None else self._read_group(db, key, g)
                current.update(nodes)
                staged[key] = current
                continue
            merged = self._read_group(db, key, g)
            merged.update(nodes)
            db.execute("INSERT OR REPLACE INTO nodes (k, v) VALUES (?, ?)", (key, _pack_group(merged)))

    @staticmethod
    def _read_group(db: sqlite3.Connection, key: int, g: int) -> dict[int, TreeNode]:
        row = db.execute("SELECT v FROM nodes WHERE k = ?", (key,)).fetchone()
        return {} if row is None else _unpack_group(g, row[0])

    def _drop_staged(self) -> None:
        self._staged_rows = {}
        self._staged_blocks = {}
        self._staged_pages = {}
        self._staged_heads = {}

    def _flush_staged(self, db: sqlite3.Connection) -> None:
        """Write what the current group staged (before its commit, or before a write that is not
        a plain addition): one statement per table, plus reads of the node rows to merge into.

        A staged node row that holds every depth its group can have is written blindly; the
        others are merged with the stored row, read in chunks with one query each.
        """
        blocks, self._staged_blocks = self._staged_blocks, {}
        rows, self._staged_rows = self._staged_rows, {}
        pages, self._staged_pages = self._staged_pages, {}
        heads, self._staged_heads = self._staged_heads, {}
        if blocks:
            db.executemany("INSERT OR REPLACE INTO blocks (k, data) VALUES (?, ?)", blocks.items())
        if rows:
            self._absent.difference_update(rows)
            mask = MAX_BLOCKS_PER_CORE - 1
            merge = [key for key, nodes in rows.items() if len(nodes) <= _trailing_ones(key & mask)]
            for at in range(0, len(merge), _READ_CHUNK):
                chunk = merge[at : at + _READ_CHUNK]
                marks = ",".join("?" * len(chunk))
                for key, raw in db.execute(f"SELECT k, v FROM nodes WHERE k IN ({marks})", chunk):
                    stored = _unpack_group(key & mask, raw)
                    stored.update(rows[key])
                    rows[key] = stored
            db.executemany(
                "INSERT OR REPLACE INTO nodes (k, v) VALUES (?, ?)",
                [(key, _pack_group(nodes)) for key, nodes in rows.items()],
            )
        if pages:
            db.executemany(
                "INSERT OR REPLACE INTO bitfield (core, page, data) VALUES (?, ?, ?)",
                [(core, page, data) for (core, page), data in pages.items()],
            )
        for core_id, head in heads.items():
            _write_head(db, core_id, head)

    @staticmethod
    def _rewrite_group(db: sqlite3.Connection, base: int, g: int, keep: dict[int, TreeNode]) -> None:
        if keep:
            db.execute("INSERT OR REPLACE INTO nodes (k, v) VALUES (?, ?)", (base + g, _pack_group(keep)))
        else:
            db.execute("DELETE FROM nodes WHERE k = ?", (base + g,))

    def _truncate_nodes(self, db: sqlite3.Connection, base: int, cut: int) -> None:
        """Delete every node with index >= ``cut``.

        Those nodes sit in groups ``g >= ceil(cut / 2)`` (a span ends at or after its index), and
        such a group is dropped whole unless its deepest nodes start left of ``cut``. At most one
        group per depth is in that case (the first ``g >= ceil(cut / 2)`` with that many trailing
        one-bits), so those few are rewritten and the rest deleted with one range delete.
        """
        lo = (cut + 1) >> 1
        if lo > _MAX_INDEX:
            return
        keep: dict[int, dict[int, TreeNode]] = {}
        for depth in range(_SHIFT + 1):
            g = lo | ((1 << depth) - 1)
            if g > _MAX_INDEX or g in keep:
                continue
            if 2 * g - (1 << depth) + 1 >= cut:
                continue
            row = db.execute("SELECT v FROM nodes WHERE k = ?", (base + g,)).fetchone()
            if row is not None:
                keep[g] = {d: n for d, n in _unpack_group(g, row[0]).items() if n.index < cut}
        db.execute("DELETE FROM nodes WHERE k >= ? AND k < ?", (base + lo, base + MAX_BLOCKS_PER_CORE))
        for g, nodes in keep.items():
            if nodes:
                self._rewrite_group(db, base, g, nodes)

    def _delete_nodes(self, db: sqlite3.Connection, base: int, indexes: Iterable[int]) -> None:
        drop: dict[int, set[int]] = {}
        for index in indexes:
            g, d = _group_of(index)
            if g <= _MAX_INDEX:
                drop.setdefault(g, set()).add(d)
        for g, depths in drop.items():
            row = db.execute("SELECT v FROM nodes WHERE k = ?", (base + g,)).fetchone()
            if row is not None:
                nodes = _unpack_group(g, row[0])
                self._rewrite_group(db, base, g, {d: n for d, n in nodes.items() if d not in depths})

    # --- checkpoints (see the module docstring) --------------------------------------------------

    def _after_commit(self, batch: WriteBatch) -> None:
        """Account for what the commit put in the WAL and start or finish a checkpoint."""
        # Frames are whole pages: ~3 b-tree pages per commit, plus the block bytes.
        blocks = batch.blocks
        self._wal_bytes += 3 * self._page_size + sum([len(v) for _, v in blocks]) + 64 * len(blocks)
        ckpt = self._checkpointer
        assert ckpt is not None
        if ckpt.busy:
            return
        if ckpt.done_at is not None:
            # A round just finished: if little was written meanwhile, copy that little here, so
            # that the WAL is fully copied and the next commit starts it over from the beginning.
            if self._wal_bytes - ckpt.done_at <= _TAIL_BYTES or self._wal_bytes >= _RESTART_BYTES:
                try:
                    busy, log, done = self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error:
                    busy, log, done = 1, 0, 0  # retried with the next round
                if not busy and log == done:
                    self._wal_bytes = 0
                ckpt.done_at = None
                self._next_round = self._wal_bytes + _CHECKPOINT_BYTES
                return
            ckpt.done_at = None
            ckpt.start(self._wal_bytes)
            return
        if self._wal_bytes >= self._next_round:
            ckpt.start(self._wal_bytes)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._checkpointer is not None:
            self._checkpointer.stop()
        try:
            self._db.close()
        except sqlite3.Error as err:
            raise StorageError("closing the storage database failed", reason=str(err)) from err


class _Checkpointer:
    """A thread with its own connection that runs ``PASSIVE`` checkpoints on request.

    ``busy`` is true while a round runs; ``done_at`` is the writer's WAL byte count when the
    last round was requested (so the writer knows how much it added since). A failed round is
    ignored: the next request (or SQLite's own autocheckpoint) tries again.
    """

    def __init__(self, path: str, durability: Durability) -> None:
        self._path = path
        self._durability = durability
        self._wake = threading.Event()
        self._stopping = False
        self.busy = False
        self.done_at: int | None = None
        self._requested_at = 0
        self._thread: threading.Thread | None = None

    def start(self, wal_bytes: int) -> None:
        self.busy = True
        self.done_at = None
        self._requested_at = wal_bytes
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="hyperlobby-checkpoint", daemon=True)
            self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            self.busy = False
            return
        try:
            db.execute("PRAGMA busy_timeout = 100")
            db.execute(f"PRAGMA synchronous = {self._durability.upper()}")
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._stopping:
                    return
                requested = self._requested_at
                with contextlib.suppress(sqlite3.Error):
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                self._flush_files()
                self.done_at = requested
                self.busy = False
        finally:
            db.close()

    def _flush_files(self) -> None:
        """fsync the database and WAL files after a round, here rather than in the writer.

        SQLite syncs the database at the end of a checkpoint only when it copied the WAL to its
        end, which a round never does while the writer keeps appending. Without this, every page
        the rounds copied would be flushed by the writer's own tail checkpoint, on its thread: a
        64 KiB-block download waited 100-280 ms there per WAL restart (about 40 ms with this).
        An extra fsync never weakens a guarantee; a failure is left to SQLite's own syncs.
        """
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                fd = os.open(self._path + suffix, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
