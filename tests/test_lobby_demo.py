"""The session demo runs end to end (both lobby options) and tells the whole story."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperlobby.lobby.demo import lobby_demo


class Lines:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def say(self, who: str, what: str) -> None:
        self.lines.append((who, what))


@pytest.mark.parametrize("kind", ["drive", "log"])
async def test_lobby_demo(tmp_path: Path, kind: str) -> None:
    tl = Lines()
    await lobby_demo(tmp_path, tl, kind=kind)
    text = "\n".join(f"{who} {what}" for who, what in tl.lines)
    assert "carol got 'hi Carol, Bob here'" in text
    assert "bob got 'hello Bob!'" in text
    assert "left the room" in text and "room closed" in text
    assert f"joined over the {kind} lobby" in text
    if kind == "drive":
        assert tl.lines[-2][1].endswith("lobby drive: (empty)")
