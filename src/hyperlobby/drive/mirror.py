"""Mirroring between a local folder and a drive, in either direction.

Theory of operation
-------------------
A mirror compares a *source* tree with a *destination* tree and applies the difference:
``add`` (missing at the destination), ``change`` (content, executable bit or symlink target
differs) and, with ``prune``, ``remove`` (present only at the destination). Files are compared
by size first and by content only when sizes agree, so an unchanged tree costs one read per
file and no writes: mirroring the same folder twice appends nothing to the drive.

Folder -> drive: regular files become files (``executable`` = the owner's execute bit), local
symlinks become drive symlinks with the link text as target; other kinds of files (sockets,
devices) are skipped. A :class:`FolderCache` may be passed to skip re-reading files whose size
and mtime have not changed since the last pass (what ``drive serve`` uses to poll cheaply).

Drive -> folder: the destination must never be written outside ``dest``. Drive paths are
already normalised (no ``..``), but a drive may hold a symlink ``/a -> /etc`` and a file
``/a/x``; so symlinks are created last, and before each file is written its parent is checked
to resolve (``realpath``) inside ``dest``. Entries that cannot be placed (a file where a
folder is needed, an escaping path) are reported in :attr:`MirrorReport.errors` and skipped.
"""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from hyperlobby.drive import paths
from hyperlobby.errors import DriveError

if TYPE_CHECKING:
    from hyperlobby.drive.drive import Hyperdrive
    from hyperlobby.drive.entry import Entry

Op = Literal["add", "change", "remove"]


@dataclass(frozen=True, slots=True)
class MirrorChange:
    """One applied change; ``key`` is the drive path."""

    op: Op
    key: str
    bytes: int = 0


@dataclass(slots=True)
class MirrorReport:
    """Everything one mirror pass did (a mutable accumulator, returned once complete)."""

    changes: list[MirrorChange] = field(default_factory=list)
    files: int = 0
    errors: list[str] = field(default_factory=list)

    def count(self, op: Op) -> int:
        return sum(1 for c in self.changes if c.op == op)


@dataclass(frozen=True, slots=True)
class _Local:
    kind: Literal["file", "symlink"]
    path: Path
    size: int
    mtime_ns: int
    executable: bool
    target: str | None


@dataclass(slots=True)
class FolderCache:
    """(size, mtime_ns, executable) of each file as it was when last imported, by drive path."""

    seen: dict[str, tuple[int, int, bool]] = field(default_factory=dict)


def _scan(root: Path) -> dict[str, _Local]:
    """Every regular file and symlink under ``root``, keyed by relative path with ``/``."""
    out: dict[str, _Local] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        dirnames.sort()
        # os.walk lists symlinks to directories among dirnames; treat them as links, not folders.
        names = sorted(filenames) + [d for d in dirnames if (base / d).is_symlink()]
        dirnames[:] = [d for d in dirnames if not (base / d).is_symlink()]
        for name in names:
            full = base / name
            try:
                st = full.lstat()
            except OSError:
                continue
            rel = full.relative_to(root).as_posix()
            if stat_mod.S_ISLNK(st.st_mode):
                out[rel] = _Local("symlink", full, 0, st.st_mtime_ns, False, os.readlink(full))
            elif stat_mod.S_ISREG(st.st_mode):
                out[rel] = _Local("file", full, st.st_size, st.st_mtime_ns, bool(st.st_mode & 0o100), None)
    return out


def _drive_key(prefix: str, rel: str) -> str:
    return paths.normalize(prefix + "/" + rel)


def mirror_folder_to_drive(
    source: str | Path,
    drive: Hyperdrive,
    prefix: str = "/",
    *,
    prune: bool = True,
    cache: FolderCache | None = None,
    on_change: Callable[[MirrorChange], None] | None = None,
) -> MirrorReport:
    """Make the drive's ``prefix`` folder equal to the local folder ``source``."""
    root = Path(source)
    if not root.is_dir():
        raise DriveError("source is not a folder", path=str(root))
    folder = paths.folder(prefix)
    report = MirrorReport()
    local = _scan(root)
    wanted: set[str] = set()
    for rel, item in local.items():
        try:
            key = _drive_key(folder, rel)
        except DriveError as err:
            report.errors.append(f"{rel}: {err}")
            continue
        wanted.add(key)
        report.files += 1
        try:
            change = _import_one(drive, key, item, cache)
        except OSError as err:
            report.errors.append(f"{rel}: {err.strerror or err}")
            continue
        if change is not None:
            report.changes.append(change)
            if on_change is not None:
                on_change(change)
    if prune:
        for entry in list(drive.list(folder or "/")):
            if entry.key not in wanted:
                drive.delete(entry.key)
                if cache is not None:
                    cache.seen.pop(entry.key, None)
                change = MirrorChange("remove", entry.key)
                report.changes.append(change)
                if on_change is not None:
                    on_change(change)
    return report


