"""Both lobby options end to end on loopback: admission, signaling, WebRTC, cleanup."""

from __future__ import annotations

import pytest

from hyperlobby.errors import AdmissionRefused
from hyperlobby.lobby import join
from lobby_helpers import close_user, connect, guest_side, host, leave, make_user, rtc_guest, until

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
