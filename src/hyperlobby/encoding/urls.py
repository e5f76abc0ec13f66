"""``hyper://`` and legacy ``dat://`` URLs.

No package of the pinned JS stack parses these; the grammar is the ecosystem convention
(hyper-sdk, hypercore-fetch, Beaker/Agregore)::

    hyper://<key>[+<version>][/<path>]
    dat://<key>[+<version>][/<path>]

``<key>`` is a 52-character z32 id or 64 hex characters (the host rules of
:func:`hyperlobby.encoding.ids.decode_key`, without its ``pear://`` form). ``+<version>`` picks
a checkout (for Hyperbee/Hyperdrive the version is the core length); it must be a plain
non-negative decimal integer. The path is normalised the way a file system path would be
(``.`` and ``..`` resolved, repeated slashes collapsed, never climbing above the root), always
begins with ``/``, and a trailing slash is kept because it names a directory. Query strings
and fragments are not part of a Hypercore address and are rejected rather than silently
dropped.

:class:`HyperUrl` prints exactly one canonical form: ``hyper://<z32 id>[+version]<path>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from hyperlobby.encoding.ids import HEX_LENGTH, ID_LENGTH, KEY_SIZE, decode_key, encode_id
from hyperlobby.errors import InvalidKeyError

SCHEMES = ("hyper", "dat")


@dataclass(frozen=True, slots=True)
class HyperUrl:
    """A parsed Hypercore address: which core, optionally which version, and a path in it."""

    key: bytes
    version: int | None = None
    path: str = "/"

    def __post_init__(self) -> None:
        if not isinstance(self.key, bytes) or len(self.key) != KEY_SIZE:
            raise InvalidKeyError("a HyperUrl key must be 32 bytes")
        if self.version is not None and (
            not isinstance(self.version, int) or isinstance(self.version, bool) or self.version < 0
        ):
            raise InvalidKeyError("a version must be a non-negative integer", version=self.version)
        if not self.path.startswith("/"):
            raise InvalidKeyError("a path must start with '/'", path=self.path)

    @property
    def id(self) -> str:
        """The z32 id of the key (the canonical host)."""
        return encode_id(self.key)

    @property
    def hex(self) -> str:
        """The key as 64 lowercase hex characters."""
        return self.key.hex()

    def _suffix(self) -> str:
        version = "" if self.version is None else f"+{self.version}"
        return version + self.path

    def __str__(self) -> str:
        return f"hyper://{self.id}{self._suffix()}"

    def dat_url(self) -> str:
        """The legacy Dat form ``dat://<hex>[+version]<path>`` (same key; Dat peers cannot sync it)."""
        return f"dat://{self.hex}{self._suffix()}"

    def with_path(self, path: str) -> HyperUrl:
        """The same core and version with another path (normalised)."""
        return HyperUrl(self.key, self.version, normalize_path(path))

    def with_version(self, version: int | None) -> HyperUrl:
        """The same core and path at another version (``None`` = latest)."""
        return HyperUrl(self.key, version, self.path)


def normalize_path(path: str) -> str:
    """A clean absolute path: ``.``/``..`` resolved, no empty segments, trailing ``/`` kept."""
    parts: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if parts:
                parts.pop()
            continue
        parts.append(segment)
    trailing = path.endswith("/") or path.endswith("/.") or path.endswith("/..") or path in (".", "..")
    clean = "/" + "/".join(parts)
    if trailing and parts:
        clean += "/"
    return clean


def _parse_host(host: str, original: str) -> tuple[bytes, int | None]:
    version: int | None = None
    if "+" in host:
        host, _, text = host.partition("+")
        if not text.isascii() or not text.isdigit():
            raise InvalidKeyError("the version after '+' must be a non-negative integer", url=original[:120])
        version = int(text)
    if len(host) not in (ID_LENGTH, HEX_LENGTH):
        raise InvalidKeyError("the host must be a z32 id or a 64-character hex key", url=original[:120])
    return decode_key(host), version


def parse_url(text: str) -> HyperUrl:
    """Parse a ``hyper://`` / ``dat://`` URL, or a bare key (z32 or hex, optionally ``+version``).

    Raises :class:`InvalidKeyError` for anything that does not name a 32-byte key.
    """
    if not isinstance(text, str):
        raise InvalidKeyError("a URL must be a string", type=type(text).__name__)
    rest = text
    scheme_sep = rest.find("://")
    if scheme_sep >= 0:
        scheme = rest[:scheme_sep].lower()
        if scheme not in SCHEMES:
            raise InvalidKeyError("unsupported URL scheme", scheme=scheme)
        rest = rest[scheme_sep + 3 :]
    if "?" in rest or "#" in rest:
        raise InvalidKeyError("query strings and fragments are not part of a Hypercore URL", url=text[:120])
    host, slash, path = rest.partition("/")
    key, version = _parse_host(host, text)
    return HyperUrl(key, version, normalize_path(slash + path) if slash else "/")


def format_url(key: bytes, version: int | None = None, path: str = "/") -> str:
    """The canonical URL text for a key, version and path."""
    return str(HyperUrl(key, version, normalize_path(path)))