def _import_one(drive: Hyperdrive, key: str, item: _Local, cache: FolderCache | None) -> MirrorChange | None:
    existing = drive.entry(key)
    if item.kind == "symlink":
        assert item.target is not None
        if existing is not None and existing.value.linkname == item.target:
            return None
        drive.symlink(key, item.target)
        return MirrorChange("change" if existing is not None else "add", key)
    stamp = (item.size, item.mtime_ns, item.executable)
    if (
        cache is not None
        and existing is not None
        and existing.value.blob is not None
        and cache.seen.get(key) == stamp
    ):
        return None
    data = item.path.read_bytes()
    if (
        existing is not None
        and existing.value.linkname is None
        and existing.value.blob is not None
        and existing.value.executable == item.executable
        and existing.value.blob.byte_length == len(data)
        and not existing.value.blob.block_map
        and drive.get(key) == data
    ):
        if cache is not None:
            cache.seen[key] = stamp
        return None
    drive.put(key, data, executable=item.executable)
    if cache is not None:
        cache.seen[key] = stamp
    return MirrorChange("change" if existing is not None else "add", key, len(data))


def _inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root)
    except ValueError:
        return False
    return True


def mirror_drive_to_folder(
    drive: Hyperdrive,
    dest: str | Path,
    prefix: str = "/",
    *,
    prune: bool = False,
    only: set[str] | None = None,
    on_change: Callable[[MirrorChange], None] | None = None,
) -> MirrorReport:
    """Write the drive's files under ``prefix`` into ``dest`` (blocks must be held locally);
    ``only``: just these drive paths."""
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    real_root = root.resolve()
    folder = paths.folder(prefix)
    report = MirrorReport()
    links = []
    wanted: set[str] = set()
    for entry in drive.list(folder or "/") if only is None else _entries(drive, only):
        if not entry.key.startswith(folder + "/"):
            report.errors.append(f"{entry.key}: not under {folder or '/'}")
            continue
        rel = entry.key[len(folder) + 1 :]
        wanted.add(rel)
        report.files += 1
        if entry.value.linkname is not None:
            links.append((rel, entry))
            continue
        target = root / rel
        if not _inside(real_root, target.parent):
            report.errors.append(f"{entry.key}: refusing to write outside the destination")
            continue
        try:
            change = _export_file(drive, entry.key, rel, target)
        except (OSError, ValueError, DriveError) as err:
            report.errors.append(f"{entry.key}: {err}")
            continue
        if change is not None:
            report.changes.append(change)
            if on_change is not None:
                on_change(change)
    for rel, entry in links:
        target = root / rel
        linkname = entry.value.linkname
        assert linkname is not None
        try:
            if not _inside(real_root, target.parent):
                raise DriveError("refusing to write outside the destination")
            if target.is_symlink() and os.readlink(target) == linkname:
                continue
            existed = target.is_symlink() or target.exists()
            if existed:
                if target.is_dir() and not target.is_symlink():
                    raise DriveError("a folder is in the way of a symlink")
                target.unlink()
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(linkname, target)
        except (OSError, ValueError, DriveError) as err:
            report.errors.append(f"{entry.key}: {err}")
            continue
        change = MirrorChange("change" if existed else "add", entry.key)
        report.changes.append(change)
        if on_change is not None:
            on_change(change)
    if prune:
        for rel, item in _scan(root).items():
            if rel not in wanted:
                item.path.unlink()
                change = MirrorChange("remove", _drive_key(folder, rel))
                report.changes.append(change)
                if on_change is not None:
                    on_change(change)
    return report


def _entries(drive: Hyperdrive, keys: set[str]) -> list[Entry]:
    found = (drive.entry(k) for k in sorted(keys))
    return [e for e in found if e is not None]


def _export_file(drive: Hyperdrive, key: str, rel: str, target: Path) -> MirrorChange | None:
    entry = drive.entry(key)
    assert entry is not None
    data = drive.get(key) or b""
    blob = entry.value.blob
    if blob is not None and not blob.block_map and len(data) != blob.byte_length:
        raise DriveError("file size does not match its entry", expected=blob.byte_length, got=len(data))
    existed = target.exists() or target.is_symlink()
    if existed and target.is_symlink():
        target.unlink()
    elif existed and target.is_file():
        same = target.stat().st_size == len(data) and target.read_bytes() == data
        if same and bool(target.stat().st_mode & 0o100) == entry.value.executable:
            return None
    elif existed:
        raise DriveError("a folder is in the way of a file")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".hyperlobby-part")
    tmp.write_bytes(data)
    mode = 0o755 if entry.value.executable else 0o644
    os.chmod(tmp, mode)
    os.replace(tmp, target)
    return MirrorChange("change" if existed else "add", key, len(data))


__all__ = [
    "FolderCache",
    "MirrorChange",
    "MirrorReport",
    "mirror_drive_to_folder",
    "mirror_folder_to_drive",
]
