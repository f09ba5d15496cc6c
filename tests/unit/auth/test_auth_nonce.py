"""`sipfarm.auth.nonce` and `sipfarm.auth.noncecount`: farm-wide nonces, per-member counts."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipfarm.auth import Freshness, NonceCheck, NonceCounts, Nonces

pytestmark = pytest.mark.timeout(30)

SECRET = b"farm-wide secret, 32 bytes long!"
NOW = 1_700_000_000.0
RANDOM = bytes.fromhex("0102030405060708")


def fixed(n: int) -> bytes:
    return RANDOM[:n]


def test_layout_is_time_random_and_hmac() -> None:
    nonce = Nonces(SECRET, random=fixed).mint("example.com", NOW + 0.25)
    raw = base64.urlsafe_b64decode(nonce + "=")
    stamp = int((NOW + 0.25) * 1000).to_bytes(8, "big") + RANDOM
    tag = hmac.digest(SECRET, stamp + b"example.com", hashlib.sha256)[:16]
    assert len(nonce) == 43
    assert raw == stamp + tag


def test_fresh_nonce_checks() -> None:
    nonces = Nonces(SECRET)
    nonce = nonces.mint("example.com", NOW)
    assert set(nonce) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert nonces.check(nonce, "example.com", NOW + 1) == NonceCheck(Freshness.FRESH, NOW)


def test_every_nonce_differs() -> None:
    nonces = Nonces(SECRET)
    assert len({nonces.mint("example.com", NOW) for _ in range(100)}) == 100


def test_another_member_with_the_secret_checks_it() -> None:
    nonce = Nonces(SECRET).mint("example.com", NOW)
    assert Nonces(SECRET).check(nonce, "example.com", NOW).freshness is Freshness.FRESH


def test_another_secret_or_realm_does_not() -> None:
    nonce = Nonces(SECRET).mint("example.com", NOW)
    other = Nonces(b"another farm's secret, 32 bytes!")
    assert other.check(nonce, "example.com", NOW).freshness is Freshness.INVALID
    assert Nonces(SECRET).check(nonce, "example.org", NOW).freshness is Freshness.INVALID


@pytest.mark.parametrize(
    ("age", "freshness"),
    [
        (0.0, Freshness.FRESH),
        (300.0, Freshness.FRESH),
        (300.01, Freshness.STALE),
        (86400.0 * 365, Freshness.STALE),
        (-5.0, Freshness.FRESH),  # a member whose clock runs ahead
        (-5.01, Freshness.INVALID),
    ],
)
def test_age(age: float, freshness: Freshness) -> None:
    nonces = Nonces(SECRET)
    nonce = nonces.mint("example.com", NOW)
    assert nonces.check(nonce, "example.com", NOW + age).freshness is freshness


def test_lifetime_and_skew_are_configurable() -> None:
    nonces = Nonces(SECRET, lifetime=30, skew=0)
    nonce = nonces.mint("r", NOW)
    assert nonces.check(nonce, "r", NOW + 31).freshness is Freshness.STALE
    assert nonces.check(nonce, "r", NOW - 0.01).freshness is Freshness.INVALID


def test_every_changed_character_is_invalid() -> None:
    nonces = Nonces(SECRET)
    nonce = nonces.mint("example.com", NOW)
    for i, c in enumerate(nonce):
        for other in ("A", "B", "-", "_", "=", "+", "/", " ", "!"):
            if other != c:
                changed = nonce[:i] + other + nonce[i + 1 :]
                assert nonces.check(changed, "example.com", NOW).freshness is Freshness.INVALID


@pytest.mark.parametrize(
    "text",
    ["", "x", "A" * 42, "A" * 44, "é" * 43, "A" * 42 + "=", "!" * 43, "A" * 40 + "\x00\x00\x00"],
)
def test_garbage_is_invalid(text: str) -> None:
    assert Nonces(SECRET).check(text, "example.com", NOW) == NonceCheck(Freshness.INVALID, 0.0)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60) | st.text("AB-_=", min_size=43, max_size=43))
def test_arbitrary_text_is_invalid(text: str) -> None:
    assert Nonces(SECRET).check(text, "example.com", NOW).freshness is Freshness.INVALID


def test_bad_construction() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Nonces(b"too short")
    with pytest.raises(ValueError):
        Nonces(SECRET, lifetime=0)
    with pytest.raises(ValueError):
        Nonces(SECRET, skew=-1)
    with pytest.raises(ValueError, match="random"):
        Nonces(SECRET, random=lambda n: b"1").mint("r", NOW)


# -- the nonce-count table -------------------------------------------------------------------


def counts(max_nonces: int = 1000) -> NonceCounts:
    return NonceCounts(lifetime=300.0, skew=5.0, max_nonces=max_nonces)


def test_counts_must_grow() -> None:
    table = counts()
    assert table.admit("n", NOW, 1, 11, NOW)
    assert not table.admit("n", NOW, 1, 12, NOW)  # same count, another request
    assert table.admit("n", NOW, 2, 12, NOW)
    assert table.admit("n", NOW, 7, 13, NOW)
    assert not table.admit("n", NOW, 6, 14, NOW)
    assert table.admit("m", NOW, 1, 12, NOW)  # counts are per nonce


def test_same_count_same_fingerprint_is_a_retransmission() -> None:
    table = counts()
    assert table.admit("n", NOW, 1, 11, NOW)
    assert table.admit("n", NOW, 1, 11, NOW + 0.5)
    assert table.admit("n", NOW, 2, 12, NOW + 1)
    assert not table.admit("n", NOW, 1, 11, NOW + 2)  # not the latest request any more


def test_entries_are_forgotten_once_their_nonces_are_stale() -> None:
    table = counts()
    for i in range(10):
        assert table.admit(f"n{i}", NOW, 1, i, NOW)
    assert len(table) == 10
    # a rotation after lifetime + skew: the ten move to ``previous``, still counted
    assert table.admit("later", NOW + 310, 1, 0, NOW + 310)
    assert not table.admit("n3", NOW, 1, 99, NOW + 310)
    assert len(table) == 11
    # the next rotation drops them, freed a few per call
    for i in range(10):
        assert table.admit(f"x{i}", NOW + 620, 1, 0, NOW + 620)
    assert len(table) == 11


def test_memory_is_bounded_and_forgotten_nonces_are_refused() -> None:
    table = counts(max_nonces=30)
    for i in range(1000):
        assert table.admit(f"n{i}", NOW + i / 100, 1, i, NOW + i / 100)
        assert len(table) <= 30
    # the first entries were dropped early: their nonces, still fresh, are refused
    # rather than admitted with a forgotten count
    assert not table.admit("n0", NOW, 1, 0, NOW + 10)
    assert not table.admit("never seen, issued long ago", NOW, 1, 0, NOW + 10)
    # a nonce issued after the dropped generations is admitted
    assert table.admit("new", NOW + 10, 1, 0, NOW + 10)


def test_recent_entries_survive_an_early_rotation() -> None:
    table = counts(max_nonces=30)
    for i in range(15):
        assert table.admit(f"n{i}", NOW + i, 1, i, NOW + i)
    # n14 went into the generation that is now ``previous``: still counted
    assert not table.admit("n14", NOW + 14, 1, 99, NOW + 15)
    assert table.admit("n14", NOW + 14, 2, 99, NOW + 15)
