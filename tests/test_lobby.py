"""Both lobby options end to end on loopback: admission, signaling, WebRTC, cleanup."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from hyperlobby.errors import AdmissionRefused, DecodeError
from hyperlobby.lobby import (
    HOST_FILE,
    DriveGuestLobby,
    DriveHostLobby,
    LogGuestLobby,
    LogHostLobby,
    admitted_path,
    answer_path,
    join,
    offer_path,
)
from hyperlobby.lobby.lobby import _entry as _log_entry
from hyperlobby.lobby.lobby import parse_entry, signer_of
from hyperlobby.lobby.protocol import SignalRecord
from hyperlobby.rtc import Closed
from lobby_helpers import WAIT, close_user, connect, guest_side, host, leave, make_user, rtc_guest, until

KINDS = ["drive", "log"]


@pytest.mark.parametrize("kind", KINDS)
async def test_join_talk_leave(kind: str) -> None:
    h = await make_user("host", listen=True)
    a = await make_user("alice")
    hosted = await host(h, kind, max_peers=2)
    try:
        await connect(a, h)
        lobby = guest_side(a, kind, hosted.lobby.key)
        guest = rtc_guest(a)
        await join(lobby, guest)
        await until(lambda: hosted.rtc.peers == 1, "host counts the guest")
        guest.send("hello")
        await until(lambda: a.gid in hosted.lobby.machine.members, "member")
        await leave(guest)
        await until(lambda: hosted.rtc.peers == 0, "guest left")
        await until(lambda: a.gid not in hosted.lobby.machine.members, "place freed")
    finally:
        await hosted.session.close()
        await close_user(a)
        await close_user(h)


@pytest.mark.parametrize("kind", KINDS)
async def test_wrong_password_refused(kind: str) -> None:
    h = await make_user("host", listen=True)
    a = await make_user("alice")
    hosted = await host(h, kind, password="sesame")
    try:
        await connect(a, h)
        lobby = guest_side(a, kind, hosted.lobby.key, password="wrong")
        with pytest.raises(AdmissionRefused) as info:
            await join(lobby, rtc_guest(a))
        assert info.value.reason == "password"
    finally:
        await hosted.session.close()
        await close_user(a)
        await close_user(h)


@pytest.mark.parametrize("kind", KINDS)
async def test_full_session_refused(kind: str) -> None:
    h = await make_user("host", listen=True)
    a = await make_user("alice")
    b = await make_user("bob")
    hosted = await host(h, kind, max_peers=1)
    ga = rtc_guest(a)
    try:
        for u in (a, b):
            await connect(u, h)
        await join(guest_side(a, kind, hosted.lobby.key), ga)
        with pytest.raises(AdmissionRefused) as info:
            await join(guest_side(b, kind, hosted.lobby.key), rtc_guest(b))
        assert info.value.reason == "full"
        assert "full" in str(info.value)
        assert hosted.kinds("refused") == [b.gid]
    finally:
        await leave(ga)
        await hosted.session.close()
        for u in (a, b, h):
            await close_user(u)


@pytest.mark.parametrize("kind", KINDS)
async def test_password(kind: str) -> None:
    h = await make_user("host", listen=True)
    a = await make_user("alice")
    b = await make_user("bob")
    hosted = await host(h, kind, password="open sesame")
    ga = rtc_guest(a)
    try:
        for u in (a, b):
            await connect(u, h)
        with pytest.raises(AdmissionRefused) as info:
            await join(guest_side(b, kind, hosted.lobby.key), rtc_guest(b))  # no password at all
        assert info.value.reason == "password"
        await join(guest_side(a, kind, hosted.lobby.key, password="open sesame"), ga)
        await until(lambda: hosted.rtc.peers == 1, "admitted with the right password")
        # Nothing in the lobby archive derives from the password.
        blob = b"".join(_archive_blocks(hosted))
        assert b"open sesame" not in blob and hosted.lobby.machine.password_key not in blob
    finally:
        await leave(ga)
        await hosted.session.close()
        for u in (a, b, h):
            await close_user(u)


def _archive_blocks(hosted: Any) -> list[bytes]:
    lobby = hosted.lobby
    cores = [lobby.drive.core, lobby.drive.blobs.core] if isinstance(lobby, DriveHostLobby) else [lobby.core]
    return [c.get(i) for c in cores for i in range(c.length)]


@pytest.mark.parametrize("kind", KINDS)
async def test_transient_files_gone_and_views(kind: str) -> None:
    h = await make_user("host", listen=True)
    a = await make_user("alice")
    hosted = await host(h, kind)
    ga = rtc_guest(a)
    try:
        await connect(a, h)
        lobby = guest_side(a, kind, hosted.lobby.key)
        await join(lobby, ga)
        await until(lambda: a.gid in hosted.kinds("connected"), "host saw the connection")
        if isinstance(hosted.lobby, DriveHostLobby):
            assert isinstance(lobby, DriveGuestLobby)
            names = {e.key for e in hosted.lobby.drive.list("/")}
            assert names == {HOST_FILE, admitted_path(a.gid)}
            assert lobby.writer.entry(offer_path(a.gid)) is None
            assert answer_path(a.gid) not in hosted.lobby.files()
        else:
            assert isinstance(hosted.lobby, LogHostLobby) and isinstance(lobby, LogGuestLobby)
            kinds = [parse_entry(hosted.lobby.core.get(i))[0] for i in range(hosted.lobby.core.length)]
            assert kinds == ["hello", "admit", "answer", "connected"]
            await until(lambda: lobby.writer.length == 2, "guest marks its offer done")
            assert [parse_entry(lobby.writer.get(i))[0] for i in range(2)] == ["offer", "connected"]
            # The merged view puts the guest's offer after the admit it saw and before the answer.
            host_key, guest_key = hosted.lobby.key, lobby.writer_key
            await until(lambda: len(hosted.lobby.order) == 6, "merge delivered both logs")
            order = hosted.lobby.order
            assert order.index((guest_key, 0)) > order.index((host_key, 1))  # after the admit it saw
            assert order.index((guest_key, 0)) < order.index((host_key, 2))  # before the answer
        await leave(ga)
        await until(lambda: hosted.rtc.peers == 0, "left")
        if isinstance(hosted.lobby, DriveHostLobby):
            await until(lambda: hosted.lobby.drive.entry(admitted_path(a.gid)) is None, "admission removed")
    finally:
        await leave(ga)
        await hosted.session.close()
        await close_user(a)
        await close_user(h)


@pytest.mark.parametrize("kind", KINDS)
async def test_forged_answer_and_replayed_offer_ignored(kind: str) -> None:
    h = await make_user("host", listen=True)
    a = await make_user("alice")
    m = await make_user("mallory")
    hosted = await host(h, kind)
    ga, gm = rtc_guest(a), rtc_guest(m)
    try:
        for u in (a, m):
            await connect(u, h)
        mal = guest_side(m, kind, hosted.lobby.key)
        await join(mal, gm)
        # Mallory writes an answer for Alice, sealed to Alice's writer, in the only place she can.
        ali = guest_side(a, kind, hosted.lobby.key)
        record = await ali.host_record()
        forged = SignalRecord(hosted.lobby.key, record.epoch, a.gid, "answer", 1, b'{"type":"answer"}').seal(
            mal.writer_pair, ali.writer_pair.public_key
        )
        if isinstance(mal, DriveGuestLobby):
            mal.writer.put(answer_path(a.gid), forged)
        else:
            assert isinstance(mal, LogGuestLobby)
            mal.writer.append(_log_entry("answer", {}, guest=a.gid, sealed=base64.b64encode(forged).decode()))
        host_signer = signer_of(ali.lobby_core)
        assert host_signer is not None
        with pytest.raises(DecodeError):
            SignalRecord.open(forged, ali.writer_pair, host_signer)
        await join(ali, ga)  # Alice connects with the host's real answer
        await until(lambda: hosted.rtc.peers == 2, "both in")

        # Replays: an offer of Alice's from another session, and her own offer again.
        before = len(hosted.kinds("offer"))
        old = SignalRecord(hosted.lobby.key, os.urandom(16), a.gid, "offer", 1000, b"{}")
        reasons = lambda: [e.detail for e in hosted.events if e.kind == "ignored" and e.guest == a.gid]  # noqa: E731
        ali._write_offer(old.seal(ali.writer_pair, host_signer))
        a.replication.flush()
        await until(lambda: "offer from another session" in reasons(), "old-session offer ignored")
        again = SignalRecord(hosted.lobby.key, record.epoch, a.gid, "offer", ali.seq, b"{}")
        ali._write_offer(again.seal(ali.writer_pair, host_signer))
        a.replication.flush()
        await until(lambda: "offer already seen (replay)" in reasons(), "replay ignored")
        assert len(hosted.kinds("offer")) == before
        assert hosted.rtc.peers == 2
    finally:
        await leave(ga)
        await leave(gm)
        await hosted.session.close()
        for u in (a, m, h):
            await close_user(u)


@pytest.mark.parametrize("kind", KINDS)
async def test_host_crash_guests_notice(kind: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).parent / "lobby_host_proc.py"),
        kind,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
    )
    a = await make_user("alice")
    guest = rtc_guest(a, host_timeout=2.0)
    try:
        assert proc.stdout is not None
        info = json.loads(await asyncio.wait_for(proc.stdout.readline(), WAIT))
        await a.replication.connect("127.0.0.1", info["port"])
        await join(guest_side(a, kind, bytes.fromhex(info["key"])), guest)
        proc.kill()
        await proc.wait()
        while True:
            event = await guest.next_event(WAIT)
            if isinstance(event, Closed):
                break
        assert guest.closed
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await leave(guest)
        await close_user(a)
