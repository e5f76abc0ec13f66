"""Local and remote bitfields against a plain set model (hypothesis) and the wire layout."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hyperlobby.core.bitfield import BITS_PER_PAGE, BYTES_PER_PAGE, Bitfield, RemoteBitfield
from hyperlobby.errors import CoreError, DecodeError

SPAN = 3 * BITS_PER_PAGE + 100
ops = st.lists(
    st.tuples(st.booleans(), st.integers(0, SPAN), st.integers(0, 2 * BITS_PER_PAGE), st.booleans()),
    max_size=12,
)


def model_of(operations: list[tuple[bool, int, int, bool]]) -> tuple[Bitfield, set[int]]:
    bf = Bitfield()
    model: set[int] = set()
    for single, start, length, value in operations:
        if single:
            bf.set(start, value)
            (model.add if value else model.discard)(start)
        else:
            bf.set_range(start, length, value)
            rng = set(range(start, start + length))
            model = model | rng if value else model - rng
    return bf, model


@settings(max_examples=60, deadline=None)
@given(ops, st.integers(0, SPAN))
def test_bitfield_matches_a_set(operations: list[tuple[bool, int, int, bool]], probe: int) -> None:
    bf, model = model_of(operations)
    for i in {probe, probe + 1, 0, BITS_PER_PAGE - 1, BITS_PER_PAGE, *list(model)[:50]}:
        assert bf.get(i) == (i in model)
    above = sorted(i for i in model if i >= probe)
    assert bf.first_set(probe) == (above[0] if above else -1)
    unset = probe
    while unset in model:
        unset += 1
    assert bf.first_unset(probe) == unset
    below = [i for i in model if i <= probe]
    assert bf.last_set(probe) == (max(below) if below else -1)
    assert bf.last_set() == (max(model) if model else -1)
    assert bf.count() == len(model)
    assert bf.count(probe, 1000) == len([i for i in model if probe <= i < probe + 1000])
    runs = list(bf.ranges())
    assert sum(e - s for s, e in runs) == len(model)
    assert all(s < e for s, e in runs) and all(a[1] < b[0] for a, b in itertools.pairwise(runs))
    assert {i for s, e in runs for i in range(s, e)} == model
    clipped = list(bf.ranges(probe, probe + 5000))
    assert {i for s, e in clipped for i in range(s, e)} == {i for i in model if probe <= i < probe + 5000}
    # persistence round trip
    pages = bf.to_pages()
    assert all(len(p) == BYTES_PER_PAGE for p in pages.values())
    again = Bitfield.from_pages(pages)
    assert again.to_pages() == pages and again.count() == len(model)
    # wire words
    start = (probe // 32) * 32
    words = bf.words(start, 100)
    assert len(words) == 4
    for k, w in enumerate(words):
        for j in range(32):
            i = start + 32 * k + j
            assert bool(w >> j & 1) == (i in model and i < start + 100)


@settings(max_examples=40, deadline=None)
@given(ops, st.integers(0, SPAN), st.integers(0, 3 * BITS_PER_PAGE), st.booleans())
def test_preview_does_not_mutate(
    operations: list[tuple[bool, int, int, bool]], start: int, length: int, value: bool
) -> None:
    bf, _ = model_of(operations)
    before = bf.to_pages()
    pages = bf.preview_set_range(start, length, value)
    assert bf.to_pages() == before
    expected = Bitfield.from_pages(before)
    expected.set_range(start, length, value)
    bf.apply_pages(pages)
    assert bf.to_pages() == expected.to_pages()


def test_contiguous_and_clear() -> None:
    bf = Bitfield()
    bf.set_range(0, 40000)
    assert bf.contiguous_length() == 40000
    bf.apply_pages(bf.preview_clear_range(10, 5))
    assert bf.contiguous_length() == 10 and bf.first_unset(15) == 40000 and bf.first_set(10) == 15
    bf.set_range(0, 40000, False)
    assert bf.to_pages() == {} and bf.first_set() == -1


def test_bad_input() -> None:
    bf = Bitfield()
    with pytest.raises(DecodeError):
        Bitfield.from_pages({0: b"\x00" * 10})
    with pytest.raises(CoreError):
        bf.set_range(-1, 3)
    with pytest.raises(CoreError):
        bf.words(3, 10)
    assert not bf.get(-5)


def test_wire_layout_spec_vector() -> None:
    # hypercore.md §5: bitfield{start 32, words [0x80000001]} = blocks 32 and 63.
    bf = Bitfield()
    bf.set(32)
    bf.set(63)
    assert bf.words(32, 32) == (0x80000001,)
    assert bf.page(0)[4:8] == (0x80000001).to_bytes(4, "little")
    remote = RemoteBitfield()
    assert remote.on_bitfield(32, (0x80000001,))
    assert [i for i in range(100) if remote.has(i)] == [32, 63]
    assert not remote.on_bitfield(33, (1,))


def test_remote_range_rules() -> None:
    r = RemoteBitfield()
    r.on_range(0, 10)
    assert r.contiguous_length == 10 and r.has(9) and not r.has(10)
    r.on_range(10, 1)
    assert r.contiguous_length == 11
    r.on_range(20, 5)
    assert r.has(22) and not r.has(19) and r.first_missing(0) == 11
    r.on_range(3, 2, drop=True)  # drop [3, 5): the rest of the old contiguous run stays known
    assert r.contiguous_length == 3
    assert [i for i in range(12) if r.has(i)] == [0, 1, 2, 5, 6, 7, 8, 9, 10]
    r.on_range(21, 1, drop=True)
    assert not r.has(21) and r.has(22)
    r.on_range(0, 64)
    # a bitfield message is the truth for its span, even below the contiguous length
    r.on_bitfield(32, (0,))
    assert r.contiguous_length == 32 and not r.has(40)
    with pytest.raises(DecodeError):
        r.on_range(-1, 2)
    with pytest.raises(DecodeError):
        r.on_bitfield(0, (1 << 32,))


def test_remote_bounds_memory() -> None:
    r = RemoteBitfield(max_length=1000)
    r.on_range(0, 1 << 50)
    r.on_range(5, 1, drop=True)  # would need 2^50 explicit bits
    assert r.has(4) and not r.has(5) and r.has(999) and not r.has(1000)
    r.on_range(2000, 1 << 40)
    assert not r.has(2000)
