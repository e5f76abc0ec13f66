"""hyper:// and dat:// URLs (an ecosystem convention: no JS package to compare with)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hyperlobby.encoding.ids import encode_id
from hyperlobby.encoding.urls import HyperUrl, format_url, normalize_path, parse_url
from hyperlobby.errors import InvalidKeyError

KEY = bytes.fromhex("3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29")
ID = "8pinxxgqs41n4aididenw5apqp1urfmzdztr8jt4abrkdn435ewo"


def test_canonical_forms() -> None:
    url = parse_url(f"hyper://{ID}/")
    assert url == HyperUrl(KEY, None, "/")
    assert str(url) == f"hyper://{ID}/"
    assert url.hex == KEY.hex()
    assert url.id == ID
    assert url.dat_url() == f"dat://{KEY.hex()}/"


@pytest.mark.parametrize(
    ("text", "version", "path"),
    [
        (f"hyper://{ID}", None, "/"),
        (f"hyper://{KEY.hex()}/a/b.txt", None, "/a/b.txt"),
        (f"HYPER://{KEY.hex().upper()}+12/a/", 12, "/a/"),
        (f"dat://{KEY.hex()}+0/x//y/./z/../w", 0, "/x/y/w"),
        (f"hyper://{ID}/../../etc", None, "/etc"),
        (f"{ID}+7", 7, "/"),
        (KEY.hex(), None, "/"),
        (f"{ID}/docs/", None, "/docs/"),
        (f"hyper://{ID}/a/b/..", None, "/a/"),
        (f"hyper://{ID}/%20x", None, "/%20x"),
    ],
)
def test_parse(text: str, version: int | None, path: str) -> None:
    url = parse_url(text)
    assert url.key == KEY
    assert url.version == version
    assert url.path == path
    assert parse_url(str(url)) == url
    assert parse_url(url.dat_url()) == url


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hyper://",
        "hyper://abc",
        f"http://{ID}/",
        f"hyper://{ID}+/x",
        f"hyper://{ID}+-1/x",
        f"hyper://{ID}+1.5/x",
        f"hyper://{ID}+١/x",
        f"hyper://{ID}?q=1",
        f"hyper://{ID}/#frag",
        f"hyper://{ID[:-1]}/",
        f"hyper://{ID.upper()}/",
        f"hyper://{KEY.hex()[:-1]}g/",
        f"pear://{ID}",
        f"hyper://user@{ID}/",
    ],
)
def test_rejects(text: str) -> None:
    with pytest.raises(InvalidKeyError):
        parse_url(text)


def test_record_checks() -> None:
    with pytest.raises(InvalidKeyError):
        HyperUrl(b"x" * 31)
    with pytest.raises(InvalidKeyError):
        HyperUrl(KEY, -1)
    with pytest.raises(InvalidKeyError):
        HyperUrl(KEY, None, "no-slash")
    url = HyperUrl(KEY).with_version(5).with_path("a/b/")
    assert str(url) == f"hyper://{ID}+5/a/b/"
    assert format_url(KEY, 3, "x/../y") == f"hyper://{ID}+3/y"


def test_normalize_path() -> None:
    assert normalize_path("") == "/"
    assert normalize_path("/") == "/"
    assert normalize_path("..") == "/"
    assert normalize_path("a/./b/") == "/a/b/"
    assert normalize_path("//a//b") == "/a/b"


_segment = st.text(
    alphabet=st.characters(blacklist_characters="/?#+", blacklist_categories=("Cs",)), max_size=8
)


@given(
    st.binary(min_size=32, max_size=32),
    st.none() | st.integers(min_value=0, max_value=2**53),
    st.lists(_segment, max_size=5),
)
def test_roundtrip(key: bytes, version: int | None, segments: list[str]) -> None:
    url = HyperUrl(key, version, normalize_path("/".join(segments)))
    assert parse_url(str(url)) == url
    assert parse_url(url.dat_url()) == url
    assert str(url).startswith(f"hyper://{encode_id(key)}")


@given(st.text(max_size=120))
def test_parse_fuzz(text: str) -> None:
    try:
        url = parse_url(text)
    except InvalidKeyError:
        return
    assert len(url.key) == 32
    assert url.path.startswith("/")
