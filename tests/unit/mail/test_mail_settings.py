"""`mail.settings`: HA1 per RFC 7616 §3.4.2, the codec's round trip, no password stored."""

from __future__ import annotations

import hashlib
import json

import pytest

from mail.settings import AccountSettings, BadSettings, ha1, verify_password

pytestmark = pytest.mark.timeout(10)


def test_ha1_rfc2617_example() -> None:
    # RFC 2617 §3.5: the HA1 behind its worked example.
    assert ha1("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life") == (
        "939e7578ed9e3c518a452acee763bce9"
    )


def test_ha1_sha256() -> None:
    expected = hashlib.sha256(b"Mufasa:http-auth@example.org:Circle of Life").hexdigest()
    assert ha1("SHA-256", "Mufasa", "http-auth@example.org", "Circle of Life") == expected


def test_new_holds_realm_and_both_digests_not_the_password() -> None:
    s = AccountSettings.new("jsmith", "company.com", "s3cret-pw")
    assert s.realm == "company.com"
    assert set(s.digest) == {"MD5", "SHA-256"}
    assert s.digest["MD5"] == hashlib.md5(b"jsmith:company.com:s3cret-pw").hexdigest()
    assert b"s3cret-pw" not in bytes(s)


def test_encoding_is_sorted_utf8_json() -> None:
    data = bytes(AccountSettings(realm="c.com", digest={"SHA-256": "b", "MD5": "a"}))
    obj = json.loads(data.decode("utf-8"))
    assert obj == {"digest": {"MD5": "a", "SHA-256": "b"}, "realm": "c.com"}
    assert data.index(b'"MD5"') < data.index(b'"SHA-256"') < data.index(b'"realm"')


def test_round_trip_keeps_unknown_keys() -> None:
    data = b'{"digest": {"MD5": "a"}, "realm": "c.com", "zz": [1, "\xc3\xa9"]}'
    s = AccountSettings.parse(data)
    assert s.other == {"zz": [1, "é"]}
    assert AccountSettings.parse(bytes(s)) == s
    assert bytes(AccountSettings.parse(bytes(s))) == bytes(s)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[]",
        b"\xff",
        b'{"realm": "c"}',
        b'{"digest": {}}',
        b'{"digest": {"MD5": 1}, "realm": "c"}',
        # past json's recursion limit: still BadSettings, not RecursionError
        pytest.param(b"[" * 100_000, id="nested-too-deep"),
    ],
)
def test_bad_settings(data: bytes) -> None:
    with pytest.raises(BadSettings):
        AccountSettings.parse(data)


def test_verify_password_and_change() -> None:
    s = AccountSettings.new("jsmith", "company.com", "one")
    assert verify_password(s, "jsmith", "one")
    assert not verify_password(s, "jsmith", "two")
    assert not verify_password(s, "other", "one")
    t = s.with_password("jsmith", "two")
    assert t.realm == s.realm
    assert verify_password(t, "jsmith", "two")
    assert not verify_password(t, "jsmith", "one")
    assert not verify_password(AccountSettings(realm="c", digest={}), "jsmith", "one")
