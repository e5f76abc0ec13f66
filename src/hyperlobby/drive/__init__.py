"""Hyperdrive 13 (and Hyperblobs 2): a file system over a Hyperbee and a blobs Hypercore,
byte- and wire-compatible with the JS ``hyperdrive`` package.

Start with :class:`Hyperdrive`; entries and blob ids are in :mod:`hyperlobby.drive.entry`,
blob storage in :mod:`hyperlobby.drive.blobs`, path rules in :mod:`hyperlobby.drive.paths`
and folder mirroring in :mod:`hyperlobby.drive.mirror`.
"""

from hyperlobby.drive.blobs import BLOCK_SIZE, Hyperblobs
from hyperlobby.drive.drive import (
    DiffEntry,
    DownloadStats,
    DriveBatch,
    DriveWatcher,
    Hyperdrive,
    Stat,
    content_key,
    content_manifest,
)
from hyperlobby.drive.entry import BlobId, Entry, EntryValue
from hyperlobby.drive.mirror import FolderCache, MirrorChange, MirrorReport
from hyperlobby.drive.paths import DrivePathError, normalize

__all__ = [
    "BLOCK_SIZE",
    "BlobId",
    "DiffEntry",
    "DownloadStats",
    "DriveBatch",
    "DrivePathError",
    "DriveWatcher",
    "Entry",
    "EntryValue",
    "FolderCache",
    "Hyperblobs",
    "Hyperdrive",
    "MirrorChange",
    "MirrorReport",
    "Stat",
    "content_key",
    "content_manifest",
    "normalize",
]
