"""`sipfarm.auth.trusted`: source addresses and prefixes exempt from authentication."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipfarm.auth import TrustedSources

pytestmark = pytest.mark.timeout(30)

TRUSTED = TrustedSources(["127.0.0.1", "198.51.100.0/24", "::1/128", "2001:db8:aa::/48"])


@pytest.mark.parametrize(
    ("host", "inside"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", False),
        ("198.51.100.0", True),
        ("198.51.100.255", True),
        ("198.51.101.1", False),
        ("::1", True),
        ("0:0:0:0:0:0:0:1", True),
        ("[::1]", True),
        ("::2", False),
        ("2001:db8:aa:ffff::5", True),
        ("2001:DB8:AA::5", True),
        ("[2001:db8:aa::5]", True),
        ("2001:db8:ab::5", False),
        ("fe80::1%eth0", False),
        ("::ffff:198.51.100.7", True),  # an IPv4 peer on a dual-stack socket
        ("::ffff:203.0.113.7", False),
        ("example.com", False),
        ("", False),
        ("[", False),
        ("[]", False),
        ("198.51.100.7:5060", False),
        ("198.51.100.07", False),
        ("é", False),
    ],
)
def test_membership(host: str, inside: bool) -> None:
    assert (host in TRUSTED) is inside
    assert (host in TRUSTED) is inside  # and again, from the cache


def test_scoped_prefix() -> None:
    trusted = TrustedSources(["fe80::/10"])
    assert "fe80::1%eth0" in trusted
    assert "fe80::1" in trusted


def test_empty_list_trusts_no_one() -> None:
    trusted = TrustedSources([])
    assert len(trusted) == 0
    assert "127.0.0.1" not in trusted


def test_whitespace_around_a_source_is_ignored() -> None:
    assert "10.1.2.3" in TrustedSources([" 10.0.0.0/8 "])


def test_repr_and_len() -> None:
    assert len(TRUSTED) == 4
    assert (
        repr(TrustedSources(["10.0.0.0/8", "::1"])) == "TrustedSources(['10.0.0.0/8', '::1/128'])"
    )


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("198.51.100.1/24", "bad trusted source '198.51.100.1/24': .*host bits set"),
        ("10.0.0.0/33", "bad trusted source '10.0.0.0/33'"),
        ("example.com", "bad trusted source 'example.com'"),
        ("", "bad trusted source ''"),
        ("::1/129", "bad trusted source '::1/129'"),
        ("1.2.3", "bad trusted source '1.2.3'"),
    ],
)
def test_bad_source(source: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        TrustedSources(["127.0.0.1", source])
    assert "\n" not in str(info.value)


def test_one_string_is_a_mistake() -> None:
    with pytest.raises(TypeError):
        TrustedSources("127.0.0.1")


def test_small_cache_still_answers_right() -> None:
    trusted = TrustedSources(["10.0.0.0/8"], cache_size=2)
    for round_ in range(3):
        for i in range(20):
            assert (f"10.0.0.{i}" in trusted) is True, round_
            assert (f"11.0.0.{i}" in trusted) is False, round_
    assert len(trusted._cache) <= 2


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=50) | st.ip_addresses().map(str))
def test_any_host_text_gives_an_answer(host: str) -> None:
    assert isinstance(host in TRUSTED, bool)


@settings(max_examples=200, deadline=None)
@given(st.ip_addresses(v=4))
def test_agrees_with_ipaddress(address: ipaddress.IPv4Address) -> None:
    inside = any(
        address in n
        for n in (ipaddress.IPv4Network("127.0.0.1"), ipaddress.IPv4Network("198.51.100.0/24"))
    )
    assert (str(address) in TRUSTED) is inside
