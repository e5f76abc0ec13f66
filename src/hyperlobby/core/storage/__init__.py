"""Where a Store keeps its cores: the backend protocol, SQLite (default) and in-memory."""

from hyperlobby.core.storage.base import (
    EMPTY_HEAD,
    CoreRecord,
    Head,
    StorageBackend,
    WriteBatch,
    validate_batch,
)
from hyperlobby.core.storage.memory import MemoryStorage
from hyperlobby.core.storage.sqlite import Durability, SqliteStorage

__all__ = [
    "EMPTY_HEAD",
    "CoreRecord",
    "Durability",
    "Head",
    "MemoryStorage",
    "SqliteStorage",
    "StorageBackend",
    "WriteBatch",
    "validate_batch",
]
