"""sipfarm/registrar/stored.py: bindings written before they are acknowledged, read back by
the next owner; sipfarm/farm.py: the AOR a REGISTER is placed by."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipfarm.actions import Source
from sipfarm.farm import register_key
from sipfarm.registrar import Binding, StoredLocation
from sipfarm.registrar.stored import (
    binding_from_record,
    binding_record,
    decode_bindings,
    encode_bindings,
)

B = Binding(
    "sip:alice@198.51.100.7:5062;transport=tcp",
    0.5,
    1_000_300.0,
    "c1@198.51.100.7",
    7,
    ("<sip:edge.example.com;lr>",),
    Source("TCP", "198.51.100.7", 40123),
    '"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"',
    1,
    1_000_000.0,
)

BINDINGS = st.builds(
    Binding,
    st.text(max_size=40),
    st.none() | st.floats(0, 1),
    st.floats(0, 2e9),
    st.text(max_size=20),
    st.integers(0, 2**31 - 1),
    st.lists(st.text(max_size=20), max_size=3).map(tuple),
    st.builds(Source, st.sampled_from(["UDP", "TCP"]), st.text(max_size=15), st.integers(0, 65535)),
    st.none() | st.text(max_size=20),
    st.none() | st.integers(0, 100),
    st.floats(0, 2e9),
)


@given(st.lists(st.tuples(BINDINGS, st.none() | st.text(max_size=8)), max_size=4))
def test_bindings_round_trip_through_storage(records: list[tuple[Binding, str | None]]) -> None:
    assert decode_bindings(encode_bindings(records)) == records


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b"[]",
        b'{"format": 2, "bindings": []}',
        b'{"format": 1}',
        b'{"format": 1, "bindings": [[1]]}',
        b"\x00\xff\xfe garbage \x81",
        # past json's recursion limit: still ValueError, not RecursionError
        pytest.param(b"[" * 100_000, id="nested-too-deep"),
        pytest.param(
            encode_bindings([(B, None)]).replace(b"1000300.0", b"Infinity"), id="infinity"
        ),
    ],
)
def test_a_damaged_file_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_bindings(data)


def test_a_record_with_a_wrong_field_is_refused() -> None:
    record = binding_record(B, "m1")
    assert binding_from_record(record) == (B, "m1")
    record[6] = ["TCP", "198.51.100.7", "40123"]  # port as text
    with pytest.raises(ValueError):
        binding_from_record(record)


@pytest.mark.parametrize("field", [2, 9])  # expires_at, registered_at
@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_a_record_with_a_time_that_is_not_finite_is_refused(field: int, value: float) -> None:
    record = binding_record(B, None)
    record[field] = value  # what json reads from Infinity or NaN in a damaged file
    with pytest.raises(ValueError):
        binding_from_record(record)


class Disk:
    """A BindingStorage in memory that counts reads and writes."""

    def __init__(self) -> None:
        self.files: dict[str, list[tuple[Binding, str | None]]] = {}
        self.reads = 0
        self.fail = False

    def read(self, aor: str) -> list[tuple[Binding, str | None]]:
        self.reads += 1
        return list(self.files.get(aor, []))

    def write(self, aor: str, bindings: Sequence[Binding]) -> None:
        if self.fail:
            raise OSError("disk full")
        self.files[aor] = [(b, None) for b in bindings]


def test_a_store_reaches_storage_before_memory() -> None:
    disk = Disk()
    loc = StoredLocation(disk)
    loc.store("sip:alice@example.com", [B])
    assert disk.files["sip:alice@example.com"] == [(B, None)]
    disk.fail = True
    with pytest.raises(OSError):
        loc.store("sip:alice@example.com", [])
    assert loc.bindings("sip:alice@example.com") == [B]  # memory unchanged: no 200 OK went out


def test_the_next_owner_loads_from_storage_once() -> None:
    disk = Disk()
    StoredLocation(disk).store("sip:alice@example.com", [B])
    successor = StoredLocation(disk)
    assert successor.lookup("sip:alice@example.com", 1_000_100.0) == [B]
    assert successor.lookup("sip:alice@example.com", 1_000_100.0) == [B]
    assert disk.reads == 1
    assert successor.lookup("sip:alice@example.com", 1_000_400.0) == []  # expired


def test_after_a_change_of_ownership_every_aor_is_read_again() -> None:
    disk = Disk()
    loc = StoredLocation(disk)
    loc.store("sip:alice@example.com", [B])
    disk.files["sip:alice@example.com"] = []  # another owner removed it meanwhile
    assert loc.lookup("sip:alice@example.com", 1_000_100.0) == [B]  # still ours: cached
    loc.invalidate()
    assert loc.lookup("sip:alice@example.com", 1_000_100.0) == []
    reads = disk.reads
    loc.lookup("sip:alice@example.com", 1_000_100.0)
    assert disk.reads == reads  # once


def test_the_owner_removes_expired_bindings_from_storage_too() -> None:
    disk = Disk()
    loc = StoredLocation(disk)
    later = B._replace(expires_at=1_000_900.0, contact="sip:alice@198.51.100.8")
    for aor in ("sip:alice@example.com", "sip:bob@example.com", "sip:carol@example.com"):
        loc.store(aor, [B, later])
    ours = {"sip:alice@example.com", "sip:carol@example.com"}
    loc.invalidate()  # an ownership change: carol is not loaded since, storage may be newer
    loc.lookup("sip:alice@example.com", 1_000_100.0)
    loc.lookup("sip:bob@example.com", 1_000_100.0)
    assert loc.expire(1_000_400.0, 100, ours.__contains__) == 3  # B of each, in memory
    assert disk.files["sip:alice@example.com"] == [(later, None)]  # ours, loaded: written
    assert disk.files["sip:bob@example.com"] == [(B, None), (later, None)]  # not ours
    assert disk.files["sip:carol@example.com"] == [(B, None), (later, None)]  # not loaded
    disk.fail = True  # a failed write: named for the edge to log, the memory goes on
    failed: list[str] = []
    assert loc.expire(1_001_000.0, 100, ours.__contains__, failed) == 3
    assert failed == ["sip:alice@example.com: OSError('disk full')"]
    assert loc.bindings("sip:alice@example.com") == []


@pytest.mark.parametrize(
    ("message", "key"),
    [
        (
            b"REGISTER sip:example.com SIP/2.0\r\nTo: <sip:Alice@EXAMPLE.com>\r\n\r\n",
            b"sip:alice@example.com",
        ),
        (
            b"REGISTER sip:example.com SIP/2.0\r\nt: sip:bob@example.com;tag=x\r\n\r\n",
            b"sip:bob@example.com",
        ),
        (
            b'REGISTER sip:example.com SIP/2.0\r\nTO :  "B" <sip:bob@example.com:5060>\r\n\r\n',
            b"sip:bob@example.com",
        ),
        (b"REGISTER sip:example.com SIP/2.0\r\nTo: <mailto:x@example.com>\r\n\r\n", None),
        (b"REGISTER sip:example.com SIP/2.0\r\nFrom: <sip:a@example.com>\r\n\r\n", None),
    ],
)
def test_a_register_is_placed_by_its_aor(message: bytes, key: bytes | None) -> None:
    assert register_key(message) == key
