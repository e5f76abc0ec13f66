"""Shared rules for the two JSON files of a social archive (profile.json, session.json).

Both files are read from archives we do not control, so reading is defensive in one place: a
size cap checked on the raw bytes *before* anything is parsed, strict UTF-8, JSON without
``NaN``/``Infinity`` or duplicate keys, a top-level object, and integers that JavaScript can
represent exactly (a JS writer and a Python reader must agree on every number). Everything that
goes wrong becomes a :class:`~hyperlobby.errors.ProfileError` naming the field, never another
exception type, so a caller can report and skip one bad friend and carry on.

Archive URLs (friends, the session lobby) are parsed with :func:`parse_url`, which accepts
``dat://`` and ``hyper://`` with a hex or z32 key, and are written in one canonical form,
``hyper://<z32>``: two spellings of the same friend must compare equal.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from typing import Any

from hyperlobby.encoding.ids import encode_id
from hyperlobby.encoding.urls import parse_url
from hyperlobby.errors import InvalidKeyError, ProfileError

MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer a JS reader holds exactly; times and counts above it are refused."""

MAX_NAME_LENGTH = 100
"""Names are shown in lists; a 100-character cap keeps one friend from flooding a screen."""


def archive_key(text: object, field: str) -> bytes:
    """The 32-byte key of an archive URL (``dat://``/``hyper://``, hex or z32, or a bare key).

    A version or a sub-path names a view of an archive, not an archive, so both are refused.
    """
    if not isinstance(text, str):
        raise ProfileError(f"{field} must be a string URL", field=field, type=type(text).__name__)
    try:
        url = parse_url(text.strip())
    except InvalidKeyError as err:
        raise ProfileError(
            f"{field} is not a hyper:// or dat:// archive URL", field=field, url=text[:80]
        ) from err
    if url.version is not None or url.path != "/":
        raise ProfileError(
            f"{field} must name a whole archive (no version or path)", field=field, url=text[:80]
        )
    return url.key


def canonical_url(key: bytes) -> str:
    """The one spelling we write for an archive: ``hyper://<z32 id>``."""
    return "hyper://" + encode_id(key)


def check_name(value: object, field: str = "name") -> str:
    """A display name: a string of 1..100 characters, not blank, without control characters."""
    if not isinstance(value, str):
        raise ProfileError(f"{field} must be a string", field=field, type=type(value).__name__)
    if not value.strip():
        raise ProfileError(f"{field} must not be empty", field=field)
    if len(value) > MAX_NAME_LENGTH:
        raise ProfileError(
            f"{field} is longer than {MAX_NAME_LENGTH} characters", field=field, length=len(value)
        )
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in value):
        raise ProfileError(f"{field} contains control or format characters", field=field)
    return value


def check_int(value: object, field: str, *, low: int = 0, high: int = MAX_SAFE_INTEGER) -> int:
    """An integer (not a bool, not a float) in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProfileError(f"{field} must be an integer", field=field, type=type(value).__name__)
    if not low <= value <= high:
        raise ProfileError(f"{field} is out of range [{low}, {high}]", field=field, value=value)
    return value


def check_bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise ProfileError(f"{field} must be true or false", field=field, type=type(value).__name__)
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ProfileError("duplicate key in JSON object", key=k[:40])
        out[k] = v
    return out


def _no_constant(name: str) -> Any:
    raise ProfileError("JSON contains a non-standard number", value=name)


def load_object(data: bytes | bytearray | memoryview | str, *, what: str, max_bytes: int) -> dict[str, Any]:
    """Parse one JSON object from an archive file, refusing anything a careful reader should."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if len(raw) > max_bytes:
        raise ProfileError(f"{what} is too large", size=len(raw), limit=max_bytes)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ProfileError(f"{what} is not UTF-8 text", position=err.start) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        raise ProfileError(f"{what} is not JSON: {err.msg}", line=err.lineno, column=err.colno) from None
    except RecursionError:
        raise ProfileError(f"{what} is nested too deeply") from None
    if not isinstance(value, dict):
        raise ProfileError(f"{what} must be a JSON object", type=type(value).__name__)
    return value


def check_extra(extra: Mapping[str, Any], known: frozenset[str], what: str) -> dict[str, Any]:
    """Unknown fields, kept as they are so a rewrite never drops another program's data."""
    out = dict(extra)
    if not out:
        return out
    clash = known.intersection(out)
    if clash:
        raise ProfileError(f"{what} extra fields shadow seed fields", fields=sorted(clash))
    try:
        json.dumps(out, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ProfileError(f"{what} extra fields are not JSON", reason=str(err)[:80]) from None
    return out


def dump(obj: Mapping[str, Any], *, indent: int | None) -> bytes:
    """UTF-8 JSON; compact when ``indent`` is None (session.json is rewritten every heartbeat)."""
    separators = (",", ":") if indent is None else (",", ": ")
    return json.dumps(obj, ensure_ascii=False, indent=indent, separators=separators, allow_nan=False).encode()
