"""``hyperlobby drive``: share a folder as a Hyperdrive, and fetch, list or read remote drives.

Commands
--------
``serve DIR``    import DIR into a drive kept in the home store, listen for peers, print the
                 drive's ``hyper://`` URL and the listen address, then keep the drive in step
                 with DIR by polling it (every ``--interval`` seconds, 1 by default: a size and
                 mtime check per file, content read only when those change). Ctrl-C stops.
``get URL DEST`` replicate the drive from ``--peer``, verify, write its files (or the folder or
                 file the URL names) into DEST. Exits 0 only when every file was written.
``ls URL``       list the files under the URL's path.
``cat URL/PATH`` write one file's bytes to stdout.

Where things live: ``--home DIR``, else ``$HYPERLOBBY_HOME``, else ``$XDG_DATA_HOME/hyperlobby``
(``~/.local/share/hyperlobby``). ``serve`` keeps its cores in ``<home>/corestore.db``; the drive
of a folder is the ``db`` core of the store namespace ``drive:<name>`` (``--name``, default the
folder's absolute path), so serving the same folder again gives the same URL. ``get``, ``ls``
and ``cat`` keep nothing: they replicate into a temporary store (``get``: on disk, removed
afterwards; ``ls``/``cat``: in memory).

``--json`` makes every command print machine-readable JSON (one object per line for ``serve``).
A progress bar is drawn only when stdout is a terminal. Errors are one line on stderr, exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from hyperlobby.core.store import Store
from hyperlobby.drive import Entry, Hyperdrive
from hyperlobby.drive.mirror import FolderCache, mirror_drive_to_folder, mirror_folder_to_drive
from hyperlobby.encoding.urls import HyperUrl, parse_url
from hyperlobby.errors import (
    BlockNotAvailableError,
    DriveError,
    HandshakeError,
    HyperlobbyError,
    ProtocolError,
)
from hyperlobby.wire.replication import Replication

STORE_FILE = "corestore.db"
DEFAULT_TIMEOUT = 30.0


class CliError(Exception):
    """A problem to report in one line (no traceback)."""


# --- shared helpers ------------------------------------------------------------------------------


def home_dir(option: str | None) -> Path:
    """``--home``, else ``$HYPERLOBBY_HOME``, else the per-user data dir."""
    if option:
        return Path(option).expanduser()
    env = os.environ.get("HYPERLOBBY_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "hyperlobby"


def parse_address(text: str, what: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) -> (host, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise CliError(f"{what} must look like HOST:PORT (got {text!r})")
    return host.strip("[]"), int(port_text)


def _parse_url(text: str) -> HyperUrl:
    try:
        return parse_url(text)
    except HyperlobbyError as err:
        raise CliError(f"not a drive URL: {text!r} ({err.message})") from None


def _emit(args: argparse.Namespace, obj: dict[str, Any], human: str) -> None:
    if args.json:
        print(json.dumps(obj), flush=True)
    else:
        print(human, flush=True)


class Progress:
    """A one-line progress bar on stdout, drawn only when stdout is a terminal."""

    def __init__(self, total_bytes: int, total_files: int, enabled: bool) -> None:
        self.total_bytes = total_bytes
        self.total_files = total_files
        self.enabled = enabled
        self.bytes = 0
        self.files = 0

    def step(self, size: int) -> None:
        self.files += 1
        self.bytes += size
        if not self.enabled:
            return
        frac = 1.0 if self.total_bytes == 0 else self.bytes / self.total_bytes
        bar = "#" * int(frac * 30)
        sys.stdout.write(
            f"\r[{bar:<30}] {frac * 100:5.1f}%  {self.files}/{self.total_files} files  "
            f"{_mib(self.bytes)}/{_mib(self.total_bytes)}"
        )
        sys.stdout.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stdout.write("\n")
            sys.stdout.flush()


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


async def _open_remote(
    store: Store, url: HyperUrl, peer: str, timeout: float
) -> tuple[Replication, Hyperdrive, Hyperdrive]:
    """Connect to ``peer``, replicate the drive's head; (replication, drive, view at URL version)."""
    host, port = parse_address(peer, "--peer")
    rep = Replication(store)
    drive = Hyperdrive(store, url.key, replication=rep)
    try:
        await rep.connect(host, port, timeout=timeout)
        await drive.update(timeout=timeout)
    except (ProtocolError, HandshakeError) as err:
        await rep.close()
        cause = err.context.get("cause", "")
        raise CliError(f"cannot reach the peer at {host}:{port}: {err.message} {cause}".strip()) from None
    except BlockNotAvailableError:
        await rep.close()
        raise CliError(f"the peer at {host}:{port} did not serve this drive in {timeout:g}s") from None
    except HyperlobbyError:
        await rep.close()
        raise
    view = drive
    if url.version is not None:
        if url.version > drive.version:
            await rep.close()
            raise CliError(f"the peer only has version {drive.version} of this drive, not {url.version}")
        view = drive.checkout(url.version)
    return rep, drive, view


