"""Drive paths, normalised exactly as JS hyperdrive normalises them (unix-path-resolve).

A drive key is a path string, and two spellings of one path must land on one db key, or a JS
peer and a Python peer would see two different files. So this module reproduces the resolver
hyperdrive uses, quirks included:

* both ``/`` and ``\\`` separate parts; empty parts and ``.`` are dropped; ``..`` pops one part,
  and popping above the root is an error;
* a first part ending in ``:`` (with more parts after it) marks an absolute "URL-ish" path:
  a two-character drive letter (``c:``) or ``file:`` drops just that part, anything else
  (``http:``) drops the first three parts (scheme, the empty part, the host);
* the result starts with ``/``, has single separators and no trailing ``/``.

:func:`normalize` is hyperdrive's name for a file (``/`` itself is refused); :func:`folder`
is the prefix form used for listings, where the root becomes the empty string so that
``folder + "/"`` is the lower bound of the range.
"""

from __future__ import annotations

from hyperlobby.errors import DriveError


class DrivePathError(DriveError, ValueError):
    """A path that cannot name a drive file (``/`` itself, or too many ``..``)."""


def _split(addr: str) -> tuple[bool, list[str]]:
    """(is_absolute, parts) of one address, following the resolver's parse rules."""
    names = addr.replace("\\", "/").split("/")
    if len(names) > 1 and names[0].endswith(":"):
        if len(names[0]) == 2 or names[0] == "file:":
            return True, names[1:]
        return True, names[3:]
    return addr.startswith(("/", "\\")), names


def _join(base: str, names: list[str]) -> str:
    path = base
    for name in names:
        if name in ("", "."):
            continue
        if name == "..":
            if len(path) == 1:
                raise DrivePathError("path climbs above the drive root with '..'")
            path = path[: path.rfind("/")] or "/"
            continue
        path += name if len(path) == 1 else "/" + name
    return path


def resolve(base: str, target: str = "") -> str:
    """Resolve ``target`` against ``base`` (one of them absolute), like unix-path-resolve."""
    if not isinstance(base, str) or not isinstance(target, str):
        raise DrivePathError("paths must be strings")
    t_abs, t_names = _split(target)
    if t_abs:
        return _join("/", t_names)
    b_abs, b_names = _split(base)
    if not b_abs:
        raise DrivePathError("one of the two paths must be absolute", base=base, target=target)
    return _join(_join("/", b_names), t_names)


def normalize(name: str) -> str:
    """The db key of a file named ``name`` (``/a/b``); ``/`` (the root) is not a file."""
    path = resolve("/", name)
    if path == "/":
        raise DrivePathError("the drive root '/' is not a file name", name=name)
    return path


def folder(name: str | None) -> str:
    """A folder as a range prefix: normalised, with the root as ``""``."""
    path = resolve("/", name or "/")
    return "" if path == "/" else path


def resolve_link(link_path: str, target: str) -> str:
    """Where a symlink at ``link_path`` points: a relative target resolves against the link's
    own path taken as a directory (``/d/l`` + ``x`` -> ``/d/l/x``), as hyperdrive does."""
    return resolve(link_path, target)


__all__ = ["DrivePathError", "folder", "normalize", "resolve", "resolve_link"]
