"""Bindings, contact equality (RFC 3261 §19.1.4, simplified) and the value grammars."""

from __future__ import annotations

import pytest
from regmessages import BOB

from sipfarm.registrar import Binding, contact_key, parse_delta, parse_qvalue
from sipfarm.sip import SipError, parse_uri


def key(text: str) -> object:
    return contact_key(parse_uri(text))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("sip:bob@biloxi.com", "sip:bob@BILOXI.COM"),
        ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
        ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
        ("sip:bob@biloxi.com;maddr=239.255.255.1", "sip:bob@biloxi.com;MADDR=239.255.255.1"),
        ("mailto:bob@biloxi.example.com", "MAILTO:bob@biloxi.example.com"),
    ],
)
def test_equal_contacts(a: str, b: str) -> None:
    assert key(a) == key(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
        ("sip:bob@biloxi.com", "sips:bob@biloxi.com"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com;maddr=10.0.0.1"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com;user=phone"),
        ("sip:bob@biloxi.com", "sip:bob:pw@biloxi.com"),
    ],
)
def test_different_contacts(a: str, b: str) -> None:
    assert key(a) != key(b)


def test_binding_is_a_small_tuple() -> None:
    b = Binding("sip:bob@192.0.2.4", None, 3600.0, "c", 1, (), BOB)

    assert (b.instance, b.reg_id, b.registered_at) == (None, None, 0.0)
    assert not hasattr(b, "__dict__")
    assert len(b) == 10


@pytest.mark.parametrize(
    ("expires_at", "now", "left"), [(100.0, 0.0, 100), (100.0, 99.6, 1), (100.0, 100.0, 0)]
)
def test_remaining(expires_at: float, now: float, left: int) -> None:
    b = Binding("sip:bob@192.0.2.4", None, expires_at, "c", 1, (), BOB)

    assert b.remaining(now) == left


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0.0), ("1", 1.0), ("0.5", 0.5), ("0.", 0.0), ("1.000", 1.0), ("0.001", 0.001)],
)
def test_qvalue(text: str, value: float) -> None:
    assert parse_qvalue(text) == value


@pytest.mark.parametrize("text", ["", "1.1", "0.0001", "01", "1e0", "0x1", "\u0660.5"])
def test_bad_qvalue(text: str) -> None:
    with pytest.raises(SipError):
        parse_qvalue(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("3600", 3600), ("4294967296", 2**32 - 1), ("9" * 5000, 2**32 - 1), ("-1", None),
     ("", None), ("1h", None), ("\u0663", None), (None, None)],
)  # fmt: skip
def test_delta_seconds(text: str | None, value: int | None) -> None:
    assert parse_delta(text) == value