def _run(coro: Coroutine[Any, Any, int]) -> int:
    return asyncio.run(coro)


def _guard(command: str, fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn expected failures into one line on stderr and exit status 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except KeyboardInterrupt:
            return 130
        except CliError as err:
            msg = str(err)
        except HyperlobbyError as err:
            msg = str(err)
        except OSError as err:
            where = f": {err.filename}" if err.filename else ""
            msg = f"{err.strerror or err}{where}"
        except TimeoutError:
            msg = "timed out"
        if getattr(args, "json", False):
            print(json.dumps({"error": msg}), flush=True)
        print(f"hyperlobby drive {command}: error: {msg}", file=sys.stderr)
        return 1

    return run


# --- serve ---------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    return _run(_serve(args))


async def _serve(args: argparse.Namespace) -> int:
    folder = Path(args.dir).expanduser().resolve()
    if not folder.is_dir():
        raise CliError(f"not a folder: {args.dir}")
    home = home_dir(args.home).resolve()
    if home == folder or folder in home.parents:
        raise CliError("the home store must not be inside the served folder (use --home)")
    host, port = parse_address(args.listen, "--listen")
    home.mkdir(parents=True, exist_ok=True)
    store = Store(home / STORE_FILE)
    rep = Replication(store)
    try:
        name = args.name or str(folder)
        drive = Hyperdrive(store.namespace(f"drive:{name}"), replication=rep)
        cache = FolderCache()
        report = mirror_folder_to_drive(folder, drive, cache=cache)
        for problem in report.errors:
            print(f"warning: {problem}", file=sys.stderr)
        bound_host, bound_port = await rep.listen(host, port)
        _emit(
            args,
            {
                "event": "serving",
                "url": drive.url,
                "key": drive.key.hex(),
                "listen": f"{bound_host}:{bound_port}",
                "version": drive.version,
                "files": report.files,
            },
            f"serving {folder}\n{drive.url}\nlistening on {bound_host}:{bound_port} "
            f"({report.files} files, version {drive.version})",
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.interval)
            if stop.is_set():
                break
            if not folder.is_dir():
                print(f"warning: {folder} is gone; keeping the last version", file=sys.stderr)
                continue
            report = mirror_folder_to_drive(folder, drive, cache=cache)
            if report.changes:
                _emit(
                    args,
                    {
                        "event": "synced",
                        "version": drive.version,
                        "added": report.count("add"),
                        "changed": report.count("change"),
                        "removed": report.count("remove"),
                    },
                    f"synced: version {drive.version} (+{report.count('add')} "
                    f"~{report.count('change')} -{report.count('remove')})",
                )
        return 0
    finally:
        await rep.close()
        store.close()


# --- get -----------------------------------------------------------------------------------------


def cmd_get(args: argparse.Namespace) -> int:
    return _run(_get(args))


async def _get(args: argparse.Namespace) -> int:
    url = _parse_url(args.url)
    dest = Path(args.dest).expanduser()
    if dest.exists() and not dest.is_dir():
        raise CliError(f"destination exists and is not a folder: {args.dest}")
    with tempfile.TemporaryDirectory(prefix="hyperlobby-get-") as tmp:
        store = Store(Path(tmp) / "get.db")
        rep: Replication | None = None
        try:
            rep, _drive, view = await _open_remote(store, url, args.peer, args.timeout)
            st = await view.stat_async(url.path, timeout=args.timeout)
            if st is None:
                raise CliError(f"nothing at {url.path} in this drive")
            if st.kind == "directory":
                prefix = url.path
                entries = await view.list_async(prefix, timeout=args.timeout)
            else:
                prefix = url.path.rsplit("/", 1)[0] or "/"
                node = await view.entry_async(url.path, timeout=args.timeout)
                entries = [node] if node is not None else []
            progress = Progress(
                sum(e.value.size for e in entries), len(entries), sys.stdout.isatty() and not args.json
            )
            await view.download_entries(
                entries, timeout=args.timeout, on_entry=lambda e: progress.step(e.value.size)
            )
            progress.done()
            report = _write_entries(view, entries, dest, prefix)
        finally:
            if rep is not None:
                await rep.close()
            store.close()
    complete = not report["errors"]
    _emit(
        args,
        {"url": str(url), "version": view.version, "dest": str(dest), "complete": complete, **report},
        f"{report['files']} files ({_mib(report['bytes'])}) from {url} version {view.version} -> {dest}"
        + ("" if complete else f"\n{len(report['errors'])} problems:\n  " + "\n  ".join(report["errors"])),
    )
    return 0 if complete else 1


def _write_entries(view: Hyperdrive, entries: list[Entry], dest: Path, prefix: str) -> dict[str, Any]:
    """Write ``entries`` (all blocks held) under ``dest``, paths relative to ``prefix``."""
    report = mirror_drive_to_folder(view, dest, prefix, only={e.key for e in entries})
    return {
        "files": report.files,
        "written": len(report.changes),
        "bytes": sum(e.value.size for e in entries),
        "errors": report.errors,
    }


# --- ls / cat ------------------------------------------------------------------------------------


def cmd_ls(args: argparse.Namespace) -> int:
    return _run(_ls(args))


async def _ls(args: argparse.Namespace) -> int:
    url = _parse_url(args.url)
    store = Store(":memory:")
    rep: Replication | None = None
    try:
        rep, _drive, view = await _open_remote(store, url, args.peer, args.timeout)
        entries = await view.list_async(url.path, timeout=args.timeout)
        if not entries:
            node = await view.entry_async(url.path, timeout=args.timeout) if url.path != "/" else None
            entries = [node] if node is not None else []
        rows = [
            {
                "path": e.key,
                "type": "symlink" if e.value.linkname is not None else "file",
                "size": e.value.size,
                "executable": e.value.executable,
                "linkname": e.value.linkname,
                "seq": e.seq,
            }
            for e in entries
        ]
        if args.json:
            print(json.dumps({"url": str(url), "version": view.version, "entries": rows}), flush=True)
        else:
            for r in rows:
                flag = "l" if r["type"] == "symlink" else ("x" if r["executable"] else "-")
                tail = f" -> {r['linkname']}" if r["linkname"] is not None else ""
                print(f"{flag} {r['size']:>12} {r['path']}{tail}")
        return 0
    finally:
        if rep is not None:
            await rep.close()
        store.close()


def cmd_cat(args: argparse.Namespace) -> int:
    return _run(_cat(args))


async def _cat(args: argparse.Namespace) -> int:
    url = _parse_url(args.url)
    if url.path.endswith("/"):
        raise CliError("cat needs a file path in the URL (hyper://KEY/path/to/file)")
    store = Store(":memory:")
    rep: Replication | None = None
    try:
        rep, _drive, view = await _open_remote(store, url, args.peer, args.timeout)
        try:
            data = await view.get_async(url.path, follow=True, timeout=args.timeout)
        except DriveError as err:
            raise CliError(err.message) from None
        if data is None:
            node = await view.entry_async(url.path, timeout=args.timeout)
            if node is not None and node.value.linkname is not None:
                raise CliError(
                    f"{node.key} is a symlink to {node.value.linkname!r}, which names no file in this drive "
                    "(hyperdrive resolves a relative target against the link's own path)"
                )
            raise CliError(f"no such file: {url.path}")
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return 0
    finally:
        if rep is not None:
            await rep.close()
        store.close()


# --- registration --------------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    """Add the ``drive`` command group to the top-level parser's subparsers."""
    group = subparsers.add_parser("drive", help="share and fetch Hyperdrives (folders of files)")
    sub = group.add_subparsers(dest="drive_command", metavar="SUBCOMMAND", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--home", help="store folder (default $HYPERLOBBY_HOME or ~/.local/share/hyperlobby)")
        p.add_argument("--json", action="store_true", help="print machine-readable JSON")

    def remote(p: argparse.ArgumentParser) -> None:
        p.add_argument("--peer", required=True, metavar="HOST:PORT", help="peer serving the drive")
        p.add_argument(
            "--timeout",
            type=float,
            default=DEFAULT_TIMEOUT,
            help="give up after this many seconds without progress (default %(default)s)",
        )

    p = sub.add_parser("serve", help="share a folder as a drive and keep it in sync")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT", help="default %(default)s")
    p.add_argument("--name", help="drive name in the store (default: the folder's absolute path)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between folder scans")
    common(p)
    p.set_defaults(handler=_guard("serve", cmd_serve))

    p = sub.add_parser("get", help="download a drive (or a folder/file of it) into DEST")
    p.add_argument("url", metavar="URL")
    p.add_argument("dest", metavar="DEST")
    remote(p)
    common(p)
    p.set_defaults(handler=_guard("get", cmd_get))

    p = sub.add_parser("ls", help="list the files of a drive")
    p.add_argument("url", metavar="URL")
    remote(p)
    common(p)
    p.set_defaults(handler=_guard("ls", cmd_ls))

    p = sub.add_parser("cat", help="print one file of a drive")
    p.add_argument("url", metavar="URL/PATH")
    remote(p)
    common(p)
    p.set_defaults(handler=_guard("cat", cmd_cat))


__all__ = ["home_dir", "parse_address", "register"]
