"""Drive db entries: the JSON value hyperdrive stores for every file, byte-exact with JS.

Theory of operation
-------------------
Each file of a drive is one Hyperbee entry: key ``"files" 00 <normalised path>``, value the
UTF-8 of ``JSON.stringify({executable, linkname, blob, metadata})``. Two peers that write the
same file must produce the same block, so the encoder here reproduces what V8's
``JSON.stringify`` prints rather than what Python's ``json`` module prints:

* keys in a fixed order (``executable, linkname, blob, metadata``; blob ids
  ``blockOffset, byteOffset, blockLength, byteLength[, blockMap]``);
* inside application ``metadata``, object keys that are array indexes (``"0"``, ``"12"``) come
  first in numeric order, then the others in insertion order, as JS objects enumerate them;
* numbers print like JS numbers (``1.0`` is ``1``, ``1e-7`` not ``1e-07``, NaN/Infinity are
  ``null``), strings escape only ``"``, ``\\``, control characters and lone surrogates.

Decoding is lenient about order and missing fields (JS readers are), strict about types: an
entry whose fields have the wrong types raises :class:`~hyperlobby.errors.DriveError` instead
of surfacing later as an ``AttributeError`` deep inside a read.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hyperlobby.errors import DriveError

MAX_SAFE_INTEGER = 2**53 - 1


@dataclass(frozen=True, slots=True)
class BlobId:
    """Where a file's bytes live in the blobs core (hyperblobs' blob id).

    ``block_offset``/``block_length``: the first block and the block count; ``byte_offset``:
    the byte position of the first block in the core; ``byte_length``: the file size. With
    ``block_map`` the ranges describe *map blocks* listing the data blocks (dedup writes).
    """

    block_offset: int
    byte_offset: int
    block_length: int
    byte_length: int
    block_map: bool = False

    def __post_init__(self) -> None:
        for name in ("block_offset", "byte_offset", "block_length", "byte_length"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= MAX_SAFE_INTEGER:
                raise DriveError("a blob id field must be a non-negative integer", field=name, value=v)

    def to_json(self) -> dict[str, Any]:
        """The id as JS spells it (same key order as hyperblobs)."""
        out: dict[str, Any] = {
            "blockOffset": self.block_offset,
            "byteOffset": self.byte_offset,
            "blockLength": self.block_length,
            "byteLength": self.byte_length,
        }
        if self.block_map:
            out["blockMap"] = True
        return out

    @classmethod
    def from_json(cls, raw: Any) -> BlobId:
        if not isinstance(raw, dict):
            raise DriveError("a blob id must be a JSON object", value=repr(raw)[:80])
        return cls(
            _int_field(raw, "blockOffset"),
            _int_field(raw, "byteOffset"),
            _int_field(raw, "blockLength"),
            _int_field(raw, "byteLength"),
            bool(raw.get("blockMap", False)),
        )

    @property
    def block_end(self) -> int:
        """One past the last block of the blob (or of its map)."""
        return self.block_offset + self.block_length


def _int_field(raw: dict[str, Any], name: str) -> int:
    v = raw.get(name, 0)
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise DriveError("a blob id field must be a non-negative integer", field=name, value=repr(v)[:40])
    return v


@dataclass(frozen=True, slots=True)
class EntryValue:
    """The value of one drive entry. A symlink has ``linkname`` and no blob; a file has a blob
    (``None`` only for ``put_entry`` without data)."""

    executable: bool = False
    linkname: str | None = None
    blob: BlobId | None = None
    metadata: Any = None

    @property
    def is_symlink(self) -> bool:
        return self.linkname is not None

    @property
    def size(self) -> int:
        """File size in bytes (0 for symlinks and blob-less entries; a block-mapped blob's
        real size needs its map, see ``Hyperblobs.byte_length``)."""
        return 0 if self.blob is None or self.blob.block_map else self.blob.byte_length

    def encode(self) -> bytes:
        """The exact bytes JS hyperdrive stores for this value."""
        blob = "null" if self.blob is None else js_stringify(self.blob.to_json())
        text = (
            '{"executable":'
            + ("true" if self.executable else "false")
            + ',"linkname":'
            + js_stringify(self.linkname)
            + ',"blob":'
            + blob
            + ',"metadata":'
            + js_stringify(self.metadata)
            + "}"
        )
        return _utf8(text)

    @classmethod
    def decode(cls, data: bytes) -> EntryValue:
        """Parse a stored value (any key order, missing fields default); raise DriveError if the
        bytes are not an entry."""
        try:
            raw = json.loads(data)
        except (ValueError, UnicodeDecodeError) as err:
            raise DriveError("drive entry is not JSON", value=bytes(data[:40])) from err
        if not isinstance(raw, dict):
            raise DriveError("drive entry is not a JSON object", value=bytes(data[:40]))
        executable = raw.get("executable", False)
        if executable is None:
            executable = False
        if not isinstance(executable, bool):
            raise DriveError("drive entry 'executable' is not a boolean", value=repr(executable)[:40])
        linkname = raw.get("linkname")
        if linkname is not None and not isinstance(linkname, str):
            raise DriveError("drive entry 'linkname' is not a string", value=repr(linkname)[:40])
        blob_raw = raw.get("blob")
        blob = None if blob_raw is None else BlobId.from_json(blob_raw)
        return cls(executable, linkname, blob, raw.get("metadata"))

    def to_json(self) -> dict[str, Any]:
        """A plain dict in JS field names (for ``--json`` output and test dumps)."""
        return {
            "executable": self.executable,
            "linkname": self.linkname,
            "blob": None if self.blob is None else self.blob.to_json(),
            "metadata": self.metadata,
        }


@dataclass(frozen=True, slots=True)
class Entry:
    """One file of a drive: ``seq`` is the db block that wrote it, ``key`` its normalised path."""

    seq: int
    key: str
    value: EntryValue


# --- JSON.stringify --------------------------------------------------------------------------


def _utf8(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError as err:  # pragma: no cover - lone surrogates are escaped first
        raise DriveError("entry text is not encodable as UTF-8") from err


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f\ud800-\udfff]')


def _js_string(s: str) -> str:
    if _NEEDS_ESCAPE.search(s) is None:  # the common case: nothing to escape
        return '"' + s + '"'
    out = ['"']
    for ch in s:
        esc = _ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
            continue
        o = ord(ch)
        if o < 0x20 or 0xD800 <= o <= 0xDFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _js_number(x: float) -> str:
    """ECMAScript Number::toString for a finite double."""
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    # repr() is the shortest round-tripping decimal, as JS uses; only the layout differs.
    _, digit_tuple, exponent = Decimal(repr(abs(x))).as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple)).lstrip("0")
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    digits = stripped
    n = len(digits) + exponent  # value = 0.<digits> x 10^n
    k = len(digits)
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        e_text = ("+" if e >= 0 else "-") + str(abs(e))
        body = (digits if k == 1 else digits[0] + "." + digits[1:]) + "e" + e_text
    return sign + body


def _is_array_index(key: str) -> bool:
    return key.isascii() and key.isdigit() and (key == "0" or key[0] != "0") and int(key) < 2**32 - 1


def js_stringify(value: Any) -> str:
    """``JSON.stringify(value)`` as V8 prints it, for JSON-like Python values."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        if abs(value) <= MAX_SAFE_INTEGER:
            return str(value)
        return _js_number(float(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            return "null"
        return _js_number(value)
    if isinstance(value, str):
        return _js_string(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(js_stringify(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = list(value)
        for k in keys:
            if not isinstance(k, str):
                raise DriveError("metadata object keys must be strings", key=repr(k)[:40])
        index_keys = sorted((k for k in keys if _is_array_index(k)), key=int)
        other = [k for k in keys if not _is_array_index(k)]
        return "{" + ",".join(_js_string(k) + ":" + js_stringify(value[k]) for k in index_keys + other) + "}"
    raise DriveError(
        "metadata must be JSON-like (None, bool, number, str, list, dict)", type=type(value).__name__
    )


__all__ = ["BlobId", "Entry", "EntryValue", "js_stringify"]
