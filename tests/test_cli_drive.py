"""``hyperlobby drive`` end to end: serve a folder in a subprocess, get/ls/cat it from others.

Every process is killed on teardown; every wait is bounded; only 127.0.0.1 is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from drive_helpers import gen
from hyperlobby.cli import main
from hyperlobby.cli.drive import home_dir, parse_address

WAIT = 30.0


def cli_argv(*args: str) -> list[str]:
    # The console script's code path, without depending on where the venv put the script.
    return [
        sys.executable,
        "-c",
        "import sys; from hyperlobby.cli import main; sys.exit(main())",
        "drive",
        *args,
    ]


async def run_cli(*args: str, timeout: float = WAIT) -> tuple[int, bytes, str]:
    proc = await asyncio.create_subprocess_exec(
        *cli_argv(*args), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out, err.decode(errors="replace")


async def next_json(proc: asyncio.subprocess.Process, event: str) -> dict[str, Any]:
    assert proc.stdout is not None

    async def read() -> dict[str, Any]:
        assert proc.stdout is not None
        while True:
            line = await proc.stdout.readline()
            if not line:
                raise AssertionError(f"serve exited before {event!r}")
            obj: dict[str, Any] = json.loads(line)
            if obj.get("event") == event:
                return obj

    return await asyncio.wait_for(read(), WAIT)


def tree(root: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_file():
            out[rel] = ("file", p.read_bytes(), bool(p.stat().st_mode & 0o100))
    return out


async def test_serve_get_ls_cat(tmp_path: Path) -> None:
    src = tmp_path / "share"
    (src / "docs" / "deep").mkdir(parents=True)
    (src / "hello.txt").write_bytes(b"hello\n")
    (src / "docs" / "deep" / "big.bin").write_bytes(gen(300_000, 7))
    (src / "run.sh").write_bytes(b"#!/bin/sh\n")
    (src / "run.sh").chmod(0o755)
    (src / "empty").write_bytes(b"")
    os.symlink("hello.txt", src / "link")

    serve = await asyncio.create_subprocess_exec(
        *cli_argv("serve", str(src), "--home", str(tmp_path / "home"), "--json", "--interval", "0.2"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        info = await next_json(serve, "serving")
        url, peer = info["url"], info["listen"]
        assert url.startswith("hyper://") and peer.startswith("127.0.0.1:")

        dest = tmp_path / "dest"
        rc, out, err = await run_cli("get", url, str(dest), "--peer", peer, "--json")
        assert rc == 0, err
        result = json.loads(out)
        assert result["complete"] and result["files"] == 5
        assert tree(dest) == tree(src)

        rc, out, err = await run_cli("ls", url, "--peer", peer, "--json")
        assert rc == 0, err
        paths = [e["path"] for e in json.loads(out)["entries"]]
        assert paths == ["/docs/deep/big.bin", "/empty", "/hello.txt", "/link", "/run.sh"]

        rc, out, err = await run_cli("cat", url + "docs/deep/big.bin", "--peer", peer)
        assert rc == 0, err
        assert out == gen(300_000, 7)

        # The folder changes while serving: the drive follows (polling), a new get sees it.
        (src / "hello.txt").write_bytes(b"hello again\n")
        (src / "run.sh").unlink()
        (src / "docs" / "new.txt").write_bytes(b"new")
        applied = 0
        while applied < 3:  # the poller may see the three changes in one pass or several
            synced = await next_json(serve, "synced")
            applied += synced["added"] + synced["changed"] + synced["removed"]
        dest2 = tmp_path / "dest2"
        rc, out, err = await run_cli("get", url, str(dest2), "--peer", peer)
        assert rc == 0, err
        assert tree(dest2) == tree(src)

        # One file, and one folder, by URL path.
        rc, _, err = await run_cli("get", url + "docs/new.txt", str(tmp_path / "one"), "--peer", peer)
        assert rc == 0, err
        assert (tmp_path / "one" / "new.txt").read_bytes() == b"new"
        rc, _, err = await run_cli("get", url + "docs/", str(tmp_path / "sub"), "--peer", peer)
        assert rc == 0, err
        assert sorted(tree(tmp_path / "sub")) == ["deep/big.bin", "new.txt"]

        # Errors: one line, exit 1, no traceback.
        for args in (
            ("cat", url + "missing.txt", "--peer", peer),
            ("cat", "hyper://not-a-key/x", "--peer", peer),
            ("get", url + "nothing/", str(tmp_path / "x"), "--peer", peer),
            ("ls", url, "--peer", "127.0.0.1:1", "--timeout", "5"),
            ("ls", url, "--peer", "no-port"),
        ):
            rc, _, err = await run_cli(*args)
            assert rc == 1, (args, err)
            assert "Traceback" not in err and "error:" in err, err
    finally:
        if serve.returncode is None:
            serve.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(serve.wait(), 10)
            except TimeoutError:
                serve.kill()
                await serve.wait()
    assert serve.returncode == 0
    assert serve.stderr is not None
    assert b"Traceback" not in await serve.stderr.read()


async def test_serve_errors(tmp_path: Path) -> None:
    rc, _, err = await run_cli("serve", str(tmp_path / "missing"), "--home", str(tmp_path / "h"))
    assert rc == 1 and "not a folder" in err
    (tmp_path / "share").mkdir()
    rc, _, err = await run_cli("serve", str(tmp_path / "share"), "--home", str(tmp_path / "share" / "h"))
    assert rc == 1 and "home" in err
    rc, _, err = await run_cli("serve", str(tmp_path / "share"), "--listen", "nonsense")
    assert rc == 1 and "HOST:PORT" in err


def test_helpers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HYPERLOBBY_HOME", str(tmp_path / "env"))
    assert home_dir(None) == tmp_path / "env"
    assert home_dir(str(tmp_path / "opt")) == tmp_path / "opt"
    monkeypatch.delenv("HYPERLOBBY_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert home_dir(None) == tmp_path / "xdg" / "hyperlobby"
    assert parse_address("127.0.0.1:80", "x") == ("127.0.0.1", 80)
    assert parse_address("[::1]:80", "x") == ("::1", 80)
    with contextlib.suppress(SystemExit):
        assert main(["drive", "--help"]) == 0
