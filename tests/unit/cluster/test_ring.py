"""cluster/ring.py: keys spread evenly, and a view change moves only what it must."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.ring import BUCKETS, Ring, bucket, key_hash

KEYS = [f"{i}-call@198.51.100.{i % 250}" for i in range(40_000)]

TOKENS = st.lists(
    st.text("0123456789abcdef", min_size=6, max_size=6), min_size=2, max_size=10, unique=True
)


def shares(ring: Ring, keys: list[str]) -> Counter[str | None]:
    return Counter(ring.owner(k) for k in keys)


def test_empty_ring_owns_nothing_and_one_member_owns_everything() -> None:
    assert Ring([]).owner("x") is None
    assert Ring(["a1"]).owner("x") == "a1"
    assert Ring(["a1"]).owners("x", 3) == ["a1"]


def test_the_same_view_gives_the_same_owner_everywhere() -> None:
    # no salted hash(): another process, another machine computes the same
    assert key_hash("call-1@198.51.100.1") == key_hash(b"call-1@198.51.100.1")
    assert key_hash("call-1@198.51.100.1") == 0x4789161B03376A11  # blake2b: on every machine
    assert bucket("call-1@198.51.100.1") == 0x3407  # zlib's CRC-32, low 16 bits
    assert Ring(["m1", "m2", "m3"]).owner("call-1@198.51.100.1") == "m1"
    a = Ring(["m1", "m2", "m3"])
    b = Ring(["m3", "m1", "m2", "m2"])
    assert [a.owner(k) for k in KEYS[:500]] == [b.owner(k) for k in KEYS[:500]]


@settings(max_examples=25, deadline=None)
@given(TOKENS)
def test_keys_spread_within_ten_percent(tokens: list[str]) -> None:
    ring = Ring(tokens)
    counts = shares(ring, KEYS)
    fair = len(KEYS) / len(tokens)
    assert set(counts) == set(tokens)
    for member, n in counts.items():
        assert abs(n - fair) <= 0.10 * fair, (member, n, fair)


@settings(max_examples=25, deadline=None)
@given(TOKENS, st.text("0123456789abcdef", min_size=7, max_size=7))
def test_a_join_moves_only_keys_to_the_new_member(tokens: list[str], new: str) -> None:
    before = Ring(tokens)
    after = before.with_member(new)
    moved = [k for k in KEYS[:10_000] if before.owner(k) != after.owner(k)]
    assert all(after.owner(k) == new for k in moved)
    expected = 10_000 / (len(tokens) + 1)
    assert abs(len(moved) - expected) <= 0.15 * expected + 50


@settings(max_examples=25, deadline=None)
@given(TOKENS, st.data())
def test_a_leave_moves_only_the_keys_of_the_member_that_left(
    tokens: list[str], data: st.DataObject
) -> None:
    gone = data.draw(st.sampled_from(tokens))
    before = Ring(tokens)
    after = before.without_member(gone)
    for k in KEYS[:10_000]:
        if before.owner(k) != gone:
            assert after.owner(k) == before.owner(k)
        else:
            assert after.owner(k) != gone


@pytest.mark.parametrize("n", [1, 2, 3])
def test_owners_lists_the_takeover_order(n: int) -> None:
    ring = Ring(["m1", "m2", "m3", "m4"])
    for k in KEYS[:300]:
        order = ring.owners(k, n)
        assert order[0] == ring.owner(k) and len(order) == n == len(set(order))
        if n >= 2:  # the second in line owns the key once the first is gone
            assert ring.without_member(order[0]).owner(k) == order[1]


def test_a_bucket_is_the_low_bits_of_the_ieee_crc32() -> None:
    # the check value of CRC-32/ISO-HDLC is 0xCBF43926: the kernel's steering program
    # computes the same function bit by bit (sipfarm/transport/steering.py)
    assert bucket(b"123456789") == 0xCBF43926 & (BUCKETS - 1)
    assert bucket("héllo") == bucket("héllo".encode())


def test_the_table_is_the_owner_of_each_bucket() -> None:
    ring = Ring(["m1", "m2", "m3"])
    table = ring.table()
    assert len(table) == BUCKETS
    assert ring.table(100, 110) == table[100:110]
    for k in KEYS[:2000]:
        assert table[bucket(k)] == ring.owner(k)
    assert Counter(table).keys() == {"m1", "m2", "m3"}
    assert Ring([]).table(0, 3) == [None, None, None]
