"""`mail.foldering` and `mail.layout`: the seed's paths, each of its examples literally."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mail.errors import BadName
from mail.foldering import (
    BadLayout,
    DomainShape,
    Method,
    Shape,
    StoreShape,
    check_fast,
    fast_index,
    shapes,
)
from mail.layout import SETTINGS, FixedShapes, Layout
from mail.names import account_name, domain_name

pytestmark = pytest.mark.timeout(30)

ROOT = Path("/var/CommuniGate")


def layout(
    domain_foldering: str = "none", account_foldering: str = "none", fast: int = 0
) -> Layout:
    return Layout(
        ROOT,
        FixedShapes(
            StoreShape(Method.parse(domain_foldering)),
            DomainShape(Method.parse(account_foldering), fast),
        ),
    )


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# -- the seed's examples, literally ("CommuniGate Shared File System structure and settings")


@pytest.mark.parametrize(
    ("domain_foldering", "account_foldering", "path"),
    [
        ("none", "none", "SharedDomains/company.com/jsmith.macnt"),
        ("none", "1", "SharedDomains/company.com/j.sub/jsmith.macnt"),
        ("none", "1/1", "SharedDomains/company.com/j.sub/s.sub/jsmith.macnt"),
        ("none", "2/1", "SharedDomains/company.com/js.sub/m.sub/jsmith.macnt"),
        ("1", "none", "SharedDomains/c.sub/company.com/jsmith.macnt"),
        ("1/1", "none", "SharedDomains/c.sub/o.sub/company.com/jsmith.macnt"),
        ("1", "1/1", "SharedDomains/c.sub/company.com/j.sub/s.sub/jsmith.macnt"),
    ],
)
def test_seed_foldering_examples(domain_foldering: str, account_foldering: str, path: str) -> None:
    lay = layout(domain_foldering, account_foldering)
    assert rel(lay.account_dir("jsmith", "company.com")) == path
    assert rel(lay.settings_path("jsmith", "company.com")) == path + "/account.settings"
    assert rel(lay.info_path("jsmith", "company.com")) == path + "/account.info"


def test_seed_nfs_example_mount_points() -> None:
    """Accounts of company.com under a.sub … h.sub, each a directory an NFS server can hold."""
    lay = layout("none", "1/1")
    assert rel(lay.account_dir("albert", "company.com")).startswith(
        "SharedDomains/company.com/a.sub/"
    )
    assert rel(lay.account_dir("hank", "company.com")).startswith(
        "SharedDomains/company.com/h.sub/"
    )


def test_seed_fast_storage_first_example() -> None:
    """APPENDIX Fast Storage: ``…/company.com/a.sub/albert.macnt/account.settings`` → index 2."""
    assert rel(layout("none", "1").settings_path("albert", "company.com")) == (
        "SharedDomains/company.com/a.sub/albert.macnt/account.settings"
    )
    lay = layout("none", "1", fast=2)
    assert rel(lay.settings_path("albert", "company.com")) == (
        "SharedDomains/company.com/fast/a.sub/albert.settings"
    )
    assert rel(lay.info_path("albert", "company.com")) == (
        "SharedDomains/company.com/fast/a.sub/albert.info"
    )
    # The account directory stays where it was, for everything else.
    assert rel(lay.account_dir("albert", "company.com")) == (
        "SharedDomains/company.com/a.sub/albert.macnt"
    )


def test_seed_fast_storage_second_example() -> None:
    """No domain foldering, 2-level account foldering, Fast Storage Index 1."""
    plain = layout("none", "1/1")
    assert str(plain.account_dir("albert", "company.com")) == (
        "/var/CommuniGate/SharedDomains/company.com/a.sub/l.sub/albert.macnt"
    )
    lay = layout("none", "1/1", fast=1)
    assert str(lay.settings_path("albert", "company.com")) == (
        "/var/CommuniGate/SharedDomains/fast/company.com/a.sub/l.sub/albert.settings"
    )
    assert lay.fast_dir_in("company.com", lay.shapes_of("company.com")[0]) == Path(
        "/var/CommuniGate/SharedDomains/fast/company.com"
    )


@pytest.mark.parametrize(
    ("fast", "path"),
    [
        (1, "SharedDomains/fast/c.sub/company.com/j.sub/s.sub/jsmith.settings"),
        (2, "SharedDomains/c.sub/fast/company.com/j.sub/s.sub/jsmith.settings"),
        (3, "SharedDomains/c.sub/company.com/fast/j.sub/s.sub/jsmith.settings"),
        (4, "SharedDomains/c.sub/company.com/j.sub/fast/s.sub/jsmith.settings"),
        (5, "SharedDomains/c.sub/company.com/j.sub/s.sub/fast/jsmith.settings"),
    ],
)
def test_fast_index_counts_from_the_base_directory(fast: int, path: str) -> None:
    assert rel(layout("1", "1/1", fast).settings_path("jsmith", "company.com")) == path


def test_fast_index_bounds() -> None:
    check_fast(5, Method.parse("1"), Method.parse("1/1"))
    with pytest.raises(BadLayout, match="0 \\(off\\) to 5"):
        check_fast(6, Method.parse("1"), Method.parse("1/1"))
    check_fast(2, Method(), Method())
    with pytest.raises(BadLayout):
        check_fast(3, Method(), Method())
    assert fast_index("0") == 0
    for text in ("-1", "x", "65", "1.5", "", "\u0661"):
        with pytest.raises(BadLayout):
            fast_index(text)


# -- methods


@pytest.mark.parametrize("text", ["none", "1", "2", "1/1", "2/1", "1/1/1", "8/8/8/8/8/8/8/8"])
def test_methods_round_trip(text: str) -> None:
    assert str(Method.parse(text)) == text


@pytest.mark.parametrize(
    "text", ["", "0", "9", "1/", "/1", "1//1", "a", "x/1", "1/1/1/1/1/1/1/1/1", "NONE", " 1", "²"]
)
def test_bad_methods(text: str) -> None:
    with pytest.raises(BadLayout):
        Method.parse(text)


def test_short_names_are_padded() -> None:
    assert Method.parse("2/1").folders("j") == ("j_.sub", "_.sub")
    assert Method.parse("1/1").folders("j") == ("j.sub", "_.sub")
    assert rel(layout("none", "2/1").account_dir("j", "company.com")) == (
        "SharedDomains/company.com/j_.sub/_.sub/j.macnt"
    )


def test_dots_are_padded_so_no_folder_is_hidden() -> None:
    assert Method.parse("1/1").folders("j.smith") == ("j.sub", "_.sub")
    assert rel(layout("1/1").domain_dir("c.com")) == "SharedDomains/c.sub/_.sub/c.com"


def test_letters_are_characters_not_bytes() -> None:
    assert Method.parse("1").folders("élodie") == ("é.sub",)
    assert Method.parse("2/1").folders("日本語") == ("日本.sub", "語.sub")
    assert rel(layout("none", "1/1").account_dir("Élodie", "company.com")) == (
        "SharedDomains/company.com/é.sub/l.sub/élodie.macnt"
    )


def test_long_names() -> None:
    longest = "ü" * 32  # 64 octets of UTF-8
    assert account_name(longest) == longest
    with pytest.raises(BadName):
        account_name("ü" * 33)
    path = layout("1/1", "8/8/8/8/8/8/8/8", fast=9).settings_path(longest, "a" * 63 + ".com")
    assert all(len(part.encode()) <= 255 for part in path.parts)


# -- the settings files


def test_settings_round_trip() -> None:
    shape = DomainShape(Method.parse("2/1"), 3, (Method.parse("1"), 0), {"x": 1})
    assert DomainShape.parse(bytes(shape)) == shape
    assert DomainShape.parse(bytes(shape)).other == {"x": 1}
    store = StoreShape(Method.parse("1/1"), Method())
    assert StoreShape.parse(bytes(store)) == store
    assert DomainShape.parse(b"{}") == DomainShape()
    for bad in (b"[]", b"{", b'{"fast_storage": -1}', b'{"account_foldering": "3x"}', b"\xff"):
        with pytest.raises(BadLayout):
            DomainShape.parse(bad)


def test_shapes_during_a_move_current_first() -> None:
    store = StoreShape(Method.parse("1"))
    domain = DomainShape(Method.parse("1/1"), 2, (Method(), 0))
    got = shapes(store, domain)
    assert got[0] == Shape(Method.parse("1"), Method.parse("1/1"), 2)
    assert set(got) == {
        Shape(Method.parse("1"), a, f) for a in (Method.parse("1/1"), Method()) for f in (2, 0)
    }
    assert shapes(store, DomainShape(Method.parse("1"))) == (
        Shape(Method.parse("1"), Method.parse("1"), 0),
    )


def test_reserved_domain_names() -> None:
    for text in ("fast", "c.sub", "sub"):
        with pytest.raises(BadName):
            domain_name(text)
    assert domain_name("fast.com") == "fast.com"


# -- properties: any valid name, any method

_letters = st.characters(
    categories=("Ll", "Lu", "Lo", "Nd", "Mn"), include_characters="._-"
) | st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789._-")


def _valid(text: str) -> bool:
    try:
        return account_name(text) == text
    except BadName:
        return False


names = st.text(_letters, min_size=1, max_size=20).map(str.lower).filter(_valid)
methods = st.lists(st.integers(1, 4), max_size=4).map(lambda levels: Method(tuple(levels)))
domains = st.sampled_from(["company.com", "a.b", "x", "1host.example", "c.com", "fast.net"])


@settings(max_examples=300, deadline=None)
@given(text=st.text(_letters, min_size=1, max_size=40))
def test_account_name_is_idempotent(text: str) -> None:
    try:
        name = account_name(text)
    except BadName:
        return
    assert account_name(name) == name
    assert "/" not in name and not name.startswith(".")


@settings(max_examples=500, deadline=None)
@given(name=names, domain=domains, dmethod=methods, amethod=methods, fast=st.integers(0, 12))
def test_paths_round_trip(
    name: str, domain: str, dmethod: Method, amethod: Method, fast: int
) -> None:
    lay = Layout(ROOT)
    shape = Shape(dmethod, amethod, fast)
    account_dir = lay.account_dir_in(name, domain, shape)
    assert lay.account_of(account_dir, amethod) == name
    assert lay.domain_of(lay.domain_dir_in(domain, dmethod), dmethod) == domain
    assert account_dir.match(lay.account_pattern(amethod))
    assert (
        lay.domain_dir_in(domain, dmethod)
        .relative_to(lay.shared_domains)
        .match(lay.domain_pattern(dmethod))
    )
    for part in lay.file_in(SETTINGS, name, domain, shape).parts:
        assert part not in (".", "..") and len(part.encode()) <= 255
    settings_path = lay.file_in(SETTINGS, name, domain, shape)
    assert settings_path.name == (f"{name}.settings" if fast else "account.settings")


@settings(max_examples=500, deadline=None)
@given(a=names, b=names, method=methods, fast=st.integers(0, 6))
def test_two_names_never_share_an_account(a: str, b: str, method: Method, fast: int) -> None:
    if a == b:
        return
    lay = Layout(ROOT)
    shape = Shape(Method(), method, fast)
    assert lay.account_dir_in(a, "company.com", shape) != lay.account_dir_in(
        b, "company.com", shape
    )
    assert lay.file_in(SETTINGS, a, "company.com", shape) != lay.file_in(
        SETTINGS, b, "company.com", shape
    )
