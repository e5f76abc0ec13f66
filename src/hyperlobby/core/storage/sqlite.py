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
* ``nodes(core, idx, size, hash)``, ``bitfield(core, page, data)``, ``user_data(core, name,
  value)``: small rows, stored ``WITHOUT ROWID`` so the primary key is the b-tree itself.

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

Speed: the WAL is checkpointed every ~40 MiB (``_WAL_CHECKPOINT_PAGES``), not every 4 MiB,
because each checkpoint fsyncs. An in-order append writes no bitfield page (the contiguous
length lives in the head row). Statements are fixed strings, so the ``sqlite3`` module's
statement cache prepares each once; multi-row writes go through ``executemany``; there is no
schema work after open.

Threads: the connection is created with ``check_same_thread=False`` so an asyncio program may
use it from an executor thread, but callers must not use one Store from two threads at once.
"""

from __future__ import annotations

import sqlite3
import struct
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
_WAL_CHECKPOINT_PAGES = 10_000
"""Checkpoint the WAL every ~40 MiB instead of SQLite's 4 MiB: a checkpoint is an fsync even in
``normal`` mode, and at the default it dominated the cost of small appends (measured ~1.5x)."""
_ROOT = struct.Struct("<QQ32s")
_MAX_INDEX = MAX_BLOCKS_PER_CORE - 1

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
    """CREATE TABLE nodes (
        core INTEGER NOT NULL, idx INTEGER NOT NULL, size INTEGER NOT NULL, hash BLOB NOT NULL,
        PRIMARY KEY (core, idx)
    ) WITHOUT ROWID""",
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
    return b"".join(_ROOT.pack(r.index, r.size, r.hash) for r in roots)


def unpack_roots(raw: bytes) -> tuple[TreeNode, ...]:
    if len(raw) % _ROOT.size:
        raise StorageError("stored roots are corrupt", length=len(raw))
    return tuple(TreeNode(i, s, h) for i, s, h in _ROOT.iter_unpack(raw))


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
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if self.path != ":memory:" and str(mode).lower() != "wal":
                raise StorageError("could not switch the database to WAL mode", path=self.path, mode=mode)
            self._db.execute(f"PRAGMA synchronous = {durability.upper()}")
            self._db.execute("PRAGMA cache_size = -65536")
            self._db.execute(f"PRAGMA wal_autocheckpoint = {_WAL_CHECKPOINT_PAGES}")
            self._db.execute("PRAGMA temp_store = MEMORY")
            self._init_schema()
        except sqlite3.Error as err:
            raise StorageError("cannot open the storage database", path=self.path, reason=str(err)) from err
        self._closed = False

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
        row = (
            self._check_open()
            .execute("SELECT data FROM blocks WHERE k = ?", ((core_id << _SHIFT) | index,))
            .fetchone()
        )
        return None if row is None else row[0]

    def has_block(self, core_id: int, index: int) -> bool:
        if not 0 <= index <= _MAX_INDEX:
            return False
        row = (
            self._check_open()
            .execute("SELECT 1 FROM blocks WHERE k = ?", ((core_id << _SHIFT) | index,))
            .fetchone()
        )
        return row is not None

    def get_node(self, core_id: int, index: int) -> TreeNode | None:
        row = (
            self._check_open()
            .execute("SELECT size, hash FROM nodes WHERE core = ? AND idx = ?", (core_id, index))
            .fetchone()
        )
        return None if row is None else TreeNode(index, row[0], row[1])

    def get_bitfield_pages(self, core_id: int) -> dict[int, bytes]:
        rows = self._check_open().execute("SELECT page, data FROM bitfield WHERE core = ?", (core_id,))
        return {page: bytes(data) for page, data in rows}

    def get_user_data(self, core_id: int, name: str) -> bytes | None:
        row = (
            self._check_open()
            .execute("SELECT value FROM user_data WHERE core = ? AND name = ?", (core_id, name))
            .fetchone()
        )
        return None if row is None else bytes(row[0])

    def write(self, core_id: int, batch: WriteBatch) -> None:
        db = self._check_open()
        validate_batch(batch)
        base = core_id << _SHIFT
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                if batch.truncate_blocks_from is not None:
                    db.execute(
                        "DELETE FROM blocks WHERE k >= ? AND k < ?",
                        (base + batch.truncate_blocks_from, base + MAX_BLOCKS_PER_CORE),
                    )
                if batch.truncate_nodes_from is not None:
                    db.execute(
                        "DELETE FROM nodes WHERE core = ? AND idx >= ?", (core_id, batch.truncate_nodes_from)
                    )
                if batch.delete_nodes:
                    db.executemany(
                        "DELETE FROM nodes WHERE core = ? AND idx = ?",
                        [(core_id, n) for n in batch.delete_nodes],
                    )
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
                if batch.nodes:
                    db.executemany(
                        "INSERT OR REPLACE INTO nodes (core, idx, size, hash) VALUES (?, ?, ?, ?)",
                        [(core_id, n.index, n.size, n.hash) for n in batch.nodes],
                    )
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
                head = batch.head
                if head is not None:
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
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as err:
            raise StorageError("write to storage failed", core_id=core_id, reason=str(err)) from err

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._db.close()
        except sqlite3.Error as err:
            raise StorageError("closing the storage database failed", reason=str(err)) from err
