"""The swarm's ``make demo`` stage runs end to end, and its JS step really reads the log."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import node_binary
from hyperlobby.swarm.hyperswarm.demo import swarm_demo


@pytest.mark.interop
async def test_swarm_demo_runs_and_js_agrees(tmp_path: Path) -> None:
    node_binary()
    lines: list[tuple[str, str]] = []
    await swarm_demo(tmp_path, lambda who, what: lines.append((who, what)))
    text = "\n".join(f"{who}: {what}" for who, what in lines)
    assert "bob:   #2: only the log's key" in text
    assert "read her log: identical" in text
    assert "skipping" not in text
