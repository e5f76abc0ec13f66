"""flat-tree arithmetic against flat-tree 1.13.0 (golden vectors) and its own invariants."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from conftest import load_vectors
from hyperlobby.core import flat_tree as ft

VECTORS = load_vectors("merkle")


def test_node_relations_match_js() -> None:
    for v in VECTORS["flat"]:
        i = v["index"]
        assert ft.depth(i) == v["depth"], i
        assert ft.offset(i) == v["offset"], i
        assert ft.parent(i) == v["parent"], i
        assert ft.sibling(i) == v["sibling"], i
        assert ft.children(i) == (tuple(v["children"]) if v["children"] is not None else None), i
        assert list(ft.spans(i)) == v["spans"], i
        assert ft.left_span(i) == v["leftSpan"], i
        assert ft.right_span(i) == v["rightSpan"], i
        assert ft.count(i) == v["count"], i
        assert ft.count_leaves(i) == v["countLeaves"], i
        assert ft.index(ft.depth(i), ft.offset(i)) == i


def test_full_roots_match_js() -> None:
    for length, roots in enumerate(VECTORS["fullRoots"]):
        assert ft.full_roots(2 * length) == roots, length


def test_spec_examples() -> None:
    assert ft.parent(0) == 1 and ft.parent(1) == 3 and ft.sibling(1) == 5
    assert ft.spans(7) == (0, 14)
    assert ft.full_roots(6) == [1, 4] and ft.full_roots(10) == [3, 8] and ft.full_roots(16) == [7]
    assert ft.left_child(2) == -1 and ft.right_child(2) == -1 and ft.children(4) is None


def test_full_roots_rejects_odd_and_negative() -> None:
    import pytest

    with pytest.raises(ValueError):
        ft.full_roots(3)
    with pytest.raises(ValueError):
        ft.full_roots(-2)


@given(st.integers(min_value=0, max_value=2**62))
def test_relations_are_consistent(i: int) -> None:
    d = ft.depth(i)
    p = ft.parent(i)
    s = ft.sibling(i)
    assert ft.depth(p) == d + 1 and ft.depth(s) == d
    assert ft.sibling(s) == i and ft.parent(s) == p
    kids = ft.children(p)
    assert kids is not None and i in kids and s in kids
    assert ft.is_left(i) == (i < s)
    lo, hi = ft.spans(p)
    assert lo <= ft.left_span(i) <= ft.right_span(i) <= hi
    assert ft.contains(p, i) and ft.contains(p, s) and not ft.contains(i, s)
    assert ft.root_span_end(i) == ft.right_span(i) + 2
    assert ft.count(i) == 2 * ft.count_leaves(i) - 1


@given(st.integers(min_value=0, max_value=2**40))
def test_full_roots_cover_the_tree(length: int) -> None:
    roots = ft.full_roots(2 * length)
    start = 0
    for r in roots:
        assert ft.left_span(r) == start
        start = ft.right_span(r) + 2
    assert start == 2 * length
    assert sum(ft.count_leaves(r) for r in roots) == length
